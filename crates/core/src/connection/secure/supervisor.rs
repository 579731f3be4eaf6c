//! The reconnect state machine. The first connection is made inline; after that, requests
//! never wait for Redis: they get the live connection or fail fast, while at most one
//! background task reconnects, at most once a second. A request timeout costs
//! one PING on the same connection before the connection is given up, `disconnect()` (an epoch
//! bump) wins over any connect in flight, and an outage is logged once when it begins and once
//! when it ends.

use super::failure::{is_connection_level, Failure};
use super::node::{NodeLink, NodeReport, TlsSession};
use super::sentinel::confirm_primary;
use super::state::{Fence, Live, Outage, Phase};
use super::Inner;
use crate::connection::handle::RedisHandle;
use crate::connection::topology::Topology;
use redis::RedisError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// The wait between reconnect attempts, however many have failed: a Redis that is down or
/// refuses us is tried at most once a second, and one that is usable again is found within a
/// second (issue 13). The exponential back-off this replaces grew to 5 s plus 20 % jitter, so a
/// cache could stay off a Redis that had been back for 6 s. No jitter either: below the second
/// it would break the once-a-second bound, above it the one-second return.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

impl Inner {
    /// How long to wait after the `failures`-th failed attempt in a row: `RECONNECT_INTERVAL`,
    /// or `retry_delay` when that is configured longer (fewer attempts for a slower return is
    /// the operator's trade). The count no longer matters: the wait does not grow.
    pub(super) fn backoff(&self, _failures: u32) -> Duration {
        self.retry_delay.max(RECONNECT_INTERVAL)
    }

    /// The live connection; or, once a first connection was attempted, a fast failure (and a
    /// background reconnect when one is due); or None: the caller should connect inline.
    pub(super) fn live_or_fail_fast(
        self: &Arc<Self>,
    ) -> Option<Result<(u64, RedisHandle), Failure>> {
        let mut st = self.lock();
        let due = match &st.phase {
            Phase::Live(live) => return Some(Ok((live.id, live.conn.clone()))),
            Phase::Idle => return None,
            Phase::Broken => true,
            Phase::Backoff { until } => Instant::now() >= *until,
            Phase::Reconnecting => false,
        };
        if due {
            st.phase = Phase::Reconnecting;
            let (epoch, installed) = (st.epoch, st.next_id);
            let inner = self.clone();
            tokio::spawn(async move { inner.reconnect_in_background(epoch, installed).await });
        }
        Some(Err(Failure::Unavailable(format!(
            "Redis at {} is unavailable ({}); reconnecting in the background",
            self.shown,
            st.outage
                .as_ref()
                .map_or("not connected", |outage| outage.last_error.as_str())
        ))))
    }

    /// Errors after which this connection must not be used again: transport failures, and,
    /// where a failover can move the primary, a node that is no longer (or not yet) it.
    pub(super) fn breaks_connection(&self, err: &RedisError) -> bool {
        if is_connection_level(err) {
            return true;
        }
        let moved_primary = matches!(
            err.code(),
            Some("READONLY" | "MASTERDOWN" | "CLUSTERDOWN" | "LOADING" | "TRYAGAIN")
        );
        moved_primary && !matches!(self.topology, Topology::Standalone)
    }

    /// After a request timed out: one PING on the same connection decides whether it is dead.
    pub(super) fn probe_after_timeout(self: &Arc<Self>, id: u64) {
        let conn = {
            let mut st = self.lock();
            match &mut st.phase {
                Phase::Live(live) if live.id == id && !live.probing => {
                    live.probing = true;
                    live.conn.clone()
                }
                _ => return,
            }
        };
        let inner = self.clone();
        tokio::spawn(async move {
            let mut conn = conn;
            let ping = timeout(
                inner.socket_timeout,
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await;
            if let Phase::Live(live) = &mut inner.lock().phase {
                if live.id == id {
                    live.probing = false;
                }
            }
            if !matches!(ping, Ok(Ok(_))) {
                let reason = format!(
                    "Redis at {} stopped answering (a request and a PING timed out)",
                    inner.shown
                );
                inner.mark_broken(id, &reason);
            }
        });
    }

    /// A connect made inline (the first one, or an explicit `connect()`) failed; `rejected`
    /// when a server refused us.
    pub(super) fn report_outage(self: &Arc<Self>, reason: &str, rejected: bool) {
        let mut st = self.lock();
        st.consecutive_failures = st.consecutive_failures.saturating_add(1);
        match st.phase {
            Phase::Idle | Phase::Broken | Phase::Backoff { .. } => {
                let until = Instant::now() + self.backoff(st.consecutive_failures);
                st.phase = Phase::Backoff { until };
            }
            // An explicit connect() that failed while the background reconnect runs leaves
            // the next deadline to it, and one that failed after another connect installed a
            // connection leaves that connection alone.
            Phase::Reconnecting | Phase::Live(_) => {}
        }
        let began = st.outage.is_none();
        let refused_before = st.outage.as_ref().is_some_and(|outage| outage.rejected);
        st.outage = Some(Outage {
            last_error: reason.to_owned(),
            rejected,
        });
        // A server that refused us (credentials, certificate, not TLS) is a configuration
        // problem, said once as such: calling it "unavailable" sends the reader after the network.
        if rejected && !refused_before {
            tracing::warn!(
                target: "secure_redis.connection",
                "Redis refused this client: {reason} This is a configuration problem, not an outage: \
                 connect() raises it, and reads miss until the setting is fixed."
            );
        } else if began && !rejected {
            tracing::warn!(
                target: "secure_redis.connection",
                "Redis unavailable: {reason}. Reads miss (L1 answers only while Redis's invalidations reach \
                 it) and the connection is retried once a second."
            );
        }
    }

    /// Marks whatever connection is live now as broken (the next request reconnects).
    pub(super) fn drop_live(self: &Arc<Self>, reason: &str) {
        let id = self.lock().live().map(|live| live.id);
        if let Some(id) = id {
            self.mark_broken(id, reason);
        }
    }

    pub(super) fn mark_broken(self: &Arc<Self>, id: u64, reason: &str) {
        let mut st = self.lock();
        if st.live().is_some_and(|live| live.id == id) {
            st.abandon(Phase::Broken);
            if let Some(outage) = &mut st.outage {
                // `rejected` stays: it describes the last connect attempt, not this loss.
                reason.clone_into(&mut outage.last_error);
            } else {
                {
                    st.outage = Some(Outage {
                        last_error: reason.to_owned(),
                        rejected: false,
                    });
                    tracing::warn!(
                        target: "secure_redis.connection",
                        "Redis connection lost: {reason}. Reads miss (L1 answers only while Redis's \
                         invalidations reach it) and the connection is retried once a second."
                    );
                }
            }
        }
    }

    /// The task `Phase::Reconnecting` stands for, started in `epoch` after `installed`
    /// connections. It ends that phase, into `Live` (by installing) or `Backoff` (here), unless
    /// `disconnect()` or an explicit `connect()` that installed first ended it already.
    async fn reconnect_in_background(self: Arc<Self>, epoch: u64, installed: u64) {
        let Err(failure) = self.open().await else {
            return;
        };
        let mut st = self.lock();
        if st.epoch != epoch || st.next_id != installed {
            return; // overtaken: its failure no longer describes the connection
        }
        // Nothing else leaves Reconnecting without bumping the epoch or installing.
        debug_assert!(matches!(st.phase, Phase::Reconnecting));
        st.consecutive_failures = st.consecutive_failures.saturating_add(1);
        let until = Instant::now() + self.backoff(st.consecutive_failures);
        st.phase = Phase::Backoff { until };
        let message = failure.message();
        let rejected = matches!(failure, Failure::Rejected(_));
        if rejected {
            tracing::error!(target: "secure_redis.connection", "Reconnecting to Redis was refused: {message}");
        }
        st.outage = Some(Outage {
            last_error: message,
            rejected,
        });
    }

    /// Opens a connection for the configured topology and installs it as the live one
    /// (unless `disconnect()` happened meanwhile), returning it.
    pub(super) async fn open(self: &Arc<Self>) -> Result<(u64, RedisHandle), Failure> {
        let epoch = self.lock().epoch;
        let deadline = Instant::now() + self.connection_timeout;
        match &self.topology {
            Topology::Standalone => {
                let mut link = self
                    .open_node(
                        &self.target.host,
                        self.target.port,
                        &self.info,
                        deadline,
                        &self.shown,
                    )
                    .await?;
                let fence = self
                    .identify(
                        &mut link.conn,
                        link.local_addr.as_deref(),
                        &self.shown,
                        deadline,
                    )
                    .await?;
                self.fence_abandoned(&mut link.conn, &self.shown, deadline)
                    .await?;
                self.install_primary(link, self.shown.clone(), fence, None, epoch)
            }
            Topology::Sentinel(spec) => {
                let (primary, sentinel) = self.ask_sentinels(spec, deadline).await?;
                let shown = self.node_display(&primary);
                let mut link = self
                    .open_node(&primary.host, primary.port, &self.info, deadline, &shown)
                    .await?;
                confirm_primary(&mut link.conn, &shown, deadline).await?;
                let fence = self
                    .identify(&mut link.conn, link.local_addr.as_deref(), &shown, deadline)
                    .await?;
                self.fence_abandoned(&mut link.conn, &shown, deadline)
                    .await?;
                self.lock().primary = Some(primary);
                self.install_primary(link, shown, fence, Some(sentinel), epoch)
            }
            Topology::Cluster { seeds } => self.open_cluster(seeds, deadline, epoch).await,
        }
    }

    /// Installs a connection to one primary (alone, or found through `sentinel`).
    fn install_primary(
        self: &Arc<Self>,
        link: NodeLink,
        shown: String,
        fence: Option<Fence>,
        sentinel: Option<NodeReport>,
        epoch: u64,
    ) -> Result<(u64, RedisHandle), Failure> {
        let primary = NodeReport {
            address: shown,
            role: "primary",
            tls: link.tls.clone(),
            error: None,
        };
        let nodes = std::iter::once(primary).chain(sentinel).collect();
        self.install(
            RedisHandle::Node(link.conn),
            Some((link.driver, fence)),
            link.tls,
            nodes,
            epoch,
        )
    }

    /// Makes `conn` the live connection, unless `disconnect()` happened since `epoch`. A single
    /// node's connection comes with the task that drives its socket and the server's id for
    /// it, both kept so that giving it up fences it.
    pub(super) fn install(
        self: &Arc<Self>,
        conn: RedisHandle,
        node: Option<(tokio::task::JoinHandle<()>, Option<Fence>)>,
        tls: Option<TlsSession>,
        nodes: Vec<NodeReport>,
        epoch: u64,
    ) -> Result<(u64, RedisHandle), Failure> {
        let mut st = self.lock();
        if st.epoch != epoch {
            return Err(Failure::Unavailable(format!(
                "disconnected from {} while connecting",
                self.shown
            )));
        }
        st.next_id += 1;
        let id = st.next_id;
        if id > 1 {
            st.reconnects += 1; // every connection after the first one ever
        }
        if st.outage.take().is_some() {
            tracing::info!(target: "secure_redis.connection", "Redis at {} is reachable again", self.shown);
        }
        let (driver, fence) = match node {
            Some((driver, fence)) => {
                let aborts = driver.abort_handle();
                let inner = Arc::downgrade(self);
                tokio::spawn(async move {
                    let _ = driver.await;
                    if let Some(inner) = inner.upgrade() {
                        inner.mark_broken(id, "the connection was closed");
                    }
                });
                (Some(aborts), fence)
            }
            None => (None, None),
        };
        // An explicit connect() may replace a live connection: the old one is fenced too.
        st.abandon(Phase::Live(Live {
            id,
            conn: conn.clone(),
            probing: false,
            driver,
            fence,
        }));
        st.tls = tls;
        st.nodes = nodes;
        st.consecutive_failures = 0;
        Ok((id, conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecurityConfig;
    use crate::config::SecuritySettings;
    use crate::connection::{RedisTarget, SecureConnection};
    use crate::crypto::{generate_encryption_key, Secret};

    #[test]
    fn backoff_is_one_second_whatever_the_failures_unless_retry_delay_is_longer() {
        let connection = |retry_delay: f64| {
            let config = SecurityConfig::new(
                SecuritySettings {
                    redis_auth: Some(Secret::new("a-password-for-backoff-tests")),
                    encryption_key: Some(Secret::new(generate_encryption_key())),
                    retry_delay,
                    ..SecuritySettings::default()
                },
                false,
            )
            .unwrap();
            let target = RedisTarget::parse("rediss://cache.internal:6380/0", false).unwrap();
            SecureConnection::new(target, &config).unwrap()
        };
        // The default retry_delay (0.1 s), one below it and one up to the second: never a
        // faster attempt than one a second, never a longer wait after many failures.
        for retry_delay in [0.1, 0.0, 1.0] {
            let conn = connection(retry_delay);
            for failures in [0, 1, 2, 3, 10, 31, u32::MAX] {
                assert_eq!(conn.inner.backoff(failures), RECONNECT_INTERVAL);
            }
        }
        let slower = connection(2.5);
        for failures in [0, 1, 5, u32::MAX] {
            assert_eq!(slower.inner.backoff(failures), Duration::from_millis(2500));
        }
    }
}
