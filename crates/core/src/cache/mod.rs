//! The caches: the Redis-backed `GenericRedisCache` with its L1 memory tier (`generic`, `l1`,
//! kept coherent across processes by `coherence`, shared by same-settings caches through
//! `backend`, the Redis commands it issues in `commands`,
//! its key prefix in `namespace`, bulk deletion of its own entries in `sweep`, recovery in
//! `repair`), tenant scopes with keys of their own (`scope`), the process-local `InMemoryCache` (`memory`), constructor options and ranges, key
//! globs, counters, the entries refused and the warnings about them (`rejections`), and the
//! reports they produce (`report`).

pub mod backend;
pub mod coherence;
mod commands;
pub mod generic;
pub mod l1;
#[cfg(test)]
mod live_tests;
pub mod memory;
pub mod namespace;
pub mod options;
pub mod pattern;
pub mod rejections;
pub mod repair;
pub mod report;
pub mod scope;
pub mod stats;
mod sweep;

pub use generic::{CacheView, GenericRedisCache, Need};
pub use options::CacheOptions;
