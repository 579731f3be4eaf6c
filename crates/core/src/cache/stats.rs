//! Counters a cache keeps about itself. Lock-free: they sit on the hot path.

use super::rejections::{RejectionCounts, Rejections};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Stats {
    pub gets: AtomicU64,
    pub l1_hits: AtomicU64,
    pub redis_hits: AtomicU64,
    pub misses: AtomicU64,
    pub sets: AtomicU64,
    pub deletes: AtomicU64,
    pub redis_failures: AtomicU64,
    pub l1_only_writes: AtomicU64,
    /// Rejected entries by kind, and the warnings about them held back.
    pub rejections: Rejections,
    pub compressed_writes: AtomicU64,
    pub plaintext_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub encode_nanos: AtomicU64,
    pub decode_nanos: AtomicU64,
    pub encodes: AtomicU64,
    pub decodes: AtomicU64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    pub gets: u64,
    pub l1_hits: u64,
    pub redis_hits: u64,
    pub misses: u64,
    pub sets: u64,
    pub deletes: u64,
    pub redis_failures: u64,
    pub l1_only_writes: u64,
    pub rejected_entries: u64,
    pub rejected_by_kind: RejectionCounts,
    pub tamper_warnings_suppressed: u64,
    pub compressed_writes: u64,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub encodes: u64,
    pub decodes: u64,
    pub encode_seconds: f64,
    pub decode_seconds: f64,
}

impl StatsSnapshot {
    pub fn hit_ratio(&self) -> f64 {
        if self.gets == 0 {
            0.0
        } else {
            (self.l1_hits + self.redis_hits) as f64 / self.gets as f64
        }
    }
}

/// Average in milliseconds of `total_seconds` over `count` operations (0 when there were none).
pub fn average_ms(total_seconds: f64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total_seconds * 1000.0 / count as f64
    }
}

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

pub fn add(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Relaxed);
}

pub fn add_elapsed(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(since.elapsed().as_nanos() as u64, Relaxed);
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Relaxed);
        StatsSnapshot {
            gets: get(&self.gets),
            l1_hits: get(&self.l1_hits),
            redis_hits: get(&self.redis_hits),
            misses: get(&self.misses),
            sets: get(&self.sets),
            deletes: get(&self.deletes),
            redis_failures: get(&self.redis_failures),
            l1_only_writes: get(&self.l1_only_writes),
            rejected_entries: self.rejections.total(),
            rejected_by_kind: self.rejections.counts(),
            tamper_warnings_suppressed: self.rejections.suppressed(),
            compressed_writes: get(&self.compressed_writes),
            plaintext_bytes: get(&self.plaintext_bytes),
            stored_bytes: get(&self.stored_bytes),
            encodes: get(&self.encodes),
            decodes: get(&self.decodes),
            encode_seconds: Duration::from_nanos(get(&self.encode_nanos)).as_secs_f64(),
            decode_seconds: Duration::from_nanos(get(&self.decode_nanos)).as_secs_f64(),
        }
    }
}

/// Lets a repeated warning through at most once per interval, so an outage or a misbehaving
/// server cannot flood the logs.
pub struct WarnLimiter {
    last_millis: AtomicU64,
    origin: Instant,
    interval: Duration,
}

impl WarnLimiter {
    pub fn new(interval: Duration) -> Self {
        WarnLimiter {
            last_millis: AtomicU64::new(u64::MAX),
            origin: Instant::now(),
            interval,
        }
    }

    pub fn allow(&self) -> bool {
        let now = self.origin.elapsed().as_millis() as u64;
        let last = self.last_millis.load(Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= self.interval.as_millis() as u64;
        due && self
            .last_millis
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_once_per_interval() {
        let limiter = WarnLimiter::new(Duration::from_secs(60));
        assert!(limiter.allow());
        assert!(!limiter.allow());
    }

    #[test]
    #[allow(clippy::float_cmp)] // 1/2 is exact in binary
    fn hit_ratio_counts_gets_only() {
        let stats = Stats::default();
        bump(&stats.gets);
        bump(&stats.gets);
        bump(&stats.l1_hits);
        bump(&stats.sets);
        assert_eq!(stats.snapshot().hit_ratio(), 0.5);
    }
}
