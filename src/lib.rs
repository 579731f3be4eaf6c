//! secure_redis core: a Redis cache that cannot be made insecure.
//!
//! Data flows one way: Python call → `python` (bindings: convert, release the GIL) →
//! `cache` → `codec` (what is stored) → `connection` (TLS + AUTH). Everything except
//! `python` is plain Rust and covered by `cargo test`.

pub mod cache;
pub mod codec;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod environment;
pub mod error;
pub mod validate;

mod python;
#[cfg(test)]
mod test_support;
