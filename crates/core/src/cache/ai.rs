//! What makes the cache an AI-response cache: key names derived from (text, operation,
//! options) without exposing the text, a TTL per operation, and statistics by operation and
//! by text-size tier.
//!
//! Key names are `ai_cache:op:{operation}|txt:{digest}[|opts:{digest}][|q:{digest}]`. The
//! digests are HMAC-SHA256 (first 128 bits, hex) under a key derived from the encryption key:
//! processes sharing the key name entries alike, and nobody without it can test guesses
//! against the key names in Redis.

use crate::connection::{Failure, SecureConnection};
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use lru::LruCache;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::sync::Mutex;

pub const KEY_PREFIX: &str = "ai_cache:";
const OPERATION_PREFIX: &str = "ai_cache:op:";
pub const DEFAULT_OPERATION_TTLS: [(&str, u64); 5] = [
    ("summarize", 7200),
    ("sentiment", 3600),
    ("key_points", 5400),
    ("questions", 3600),
    ("qa", 1800),
];
const LATENCY_SAMPLES: usize = 1000;
const REMEMBERED_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiers {
    pub small: usize,
    pub medium: usize,
    pub large: usize,
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers {
            small: 500,
            medium: 5000,
            large: 50000,
        }
    }
}

impl Tiers {
    pub fn of(&self, length: usize) -> &'static str {
        if length < self.small {
            "small"
        } else if length < self.medium {
            "medium"
        } else if length < self.large {
            "large"
        } else {
            "xlarge"
        }
    }
}

pub const TIER_NAMES: [&str; 4] = ["small", "medium", "large", "xlarge"];

/// Operation names go into key names verbatim, so they must be short identifiers.
pub fn validate_operation(operation: &str) -> Result<()> {
    let ok = !operation.is_empty()
        && operation.len() <= 64
        && operation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "Operation {operation:?} must be 1 to 64 characters of letters, digits, '_', '-' or '.'"
        ))
        .with("operation", operation)
        .error_type("invalid_operation"))
    }
}

/// The operation of a key built by `build_key`, if it is one.
pub fn operation_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(OPERATION_PREFIX)?;
    Some(rest.split('|').next().unwrap_or(rest))
}

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
        sorted.sort_by(|a, b| a.total_cmp(b));
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
struct AiStats {
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

pub struct AiPolicy {
    /// One naming key per encryption key, primary first (see `Keyring::naming_keys`).
    naming_keys: Vec<[u8; 32]>,
    tiers: Tiers,
    default_ttl: u64,
    operation_ttls: BTreeMap<String, u64>,
    key_tiers: Mutex<LruCache<String, &'static str>>,
    /// For keys built while the keyring holds older keys: the names the same input had under
    /// each of them, so a miss right after a key rotation can still find the entry.
    previous_names: Mutex<LruCache<String, Vec<String>>>,
    stats: Mutex<AiStats>,
}

/// Writes `value` as JSON with object keys sorted at every level, so option order never
/// changes a key name.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (n, (k, v)) in entries.into_iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (n, v) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

impl AiPolicy {
    pub fn new(
        keyring: &Keyring,
        tiers: Tiers,
        default_ttl: u64,
        operation_ttls: &[(String, u64)],
    ) -> AiPolicy {
        let mut ttls: BTreeMap<String, u64> = DEFAULT_OPERATION_TTLS
            .iter()
            .map(|(op, ttl)| (op.to_string(), *ttl))
            .collect();
        for (op, ttl) in operation_ttls {
            ttls.insert(op.clone(), *ttl);
        }
        AiPolicy {
            naming_keys: keyring.naming_keys().to_vec(),
            tiers,
            default_ttl,
            operation_ttls: ttls,
            key_tiers: Mutex::new(LruCache::new(
                NonZeroUsize::new(REMEMBERED_KEYS).expect("non-zero"),
            )),
            previous_names: Mutex::new(LruCache::new(
                NonZeroUsize::new(REMEMBERED_KEYS).expect("non-zero"),
            )),
            stats: Mutex::new(AiStats::default()),
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, AiStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn digest(naming_key: &[u8; 32], domain: &[u8], data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(naming_key).expect("any key length");
        mac.update(domain);
        mac.update(&[0]);
        mac.update(data);
        let bytes = mac.finalize().into_bytes();
        bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn name_with(
        naming_key: &[u8; 32],
        text: &str,
        operation: &str,
        options: Option<&str>,
        question: Option<&str>,
    ) -> String {
        let mut key = format!(
            "{OPERATION_PREFIX}{operation}|txt:{}",
            Self::digest(naming_key, b"txt", text.as_bytes())
        );
        if let Some(options) = options {
            key.push_str("|opts:");
            key.push_str(&Self::digest(naming_key, b"opts", options.as_bytes()));
        }
        if let Some(question) = question {
            key.push_str("|q:");
            key.push_str(&Self::digest(naming_key, b"q", question.as_bytes()));
        }
        key
    }

    /// `options` is the canonical JSON of the options (None when there are none);
    /// `question` is `options["question"]` when truthy.
    pub fn build_key(
        &self,
        text: &str,
        operation: &str,
        options: Option<&str>,
        question: Option<&str>,
    ) -> Result<String> {
        let started = std::time::Instant::now();
        validate_operation(operation)?;
        let key = Self::name_with(&self.naming_keys[0], text, operation, options, question);
        if self.naming_keys.len() > 1 {
            let older = self.naming_keys[1..]
                .iter()
                .map(|naming_key| Self::name_with(naming_key, text, operation, options, question))
                .collect();
            self.previous_names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(key.clone(), older);
        }
        let length = text.chars().count();
        let tier = self.tiers.of(length);
        self.key_tiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key.clone(), tier);
        let mut stats = self.stats();
        stats.keys_built += 1;
        stats.key_build_seconds += started.elapsed().as_secs_f64();
        stats.text_lengths_total += length as u64;
        stats.text_length_max = stats.text_length_max.max(length as u64);
        *stats.keys_by_tier.entry(tier).or_default() += 1;
        *stats
            .keys_by_operation
            .entry(operation.to_owned())
            .or_default() += 1;
        Ok(key)
    }

    /// The names a key built here had under the keyring's older keys (empty with one key,
    /// or for a key this process did not build recently).
    pub fn previous_names(&self, key: &str) -> Vec<String> {
        self.previous_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek(key)
            .cloned()
            .unwrap_or_default()
    }

    /// The TTL `set` applies when called without one: by operation for AI keys, else None.
    pub fn ttl_for_key(&self, key: &str) -> Option<u64> {
        let operation = operation_of(key)?;
        Some(
            self.operation_ttls
                .get(operation)
                .copied()
                .unwrap_or(self.default_ttl),
        )
    }

    pub fn tier_of_key(&self, key: &str) -> &'static str {
        self.key_tiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek(key)
            .copied()
            .unwrap_or("unknown")
    }

    pub fn tier_of_text(&self, text: &str) -> &'static str {
        self.tiers.of(text.chars().count())
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

/// What Redis says about the `ai_cache:` namespace and the server, for `get_cache_stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceReport {
    pub reachable: bool,
    /// Keys in the namespace; None when the server refused SCAN.
    pub keys: Option<u64>,
    /// From INFO; None when the ACL user may not run it.
    pub memory_used: Option<String>,
    pub memory_used_bytes: Option<u64>,
    pub connected_clients: Option<u64>,
}

const SCAN_BATCH: u64 = 1000;

/// Counts the namespace with SCAN (the database may hold other applications' keys, so DBSIZE
/// would overstate it; KEYS would block the server), then reads INFO memory and clients.
pub async fn namespace_report(conn: &SecureConnection) -> NamespaceReport {
    let pattern = format!("{KEY_PREFIX}*");
    let keys = match conn.scan(&pattern, SCAN_BATCH as usize, false).await {
        // SCAN may return a key twice.
        Ok(names) => Some(names.into_iter().collect::<HashSet<_>>().len() as u64),
        Err(Failure::Command(_)) => None,
        Err(_) => return NamespaceReport::default(),
    };
    // One INFO reply on a node; a cluster answers with one per primary, which are summed.
    let info = conn
        .run(|mut c| async move {
            let memory: redis::Value = redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
            let clients: redis::Value = redis::cmd("INFO")
                .arg("clients")
                .query_async(&mut c)
                .await?;
            Ok((info_texts(memory), info_texts(clients)))
        })
        .await
        .unwrap_or_default();
    let (memory, clients) = info;
    let memory_used_bytes = sum_field(&memory, "used_memory");
    NamespaceReport {
        reachable: true,
        keys,
        memory_used: match memory.as_slice() {
            [one] => info_field(one, "used_memory_human").map(str::to_owned),
            _ => memory_used_bytes.map(human_bytes),
        },
        memory_used_bytes,
        connected_clients: sum_field(&clients, "connected_clients"),
    }
}

fn info_texts(reply: redis::Value) -> Vec<String> {
    match reply {
        redis::Value::BulkString(bytes) => vec![String::from_utf8_lossy(&bytes).into_owned()],
        redis::Value::VerbatimString { text, .. } => vec![text],
        redis::Value::SimpleString(text) => vec![text],
        redis::Value::Map(per_node) => per_node
            .into_iter()
            .flat_map(|(_, reply)| info_texts(reply))
            .collect(),
        _ => Vec::new(),
    }
}

fn sum_field(texts: &[String], name: &str) -> Option<u64> {
    let values: Vec<u64> = texts
        .iter()
        .filter_map(|text| info_field(text, name)?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Like Redis's `used_memory_human`: 1024-based, two decimals.
fn human_bytes(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", units[unit])
    }
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        (field == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate_encryption_key;

    fn policy(key: &str) -> AiPolicy {
        AiPolicy::new(&Keyring::parse(key).unwrap(), Tiers::default(), 3600, &[])
    }

    #[test]
    fn keys_are_stable_keyed_and_hide_the_text() {
        let key = generate_encryption_key();
        let a = policy(&key);
        let b = policy(&key);
        let options = canonical_json(&json!({"b": 1, "a": [1, {"z": 0, "y": 1}]}));
        let k1 = a
            .build_key("Secret diagnosis", "summarize", Some(&options), None)
            .unwrap();
        let k2 = b
            .build_key("Secret diagnosis", "summarize", Some(&options), None)
            .unwrap();
        assert_eq!(k1, k2, "two processes with the same key agree");
        assert!(k1.starts_with("ai_cache:op:summarize|txt:") && k1.contains("|opts:"));
        assert!(!k1.to_lowercase().contains("secret"));
        let other = policy(&generate_encryption_key());
        assert_ne!(
            k1,
            other
                .build_key("Secret diagnosis", "summarize", Some(&options), None)
                .unwrap()
        );
        let q = a.build_key("t", "qa", Some("{}"), Some("why?")).unwrap();
        assert!(q.contains("|q:"));
    }

    #[test]
    fn option_order_does_not_matter() {
        let one =
            canonical_json(&json!({"temperature": 0.7, "max": 10, "nested": {"b": 1, "a": 2}}));
        let two =
            canonical_json(&json!({"nested": {"a": 2, "b": 1}, "max": 10, "temperature": 0.7}));
        assert_eq!(one, two);
    }

    #[test]
    fn ttls_tiers_and_operations() {
        let p = policy(&generate_encryption_key());
        let key = p
            .build_key("x".repeat(600).as_str(), "qa", None, None)
            .unwrap();
        assert_eq!(p.ttl_for_key(&key), Some(1800));
        assert_eq!(p.ttl_for_key("plain:key"), None);
        assert_eq!(p.tier_of_key(&key), "medium");
        let custom = p.build_key("t", "translate", None, None).unwrap();
        assert_eq!(p.ttl_for_key(&custom), Some(3600));
        assert!(validate_operation("bad op").is_err() && validate_operation("").is_err());
        p.record(&key, Some(true), 0.001);
        p.record(&key, Some(false), 0.003);
        let snap = p.snapshot();
        assert_eq!(snap["by_operation"]["qa"]["hits"], 1);
        assert_eq!(snap["by_tier"]["medium"]["misses"], 1);
        assert_eq!(snap["by_operation"]["qa"]["configured_ttl"], 1800);
    }

    /// Key names must not change between releases: a change silently empties every
    /// deployed cache. The expected names were computed independently (Python hmac/hashlib).
    #[test]
    fn key_names_match_the_fixed_vector() {
        let p = policy("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=");
        let options = canonical_json(&json!({"question": "Who jumps?", "max_length": 100}));
        assert_eq!(options, r#"{"max_length":100,"question":"Who jumps?"}"#);
        assert_eq!(
            p.build_key("The quick brown fox", "qa", Some(&options), Some("Who jumps?"))
                .unwrap(),
            "ai_cache:op:qa|txt:66b5ef11c23444107b202ac866656974|opts:f9b1d801b17f1195f060deefb8fc137a\
             |q:35e0eaa965a7e1aad645edb436cf89f0"
        );
        assert_eq!(
            p.build_key("The quick brown fox", "summarize", None, None)
                .unwrap(),
            "ai_cache:op:summarize|txt:66b5ef11c23444107b202ac866656974"
        );
    }

    #[test]
    fn info_fields_are_read_by_exact_name() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n# Clients\r\nconnected_clients:3\r\n";
        assert_eq!(info_field(info, "used_memory"), Some("1048576"));
        assert_eq!(info_field(info, "used_memory_human"), Some("1.00M"));
        assert_eq!(info_field(info, "connected_clients"), Some("3"));
        assert_eq!(info_field(info, "used"), None);
        assert_eq!(info_field("", "used_memory"), None);
    }

    #[test]
    fn rotation_remembers_the_names_under_older_keys() {
        let (a, b) = (generate_encryption_key(), generate_encryption_key());
        let under_a = policy(&a).build_key("t", "qa", None, None).unwrap();
        let rotated = policy(&format!("{b},{a}"));
        let under_b = rotated.build_key("t", "qa", None, None).unwrap();
        assert_ne!(under_a, under_b);
        assert_eq!(rotated.previous_names(&under_b), vec![under_a]);
        assert!(policy(&b).previous_names(&under_b).is_empty());
    }
}
