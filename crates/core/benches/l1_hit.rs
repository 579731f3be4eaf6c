//! What an L1 hit costs in the core, with cross-process coherence on: the key check, the
//! lease check (is L1 provably current with Redis?) and the LRU lookup, at 2 KB of JSON.
//!
//!     cargo bench --bench l1_hit
//!
//! `coherent_hit` is `GenericRedisCache::get_local` on a cache whose invalidation links are up
//! (a real redis-server on loopback, started here); `lru_only` is the bare `L1Cache::get` the
//! tier had before coherence, so the difference is what coherence adds. The Python-level hit
//! adds the JSON -> Python object conversion on top (see benches/bench.py).
//!
//! The server is plaintext on 127.0.0.1 (`REDIS_INSECURE_ALLOW_PLAINTEXT` in effect for this
//! process only): a hit does no I/O, so TLS would change nothing measured here. Its password
//! reaches it through stdin, never the command line. Skipped (with a message) when
//! `redis-server` is not installed.

use divan::Bencher;
use secure_redis_core::cache::l1::L1Cache;
use secure_redis_core::cache::{CacheOptions, GenericRedisCache};
use secure_redis_core::config::{SecurityConfig, SecuritySettings};
use secure_redis_core::crypto::{generate_encryption_key, Secret};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn main() {
    live(); // the server and the lease up before any timing starts
    divan::main();
    // Statics are never dropped: the server is stopped here, or it would outlive the bench.
    if let Some(Some(live)) = LIVE.get() {
        live.server.stop();
    }
}

static LIVE: OnceLock<Option<Live>> = OnceLock::new();

const KEY: &str = "bench:hot";

struct Live {
    cache: GenericRedisCache,
    _runtime: tokio::runtime::Runtime,
    server: Server,
}

struct Server(Mutex<Child>);

impl Server {
    fn stop(&self) {
        let mut child = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn json_of(size: usize) -> Arc<[u8]> {
    let mut text = String::from("{\"answer\":\"");
    while text.len() < size - 2 {
        text.push_str("the model answered that latency depends on encryption ");
    }
    text.truncate(size - 2);
    text.push_str("\"}");
    Arc::from(text.into_bytes())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn start_server(password: &str) -> Option<(Server, u16)> {
    let port = free_port();
    let mut child = Command::new("redis-server")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let config =
        format!("port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave \"\"\nappendonly no\n");
    child.stdin.take()?.write_all(config.as_bytes()).ok()?;
    Some((Server(Mutex::new(child)), port))
}

/// A connected cache with a 2 KB value in L1 and coherence established; None without
/// `redis-server`.
fn live() -> Option<&'static Live> {
    LIVE.get_or_init(|| {
        let password = format!("bench-{}", generate_encryption_key());
        let Some((server, port)) = start_server(&password) else {
            eprintln!("l1_hit: redis-server is not installed; skipped");
            return None;
        };
        let config = SecurityConfig::new(
            SecuritySettings {
                redis_auth: Some(Secret::new(&password)),
                encryption_key: Some(Secret::new(generate_encryption_key())),
                use_tls: false,
                ..SecuritySettings::default()
            },
            true,
        )
        .expect("a valid config");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let cache = GenericRedisCache::new(
            &format!("redis://127.0.0.1:{port}/0"),
            CacheOptions::default(),
            &config,
            true,
        )
        .expect("a cache");
        let deadline = Instant::now() + Duration::from_secs(10);
        runtime.block_on(async {
            while !matches!(cache.connect().await, Ok(true)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cache.set(KEY, json_of(2048), None).await.expect("set");
        });
        // The lease is renewed every 20 ms by the runtime's task; warm until L1 answers.
        while cache.get_local(KEY).ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(Live {
            cache,
            _runtime: runtime,
            server,
        })
    })
    .as_ref()
}

#[divan::bench(sample_count = 100, sample_size = 1000)]
fn coherent_hit(bencher: Bencher) {
    let Some(live) = live() else { return };
    let mut misses = 0u64;
    bencher.bench_local(|| {
        if live
            .cache
            .get_local(divan::black_box(KEY))
            .ok()
            .flatten()
            .is_none()
        {
            misses += 1; // a lease that lapsed under load: counted, not hidden
        }
    });
    if misses > 0 {
        eprintln!("coherent_hit: {misses} lookups found the lease lapsed (the machine was busy)");
    }
}

#[divan::bench(sample_count = 100, sample_size = 1000)]
fn lru_only(bencher: Bencher) {
    let l1 = L1Cache::new(1000).expect("a tier");
    l1.put(KEY, json_of(2048), Duration::from_secs(3600));
    bencher.bench_local(|| l1.get(divan::black_box(KEY)));
}
