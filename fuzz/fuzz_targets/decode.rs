//! Whatever bytes Redis returns, decoding ends in a value or a `DecodeError`: never a panic,
//! never an allocation beyond the cap. Half the inputs are sealed with the real key first, so
//! the fuzzer also explores the envelope behind the HMAC (codec byte, digest, expiry, LZ4 and
//! zstd payloads).
#![no_main]

use secure_redis_core::codec::Codec;
use secure_redis_core::crypto::Keyring;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

fn setup() -> &'static (Codec, Keyring) {
    static CODEC: OnceLock<(Codec, Keyring)> = OnceLock::new();
    CODEC.get_or_init(|| {
        let keyring = Arc::new(Keyring::parse(KEY).unwrap());
        (Codec::new(keyring, 100, 6, 1 << 20), Keyring::parse(KEY).unwrap())
    })
}

fuzz_target!(|data: &[u8]| {
    let (codec, keyring) = setup();
    let _ = codec.decode("fuzz:key", data, 1_800_000_000);
    if let Some((&selector, rest)) = data.split_first() {
        if selector & 1 == 1 {
            let token = keyring.encrypt(rest);
            if let Ok(opened) = codec.decode("fuzz:key", token.as_bytes(), 1_800_000_000) {
                assert!(opened.json.len() <= 1 << 20);
            }
        }
    }
});
