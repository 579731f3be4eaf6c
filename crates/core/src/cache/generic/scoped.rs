//! Tenant scopes of the Redis cache at work: resolving a scope's key record into the cache of
//! its entries, keeping that resolution current across processes, and forgetting a scope. The
//! record format and the slots are `cache::scope`'s.
//!
//! Each scope resolves to a `GenericRedisCache` of its own (its "scope cache"): the parent's
//! connection, L1 and invalidation channel, its own namespace (the scope's location), a codec
//! under the scope's data key bound to that location, and its own outage repair, so `clear`,
//! `invalidate_pattern`, `invalidate_tags` and the repair of a scope stay inside it.
//!
//! Staying current: the resolved record is kept in L1 under its Redis name. L1 answers only
//! under the coherence lease, and a record another process deletes (`forget_scope`) or
//! replaces is evicted from every process's L1 within it, so while L1 holds the very record a
//! scope was resolved from, the resolution is current; otherwise the record is read again (one
//! GET per operation when L1 is off). A process that forgets a scope drops its resolution and
//! its entries from L1 at once.
//!
//! Redis trouble: an operation on a scope never resolved in this process misses (reads) or is
//! skipped with a warning (writes: nothing can be sealed without the scope's key); a scope
//! already resolved keeps serving as any cache does during an outage. A record that does not
//! open (tampered, or sealed with a key this process lacks) reads as a miss and refuses writes.

use super::{commands, group_by_slot, Failure, GenericRedisCache, Result};
use crate::cache::backend::Hold;
use crate::cache::namespace::{escape_glob, Namespace};
use crate::cache::options::CacheOptions;
use crate::cache::repair::Reconciler;
use crate::cache::scope::{
    record_binding, record_digests, validate_scope_name, RecordKeys, Resolved, ScopeSlot, SlotKey,
    ENTRY_PREFIX, MAX_RECORD_BYTES, RECORD_PREFIX,
};
use crate::cache::stats::{Stats, WarnLimiter};
use crate::cache::sweep;
use crate::codec::{Binding, Codec};
use crate::error::{Error, ErrorCode};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// What an operation needs of its scope: reading never creates one, writing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// How long L1 keeps a resolved record without it being used (it is evicted sooner by any
/// change in Redis; see the module doc).
const RECORD_L1_TTL: Duration = Duration::from_secs(300);

/// What the bindings hold: the whole cache, or one tenant scope of it.
#[derive(Clone)]
pub struct CacheView {
    cache: Arc<GenericRedisCache>,
    scope: Option<Arc<ScopeSlot>>,
}

impl CacheView {
    pub fn whole(cache: Arc<GenericRedisCache>) -> CacheView {
        CacheView { cache, scope: None }
    }

    /// The view of scope `name` of this view's cache; refused for a scoped view.
    pub fn scoped(&self, name: &str) -> Result<CacheView> {
        if self.scope.is_some() {
            return Err(nested());
        }
        Ok(CacheView {
            cache: self.cache.clone(),
            scope: Some(self.cache.scope_slot(name)?),
        })
    }

    pub fn is_scoped(&self) -> bool {
        self.scope.is_some()
    }

    /// Tells scopes apart (the scope's record digest; None for the whole cache): what the
    /// Python layer keys its single-flight loads by, so no load is shared across scopes.
    pub fn scope_id(&self) -> Option<&str> {
        self.scope.as_ref().map(|slot| slot.digests[0].as_str())
    }

    /// The cache (whole or scoped) the connection-level calls go to.
    pub fn parent(&self) -> &Arc<GenericRedisCache> {
        &self.cache
    }

    /// The cache of this view's entries when known without I/O (always, unscoped).
    pub fn now(&self) -> Option<Arc<GenericRedisCache>> {
        match &self.scope {
            None => Some(self.cache.clone()),
            Some(slot) => self.cache.scope_now(slot),
        }
    }

    /// `work` on the cache of this view's entries, or `absent` when there is none (`entries`).
    pub async fn run<T, Fut>(
        &self,
        need: Need,
        absent: T,
        work: impl FnOnce(Arc<GenericRedisCache>) -> Fut,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        match self.entries(need).await? {
            Some(cache) => work(cache).await,
            None => Ok(absent),
        }
    }

    /// The digest `@cached` names a call by: in a scope, salted with the scope's record
    /// digest, so one call in two scopes leaves no equal names in Redis.
    pub fn call_digest(&self, text: &str) -> String {
        match &self.scope {
            None => self.cache.call_digest(text),
            Some(slot) => self
                .cache
                .call_digest(&format!("{}\0{text}", slot.digests[0])),
        }
    }

    /// `GenericRedisCache::forget_scope`, refused on a scoped view.
    pub async fn forget_scope(&self, name: &str, wait: bool) -> Result<Option<usize>> {
        if self.scope.is_some() {
            return Err(forget_on_a_scope());
        }
        self.cache.forget_scope(name, wait).await
    }

    /// The error of an operation that needs the scope's key while Redis cannot give it.
    pub fn unreachable_scope(&self) -> Error {
        Error::infrastructure(
            "The tenant scope's key record cannot be read or created now: Redis is unreachable.",
        )
        .code(ErrorCode::ScopeUnavailable)
    }

    /// The cache of this view's entries: None for a scope that does not exist (a read) or
    /// cannot be made now (a write while Redis is unreachable).
    pub async fn entries(&self, need: Need) -> Result<Option<Arc<GenericRedisCache>>> {
        match &self.scope {
            None => Ok(Some(self.cache.clone())),
            Some(slot) => self.cache.scope_for(slot, need).await,
        }
    }
}

/// The refusal of `scope()` on a scope's view or cache: scopes do not nest.
fn nested() -> Error {
    Error::validation("Scopes do not nest: call scope() on the cache this view came from.")
        .code(ErrorCode::InvalidScope)
}

/// The refusal of `forget_scope()` on a scope's view or cache.
fn forget_on_a_scope() -> Error {
    Error::validation(
        "forget_scope() belongs to the cache a scope came from, not to a scoped view.",
    )
    .code(ErrorCode::InvalidScope)
}

fn unavailable(failure: &Failure, what: &str) -> Error {
    match failure {
        Failure::Rejected(error) => error.clone(),
        other => Error::infrastructure(format!("Redis could not {what}: {}", other.message()))
            .with("operation", what)
            .code(ErrorCode::ScopeUnavailable),
    }
}

impl GenericRedisCache {
    fn record_name(&self, digest: &str) -> String {
        self.options
            .namespace
            .name(&format!("{RECORD_PREFIX}{digest}"))
            .into_owned()
    }

    /// The namespace of a scope's entries.
    fn scope_namespace(&self, keys: &RecordKeys) -> Namespace {
        self.options
            .namespace
            .within(&format!("{ENTRY_PREFIX}{}:", keys.location_hex()))
    }

    /// The slot of scope `name` for this cache's settings (shared by the caches of this
    /// backend); no I/O.
    pub fn scope_slot(&self, name: &str) -> Result<Arc<ScopeSlot>> {
        validate_scope_name(name)?;
        if self.in_scope {
            return Err(nested());
        }
        let digests = record_digests(self.codec.keyring(), name);
        let key = SlotKey {
            digest: digests[0].clone(),
            default_ttl: self.options.default_ttl,
            compression_threshold: self.options.compression_threshold,
            compression_level: self.options.compression_level,
        };
        Ok(self
            .hold
            .backend()
            .scopes
            .slot(key, || self.unlisted_slot(name, digests)))
    }

    /// A slot of scope `name` (whose record digests are `digests`) that no registry lists.
    fn unlisted_slot(&self, name: &str, digests: Vec<String>) -> ScopeSlot {
        let names = digests.iter().map(|d| self.record_name(d)).collect();
        let binding = record_binding(self.conn.database(), self.options.namespace.as_str(), name);
        ScopeSlot::new(digests, names, binding)
    }

    /// The scope's cache if its resolution is provably current (see the module doc).
    pub fn scope_now(&self, slot: &ScopeSlot) -> Option<Arc<GenericRedisCache>> {
        let state = slot.state();
        let resolved = state.as_ref()?;
        let held = self.current_l1()?.get(&slot.names[0])?;
        (Arc::ptr_eq(&held, &resolved.record) || *held == *resolved.record)
            .then(|| resolved.cache.clone())
    }

    /// The scope's cache, reading (and for a write, creating or adopting) its record.
    pub async fn scope_for(
        &self,
        slot: &ScopeSlot,
        need: Need,
    ) -> Result<Option<Arc<GenericRedisCache>>> {
        if let Some(cache) = self.scope_now(slot) {
            return Ok(Some(cache));
        }
        let primary = &slot.names[0];
        let epoch = self.epoch(primary);
        let found = match self.read_record(primary).await {
            Ok(found) => found,
            Err(failure) => return Ok(self.resolved_in_outage(slot, need, &failure)),
        };
        let resolved = match found {
            Some(token) => match RecordKeys::open(self.codec.keyring(), &slot.binding, &token) {
                Some(keys) => Some((token, keys)),
                None => return self.refuse_record(need),
            },
            None => match self.adopt_or_create(slot, need).await {
                Ok(resolved) => resolved,
                Err(failure) => return Ok(self.resolved_in_outage(slot, need, &failure)),
            },
        };
        if let Some((token, keys)) = resolved {
            return self.settle(slot, token, &keys, epoch).map(Some);
        }
        self.drop_resolution(slot);
        Ok(None)
    }

    /// What serves a scope while its record cannot be read: the last resolution, if any.
    fn resolved_in_outage(
        &self,
        slot: &ScopeSlot,
        need: Need,
        failure: &Failure,
    ) -> Option<Arc<GenericRedisCache>> {
        self.note_failure(failure);
        let last = slot.state().as_ref().map(|r| r.cache.clone());
        if last.is_none() && need == Need::Write && self.command_warnings.allow() {
            tracing::warn!(
                target: "secure_redis.cache",
                "A write to a tenant scope was skipped: its key record could not be read ({})",
                failure.message()
            );
        }
        last
    }

    fn refuse_record(&self, need: Need) -> Result<Option<Arc<GenericRedisCache>>> {
        let message = "The key record of a tenant scope in Redis is not one of ours (tampered, or sealed with an \
                       encryption key this process lacks); its entries read as misses. If no process holds its key, \
                       forget_scope() removes it.";
        if self.command_warnings.allow() {
            tracing::warn!(target: "secure_redis.tamper", "{message}");
        }
        match need {
            Need::Read => Ok(None),
            Need::Write => Err(Error::infrastructure(message).code(ErrorCode::ScopeUnavailable)),
        }
    }

    /// The record under `name`: None when there is none. A value too long to be a record, or
    /// one Redis will not read as a string, comes back empty: it opens as nothing of ours.
    async fn read_record(&self, name: &str) -> std::result::Result<Option<Arc<[u8]>>, Failure> {
        let owned = name.to_owned();
        let (stored, _) = self
            .conn
            .run(|mut conn| async move {
                commands::fetch_entry(&mut conn, &owned, false, MAX_RECORD_BYTES).await
            })
            .await?;
        Ok(match stored {
            commands::Stored::Absent => None,
            commands::Stored::Entry(token) => Some(Arc::from(token)),
            commands::Stored::Oversized(_) | commands::Stored::Refused(_) => {
                Some(Arc::from(&[][..]))
            }
        })
    }

    /// No record under the primary digest: the record under an older key's digest (after a
    /// rotation) copied under the primary one, or for a write a new scope.
    async fn adopt_or_create(
        &self,
        slot: &ScopeSlot,
        need: Need,
    ) -> std::result::Result<Option<(Arc<[u8]>, RecordKeys)>, Failure> {
        let master = self.codec.keyring();
        for (digest, name) in slot.digests.iter().zip(&slot.names).skip(1) {
            if let Some(token) = self.read_record(name).await? {
                if let Some(keys) = RecordKeys::open(master, &slot.binding, &token) {
                    return self.publish(slot, keys.with_alias(digest)).await.map(Some);
                }
            }
        }
        if need == Need::Read {
            return Ok(None);
        }
        let keys = RecordKeys::generate().map_err(Failure::Rejected)?;
        self.publish(slot, keys).await.map(Some)
    }

    /// Writes `keys` as the scope's record under the primary digest unless a record is there
    /// already (another process made or adopted it first: then that one is the scope).
    async fn publish(
        &self,
        slot: &ScopeSlot,
        keys: RecordKeys,
    ) -> std::result::Result<(Arc<[u8]>, RecordKeys), Failure> {
        let token: Arc<[u8]> = Arc::from(keys.seal(self.codec.keyring(), &slot.binding));
        let name = slot.names[0].clone();
        let offered = token.clone();
        let created = self
            .conn
            .run(
                |mut conn| async move { commands::record_create(&mut conn, &name, &offered).await },
            )
            .await?;
        if created {
            return Ok((token, keys));
        }
        let theirs = self.read_record(&slot.names[0]).await?;
        match theirs.and_then(|t| {
            RecordKeys::open(self.codec.keyring(), &slot.binding, &t).map(|keys| (t, keys))
        }) {
            Some(found) => Ok(found),
            None => Err(Failure::Command(
                "the key record of a tenant scope changed while it was being created".to_owned(),
            )),
        }
    }

    /// Makes `token` the slot's resolution (building the scope's cache when the record is new
    /// to this process) and keeps the record in L1 for `scope_now`.
    fn settle(
        &self,
        slot: &ScopeSlot,
        token: Arc<[u8]>,
        keys: &RecordKeys,
        epoch: u64,
    ) -> Result<Arc<GenericRedisCache>> {
        let mut state = slot.state();
        let cache = match state.as_ref() {
            Some(resolved) if *resolved.record == *token => resolved.cache.clone(),
            _ => {
                let cache = Arc::new(self.scope_cache(keys)?);
                let prefix = cache.options.namespace.as_str().to_owned();
                if let Some(old) = state.replace(Resolved {
                    record: token.clone(),
                    prefix: prefix.clone(),
                    cache: cache.clone(),
                }) {
                    if old.prefix != prefix {
                        self.evict_prefix(&old.prefix);
                    }
                }
                cache
            }
        };
        if let Some(resolved) = state.as_ref() {
            if let Some(l1) = &self.l1 {
                l1.put_if_unchanged(
                    &slot.names[0],
                    resolved.record.clone(),
                    RECORD_L1_TTL,
                    epoch,
                );
            }
        }
        Ok(cache)
    }

    /// The scope has no record (forgotten elsewhere, or never made): this process forgets it.
    fn drop_resolution(&self, slot: &ScopeSlot) {
        if let Some(old) = slot.state().take() {
            self.evict_prefix(&old.prefix);
        }
    }

    /// Drops a scope's entries from L1 (they must not outlive its key here).
    fn evict_prefix(&self, prefix: &str) {
        if let Some(l1) = &self.l1 {
            l1.note_write_all();
            l1.remove_matching(&format!("{}*", escape_glob(prefix)));
            l1.note_write_all();
        }
    }

    /// The cache of a scope's entries (see the module doc).
    fn scope_cache(&self, keys: &RecordKeys) -> Result<GenericRedisCache> {
        let namespace = self.scope_namespace(keys);
        let codec = Codec::new(
            Arc::new(keys.keyring()?),
            self.options.compression_threshold,
            self.options.compression_level,
            self.codec.max_value_bytes(),
        )
        .bound_to(Binding::scoped(
            namespace.as_str(),
            self.conn.database(),
            &keys.location,
        ));
        let reconciler = Reconciler::new(
            self.conn.clone(),
            codec.clone(),
            namespace.everything(),
            self.socket_timeout,
        );
        Ok(GenericRedisCache {
            hold: Hold::uncounted(self.hold.backend().clone()),
            conn: self.conn.clone(),
            codec,
            l1: self.l1.clone(),
            options: CacheOptions {
                namespace,
                ..self.options.clone()
            },
            stats: Stats::default(),
            command_warnings: WarnLimiter::new(Duration::from_secs(10)),
            reconciler,
            connection_timeout: self.connection_timeout,
            socket_timeout: self.socket_timeout,
            in_scope: true,
        })
    }

    /// Destroys scope `name`'s data key: every copy of its record goes from Redis, so no
    /// process can open its entries any more (others within the coherence lease; see the
    /// module doc), and this process drops it and its entries from L1 at once. The entries
    /// are then deleted from Redis: in the background, or before returning with `wait`
    /// (`Some(how many)`). An error when Redis cannot delete the record: the scope is then
    /// not forgotten.
    pub async fn forget_scope(&self, name: &str, wait: bool) -> Result<Option<usize>> {
        validate_scope_name(name)?;
        if self.in_scope {
            return Err(forget_on_a_scope());
        }
        let master = self.codec.keyring();
        let scope = self.unlisted_slot(name, record_digests(master, name));
        let mut doomed: BTreeSet<String> = scope.names.iter().cloned().collect();
        let mut prefixes: BTreeSet<String> = BTreeSet::new();
        for record in &scope.names {
            let found = self
                .read_record(record)
                .await
                .map_err(|f| unavailable(&f, "read the scope's key record"))?;
            if let Some(keys) = found.and_then(|t| RecordKeys::open(master, &scope.binding, &t)) {
                prefixes.insert(self.scope_namespace(&keys).as_str().to_owned());
                doomed.extend(keys.aliases.iter().map(|a| self.record_name(a)));
            }
        }
        let doomed: Vec<String> = doomed.into_iter().collect();
        for group in group_by_slot(&doomed, self.conn.topology().is_cluster()) {
            let batch: Vec<String> = group.iter().map(|&i| doomed[i].clone()).collect();
            self.conn
                .run(move |mut conn| async move { commands::remove_many(&mut conn, &batch).await })
                .await
                .map_err(|f| unavailable(&f, "delete the scope's key record"))?;
        }
        for slot in self.hold.backend().scopes.of_scope(&scope.digests[0]) {
            if let Some(old) = slot.state().take() {
                prefixes.insert(old.prefix);
            }
        }
        for prefix in &prefixes {
            self.evict_prefix(prefix);
        }
        if let Some(l1) = &self.l1 {
            for record in &doomed {
                l1.invalidate(record);
            }
        }
        let conn = self.conn.clone();
        let sweep = async move {
            let mut removed = 0;
            for prefix in prefixes {
                let pattern = format!("{}*", escape_glob(&prefix));
                removed += sweep::unlink_all_matching(&conn, &pattern).await?.len();
            }
            Ok::<usize, Failure>(removed)
        };
        if wait {
            return sweep
                .await
                .map(Some)
                .map_err(|f| unavailable(&f, "delete the forgotten scope's entries"));
        }
        tokio::spawn(async move {
            if let Err(failure) = sweep.await {
                tracing::warn!(
                    target: "secure_redis.cache",
                    "The entries of a forgotten tenant scope could not all be deleted ({}); nobody can open \
                     them any more, and they expire with their TTL",
                    failure.message()
                );
            }
        });
        Ok(None)
    }
}
