//! Fernet keys with rotation: `REDIS_ENCRYPTION_KEY` may hold several comma-separated keys;
//! the first encrypts, every key decrypts (the semantics of `cryptography`'s MultiFernet).
//!
//! Only `Fernet::decrypt` is ever called on untrusted input. `decrypt_with_ttl` adds the
//! token's timestamp to the ttl before checking the HMAC and overflows (panics in debug
//! builds) on a crafted timestamp; cache expiry is Redis's job anyway.

use crate::error::{Error, Result};
use fernet::Fernet;

pub struct Keyring {
    keys: Vec<Fernet>,
    /// HMAC keys for naming cache entries (see `naming_keys`), one per Fernet key, in order.
    naming_keys: Vec<[u8; 32]>,
}

/// Why a token did not decrypt. Deliberately carries no detail: a caller must not be able to
/// tell "wrong key" from "tampered" from "not a token" by timing or message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptError;

impl Keyring {
    /// Parses one key or a comma-separated rotation list. Errors never echo key material.
    pub fn parse(keys: &str) -> Result<Keyring> {
        let parts: Vec<&str> = keys
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect();
        if parts.is_empty() {
            return Err(Error::configuration(
                "Encryption key is missing. Set REDIS_ENCRYPTION_KEY (or pass encryption_key=) to a Fernet key; \
                 generate one with `python -c \"import secure_redis; print(secure_redis.generate_encryption_key())\"`.",
            )
            .error_type("invalid_encryption_key"));
        }
        let mut fernets = Vec::with_capacity(parts.len());
        for (position, part) in parts.iter().enumerate() {
            match Fernet::new(part) {
                Some(fernet) => fernets.push(fernet),
                None => {
                    return Err(Error::configuration(format!(
                        "Encryption key #{} is not a valid Fernet key: it must be 32 bytes encoded as url-safe base64 \
                         (44 characters). Generate one with secure_redis.generate_encryption_key().",
                        position + 1
                    ))
                    .error_type("invalid_encryption_key")
                    .with("key_position", position + 1)
                    .with("key_length", part.len()))
                }
            }
        }
        Ok(Keyring {
            keys: fernets,
            naming_keys: parts.iter().map(|part| derive_naming_key(part)).collect(),
        })
    }

    /// A key for HMACs over key names, so names can be derived from user text without
    /// revealing it. Derived from the primary Fernet key: every process sharing the key names
    /// entries alike.
    pub fn naming_key(&self) -> &[u8; 32] {
        &self.naming_keys[0]
    }

    /// The naming keys of every Fernet key, primary first. Rotating the primary key renames
    /// entries; the older keys let a reader still find entries written under the old names.
    pub fn naming_keys(&self) -> &[[u8; 32]] {
        &self.naming_keys
    }

    /// Number of keys, the first being the one that encrypts.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A standard Fernet token (url-safe base64 text) made with the primary key.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        self.keys[0].encrypt(plaintext)
    }

    pub fn decrypt(&self, token: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let token = std::str::from_utf8(token).map_err(|_| DecryptError)?;
        self.keys
            .iter()
            .find_map(|key| key.decrypt(token).ok())
            .ok_or(DecryptError)
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} key(s), ***)", self.keys.len())
    }
}

fn derive_naming_key(primary: &str) -> [u8; 32] {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(primary.trim().trim_end_matches('='))
        .unwrap_or_else(|_| primary.as_bytes().to_vec());
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(&raw).expect("HMAC takes any key length");
    mac.update(b"secure_redis/key-names/v1");
    mac.finalize().into_bytes().into()
}

/// A fresh Fernet key from the operating system's random source.
pub fn generate_encryption_key() -> String {
    Fernet::generate_key()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python: Fernet(b"...").encrypt(b'{"a": 1}') using the key below.
    const PY_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

    #[test]
    fn round_trip_and_rotation() {
        let old = generate_encryption_key();
        let new = generate_encryption_key();
        let old_ring = Keyring::parse(&old).unwrap();
        let token = old_ring.encrypt(b"secret value");
        assert!(token.starts_with("gAAAAA"));

        let rotated = Keyring::parse(&format!("{new}, {old}")).unwrap();
        assert_eq!(rotated.len(), 2);
        assert_eq!(rotated.decrypt(token.as_bytes()).unwrap(), b"secret value");
        let fresh = rotated.encrypt(b"x");
        assert!(
            old_ring.decrypt(fresh.as_bytes()).is_err(),
            "new writes use the new key"
        );
        assert!(Keyring::parse(&new)
            .unwrap()
            .decrypt(fresh.as_bytes())
            .is_ok());
    }

    #[test]
    fn naming_keys_follow_the_key_order() {
        let (a, b) = (generate_encryption_key(), generate_encryption_key());
        let only_a = Keyring::parse(&a).unwrap();
        let rotated = Keyring::parse(&format!("{b},{a}")).unwrap();
        assert_eq!(rotated.naming_keys().len(), 2);
        assert_eq!(&rotated.naming_keys()[1], only_a.naming_key());
        assert_ne!(rotated.naming_key(), only_a.naming_key());
    }

    #[test]
    fn bad_keys_are_configuration_errors_without_key_material() {
        for bad in ["", " , ", "not-a-key", "c2hvcnQ="] {
            let err = Keyring::parse(bad).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Configuration);
            assert_eq!(err.context["error_type"], "invalid_encryption_key");
            if !bad.trim().is_empty() && bad != " , " {
                assert!(!err.to_string().contains(bad));
            }
        }
    }

    #[test]
    fn garbage_tokens_do_not_decrypt_or_panic() {
        let ring = Keyring::parse(PY_KEY).unwrap();
        let mut crafted = vec![0x80u8];
        crafted.extend_from_slice(&u64::MAX.to_be_bytes());
        crafted.extend_from_slice(&[0u8; 64]);
        let crafted = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, crafted);
        for token in [
            b"".as_slice(),
            b"gAAAAA",
            b"{\"a\":1}",
            &[0xff, 0xfe, 0x00],
            crafted.as_bytes(),
        ] {
            assert_eq!(ring.decrypt(token), Err(DecryptError));
        }
    }
}
