//! secure_redis core: a Redis cache that cannot be made insecure.
//!
//! Data flows one way: Python call → `secure_redis_py` (the binding crate: convert, release
//! the GIL) → `cache` → `codec` (what is stored) → `connection` (TLS + AUTH). This crate has
//! no Python in it, so `cargo test` covers all of it.

pub mod ai;
pub mod cache;
pub mod clock;
pub mod codec;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod env;
pub mod environment;
pub mod error;
pub mod validate;

#[cfg(test)]
mod test_support;
