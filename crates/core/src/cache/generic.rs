//! The Redis-backed cache: L1 first, then one multiplexed TLS connection; every value sealed
//! by the codec before it leaves the process. Infrastructure trouble never escapes as an
//! error from get/set/delete/exists: reads miss, failed writes are repaired when Redis is back.
//! L1 answers only while it is provably current with Redis (`coherence`).
//!
//! Key names: each public method turns the caller's key into its Redis name once
//! (`{namespace}{key}`, the key itself in the default namespace); L1, the codec's key binding,
//! the repair's dirty set and Redis all use that name. The codec binds each entry to that name
//! and to the database the connection selects (`Binding`). Writes to Redis go through the
//! reconciler's gate (`write_ordered`) so that a repair after an outage never deletes them.

mod aside;
mod scoped;

pub use scoped::{CacheView, Need};

use super::backend::{self, Backend, Hold, ShareKey};
use super::coherence::Coherence;
use super::commands::{self, Stored};
use super::l1::L1Cache;
use super::namespace::Namespace;
use super::options::{resolve_ttl, validate_key, validate_pattern, CacheOptions};
use super::rejections::Rejection;
use super::repair::Reconciler;
use super::stats::{add, add_elapsed, bump, Stats, StatsSnapshot, WarnLimiter};
use super::sweep;
use crate::clock::unix_now;
use crate::codec::{Binding, Codec, DecodeError, Opened, DEFAULT_MAX_VALUE_BYTES};
use crate::config::SecurityConfig;
use crate::connection::{
    group_by_slot, ConnectionState, Failure, RedisTarget, SecureConnection, TopologySpec,
};
use crate::error::{Error, ErrorCode, Result};
use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct GenericRedisCache {
    /// The connection, L1, coherence and repair, shared with caches of the same settings
    /// (`backend`); the three fields below are its parts, cloned for short paths.
    hold: Hold,
    conn: SecureConnection,
    codec: Codec,
    l1: Option<Arc<L1Cache>>,
    options: CacheOptions,
    stats: Stats,
    command_warnings: WarnLimiter,
    reconciler: Arc<Reconciler>,
    connection_timeout: Duration,
    socket_timeout: Duration,
    /// Whether this is the cache of a tenant scope's entries (`scoped.rs`): scopes do not nest.
    in_scope: bool,
}

fn shorten(key: &str) -> String {
    if key.len() <= 80 {
        key.to_owned()
    } else {
        let mut end = 80;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &key[..end])
    }
}

impl GenericRedisCache {
    pub fn new(
        redis_url: &str,
        options: CacheOptions,
        config: &SecurityConfig,
        insecure_override: bool,
    ) -> Result<GenericRedisCache> {
        GenericRedisCache::with_topology(
            redis_url,
            options,
            config,
            insecure_override,
            &TopologySpec::default(),
        )
    }

    /// A cache on a Sentinel-managed primary or a Redis Cluster, as `topology` says; the
    /// URL is then a cluster seed, or names the scheme and database for the primary.
    pub fn with_topology(
        redis_url: &str,
        options: CacheOptions,
        config: &SecurityConfig,
        insecure_override: bool,
        topology: &TopologySpec,
    ) -> Result<GenericRedisCache> {
        let target = RedisTarget::parse(redis_url, insecure_override)?;
        if !target.tls && config.use_tls {
            return Err(Error::configuration(format!(
                "The URL {} is plaintext but the SecurityConfig has use_tls=True. Use a rediss:// URL, or, only on \
                 an isolated network, set use_tls=False together with REDIS_INSECURE_ALLOW_PLAINTEXT=true.",
                target.display()
            ))
            .code(ErrorCode::TlsConfigurationConflict));
        }
        // Bound to the database the connection runs in (0 on a Cluster, whatever the URL).
        let codec_on = |conn: &SecureConnection| {
            Codec::new(
                config.keyring.clone(),
                options.compression_threshold,
                options.compression_level,
                DEFAULT_MAX_VALUE_BYTES,
            )
            .bound_to(Binding::new(options.namespace.as_str(), conn.database()))
        };
        let l1_size = options.enable_l1_cache.then_some(options.l1_cache_size);
        let key = ShareKey::new(
            &target,
            topology,
            config,
            insecure_override,
            options.namespace.as_str(),
            l1_size,
        );
        let hold = backend::obtain(key, options.share_connection, || {
            let conn =
                SecureConnection::with_topology(target, config, topology, insecure_override)?;
            let l1 = l1_size.and_then(L1Cache::new).map(Arc::new);
            let coherence = l1.as_ref().map(|l1| {
                Coherence::new(
                    conn.clone(),
                    l1.clone(),
                    options.namespace.as_str().to_owned(),
                    config.socket_timeout,
                )
            });
            let reconciler = Reconciler::new(
                conn.clone(),
                codec_on(&conn),
                options.namespace.everything(),
                config.socket_timeout,
            );
            Ok(Backend::new(conn, l1, coherence, reconciler))
        })?;
        let shared = hold.backend().clone();
        let codec = codec_on(&shared.conn);
        Ok(GenericRedisCache {
            reconciler: shared.reconciler.clone(),
            conn: shared.conn.clone(),
            l1: shared.l1.clone(),
            hold,
            codec,
            options,
            stats: Stats::default(),
            command_warnings: WarnLimiter::new(Duration::from_secs(10)),
            connection_timeout: config.connection_timeout,
            socket_timeout: config.socket_timeout,
            in_scope: false,
        })
    }

    /// How many caches (this one included) share this cache's connection now.
    pub fn sharing(&self) -> usize {
        self.hold.backend().holders()
    }

    /// Identifies the backend this cache shares: equal for caches of the same settings (the
    /// same server, secrets and namespace), so they may share one in-flight load of a key.
    pub fn backend_id(&self) -> usize {
        Arc::as_ptr(self.hold.backend()) as usize
    }

    pub fn connection(&self) -> &SecureConnection {
        &self.conn
    }

    pub fn l1(&self) -> Option<&L1Cache> {
        self.l1.as_deref()
    }

    /// L1, when it may answer now (it is on and provably current with Redis).
    fn current_l1(&self) -> Option<&L1Cache> {
        let l1 = self.l1.as_deref()?;
        self.coherence()
            .is_some_and(Coherence::l1_is_current)
            .then_some(l1)
    }

    /// Starts keeping L1 coherent, in this process, if that is not under way.
    fn kick_coherence(&self) {
        if let Some(coherence) = self.coherence() {
            coherence.kick();
        }
    }

    pub fn coherence(&self) -> Option<&Coherence> {
        self.hold.backend().coherence.as_ref()
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    pub fn namespace(&self) -> &Namespace {
        &self.options.namespace
    }

    /// The Redis name of a caller's key (see the module doc).
    fn name<'a>(&self, key: &'a str) -> Cow<'a, str> {
        self.options.namespace.name(key)
    }

    /// Whether `name` is one of a tenant scope's names (its entries, tag sets, locks or key
    /// record) inside this whole cache's namespace: the scope's, not this cache's entries.
    fn holds_scope(&self, name: &str) -> bool {
        !self.in_scope
            && self
                .options
                .namespace
                .key_of(name)
                .is_some_and(|key| key.starts_with(super::scope::RESERVED_PREFIX))
    }

    /// The live L1 entries under the caller's keys (L1 holds names).
    pub fn l1_entries(&self) -> Vec<(String, Arc<[u8]>)> {
        let Some(l1) = &self.l1 else {
            return Vec::new();
        };
        l1.live_keys()
            .into_iter()
            .filter_map(|name| {
                if self.holds_scope(&name) {
                    return None;
                }
                let key = self.options.namespace.key_of(&name)?.to_owned();
                let json = l1.get(&name)?;
                Some((key, json))
            })
            .collect()
    }

    /// Runs `write` (commands that store or delete `names` in Redis) in order with the repair
    /// after an outage, and records its outcome there; see `repair.rs`. A write that waited
    /// out `socket_timeout` behind a repair batch is not sent and counts as failed.
    async fn write_ordered<T, Fut>(
        &self,
        names: &[&str],
        write: impl FnOnce() -> Fut,
    ) -> std::result::Result<T, Failure>
    where
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        let Some(permit) = self.reconciler.admit().await else {
            self.reconciler.settle(names.iter().copied(), false);
            return Err(waited_out());
        };
        let outcome = write().await;
        self.reconciler
            .settle(names.iter().copied(), outcome.is_ok());
        drop(permit);
        outcome
    }

    /// Connects, and with L1 on, waits (within `connection_timeout`) for the invalidation
    /// links, so that L1 answers from the first request.
    /// `connect()` when it needs no I/O: the (shared) connection is live and L1 is current
    /// or off, as for every cache after the first one built per request. `None`: call
    /// `connect()`.
    pub fn connect_without_io(&self) -> Option<bool> {
        self.conn.live_id()?;
        match self.coherence() {
            Some(coherence) if !coherence.l1_is_current() => None,
            _ => {
                self.hold.renew();
                Some(true)
            }
        }
    }

    pub async fn connect(&self) -> Result<bool> {
        self.hold.renew();
        let connected = self.conn.connect().await?;
        if let (true, Some(coherence)) = (connected, self.coherence()) {
            coherence.kick();
            coherence.wait_current(self.connection_timeout).await;
        }
        Ok(connected)
    }

    /// Lets go of the shared connection; it closes when no other cache of this process
    /// holds it (see `backend`).
    pub fn disconnect(&self) {
        self.hold.release();
    }

    fn note_failure(&self, failure: &Failure) {
        bump(&self.stats.redis_failures);
        // Outages are reported once by the connection; command errors here, rate-limited.
        if let Failure::Command(message) = failure {
            if self.command_warnings.allow() {
                tracing::warn!(target: "secure_redis.cache", "Redis refused a cache command: {message}");
            }
        }
    }

    /// How long a value read from Redis may live in L1: never past Redis's own expiry, the
    /// expiry sealed in the entry, or `default_ttl`.
    fn l1_ttl(&self, redis_pttl_ms: i64, sealed_expiry: u64) -> Option<Duration> {
        let default = Duration::from_secs(self.options.default_ttl);
        let sealed = Duration::from_secs(sealed_expiry.saturating_sub(unix_now()));
        let redis = match redis_pttl_ms {
            -1 => default,
            ms if ms > 0 => Duration::from_millis(ms as u64),
            _ => return None,
        };
        Some(redis.min(sealed).min(default))
    }

    /// Fills L1 after a Redis read that started at `epoch`, unless a write intervened.
    fn remember(&self, key: &str, opened: &Opened, json: &Arc<[u8]>, pttl: i64, epoch: u64) {
        if let (Some(l1), Some(ttl)) = (&self.l1, self.l1_ttl(pttl, opened.expires_at)) {
            l1.put_if_unchanged(key, json.clone(), ttl, epoch);
        }
    }

    fn epoch(&self, key: &str) -> u64 {
        self.kick_coherence();
        self.l1.as_ref().map_or(0, |l1| l1.write_epoch(key))
    }

    fn note_write(&self, key: &str) {
        self.kick_coherence();
        if let Some(l1) = &self.l1 {
            l1.note_write(key);
        }
    }

    /// The key checked, then the L1 tier alone: no I/O, callable while the caller holds the
    /// GIL. A miss here is answered by `get_remote`.
    pub fn get_local(&self, key: &str) -> Result<Option<Arc<[u8]>>> {
        validate_key(key)?;
        Ok(self.l1_hit(&self.name(key)))
    }

    fn l1_hit(&self, key: &str) -> Option<Arc<[u8]>> {
        let hit = self.current_l1()?.get(key)?;
        bump(&self.stats.gets);
        bump(&self.stats.l1_hits);
        Some(hit)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>> {
        if let Some(hit) = self.get_local(key)? {
            return Ok(Some(hit));
        }
        Ok(self.get_remote(key).await)
    }

    /// Redis only, for a key `get_local` checked and did not find.
    pub async fn get_remote(&self, key: &str) -> Option<Arc<[u8]>> {
        let name = self.name(key);
        let key: &str = &name;
        bump(&self.stats.gets);
        self.reconciler.kick();
        if self.reconciler.is_dirty(key) {
            bump(&self.stats.misses);
            return None;
        }
        let epoch = self.epoch(key);
        let owned = key.to_owned();
        // PTTL only matters for the L1 copy's lifetime; without L1 it is not asked for.
        let with_ttl = self.l1.is_some();
        let max_bytes = self.codec.max_stored_bytes();
        let reply = self
            .conn
            .run(|mut conn| async move {
                commands::fetch_entry(&mut conn, &owned, with_ttl, max_bytes).await
            })
            .await;
        match reply {
            Ok((Stored::Entry(stored), pttl)) => {
                if let Some(opened) = self.open(key, &stored) {
                    bump(&self.stats.redis_hits);
                    let json: Arc<[u8]> = Arc::from(opened.json.as_slice());
                    self.remember(key, &opened, &json, pttl, epoch);
                    Some(json)
                } else {
                    bump(&self.stats.misses);
                    None
                }
            }
            Ok((unread, _)) => {
                self.unread(key, unread);
                bump(&self.stats.misses);
                None
            }
            Err(failure) => {
                self.note_failure(&failure);
                bump(&self.stats.misses);
                None
            }
        }
    }

    fn open(&self, key: &str, stored: &[u8]) -> Option<Opened> {
        let started = Instant::now();
        let opened = self.codec.decode(key, stored, unix_now());
        add_elapsed(&self.stats.decode_nanos, started);
        bump(&self.stats.decodes);
        self.accept(key, opened)
    }

    /// A decoded entry, or None (counted and logged) for one the codec refused.
    fn accept(&self, key: &str, opened: Result<Opened, DecodeError>) -> Option<Opened> {
        match opened {
            Ok(opened) => Some(opened),
            Err(why) => {
                self.reject(key, why.into(), why.describe());
                None
            }
        }
    }

    /// Counts a rejected entry, and warns about it at most once per key and kind a minute
    /// (`rejections`): a poisoned key read in a loop must not flood the logs.
    fn reject(&self, key: &str, kind: Rejection, reason: &str) {
        if self.stats.rejections.note(key, kind) {
            tracing::warn!(
                target: "secure_redis.tamper",
                "Cache entry {:?} rejected and treated as a miss: {reason}",
                shorten(key)
            );
        }
    }

    /// What a read that returned no entry to decode means: nothing, a value too long to be
    /// ours (left unread), or a key Redis would not read as a string.
    fn unread(&self, key: &str, stored: Stored) {
        match stored {
            Stored::Entry(_) | Stored::Absent => {}
            Stored::Oversized(length) => {
                let reason = format!(
                    "{length} bytes stored, longer than any entry the cache writes ({} at most; \
                     the value cap is {} bytes of JSON); it was not read",
                    self.codec.max_stored_bytes(),
                    self.codec.max_value_bytes()
                );
                self.reject(key, Rejection::Oversized, &reason);
            }
            Stored::Refused(message) => self.note_failure(&Failure::Command(message)),
        }
    }

    /// For the bindings, which parse the JSON: counts an opened entry whose JSON does not
    /// parse (only a holder of the key can have written it) and returns the warning to log
    /// now, if one is due (once per key a minute, as for every rejected entry).
    pub fn reject_malformed_json(&self, key: &str) -> Option<String> {
        // Not kept in L1 to be refused again on every read.
        if let Some(l1) = &self.l1 {
            l1.invalidate(key);
        }
        self.stats
            .rejections
            .note(key, Rejection::MalformedJson)
            .then(|| {
                format!(
                    "Cache entry {:?} holds malformed JSON and is treated as a miss",
                    shorten(key)
                )
            })
    }

    fn seal(&self, key: &str, json: &[u8], ttl: u64) -> Result<Vec<u8>> {
        let started = Instant::now();
        let (token, report) = self.codec.encode(key, json, ttl)?;
        add_elapsed(&self.stats.encode_nanos, started);
        bump(&self.stats.encodes);
        add(&self.stats.plaintext_bytes, report.json_bytes as u64);
        add(&self.stats.stored_bytes, report.token_bytes as u64);
        if report.compressed {
            bump(&self.stats.compressed_writes);
        }
        Ok(token)
    }

    /// Stores `json` (the value's JSON text). Errors only for invalid input.
    pub async fn set(&self, key: &str, json: Arc<[u8]>, ttl: Option<i64>) -> Result<()> {
        validate_key(key)?;
        let name = self.name(key);
        let key: &str = &name;
        let ttl = resolve_ttl(ttl, self.options.default_ttl)?;
        let token = self.seal(key, &json, ttl)?;
        bump(&self.stats.sets);
        let owned = key.to_owned();
        self.reconciler.kick();
        self.note_write(key);
        let written = self
            .write_ordered(&[key], || {
                self.conn.run(|mut conn| async move {
                    commands::store(&mut conn, &owned, &token, ttl).await
                })
            })
            .await;
        self.note_write(key);
        if let Err(failure) = &written {
            self.note_failure(failure);
            bump(&self.stats.l1_only_writes);
        }
        self.keep_written(key, json, ttl, written.is_ok());
        Ok(())
    }

    /// After a write of `key`: L1 keeps the value when Redis took it. When Redis did not, the
    /// old copy goes instead: Redis (and so every other process) may hold something else, and
    /// L1 may only ever answer what Redis holds.
    fn keep_written(&self, key: &str, json: Arc<[u8]>, ttl: u64, stored: bool) {
        if let Some(l1) = &self.l1 {
            if stored {
                l1.put(
                    key,
                    json,
                    Duration::from_secs(ttl.min(self.options.default_ttl)),
                );
            } else {
                l1.invalidate(key);
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let name = self.name(key);
        let key: &str = &name;
        bump(&self.stats.deletes);
        // Epoch bumps on both sides of the Redis write, and the L1 eviction after it: a read
        // racing this delete can then neither keep nor restore the old value.
        self.reconciler.kick();
        self.note_write(key);
        let owned = key.to_owned();
        let removed = self
            .write_ordered(&[key], || {
                self.conn
                    .run(|mut conn| async move { commands::remove(&mut conn, &owned).await })
            })
            .await;
        self.note_write(key);
        let in_l1 = self.l1.as_ref().is_some_and(|l1| l1.remove(key));
        let in_redis = match removed {
            Ok(n) => n > 0,
            Err(failure) => {
                self.note_failure(&failure);
                false
            }
        };
        Ok(in_l1 || in_redis)
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let name = self.name(key);
        let key: &str = &name;
        self.kick_coherence();
        if self.current_l1().is_some_and(|l1| l1.contains(key)) {
            return Ok(true);
        }
        self.reconciler.kick();
        if self.reconciler.is_dirty(key) {
            return Ok(false);
        }
        let owned = key.to_owned();
        match self
            .conn
            .run(|mut conn| async move { commands::exists(&mut conn, &owned).await })
            .await
        {
            Ok(found) => Ok(found),
            Err(failure) => {
                self.note_failure(&failure);
                Ok(false)
            }
        }
    }

    /// Remaining lifetime in whole seconds (rounded up); `None` for a missing key or one
    /// without expiry.
    pub async fn get_ttl(&self, key: &str) -> Result<Option<u64>> {
        validate_key(key)?;
        let name = self.name(key);
        let key: &str = &name;
        self.reconciler.kick();
        if self.reconciler.is_dirty(key) {
            let in_l1 = self.current_l1().and_then(|l1| l1.ttl(key));
            return Ok(in_l1.map(|d| d.as_millis().div_ceil(1000) as u64));
        }
        let owned = key.to_owned();
        let from_redis = self
            .conn
            .run(|mut conn| async move { commands::pttl(&mut conn, &owned).await })
            .await;
        let remaining = match from_redis {
            Ok(ms) if ms > 0 => Some(Duration::from_millis(ms as u64)),
            Ok(_) => None,
            Err(failure) => {
                self.note_failure(&failure);
                self.current_l1().and_then(|l1| l1.ttl(key))
            }
        };
        Ok(remaining.map(|d| d.as_millis().div_ceil(1000) as u64))
    }

    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Arc<[u8]>>>> {
        for key in keys {
            validate_key(key)?;
        }
        // Below here `keys` are Redis names (see the module doc).
        let redis_names: Vec<Cow<'_, str>> = keys.iter().map(|key| self.name(key)).collect();
        let keys = &redis_names;
        let mut results: Vec<Option<Arc<[u8]>>> = keys.iter().map(|k| self.l1_hit(k)).collect();
        self.reconciler.kick();
        let (wanted, dirty): (Vec<usize>, Vec<usize>) = (0..keys.len())
            .filter(|&i| results[i].is_none())
            .partition(|&i| !self.reconciler.is_dirty(&keys[i]));
        add(&self.stats.gets, dirty.len() as u64);
        add(&self.stats.misses, dirty.len() as u64);
        if wanted.is_empty() {
            return Ok(results);
        }
        add(&self.stats.gets, wanted.len() as u64);
        let epochs: Vec<u64> = wanted.iter().map(|&i| self.epoch(&keys[i])).collect();
        let names: Vec<&str> = wanted.iter().map(|&i| keys[i].as_ref()).collect();
        let with_ttl = self.l1.is_some();
        let max_bytes = self.codec.max_stored_bytes();
        // One pipeline per hash slot on a cluster (a pipeline may not cross slots), one in all
        // on a single node; slots are fetched concurrently.
        let groups = group_by_slot(&names, self.conn.topology().is_cluster());
        let replies = futures_util::future::join_all(groups.iter().map(|group| {
            let group_names: Vec<String> = group.iter().map(|&g| names[g].to_owned()).collect();
            self.conn.run(move |mut conn| async move {
                commands::fetch_entries(&mut conn, &group_names, with_ttl, max_bytes).await
            })
        }))
        .await;
        // Every group's stored entries, by position in `wanted`; failed groups are misses.
        let mut fetched: Vec<(usize, Vec<u8>, i64)> = Vec::with_capacity(names.len());
        for (group, reply) in groups.iter().zip(replies) {
            match reply {
                Ok(pairs) => {
                    for (&g, (stored, pttl)) in group.iter().zip(pairs) {
                        match stored {
                            Stored::Entry(stored) => fetched.push((g, stored, pttl)),
                            unread => {
                                self.unread(&keys[wanted[g]], unread);
                                bump(&self.stats.misses);
                            }
                        }
                    }
                }
                Err(failure) => {
                    self.note_failure(&failure);
                    add(&self.stats.misses, group.len() as u64);
                }
            }
        }
        // Decoded as one batch, which a large batch spreads over several threads.
        let started = Instant::now();
        let batch: Vec<(&str, &[u8])> = fetched
            .iter()
            .map(|(g, stored, _)| (names[*g], stored.as_slice()))
            .collect();
        let decoded = self.codec.decode_many(&batch, unix_now());
        add_elapsed(&self.stats.decode_nanos, started);
        add(&self.stats.decodes, batch.len() as u64);
        drop(batch);
        for ((g, _, pttl), opened) in fetched.iter().zip(decoded) {
            let index = wanted[*g];
            let key = &keys[index];
            match self.accept(key, opened) {
                Some(opened) => {
                    bump(&self.stats.redis_hits);
                    let json: Arc<[u8]> = Arc::from(opened.json.as_slice());
                    self.remember(key, &opened, &json, *pttl, epochs[*g]);
                    results[index] = Some(json);
                }
                None => bump(&self.stats.misses),
            }
        }
        Ok(results)
    }

    pub async fn set_many(&self, items: Vec<(String, Arc<[u8]>)>, ttl: Option<i64>) -> Result<()> {
        let ttl = resolve_ttl(ttl, self.options.default_ttl)?;
        for (key, _) in &items {
            validate_key(key)?;
        }
        // Below here the keys of `items` are Redis names (see the module doc).
        let items: Vec<(String, Arc<[u8]>)> = if self.options.namespace.is_empty() {
            items
        } else {
            items
                .into_iter()
                .map(|(key, json)| (self.name(&key).into_owned(), json))
                .collect()
        };
        let mut sealed = Vec::with_capacity(items.len());
        for (key, json) in &items {
            sealed.push((key.clone(), self.seal(key, json, ttl)?));
        }
        if items.is_empty() {
            return Ok(());
        }
        self.reconciler.kick();
        add(&self.stats.sets, items.len() as u64);
        for (key, _) in &items {
            self.note_write(key);
        }
        let groups = group_by_slot(&sealed_keys(&sealed), self.conn.topology().is_cluster());
        let mut sealed: Vec<Option<(String, Vec<u8>)>> = sealed.into_iter().map(Some).collect();
        let batches: Vec<Vec<(String, Vec<u8>)>> = groups
            .iter()
            .map(|group| group.iter().filter_map(|&i| sealed[i].take()).collect())
            .collect();
        let group_names =
            |group: &[usize]| -> Vec<&str> { group.iter().map(|&i| items[i].0.as_str()).collect() };
        // As `write_ordered`, with one outcome per slot group.
        let written: Vec<std::result::Result<(), Failure>> =
            if let Some(permit) = self.reconciler.admit().await {
                let written = futures_util::future::join_all(batches.into_iter().map(|batch| {
                    self.conn.run(move |mut conn| async move {
                        commands::store_many(&mut conn, &batch, ttl).await
                    })
                }))
                .await;
                for (group, outcome) in groups.iter().zip(&written) {
                    self.reconciler.settle(group_names(group), outcome.is_ok());
                }
                drop(permit);
                written
            } else {
                for group in &groups {
                    self.reconciler.settle(group_names(group), false);
                }
                groups.iter().map(|_| Err(waited_out())).collect()
            };
        for (group, outcome) in groups.iter().zip(&written) {
            if let Err(failure) = outcome {
                self.note_failure(failure);
                add(&self.stats.l1_only_writes, group.len() as u64);
            }
        }
        let mut items: Vec<Option<(String, Arc<[u8]>)>> = items.into_iter().map(Some).collect();
        for (group, outcome) in groups.iter().zip(&written) {
            for &i in group {
                if let Some((key, json)) = items[i].take() {
                    self.note_write(&key);
                    self.keep_written(&key, json, ttl, outcome.is_ok());
                }
            }
        }
        Ok(())
    }

    /// Deletes this cache's entries whose keys match a Redis glob, on the server (SCAN in
    /// batches, never KEYS) and in L1; returns how many distinct keys were removed. The glob
    /// applies to the caller's keys: only names inside the namespace are scanned, and on the
    /// server only keys holding a token this cache's keyring opens, bound to that very name,
    /// are deleted (`sweep`), so another application's keys matching the glob survive. When
    /// Redis cannot be reached the invalidation is remembered, matching keys read as misses,
    /// and it is replayed on the server, with the same proof, as soon as Redis is back.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<usize> {
        validate_pattern(pattern)?;
        let scoped = self.options.namespace.pattern(pattern);
        self.invalidate(&scoped, pattern, false).await
    }

    /// Removes every key under the namespace from Redis, whoever wrote it, and empties L1:
    /// in the default namespace, every key of the cache's Redis database (SCAN + UNLINK, so
    /// the application's ACL user needs no FLUSHDB). When Redis cannot be reached, the clear
    /// is replayed when it is back like a missed `invalidate_pattern("*")`: an outage path
    /// deletes only entries proven ours.
    pub async fn clear(&self) -> Result<usize> {
        let everything = self.options.namespace.everything();
        let removed = self.invalidate(&everything, "*", true).await?;
        if let Some(l1) = &self.l1 {
            l1.clear(); // expired leftovers too
        }
        Ok(removed)
    }

    /// `scoped` (a SCAN pattern inside the namespace) removed from Redis (ours only, or
    /// everything with `unchecked`) and L1; `shown` is the caller's glob, for the log.
    async fn invalidate(&self, scoped: &str, shown: &str, unchecked: bool) -> Result<usize> {
        self.reconciler.kick();
        if let Some(l1) = &self.l1 {
            l1.note_write_all();
        }
        let on_server = if unchecked {
            sweep::unlink_all_matching(&self.conn, scoped).await
        } else {
            sweep::unlink_owned_matching(&self.conn, &self.codec, scoped).await
        };
        let mut removed: HashSet<Vec<u8>> = HashSet::new();
        match on_server {
            Ok(names) => removed.extend(names),
            Err(failure) => {
                self.note_failure(&failure);
                self.reconciler.mark_pattern(scoped);
                tracing::warn!(
                    target: "secure_redis.cache",
                    "Invalidation of {shown:?} could not reach Redis ({}); matching keys read as misses \
                     until it is replayed there when Redis is back",
                    failure.message()
                );
            }
        }
        if let Some(l1) = &self.l1 {
            l1.note_write_all();
            // A glob of the whole cache also evicts its scopes' copies from the shared L1; they
            // are not this cache's entries, so they are not counted.
            removed.extend(
                l1.remove_matching(scoped)
                    .into_iter()
                    .filter(|name| !self.holds_scope(name))
                    .map(String::into_bytes),
            );
        }
        Ok(removed.len())
    }

    pub async fn ping(&self) -> bool {
        match self
            .conn
            .run(|mut conn| async move { commands::ping(&mut conn).await })
            .await
        {
            Ok(reply) => reply == "PONG",
            Err(failure) => {
                self.note_failure(&failure);
                false
            }
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    pub fn connection_state(&self) -> ConnectionState {
        self.conn.state()
    }

    /// Whether writes or invalidations missed during an outage still wait to be repaired in
    /// Redis (the repair starts with the next call once Redis is back).
    pub fn repair_pending(&self) -> bool {
        self.reconciler.pending()
    }
}

/// The failure of a write that waited out `socket_timeout` behind a repair batch.
fn waited_out() -> Failure {
    Failure::Unavailable(
        "the write waited too long for the repair of Redis after an outage".to_owned(),
    )
}

fn sealed_keys(sealed: &[(String, Vec<u8>)]) -> Vec<&str> {
    sealed.iter().map(|(key, _)| key.as_str()).collect()
}
