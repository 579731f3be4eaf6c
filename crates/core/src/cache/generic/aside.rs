//! Cache-aside primitives of the Redis cache: the cross-process loader lock behind
//! `get_or_set(lock=True)` and the tag index behind `set(..., tags=)` / `invalidate_tags`.
//! The orchestration (single-flight, waiting, early refresh) is the Python layer's; this file
//! owns what must happen on the server.
//!
//! Names and values follow the cache's rules: a lock or tag set is named by an HMAC digest
//! (the keyring's naming key) of the caller's key or tag behind the namespace, never the text;
//! a lock holds a fresh Fernet token (random, so it doubles as the holder's identity for the
//! compare-and-delete release), a tag set holds each tagged entry's Redis name sealed. On a
//! Cluster a tag set lives in its own name's slot and its members in theirs: invalidation reads
//! the set from one node and deletes the members slot group by slot group.

use super::{commands, group_by_slot, validate_key, Error, Failure, GenericRedisCache, Result};
use crate::crypto::keyring::name_digest;
use crate::error::ErrorCode;
use std::collections::BTreeSet;
use std::sync::Arc;

const LOCK_PREFIX: &str = "secure_redis:lock:";
const TAG_PREFIX: &str = "secure_redis:tag:";
/// What a lock token seals: constant, the token's randomness is Fernet's IV.
const LOCK_PLAINTEXT: &[u8] = b"secure_redis loader lock";
/// Longest lock lease: a loader that needs longer should not hold other processes that long.
pub const MAX_LEASE_MS: u64 = 3_600_000;
/// Most tags per call, and longest tag: tags are labels, not data.
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_BYTES: usize = 1024;

fn validate_tags(tags: &[String]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::validation(format!(
            "At most {MAX_TAGS} tags per call; got {}.",
            tags.len()
        ))
        .with("tags", tags.len())
        .code(ErrorCode::InvalidKey));
    }
    for tag in tags {
        if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
            return Err(Error::validation(format!(
                "A tag must be 1 to {MAX_TAG_BYTES} bytes; got {} bytes.",
                tag.len()
            ))
            .with("tag_bytes", tag.len())
            .code(ErrorCode::InvalidKey));
        }
    }
    Ok(())
}

/// The error a caller sees when Redis could not do the work (a refusal keeps its own error).
fn unavailable(failure: Failure, what: &str) -> Error {
    match failure {
        Failure::Rejected(error) => error,
        other => Error::infrastructure(format!("Redis could not {what}: {}", other.message()))
            .with("operation", what),
    }
}

impl GenericRedisCache {
    /// The digest `@cached` names a call's entry by (its function's name and arguments): the
    /// naming key's HMAC, so no argument's text reaches Redis and nobody can test guesses.
    pub fn call_digest(&self, text: &str) -> String {
        name_digest(self.codec.keyring().naming_key(), b"call", text.as_bytes())
    }

    /// The Redis name of the loader lock of `key`.
    pub fn lock_name(&self, key: &str) -> String {
        let digest = name_digest(
            self.codec.keyring().naming_key(),
            b"lock",
            self.name(key).as_bytes(),
        );
        self.name(&format!("{LOCK_PREFIX}{digest}")).into_owned()
    }

    /// The Redis name of the set that indexes the entries tagged `tag`.
    pub fn tag_name(&self, tag: &str) -> String {
        let digest = name_digest(self.codec.keyring().naming_key(), b"tag", tag.as_bytes());
        self.name(&format!("{TAG_PREFIX}{digest}")).into_owned()
    }

    /// Takes the loader lock of `key` for `lease_ms` (SET NX PX): the holder's token, or None
    /// while another holder has it. An error when Redis cannot answer (the caller decides
    /// whether to load without the lock).
    pub async fn lock_acquire(&self, key: &str, lease_ms: u64) -> Result<Option<String>> {
        validate_key(key)?;
        if lease_ms == 0 || lease_ms > MAX_LEASE_MS {
            return Err(Error::validation(format!(
                "A lock timeout must be more than 0 and at most {} seconds.",
                MAX_LEASE_MS / 1000
            ))
            .with("lease_ms", lease_ms)
            .code(ErrorCode::InvalidTtl));
        }
        let name = self.lock_name(key);
        let token = self.codec.keyring().encrypt(LOCK_PLAINTEXT);
        let offered = token.clone();
        let outcome = self
            .conn
            .run(|mut conn| async move {
                commands::lock_take(&mut conn, &name, offered.as_bytes(), lease_ms).await
            })
            .await;
        match outcome {
            Ok(true) => Ok(Some(token)),
            Ok(false) => Ok(None),
            Err(failure) => {
                self.note_failure(&failure);
                Err(unavailable(failure, "take the loader lock"))
            }
        }
    }

    /// Releases the lock of `key` if it still holds `token` (compare-and-delete); whether it
    /// did. Never an error for Redis trouble: the lease ends the lock anyway.
    pub async fn lock_release(&self, key: &str, token: &str) -> Result<bool> {
        validate_key(key)?;
        let name = self.lock_name(key);
        let token = token.to_owned();
        match self
            .conn
            .run(|mut conn| async move {
                commands::lock_release(&mut conn, &name, token.as_bytes()).await
            })
            .await
        {
            Ok(released) => Ok(released),
            Err(failure) => {
                self.note_failure(&failure);
                Ok(false)
            }
        }
    }

    /// `set` that first files the entry under each tag. When a tag set cannot be written the
    /// entry is not stored and the old one is deleted (through the outage repair when Redis is
    /// away): an entry missing from its tag's index would survive `invalidate_tags`.
    pub async fn set_tagged(
        &self,
        key: &str,
        json: Arc<[u8]>,
        ttl: Option<i64>,
        tags: &[String],
    ) -> Result<()> {
        if tags.is_empty() {
            return self.set(key, json, ttl).await;
        }
        validate_key(key)?;
        validate_tags(tags)?;
        let seconds = super::resolve_ttl(ttl, self.options.default_ttl)?;
        let member = self.codec.keyring().encrypt(self.name(key).as_bytes());
        let unique: BTreeSet<&String> = tags.iter().collect();
        let filed = futures_util::future::join_all(unique.into_iter().map(|tag| {
            let name = self.tag_name(tag);
            let members = vec![member.clone()];
            self.conn.run(move |mut conn| async move {
                commands::tag_add(&mut conn, &name, &members, seconds).await
            })
        }))
        .await;
        match filed.into_iter().find_map(std::result::Result::err) {
            None => self.set(key, json, ttl).await,
            Some(failure) => {
                self.note_failure(&failure);
                tracing::warn!(
                    target: "secure_redis.cache",
                    "A tagged entry could not be indexed under its tags ({}); it was not stored and \
                     the key reads as a miss",
                    failure.message()
                );
                self.delete(key).await.map(|_| ())
            }
        }
    }

    /// Deletes every entry filed under any of `tags` (work proportional to those entries: the
    /// tag sets are read, never the keyspace) and the tag sets; how many entries Redis deleted.
    /// Only members our keyring opens, naming keys in this namespace, are deleted. An error
    /// when a tag set cannot be read; members already taken are deleted first.
    pub async fn invalidate_tags(&self, tags: &[String]) -> Result<usize> {
        validate_tags(tags)?;
        let keyring = self.codec.keyring();
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut unread = None;
        for tag in tags.iter().collect::<BTreeSet<_>>() {
            let set = self.tag_name(tag);
            match self
                .conn
                .run(|mut conn| async move { commands::tag_take(&mut conn, &set).await })
                .await
            {
                Ok(members) => names.extend(
                    members
                        .iter()
                        .filter_map(|sealed| keyring.decrypt(sealed).ok())
                        .filter_map(|plain| String::from_utf8(plain).ok())
                        .filter(|name| self.options.namespace.contains(name)),
                ),
                Err(failure) => {
                    self.note_failure(&failure);
                    unread = Some(failure);
                    break;
                }
            }
        }
        let removed = self.delete_names(names.into_iter().collect()).await;
        match unread {
            None => Ok(removed),
            Some(failure) => {
                // What this process holds may be tagged: it goes, as Redis's copy will.
                if let Some(l1) = &self.l1 {
                    l1.note_write_all();
                    l1.clear();
                }
                Err(unavailable(failure, "read the tag index"))
            }
        }
    }

    /// Deletes entries by Redis name from Redis (slot group by slot group, each through the
    /// reconciler's gate, so a group Redis misses is deleted by the repair) and from L1.
    async fn delete_names(&self, names: Vec<String>) -> usize {
        if names.is_empty() {
            return 0;
        }
        self.reconciler.kick();
        for name in &names {
            self.note_write(name);
        }
        let mut removed = 0;
        for group in group_by_slot(&names, self.conn.topology().is_cluster()) {
            let batch: Vec<String> = group.iter().map(|&i| names[i].clone()).collect();
            let shown: Vec<&str> = batch.iter().map(String::as_str).collect();
            let sent = batch.clone();
            let outcome = self
                .write_ordered(&shown, || {
                    self.conn.run(move |mut conn| async move {
                        commands::remove_many(&mut conn, &sent).await
                    })
                })
                .await;
            match outcome {
                Ok(count) => removed += usize::try_from(count).unwrap_or(0),
                Err(failure) => self.note_failure(&failure),
            }
        }
        for name in &names {
            self.note_write(name);
            if let Some(l1) = &self.l1 {
                l1.remove(name);
            }
        }
        removed
    }
}
