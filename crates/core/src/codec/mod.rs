//! What is stored in Redis, all of it.
//!
//! A cache entry is always a standard Fernet token (url-safe base64 text, so `cryptography`'s
//! `Fernet(key).decrypt(token)` opens it). Its plaintext is a 28-byte header and a payload:
//!
//! ```text
//! "SR"  version=2  codec  binding digest  expires_at (u64 BE, unix s)  payload
//!  2      1         1          16                    8
//! ```
//!
//! * `codec` is `b'j'` (payload = the value's compact JSON), `b'l'` (payload = its size as u32 LE,
//!   then an LZ4 block of it) or `b'z'` (a zstd frame of it). Compression happens only above
//!   `compression_threshold` and only when it shrinks the value: LZ4 for `compression_level`
//!   1..=6 (fast: a 2 KB value in about a microsecond), zstd for 7..=9 (smaller output).
//! * The binding digest binds the token to where it was written: the Redis database and the
//!   key name (`binding`). A token copied to another key, or to the same key name in another
//!   database (`SELECT n`), decrypts but reads as a miss (`DecodeError::ForeignKey`). The
//!   digest sits inside the authenticated ciphertext, so nobody without the Fernet key can
//!   forge or read it. Caches that share a keyring but not a namespace never take each other's
//!   entries for their own, even where one namespace is a prefix of another's names.
//! * Version 1 (every entry written before version 2) has the same layout with a digest of
//!   the name alone (`binding::v1_digest`). Such entries are still read and still owned, so an
//!   upgrade loses no entry; but a version 1 entry stays bound to its name only, not to its
//!   database, until it is rewritten (the next `set` of that key writes version 2) or expires.
//!   Every entry carries its expiry, so once the longest TTL in use has passed since the
//!   upgrade no version 1 entry can be served any more.
//! * `expires_at` is when the entry was meant to expire (write time + TTL). Someone with write
//!   access to Redis but no key could otherwise put back an old token under the same key and
//!   have it served forever; past its expiry (plus `EXPIRY_GRACE_SECONDS` for clock skew
//!   between hosts) an entry reads as a miss.
//!
//! Nothing else is ever accepted: plain JSON, pickle, another application's data or garbage
//! read as `DecodeError::NotOurs`, and nothing is ever unpickled. Decompression stops at
//! `max_value_bytes`, so a crafted entry cannot exhaust memory.
//!
//! The longest token a genuine entry can be (`Codec::max_stored_bytes`) follows from the cap:
//! a payload is compressed only when that makes it shorter, so no payload is longer than
//! `max_value_bytes`, and the token of the header and that payload has a fixed length. Readers
//! use it to refuse a longer stored value without reading it whole (`DecodeError::Oversized`).
//!
//! `owns` is the proof bulk deletions ask for before removing a key: a token our keyring
//! opens, bound to that very name (and database, from version 2), whatever its expiry; `could_hold` refuses most other values
//! by their length and first byte before they are even fetched.

mod batch;
mod binding;
mod compress;

pub use binding::Binding;
use binding::DIGEST_LEN as KEY_DIGEST_LEN;
use compress::compress_into;
pub use compress::zstd_level;

use crate::clock::unix_now;
use crate::crypto::keyring::{token_text_len, TOKEN_FIRST_CHAR};
use crate::crypto::Keyring;
use crate::error::{Error, ErrorCode, Result};
use std::sync::Arc;

const MAGIC: &[u8; 2] = b"SR";
/// The format every entry is written in: bound to its database and name.
const VERSION: u8 = 2;
/// The format before version 2: bound to the name alone; still read (see the module doc).
const VERSION_1: u8 = 1;
const CODEC_JSON: u8 = b'j';
const CODEC_ZSTD: u8 = b'z';
const CODEC_LZ4: u8 = b'l';
pub const HEADER_LEN: usize = 4 + KEY_DIGEST_LEN + 8;
pub const EXPIRY_GRACE_SECONDS: u64 = 30;

/// The largest serialized value (JSON bytes) the cache accepts or will decompress.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a Fernet token for any of our keys: plaintext, pickle, garbage, tampering or a
    /// token made with a key we do not hold.
    NotOurs,
    /// A genuine token, written under a different Redis key or in another database.
    ForeignKey,
    /// A genuine token whose header or payload is malformed (an unknown format version, say).
    Malformed,
    /// Decompressed size would exceed the limit.
    TooLarge,
    /// A genuine token past the expiry it was written with: a replay of an old entry.
    Expired,
    /// Longer than any token the codec writes (`Codec::max_stored_bytes`): not ours, and too
    /// large to be worth reading.
    Oversized,
}

impl DecodeError {
    pub fn describe(self) -> &'static str {
        match self {
            DecodeError::NotOurs => {
                "entry is not a Fernet token made with our keys (plaintext, pickle, tampered or foreign data)"
            }
            DecodeError::ForeignKey => {
                "entry is a valid token that was written under another key or in another database (copied or replayed)"
            }
            DecodeError::Malformed => "entry decrypted but its envelope is malformed",
            DecodeError::TooLarge => "entry decompresses beyond the maximum value size",
            DecodeError::Expired => {
                "entry is past the expiry it was written with (an old entry put back into Redis)"
            }
            DecodeError::Oversized => {
                "entry is longer than any entry the cache writes (a value past the maximum value size)"
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Codec {
    keyring: Arc<Keyring>,
    compression_threshold: usize,
    compression_level: i32,
    max_value_bytes: usize,
    /// Where this codec's entries are written: sealed into each one (see the module doc).
    binding: Arc<Binding>,
}

/// An opened entry: the value's JSON and when the writer meant it to expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub json: Vec<u8>,
    pub expires_at: u64,
}

/// How an encoded value came out; feeds the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeReport {
    pub json_bytes: usize,
    pub compressed: bool,
    pub token_bytes: usize,
}

impl Codec {
    pub fn new(
        keyring: Arc<Keyring>,
        compression_threshold: usize,
        compression_level: i32,
        max_value_bytes: usize,
    ) -> Codec {
        Codec {
            keyring,
            compression_threshold,
            compression_level,
            max_value_bytes,
            binding: Arc::new(Binding::default()),
        }
    }

    /// This codec for a cache that writes where `binding` says (see the module doc). Without
    /// it a codec binds entries to database 0 and the default namespace.
    #[must_use]
    pub fn bound_to(mut self, binding: Binding) -> Codec {
        self.binding = Arc::new(binding);
        self
    }

    /// The keyring that seals this codec's entries (also seals cache-aside lock tokens and tag
    /// members, and names them).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// The longest stored token a genuine entry can be: the header and a payload of at most
    /// `max_value_bytes` (compression is kept only when it shrinks the payload, so the raw
    /// JSON is the longest payload there is), sealed by Fernet. Anything longer is not ours.
    pub fn max_stored_bytes(&self) -> usize {
        Keyring::token_len(HEADER_LEN + self.max_value_bytes)
    }

    /// Whether `plaintext` is an envelope of a format we read, bound to `name` here: `None` for
    /// a malformed envelope or an unknown version, else whether its digest is that of `name`
    /// under this codec's binding, in the envelope's own format version.
    fn bound_here(&self, name: &[u8], plaintext: &[u8]) -> Option<bool> {
        if plaintext.len() < HEADER_LEN || &plaintext[..2] != MAGIC {
            return None;
        }
        let expected = match plaintext[2] {
            VERSION => self.binding.digest(name),
            VERSION_1 => self.binding.v1_digest(name),
            _ => return None,
        };
        Some(plaintext[4..4 + KEY_DIGEST_LEN] == expected)
    }

    /// Whether a stored value of `len` bytes starting with `first` can be an entry of this
    /// codec at all: a token of at least an empty envelope and at most the largest value.
    pub fn could_hold(&self, len: usize, first: Option<u8>) -> bool {
        let shortest = *token_text_len(HEADER_LEN).start();
        let longest = *token_text_len(HEADER_LEN + self.max_value_bytes).end();
        first == Some(TOKEN_FIRST_CHAR) && (shortest..=longest).contains(&len)
    }

    /// Whether `stored` is provably this cache's entry for `name`: a token our keyring opens
    /// whose envelope is bound to that very name (and, from version 2, to this database).
    /// Expiry is not checked (an expired entry is still ours to delete) and nothing is
    /// decompressed.
    pub fn owns(&self, name: &[u8], stored: &[u8]) -> bool {
        let Ok(opened) = self.keyring.open(stored) else {
            return false;
        };
        self.bound_here(name, opened.as_slice()) == Some(true)
    }

    /// Seals `json` (the value's JSON text) for storage under `key` for `ttl_seconds`.
    pub fn encode(
        &self,
        key: &str,
        json: &[u8],
        ttl_seconds: u64,
    ) -> Result<(Vec<u8>, EncodeReport)> {
        if json.len() > self.max_value_bytes {
            return Err(Error::validation(format!(
                "Value is {} bytes as JSON; the cache accepts at most {} bytes per value.",
                json.len(),
                self.max_value_bytes
            ))
            .with("value_bytes", json.len())
            .with("max_value_bytes", self.max_value_bytes)
            .code(ErrorCode::ValueTooLarge));
        }
        let expires_at = unix_now().saturating_add(ttl_seconds);
        let mut compressed = false;
        // The envelope is written straight into the buffer Fernet encrypts in place, and LZ4
        // compresses straight into it too: no plaintext or compressed copy of the value.
        let token = self.keyring.encrypt_with(HEADER_LEN + json.len(), |buf| {
            let codec_at = buf.len() + 3;
            buf.extend_from_slice(MAGIC);
            buf.push(VERSION);
            buf.push(CODEC_JSON);
            buf.extend_from_slice(&self.binding.digest(key.as_bytes()));
            buf.extend_from_slice(&expires_at.to_be_bytes());
            let payload_at = buf.len();
            if json.len() > self.compression_threshold {
                if let Some(codec) = compress_into(json, self.compression_level, buf) {
                    if buf.len() - payload_at < json.len() {
                        buf[codec_at] = codec;
                        compressed = true;
                        return;
                    }
                }
                buf.truncate(payload_at);
            }
            buf.extend_from_slice(json);
        });
        let report = EncodeReport {
            json_bytes: json.len(),
            compressed,
            token_bytes: token.len(),
        };
        Ok((token, report))
    }

    /// Opens a stored entry read from `key` at time `now` (unix seconds).
    pub fn decode(&self, key: &str, stored: &[u8], now: u64) -> Result<Opened, DecodeError> {
        // Before base64 and decryption, each of which would copy it.
        if stored.len() > self.max_stored_bytes() {
            return Err(DecodeError::Oversized);
        }
        let opened = self
            .keyring
            .open(stored)
            .map_err(|_| DecodeError::NotOurs)?;
        let plaintext = opened.as_slice();
        match self.bound_here(key.as_bytes(), plaintext) {
            None => return Err(DecodeError::Malformed),
            Some(false) => return Err(DecodeError::ForeignKey),
            Some(true) => {}
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&plaintext[4 + KEY_DIGEST_LEN..HEADER_LEN]);
        let expires_at = u64::from_be_bytes(expiry);
        if now > expires_at.saturating_add(EXPIRY_GRACE_SECONDS) {
            return Err(DecodeError::Expired);
        }
        let payload = &plaintext[HEADER_LEN..];
        let json = match plaintext[3] {
            CODEC_JSON if payload.len() > self.max_value_bytes => {
                return Err(DecodeError::TooLarge)
            }
            CODEC_JSON => opened.into_tail(HEADER_LEN),
            CODEC_ZSTD => self.decompress(payload)?,
            CODEC_LZ4 => self.decompress_lz4(payload)?,
            _ => return Err(DecodeError::Malformed),
        };
        Ok(Opened { json, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::batch::PARALLEL_DECODE_BYTES;
    use super::*;
    use crate::crypto::generate_encryption_key;

    fn codec_with(threshold: usize, max: usize) -> (Codec, String) {
        let key = generate_encryption_key();
        let ring = Arc::new(Keyring::parse(&key).unwrap());
        (Codec::new(ring, threshold, 9, max), key)
    }

    /// The version 1 binding in the default namespace, as the stored-entries documentation
    /// gave it: `sha256(redis key)[..16]`, whatever the database.
    fn key_digest(key: &str) -> [u8; KEY_DIGEST_LEN] {
        use sha2::{Digest, Sha256};
        let mut out = [0u8; KEY_DIGEST_LEN];
        out.copy_from_slice(&Sha256::digest(key.as_bytes())[..KEY_DIGEST_LEN]);
        out
    }

    /// A version 1 token (the format before databases were bound) for `key`, sealed by `ring`.
    fn v1_token(ring: &Keyring, key: &str, expires_at: u64, json: &[u8]) -> Vec<u8> {
        let mut envelope = b"SR\x01j".to_vec();
        envelope.extend_from_slice(&key_digest(key));
        envelope.extend_from_slice(&expires_at.to_be_bytes());
        envelope.extend_from_slice(json);
        ring.encrypt(&envelope).into_bytes()
    }

    /// Codecs sharing one keyring, each bound to database `db` of the default namespace.
    fn in_databases(dbs: &[i64]) -> (Arc<Keyring>, Vec<Codec>) {
        let ring = Arc::new(Keyring::parse(&generate_encryption_key()).unwrap());
        let codecs = dbs
            .iter()
            .map(|&db| {
                Codec::new(ring.clone(), 1000, 6, DEFAULT_MAX_VALUE_BYTES)
                    .bound_to(Binding::new("", db))
            })
            .collect();
        (ring, codecs)
    }

    #[test]
    fn tokens_are_bound_to_their_database() {
        let (ring, codecs) = in_databases(&[0, 3, 0]);
        let (on_0, on_3, also_on_0) = (&codecs[0], &codecs[1], &codecs[2]);
        let (token, _) = on_0.encode("user:1", b"1", 60).unwrap();
        assert_eq!(ring.decrypt(&token).unwrap()[2], 2, "written as version 2");
        // The same name in database 3: a binding rejection, and not ours to delete there.
        assert_eq!(
            on_3.decode("user:1", &token, unix_now()),
            Err(DecodeError::ForeignKey)
        );
        assert!(!on_3.owns(b"user:1", &token));
        assert_eq!(
            on_3.decode_many(&[("user:1", &token[..])], unix_now()),
            vec![Err(DecodeError::ForeignKey)]
        );
        // The same name in the same database, by another codec of that database: it opens.
        assert_eq!(
            also_on_0.decode("user:1", &token, unix_now()).unwrap().json,
            b"1"
        );
        assert!(also_on_0.owns(b"user:1", &token));
        // Namespaced caches are bound to their database as well.
        let ns = |db| {
            Codec::new(ring.clone(), 1000, 6, DEFAULT_MAX_VALUE_BYTES)
                .bound_to(Binding::new("t:", db))
        };
        let (token, _) = ns(0).encode("t:k", b"1", 60).unwrap();
        assert!(ns(0).decode("t:k", &token, unix_now()).is_ok());
        assert_eq!(
            ns(1).decode("t:k", &token, unix_now()),
            Err(DecodeError::ForeignKey)
        );
    }

    #[test]
    fn version_1_entries_still_open_bound_to_their_name_only() {
        let (ring, codecs) = in_databases(&[0, 3]);
        let old = v1_token(&ring, "user:1", unix_now() + 60, br#"{"a":1}"#);
        for codec in &codecs {
            let opened = codec.decode("user:1", &old, unix_now()).unwrap();
            assert_eq!(opened.json, br#"{"a":1}"#);
            assert!(codec.owns(b"user:1", &old));
            assert_eq!(
                codec.decode("user:2", &old, unix_now()),
                Err(DecodeError::ForeignKey)
            );
            assert!(!codec.owns(b"user:2", &old));
        }
        // A version 1 entry of a namespace: its own digest, still read.
        let tenant = Codec::new(ring.clone(), 1000, 6, DEFAULT_MAX_VALUE_BYTES)
            .bound_to(Binding::new("t:", 2));
        let mut envelope = b"SR\x01j".to_vec();
        envelope.extend_from_slice(&tenant.binding().v1_digest(b"t:k"));
        envelope.extend_from_slice(&(unix_now() + 60).to_be_bytes());
        envelope.extend_from_slice(b"7");
        let namespaced = ring.encrypt(&envelope);
        assert_eq!(
            tenant
                .decode("t:k", namespaced.as_bytes(), unix_now())
                .unwrap()
                .json,
            b"7"
        );
        // An unknown version is malformed, however it is bound.
        envelope[2] = 3;
        assert_eq!(
            tenant.decode("t:k", ring.encrypt(&envelope).as_bytes(), unix_now()),
            Err(DecodeError::Malformed)
        );
        assert!(!tenant.owns(b"t:k", ring.encrypt(&envelope).as_bytes()));
    }

    #[test]
    fn ownership_is_a_token_of_ours_bound_to_that_name_whatever_its_expiry() {
        let (codec, _) = codec_with(1000, DEFAULT_MAX_VALUE_BYTES);
        let (stranger, _) = codec_with(1000, DEFAULT_MAX_VALUE_BYTES);
        let (token, _) = codec.encode("user:1", b"1", 1).unwrap();
        assert!(codec.owns(b"user:1", &token));
        assert!(!codec.owns(b"user:2", &token), "bound to another name");
        assert!(!stranger.owns(b"user:1", &token), "another keyring");
        for foreign in [&b"plain"[..], b"{\"a\":1}", b"gAAAAAnot-a-token", b""] {
            assert!(!codec.owns(b"user:1", foreign));
        }
        // Expired long ago: still ours to delete, though no read would serve it.
        let ring = Arc::new(Keyring::parse(&generate_encryption_key()).unwrap());
        let old = Codec::new(ring.clone(), 1000, 6, DEFAULT_MAX_VALUE_BYTES);
        let expired = v1_token(&ring, "k", 1, b"1");
        assert_eq!(
            old.decode("k", &expired, unix_now()),
            Err(DecodeError::Expired)
        );
        assert!(old.owns(b"k", &expired));
    }

    #[test]
    fn namespaces_sharing_a_keyring_never_own_each_others_entries() {
        let ring = Arc::new(Keyring::parse(&generate_encryption_key()).unwrap());
        let plain = Codec::new(ring.clone(), 1000, 6, DEFAULT_MAX_VALUE_BYTES);
        let a = plain.clone().bound_to(Binding::new("a:", 0));
        let ab = plain.clone().bound_to(Binding::new("a:b:", 0));
        let (in_a, _) = a.encode("a:b:x", b"1", 60).unwrap();
        let (in_ab, _) = ab.encode("a:b:x", b"1", 60).unwrap();
        let (in_plain, _) = plain.encode("a:b:x", b"1", 60).unwrap();
        for (codec, token) in [(&a, &in_a), (&ab, &in_ab), (&plain, &in_plain)] {
            assert!(codec.owns(b"a:b:x", token));
            assert!(codec.decode("a:b:x", token, unix_now()).is_ok());
        }
        for (codec, token) in [
            (&a, &in_ab),
            (&a, &in_plain),
            (&ab, &in_a),
            (&ab, &in_plain),
            (&plain, &in_a),
            (&plain, &in_ab),
        ] {
            assert!(!codec.owns(b"a:b:x", token));
            assert_eq!(
                codec.decode("a:b:x", token, unix_now()),
                Err(DecodeError::ForeignKey)
            );
        }
        // The default namespace binds the name and database 0, in version 2.
        let opened = ring.decrypt(&in_plain).unwrap();
        assert_eq!(opened[2], 2);
        assert_eq!(
            opened[4..4 + KEY_DIGEST_LEN],
            Binding::new("", 0).digest(b"a:b:x")
        );
    }

    #[test]
    fn could_hold_refuses_by_length_and_first_byte() {
        let (codec, _) = codec_with(usize::MAX, 1024); // never compressed: the largest token
        let (small, _) = codec.encode("k", b"1", 60).unwrap();
        let (large, _) = codec.encode("k", &[b'7'; 1024], 60).unwrap();
        for token in [&small, &large] {
            assert!(codec.could_hold(token.len(), token.first().copied()));
        }
        assert!(
            !codec.could_hold(small.len() - 3, Some(b'g')),
            "shorter than any envelope"
        );
        assert!(
            !codec.could_hold(large.len() + 64, Some(b'g')),
            "beyond the value cap"
        );
        assert!(!codec.could_hold(small.len(), Some(b'{')));
        assert!(!codec.could_hold(0, None));
    }

    #[test]
    fn small_values_round_trip_uncompressed() {
        let (codec, key) = codec_with(1000, DEFAULT_MAX_VALUE_BYTES);
        let (token, report) = codec.encode("user:1", br#"{"a":1}"#, 60).unwrap();
        assert!(!report.compressed);
        assert!(token.starts_with(b"gAAAAA"));
        let opened = codec.decode("user:1", &token, unix_now()).unwrap();
        assert_eq!(opened.json, br#"{"a":1}"#);
        assert!((unix_now() + 59..=unix_now() + 61).contains(&opened.expires_at));
        // The plaintext is our envelope, readable with the key alone.
        let plain = Keyring::parse(&key).unwrap().decrypt(&token).unwrap();
        assert_eq!(&plain[..4], b"SR\x02j");
        assert_eq!(&plain[HEADER_LEN..], br#"{"a":1}"#);
    }

    #[test]
    fn large_values_compress_and_round_trip() {
        let (codec, _) = codec_with(100, DEFAULT_MAX_VALUE_BYTES);
        let json = format!("[{}]", vec!["\"repeat me\""; 2000].join(","));
        let (token, report) = codec.encode("k", json.as_bytes(), 60).unwrap();
        assert!(report.compressed);
        assert!(token.len() < json.len());
        assert_eq!(
            codec.decode("k", &token, unix_now()).unwrap().json,
            json.as_bytes()
        );
    }

    #[test]
    fn tokens_are_bound_to_their_key() {
        let (codec, _) = codec_with(1000, DEFAULT_MAX_VALUE_BYTES);
        let (token, _) = codec.encode("a", b"1", 60).unwrap();
        assert_eq!(
            codec.decode("b", &token, unix_now()),
            Err(DecodeError::ForeignKey)
        );
    }

    #[test]
    fn replayed_entries_past_their_expiry_are_refused() {
        let (codec, _) = codec_with(1000, DEFAULT_MAX_VALUE_BYTES);
        let (token, _) = codec.encode("k", b"1", 10).unwrap();
        let later = unix_now() + 10 + EXPIRY_GRACE_SECONDS + 1;
        assert_eq!(codec.decode("k", &token, later), Err(DecodeError::Expired));
        assert!(codec.decode("k", &token, unix_now() + 10).is_ok());
    }

    #[test]
    fn foreign_and_tampered_entries_are_not_ours() {
        let (codec, _) = codec_with(1000, DEFAULT_MAX_VALUE_BYTES);
        let (other, _) = codec_with(1000, DEFAULT_MAX_VALUE_BYTES);
        let now = unix_now();
        let (token, _) = other.encode("k", b"1", 60).unwrap();
        assert_eq!(codec.decode("k", &token, now), Err(DecodeError::NotOurs));
        let (mut mine, _) = codec.encode("k", b"1", 60).unwrap();
        let middle = mine.len() / 2;
        mine[middle] = if mine[middle] == b'A' { b'B' } else { b'A' };
        assert_eq!(codec.decode("k", &mine, now), Err(DecodeError::NotOurs));
        for junk in [&b"{\"x\":1}"[..], b"\x80\x04\x95pickle", b"", &[0xff; 64]] {
            assert_eq!(codec.decode("k", junk, now), Err(DecodeError::NotOurs));
        }
    }

    #[test]
    fn both_compressors_round_trip() {
        let json = format!(
            "[{}]",
            vec!["\"some repetitive model output\""; 500].join(",")
        );
        for (level, tag) in [(1, b'l'), (6, b'l'), (7, b'z'), (9, b'z')] {
            let key = generate_encryption_key();
            let ring = Arc::new(Keyring::parse(&key).unwrap());
            let codec = Codec::new(ring.clone(), 100, level, DEFAULT_MAX_VALUE_BYTES);
            let (token, report) = codec.encode("k", json.as_bytes(), 60).unwrap();
            assert!(report.compressed);
            assert_eq!(ring.decrypt(&token).unwrap()[3], tag, "level {level}");
            assert_eq!(
                codec.decode("k", &token, unix_now()).unwrap().json,
                json.as_bytes()
            );
        }
    }

    #[test]
    fn entries_written_through_the_fernet_crate_still_decode() {
        // What the codec stored before it did its own Fernet: the same envelope, sealed by
        // the `fernet` crate, uncompressed and LZ4 (`compress_prepend_size`) alike.
        let key = generate_encryption_key();
        let codec = Codec::new(
            Arc::new(Keyring::parse(&key).unwrap()),
            100,
            6,
            DEFAULT_MAX_VALUE_BYTES,
        );
        let old = fernet::Fernet::new(&key).unwrap();
        let json = format!("[{}]", vec!["\"an older entry\""; 300].join(","));
        for (tag, payload) in [
            (b'j', br#"{"a":1}"#.to_vec()),
            (
                b'l',
                lz4_flex::block::compress_prepend_size(json.as_bytes()),
            ),
        ] {
            let mut plaintext = vec![b'S', b'R', 1, tag];
            plaintext.extend_from_slice(&key_digest("k"));
            plaintext.extend_from_slice(&(unix_now() + 60).to_be_bytes());
            plaintext.extend_from_slice(&payload);
            let token = old.encrypt(&plaintext);
            let opened = codec.decode("k", token.as_bytes(), unix_now()).unwrap();
            let expected = if tag == b'j' {
                br#"{"a":1}"#.to_vec()
            } else {
                json.clone().into_bytes()
            };
            assert_eq!(opened.json, expected);
            // And what we write now, the crate opens into the same envelope.
            let (ours, _) = codec.encode("k", &expected, 60).unwrap();
            let sealed = old.decrypt(std::str::from_utf8(&ours).unwrap()).unwrap();
            assert_eq!(&sealed[..2], b"SR");
            assert_eq!(sealed[3], tag);
        }
    }

    #[test]
    fn batches_decode_alike_on_one_thread_or_several() {
        let (codec, _) = codec_with(100, DEFAULT_MAX_VALUE_BYTES);
        let (other, _) = codec_with(100, DEFAULT_MAX_VALUE_BYTES);
        // Hex of a xorshift stream: as good as incompressible, so the tokens are large.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let big: String = (0..70_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b"0123456789abcdef"[(state & 15) as usize])
            })
            .collect();
        let mut stored = Vec::new();
        for n in 0..12 {
            let key = format!("k{n}");
            let json = format!("[\"{n}\",\"{}\"]", &big[..40_000 + n * 2000]);
            let sealer = if n == 5 { &other } else { &codec };
            stored.push((
                key.clone(),
                sealer.encode(&key, json.as_bytes(), 60).unwrap().0,
                json,
            ));
        }
        let items: Vec<(&str, &[u8])> = stored
            .iter()
            .map(|(key, token, _)| (key.as_str(), token.as_slice()))
            .collect();
        assert!(items.iter().map(|(_, t)| t.len()).sum::<usize>() >= PARALLEL_DECODE_BYTES);
        let now = unix_now();
        let parallel = codec.decode_many(&items, now);
        let serial: Vec<_> = items.iter().map(|(k, t)| codec.decode(k, t, now)).collect();
        assert_eq!(parallel, serial);
        for (n, (result, (_, _, json))) in parallel.iter().zip(&stored).enumerate() {
            match result {
                Ok(opened) => assert_eq!(opened.json, json.as_bytes()),
                Err(why) => assert!(n == 5 && *why == DecodeError::NotOurs),
            }
        }
        assert_eq!(codec.decode_many(&items[..1], now), serial[..1]);
        assert!(codec.decode_many(&[], now).is_empty());
    }

    #[test]
    fn lz4_size_claims_are_capped() {
        let (codec, key) = codec_with(100, 1024);
        let mut plaintext = b"SR\x01l".to_vec();
        plaintext.extend_from_slice(&key_digest("k"));
        plaintext.extend_from_slice(&(unix_now() + 60).to_be_bytes());
        plaintext.extend_from_slice(&(u32::MAX).to_le_bytes());
        plaintext.extend_from_slice(b"\x00");
        let token = Keyring::parse(&key).unwrap().encrypt(&plaintext);
        assert_eq!(
            codec.decode("k", token.as_bytes(), unix_now()),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn decompression_bombs_are_capped() {
        let (codec, key) = codec_with(100, 1024 * 1024);
        let bomb_plain = vec![b'0'; 64 * 1024 * 1024];
        let packed = zstd::bulk::compress(&bomb_plain, 3).unwrap();
        let mut plaintext = b"SR\x01z".to_vec();
        plaintext.extend_from_slice(&key_digest("k"));
        plaintext.extend_from_slice(&(unix_now() + 60).to_be_bytes());
        plaintext.extend_from_slice(&packed);
        let token = Keyring::parse(&key).unwrap().encrypt(&plaintext);
        assert_eq!(
            codec.decode("k", token.as_bytes(), unix_now()),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn no_genuine_token_is_longer_than_max_stored_bytes() {
        let (codec, _) = codec_with(0, 4096);
        // A xorshift byte stream (the codec does not parse JSON): incompressible, so the
        // largest value is stored raw.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let (largest, report) = codec.encode("k", &noise, 60).unwrap();
        assert!(!report.compressed);
        assert_eq!(largest.len(), codec.max_stored_bytes());
        let (packed, report) = codec.encode("k", &[b'7'; 4096], 60).unwrap();
        assert!(report.compressed && packed.len() < codec.max_stored_bytes());
        assert!(codec.decode("k", &largest, unix_now()).is_ok());
        // One byte more (a '=' the reader would otherwise skip) is refused unread.
        let mut longer = largest.clone();
        longer.push(b'=');
        assert_eq!(
            codec.decode("k", &longer, unix_now()),
            Err(DecodeError::Oversized)
        );
    }

    #[test]
    fn oversized_values_are_refused_on_write() {
        let (codec, _) = codec_with(100, 10);
        let err = codec.encode("k", b"[1,2,3,4,5,6]", 60).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Validation);
        assert_eq!(err.context["error_type"], "value_too_large");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::crypto::generate_encryption_key;
    use proptest::prelude::*;
    use serde_json::Value;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 200, 10, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..10).prop_map(Value::Array),
                prop::collection::btree_map(".{0,12}", inner, 0..10)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any JSON value survives encode → decode byte for byte, whatever the compression
        /// settings, and only under the key it was written for.
        #[test]
        fn any_json_value_round_trips(value in json_value(), level in 1i32..=9, threshold in 0usize..300) {
            let keyring = Arc::new(Keyring::parse(&generate_encryption_key()).unwrap());
            let codec = Codec::new(keyring, threshold, level, DEFAULT_MAX_VALUE_BYTES);
            let json = serde_json::to_vec(&value).unwrap();
            let (token, _) = codec.encode("prop:key", &json, 60).unwrap();
            let opened = codec.decode("prop:key", &token, unix_now()).unwrap();
            prop_assert_eq!(&opened.json, &json);
            let parsed: Value = serde_json::from_slice(&opened.json).unwrap();
            prop_assert_eq!(parsed, value);
            prop_assert_eq!(codec.decode("prop:other", &token, unix_now()), Err(DecodeError::ForeignKey));
        }

        /// Arbitrary bytes never decode and never panic.
        #[test]
        fn arbitrary_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let keyring = Arc::new(Keyring::parse(&generate_encryption_key()).unwrap());
            let codec = Codec::new(keyring, 100, 6, DEFAULT_MAX_VALUE_BYTES);
            prop_assert!(codec.decode("k", &bytes, unix_now()).is_err());
        }
    }
}
