//! The Fernet encryption key (or rotation list): present, valid, and not a known sample.

use super::{CheckResult, Finding};
use crate::crypto::keyring::key_bytes;
use crate::crypto::{Keyring, Secret};
use crate::environment::DetectedEnvironment;

const CHECK: &str = "encryption";
const GENERATE: &str =
    "REDIS_ENCRYPTION_KEY=$(secure-redis generate-key); to rotate, put the new key first: \
                        REDIS_ENCRYPTION_KEY=<new>,<old>";

/// The example key printed in our documentation. It is public, so it protects nothing.
pub const DOCUMENTATION_SAMPLE_KEY: &str = "osh2GKJFHvhPf2CHBp-FwXc3S-nC7srqvqTmMnSnxMs=";

/// The key's bytes, in either base64 alphabet (the sample key is refused in both).
fn decode(key: &str) -> Option<Vec<u8>> {
    key_bytes(key).map(|bytes| bytes.to_vec())
}

pub fn check_encryption_key(key: Option<&Secret>, env: &DetectedEnvironment) -> CheckResult {
    let mut result = CheckResult::default();
    let Some(key) = key.filter(|k| !k.expose().trim().is_empty()) else {
        result.info("status", "Missing");
        result.push(Finding::error(
            CHECK,
            format!(
                "No encryption key is configured; cached values must be encrypted ({} environment).",
                env.environment
            ),
            GENERATE,
            "encryption-keys",
        ));
        return result;
    };
    let keyring = match Keyring::parse(key.expose()) {
        Ok(keyring) => keyring,
        Err(err) => {
            result.info("status", "Invalid");
            result.push(Finding::error(
                CHECK,
                err.message,
                GENERATE,
                "encryption-keys",
            ));
            return result;
        }
    };
    let parts: Vec<&str> = key
        .expose()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let sample = decode(DOCUMENTATION_SAMPLE_KEY);
    for (position, part) in parts.iter().enumerate() {
        let bytes = decode(part).unwrap_or_default();
        if Some(&bytes) == sample.as_ref() {
            result.push(Finding::error(
                CHECK,
                format!(
                    "Encryption key #{} is the sample key from the documentation; anyone can decrypt with it.",
                    position + 1
                ),
                GENERATE,
                "encryption-keys",
            ));
            continue;
        }
        let distinct: std::collections::HashSet<u8> = bytes.iter().copied().collect();
        if distinct.len() < 12 {
            result.push(Finding::error(
                CHECK,
                format!(
                    "Encryption key #{} has almost no randomness ({} distinct bytes of 32); it was not generated \
                     from a random source.",
                    position + 1,
                    distinct.len()
                ),
                GENERATE,
                "encryption-keys",
            ));
        }
    }
    let distinct_keys: std::collections::HashSet<&str> = parts.iter().copied().collect();
    if distinct_keys.len() < parts.len() {
        result.push(Finding::warning(
            CHECK,
            "The encryption key list holds the same key twice.".into(),
            "List each key once, newest first: REDIS_ENCRYPTION_KEY=<new>,<old>",
            "key-rotation",
        ));
    }
    if keyring.len() > 4 {
        result.push(Finding::warning(
            CHECK,
            format!(
                "{} encryption keys are configured; every extra key is tried on reads of foreign data.",
                keyring.len()
            ),
            "Drop keys older than the longest cache TTL: REDIS_ENCRYPTION_KEY=<new>,<previous>",
            "key-rotation",
        ));
    }
    result.info("format", "Fernet (AES-128-CBC with HMAC-SHA256)");
    result.info("length", "256-bit");
    result.info("key_count", keyring.len());
    result.info("rotation", keyring.len() > 1);
    result.info(
        "status",
        if result.valid() {
            "Valid and functional"
        } else {
            "Refused"
        },
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate_encryption_key;
    use crate::environment::Environment;

    fn dev() -> DetectedEnvironment {
        DetectedEnvironment::fixed(Environment::Development)
    }

    #[test]
    fn valid_keys_and_rotation_lists() {
        let a = generate_encryption_key();
        let b = generate_encryption_key();
        let r = check_encryption_key(Some(&Secret::new(format!("{a},{b}"))), &dev());
        assert!(r.valid(), "{r:?}");
        assert_eq!(r.info["key_count"], 2);
        assert_eq!(r.info["rotation"], true);
    }

    #[test]
    fn missing_invalid_sample_and_zero_keys_are_refused() {
        assert!(!check_encryption_key(None, &dev()).valid());
        assert!(!check_encryption_key(Some(&Secret::new("nope")), &dev()).valid());
        let r = check_encryption_key(Some(&Secret::new(DOCUMENTATION_SAMPLE_KEY)), &dev());
        assert!(r.errors()[0].contains("sample key"));
        let zero = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, [0u8; 32]);
        let r = check_encryption_key(Some(&Secret::new(zero)), &dev());
        assert!(r.errors()[0].contains("randomness"));
    }
}
