//! What the supervisor knows about the connection, behind `Inner::lock`: where the connection
//! stands (`Phase`), the outage in progress (`Outage`), and the counters `state()` reports.
//!
//! `Phase` leaves no room for the flag combinations that meant nothing (live and
//! reconnecting, a back-off deadline while connected, never attempted and either). The rules
//! the types do not carry, which the supervisor keeps:
//! * A connect that started before `disconnect()` (an older `epoch`) changes nothing, and a
//!   background reconnect that fails after another connect installed a connection leaves
//!   that connection's phase alone.
//! * `outage` is set in `Broken`, `Backoff` and `Reconnecting` (every way into them records
//!   one) and cleared only by installing a connection. `disconnect()` keeps it: an outage it
//!   interrupts is neither announced twice nor left without its "reachable again".

use super::node::{NodeReport, TlsSession};
use crate::connection::handle::{NodeAddress, RedisHandle};
use std::time::Instant;

/// The connection lifecycle. Only `Idle` lets a request connect inline (and wait for it);
/// every other phase answers at once, with the live connection or a fast failure.
#[derive(Default)]
pub(super) enum Phase {
    /// Nothing attempted since start-up or the last `disconnect()`.
    #[default]
    Idle,
    Live(Live),
    /// The live connection broke: the first reconnect may start at once, with the next
    /// request.
    Broken,
    /// An attempt failed: the next request at or after `until` starts a reconnect.
    Backoff {
        until: Instant,
    },
    /// The one background reconnect is in flight; requests do not start another.
    Reconnecting,
}

pub(super) struct Live {
    pub(super) id: u64,
    pub(super) conn: RedisHandle,
    /// A PING is testing this connection after a request timed out: one at a time, so a
    /// server that stopped answering is not sent one per waiting request.
    pub(super) probing: bool,
}

/// Redis unreachable, from the first failure or lost connection until a connection is
/// installed again: its start and its end are logged once each, however many attempts fail
/// in between.
pub(super) struct Outage {
    /// The latest failure, for `state()` and for fast failures.
    pub(super) last_error: String,
    /// The latest attempt reached a server that refused us (credentials, certificate, not
    /// TLS): a configuration problem rather than Redis being down.
    pub(super) rejected: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) phase: Phase,
    /// Counts installed connections, which take their id from it (so ids start at 1).
    pub(super) next_id: u64,
    /// Bumped by `disconnect()`; a connect that started in an older epoch is discarded.
    pub(super) epoch: u64,
    pub(super) consecutive_failures: u32,
    pub(super) reconnects: u64,
    pub(super) outage: Option<Outage>,
    pub(super) tls: Option<TlsSession>,
    pub(super) nodes: Vec<NodeReport>,
    /// Cluster primaries seen by the last successful connect: seeds for the next one, so a
    /// cluster stays reachable when the configured seed itself is the node that died.
    pub(super) known_primaries: Vec<NodeAddress>,
}

impl State {
    pub(super) fn live(&self) -> Option<&Live> {
        match &self.phase {
            Phase::Live(live) => Some(live),
            _ => None,
        }
    }
}
