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
//!
//! Ordering against new writes, so a repair never deletes a write made after Redis came back:
//! * While a repair is pending, each write to Redis holds the gate shared from before its
//!   command until its outcome is recorded (`admit`, then `settle`), and each repair batch
//!   holds it exclusively from reading the dirty set until its UNLINK has answered. A batch
//!   therefore never deletes a key whose newer write already landed (that write cleaned the
//!   key first), and no write lands between a batch's check and its UNLINK.
//! * A successful write to a name that a pending invalidation covers is remembered with the
//!   generation current then (`Dirty::written`); the replay of an invalidation leaves alone
//!   the names written after it was missed, even though its SCAN finds them.
//! * A writer waits for the gate at most `socket_timeout` (a batch holds it for at most three
//!   round trips, each bounded by the connection); after that the write counts as failed: it
//!   lands in L1 only and its key is dirty, as if Redis had not answered.

use super::commands;
use super::pattern::glob_match;
use super::sweep::{self, BATCH};
use crate::codec::Codec;
use crate::connection::{Failure, SecureConnection};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard};

/// Keys remembered as "written while Redis was unreachable"; beyond this, an outage that saw
/// more distinct writes makes the whole namespace dirty (replayed as one invalidation, which
/// deletes only entries proven ours). Also bounds `Dirty::written`.
const MAX_DIRTY_KEYS: usize = 100_000;
const MAX_DIRTY_PATTERNS: usize = 1000;
/// At most one PING per this many milliseconds to bring a lost connection back (`kick`).
const NUDGE_EVERY_MS: u64 = 100;

#[derive(Default)]
struct Dirty {
    keys: HashSet<String>,
    /// Missed invalidations (SCAN patterns, namespace included), each with a generation: a
    /// replay removes only the entries it covered, so an invalidation that fails again during
    /// the replay is kept.
    patterns: Vec<(String, u64)>,
    next_generation: u64,
    /// Names written to Redis while an invalidation covering them was pending, with the
    /// generation current at the write: the replay of (pattern, g) spares names written at
    /// generation g or later.
    written: HashMap<String, u64>,
}

impl Dirty {
    fn written_since(&self, name: &[u8], generation: u64) -> bool {
        std::str::from_utf8(name)
            .ok()
            .and_then(|name| self.written.get(name))
            .is_some_and(|&at| at >= generation)
    }
}

pub struct Reconciler {
    conn: SecureConnection,
    /// The cache's codec: proves which names of a replayed invalidation are ours.
    codec: Codec,
    /// The SCAN pattern of the cache's whole namespace: what an overflow invalidates.
    everything: String,
    /// How long a write waits for a repair batch before it counts as failed.
    admit_timeout: Duration,
    dirty: Mutex<Dirty>,
    gate: RwLock<()>,
    pending: AtomicBool,
    /// `forks::generation() + 1` of the process whose repair task runs, 0 when none does: a
    /// forked child's copy of a parent's "running" must not stop its own repair forever.
    running: AtomicU64,
    /// When `kick` last sent a PING to a lost connection, in ms since `born`.
    nudged: AtomicU64,
    born: Instant,
}

/// Held by a write to Redis from before its command until `settle`; see the module doc.
pub struct WritePermit<'a> {
    _shared: Option<RwLockReadGuard<'a, ()>>,
}

impl Reconciler {
    pub fn new(
        conn: SecureConnection,
        codec: Codec,
        everything: String,
        admit_timeout: Duration,
    ) -> Arc<Reconciler> {
        Arc::new(Reconciler {
            conn,
            codec,
            everything,
            admit_timeout,
            dirty: Mutex::new(Dirty::default()),
            gate: RwLock::new(()),
            pending: AtomicBool::new(false),
            running: AtomicU64::new(0),
            nudged: AtomicU64::new(0),
            born: Instant::now(),
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

    /// To be awaited before a write command: `None` when a repair batch held Redis for longer
    /// than `socket_timeout`, and the write must then count as failed (`settle(.., false)`).
    pub async fn admit(&self) -> Option<WritePermit<'_>> {
        if !self.pending.load(Ordering::Acquire) {
            return Some(WritePermit { _shared: None });
        }
        tokio::time::timeout(self.admit_timeout, self.gate.read())
            .await
            .ok()
            .map(|shared| WritePermit {
                _shared: Some(shared),
            })
    }

    /// Records the outcome of a write to `names`, before its permit is dropped: failed writes
    /// make the names dirty; successful ones make them clean and are remembered against the
    /// pending invalidations that cover them.
    pub fn settle<'a>(&self, names: impl IntoIterator<Item = &'a str>, written: bool) {
        if !written {
            self.mark_keys(names);
            return;
        }
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        let mut dirty = self.dirty();
        for name in names {
            dirty.keys.remove(name);
            let covered = dirty
                .patterns
                .iter()
                .any(|(p, _)| glob_match(p.as_bytes(), name.as_bytes()));
            if !covered {
                continue;
            }
            if dirty.written.len() >= MAX_DIRTY_KEYS && !dirty.written.contains_key(name) {
                // Out of room to tell new writes from old: every pending invalidation now
                // counts as missed just now, so its replay may delete writes made before this
                // point (they become misses; nothing older can resurface).
                tracing::warn!(
                    target: "secure_redis.cache",
                    "More than {MAX_DIRTY_KEYS} keys were written while invalidations missed during an outage were \
                     pending; those writes may be removed from Redis by the replay (they read as misses)"
                );
                dirty.next_generation += 1;
                let now = dirty.next_generation;
                dirty.patterns.iter_mut().for_each(|(_, g)| *g = now);
                dirty.written.clear();
            }
            let now = dirty.next_generation;
            dirty.written.insert(name.to_owned(), now);
        }
    }

    /// Whether Redis still holds writes or invalidations it missed (a repair is due or running).
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
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

    /// Starts the background repair when one is due, Redis is connected and none runs; while
    /// it is not connected, asks for the connection back. Never waits.
    pub fn kick(self: &Arc<Self>) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if !self.conn.state().connected {
            self.nudge();
            return;
        }
        let ours = crate::forks::generation() + 1;
        let running = self.running.load(Ordering::Acquire);
        if running == ours
            || self
                .running
                .compare_exchange(running, ours, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.repair().await;
            this.running.store(0, Ordering::Release);
        });
    }

    /// A PING in the background, at most every `NUDGE_EVERY_MS`: a connection is only brought
    /// back by a request that meets it lost, and reads of dirty keys skip Redis, so a process
    /// that only read keys covered by a missed invalidation (every key, after an overflow)
    /// would never reconnect, and never repair.
    fn nudge(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.nudged.load(Ordering::Relaxed);
        if now.saturating_sub(last) < NUDGE_EVERY_MS
            || self
                .nudged
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let _ = conn
                .run(|mut c| async move { commands::ping(&mut c).await })
                .await;
        });
    }

    async fn repair(&self) {
        let patterns = self.dirty().patterns.clone();
        let mut replayed = 0;
        for (pattern, generation) in &patterns {
            if self.replay(pattern, *generation).await.is_err() {
                return;
            }
            replayed += 1;
            let mut dirty = self.dirty();
            dirty
                .patterns
                .retain(|(p, g)| !(p == pattern && g <= generation));
            if dirty.patterns.is_empty() {
                dirty.written.clear();
            }
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

    /// One batch of dirty keys: those still dirty under the exclusive gate are unlinked and
    /// made clean. A key written since the snapshot was cleaned by its writer and keeps its
    /// new value.
    async fn unlink_dirty(&self, batch: &[String]) -> Result<usize, Failure> {
        let _exclusive = self.gate.write().await;
        let still: Vec<&String> = {
            let dirty = self.dirty();
            batch.iter().filter(|k| dirty.keys.contains(*k)).collect()
        };
        let names: Vec<Vec<u8>> = still.iter().map(|k| k.as_bytes().to_vec()).collect();
        sweep::unlink(&self.conn, &names).await?;
        let mut dirty = self.dirty();
        for key in &still {
            dirty.keys.remove(*key);
        }
        Ok(still.len())
    }

    /// A missed invalidation, replayed: its names, batch by batch under the exclusive gate,
    /// less those written since it was missed, less those not proven ours.
    async fn replay(&self, pattern: &str, generation: u64) -> Result<(), Failure> {
        let names = sweep::names_matching(&self.conn, pattern).await?;
        for batch in names.chunks(BATCH) {
            let _exclusive = self.gate.write().await;
            let older: Vec<Vec<u8>> = {
                let dirty = self.dirty();
                batch
                    .iter()
                    .filter(|name| !dirty.written_since(name, generation))
                    .cloned()
                    .collect()
            };
            let ours = sweep::owned(&self.conn, &self.codec, &older).await?;
            sweep::unlink(&self.conn, &ours).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::namespace::Namespace;
    use crate::codec::{Binding, DEFAULT_MAX_VALUE_BYTES};
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
            .bound_to(Binding::new(prefix, 0));
        let everything = Namespace::new(prefix).unwrap().everything();
        Reconciler::new(conn, codec, everything, Duration::from_millis(50))
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

    #[test]
    fn writes_after_a_missed_invalidation_are_spared_by_its_replay() {
        let rec = reconciler("");
        rec.settle(["user:before"], true); // nothing pending: nothing to remember
        rec.mark_pattern("user:*");
        let generation = rec.dirty().patterns[0].1;
        rec.settle(["user:after", "order:1"], true);
        rec.mark_keys(["user:failed"]);
        rec.settle(["user:failed"], true); // its retry landed: clean again
        let dirty = rec.dirty();
        assert!(dirty.written_since(b"user:after", generation));
        assert!(!dirty.written_since(b"user:before", generation));
        assert!(
            !dirty.written.contains_key("order:1"),
            "no pending invalidation covers it"
        );
        assert!(dirty.keys.is_empty());
        drop(dirty);
        // A later invalidation of the same names is not spared by the earlier write.
        rec.mark_pattern("user:*");
        let later = rec.dirty().patterns[1].1;
        assert!(!rec.dirty().written_since(b"user:after", later));
    }

    #[tokio::test]
    async fn a_writer_waits_for_a_repair_batch_at_most_the_socket_timeout() {
        let rec = reconciler("");
        assert!(rec.admit().await.is_some(), "no repair pending: no waiting");
        rec.mark_keys(["k"]);
        let batch = rec.gate.write().await;
        let started = std::time::Instant::now();
        assert!(
            rec.admit().await.is_none(),
            "held by a batch: the write fails"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(batch);
        assert!(rec.admit().await.is_some());
    }
}
