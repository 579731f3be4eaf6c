//! Constructor options of the Redis cache, with the range checks of the layer we replace.

use super::namespace::Namespace;
use crate::error::{Error, ErrorCode, Result};

/// Longest key we accept, in UTF-8 bytes. Redis allows more, but a longer key is almost
/// always user text that should have been hashed (see `AIResponseCache.build_key`).
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest TTL we accept: one year.
pub const MAX_TTL_SECONDS: u64 = 365 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct CacheOptions {
    pub default_ttl: u64,
    pub enable_l1_cache: bool,
    pub l1_cache_size: usize,
    pub compression_threshold: usize,
    pub compression_level: i32,
    /// The prefix of every key this cache stores; empty by default (today's key names).
    pub namespace: Namespace,
    /// Share the connection, L1 and its coherence with other caches of this process built
    /// with the same settings (see `backend`); off gives the cache a connection of its own.
    pub share_connection: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            default_ttl: 3600,
            enable_l1_cache: true,
            l1_cache_size: 100,
            compression_threshold: 1000,
            compression_level: 6,
            namespace: Namespace::default(),
            share_connection: true,
        }
    }
}

/// `name must be between low and high[unit]`, with `{name: value}` as context, as in the
/// layer we replace.
fn check_range(name: &str, value: i64, (low, high): (i64, i64), unit: &str) -> Result<()> {
    if (low..=high).contains(&value) {
        return Ok(());
    }
    Err(
        Error::configuration(format!("{name} must be between {low} and {high}{unit}"))
            .with(name, value)
            .code(ErrorCode::InvalidCacheParameter),
    )
}

/// Accepted parameter ranges (inclusive); each cache class keeps those of the class it
/// replaces. The one source: Python reads them as `_native.GENERIC_RANGES` / `AI_RANGES`.
#[derive(Debug, Clone, Copy)]
pub struct Ranges {
    pub default_ttl: (i64, i64),
    pub l1_cache_size: (i64, i64),
    pub compression_threshold: (i64, i64),
    pub compression_level: (i64, i64),
}

/// GenericRedisCache: default_ttl 1 s..1 day, compression_threshold 100..100000 bytes.
pub const GENERIC_RANGES: Ranges = Ranges {
    default_ttl: (1, 86_400),
    l1_cache_size: (0, 10_000),
    compression_threshold: (100, 100_000),
    compression_level: (1, 9),
};

/// AIResponseCache: default_ttl 1 s..365 days, compression_threshold 0..1 MiB.
pub const AI_RANGES: Ranges = Ranges {
    default_ttl: (1, 365 * 86_400),
    l1_cache_size: (0, 10_000),
    compression_threshold: (0, 1_048_576),
    compression_level: (1, 9),
};

/// AIResponseCache's own parameters: `text_hash_threshold` (accepted for compatibility) and
/// the deprecated `memory_cache_size` alias of `l1_cache_size`.
pub const AI_TEXT_HASH_THRESHOLD_RANGE: (i64, i64) = (1, 100_000);
pub const AI_MEMORY_CACHE_SIZE_RANGE: (i64, i64) = (1, 10_000);

impl Ranges {
    /// (parameter, (low, high)) for every range, in the order they are checked.
    pub fn entries(&self) -> [(&'static str, (i64, i64)); 4] {
        [
            ("default_ttl", self.default_ttl),
            ("l1_cache_size", self.l1_cache_size),
            ("compression_level", self.compression_level),
            ("compression_threshold", self.compression_threshold),
        ]
    }
}

/// Which class's ranges a cache enforces. A type, not a string, so a typo cannot silently
/// select the wrong ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheProfile {
    /// `GenericRedisCache`.
    Generic,
    /// `AIResponseCache`.
    Ai,
}

impl CacheProfile {
    pub fn ranges(self) -> &'static Ranges {
        match self {
            CacheProfile::Generic => &GENERIC_RANGES,
            CacheProfile::Ai => &AI_RANGES,
        }
    }
}

impl CacheOptions {
    /// Checks raw integers as Python passes them (so negative values are reported, not wrapped).
    pub fn validated(
        default_ttl: i64,
        enable_l1_cache: bool,
        l1_cache_size: i64,
        compression_threshold: i64,
        compression_level: i64,
    ) -> Result<CacheOptions> {
        Self::validated_with(
            &GENERIC_RANGES,
            default_ttl,
            enable_l1_cache,
            l1_cache_size,
            compression_threshold,
            compression_level,
        )
    }

    pub fn validated_with(
        ranges: &Ranges,
        default_ttl: i64,
        enable_l1_cache: bool,
        l1_cache_size: i64,
        compression_threshold: i64,
        compression_level: i64,
    ) -> Result<CacheOptions> {
        check_range("default_ttl", default_ttl, ranges.default_ttl, " seconds")?;
        check_range("l1_cache_size", l1_cache_size, ranges.l1_cache_size, "")?;
        check_range(
            "compression_level",
            compression_level,
            ranges.compression_level,
            "",
        )?;
        check_range(
            "compression_threshold",
            compression_threshold,
            ranges.compression_threshold,
            " bytes",
        )?;
        Ok(CacheOptions {
            default_ttl: default_ttl as u64,
            enable_l1_cache,
            l1_cache_size: l1_cache_size as usize,
            compression_threshold: compression_threshold as usize,
            compression_level: compression_level as i32,
            ..CacheOptions::default()
        })
    }

    /// These options for a cache whose keys all live under `namespace` (checked here).
    pub fn with_namespace(self, namespace: &str) -> Result<CacheOptions> {
        Ok(CacheOptions {
            namespace: Namespace::new(namespace)?,
            ..self
        })
    }
}

pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::validation("Cache key must not be empty.").code(ErrorCode::InvalidKey));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::validation(format!(
            "Cache key is {} bytes; the maximum is {MAX_KEY_BYTES}. Hash long inputs into the key \
             (AIResponseCache.build_key does).",
            key.len()
        ))
        .with("key_bytes", key.len())
        .code(ErrorCode::InvalidKey));
    }
    Ok(())
}

/// A Redis glob must be non-empty and well formed: an unterminated `[`, a range ending in
/// `]` or a trailing `\\` are refused, because Redis and any client-side matcher disagree on
/// them, and the L1 tier must evict exactly what the server deletes.
pub fn validate_pattern(pattern: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(
            Error::validation(format!("Invalid key pattern {pattern:?}: {why}."))
                .code(ErrorCode::InvalidPattern),
        )
    };
    if pattern.is_empty() {
        return invalid("it is empty; use \"*\" to match every key (or clear())");
    }
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 == bytes.len() => return invalid("it ends with a lone backslash"),
            b'\\' => i += 2,
            b'[' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return invalid("a [ class is not closed"),
                        Some(b']') => break,
                        Some(b'\\') => i += 2,
                        Some(b'-') if bytes.get(i + 1) == Some(&b']') => {
                            return invalid("a range ends in ]; escape a literal - as \\-")
                        }
                        Some(_) => i += 1,
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// `None` means the default; 0 also means the default, as in the layer we replace.
pub fn resolve_ttl(ttl: Option<i64>, default_ttl: u64) -> Result<u64> {
    match ttl {
        None | Some(0) => Ok(default_ttl),
        Some(ttl) if ttl < 0 => Err(Error::validation(format!(
            "ttl must be a positive number of seconds (or None for the default), got {ttl}."
        ))
        .with("ttl", ttl)
        .code(ErrorCode::InvalidTtl)),
        Some(ttl) if ttl as u64 > MAX_TTL_SECONDS => Err(Error::validation(format!(
            "ttl must be at most {MAX_TTL_SECONDS} seconds (one year), got {ttl}."
        ))
        .with("ttl", ttl)
        .code(ErrorCode::InvalidTtl)),
        Some(ttl) => Ok(ttl as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_replaced_layer() {
        assert!(CacheOptions::validated(3600, true, 100, 1000, 6).is_ok());
        let err = CacheOptions::validated(0, true, 100, 1000, 6).unwrap_err();
        assert_eq!(
            err.message,
            "default_ttl must be between 1 and 86400 seconds"
        );
        assert_eq!(err.context["default_ttl"], 0);
        assert!(CacheOptions::validated(3600, true, 10001, 1000, 6).is_err());
        assert!(CacheOptions::validated(3600, true, 100, 99, 6).is_err());
        assert!(CacheOptions::validated(3600, true, 100, 1000, 10).is_err());
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["", "user:[ab", "a[\\]", "[a-]", "trailing\\"] {
            assert!(validate_pattern(bad).is_err(), "{bad}");
        }
        for good in [
            "*", "user:*", "h[ae]llo", "h[^e]llo", "[a-c]x", "a\\*b", "[\\-]",
        ] {
            assert!(validate_pattern(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn keys_and_ttls() {
        assert!(validate_key("").is_err());
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(validate_key("ok").is_ok());
        assert_eq!(resolve_ttl(None, 60).unwrap(), 60);
        assert_eq!(resolve_ttl(Some(0), 60).unwrap(), 60);
        assert_eq!(resolve_ttl(Some(5), 60).unwrap(), 5);
        assert!(resolve_ttl(Some(-1), 60).is_err());
        assert!(resolve_ttl(Some(i64::MAX), 60).is_err());
    }
}
