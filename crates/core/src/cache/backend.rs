//! What caches built with the same settings share in one process: the connection (with its
//! reconnection and request coalescing), the L1 tier with the task that keeps it coherent, and
//! the repair after an outage. Applications that build a cache per request (the starter's
//! factory does) then pay no TLS handshake or AUTH per request, keep one invalidation channel,
//! and read from a warm L1.
//!
//! Two caches share only when everything that shapes their view of Redis is equal: the URL
//! (host, port, database, scheme), the topology, every setting of the `SecurityConfig`
//! (`Settings`, field by field), the password, the encryption keys, the
//! plaintext override, the namespace and the L1 settings. Per-call policy (default TTL,
//! compression) stays with each cache.
//!
//! Lifetime: a cache holds its backend from construction until `disconnect()` or drop. An
//! explicit `disconnect()` by the last holder closes the connection (as for an unshared
//! cache). When the last holder is merely dropped, the backend stays in the registry for
//! `IDLE_GRACE`, so the next request's cache finds it connected; then one reaper thread closes
//! and forgets it, so a process that stopped using a Redis does not keep reconnecting to it.

use super::coherence::Coherence;
use super::l1::L1Cache;
use super::repair::Reconciler;
use super::scope::ScopeRegistry;
use crate::config::{SecurityConfig, TlsVersion};
use crate::connection::{RedisTarget, SecureConnection, TopologySpec};
use crate::crypto::Secret;
use crate::environment::Environment;
use crate::forks;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long a backend nobody holds stays open for the next cache with the same settings.
const IDLE_GRACE: Duration = Duration::from_secs(30);
/// How often the reaper looks for backends idle that long.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// Everything two caches must agree on to share a backend. Secrets are compared, never
/// hashed into anything that outlives the comparison.
pub struct ShareKey {
    /// Host, port, database, scheme and any user-info of the URL.
    target: RedisTarget,
    topology: TopologySpec,
    settings: Settings,
    password: Secret,
    encryption_key: Secret,
    insecure_override: bool,
    namespace: String,
    l1: Option<usize>,
}

impl ShareKey {
    pub fn new(
        target: &RedisTarget,
        topology: &TopologySpec,
        config: &SecurityConfig,
        insecure_override: bool,
        namespace: &str,
        l1: Option<usize>,
    ) -> ShareKey {
        ShareKey {
            target: target.clone(),
            topology: topology.clone(),
            settings: Settings::of(config),
            password: config.redis_auth.clone(),
            encryption_key: config.encryption_key.clone(),
            insecure_override,
            namespace: namespace.to_owned(),
            l1,
        }
    }

    fn same_as(&self, other: &ShareKey) -> bool {
        self.target == other.target
            && self.topology == other.topology
            && self.settings == other.settings
            && self.password == other.password
            && self.encryption_key == other.encryption_key
            && self.insecure_override == other.insecure_override
            && self.namespace == other.namespace
            && self.l1 == other.l1
    }
}

/// The shared part of a cache; see the module documentation.
pub struct Backend {
    pub conn: SecureConnection,
    pub l1: Option<Arc<L1Cache>>,
    pub coherence: Option<Coherence>,
    pub reconciler: Arc<Reconciler>,
    /// The tenant scopes used through this backend (`scope`). Their caches refer to this
    /// backend, so the scopes are forgotten whenever it closes or is let go, or neither would
    /// ever be freed.
    pub scopes: ScopeRegistry,
    /// Whether the registry lists it (`share_connection`); an unlisted one no reaper sees.
    registered: AtomicBool,
    holders: AtomicUsize,
    /// `clock_ms()` when the last holder went away without disconnecting.
    idle_since: AtomicU64,
}

impl Backend {
    pub fn new(
        conn: SecureConnection,
        l1: Option<Arc<L1Cache>>,
        coherence: Option<Coherence>,
        reconciler: Arc<Reconciler>,
    ) -> Backend {
        Backend {
            conn,
            l1,
            coherence,
            reconciler,
            scopes: ScopeRegistry::default(),
            registered: AtomicBool::new(false),
            holders: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    /// How many caches hold this backend now.
    pub fn holders(&self) -> usize {
        self.holders.load(Ordering::Acquire)
    }
}

struct Entry {
    key: ShareKey,
    backend: Arc<Backend>,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Entry>> {
    // A panic while holding the lock leaves a list that is still consistent (pushes and
    // removals are single operations), so a poisoned lock is safe to keep using.
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every setting of a `SecurityConfig` but its secrets (compared on their own), field by
/// field: a setting added to the config must be added here, or two caches differing in it
/// would share a connection.
#[derive(PartialEq)]
struct Settings {
    use_tls: bool,
    tls_ca_path: Option<PathBuf>,
    tls_cert_path: Option<PathBuf>,
    tls_key_path: Option<PathBuf>,
    acl_username: Option<String>,
    min_tls_version: TlsVersion,
    tls_trust_public_roots: bool,
    environment: Environment,
    connection_timeout: Duration,
    socket_timeout: Duration,
    max_retries: u32,
    retry_delay: Duration,
}

impl Settings {
    fn of(config: &SecurityConfig) -> Settings {
        // Destructured so that a new field fails to compile here until it is considered.
        let SecurityConfig {
            redis_auth: _,
            encryption_key: _,
            keyring: _,
            use_tls,
            tls_ca_path,
            tls_cert_path,
            tls_key_path,
            acl_username,
            min_tls_version,
            tls_trust_public_roots,
            environment,
            connection_timeout,
            socket_timeout,
            max_retries,
            retry_delay,
        } = config;
        Settings {
            use_tls: *use_tls,
            tls_ca_path: tls_ca_path.clone(),
            tls_cert_path: tls_cert_path.clone(),
            tls_key_path: tls_key_path.clone(),
            acl_username: acl_username.clone(),
            min_tls_version: *min_tls_version,
            tls_trust_public_roots: *tls_trust_public_roots,
            environment: *environment,
            connection_timeout: *connection_timeout,
            socket_timeout: *socket_timeout,
            max_retries: *max_retries,
            retry_delay: *retry_delay,
        }
    }
}

/// The backend for `key`: the registered one, or a new one from `build` (registered unless
/// `share` is false). `build` runs under the registry lock, so two caches built at once with
/// the same settings cannot open two connections; it does no I/O.
pub fn obtain(
    key: ShareKey,
    share: bool,
    build: impl FnOnce() -> crate::error::Result<Backend>,
) -> crate::error::Result<Hold> {
    if !share {
        return Ok(Hold::new(Arc::new(build()?)));
    }
    let mut entries = registry();
    if let Some(entry) = entries.iter().find(|entry| entry.key.same_as(&key)) {
        return Ok(Hold::new(entry.backend.clone()));
    }
    let backend = Arc::new(build()?);
    backend.registered.store(true, Ordering::Release);
    entries.push(Entry {
        key,
        backend: backend.clone(),
    });
    Ok(Hold::new(backend))
}

/// One cache's hold on its backend.
pub struct Hold {
    backend: Arc<Backend>,
    held: AtomicBool,
    /// False for a tenant scope's cache: its views' caches hold the backend, the scope's does
    /// not (the backend keeps it, so a hold would keep the backend open forever).
    counted: bool,
}

impl Hold {
    fn new(backend: Arc<Backend>) -> Hold {
        backend.holders.fetch_add(1, Ordering::AcqRel);
        Hold {
            backend,
            held: AtomicBool::new(true),
            counted: true,
        }
    }

    /// Access to `backend` without holding it open (see `counted`).
    pub fn uncounted(backend: Arc<Backend>) -> Hold {
        Hold {
            backend,
            held: AtomicBool::new(false),
            counted: false,
        }
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Holds the backend again after `release` (a cache connecting after `disconnect()`).
    pub fn renew(&self) {
        if self.counted && !self.held.swap(true, Ordering::AcqRel) {
            self.backend.holders.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `disconnect()`: lets go, and closes the connection when no other cache holds it. A
    /// closed backend is forgotten too, so the next cache starts afresh (its own counters, its
    /// own first connect) as it would without sharing.
    pub fn release(&self) {
        if !self.counted {
            return;
        }
        if self.held.swap(false, Ordering::AcqRel) {
            self.backend.holders.fetch_sub(1, Ordering::AcqRel);
        }
        // Under the registry lock, where `obtain` adds holders: nobody can take the backend
        // between this check and its removal.
        let mut entries = registry();
        if self.backend.holders() == 0 {
            entries.retain(|entry| !Arc::ptr_eq(&entry.backend, &self.backend));
            drop(entries);
            self.backend.scopes.clear();
            self.backend.conn.disconnect();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.held.swap(false, Ordering::AcqRel)
            && self.backend.holders.fetch_sub(1, Ordering::AcqRel) == 1
        {
            if !self.backend.registered.load(Ordering::Acquire) {
                // Nobody else can take it: it goes with its last holder, as before scopes.
                self.backend.scopes.clear();
                return;
            }
            // The last holder went away without disconnecting: the reaper closes the backend
            // once it has stayed unused for IDLE_GRACE, unless a new cache takes it first.
            self.backend.idle_since.store(clock_ms(), Ordering::Release);
            ensure_reaper();
        }
    }
}

fn clock_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// `forks::generation() + 1` of the process whose reaper thread runs; 0 when none does. A
/// forked child has no threads of its parent, so it starts its own.
static REAPER: AtomicU64 = AtomicU64::new(0);

fn ensure_reaper() {
    let generation = forks::generation() + 1;
    let running = REAPER.load(Ordering::Acquire);
    if running == generation
        || REAPER
            .compare_exchange(running, generation, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("secure_redis-reaper".into())
        .spawn(move || reap(generation));
    if spawned.is_err() {
        // No thread: the next idle backend tries again; until then idle ones stay open.
        REAPER.store(0, Ordering::Release);
    }
}

/// Closes backends unused for IDLE_GRACE; exits when none is idle, after giving up its claim
/// and checking once more, so an idle backend that appeared meanwhile is never left behind.
fn reap(generation: u64) {
    loop {
        std::thread::sleep(REAP_EVERY);
        if sweep_idle() {
            continue;
        }
        REAPER.store(0, Ordering::Release);
        if !sweep_idle()
            || REAPER
                .compare_exchange(0, generation, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
    }
}

/// Forgets and closes the backends idle for IDLE_GRACE; returns whether others are idle.
fn sweep_idle() -> bool {
    let now = clock_ms();
    let grace = IDLE_GRACE.as_millis() as u64;
    let mut idle = false;
    let mut closing = Vec::new();
    registry().retain(|entry| {
        let backend = &entry.backend;
        if backend.holders() != 0 {
            return true;
        }
        if now.saturating_sub(backend.idle_since.load(Ordering::Acquire)) < grace {
            idle = true;
            return true;
        }
        closing.push(backend.clone());
        false
    });
    for backend in closing {
        backend.scopes.clear();
        backend.conn.disconnect();
    }
    idle
}
