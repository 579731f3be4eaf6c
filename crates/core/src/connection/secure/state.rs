//! What the supervisor knows about the connection, behind `Inner::lock`: the live connection
//! if any, where the reconnect cycle stands, and the counters reported by `state()`.

use super::node::{NodeReport, TlsSession};
use crate::connection::handle::{NodeAddress, RedisHandle};
use std::time::Instant;

pub(super) struct Live {
    pub(super) id: u64,
    pub(super) conn: RedisHandle,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) live: Option<Live>,
    pub(super) next_id: u64,
    /// Bumped by `disconnect()`; a connect that started in an older epoch is discarded.
    pub(super) epoch: u64,
    /// A first connection was attempted: from then on requests fail fast while a background
    /// task reconnects, instead of waiting for Redis inline.
    pub(super) attempted: bool,
    pub(super) ever_connected: bool,
    pub(super) probing: bool,
    pub(super) consecutive_failures: u32,
    pub(super) retry_at: Option<Instant>,
    pub(super) reconnecting: bool,
    pub(super) outage_reported: bool,
    pub(super) reconnects: u64,
    pub(super) last_error: Option<String>,
    pub(super) rejected: bool,
    pub(super) tls: Option<TlsSession>,
    pub(super) nodes: Vec<NodeReport>,
    /// Cluster primaries seen by the last successful connect: seeds for the next one, so a
    /// cluster stays reachable when the configured seed itself is the node that died.
    pub(super) known_primaries: Vec<NodeAddress>,
}
