//! Statistics of the AI cache by operation and by text-size tier (hits, misses, latency
//! percentiles over the last samples), key-generation figures and invalidations.

use super::naming::operation_of;
use super::AiPolicy;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

const LATENCY_SAMPLES: usize = 1000;

#[derive(Default)]
struct Samples {
    hits: u64,
    misses: u64,
    sets: u64,
    latencies: VecDeque<f64>,
    count: u64,
    total: f64,
    min: f64,
    max: f64,
}

impl Samples {
    fn record(&mut self, seconds: f64) {
        if self.count == 0 || seconds < self.min {
            self.min = seconds;
        }
        self.max = self.max.max(seconds);
        self.count += 1;
        self.total += seconds;
        if self.latencies.len() == LATENCY_SAMPLES {
            self.latencies.pop_front();
        }
        self.latencies.push_back(seconds);
    }

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    fn to_value(&self) -> Value {
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let ms = |s: f64| (s * 1000.0 * 1000.0).round() / 1000.0;
        let gets = self.hits + self.misses;
        json!({
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "hit_rate": if gets == 0 { 0.0 } else { self.hits as f64 / gets as f64 },
            "total_operations": self.count,
            "avg_duration_ms": if self.count == 0 { 0.0 } else { ms(self.total / self.count as f64) },
            "min_duration_ms": ms(self.min),
            "max_duration_ms": ms(self.max),
            "percentiles": {
                "p50": ms(Self::percentile(&sorted, 50.0)),
                "p95": ms(Self::percentile(&sorted, 95.0)),
                "p99": ms(Self::percentile(&sorted, 99.0)),
            },
            "sample_count": sorted.len(),
        })
    }
}

#[derive(Default)]
pub(super) struct AiStats {
    by_operation: BTreeMap<String, Samples>,
    by_tier: BTreeMap<&'static str, Samples>,
    keys_built: u64,
    key_build_seconds: f64,
    text_lengths_total: u64,
    text_length_max: u64,
    keys_by_tier: BTreeMap<&'static str, u64>,
    keys_by_operation: BTreeMap<String, u64>,
    invalidations: u64,
    keys_invalidated: u64,
    invalidations_by_operation: BTreeMap<String, u64>,
}

impl AiStats {
    pub(super) fn record_key_built(
        &mut self,
        seconds: f64,
        text_length: u64,
        tier: &'static str,
        operation: &str,
    ) {
        self.keys_built += 1;
        self.key_build_seconds += seconds;
        self.text_lengths_total += text_length;
        self.text_length_max = self.text_length_max.max(text_length);
        *self.keys_by_tier.entry(tier).or_default() += 1;
        *self
            .keys_by_operation
            .entry(operation.to_owned())
            .or_default() += 1;
    }
}

impl AiPolicy {
    pub(super) fn stats(&self) -> std::sync::MutexGuard<'_, AiStats> {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one get (`hit` Some) or set (`hit` None) and its latency.
    pub fn record(&self, key: &str, hit: Option<bool>, seconds: f64) {
        let operation = operation_of(key).unwrap_or("other").to_owned();
        let tier = self.tier_of_key(key);
        let update = |samples: &mut Samples| {
            match hit {
                Some(true) => samples.hits += 1,
                Some(false) => samples.misses += 1,
                None => samples.sets += 1,
            }
            samples.record(seconds);
        };
        let mut stats = self.stats();
        update(stats.by_operation.entry(operation).or_default());
        update(stats.by_tier.entry(tier).or_default());
    }

    pub fn record_invalidation(&self, operation: Option<&str>, keys: u64) {
        let mut stats = self.stats();
        stats.invalidations += 1;
        stats.keys_invalidated += keys;
        if let Some(op) = operation {
            *stats
                .invalidations_by_operation
                .entry(op.to_owned())
                .or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Value {
        let stats = self.stats();
        let by_operation: Map<String, Value> = stats
            .by_operation
            .iter()
            .map(|(op, s)| {
                let mut v = s.to_value();
                v["configured_ttl"] = json!(self
                    .operation_ttls
                    .get(op)
                    .copied()
                    .unwrap_or(self.default_ttl));
                (op.clone(), v)
            })
            .collect();
        let by_tier: Map<String, Value> = stats
            .by_tier
            .iter()
            .map(|(tier, s)| (tier.to_string(), s.to_value()))
            .collect();
        let (hits, misses) = stats
            .by_operation
            .values()
            .fold((0, 0), |(h, m), s| (h + s.hits, m + s.misses));
        json!({
            "hits": hits,
            "misses": misses,
            "total_operations": stats.by_operation.values().map(|s| s.count).sum::<u64>(),
            "by_operation": by_operation,
            "by_tier": by_tier,
            "tiers": {"small": self.tiers.small, "medium": self.tiers.medium, "large": self.tiers.large},
            "operation_ttls": self.operation_ttls,
            "key_generation": {
                "total_keys_generated": stats.keys_built,
                "average_generation_time": if stats.keys_built == 0 { 0.0 } else { stats.key_build_seconds / stats.keys_built as f64 },
                "average_text_length": if stats.keys_built == 0 { 0.0 } else { stats.text_lengths_total as f64 / stats.keys_built as f64 },
                "max_text_length": stats.text_length_max,
                "keys_by_tier": stats.keys_by_tier,
                "keys_by_operation": stats.keys_by_operation,
            },
            "invalidations": {
                "total": stats.invalidations,
                "keys_invalidated": stats.keys_invalidated,
                "by_operation": stats.invalidations_by_operation,
            },
        })
    }
}
