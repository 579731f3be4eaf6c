//! The core against a real TLS `redis-server` (see `test_support`), without Python.

use super::{CacheOptions, GenericRedisCache};
use crate::config::SecurityConfig;
use crate::error::ErrorKind;
use crate::test_support::TlsRedis;
use std::sync::Arc;

/// A cache with every default option on `server`, under its own configuration.
fn default_cache(server: &TlsRedis) -> GenericRedisCache {
    GenericRedisCache::new(
        &server.url(),
        CacheOptions::default(),
        &server.config(),
        false,
    )
    .unwrap()
}

fn json(s: &str) -> Arc<[u8]> {
    Arc::from(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_over_tls_with_l1_and_redis() {
    let server = TlsRedis::start("roundtrip");
    let config = server.config();
    let cache =
        GenericRedisCache::new(&server.url(), CacheOptions::default(), &config, false).unwrap();
    assert!(cache.connect().await.unwrap());
    cache
        .set("k", json(r#"{"a":[1,2,3]}"#), Some(60))
        .await
        .unwrap();
    assert_eq!(
        &*cache.get("k").await.unwrap().unwrap(),
        br#"{"a":[1,2,3]}"#
    );

    let no_l1 = CacheOptions {
        enable_l1_cache: false,
        ..CacheOptions::default()
    };
    let other = GenericRedisCache::new(&server.url(), no_l1, &config, false).unwrap();
    assert_eq!(
        &*other.get("k").await.unwrap().unwrap(),
        br#"{"a":[1,2,3]}"#
    );
    assert_eq!(other.get_ttl("k").await.unwrap(), Some(60));
    let many = other
        .get_many(&["k".to_string(), "absent".to_string()])
        .await
        .unwrap();
    assert!(many[0].is_some() && many[1].is_none());
    assert!(other.delete("k").await.unwrap());
    assert!(!other.exists("k").await.unwrap());
    assert!(other.ping().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_from_another_key_or_keyring_are_misses() {
    let server = TlsRedis::start("foreign");
    let options = CacheOptions {
        enable_l1_cache: false,
        ..CacheOptions::default()
    };
    let mine =
        GenericRedisCache::new(&server.url(), options.clone(), &server.config(), false).unwrap();
    // Same password, different encryption key: a stranger sharing the Redis.
    let stranger = GenericRedisCache::new(&server.url(), options, &server.config(), false).unwrap();
    stranger.set("shared", json("1"), None).await.unwrap();
    assert!(mine.get("shared").await.unwrap().is_none());
    assert_eq!(mine.stats().rejected_entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_configuration_error() {
    let server = TlsRedis::start("wrongpw");
    let config = server.config_with_password("not-the-password-at-all");
    let cache =
        GenericRedisCache::new(&server.url(), CacheOptions::default(), &config, false).unwrap();
    let err = cache.connect().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Configuration);
    assert_eq!(err.context["error_type"], "authentication_failed");
    assert!(!err.to_string().contains("not-the-password-at-all"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_degrades_to_misses_without_errors() {
    let mut server = TlsRedis::start("killed");
    let cache = default_cache(&server);
    assert!(cache.connect().await.unwrap());
    cache.set("kept", json("\"v\""), None).await.unwrap();
    server.kill();
    // L1 answers only under its lease (80 ms at most after the kill), then reads miss: it
    // cannot know what other processes write meanwhile. A write Redis did not take is not
    // kept either.
    let kept = cache.get("kept").await.unwrap();
    assert!(kept.is_none() || kept.as_deref() == Some(&b"\"v\""[..]));
    assert!(cache.get("never").await.unwrap().is_none());
    cache.set("later", json("2"), None).await.unwrap();
    assert!(cache.get("later").await.unwrap().is_none());
    assert!(!cache.ping().await);
    assert!(cache.stats().redis_failures >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stop_at_the_limit_and_a_refused_key_spoils_no_other() {
    use super::commands::{fetch_entries, fetch_entry, Stored, FIRST_READ_BYTES};
    let server = TlsRedis::start("fetch");
    let cache = default_cache(&server);
    assert!(cache.connect().await.unwrap());
    let conn = cache.connection();
    // Past the first read, within and past a limit of 1.5 first reads, and a hash.
    let within = vec![b'w'; FIRST_READ_BYTES + 10];
    let past = vec![b'p'; FIRST_READ_BYTES * 2];
    let limit = FIRST_READ_BYTES * 3 / 2;
    let (w, p) = (within.clone(), past.clone());
    conn.run(|mut c| async move {
        redis::pipe()
            .set("small", "tok")
            .set("within", w)
            .set("past", p)
            .hset("hash", "field", "value")
            .query_async::<()>(&mut c)
            .await
    })
    .await
    .unwrap();
    let names: Vec<String> = ["small", "hash", "within", "absent", "past"]
        .map(String::from)
        .to_vec();
    for with_ttl in [false, true] {
        let names = names.clone();
        let found = conn
            .run(|mut c| async move { fetch_entries(&mut c, &names, with_ttl, limit).await })
            .await
            .unwrap();
        let stored: Vec<&Stored> = found.iter().map(|(stored, _)| stored).collect();
        assert_eq!(stored[0], &Stored::Entry(b"tok".to_vec()));
        assert!(matches!(stored[1], Stored::Refused(why) if why.starts_with("WRONGTYPE")));
        assert_eq!(stored[2], &Stored::Entry(within.clone()));
        assert_eq!(stored[3], &Stored::Absent);
        assert_eq!(stored[4], &Stored::Oversized(past.len() as u64));
        // PTTL: no expiry on the planted keys, none asked for without L1.
        let ttls: Vec<i64> = found.iter().map(|(_, pttl)| *pttl).collect();
        let expected = if with_ttl {
            [-1, -1, -1, -2, -1]
        } else {
            [-2; 5]
        };
        assert_eq!(ttls, expected);
    }
    let one = conn
        .run(|mut c| async move { fetch_entry(&mut c, "past", false, limit).await })
        .await
        .unwrap();
    assert_eq!(one.0, Stored::Oversized(past.len() as u64));
    // The connection is as good as before.
    assert!(cache.ping().await);
}

/// Runs one raw command on the cache's own connection (to plant or inspect foreign keys).
async fn raw<T: redis::FromRedisValue + Send + 'static>(
    cache: &GenericRedisCache,
    args: &[&[u8]],
) -> T {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cache
        .connection()
        .run(|mut c| async move { cmd.query_async::<T>(&mut c).await })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_deletions_spare_keys_this_cache_did_not_write() {
    let server = TlsRedis::start("ownership");
    let config = server.config();
    let no_l1 = CacheOptions {
        enable_l1_cache: false,
        ..CacheOptions::default()
    };
    let mine = GenericRedisCache::new(&server.url(), no_l1.clone(), &config, false).unwrap();
    // Same keyring, another namespace; and another keyring in the default namespace.
    let tenant_options = no_l1.clone().with_namespace("tenant:").unwrap();
    let tenant = GenericRedisCache::new(&server.url(), tenant_options, &config, false).unwrap();
    let stranger = GenericRedisCache::new(&server.url(), no_l1, &server.config(), false).unwrap();
    assert!(mine.connect().await.unwrap());
    mine.set("user:1", json("1"), None).await.unwrap();
    mine.set("user:2", json("2"), None).await.unwrap();
    tenant.set("user:1", json("\"t\""), None).await.unwrap();
    stranger
        .set("user:stranger", json("3"), None)
        .await
        .unwrap();
    let token: Vec<u8> = raw(&mine, &[b"GET", b"user:1"]).await;
    let () = raw(&mine, &[b"SET", b"user:copied", &token]).await;
    let () = raw(&mine, &[b"SET", b"user:plain", b"hello"]).await;
    let _: i64 = raw(&mine, &[b"HSET", b"user:hash", b"f", b"v"]).await;
    let () = raw(&mine, &[b"SET", b"tenant:plain", b"hello"]).await;
    let foreign: [&[u8]; 5] = [
        b"user:copied",
        b"user:plain",
        b"user:hash",
        b"user:stranger",
        b"tenant:plain",
    ];

    // Names: the tenant's key lives under its prefix and is bound to it.
    assert_eq!(raw::<i64>(&mine, &[b"EXISTS", b"tenant:user:1"]).await, 1);
    assert_eq!(&*tenant.get("user:1").await.unwrap().unwrap(), b"\"t\"");
    assert!(mine.get("tenant:user:1").await.unwrap().is_none());

    assert_eq!(mine.invalidate_pattern("user:*").await.unwrap(), 2);
    assert_eq!(mine.invalidate_pattern("*").await.unwrap(), 0);
    assert_eq!(tenant.invalidate_pattern("*").await.unwrap(), 1);
    for name in foreign {
        assert_eq!(raw::<i64>(&mine, &[b"EXISTS", name]).await, 1, "{name:?}");
    }
    // clear() is the documented exception: everything under the namespace, whoever wrote it.
    tenant.set("user:3", json("3"), None).await.unwrap();
    assert_eq!(tenant.clear().await.unwrap(), 2);
    assert_eq!(raw::<i64>(&mine, &[b"EXISTS", b"tenant:plain"]).await, 0);
    assert_eq!(raw::<i64>(&mine, &[b"DBSIZE"]).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repair_spares_foreign_keys_and_writes_made_after_reconnecting() {
    let mut server = TlsRedis::start("repair-order");
    let mut settings = server.settings_with_password(&server.password);
    // A write Redis does not answer within the socket timeout (or that waits that long behind
    // a repair batch) fails, and the repair deletes its key by design; on a starved CPU the
    // test config's 1 s failed hundreds of them. Long enough that they race the repair instead.
    settings.socket_timeout = 30.0;
    let config = SecurityConfig::new(settings, false).unwrap();
    let cache =
        GenericRedisCache::new(&server.url(), CacheOptions::default(), &config, false).unwrap();
    assert!(cache.connect().await.unwrap());
    server.kill();
    let keys: Vec<String> = (0..1200).map(|i| format!("doc:{i}")).collect();
    let written: Vec<(String, Arc<[u8]>)> = keys.iter().map(|k| (k.clone(), json("1"))).collect();
    cache.set_many(written, None).await.unwrap();
    cache.invalidate_pattern("page:*").await.unwrap();
    server.restart(); // empty: what it held before is planted again below
    let no_l1 = CacheOptions {
        enable_l1_cache: false,
        ..CacheOptions::default()
    };
    let old = GenericRedisCache::new(&server.url(), no_l1, &config, false).unwrap();
    let planted: Vec<(String, Arc<[u8]>)> = keys
        .iter()
        .chain(&["page:1".to_owned()])
        .map(|k| (k.clone(), json("\"old\"")))
        .collect();
    old.set_many(planted, None).await.unwrap();
    let () = raw(&old, &[b"SET", b"page:foreign", b"hello"]).await;
    let _: i64 = raw(&old, &[b"HSET", b"doc:hash", b"f", b"v"]).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cache.ping().await {
        assert!(std::time::Instant::now() < deadline, "no reconnect");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Overwritten at once, racing the repair that this very first write starts.
    let failed_before = cache.stats().l1_only_writes;
    let fresh: Vec<_> = keys
        .iter()
        .map(|k| cache.set(k, json("\"new\""), None))
        .collect();
    for outcome in futures_util::future::join_all(fresh).await {
        outcome.unwrap();
    }
    let failed = usize::try_from(cache.stats().l1_only_writes - failed_before).unwrap();
    while cache.repair_pending() {
        assert!(
            std::time::Instant::now() < deadline,
            "the repair did not finish"
        );
        let _ = cache.exists("doc:0").await; // kicks a repair that was cut short
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(old.get("page:1").await.unwrap().is_none(), "replayed");
    let got = old.get_many(&keys).await.unwrap();
    let missing = got
        .iter()
        .filter(|v| v.as_deref() != Some(b"\"new\""))
        .count();
    // Each key is written once: a missing key beyond the failed writes is one Redis took.
    assert!(
        missing <= failed,
        "writes made after reconnecting were deleted: {missing} missing, {failed} failed"
    );
    assert_eq!(
        raw::<i64>(&old, &[b"EXISTS", b"page:foreign", b"doc:hash"]).await,
        2
    );
}

/// Two caches on their own connections stand in for two processes: what one writes or deletes,
/// the other's L1 stops answering within the 100 ms bound, with and without a namespace; and a
/// cache's own write stays in its own L1 (on one node Redis does not report it back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_follows_writes_made_elsewhere_in_and_out_of_a_namespace() {
    let server = TlsRedis::start("coherence");
    let config = server.config();
    for namespace in ["", "tenant:"] {
        let options = CacheOptions::default().with_namespace(namespace).unwrap();
        let writer =
            GenericRedisCache::new(&server.url(), options.clone(), &config, false).unwrap();
        // A connection of its own: sharing would give both one L1, and this is about writes
        // made over another connection.
        let own = CacheOptions {
            share_connection: false,
            ..options
        };
        let reader = GenericRedisCache::new(&server.url(), own, &config, false).unwrap();
        assert!(writer.connect().await.unwrap() && reader.connect().await.unwrap());
        writer.set("doc", json("1"), None).await.unwrap();
        // L1 answers only under its lease, which a busy machine can let lapse for a moment:
        // wait (bounded) for it instead of assuming it.
        assert!(
            answers_from_l1(&writer, "doc", b"1").await,
            "{namespace:?}: own write kept"
        );
        assert!(
            answers_from_l1(&reader, "doc", b"1").await,
            "{namespace:?}: read into L1"
        );
        for (step, value) in [
            ("set", Some("2")),
            ("delete", None),
            ("set again", Some("3")),
        ] {
            match value {
                Some(value) => writer.set("doc", json(value), None).await.unwrap(),
                None => assert!(writer.delete("doc").await.unwrap()),
            }
            let acknowledged = std::time::Instant::now();
            // Within 100 ms, the reader's L1 holds the new value or nothing.
            let mut seen = reader.get_local("doc").unwrap();
            while seen.as_deref() != value.map(str::as_bytes) && seen.is_some() {
                assert!(
                    acknowledged.elapsed() < std::time::Duration::from_millis(100),
                    "{namespace:?} {step}: L1 still answers {seen:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                seen = reader.get_local("doc").unwrap();
            }
            assert_eq!(
                reader.get("doc").await.unwrap().as_deref(),
                value.map(str::as_bytes),
                "{namespace:?} {step}"
            );
        }
        let stats = reader.coherence().unwrap().stats();
        assert!(stats.invalidations >= 3, "{stats:?}");
        writer.clear().await.unwrap();
    }
}

/// Whether `cache`'s L1 comes to answer `expected` for `key` within 5 s (reads from Redis fill
/// it; the lease may be lapsing under load).
async fn answers_from_l1(cache: &GenericRedisCache, key: &str, expected: &[u8]) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if cache.get_local(key).unwrap().as_deref() == Some(expected) {
            return true;
        }
        let _ = cache.get(key).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_with_the_same_settings_share_one_connection() {
    let server = TlsRedis::start("sharing");
    let config = server.config();
    let build = |options: CacheOptions| {
        GenericRedisCache::new(&server.url(), options, &config, false).unwrap()
    };
    let first = build(CacheOptions::default());
    let second = build(CacheOptions {
        default_ttl: 60, // per-call policy: not part of what is shared
        ..CacheOptions::default()
    });
    assert_eq!(first.sharing(), 2);
    assert!(first.connect().await.unwrap());
    assert!(second.connection().state().connected, "no second handshake");
    first.set("k", json("1"), None).await.unwrap();
    assert!(answers_from_l1(&second, "k", b"1").await, "one L1 for both");

    // Anything that changes what a cache sees of Redis gets a connection of its own.
    let apart = [
        build(CacheOptions::default().with_namespace("other:").unwrap()),
        build(CacheOptions {
            l1_cache_size: 7,
            ..CacheOptions::default()
        }),
        build(CacheOptions {
            share_connection: false,
            ..CacheOptions::default()
        }),
        default_cache(&server),
        GenericRedisCache::new(
            &server.url().replace("/0", "/1"),
            CacheOptions::default(),
            &config,
            false,
        )
        .unwrap(),
    ];
    for cache in &apart {
        assert_eq!(cache.sharing(), 1);
        assert!(!cache.connection().state().connected);
    }
    assert_eq!(first.sharing(), 2);

    // Disconnecting one leaves the other connected, on the same connection.
    let reconnects = first.connection().state().reconnects;
    second.disconnect();
    assert_eq!(first.sharing(), 1);
    assert!(first.connection().state().connected);
    assert_eq!(&*first.get("k").await.unwrap().unwrap(), b"1");
    assert_eq!(first.connection().state().reconnects, reconnects);
    // A cache connecting again after its disconnect holds the connection again.
    assert!(second.connect().await.unwrap());
    assert_eq!(first.sharing(), 2);
    second.disconnect();
    // The last holder's disconnect closes it, as for a cache of its own.
    first.disconnect();
    assert!(!first.connection().state().connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_built_after_the_last_one_was_dropped_finds_the_connection_open() {
    let server = TlsRedis::start("pooled");
    let config = server.config();
    let cache =
        GenericRedisCache::new(&server.url(), CacheOptions::default(), &config, false).unwrap();
    assert!(cache.connect().await.unwrap());
    cache.set("k", json("1"), None).await.unwrap();
    drop(cache);
    // The per-request pattern: a new cache per request, never disconnected.
    for _ in 0..3 {
        let cache =
            GenericRedisCache::new(&server.url(), CacheOptions::default(), &config, false).unwrap();
        assert!(
            cache.connection().state().connected,
            "no handshake per cache"
        );
        assert_eq!(cache.connection().state().reconnects, 0);
        assert_eq!(&*cache.get("k").await.unwrap().unwrap(), b"1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_lock_is_exclusive_and_released_only_by_its_holder() {
    let server = TlsRedis::start("aside-lock");
    let cache = default_cache(&server);
    let first = cache
        .lock_acquire("k", 150)
        .await
        .unwrap()
        .expect("free lock");
    assert!(cache.lock_acquire("k", 5_000).await.unwrap().is_none());
    assert!(!cache.lock_name("k").contains('k') || cache.lock_name("k").len() > 40);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await; // first's lease ends
    let second = cache
        .lock_acquire("k", 5_000)
        .await
        .unwrap()
        .expect("expired lock");
    assert_ne!(first, second);
    assert!(!cache.lock_release("k", &first).await.unwrap()); // not the holder any more
    assert!(cache.lock_acquire("k", 5_000).await.unwrap().is_none());
    assert!(cache.lock_release("k", &second).await.unwrap());
    assert!(cache.lock_acquire("k", 0).await.is_err()); // a lease of nothing is refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_delete_exactly_their_entries() {
    let server = TlsRedis::start("aside-tags");
    let cache = default_cache(&server);
    let tag = |t: &str| vec![t.to_string()];
    cache
        .set_tagged("a", json("1"), Some(60), &tag("t1"))
        .await
        .unwrap();
    cache
        .set_tagged("b", json("2"), Some(60), &["t1".into(), "t2".into()])
        .await
        .unwrap();
    cache
        .set_tagged("c", json("3"), Some(60), &tag("t2"))
        .await
        .unwrap();
    cache.set("d", json("4"), Some(60)).await.unwrap();
    assert_eq!(cache.invalidate_tags(&tag("t1")).await.unwrap(), 2);
    assert!(cache.get("a").await.unwrap().is_none());
    assert!(cache.get("b").await.unwrap().is_none());
    assert!(cache.get("c").await.unwrap().is_some());
    assert!(cache.get("d").await.unwrap().is_some());
    assert_eq!(cache.invalidate_tags(&tag("t1")).await.unwrap(), 0);
    assert!(cache.invalidate_tags(&[String::new()]).await.is_err());
    assert!(cache.tag_name("t1").starts_with("secure_redis:tag:"));
    assert!(!cache.tag_name("customer-acme").contains("acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_keep_entries_apart_and_forgetting_one_shreds_it() {
    use super::{CacheView, Need};
    let server = TlsRedis::start("scopes");
    let config = server.config();
    let cache = Arc::new(
        GenericRedisCache::new(&server.url(), CacheOptions::default(), &config, false).unwrap(),
    );
    assert!(cache.connect().await.unwrap());
    let whole = CacheView::whole(cache.clone());
    let (acme, globex) = (
        whole.scoped("acme").unwrap(),
        whole.scoped("globex").unwrap(),
    );
    assert!(acme.scoped("nested").is_err() && whole.scoped("").is_err());
    // Reads of a scope that was never written do not create it.
    assert!(acme.entries(Need::Read).await.unwrap().is_none());
    let acme_cache = acme.entries(Need::Write).await.unwrap().unwrap();
    let globex_cache = globex.entries(Need::Write).await.unwrap().unwrap();
    acme_cache.set("k", json("1"), None).await.unwrap();
    globex_cache.set("k", json("2"), None).await.unwrap();
    assert!(cache.get("k").await.unwrap().is_none());
    assert_eq!(&*acme_cache.get("k").await.unwrap().unwrap(), b"1");
    // The resolution is shared by a view made later, with no I/O once it is current.
    let again = whole.scoped("acme").unwrap();
    assert!(Arc::ptr_eq(
        &again.entries(Need::Read).await.unwrap().unwrap(),
        &acme_cache
    ));
    // Another backend (its own connection, as another process has) reads the same scope.
    let no_l1 = CacheOptions {
        enable_l1_cache: false,
        share_connection: false,
        ..CacheOptions::default()
    };
    let other = Arc::new(GenericRedisCache::new(&server.url(), no_l1, &config, false).unwrap());
    let theirs = CacheView::whole(other.clone()).scoped("acme").unwrap();
    let theirs_cache = theirs.entries(Need::Read).await.unwrap().unwrap();
    assert_eq!(&*theirs_cache.get("k").await.unwrap().unwrap(), b"1");
    assert_eq!(cache.forget_scope("acme", true).await.unwrap(), Some(1));
    assert!(acme.entries(Need::Read).await.unwrap().is_none());
    assert!(theirs.entries(Need::Read).await.unwrap().is_none());
    assert_eq!(&*globex_cache.get("k").await.unwrap().unwrap(), b"2");
    // Recreated under a new key and location: the old cache's view of it is gone.
    let fresh = acme.entries(Need::Write).await.unwrap().unwrap();
    assert!(!Arc::ptr_eq(&fresh, &acme_cache));
    assert_ne!(fresh.namespace(), acme_cache.namespace());
    assert!(fresh.get("k").await.unwrap().is_none());
}
