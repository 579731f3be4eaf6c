//! Tenant scopes: views of one cache whose entries are sealed under a data key of their own.
//!
//! What a scope is in Redis:
//! * **Its key record**, `{namespace}secure_redis:scope-key:{digest}`, where `digest` is the
//!   HMAC of the scope's name under the keyring's naming key (`name_digest`, domain "scope"):
//!   nobody without the encryption key can tell which tenant a record belongs to, or test a
//!   guess. The record is a Fernet token under the master keyring (the cache's
//!   `REDIS_ENCRYPTION_KEY`) of `RecordKeys`, bound to its database, namespace and scope name
//!   (a copy under another scope's record name does not open there). It has no expiry.
//! * **Its entries**, `{namespace}secure_redis:scope:{location}:{key}`, where `location` is 16
//!   random bytes (hex) drawn when the scope is created: a forgotten and re-created scope
//!   never shares a name with its former self. Each is an ordinary entry of the codec sealed
//!   under the scope's data key (a random Fernet key in the record), bound to the location
//!   through the binding's scope field: a token of one scope does not open in another, even
//!   copied onto its name. Lock and tag names of a scope are HMACs under the data key's naming
//!   key, so they too say nothing across scopes.
//!
//! Master-key rotation: the record name follows the primary key's naming key, so a process
//! whose primary key is new finds no record under the new digest; it looks under the digest
//! of each older key in its keyring and, finding the record there, writes it again under the
//! new digest, sealed by the new primary key (`rewrapped`). The data key and the location are
//! unchanged, so no entry is re-encrypted or renamed. The new record lists the old record
//! names (`aliases`), so `forget_scope` deletes every copy even after the old key has left the
//! keyring; the old copy stays meanwhile for processes that still run with the old key.
//!
//! `CacheView` is what the bindings hold: the whole cache, or one scope of it. A scope's state
//! lives in a `ScopeSlot`, one per scope and cache settings in the backend, so the per-request
//! caches of an app share one resolved data key; see `generic/scoped.rs` for how a slot is
//! resolved, kept current across processes, and forgotten.

use super::GenericRedisCache;
use crate::crypto::keyring::{hex, name_digest};
use crate::crypto::Keyring;
use crate::error::{Error, ErrorCode, Result};
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

/// Names of scope entries start with this (after the namespace), then the location.
pub const ENTRY_PREFIX: &str = "secure_redis:scope:";
/// Names of scope key records start with this (after the namespace), then the digest.
pub const RECORD_PREFIX: &str = "secure_redis:scope-key:";
/// What every name the scopes of a namespace use starts with (entries and records): the
/// parent cache leaves these out of what it lists as its own.
pub const RESERVED_PREFIX: &str = "secure_redis:scope";
/// Longest scope name, in UTF-8 bytes.
pub const MAX_SCOPE_NAME_BYTES: usize = 1024;
/// Random bytes naming a scope's entries.
pub const LOCATION_LEN: usize = 16;
/// Record names an old key may have left behind that a record remembers (rotations).
const MAX_ALIASES: usize = 16;
/// Longest record token we read: a record with every alias is well under it.
pub const MAX_RECORD_BYTES: usize = 4096;
/// Scope slots kept per backend; past it, slots nobody holds are dropped.
const MAX_SLOTS: usize = 10_000;

const RECORD_MAGIC: &[u8; 4] = b"SRK\x01";
const BINDING_DOMAIN: &[u8] = b"secure_redis/scope-record/v1\0";
const BINDING_LEN: usize = 16;
const DIGEST_HEX_LEN: usize = 32;

/// A scope name as the caller gives it: any text of 1..=1024 bytes.
pub fn validate_scope_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_SCOPE_NAME_BYTES {
        return Err(Error::validation(format!(
            "A scope name must be 1 to {MAX_SCOPE_NAME_BYTES} bytes of text; got {} bytes.",
            name.len()
        ))
        .with("scope_bytes", name.len())
        .code(ErrorCode::InvalidScope));
    }
    Ok(())
}

/// The record digests of scope `name`: one per naming key of `master`, primary first.
pub fn record_digests(master: &Keyring, name: &str) -> Vec<String> {
    master
        .naming_keys()
        .iter()
        .map(|key| name_digest(key, b"scope", name.as_bytes()))
        .collect()
}

/// What binds a record to its scope: its database, namespace and the scope's name. Sealed
/// inside the record, so it reveals nothing.
pub fn record_binding(database: i64, namespace: &str, name: &str) -> [u8; BINDING_LEN] {
    let mut hash = Sha256::new();
    hash.update(BINDING_DOMAIN);
    hash.update(database.to_be_bytes());
    hash.update((namespace.len() as u64).to_be_bytes());
    hash.update(namespace.as_bytes());
    hash.update(name.as_bytes());
    let mut out = [0u8; BINDING_LEN];
    out.copy_from_slice(&hash.finalize()[..BINDING_LEN]);
    out
}

/// The secret part of a scope: where its entries live and the key that seals them.
pub struct RecordKeys {
    pub location: [u8; LOCATION_LEN],
    data_key: Zeroizing<[u8; 32]>,
    /// Digests of record names under older naming keys this record was copied from.
    pub aliases: Vec<String>,
}

impl std::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKeys")
            .field("location", &hex(&self.location))
            .field("aliases", &self.aliases.len())
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>> {
    let mut bytes = Zeroizing::new([0u8; N]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|_| {
            Error::infrastructure("The operating system's random source failed.")
                .code(ErrorCode::RandomSourceFailure)
        })?;
    Ok(bytes)
}

impl RecordKeys {
    /// A new scope: a random location and a random data key.
    pub fn generate() -> Result<RecordKeys> {
        Ok(RecordKeys {
            location: *random::<LOCATION_LEN>()?,
            data_key: random::<32>()?,
            aliases: Vec::new(),
        })
    }

    pub fn location_hex(&self) -> String {
        hex(&self.location)
    }

    /// The keyring that seals the scope's entries (and names its locks and tags).
    pub fn keyring(&self) -> Result<Keyring> {
        let text = Zeroizing::new(URL_SAFE.encode(self.data_key.as_ref()));
        Keyring::parse(&text)
    }

    /// The same scope, remembering `alias` (an older record digest) among its copies.
    pub fn with_alias(mut self, alias: &str) -> RecordKeys {
        if !self.aliases.iter().any(|known| known == alias) && self.aliases.len() < MAX_ALIASES {
            self.aliases.push(alias.to_owned());
        }
        self
    }

    /// The record token: `RECORD_MAGIC || binding || location || data key || n ||
    /// n × 32-char alias digests`, sealed by `master`'s primary key.
    pub fn seal(&self, master: &Keyring, binding: &[u8; BINDING_LEN]) -> Vec<u8> {
        let size = 4 + BINDING_LEN + LOCATION_LEN + 32 + 1 + self.aliases.len() * DIGEST_HEX_LEN;
        master.encrypt_with(size, |buf| {
            buf.extend_from_slice(RECORD_MAGIC);
            buf.extend_from_slice(binding);
            buf.extend_from_slice(&self.location);
            buf.extend_from_slice(self.data_key.as_ref());
            buf.push(self.aliases.len() as u8);
            for alias in &self.aliases {
                buf.extend_from_slice(alias.as_bytes());
            }
        })
    }

    /// The keys in a record token, if `master` opens it and it is bound to `binding`.
    pub fn open(master: &Keyring, binding: &[u8; BINDING_LEN], token: &[u8]) -> Option<RecordKeys> {
        let plain = Zeroizing::new(master.decrypt(token).ok()?);
        let fixed = 4 + BINDING_LEN + LOCATION_LEN + 32 + 1;
        if plain.len() < fixed
            || &plain[..4] != RECORD_MAGIC
            || plain[4..4 + BINDING_LEN] != *binding
        {
            return None;
        }
        let mut at = 4 + BINDING_LEN;
        let mut location = [0u8; LOCATION_LEN];
        location.copy_from_slice(&plain[at..at + LOCATION_LEN]);
        at += LOCATION_LEN;
        let mut data_key = Zeroizing::new([0u8; 32]);
        data_key.copy_from_slice(&plain[at..at + 32]);
        at += 32;
        let count = usize::from(plain[at]);
        at += 1;
        if plain.len() != at + count * DIGEST_HEX_LEN || count > MAX_ALIASES {
            return None;
        }
        let aliases = plain[at..]
            .chunks(DIGEST_HEX_LEN)
            .map(|chunk| std::str::from_utf8(chunk).ok().map(str::to_owned))
            .collect::<Option<Vec<String>>>()?;
        Some(RecordKeys {
            location,
            data_key,
            aliases,
        })
    }
}

/// A scope as one cache setting sees it: its record names and, once resolved, the record
/// read last with the view of the cache it opens.
pub struct ScopeSlot {
    /// Record digests, one per naming key of the master keyring, primary first.
    pub digests: Vec<String>,
    /// The Redis names of those records, in the same order.
    pub names: Vec<String>,
    pub binding: [u8; BINDING_LEN],
    state: Mutex<Option<Resolved>>,
}

/// A resolved scope: the record token as read (compared with L1's copy to know it is still
/// current) and the cache of the scope's entries it opened.
#[derive(Clone)]
pub struct Resolved {
    pub record: Arc<[u8]>,
    /// The scope's entry prefix (namespace included), for evicting them from L1.
    pub prefix: String,
    pub cache: Arc<GenericRedisCache>,
}

impl ScopeSlot {
    pub fn new(digests: Vec<String>, names: Vec<String>, binding: [u8; BINDING_LEN]) -> ScopeSlot {
        ScopeSlot {
            digests,
            names,
            binding,
            state: Mutex::new(None),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, Option<Resolved>> {
        // Every update is one assignment: a poisoned lock still holds a consistent value.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Which slot serves a scope for a cache: the scope, and the cache settings its view uses.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub digest: String,
    pub default_ttl: u64,
    pub compression_threshold: usize,
    pub compression_level: i32,
}

/// The scopes a backend's caches have used in this process.
#[derive(Default)]
pub struct ScopeRegistry {
    slots: Mutex<HashMap<SlotKey, Arc<ScopeSlot>>>,
}

impl ScopeRegistry {
    fn slots(&self) -> MutexGuard<'_, HashMap<SlotKey, Arc<ScopeSlot>>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slot for `key`, made by `make` if there is none.
    pub fn slot(&self, key: SlotKey, make: impl FnOnce() -> ScopeSlot) -> Arc<ScopeSlot> {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        if slots.len() >= MAX_SLOTS {
            // Slots a view still holds stay; the rest are resolved again when next used.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = Arc::new(make());
        slots.insert(key, slot.clone());
        slot
    }

    /// Every slot of the scope whose primary record digest is `digest`.
    pub fn of_scope(&self, digest: &str) -> Vec<Arc<ScopeSlot>> {
        self.slots()
            .iter()
            .filter(|(key, _)| key.digest == digest)
            .map(|(_, slot)| slot.clone())
            .collect()
    }

    /// Forgets every slot: their views hold caches that hold the backend, a cycle the
    /// backend's closing must break.
    pub fn clear(&self) {
        let slots: Vec<Arc<ScopeSlot>> = self.slots().drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            slot.state().take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate_encryption_key;

    fn ring() -> Keyring {
        Keyring::parse(&generate_encryption_key()).unwrap()
    }

    #[test]
    fn records_open_only_under_their_binding_and_master_key() {
        let master = ring();
        let keys = RecordKeys::generate().unwrap().with_alias(&"a".repeat(32));
        let here = record_binding(0, "app:", "tenant-a");
        let token = keys.seal(&master, &here);
        let opened = RecordKeys::open(&master, &here, &token).unwrap();
        assert_eq!(opened.location, keys.location);
        assert_eq!(*opened.data_key, *keys.data_key);
        assert_eq!(opened.aliases, vec!["a".repeat(32)]);
        // Another scope, namespace or database: the copy does not open there.
        for elsewhere in [
            record_binding(0, "app:", "tenant-b"),
            record_binding(0, "other:", "tenant-a"),
            record_binding(1, "app:", "tenant-a"),
        ] {
            assert!(RecordKeys::open(&master, &elsewhere, &token).is_none());
        }
        assert!(RecordKeys::open(&ring(), &here, &token).is_none());
        // Rotation: a ring holding the old key as a secondary still opens it.
        let old = generate_encryption_key();
        let rotated = Keyring::parse(&format!("{},{old}", generate_encryption_key())).unwrap();
        let sealed_old = keys.seal(&Keyring::parse(&old).unwrap(), &here);
        assert!(RecordKeys::open(&rotated, &here, &sealed_old).is_some());
    }

    #[test]
    fn the_binding_keeps_fields_apart() {
        // Length prefixes: "a:" + "bc" and "a:b" + "c" bind differently.
        assert_ne!(record_binding(0, "a:", "bc"), record_binding(0, "a:b", "c"));
    }

    #[test]
    fn malformed_records_do_not_open() {
        let master = ring();
        let here = record_binding(0, "", "t");
        for plain in [
            &b""[..],
            b"SRK\x01",
            b"SRK\x02xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(RecordKeys::open(&master, &here, master.encrypt(plain).as_bytes()).is_none());
        }
        // A count of aliases that the length does not bear out.
        let keys = RecordKeys::generate().unwrap();
        let mut plain = RECORD_MAGIC.to_vec();
        plain.extend_from_slice(&here);
        plain.extend_from_slice(&keys.location);
        plain.extend_from_slice(keys.data_key.as_ref());
        plain.push(3);
        assert!(RecordKeys::open(&master, &here, master.encrypt(&plain).as_bytes()).is_none());
    }

    #[test]
    fn data_keys_are_fernet_keys_and_differ_per_scope() {
        let (a, b) = (
            RecordKeys::generate().unwrap(),
            RecordKeys::generate().unwrap(),
        );
        assert_ne!(a.location, b.location);
        let (ka, kb) = (a.keyring().unwrap(), b.keyring().unwrap());
        let token = ka.encrypt(b"x");
        assert!(kb.decrypt(token.as_bytes()).is_err());
        assert_ne!(ka.naming_key(), kb.naming_key());
    }

    #[test]
    fn record_digests_follow_the_naming_keys_and_hide_the_name() {
        let (new, old) = (generate_encryption_key(), generate_encryption_key());
        let rotated = Keyring::parse(&format!("{new},{old}")).unwrap();
        let before = Keyring::parse(&old).unwrap();
        let digests = record_digests(&rotated, "tenant-a");
        assert_eq!(digests.len(), 2);
        assert_eq!(digests[1], record_digests(&before, "tenant-a")[0]);
        assert_ne!(digests[0], digests[1]);
        assert!(!digests[0].contains("tenant"));
        assert_ne!(record_digests(&rotated, "tenant-b")[0], digests[0]);
    }

    #[test]
    fn scope_names_are_checked() {
        assert!(validate_scope_name("t").is_ok());
        assert!(validate_scope_name("租户 7").is_ok());
        assert!(validate_scope_name(&"x".repeat(MAX_SCOPE_NAME_BYTES)).is_ok());
        for bad in [String::new(), "x".repeat(MAX_SCOPE_NAME_BYTES + 1)] {
            let err = validate_scope_name(&bad).unwrap_err();
            assert_eq!(err.context["error_type"], "invalid_scope");
        }
    }
}
