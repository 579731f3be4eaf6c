//! What an entry is bound to: where it was written (the Redis database and key name), sealed
//! into its envelope as a 16-byte digest (see the `codec` module doc for the envelope).
//!
//! Invariants a reader must not break:
//! * Version 2 (what is written): `sha256(V2 || database || len(scope) || scope ||
//!   len(namespace) || namespace || key)[..16]`, the database and each length an 8-byte
//!   big-endian integer, `key` the name without the namespace. Every field but the last is
//!   fixed-length or length-prefixed, so no two bindings hash the same bytes.
//! * The scope field is empty for an unscoped cache, and for a tenant scope (`cache::scope`)
//!   the scope's location (16 random bytes, also in its Redis names): a scope needed no new
//!   format version, and the digests of every unscoped cache stayed as they were.
//! * Version 1 is only ever checked, never written: `sha256(name)` in the default namespace,
//!   `sha256(NAMESPACED_V1 || len(namespace) || namespace || key)` in another. It binds no
//!   database: a version 1 entry opens under its name in any database.
//! * A name outside a non-empty namespace (the cache never makes one) is bound as in the
//!   default namespace, in either version.
//! * Every digest depends on the database the connection really selects: the URL's `/n`
//!   (Sentinel's too), always 0 for a Redis Cluster (`SecureConnection::database`).

use sha2::{Digest, Sha256};

/// Bytes of the digest kept in the envelope.
pub const DIGEST_LEN: usize = 16;
/// Domain separation of version 2 digests from every version 1 one and from anything else.
const V2: &[u8] = b"secure_redis/entry-binding/v2\0";
/// Domain separation of version 1 namespaced digests: no plain name hashes the same bytes.
const NAMESPACED_V1: &[u8] = b"secure_redis/namespaced-key/v1\0";

/// Where a cache writes its entries: the database its connection selects and its namespace.
#[derive(Clone)]
pub struct Binding {
    database: i64,
    /// Already validated by the cache; empty by default.
    namespace: String,
    /// The version 2 hash state after every field but the key, cloned for each entry so the
    /// per-entry work is hashing the key alone.
    prefix: Sha256,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("database", &self.database)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Default for Binding {
    fn default() -> Binding {
        Binding::new("", 0)
    }
}

fn truncated(digest: &[u8]) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&digest[..DIGEST_LEN]);
    out
}

/// The version 2 hash state after the database, the scope and `namespace`.
fn v2_prefix(database: i64, scope: &[u8], namespace: &str) -> Sha256 {
    let mut hash = Sha256::new();
    hash.update(V2);
    hash.update(database.to_be_bytes());
    hash.update((scope.len() as u64).to_be_bytes());
    hash.update(scope);
    // Validated namespaces are short; the length keeps "a:"+"b:x" apart from "a:b:"+"x".
    hash.update((namespace.len() as u64).to_be_bytes());
    hash.update(namespace.as_bytes());
    hash
}

impl Binding {
    /// Entries of a cache whose names all start with `namespace` ("" for none), written in
    /// database `database`.
    pub fn new(namespace: &str, database: i64) -> Binding {
        Binding::scoped(namespace, database, &[])
    }

    /// Entries of a tenant scope whose location is `scope`, named under `namespace` (which
    /// holds the location too) in database `database`.
    pub fn scoped(namespace: &str, database: i64, scope: &[u8]) -> Binding {
        Binding {
            database,
            namespace: namespace.to_owned(),
            prefix: v2_prefix(database, scope, namespace),
        }
    }

    pub fn database(&self) -> i64 {
        self.database
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The version 2 digest of `name` here.
    pub(super) fn digest(&self, name: &[u8]) -> [u8; DIGEST_LEN] {
        let (mut hash, key) = match name.strip_prefix(self.namespace.as_bytes()) {
            Some(key) => (self.prefix.clone(), key),
            None => (v2_prefix(self.database, &[], ""), name),
        };
        hash.update(key);
        truncated(&hash.finalize())
    }

    /// The version 1 digest of `name`: its name (and namespace) alone.
    pub(super) fn v1_digest(&self, name: &[u8]) -> [u8; DIGEST_LEN] {
        let namespace = self.namespace.as_bytes();
        match name.strip_prefix(namespace) {
            Some(key) if !namespace.is_empty() => {
                let mut hash = Sha256::new();
                hash.update(NAMESPACED_V1);
                hash.update((namespace.len() as u64).to_be_bytes());
                hash.update(namespace);
                hash.update(key);
                truncated(&hash.finalize())
            }
            _ => truncated(&Sha256::digest(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version 2 digest spelled out field by field, as the README documents it.
    fn documented(database: i64, namespace: &str, key: &str) -> [u8; DIGEST_LEN] {
        documented_in(database, b"", namespace, key)
    }

    fn documented_in(database: i64, scope: &[u8], namespace: &str, key: &str) -> [u8; DIGEST_LEN] {
        let mut bytes = b"secure_redis/entry-binding/v2\0".to_vec();
        bytes.extend_from_slice(&database.to_be_bytes());
        bytes.extend_from_slice(&(scope.len() as u64).to_be_bytes());
        bytes.extend_from_slice(scope);
        bytes.extend_from_slice(&(namespace.len() as u64).to_be_bytes());
        bytes.extend_from_slice(namespace.as_bytes());
        bytes.extend_from_slice(key.as_bytes());
        truncated(&Sha256::digest(&bytes))
    }

    #[test]
    fn version_2_digests_are_the_documented_ones() {
        assert_eq!(
            Binding::default().digest(b"user:1"),
            documented(0, "", "user:1")
        );
        assert_eq!(
            Binding::new("", 3).digest(b"user:1"),
            documented(3, "", "user:1")
        );
        let tenant = Binding::new("t:", 7);
        assert_eq!(tenant.digest(b"t:user:1"), documented(7, "t:", "user:1"));
        // Outside the namespace: as in the default one, same database.
        assert_eq!(tenant.digest(b"user:1"), documented(7, "", "user:1"));
    }

    #[test]
    fn scoped_digests_are_the_documented_ones_and_differ_by_scope() {
        let one = Binding::scoped("s:", 2, &[1; 16]);
        assert_eq!(one.digest(b"s:k"), documented_in(2, &[1; 16], "s:", "k"));
        let other = Binding::scoped("s:", 2, &[2; 16]);
        assert_ne!(one.digest(b"s:k"), other.digest(b"s:k"));
        assert_ne!(one.digest(b"s:k"), Binding::new("s:", 2).digest(b"s:k"));
    }

    #[test]
    fn database_namespace_and_name_each_change_the_digest() {
        let name = b"a:b:x";
        let digests = [
            Binding::new("", 0).digest(name),
            Binding::new("", 1).digest(name),
            Binding::new("a:", 0).digest(name),
            Binding::new("a:b:", 0).digest(name),
            Binding::new("a:", 1).digest(name),
            Binding::new("", 0).digest(b"a:b:y"),
            Binding::new("", 0).v1_digest(name),
        ];
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn version_1_digests_ignore_the_database() {
        assert_eq!(
            Binding::new("", 5).v1_digest(b"k"),
            truncated(&Sha256::digest(b"k"))
        );
        assert_eq!(
            Binding::new("ns:", 0).v1_digest(b"ns:k"),
            Binding::new("ns:", 9).v1_digest(b"ns:k")
        );
    }
}
