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
//! * A connection given up (broken, dropped, disconnected) is fenced: its socket is aborted at
//!   once (zero linger, so the kernel discards what it still queues) and its server-side id
//!   waits in `abandoned` until the next connection to the same node has had the server close
//!   it (`CLIENT KILL ID`), before that connection is installed. A write the caller already
//!   gave up on can then never land after a later one.
//! * `pid` is the process the phase belongs to: in a forked child the parent's connection,
//!   its driver and any reconnect task do not exist, so the child starts over from `Idle`.

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
    /// The task driving a single node's socket: aborting it closes the socket at once.
    pub(super) driver: Option<tokio::task::AbortHandle>,
    /// Who the server says this connection is, to have it closed once abandoned.
    pub(super) fence: Option<Fence>,
}

/// A connection to one node as the server knows it (`CLIENT ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fence {
    pub(super) node: String,
    pub(super) client_id: i64,
    /// Our end of the socket, as the server names a client (`ip:port`). Ids start again at 1
    /// when the server restarts, so a kill by id alone could close another client's connection
    /// that happens to have it now; by id and address it can only close ours.
    pub(super) local_addr: String,
}

/// Abandoned connections remembered for fencing; older ones are dropped (the server's
/// `timeout`/keepalive closes them eventually, and their sockets were aborted already).
pub(super) const MAX_ABANDONED: usize = 8;

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
    /// The primary the sentinels named at the last connect (where invalidations come from).
    pub(super) primary: Option<NodeAddress>,
    /// Given-up connections the server has not been told to close yet.
    pub(super) abandoned: Vec<Fence>,
    /// The process that owns `phase`; 0 until first used.
    pub(super) pid: u32,
}

impl State {
    pub(super) fn live(&self) -> Option<&Live> {
        match &self.phase {
            Phase::Live(live) => Some(live),
            _ => None,
        }
    }

    /// Leaves whatever phase the connection is in, fencing a live connection: its socket is
    /// aborted now and its server-side id kept for the next connect to close.
    pub(super) fn abandon(&mut self, next: Phase) {
        if let Phase::Live(live) = std::mem::replace(&mut self.phase, next) {
            if let Some(driver) = &live.driver {
                driver.abort();
            }
            if let Some(fence) = live.fence {
                if self.abandoned.len() >= MAX_ABANDONED {
                    self.abandoned.remove(0);
                }
                self.abandoned.push(fence);
            }
        }
    }

    /// In a process forked from the one that made the connection, starts over: the parent's
    /// connection, driver and reconnect task are the parent's. Nothing of theirs is touched
    /// (dropping or aborting them would wake the parent's runtime, whose threads do not exist
    /// here and whose locks a parent thread may have held at the fork): they are leaked.
    pub(super) fn adopt_after_fork(&mut self) {
        let pid = std::process::id();
        if self.pid == pid {
            return;
        }
        let inherited = self.pid != 0;
        self.pid = pid;
        if inherited {
            std::mem::forget(std::mem::take(&mut self.phase));
            // The parent's ids stay the parent's business: this process has no socket of them.
            self.abandoned.clear();
            self.tls = None;
            self.nodes.clear();
        }
    }
}
