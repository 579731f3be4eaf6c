//! What makes the cache an AI-response cache, a policy over `cache`: key names derived from
//! (text, operation, options) without exposing the text (`naming`), a TTL per operation, text
//! tiers, and statistics by operation and by tier (`stats`).

pub mod naming;
mod stats;

use crate::crypto::Keyring;
use crate::error::Result;
use hmac::{Hmac, Mac};
use lru::LruCache;
use naming::{key_name, operation_of, option_parts, validate_operation};
use serde_json::Value;
use sha2::Sha256;
use stats::AiStats;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use zeroize::Zeroizing;

pub use naming::{canonical_json, KEY_PREFIX};

pub const DEFAULT_OPERATION_TTLS: [(&str, u64); 5] = [
    ("summarize", 7200),
    ("sentiment", 3600),
    ("key_points", 5400),
    ("questions", 3600),
    ("qa", 1800),
];
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

/// The naming key of tenant scope `scope` derived from `naming_key` (see `build_scoped_key`).
fn scope_naming_key(naming_key: &[u8; 32], scope: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(naming_key).expect("any key length");
    mac.update(b"secure_redis/scope-names/v1\0");
    mac.update(scope.as_bytes());
    mac.finalize().into_bytes().into()
}

pub struct AiPolicy {
    /// One naming key per encryption key, primary first (see `Keyring::naming_keys`); a copy
    /// the policy owns, wiped when it drops.
    naming_keys: Zeroizing<Vec<[u8; 32]>>,
    tiers: Tiers,
    default_ttl: u64,
    operation_ttls: BTreeMap<String, u64>,
    key_tiers: Mutex<LruCache<String, &'static str>>,
    /// For keys built while the keyring holds older keys: the names the same input had under
    /// each of them, so a miss right after a key rotation can still find the entry.
    previous_names: Mutex<LruCache<String, Vec<String>>>,
    stats: Mutex<AiStats>,
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
            naming_keys: Zeroizing::new(keyring.naming_keys().to_vec()),
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

    /// The key name of (`text`, `operation`, `options`), the options as given by the caller.
    pub fn build_key_with_options(
        &self,
        text: &str,
        operation: &str,
        options: Option<&Value>,
    ) -> Result<String> {
        let (canonical, question) = option_parts(options);
        self.build_key(text, operation, canonical.as_deref(), question.as_deref())
    }

    /// `build_key_with_options` for the view of tenant scope `scope`: the digests are made
    /// under naming keys of that scope's own (each naming key's HMAC of the scope's name), so
    /// one request cached by two tenants leaves no equal names in Redis.
    pub fn build_scoped_key(
        &self,
        scope: &str,
        text: &str,
        operation: &str,
        options: Option<&Value>,
    ) -> Result<String> {
        let (canonical, question) = option_parts(options);
        let keys: Zeroizing<Vec<[u8; 32]>> = Zeroizing::new(
            self.naming_keys
                .iter()
                .map(|key| scope_naming_key(key, scope))
                .collect(),
        );
        self.build_key_under(
            &keys,
            text,
            operation,
            canonical.as_deref(),
            question.as_deref(),
        )
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
        self.build_key_under(&self.naming_keys, text, operation, options, question)
    }

    fn build_key_under(
        &self,
        naming_keys: &[[u8; 32]],
        text: &str,
        operation: &str,
        options: Option<&str>,
        question: Option<&str>,
    ) -> Result<String> {
        let started = std::time::Instant::now();
        validate_operation(operation)?;
        let key = key_name(&naming_keys[0], text, operation, options, question);
        if naming_keys.len() > 1 {
            let older = naming_keys[1..]
                .iter()
                .map(|naming_key| key_name(naming_key, text, operation, options, question))
                .collect();
            self.previous_names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .put(key.clone(), older);
        }
        let length = text.chars().count();
        let tier = self.tiers.of(length);
        self.key_tiers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(key.clone(), tier);
        self.stats().record_key_built(
            started.elapsed().as_secs_f64(),
            length as u64,
            tier,
            operation,
        );
        Ok(key)
    }

    /// The names a key built here had under the keyring's older keys (empty with one key,
    /// or for a key this process did not build recently).
    pub fn previous_names(&self, key: &str) -> Vec<String> {
        self.previous_names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .peek(key)
            .copied()
            .unwrap_or("unknown")
    }

    pub fn tier_of_text(&self, text: &str) -> &'static str {
        self.tiers.of(text.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_keys_differ_per_scope_and_keep_the_key_format() {
        let ring = Keyring::parse(&crate::crypto::generate_encryption_key()).unwrap();
        let policy = AiPolicy::new(&ring, Tiers::default(), 3600, &[]);
        let other = AiPolicy::new(&ring, Tiers::default(), 3600, &[]);
        let plain = policy.build_key_with_options("text", "qa", None).unwrap();
        let a = policy.build_scoped_key("a", "text", "qa", None).unwrap();
        let b = policy.build_scoped_key("b", "text", "qa", None).unwrap();
        assert!(plain != a && a != b && plain != b);
        assert_eq!(other.build_scoped_key("a", "text", "qa", None).unwrap(), a);
        assert!(a.starts_with("ai_cache:op:qa|txt:"));
        assert_eq!(policy.ttl_for_key(&a), Some(1800));
    }
    use crate::crypto::generate_encryption_key;
    use serde_json::json;

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
