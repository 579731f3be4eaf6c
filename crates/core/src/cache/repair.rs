//! Reconciling Redis after an outage.
//!
//! A write (set or delete) or an invalidation that could not reach Redis leaves Redis holding
//! data this process has already replaced or removed. Until that data is deleted on the
//! server, such keys are "dirty": reads skip Redis for them (they answer from L1 or miss).
//! Once Redis is reachable again, one background task replays the missed invalidations and
//! deletes the dirty keys. It runs detached from requests, so a caller's timeout can never
//! cancel it half-way, and keys stay dirty until their own deletion has succeeded.
//!
//! What a repair may delete: a dirty key by its name (this cache wrote or deleted that very
//! name and Redis missed it, so whatever Redis holds there is older than our write), and for a
//! missed invalidation only the names `sweep::owned` proves ours, inside the cache's namespace.
//! More than `MAX_DIRTY_KEYS` distinct writes in one outage become one missed invalidation of
//! the whole namespace, proven key by key like any other: another application's keys in the
//! same database survive it.

use super::pattern::glob_match;
use super::sweep::{self, BATCH};
use crate::codec::Codec;
use crate::connection::{Failure, SecureConnection};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Keys remembered as "written while Redis was unreachable"; beyond this, an outage that saw
/// more distinct writes makes the whole namespace dirty (replayed as one invalidation, which
/// deletes only entries proven ours).
const MAX_DIRTY_KEYS: usize = 100_000;
const MAX_DIRTY_PATTERNS: usize = 1000;

#[derive(Default)]
struct Dirty {
    keys: HashSet<String>,
    /// Missed invalidations (SCAN patterns, namespace included), each with a generation: a
    /// replay removes only the entries it covered, so an invalidation that fails again during
    /// the replay is kept.
    patterns: Vec<(String, u64)>,
    next_generation: u64,
}

pub struct Reconciler {
    conn: SecureConnection,
    /// The cache's codec: proves which names of a replayed invalidation are ours.
    codec: Codec,
    /// The SCAN pattern of the cache's whole namespace: what an overflow invalidates.
    everything: String,
    dirty: Mutex<Dirty>,
    pending: AtomicBool,
    running: AtomicBool,
}

impl Reconciler {
    pub fn new(conn: SecureConnection, codec: Codec, everything: String) -> Arc<Reconciler> {
        Arc::new(Reconciler {
            conn,
            codec,
            everything,
            dirty: Mutex::new(Dirty::default()),
            pending: AtomicBool::new(false),
            running: AtomicBool::new(false),
        })
    }

    fn dirty(&self) -> MutexGuard<'_, Dirty> {
        self.dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push_pattern(&self, dirty: &mut Dirty, pattern: &str) {
        dirty.next_generation += 1;
        let generation = dirty.next_generation;
        if pattern == self.everything {
            dirty.patterns.clear(); // one invalidation of everything covers every earlier one
        }
        if dirty.patterns.len() >= MAX_DIRTY_PATTERNS {
            dirty.patterns.clear();
            dirty.patterns.push((self.everything.clone(), generation));
        } else {
            dirty.patterns.push((pattern.to_owned(), generation));
        }
    }

    pub fn mark_keys<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut dirty = self.dirty();
        for key in keys {
            if dirty.keys.len() < MAX_DIRTY_KEYS {
                dirty.keys.insert(key.to_owned());
            } else {
                tracing::error!(
                    target: "secure_redis.cache",
                    "More than {MAX_DIRTY_KEYS} keys were written while Redis was unreachable; every entry \
                     of this cache will be invalidated when it is back (only keys it can prove it wrote)"
                );
                dirty.keys.clear();
                let everything = self.everything.clone();
                self.push_pattern(&mut dirty, &everything);
                break;
            }
        }
        self.pending.store(true, Ordering::Release);
    }

    pub fn mark_pattern(&self, pattern: &str) {
        let mut dirty = self.dirty();
        self.push_pattern(&mut dirty, pattern);
        self.pending.store(true, Ordering::Release);
    }

    pub fn mark_clean(&self, key: &str) {
        if self.pending.load(Ordering::Acquire) {
            self.dirty().keys.remove(key);
        }
    }

    /// Whether Redis may hold a value for `key` older than this process's latest write or
    /// invalidation.
    pub fn is_dirty(&self, key: &str) -> bool {
        if !self.pending.load(Ordering::Acquire) {
            return false;
        }
        let dirty = self.dirty();
        dirty.keys.contains(key)
            || dirty
                .patterns
                .iter()
                .any(|(p, _)| glob_match(p.as_bytes(), key.as_bytes()))
    }

    /// Starts the background repair when one is due, Redis is connected and none runs.
    /// Never waits.
    pub fn kick(self: &Arc<Self>) {
        if !self.pending.load(Ordering::Acquire) || !self.conn.state().connected {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.repair().await;
            this.running.store(false, Ordering::Release);
        });
    }

    async fn repair(&self) {
        let patterns = self.dirty().patterns.clone();
        let mut replayed = 0;
        for (pattern, generation) in &patterns {
            if self.replay(pattern).await.is_err() {
                return;
            }
            replayed += 1;
            self.dirty()
                .patterns
                .retain(|(p, g)| !(p == pattern && g <= generation));
        }
        let keys: Vec<String> = self.dirty().keys.iter().cloned().collect();
        let mut removed = 0;
        for batch in keys.chunks(BATCH) {
            match self.unlink_dirty(batch).await {
                Ok(n) => removed += n,
                Err(_) => return,
            }
        }
        let dirty = self.dirty();
        if dirty.keys.is_empty() && dirty.patterns.is_empty() {
            self.pending.store(false, Ordering::Release);
        }
        drop(dirty);
        if removed > 0 || replayed > 0 {
            tracing::info!(
                target: "secure_redis.cache",
                "Redis is back: removed {removed} key(s) and replayed {replayed} invalidation(s) it had missed"
            );
        }
    }

    /// One batch of dirty keys, unlinked by name and made clean.
    async fn unlink_dirty(&self, batch: &[String]) -> Result<usize, Failure> {
        let names: Vec<Vec<u8>> = batch.iter().map(|k| k.as_bytes().to_vec()).collect();
        sweep::unlink(&self.conn, &names).await?;
        let mut dirty = self.dirty();
        for key in batch {
            dirty.keys.remove(key);
        }
        Ok(batch.len())
    }

    /// A missed invalidation, replayed: its names, batch by batch, less those not proven ours.
    async fn replay(&self, pattern: &str) -> Result<(), Failure> {
        let names = sweep::names_matching(&self.conn, pattern).await?;
        for batch in names.chunks(BATCH) {
            let ours = sweep::owned(&self.conn, &self.codec, batch).await?;
            sweep::unlink(&self.conn, &ours).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::namespace::Namespace;
    use crate::codec::DEFAULT_MAX_VALUE_BYTES;
    use crate::config::{SecurityConfig, SecuritySettings};
    use crate::connection::RedisTarget;
    use crate::crypto::{generate_encryption_key, Secret};

    /// A reconciler for the namespace `prefix` whose connection is never opened: these tests
    /// look at the bookkeeping only.
    fn reconciler(prefix: &str) -> Arc<Reconciler> {
        let config = SecurityConfig::new(
            SecuritySettings {
                redis_auth: Some(Secret::new("a-long-enough-password-0123456789")),
                encryption_key: Some(Secret::new(generate_encryption_key())),
                ..SecuritySettings::default()
            },
            false,
        )
        .unwrap();
        let target = RedisTarget::parse("rediss://127.0.0.1:1/0", false).unwrap();
        let conn = SecureConnection::new(target, &config).unwrap();
        let codec = Codec::new(config.keyring.clone(), 1000, 6, DEFAULT_MAX_VALUE_BYTES)
            .in_namespace(prefix);
        let everything = Namespace::new(prefix).unwrap().everything();
        Reconciler::new(conn, codec, everything)
    }

    #[test]
    fn an_overflowing_outage_invalidates_the_namespace_not_the_database() {
        let rec = reconciler("app[1]:");
        let keys: Vec<String> = (0..=MAX_DIRTY_KEYS)
            .map(|i| format!("app[1]:k{i}"))
            .collect();
        rec.mark_keys(keys.iter().map(String::as_str));
        let dirty = rec.dirty();
        assert!(dirty.keys.is_empty());
        assert_eq!(dirty.patterns.len(), 1);
        assert_eq!(dirty.patterns[0].0, "app\\[1\\]:*");
        drop(dirty);
        assert!(rec.is_dirty("app[1]:never-written"));
        for foreign in ["other:k", "app1:k", "k"] {
            assert!(!rec.is_dirty(foreign), "{foreign}");
        }
    }
}
