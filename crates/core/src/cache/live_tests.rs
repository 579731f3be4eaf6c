//! The core against a real TLS `redis-server` (see `test_support`), without Python.

use super::{CacheOptions, GenericRedisCache};
use crate::error::ErrorKind;
use crate::test_support::TlsRedis;
use std::sync::Arc;

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
async fn killed_server_degrades_to_l1_without_errors() {
    let mut server = TlsRedis::start("killed");
    let cache = GenericRedisCache::new(
        &server.url(),
        CacheOptions::default(),
        &server.config(),
        false,
    )
    .unwrap();
    assert!(cache.connect().await.unwrap());
    cache.set("kept", json("\"v\""), None).await.unwrap();
    server.kill();
    assert_eq!(&*cache.get("kept").await.unwrap().unwrap(), b"\"v\"");
    assert!(cache.get("never").await.unwrap().is_none());
    cache.set("later", json("2"), None).await.unwrap();
    assert_eq!(&*cache.get("later").await.unwrap().unwrap(), b"2");
    assert!(!cache.ping().await);
    assert!(cache.stats().redis_failures >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stop_at_the_limit_and_a_refused_key_spoils_no_other() {
    use super::commands::{fetch_entries, fetch_entry, Stored, FIRST_READ_BYTES};
    let server = TlsRedis::start("fetch");
    let cache = GenericRedisCache::new(
        &server.url(),
        CacheOptions::default(),
        &server.config(),
        false,
    )
    .unwrap();
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
