//! Keeping L1 coherent with Redis across processes. Every process has its own L1, so a write
//! or delete made by another worker must reach it: Redis's client-side caching does that. One
//! background task per cache holds invalidation links (`connection::InvalidationLinks`, BCAST
//! tracking for every node) and evicts each key Redis names from L1. (On a Cluster Redis also
//! names the keys this process wrote itself; see `tracking` for why.)
//!
//! The rule that keeps reads correct: L1 answers only under a lease. Every `HEARTBEAT` the
//! task PINGs its links; once they answer, every invalidation for a write made before the
//! PING was sent has arrived (each link is one ordered stream) and been applied, so L1 may
//! answer until `LEASE` after that send. A write acknowledged to any process at time w is
//! therefore either evicted here or no longer served from L1 once `LEASE` has passed. When a
//! link is lagging, the lease lapses and reads go to Redis; when a link is lost, L1 is flushed
//! (it may have missed invalidations) and bypassed until links are back and tracking is on.
//! Reads racing an invalidation cannot put an old value back: invalidations bump L1's write
//! epochs, which fills check.
//!
//! In a forked child the parent's task does not exist: the lease is stamped with the fork
//! generation, so the child's L1 is bypassed until its own task has links.

use super::commands;
use super::l1::L1Cache;
use crate::connection::{Failure, InvalidationLinks, SecureConnection};
use crate::forks;
use redis::{PushInfo, PushKind, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// How often the links are PINGed while healthy.
const HEARTBEAT: Duration = Duration::from_millis(20);
/// How long after a PING was sent its answer lets L1 answer. Below the 100 ms within which
/// another process's write must be visible, leaving room for the PING's round trip.
const LEASE: Duration = Duration::from_millis(80);
/// Waits between attempts to open links (Redis down, not connected yet), doubling to the cap.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Counters for the statistics report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoherenceStats {
    /// Keys Redis said were written elsewhere (or by us) and L1 dropped.
    pub invalidations: u64,
    /// Times L1 was flushed because an invalidation link was lost.
    pub flushes: u64,
    /// Whether L1 may answer right now.
    pub active: bool,
}

struct Shared {
    conn: SecureConnection,
    l1: Arc<L1Cache>,
    /// The cache's namespace: tracking is limited to names under it.
    prefix: String,
    base: Instant,
    /// L1 may answer until this many nanoseconds after `base`; 0: not at all.
    lease_until: AtomicU64,
    /// The fork generation the lease (and the running task) belong to.
    generation: AtomicU64,
    /// `forks::generation() + 1` of the process whose task runs; 0 when none runs.
    task: AtomicU64,
    socket_timeout: Duration,
    refused_said: AtomicBool,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

/// The coherence of one cache's L1 with Redis; see the module documentation.
pub struct Coherence {
    shared: Arc<Shared>,
}

impl Coherence {
    pub fn new(
        conn: SecureConnection,
        l1: Arc<L1Cache>,
        prefix: String,
        socket_timeout: Duration,
    ) -> Coherence {
        Coherence {
            shared: Arc::new(Shared {
                conn,
                l1,
                prefix,
                base: Instant::now(),
                lease_until: AtomicU64::new(0),
                generation: AtomicU64::new(forks::generation()),
                task: AtomicU64::new(0),
                socket_timeout,
                refused_said: AtomicBool::new(false),
                invalidations: AtomicU64::new(0),
                flushes: AtomicU64::new(0),
            }),
        }
    }

    /// Whether L1 may answer now: the links proved, less than `LEASE` ago, that every
    /// invalidation up to then has been applied. Two atomic loads and a clock read.
    pub fn l1_is_current(&self) -> bool {
        self.shared.l1_is_current()
    }

    /// Starts the background task in this process unless it runs. Needs a tokio runtime;
    /// never waits.
    pub fn kick(&self) {
        let generation = forks::generation();
        let running = self.shared.task.load(Ordering::Acquire);
        if running == generation + 1 {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self
            .shared
            .task
            .compare_exchange(running, generation + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(run(weak, generation));
    }

    /// Waits until L1 may answer, at most `limit`, and not at all once the server refused
    /// tracking (the warning says what to fix).
    pub async fn wait_current(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.l1_is_current()
            && !self.shared.refused_said.load(Ordering::Relaxed)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn stats(&self) -> CoherenceStats {
        CoherenceStats {
            invalidations: self.shared.invalidations.load(Ordering::Relaxed),
            flushes: self.shared.flushes.load(Ordering::Relaxed),
            active: self.shared.l1_is_current(),
        }
    }
}

impl Drop for Coherence {
    fn drop(&mut self) {
        // The task holds only a Weak and stops at its next heartbeat; its links close then.
        self.shared.lease_until.store(0, Ordering::Release);
    }
}

impl Shared {
    fn nanos_since_base(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn l1_is_current(&self) -> bool {
        let until = self.lease_until.load(Ordering::Acquire);
        until != 0
            && self.generation.load(Ordering::Acquire) == forks::generation()
            && self.nanos_since_base(Instant::now()) < until
    }

    fn grant_lease(&self, ping_sent: Instant, generation: u64) {
        self.generation.store(generation, Ordering::Release);
        let until = self.nanos_since_base(ping_sent + LEASE).max(1);
        self.lease_until.store(until, Ordering::Release);
    }

    fn revoke_lease(&self) {
        self.lease_until.store(0, Ordering::Release);
    }

    /// Everything L1 holds may have missed an invalidation: it goes, and reads in flight may
    /// not put what they fetched back (the write epochs move).
    fn flush(&self) {
        self.revoke_lease();
        self.l1.invalidate_all();
    }

    /// Applies one push; false when it says the link is gone.
    fn apply(&self, push: &PushInfo) -> bool {
        match push.kind {
            PushKind::Invalidate => {
                match push.data.first() {
                    Some(Value::Array(names)) => {
                        for name in names {
                            let Value::BulkString(name) = name else {
                                continue;
                            };
                            // L1 holds Redis names, namespace included, as Redis reports them.
                            let name = std::str::from_utf8(name)
                                .ok()
                                .filter(|name| name.starts_with(self.prefix.as_str()));
                            if let Some(name) = name {
                                self.l1.invalidate(name);
                                self.invalidations.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    // A null list: the server flushed a database (FLUSHDB, FLUSHALL).
                    _ => self.l1.invalidate_all(),
                }
                true
            }
            PushKind::Disconnection => false,
            _ => true,
        }
    }

    /// Applies every push already delivered; false when one says the link is gone.
    fn drain(&self, pushes: &mut UnboundedReceiver<PushInfo>) -> bool {
        let mut alive = true;
        while let Ok(push) = pushes.try_recv() {
            alive &= self.apply(&push);
        }
        alive
    }

    async fn data_connection_answers(&self) -> bool {
        self.conn.live_id().is_some()
            && self
                .conn
                .run(|mut conn| async move { commands::ping(&mut conn).await })
                .await
                .is_ok()
    }

    fn say_refused(&self, failure: &Failure) {
        if !self.refused_said.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "secure_redis.cache", "{}", failure.message());
        }
    }
}

/// The task: open links, keep the lease alive while they answer, flush when they are lost.
async fn run(weak: Weak<Shared>, generation: u64) {
    let mut retry = RETRY_MIN;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        // Links are opened only to a Redis the data connection has just reached: a link lost
        // with its server must not become one more contact with a Redis that is down (the
        // data connection already tries once a second), and a data connection that is dead but
        // not yet noticed is found out by this PING.
        if !shared.data_connection_answers().await {
            drop(shared);
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
            continue;
        }
        let (sender, mut pushes) = unbounded_channel();
        let links = match shared
            .conn
            .open_invalidation_links(&prefixes(&shared), &sender)
            .await
        {
            Ok(links) => links,
            Err(failure) => {
                if matches!(failure, Failure::Rejected(_)) {
                    shared.say_refused(&failure);
                }
                drop(shared);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        drop(sender);
        retry = RETRY_MIN;
        // Tracking is on from here: what L1 holds from before may have missed invalidations.
        shared.flush();
        drop(shared);
        let reason = keep_lease(&weak, &links, &mut pushes, generation).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        shared.flush();
        if let Some(reason) = reason {
            tracing::info!(
                target: "secure_redis.cache",
                "L1 invalidations from Redis stopped ({reason}); L1 is flushed and bypassed until they are back"
            );
        }
    }
}

fn prefixes(shared: &Shared) -> Vec<String> {
    if shared.prefix.is_empty() {
        Vec::new()
    } else {
        vec![shared.prefix.clone()]
    }
}

/// Heartbeats until the links fail or the cache is gone (`None`).
async fn keep_lease(
    weak: &Weak<Shared>,
    links: &InvalidationLinks,
    pushes: &mut UnboundedReceiver<PushInfo>,
    generation: u64,
) -> Option<String> {
    loop {
        let shared = weak.upgrade()?;
        if links.any_closed() {
            return Some("an invalidation link closed".to_owned());
        }
        if shared.conn.live_id() != Some(links.live_id()) {
            return Some("the data connection was replaced".to_owned());
        }
        let limit = shared.socket_timeout.max(Duration::from_millis(100));
        let sent = Instant::now();
        let ping = links.ping(limit);
        tokio::pin!(ping);
        // Pushes keep being applied while the PING is out, so a slow answer delays nothing.
        let answered = loop {
            tokio::select! {
                biased;
                push = pushes.recv() => match push {
                    Some(push) if shared.apply(&push) => {}
                    _ => return Some("an invalidation link closed".to_owned()),
                },
                result = &mut ping => break result,
            }
        };
        if let Err(why) = answered {
            return Some(why);
        }
        // Every push sent before the PONG is in the channel now: apply them, then lease.
        if !shared.drain(pushes) {
            return Some("an invalidation link closed".to_owned());
        }
        shared.grant_lease(sent, generation);
        drop(shared);
        let pause = tokio::time::sleep(HEARTBEAT);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                biased;
                push = pushes.recv() => {
                    let shared = weak.upgrade()?;
                    match push {
                        Some(push) if shared.apply(&push) => {}
                        _ => return Some("an invalidation link closed".to_owned()),
                    }
                }
                () = &mut pause => break,
            }
        }
    }
}
