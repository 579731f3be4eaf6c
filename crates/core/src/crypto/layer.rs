//! `EncryptedCacheLayer`'s core: Fernet over JSON bytes for callers who encrypt outside the
//! cache, with the timing counters its `get_performance_stats()` reports. No passthrough mode:
//! a layer cannot be made without a valid key.

use super::{generate_encryption_key, Keyring, Secret};
use crate::cache::stats::average_ms;
use crate::error::{Error, ErrorCode, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

pub struct EncryptionLayer {
    /// The layer's only secret; wipes its keys when the layer drops (see `keyring`).
    keyring: Keyring,
    monitoring: bool,
    encryptions: AtomicU64,
    decryptions: AtomicU64,
    encrypt_nanos: AtomicU64,
    decrypt_nanos: AtomicU64,
}

/// `get_performance_stats()`: field names and order are the dict Python sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LayerStats {
    Disabled {
        error: &'static str,
    },
    Enabled {
        encryption_enabled: bool,
        encryption_operations: u64,
        decryption_operations: u64,
        total_operations: u64,
        total_encryption_time: f64,
        total_decryption_time: f64,
        avg_encryption_time: f64,
        avg_decryption_time: f64,
        performance_monitoring: bool,
    },
}

impl EncryptionLayer {
    /// `key` is one Fernet key or a comma-separated rotation list, newest first.
    pub fn new(key: &str, monitoring: bool) -> Result<EncryptionLayer> {
        Ok(EncryptionLayer {
            keyring: Keyring::parse(key)?,
            monitoring,
            encryptions: AtomicU64::new(0),
            decryptions: AtomicU64::new(0),
            encrypt_nanos: AtomicU64::new(0),
            decrypt_nanos: AtomicU64::new(0),
        })
    }

    /// A layer under a fresh key of its own (`EncryptedCacheLayer.create_with_generated_key`).
    /// The key lives only in this layer: what it encrypts is readable by nothing else.
    /// Whether operations are counted and timed (`get_performance_stats`).
    pub fn monitoring(&self) -> bool {
        self.monitoring
    }

    pub fn with_generated_key(monitoring: bool) -> Result<EncryptionLayer> {
        let key = Secret::new(generate_encryption_key());
        Self::new(key.expose(), monitoring)
    }

    pub fn key_count(&self) -> usize {
        self.keyring.len()
    }

    /// A Fernet token of `json` under the primary key.
    pub fn encrypt(&self, json: &[u8]) -> String {
        let started = Instant::now();
        let token = self.keyring.encrypt(json);
        Self::count(&self.encryptions, &self.encrypt_nanos, started);
        token
    }

    /// The plaintext of a token made with any of the layer's keys (by us or by
    /// `cryptography.fernet`). The error says nothing about why: wrong key, tampered and
    /// not-a-token must look alike.
    pub fn decrypt(&self, token: &[u8]) -> Result<Vec<u8>> {
        let started = Instant::now();
        let plaintext = self.keyring.decrypt(token).map_err(|_| {
            Error::configuration(
                "Decryption failed: the data is not a Fernet token made with any configured key \
                 (wrong key, tampered or unencrypted data).",
            )
            .code(ErrorCode::DecryptionFailure)
            .with("data_size", token.len())
        })?;
        Self::count(&self.decryptions, &self.decrypt_nanos, started);
        Ok(plaintext)
    }

    /// One more operation, and its time: the cryptography only (the bindings' JSON
    /// conversion is not the layer's to time).
    fn count(operations: &AtomicU64, nanos: &AtomicU64, started: Instant) {
        operations.fetch_add(1, Relaxed);
        nanos.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
    }

    pub fn stats(&self) -> LayerStats {
        if !self.monitoring {
            return LayerStats::Disabled {
                error: "Performance monitoring is disabled",
            };
        }
        let encryptions = self.encryptions.load(Relaxed);
        let decryptions = self.decryptions.load(Relaxed);
        let encrypt_seconds = self.encrypt_nanos.load(Relaxed) as f64 / 1e9;
        let decrypt_seconds = self.decrypt_nanos.load(Relaxed) as f64 / 1e9;
        LayerStats::Enabled {
            encryption_enabled: true,
            encryption_operations: encryptions,
            decryption_operations: decryptions,
            total_operations: encryptions + decryptions,
            total_encryption_time: encrypt_seconds,
            total_decryption_time: decrypt_seconds,
            avg_encryption_time: average_ms(encrypt_seconds, encryptions),
            avg_decryption_time: average_ms(decrypt_seconds, decryptions),
            performance_monitoring: true,
        }
    }

    pub fn reset_stats(&self) {
        for counter in [
            &self.encryptions,
            &self.decryptions,
            &self.encrypt_nanos,
            &self.decrypt_nanos,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_generated_key_is_fresh_and_keeps_the_monitoring_choice() {
        let one = EncryptionLayer::with_generated_key(false).unwrap();
        let two = EncryptionLayer::with_generated_key(true).unwrap();
        let token = one.encrypt(b"1");
        assert_eq!(one.decrypt(token.as_bytes()).unwrap(), b"1");
        assert!(two.decrypt(token.as_bytes()).is_err());
        assert!(matches!(one.stats(), LayerStats::Disabled { .. }));
        assert!(matches!(two.stats(), LayerStats::Enabled { .. }));
    }

    #[test]
    fn round_trips_counts_and_refuses_foreign_tokens() {
        let layer = EncryptionLayer::new(&generate_encryption_key(), true).unwrap();
        let token = layer.encrypt(br#"{"a":1}"#);
        assert_eq!(layer.decrypt(token.as_bytes()).unwrap(), br#"{"a":1}"#);
        let other = EncryptionLayer::new(&generate_encryption_key(), true).unwrap();
        let err = other.decrypt(token.as_bytes()).unwrap_err();
        assert_eq!(err.error_code(), Some(ErrorCode::DecryptionFailure));
        let LayerStats::Enabled {
            encryption_operations,
            decryption_operations,
            total_operations,
            ..
        } = layer.stats()
        else {
            panic!("monitoring is on");
        };
        assert_eq!(
            (
                encryption_operations,
                decryption_operations,
                total_operations
            ),
            (1, 1, 2)
        );
        layer.reset_stats();
        assert_eq!(
            serde_json::to_value(layer.stats()).unwrap()["total_operations"],
            0
        );
    }

    #[test]
    fn without_monitoring_the_stats_say_so() {
        let layer = EncryptionLayer::new(&generate_encryption_key(), false).unwrap();
        assert_eq!(
            serde_json::to_value(layer.stats()).unwrap(),
            json!({"error": "Performance monitoring is disabled"})
        );
    }
}
