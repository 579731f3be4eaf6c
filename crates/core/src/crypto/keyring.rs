//! Fernet keys with rotation: `REDIS_ENCRYPTION_KEY` may hold several comma-separated keys;
//! the first encrypts, every key decrypts (the semantics of `cryptography`'s MultiFernet).
//!
//! Fernet is implemented here on the RustCrypto primitives (aes, cbc, hmac, sha2) and
//! base64 rather than through the `fernet` crate, exactly as its specification says:
//! `base64url(0x80 || timestamp u64 BE || IV || AES-128-CBC-PKCS7(plaintext) || HMAC-SHA256)`.
//! What that buys on the hot path: the AES key schedule and the keyed HMAC state are built
//! once per key instead of once per call, the token is decoded from base64 once (not once per
//! rotation key), the plaintext is encrypted and decrypted in place in one buffer (the crate
//! copies it three times), and IVs come from a per-thread CSPRNG instead of a `getrandom`
//! system call per value. Tokens are byte-for-byte what `cryptography` writes and reads; the
//! tests check both directions, and against the `fernet` crate.
//!
//! Decryption checks the HMAC (in constant time) before touching the ciphertext, accepts a
//! timestamp at most `MAX_CLOCK_SKEW` seconds in the future (as the `fernet` crate did) and
//! never checks a TTL: cache expiry is Redis's job and the codec's own `expires_at`.
//!
//! Key material is wiped when the keyring drops: the AES key schedules (the `aes` crate's
//! `zeroize` feature), the keyed HMAC states (`SigningKey`, which the `hmac` crate cannot do
//! itself), the naming keys and every decoded raw key (`Zeroizing`). The working copies each
//! call makes of a key state live on the stack for that call only (the cbc encryptor's copy of
//! the AES key is wiped on drop too).

use crate::clock::unix_now;
use crate::error::{Error, ErrorCode, Result};
use aes::cipher::inout::InOutBuf;
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::Aes128;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::{RngCore, TryRngCore};
use sha2::Sha256;
use std::fmt::Write;
use zeroize::{ZeroizeOnDrop, Zeroizing};

type HmacSha256 = Hmac<Sha256>;

// `SigningKey` wipes an `HmacSha256` as plain bytes: that is sound only while it owns no
// heap data and has no drop glue of its own (it is digest state: integer arrays and counters).
const _: () = assert!(!std::mem::needs_drop::<HmacSha256>());

const TOKEN_VERSION: u8 = 0x80;
/// Version, timestamp and IV: the signed bytes before the ciphertext.
const PREFIX_LEN: usize = 1 + 8 + 16;
const TAG_LEN: usize = 32;
const BLOCK: usize = 16;
const MAX_CLOCK_SKEW: u64 = 60;

/// The HMAC-SHA256 state after a signing key: as good as the key itself, so wiped on drop.
#[derive(Clone)]
struct SigningKey(HmacSha256);

impl SigningKey {
    fn new(key: &[u8]) -> Option<SigningKey> {
        <HmacSha256 as Mac>::new_from_slice(key)
            .ok()
            .map(SigningKey)
    }

    /// A working copy for one message.
    fn start(&self) -> HmacSha256 {
        self.0.clone()
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        // SAFETY: `self.0` is exclusively ours and about to be dropped; `HmacSha256` is flat
        // digest state (integer arrays and counters, all-zero valid) with no drop glue, which
        // the const assertion above checks, so overwriting its bytes leaks or breaks nothing.
        unsafe { zeroize::zeroize_flat_type(&raw mut self.0) }
    }
}

impl ZeroizeOnDrop for SigningKey {}

/// One Fernet key, ready to use: the AES key schedule and the HMAC state after the key.
#[derive(Clone)]
struct FernetKey {
    cipher: Aes128,
    mac: SigningKey,
}

// Both fields wipe themselves on drop: `Aes128` through the `aes` crate's `zeroize` feature.
impl ZeroizeOnDrop for FernetKey {}

impl FernetKey {
    /// A key as the `fernet` crate and `cryptography` take it: 32 bytes of base64 (padding
    /// optional; see `key_bytes` for the alphabets), signing key first.
    fn parse(text: &str) -> Option<FernetKey> {
        let raw = key_bytes(text)?;
        if raw.len() != 32 {
            return None;
        }
        Some(FernetKey {
            mac: SigningKey::new(&raw[..16])?,
            cipher: Aes128::new_from_slice(&raw[16..]).ok()?,
        })
    }

    /// Whether `tag` is the HMAC of `signed` under this key, compared in constant time.
    fn signed(&self, signed: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.start();
        mac.update(signed);
        mac.verify_slice(tag).is_ok()
    }
}

/// A decrypted plaintext, still inside the buffer it was decrypted in.
pub struct Plaintext {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Plaintext {
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The plaintext from `offset` on, as its own vector (a move within the buffer, no new
    /// allocation).
    pub fn into_tail(mut self, offset: usize) -> Vec<u8> {
        self.buf.truncate(self.end);
        self.buf.drain(..(self.start + offset).min(self.end));
        self.buf
    }
}

pub struct Keyring {
    keys: Vec<FernetKey>,
    /// HMAC keys for naming cache entries (see `naming_keys`), one per Fernet key, in order.
    naming_keys: Zeroizing<Vec<[u8; 32]>>,
}

// Every field wipes itself on drop (`FernetKey`, `Zeroizing`).
impl ZeroizeOnDrop for Keyring {}

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
            .code(ErrorCode::InvalidEncryptionKey));
        }
        let mut fernets = Vec::with_capacity(parts.len());
        for (position, part) in parts.iter().enumerate() {
            match FernetKey::parse(part) {
                Some(fernet) => fernets.push(fernet),
                None => {
                    return Err(Error::configuration(format!(
                        "Encryption key #{} is not a valid Fernet key: it must be 32 bytes encoded as base64 (44 \
                         characters, url-safe or standard alphabet). Generate one with secure_redis.generate_encryption_key().",
                        position + 1
                    ))
                    .code(ErrorCode::InvalidEncryptionKey)
                    .with("key_position", position + 1)
                    .with("key_length", part.len()))
                }
            }
        }
        Ok(Keyring {
            keys: fernets,
            naming_keys: Zeroizing::new(parts.iter().map(|part| derive_naming_key(part)).collect()),
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

    /// The length of the token `encrypt` makes of a plaintext of `plaintext_len` bytes:
    /// version, timestamp and IV, the plaintext padded to whole blocks (PKCS7 always adds
    /// 1..=16 bytes), the HMAC, all in padded base64. Readers use it to know the longest token
    /// a genuine entry can be before reading one.
    pub const fn token_len(plaintext_len: usize) -> usize {
        let raw = PREFIX_LEN + (plaintext_len / BLOCK + 1) * BLOCK + TAG_LEN;
        raw.div_ceil(3) * 4
    }

    /// A standard Fernet token (url-safe base64 text) made with the primary key.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let token = self.encrypt_with(plaintext.len(), |buf| buf.extend_from_slice(plaintext));
        // Base64 output is ASCII.
        String::from_utf8(token).unwrap_or_default()
    }

    /// A Fernet token (url-safe base64 bytes) of the plaintext that `write` appends to the
    /// buffer it is handed; `size_hint` is its expected length. Writing in place saves the
    /// caller a plaintext buffer of its own and us a copy.
    pub fn encrypt_with(&self, size_hint: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let key = &self.keys[0];
        let mut buf = Vec::with_capacity(PREFIX_LEN + size_hint + BLOCK + TAG_LEN);
        buf.push(TOKEN_VERSION);
        buf.extend_from_slice(&unix_now().to_be_bytes());
        let mut iv = [0u8; BLOCK];
        // From the OS on every token (one getrandom call): a process-local generator carries
        // its state into a child forked without Python's at-fork hooks (a raw fork(), or a
        // fork from a thread), and parent and child would then write identical IVs. ThreadRng
        // (a CSPRNG seeded from the OS, reseeded by `reseed_after_fork`) only stands in if
        // the OS source fails.
        if rand::rngs::OsRng.try_fill_bytes(&mut iv).is_err() {
            rand::rng().fill_bytes(&mut iv);
        }
        buf.extend_from_slice(&iv);
        write(&mut buf);
        let message_len = buf.len() - PREFIX_LEN;
        // PKCS7: 1..=16 bytes, each holding the pad length.
        let pad = BLOCK - message_len % BLOCK;
        buf.resize(buf.len() + pad, pad as u8);
        let mut encryptor = cbc::Encryptor::<Aes128>::inner_iv_init(key.cipher.clone(), &iv.into());
        let (blocks, _) = InOutBuf::from(&mut buf[PREFIX_LEN..]).into_chunks();
        encryptor.encrypt_blocks_inout_mut(blocks);
        let mut mac = key.mac.start();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes());
        base64_simd::URL_SAFE.encode_type::<Vec<u8>>(&buf)
    }

    /// The plaintext of a token made with any of our keys.
    pub fn decrypt(&self, token: &[u8]) -> Result<Vec<u8>, DecryptError> {
        self.open(token).map(|plain| plain.into_tail(0))
    }

    /// Like `decrypt`, leaving the plaintext in the buffer it was decrypted in.
    pub fn open(&self, token: &[u8]) -> Result<Plaintext, DecryptError> {
        // The `fernet` crate's reading, kept: any trailing '=' ignored, then unpadded base64.
        let mut end = token.len();
        while end > 0 && token[end - 1] == b'=' {
            end -= 1;
        }
        let token = &token[..end];
        let mut buf: Vec<u8> = base64_simd::URL_SAFE_NO_PAD
            .decode_type(token)
            .map_err(|_| DecryptError)?;
        if buf.len() < PREFIX_LEN + BLOCK + TAG_LEN
            || !(buf.len() - PREFIX_LEN - TAG_LEN).is_multiple_of(BLOCK)
            || buf[0] != TOKEN_VERSION
        {
            return Err(DecryptError);
        }
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&buf[1..9]);
        if unix_now().saturating_add(MAX_CLOCK_SKEW) < u64::from_be_bytes(timestamp) {
            return Err(DecryptError);
        }
        let tag_at = buf.len() - TAG_LEN;
        let (signed, tag) = buf.split_at(tag_at);
        let key = self
            .keys
            .iter()
            .find(|key| key.signed(signed, tag))
            .ok_or(DecryptError)?;
        let mut iv = [0u8; BLOCK];
        iv.copy_from_slice(&buf[9..PREFIX_LEN]);
        let decryptor = cbc::Decryptor::<Aes128>::inner_iv_init(key.cipher.clone(), &iv.into());
        let plain_len = decryptor
            .decrypt_padded_mut::<Pkcs7>(&mut buf[PREFIX_LEN..tag_at])
            .map_err(|_| DecryptError)?
            .len();
        Ok(Plaintext {
            buf,
            start: PREFIX_LEN,
            end: PREFIX_LEN + plain_len,
        })
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} key(s), ***)", self.keys.len())
    }
}

/// The bytes of a key written in base64: the url-safe alphabet Fernet keys are generated in,
/// or the standard one (`+` and `/`, what `openssl rand -base64 32` prints), which
/// `cryptography.fernet.Fernet` accepts as well. The same 32 bytes are the same key whichever
/// alphabet carries them, so they name and seal entries alike. A text mixing both alphabets is
/// not a key. Padding is optional; surrounding whitespace is ignored.
pub fn key_bytes(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let trimmed = text.trim().trim_end_matches('=');
    let standard = trimmed.contains(['+', '/']);
    let decoded = if standard {
        STANDARD_NO_PAD.decode(trimmed)
    } else {
        URL_SAFE_NO_PAD.decode(trimmed)
    };
    decoded.ok().map(Zeroizing::new)
}

fn derive_naming_key(primary: &str) -> [u8; 32] {
    let raw = key_bytes(primary).unwrap_or_else(|| Zeroizing::new(primary.as_bytes().to_vec()));
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&raw).expect("HMAC takes any key length");
    mac.update(b"secure_redis/key-names/v1");
    mac.finalize().into_bytes().into()
}

/// The lengths a Fernet token of a `plaintext_len`-byte plaintext can have as text: padded
/// base64 as we (and `cryptography`) write it, or unpadded, which `Keyring::open` also reads.
/// Lets a caller refuse a stored value by its length alone, before fetching it.
pub fn token_text_len(plaintext_len: usize) -> std::ops::RangeInclusive<usize> {
    let raw = PREFIX_LEN + (plaintext_len / BLOCK + 1) * BLOCK + TAG_LEN;
    (raw * 4).div_ceil(3)..=raw.div_ceil(3) * 4
}

/// The first character of every Fernet token's text: the version byte 0x80 in base64.
pub const TOKEN_FIRST_CHAR: u8 = b'g';

/// A digest for Redis key names derived from user text (AI keys, cache-aside lock and tag
/// names): HMAC-SHA256 under a naming key over `domain`, a zero byte and `data`, first 128 bits
/// as hex. Nobody without the key can test guesses against the names in Redis.
pub fn name_digest(naming_key: &[u8; 32], domain: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(naming_key).expect("any key length");
    mac.update(domain);
    mac.update(&[0]);
    mac.update(data);
    hex(&mac.finalize().into_bytes()[..16])
}

/// Lower-case hex of `bytes`: how digests and random ids appear in Redis names.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// A fresh Fernet key from the operating system's random source.
pub fn generate_encryption_key() -> String {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(key.as_mut())
        .expect("the operating system's random source failed");
    URL_SAFE.encode(key.as_ref())
}

/// For a forked child: its one thread carries the parent's generator state, which must not
/// produce the parent's next numbers again (IVs come from the OS; this covers the fallback).
pub fn reseed_after_fork() {
    let _ = rand::rng().reseed();
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
    fn token_len_is_the_length_of_every_token_made() {
        let ring = Keyring::parse(&generate_encryption_key()).unwrap();
        for len in (0..100).chain([4095, 4096, 4097, 1 << 20]) {
            let token = ring.encrypt(&vec![b'x'; len]);
            assert_eq!(
                token.len(),
                Keyring::token_len(len),
                "plaintext of {len} bytes"
            );
        }
    }

    #[test]
    fn token_lengths_and_first_character_are_predicted() {
        let ring = Keyring::parse(&generate_encryption_key()).unwrap();
        for len in [0, 1, 15, 16, 17, 28, 100, 1000] {
            let token = ring.encrypt(&vec![b'x'; len]);
            let range = token_text_len(len);
            assert!(
                range.contains(&token.len()),
                "{len}: {} not in {range:?}",
                token.len()
            );
            let unpadded = token.trim_end_matches('=');
            assert!(range.contains(&unpadded.len()));
            assert!(ring.decrypt(unpadded.as_bytes()).is_ok());
            assert_eq!(token.as_bytes()[0], TOKEN_FIRST_CHAR);
        }
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
    fn a_key_in_the_standard_alphabet_is_the_same_key() {
        use base64::engine::general_purpose::STANDARD;
        // Keys whose base64 holds the characters the two alphabets write differently.
        let mut found = 0;
        for _ in 0..200 {
            let url_safe = generate_encryption_key();
            if !url_safe.contains(['-', '_']) {
                continue;
            }
            found += 1;
            let standard = STANDARD.encode(&*key_bytes(&url_safe).unwrap());
            assert!(standard.contains(['+', '/']));
            let (a, b) = (
                Keyring::parse(&url_safe).unwrap(),
                Keyring::parse(&standard).unwrap(),
            );
            assert_eq!(a.naming_key(), b.naming_key(), "entries are named alike");
            let token = a.encrypt(b"x");
            assert_eq!(b.decrypt(token.as_bytes()).unwrap(), b"x");
            assert!(Keyring::parse(standard.trim_end_matches('=')).is_ok());
            // One alphabet or the other, never both in one key.
            let mixed = format!("-{}", &standard[1..]);
            if mixed.contains(['+', '/']) {
                assert!(Keyring::parse(&mixed).is_err());
            }
        }
        assert!(found > 100);
        // Anything that is not exactly 32 bytes is still refused, in either alphabet.
        for short in [STANDARD.encode([7u8; 31]), STANDARD.encode([0xfbu8; 33])] {
            assert!(Keyring::parse(&short).is_err(), "{short}");
        }
    }

    #[test]
    fn tokens_made_by_python_cryptography_decrypt() {
        // Fernet(PY_KEY).encrypt(plaintext) with `cryptography` 46: empty, short, exactly one
        // block and several blocks, so every padding case is read.
        let ring = Keyring::parse(PY_KEY).unwrap();
        let cases: [(&[u8], &str); 4] = [
            (b"", "gAAAAABrDoPIqFXOUeF-_vZlUcwaRyvnVsyw6u4kUzV1fZdqGP8Sg4ENtQstrLnIwjs4FlPyqECIxEIdvXB0s_mQo06der0Yjw=="),
            (b"{\"a\": 1}", "gAAAAABrDoPI3pB8NWqgIY-Vb71R5rLUtIj4xCFl8E9XRSXLUPk7WPOGjpRrbM0bwtfrQX0MjycjJtk1yqAJbvRTs0exohEcOA=="),
            (&[b'x'; 16], "gAAAAABrDoPIsAr9arEYG6JLWSdKBmooGr31vyBBAtZl28ehonzlcbo99Rgt1Sw774vWgx0mHjDEWHZ3g9Pa8N7EHB_XEg0F7SIFxefPVGrvpiqNB6zJzPg="),
            (&[b'y'; 100], "gAAAAABrDoPIHd-kw2Jwcdbowi3AlSsgY3_Nsj8ODcpB-65ANFM_lrxYTYevZFlSwNhb4Ze829eQq2u8lE1mraMlQPTirTTYl7_vOna9YcqW55T32g-LPEndauJ-Vm3RmNdsLAq3ole9YRHYzWqr2L-43Llgkpe-nNnUCiNbNv-vpG-LiiTaEm3X9zQqsdsEbalwMCRL_g34rsJvOFTAOyS0TyzMdeqAUg=="),
        ];
        for (plaintext, token) in cases {
            assert_eq!(ring.decrypt(token.as_bytes()).unwrap(), plaintext);
        }
    }

    #[test]
    fn interoperates_with_the_fernet_crate_both_ways() {
        let key = generate_encryption_key();
        let ring = Keyring::parse(&key).unwrap();
        let theirs = fernet::Fernet::new(&key).unwrap();
        for size in [0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 1000, 2048, 50 * 1024] {
            let plaintext: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let ours = ring.encrypt(&plaintext);
            assert_eq!(theirs.decrypt(&ours).unwrap(), plaintext, "size {size}");
            let token = theirs.encrypt(&plaintext);
            assert_eq!(
                ring.decrypt(token.as_bytes()).unwrap(),
                plaintext,
                "size {size}"
            );
            assert_eq!(ring.open(token.as_bytes()).unwrap().as_slice(), plaintext);
            // Unpadded base64 reads too, as it did through the crate.
            let unpadded = token.trim_end_matches('=');
            assert_eq!(ring.decrypt(unpadded.as_bytes()).unwrap(), plaintext);
        }
    }

    #[test]
    fn every_altered_byte_is_refused() {
        let ring = Keyring::parse(PY_KEY).unwrap();
        let token = ring.encrypt(b"a value worth tampering with, two blocks");
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(&token)
            .unwrap();
        for at in 0..raw.len() {
            let mut altered = raw.clone();
            altered[at] ^= 0x01;
            let altered = base64::engine::general_purpose::URL_SAFE.encode(altered);
            assert_eq!(
                ring.decrypt(altered.as_bytes()),
                Err(DecryptError),
                "byte {at}"
            );
        }
        // Truncated or extended by a block: refused, not read past.
        assert!(ring.decrypt(&token.as_bytes()[..token.len() - 24]).is_err());
        let mut longer = raw.clone();
        longer.extend_from_slice(&[0u8; 16]);
        let longer = base64::engine::general_purpose::URL_SAFE.encode(longer);
        assert!(ring.decrypt(longer.as_bytes()).is_err());
    }

    #[test]
    fn timestamps_far_in_the_future_are_refused_as_before() {
        let ring = Keyring::parse(PY_KEY).unwrap();
        let theirs = fernet::Fernet::new(PY_KEY).unwrap();
        let token = theirs.encrypt(b"x");
        let mut raw = base64::engine::general_purpose::URL_SAFE
            .decode(&token)
            .unwrap();
        raw[1..9].copy_from_slice(&(unix_now() + MAX_CLOCK_SKEW + 120).to_be_bytes());
        // Re-sign, so only the timestamp is wrong.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(
            &URL_SAFE_NO_PAD
                .decode(PY_KEY.trim_end_matches('='))
                .unwrap()[..16],
        )
        .unwrap();
        let tag_at = raw.len() - TAG_LEN;
        mac.update(&raw[..tag_at]);
        raw.truncate(tag_at);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        let future = base64::engine::general_purpose::URL_SAFE.encode(&raw);
        assert_eq!(ring.decrypt(future.as_bytes()), Err(DecryptError));
        assert!(theirs.decrypt(&future).is_err());
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

    fn wipes_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn every_key_state_wipes_itself_on_drop() {
        wipes_on_drop::<Keyring>();
        wipes_on_drop::<FernetKey>();
        wipes_on_drop::<SigningKey>();
        wipes_on_drop::<Aes128>();
        wipes_on_drop::<cbc::Encryptor<Aes128>>();
        wipes_on_drop::<cbc::Decryptor<Aes128>>();
        wipes_on_drop::<Zeroizing<Vec<[u8; 32]>>>();
        // Still the same keys after the wrapping: a clone signs as the original does.
        let ring = Keyring::parse(PY_KEY).unwrap();
        let copy = ring.keys[0].mac.clone();
        let (mut a, mut b) = (ring.keys[0].mac.start(), copy.start());
        a.update(b"x");
        b.update(b"x");
        assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Hostile tokens with a valid version byte and any shape behind it, as base64 or not,
        /// never decrypt and never panic.
        #[test]
        fn hostile_tokens_never_panic(body in prop::collection::vec(any::<u8>(), 0..200), padded in any::<bool>()) {
            let ring = Keyring::parse(&generate_encryption_key()).unwrap();
            let mut raw = vec![TOKEN_VERSION];
            raw.extend_from_slice(&body);
            let token = if padded { URL_SAFE.encode(&raw) } else { URL_SAFE_NO_PAD.encode(&raw) };
            prop_assert!(ring.decrypt(token.as_bytes()).is_err());
            prop_assert!(ring.decrypt(&raw).is_err());
        }
    }
}
