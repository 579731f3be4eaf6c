//! Getting to Redis: where (the URL), how (rustls with our trust roots) and staying there
//! (one multiplexed connection, reconnected with backoff, never a hang).

pub mod secure;
pub mod target;
pub mod tls;

#[cfg(test)]
mod live_tests;

pub use secure::{ConnectionState, Failure, SecureConnection, TlsSession};
pub use target::{redact_url, RedisTarget};
