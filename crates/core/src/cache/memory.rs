//! `InMemoryCache`: the process-local cache (tests, development, and the fallback the
//! manager serves from while Redis is away). The same JSON-only values as the Redis cache, so
//! switching between them never changes what a caller gets back; O(1) LRU, lazy expiry.

use super::l1::L1Cache;
use super::options::{resolve_ttl, validate_key, validate_pattern};
use super::stats::bump;
use crate::ai::naming::{key_name, option_parts};
use crate::error::{Error, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

pub struct InMemoryCache {
    store: L1Cache,
    default_ttl: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

/// `MemoryCacheCore.stats()` (which `InMemoryCache.get_stats()` builds on): field names and
/// order are the dict Python sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryStats {
    pub total_entries: usize,
    pub active_entries: usize,
    /// Held but past their TTL, not yet swept.
    pub expired_entries: usize,
    pub max_size: usize,
    pub default_ttl: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub memory_usage_bytes: usize,
}

/// The naming key of every in-memory cache of this process: random, since these key names
/// never leave the process, and shared, so two caches name the same input alike.
fn process_naming_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(rand::random)
}

impl InMemoryCache {
    /// Ranges of the layer we replace: `default_ttl` 1..=86400 s, `max_size` 1..=100000.
    pub fn new(default_ttl: i64, max_size: i64) -> Result<InMemoryCache> {
        if !(1..=86400).contains(&default_ttl) {
            return Err(
                Error::configuration("default_ttl must be between 1 and 86400 seconds")
                    .with("default_ttl", default_ttl),
            );
        }
        if !(1..=100_000).contains(&max_size) {
            return Err(
                Error::configuration("max_size must be between 1 and 100000 entries")
                    .with("max_size", max_size),
            );
        }
        Ok(InMemoryCache {
            store: L1Cache::new(max_size as usize).expect("max_size is at least 1"),
            default_ttl: default_ttl as u64,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    pub fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>> {
        validate_key(key)?;
        let found = self.store.get(key);
        bump(if found.is_some() {
            &self.hits
        } else {
            &self.misses
        });
        Ok(found)
    }

    pub fn set(&self, key: &str, json: Arc<[u8]>, ttl: Option<i64>) -> Result<()> {
        validate_key(key)?;
        let ttl = resolve_ttl(ttl, self.default_ttl)?;
        if self.store.put(key, json, Duration::from_secs(ttl)) {
            bump(&self.evictions);
        }
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        Ok(self.store.remove(key))
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        Ok(self.store.contains(key))
    }

    pub fn ttl(&self, key: &str) -> Result<Option<u64>> {
        validate_key(key)?;
        Ok(self
            .store
            .ttl(key)
            .map(|d| d.as_millis().div_ceil(1000) as u64))
    }

    pub fn invalidate_pattern(&self, pattern: &str) -> Result<usize> {
        validate_pattern(pattern)?;
        Ok(self.store.remove_matching(pattern).len())
    }

    /// Empties the cache and resets its counters.
    pub fn clear(&self) {
        self.store.clear();
        for counter in [&self.hits, &self.misses, &self.evictions] {
            counter.store(0, Relaxed);
        }
    }

    /// Entries held, expired ones not yet removed included. O(1): expiry stays lazy.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    pub fn keys(&self) -> Vec<String> {
        self.store.keys()
    }

    pub fn live_keys(&self) -> Vec<String> {
        self.store.live_keys()
    }

    /// An AI key name for (`text`, `operation`, `options`), built as `AIResponseCache` builds
    /// its own (`ai::naming`), under this cache's naming key.
    pub fn build_key(
        &self,
        text: &str,
        operation: &str,
        options: Option<&serde_json::Value>,
    ) -> String {
        let (canonical, question) = option_parts(options);
        key_name(
            process_naming_key(),
            text,
            operation,
            canonical.as_deref(),
            question.as_deref(),
        )
    }

    pub fn stats(&self) -> MemoryStats {
        let total_entries = self.store.len();
        let active_entries = self.store.live_keys().len();
        MemoryStats {
            total_entries,
            active_entries,
            expired_entries: total_entries - active_entries.min(total_entries),
            max_size: self.store.capacity(),
            default_ttl: self.default_ttl,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            memory_usage_bytes: self.store.bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn lru_counts_and_update_semantics() {
        let cache = InMemoryCache::new(60, 2).unwrap();
        cache.set("a", v("1"), None).unwrap();
        cache.set("b", v("2"), None).unwrap();
        cache.set("a", v("3"), None).unwrap(); // update: no eviction
        assert_eq!(cache.stats().evictions, 0);
        cache.set("c", v("4"), None).unwrap(); // evicts b (least recently used)
        assert_eq!(cache.stats().evictions, 1);
        assert!(cache.get("b").unwrap().is_none());
        assert_eq!(&*cache.get("a").unwrap().unwrap(), b"3");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
        assert_eq!(cache.len(), 2);
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            serde_json::json!({
                "total_entries": 2, "active_entries": 2, "expired_entries": 0, "max_size": 2,
                "default_ttl": 60, "hits": 1, "misses": 1, "evictions": 1,
                "memory_usage_bytes": stats.memory_usage_bytes,
            })
        );
        cache.clear();
        assert_eq!(cache.stats().hits, 0);
        assert!(cache.is_empty());
    }

    #[test]
    fn build_key_names_like_the_ai_cache_under_the_process_key() {
        let cache = InMemoryCache::new(60, 10).unwrap();
        let options = serde_json::json!({"question": "Who?", "max_length": 5});
        let key = cache.build_key("Secret text", "qa", Some(&options));
        assert!(
            key.starts_with("ai_cache:op:qa|txt:") && key.contains("|opts:") && key.contains("|q:")
        );
        assert!(!key.contains("Secret"));
        assert_eq!(key, cache.build_key("Secret text", "qa", Some(&options)));
        let other = InMemoryCache::new(60, 10).unwrap();
        assert_eq!(key, other.build_key("Secret text", "qa", Some(&options)));
        assert_eq!(
            cache.build_key("t", "summarize", None),
            cache.build_key("t", "summarize", Some(&serde_json::json!({})))
        );
    }

    #[test]
    fn ranges_and_ttls() {
        assert!(InMemoryCache::new(0, 10).is_err());
        assert!(InMemoryCache::new(10, 0).is_err());
        let cache = InMemoryCache::new(60, 10).unwrap();
        assert!(cache.set("k", v("1"), Some(-5)).is_err());
        cache.set("k", v("1"), Some(5)).unwrap();
        assert_eq!(cache.ttl("k").unwrap(), Some(5));
        assert_eq!(cache.invalidate_pattern("k*").unwrap(), 1);
    }
}
