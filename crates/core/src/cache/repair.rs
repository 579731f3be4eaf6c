//! Reconciling Redis after an outage.
//!
//! A write (set or delete) or an invalidation that could not reach Redis leaves Redis holding
//! data this process has already replaced or removed. Until that data is deleted on the
//! server, such keys are "dirty": reads skip Redis for them (they answer from L1 or miss).
//! Once Redis is reachable again, one background task replays the missed invalidations and
//! deletes the dirty keys. It runs detached from requests, so a caller's timeout can never
//! cancel it half-way, and keys stay dirty until their own deletion has succeeded.

use super::pattern::glob_match;
use crate::connection::{Failure, SecureConnection};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Keys remembered as "written while Redis was unreachable"; beyond this, an outage that saw
/// more distinct writes makes the whole database dirty (replayed as one full invalidation).
const MAX_DIRTY_KEYS: usize = 100_000;
const MAX_DIRTY_PATTERNS: usize = 1000;
pub const BATCH: usize = 500;

#[derive(Default)]
struct Dirty {
    keys: HashSet<String>,
    /// Missed invalidations, each with a generation: a replay removes only the entries it
    /// covered, so an invalidation that fails again during the replay is kept.
    patterns: Vec<(String, u64)>,
    next_generation: u64,
}

pub struct Reconciler {
    conn: SecureConnection,
    dirty: Mutex<Dirty>,
    pending: AtomicBool,
    running: AtomicBool,
}

/// SCAN + UNLINK of every server key matching `pattern`, in batches, on every primary; the
/// names removed.
pub async fn unlink_matching(
    conn: &SecureConnection,
    pattern: &str,
) -> Result<Vec<Vec<u8>>, Failure> {
    conn.scan(pattern, BATCH, true).await
}

impl Reconciler {
    pub fn new(conn: SecureConnection) -> Arc<Reconciler> {
        Arc::new(Reconciler {
            conn,
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

    fn push_pattern(dirty: &mut Dirty, pattern: &str) {
        dirty.next_generation += 1;
        let generation = dirty.next_generation;
        if pattern == "*" {
            dirty.patterns.clear(); // one full invalidation covers every earlier one
        }
        if dirty.patterns.len() >= MAX_DIRTY_PATTERNS {
            dirty.patterns.clear();
            dirty.patterns.push(("*".to_owned(), generation));
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
                    "More than {MAX_DIRTY_KEYS} keys were written while Redis was unreachable; the whole \
                     database will be invalidated when it is back"
                );
                dirty.keys.clear();
                Self::push_pattern(&mut dirty, "*");
                break;
            }
        }
        self.pending.store(true, Ordering::Release);
    }

    pub fn mark_clean(&self, key: &str) {
        if self.pending.load(Ordering::Acquire) {
            self.dirty().keys.remove(key);
        }
    }

    pub fn mark_pattern(&self, pattern: &str) {
        Self::push_pattern(&mut self.dirty(), pattern);
        self.pending.store(true, Ordering::Release);
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
        for (pattern, generation) in &patterns {
            if unlink_matching(&self.conn, pattern).await.is_err() {
                return;
            }
            self.dirty()
                .patterns
                .retain(|(p, g)| !(p == pattern && g <= generation));
        }
        let keys: Vec<String> = self.dirty().keys.iter().cloned().collect();
        for batch in keys.chunks(BATCH) {
            let names: Vec<Vec<u8>> = batch.iter().map(|k| k.as_bytes().to_vec()).collect();
            let done = self
                .conn
                .run(|mut c| async move { c.unlink(&names).await })
                .await;
            if done.is_err() {
                return;
            }
            let mut dirty = self.dirty();
            for key in batch {
                dirty.keys.remove(key);
            }
        }
        let dirty = self.dirty();
        if dirty.keys.is_empty() && dirty.patterns.is_empty() {
            self.pending.store(false, Ordering::Release);
        }
        drop(dirty);
        if !keys.is_empty() || !patterns.is_empty() {
            tracing::info!(
                target: "secure_redis.cache",
                "Redis is back: removed {} key(s) and replayed {} invalidation(s) it had missed",
                keys.len(),
                patterns.len()
            );
        }
    }
}
