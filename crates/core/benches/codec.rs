//! The value codec (serialise → compress → encrypt, and back) at the benchmark's value sizes.
//!
//!     cargo bench --bench codec
//!
//! `encode`/`decode`/`encode_then_decode` time the codec on JSON bytes (compress + Fernet);
//! the `full_*` benches add serialisation, with `serde_json::Value` -> bytes -> `Value` standing
//! in for the Python object conversion of `crates/py/src/json.rs` (benches/bench.py times that
//! conversion itself). `full_round_trip` is the figure the issue's "encode plus decode" target
//! is judged by.

use divan::Bencher;
use secure_redis_core::clock::unix_now;
use secure_redis_core::codec::Codec;
use secure_redis_core::crypto::{generate_encryption_key, Keyring};
use std::sync::Arc;

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [200, 2048, 50 * 1024];
const WORDS: [&str; 12] = [
    "the",
    "model",
    "answered",
    "that",
    "latency",
    "depends",
    "on",
    "serialization",
    "encryption",
    "network",
    "round",
    "trips",
];

/// JSON of about `size` bytes, compressible like model output.
fn value(size: usize) -> Vec<u8> {
    let mut text = String::new();
    let mut n = 7usize;
    while text.len() < size.saturating_sub(80) {
        n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
        text.push_str(WORDS[(n >> 16) % WORDS.len()]);
        text.push(' ');
    }
    format!(r#"{{"model":"bench-llm","operation":"summarize","tokens":42,"result":"{text}"}}"#)
        .into_bytes()
}

fn parsed(size: usize) -> serde_json::Value {
    serde_json::from_slice(&value(size)).unwrap()
}

fn codec() -> Codec {
    let keyring = Arc::new(Keyring::parse(&generate_encryption_key()).unwrap());
    Codec::new(keyring, 1000, 6, 32 * 1024 * 1024)
}

#[divan::bench(args = SIZES)]
fn encode(bencher: Bencher, size: usize) {
    let codec = codec();
    let json = value(size);
    bencher.bench(|| {
        codec
            .encode("bench:key", divan::black_box(&json), 3600)
            .unwrap()
    });
}

#[divan::bench(args = SIZES)]
fn decode(bencher: Bencher, size: usize) {
    let codec = codec();
    let (token, _) = codec.encode("bench:key", &value(size), 3600).unwrap();
    let now = unix_now();
    bencher.bench(|| {
        codec
            .decode("bench:key", divan::black_box(&token), now)
            .unwrap()
    });
}

#[divan::bench(args = SIZES)]
fn encode_then_decode(bencher: Bencher, size: usize) {
    let codec = codec();
    let json = value(size);
    let now = unix_now();
    bencher.bench(|| {
        let (token, _) = codec
            .encode("bench:key", divan::black_box(&json), 3600)
            .unwrap();
        codec.decode("bench:key", &token, now).unwrap()
    });
}

#[divan::bench(args = SIZES)]
fn full_encode(bencher: Bencher, size: usize) {
    let codec = codec();
    let value = parsed(size);
    bencher.bench(|| {
        let json = serde_json::to_vec(divan::black_box(&value)).unwrap();
        codec.encode("bench:key", &json, 3600).unwrap()
    });
}

#[divan::bench(args = SIZES)]
fn full_decode(bencher: Bencher, size: usize) {
    let codec = codec();
    let (token, _) = codec.encode("bench:key", &value(size), 3600).unwrap();
    let now = unix_now();
    bencher.bench(|| {
        let opened = codec
            .decode("bench:key", divan::black_box(&token), now)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&opened.json).unwrap()
    });
}

#[divan::bench(args = SIZES)]
fn full_round_trip(bencher: Bencher, size: usize) {
    let codec = codec();
    let value = parsed(size);
    let now = unix_now();
    bencher.bench(|| {
        let json = serde_json::to_vec(divan::black_box(&value)).unwrap();
        let (token, _) = codec.encode("bench:key", &json, 3600).unwrap();
        let opened = codec.decode("bench:key", &token, now).unwrap();
        serde_json::from_slice::<serde_json::Value>(&opened.json).unwrap()
    });
}
