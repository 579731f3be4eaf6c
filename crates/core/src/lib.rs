//! secure_redis core: a Redis cache that cannot be made insecure.
//!
//! Data flows one way: Python call → `secure_redis_py` (the binding crate: convert, release
//! the GIL) → `cache` → `codec` (what is stored) → `connection` (TLS + AUTH). This crate has
//! no Python in it, so `cargo test` covers all of it.
//!
//! # Layout
//!
//! * `env`: the one reader of the process environment (variable names, blank-means-unset).
//! * `clock`: the one wall clock.
//! * `environment`: which deployment environment this is, and why.
//! * `error`: `Error` and `ErrorCode`, every `error_type` a caller can see.
//! * `forks`: knowing that this process is a fork of the one that set something up.
//! * `config`: `SecurityConfig`, validated; loading from the environment; per-environment policy.
//! * `crypto`: the Fernet keyring with rotation, `Secret`, passwords, the encryption layer.
//! * `codec`: what is stored in Redis (envelope, compression, batch decoding).
//! * `connection`: URLs, rustls, topologies and the reconnecting connection.
//! * `cache`: `GenericRedisCache` (L1 + Redis), `InMemoryCache`, options, reports.
//! * `ai`: the AI policy over `cache`: key names, TTLs per operation, tiers, statistics.
//! * `validate`: startup validation and its report.
//!
//! docs/architecture.md walks through the data flow and the asyncio bridge of the bindings.

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
pub mod forks;
pub mod validate;

#[cfg(test)]
mod test_support;
