//! The L1 tier: a bounded, per-process LRU of serialized values with per-entry expiry.
//!
//! It stores JSON bytes, not Python objects, so every hit yields a fresh, independent object
//! and the tier lives in the core where `cargo test` reaches it. Updating a key never evicts
//! another one, and expiry is checked lazily on access (no sweeps).

use super::pattern::glob_match;
use lru::LruCache;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Entry {
    json: Arc<[u8]>,
    expires_at: Instant,
}

const WRITE_STRIPES: usize = 64;

pub struct L1Cache {
    entries: Mutex<LruCache<String, Entry>>,
    capacity: usize,
    /// Write counters by key stripe. A read from Redis only fills L1 if no write to its
    /// stripe happened while it was in flight; otherwise a GET racing a DEL or SET could put
    /// the old value back after the write.
    write_epochs: [AtomicU64; WRITE_STRIPES],
    stripe_hasher: RandomState,
}

impl L1Cache {
    /// `None` for a capacity of zero: the tier is disabled.
    pub fn new(capacity: usize) -> Option<L1Cache> {
        let bounded = NonZeroUsize::new(capacity)?;
        Some(L1Cache {
            entries: Mutex::new(LruCache::new(bounded)),
            capacity,
            write_epochs: std::array::from_fn(|_| AtomicU64::new(0)),
            stripe_hasher: RandomState::new(),
        })
    }

    fn stripe(&self, key: &str) -> &AtomicU64 {
        let index = self.stripe_hasher.hash_one(key) as usize % WRITE_STRIPES;
        &self.write_epochs[index]
    }

    /// Taken before reading a key from Redis; see `put_if_unchanged`.
    pub fn write_epoch(&self, key: &str) -> u64 {
        self.stripe(key).load(Ordering::Acquire)
    }

    /// Called before and after every write of `key` to Redis.
    pub fn note_write(&self, key: &str) {
        self.stripe(key).fetch_add(1, Ordering::AcqRel);
    }

    /// Called before and after writes that may touch any key (invalidation, clear).
    pub fn note_write_all(&self) {
        for epoch in &self.write_epochs {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Fills L1 with a value read from Redis, unless the key was written since `epoch`.
    pub fn put_if_unchanged(&self, key: &str, json: Arc<[u8]>, ttl: Duration, epoch: u64) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if self.write_epoch(key) == epoch {
            entries.put(
                key.to_owned(),
                Entry {
                    json,
                    expires_at: Instant::now() + ttl,
                },
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let mut entries = self.lock();
        let now = Instant::now();
        match entries.get(key) {
            Some(entry) if entry.expires_at > now => Some(entry.json.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Remaining lifetime of a live entry.
    pub fn ttl(&self, key: &str) -> Option<Duration> {
        let entries = self.lock();
        let entry = entries.peek(key)?;
        entry.expires_at.checked_duration_since(Instant::now())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.ttl(key).is_some_and(|d| !d.is_zero())
    }

    /// Stores a value; returns true when a *different* key had to be evicted to make room
    /// (updating a key never evicts another).
    pub fn put(&self, key: &str, json: Arc<[u8]>, ttl: Duration) -> bool {
        if ttl.is_zero() {
            self.lock().pop(key);
            return false;
        }
        let entry = Entry {
            json,
            expires_at: Instant::now() + ttl,
        };
        match self.lock().push(key.to_owned(), entry) {
            Some((evicted, _)) => evicted != key,
            None => false,
        }
    }

    /// Every key held, expired ones included (in most-recently-used order).
    pub fn keys(&self) -> Vec<String> {
        self.lock().iter().map(|(k, _)| k.clone()).collect()
    }

    /// Keys whose entries have not expired.
    pub fn live_keys(&self) -> Vec<String> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, e)| e.expires_at > now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.lock()
            .iter()
            .map(|(k, e)| k.len() + e.json.len())
            .sum()
    }

    pub fn remove(&self, key: &str) -> bool {
        let mut entries = self.lock();
        match entries.pop(key) {
            Some(entry) => entry.expires_at > Instant::now(),
            None => false,
        }
    }

    /// Removes keys matching a Redis glob; returns the names of live entries removed.
    pub fn remove_matching(&self, pattern: &str) -> Vec<String> {
        let mut entries = self.lock();
        let now = Instant::now();
        let doomed: Vec<String> = entries
            .iter()
            .filter(|(key, _)| glob_match(pattern.as_bytes(), key.as_bytes()))
            .map(|(key, _)| key.clone())
            .collect();
        doomed
            .into_iter()
            .filter(|key| entries.pop(key).is_some_and(|e| e.expires_at > now))
            .collect()
    }

    /// Another writer changed `key` in Redis: the copy goes, and a read already in flight may
    /// not put what it fetched back.
    pub fn invalidate(&self, key: &str) {
        self.note_write(key);
        self.lock().pop(key);
        self.note_write(key);
    }

    /// `invalidate` for every key.
    pub fn invalidate_all(&self) {
        self.note_write_all();
        self.lock().clear();
        self.note_write_all();
    }

    pub fn clear(&self) -> usize {
        let mut entries = self.lock();
        let n = entries.len();
        entries.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn lru_bound_and_update_without_eviction() {
        let l1 = L1Cache::new(2).unwrap();
        let hour = Duration::from_secs(3600);
        l1.put("a", bytes("1"), hour);
        l1.put("b", bytes("2"), hour);
        l1.put("a", bytes("3"), hour); // update on a full cache evicts nothing
        assert_eq!(l1.len(), 2);
        assert_eq!(&*l1.get("a").unwrap(), b"3");
        assert_eq!(&*l1.get("b").unwrap(), b"2");
        l1.get("a");
        l1.put("c", bytes("4"), hour); // evicts the least recently used: b
        assert!(l1.get("b").is_none());
        assert!(l1.get("a").is_some() && l1.get("c").is_some());
    }

    #[test]
    fn reads_racing_writes_do_not_refill() {
        let l1 = L1Cache::new(4).unwrap();
        let hour = Duration::from_secs(3600);
        let before = l1.write_epoch("k");
        l1.note_write("k"); // a delete started while the read was in flight
        l1.put_if_unchanged("k", bytes("old"), hour, before);
        assert!(l1.get("k").is_none());
        let now = l1.write_epoch("k");
        l1.put_if_unchanged("k", bytes("fresh"), hour, now);
        assert_eq!(&*l1.get("k").unwrap(), b"fresh");
        let other = l1.write_epoch("other");
        l1.note_write_all();
        l1.put_if_unchanged("other", bytes("x"), hour, other);
        assert!(l1.get("other").is_none());
    }

    #[test]
    fn expiry_is_lazy_and_exact() {
        let l1 = L1Cache::new(4).unwrap();
        l1.put("short", bytes("1"), Duration::from_millis(20));
        assert!(l1.get("short").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(l1.get("short").is_none());
        assert_eq!(l1.len(), 0);
    }

    #[test]
    fn glob_removal_and_disabled_tier() {
        let l1 = L1Cache::new(10).unwrap();
        let hour = Duration::from_secs(3600);
        for key in ["user:1", "user:2", "order:1"] {
            l1.put(key, bytes("x"), hour);
        }
        let mut removed = l1.remove_matching("user:*");
        removed.sort();
        assert_eq!(removed, vec!["user:1", "user:2"]);
        assert_eq!(l1.len(), 1);
        assert!(L1Cache::new(0).is_none());
    }
}
