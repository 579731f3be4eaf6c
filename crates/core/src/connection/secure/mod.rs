//! The cache's way to Redis, kept alive for the cache's lifetime: one multiplexed connection
//! over rustls to a single node or to the primary a Sentinel names, or the redis crate's
//! cluster connection to every primary of a Redis Cluster.
//!
//! Failure policy, in one place:
//! * The first connection is made inline (bounded by `connection_timeout`), so the first
//!   request after start-up waits for it instead of missing.
//! * After a connection breaks, requests never wait for Redis: they fail fast with
//!   `Failure::Unavailable` (the cache answers a miss) while a single background
//!   task reconnects, at most once a second.
//! * A request that exceeds `socket_timeout` fails (the caller falls back) and triggers one
//!   PING on the same connection; if that PING also times out the connection is marked broken,
//!   so a server that accepts bytes but never answers (SIGSTOP, a wedged proxy) cannot stall
//!   every request, while one slow reply does not tear down a healthy connection.
//! * `disconnect()` wins over any connect in flight: a connection opened for an older epoch
//!   is dropped instead of installed.
//! * TLS verification, AUTH and "this port does not speak TLS" are `Failure::Rejected`: they are
//!   configuration problems, raised by `connect()` and never retried blindly in a loop.
//! * Sentinel: the primary's address is asked of the sentinels (over TLS, with AUTH) on every
//!   connect, and a primary that turned replica (READONLY) breaks the connection, so a
//!   failover is followed by the next reconnect.
//! * Cluster: the redis crate routes commands, but every node connection it makes (nodes it
//!   learns of later through MOVED, ASK or a slot refresh included) is opened by us, through
//!   our rustls configuration and AUTH, like a single node (`cluster_connect`); before it is
//!   built, every primary is checked once for precise errors and the security report. A
//!   cluster that is failing over (a primary gone, CLUSTERDOWN) counts as unavailable, so
//!   callers fall back until it has recovered.
//!
//! Where each part lives: `supervisor` (the reconnect state machine, over `state`), `node`
//! (TCP, TLS and AUTH with one node), `sentinel` and `cluster` (discovery for each topology),
//! `cluster_connect` (the cluster client's node connections) and `failure` (how errors are
//! classified). This file holds the public API.

mod cluster;
mod cluster_connect;
mod failure;
mod fence;
mod node;
mod sentinel;
mod state;
mod supervisor;
mod tracking;

pub use cluster_connect::ClusterNodeConnection;
pub use failure::Failure;
pub use node::{NodeReport, TlsSession};
pub use tracking::{InvalidationLinks, INVALIDATION_CLIENT_NAME};

use super::handle::{NodeAddress, RedisHandle};
use super::target::RedisTarget;
use super::tls;
use super::topology::{SentinelSpec, Topology, TopologySpec};
use crate::config::SecurityConfig;
use crate::error::{Error, ErrorCode, Result};
use cluster::ClusterSettings;
use failure::describe;
use redis::RedisConnectionInfo;
use state::{Phase, State};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// A snapshot for statistics and health reports.
#[derive(Debug, Clone, Default)]
pub struct ConnectionState {
    pub connected: bool,
    pub consecutive_failures: u32,
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// The last attempt reached a server that refused us (credentials, certificate, not TLS):
    /// a configuration problem, not an outage.
    pub rejected: bool,
    pub tls: Option<TlsSession>,
    /// "standalone", "sentinel" or "cluster".
    pub topology: &'static str,
    /// Every node the last successful connect reached, with what its handshake negotiated.
    pub nodes: Vec<NodeReport>,
}

struct Inner {
    target: RedisTarget,
    shown: String,
    topology: Topology,
    tls: Option<Arc<rustls::ClientConfig>>,
    info: RedisConnectionInfo,
    /// AUTH towards the sentinels (their own password, or the Redis one).
    sentinel_info: RedisConnectionInfo,
    cluster: Option<ClusterSettings>,
    connection_timeout: Duration,
    socket_timeout: Duration,
    max_retries: u32,
    retry_delay: Duration,
    state: Mutex<State>,
    first_connect: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
pub struct SecureConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SecureConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureConnection({})", self.inner.shown)
    }
}

fn credentials_conflict(what: &str, env: &str) -> Error {
    Error::configuration(format!(
        "The Redis URL carries a {what} that differs from the configured one. Keep credentials out of the URL and \
         set {env} instead."
    ))
    .code(ErrorCode::ConflictingCredentials)
}

impl SecureConnection {
    pub fn new(target: RedisTarget, config: &SecurityConfig) -> Result<SecureConnection> {
        SecureConnection::with_topology(target, config, &TopologySpec::default(), false)
    }

    /// `insecure_override` matters only for the node lists of `spec`, which are parsed here.
    pub fn with_topology(
        target: RedisTarget,
        config: &SecurityConfig,
        spec: &TopologySpec,
        insecure_override: bool,
    ) -> Result<SecureConnection> {
        if let Some(url_password) = &target.password {
            if url_password != &config.redis_auth {
                return Err(credentials_conflict("password", "REDIS_PASSWORD"));
            }
        }
        let username = match (&target.username, &config.acl_username) {
            (Some(a), Some(b)) if a != b => {
                return Err(credentials_conflict("user name", "REDIS_ACL_USERNAME"))
            }
            (url_user, config_user) => config_user.clone().or_else(|| url_user.clone()),
        };
        let topology = Topology::resolve(spec, &target, insecure_override)?;
        // The redis crate sends AUTH (or HELLO ... AUTH) itself, from the password it keeps in
        // its `RedisConnectionInfo` as its own reference-counted string, which it never wipes.
        // That copy is unavoidable while it does the AUTH: one per setting (`info`,
        // `sentinel_info`), made here once per cache and shared by every connection made from
        // it (cloning the info clones a pointer). The cluster client keeps one more for the
        // same reason (`cluster::ClusterSettings`). Everything of ours holds the `Secret`.
        let mut info = RedisConnectionInfo::default()
            .set_db(target.db)
            .set_password(config.redis_auth.expose())
            .set_skip_set_lib_name();
        if let Some(user) = &username {
            info = info.set_username(user);
        }
        let sentinel_password = match &topology {
            Topology::Sentinel(SentinelSpec {
                password: Some(password),
                ..
            }) => password.expose(),
            _ => config.redis_auth.expose(),
        };
        let mut sentinel_info = RedisConnectionInfo::default()
            .set_password(sentinel_password)
            .set_skip_set_lib_name();
        if let Topology::Sentinel(SentinelSpec {
            username: Some(user),
            ..
        }) = &topology
        {
            sentinel_info = sentinel_info.set_username(user);
        }
        let tls = if target.tls {
            // Public roots are refused where discovery names the hosts (and in production)
            // unless chosen explicitly: never a silent fallback (`config::policy::trust_rule`).
            config.check_trust_for(topology.name())?;
            tls::server_name(&target.host)?;
            Some(tls::build_client_config(config)?)
        } else {
            None
        };
        let cluster = match &topology {
            Topology::Cluster { seeds } => {
                let settings = ClusterSettings::new(config);
                // Refuse unusable settings now, not at the first connect.
                let seeds: Vec<NodeAddress> = seeds
                    .iter()
                    .map(|seed| NodeAddress {
                        host: seed.host.clone(),
                        port: seed.port,
                    })
                    .collect();
                settings.client(&seeds)?;
                Some(settings)
            }
            _ => None,
        };
        let inner = Arc::new(Inner {
            shown: target.display(),
            target,
            topology,
            tls,
            info,
            sentinel_info,
            cluster,
            connection_timeout: config.connection_timeout,
            socket_timeout: config.socket_timeout,
            max_retries: config.max_retries,
            retry_delay: config.retry_delay,
            state: Mutex::new(State::default()),
            first_connect: tokio::sync::Mutex::new(()),
        });
        if let Some(cluster) = &inner.cluster {
            // From now on, and until `inner` is dropped, its cluster client may open nodes.
            cluster.link.register(&inner);
        }
        Ok(SecureConnection { inner })
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// The database every command runs in: the URL's `/n` on a single node or a Sentinel's
    /// primary, always 0 on a Redis Cluster (which has no other; `Topology::resolve` refuses
    /// any other number in the URL).
    pub fn database(&self) -> i64 {
        match self.inner.topology {
            Topology::Cluster { .. } => 0,
            Topology::Standalone | Topology::Sentinel(_) => self.inner.target.db,
        }
    }

    pub fn display(&self) -> &str {
        &self.inner.shown
    }

    pub fn is_tls(&self) -> bool {
        self.inner.tls.is_some()
    }

    pub fn state(&self) -> ConnectionState {
        let st = self.inner.lock();
        let connected = st.live().is_some();
        ConnectionState {
            connected,
            consecutive_failures: st.consecutive_failures,
            reconnects: st.reconnects,
            last_error: st.outage.as_ref().map(|outage| outage.last_error.clone()),
            rejected: st.outage.as_ref().is_some_and(|outage| outage.rejected),
            tls: if connected { st.tls.clone() } else { None },
            topology: self.inner.topology.name(),
            nodes: if connected {
                st.nodes.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Explicit connect: `Ok(true)` when connected, `Ok(false)` when Redis stayed unreachable
    /// through `max_retries` attempts, `Err` when the server was reached but refused us.
    pub async fn connect(&self) -> Result<bool> {
        let _guard = self.inner.first_connect.lock().await;
        if self.inner.lock().live().is_some() {
            return Ok(true);
        }
        let mut attempt = 0;
        loop {
            match self.inner.open().await {
                Ok(_) => return Ok(true),
                Err(Failure::Rejected(err)) => {
                    self.inner.report_outage(&err.message, true);
                    return Err(err);
                }
                Err(failure) => {
                    if attempt >= self.inner.max_retries {
                        self.inner.report_outage(&failure.message(), false);
                        return Ok(false);
                    }
                    tokio::time::sleep(self.inner.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Drops the connection. The next request connects again, inline, as after start-up.
    pub fn disconnect(&self) {
        let mut st = self.inner.lock();
        st.abandon(Phase::Idle);
        st.epoch += 1;
    }

    /// Runs one command (or pipeline) on the live connection, failing fast when there is none.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, Failure>
    where
        F: FnOnce(RedisHandle) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let (id, conn) = self.acquire().await?;
        // A little over the per-request timeout redis-rs enforces, as a backstop.
        let limit = self.inner.socket_timeout + Duration::from_millis(250);
        match timeout(limit, op(conn)).await {
            Err(_) => {
                let message = format!(
                    "Redis at {} did not answer within {:?}",
                    self.inner.shown, self.inner.socket_timeout
                );
                self.inner.probe_after_timeout(id);
                Err(Failure::Unavailable(message))
            }
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if err.is_timeout() => {
                self.inner.probe_after_timeout(id);
                Err(Failure::Unavailable(format!(
                    "Redis at {} did not answer within {:?}",
                    self.inner.shown, self.inner.socket_timeout
                )))
            }
            Ok(Err(err)) if self.inner.breaks_connection(&err) => {
                let message = format!("Redis at {} failed: {}", self.inner.shown, describe(&err));
                self.inner.mark_broken(id, &message);
                Err(Failure::Unavailable(message))
            }
            Ok(Err(err)) => Err(Failure::Command(describe(&err))),
        }
    }

    /// Every server key matching `pattern` (SCAN in batches of `count`, never KEYS) on every
    /// primary: the one node, or each primary of a cluster. With `unlink`, each batch is
    /// unlinked as it comes. Returns the names found.
    ///
    /// On a cluster it refuses to report success for part of the keyspace: a cluster with
    /// unserved slots is unavailable, and a primary this connection has not checked (one that
    /// appeared through a failover or resharding) makes it reconnect, which checks it, first.
    pub async fn scan(
        &self,
        pattern: &str,
        count: usize,
        unlink: bool,
    ) -> Result<Vec<Vec<u8>>, Failure> {
        let targets: Vec<Option<NodeAddress>> = match self
            .run(|mut c| async move { c.cluster_slots().await })
            .await?
        {
            None => vec![None],
            Some(map) if !map.is_complete() => {
                return Err(Failure::Unavailable(format!(
                    "the cluster serves {} of 16384 hash slots (failing over?)",
                    map.covered_slots
                )))
            }
            Some(map) => {
                let known = self.inner.lock().known_primaries.clone();
                if let Some(new) = map.primaries.iter().find(|p| !known.contains(p)) {
                    let reason =
                        format!("the cluster has a new primary {new}; reconnecting to check it");
                    self.inner.drop_live(&reason);
                    return Err(Failure::Unavailable(reason));
                }
                map.primaries.into_iter().map(Some).collect()
            }
        };
        let mut found = Vec::new();
        for node in targets {
            let mut cursor: u64 = 0;
            loop {
                let owned = pattern.to_owned();
                let target = node.clone();
                let (next, names) = self
                    .run(|mut c| async move {
                        let (next, names) =
                            c.scan_step(target.as_ref(), cursor, &owned, count).await?;
                        if unlink && !names.is_empty() {
                            c.unlink(&names).await?;
                        }
                        Ok((next, names))
                    })
                    .await?;
                found.extend(names);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(found)
    }

    /// Every node of the deployment checked through our TLS configuration, for validation:
    /// each cluster primary and replica; the primary, its replicas and every sentinel behind
    /// Sentinel; the one node otherwise. A node that cannot be reached or refuses us is
    /// reported with its error, not skipped.
    pub async fn survey(&self) -> Vec<NodeReport> {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.connection_timeout;
        let mut reports = self.state().nodes;
        match &inner.topology {
            Topology::Standalone => {}
            Topology::Cluster { .. } => {
                let layout = self
                    .run(|mut c| async move {
                        Ok((c.cluster_slots().await?, c.cluster_replicas().await?))
                    })
                    .await;
                if let Ok((Some(map), replicas)) = layout {
                    reports = inner.check_nodes(&map.primaries, "primary", deadline).await;
                    reports.extend(inner.check_nodes(&replicas, "replica", deadline).await);
                }
            }
            Topology::Sentinel(spec) => {
                let asked: Vec<String> = reports.iter().map(|r| r.address.clone()).collect();
                let mut sentinels: Vec<NodeAddress> = spec
                    .sentinels
                    .iter()
                    .map(|s| NodeAddress {
                        host: s.host.clone(),
                        port: s.port,
                    })
                    .collect();
                let (replicas, announced) = inner.sentinel_peers(spec, deadline).await;
                for node in announced {
                    if !sentinels.contains(&node) {
                        sentinels.push(node);
                    }
                }
                sentinels.retain(|node| !asked.contains(&inner.sentinel_display(node)));
                reports.extend(inner.check_nodes(&replicas, "replica", deadline).await);
                reports.extend(inner.check_nodes(&sentinels, "sentinel", deadline).await);
            }
        }
        reports
    }

    async fn acquire(&self) -> Result<(u64, RedisHandle), Failure> {
        if let Some(found) = self.inner.live_or_fail_fast() {
            return found;
        }
        // Never attempted yet: connect inline, once, shared by concurrent first callers, and
        // wait for a connect already under way no longer than a connect may take.
        let Ok(_guard) = timeout(
            self.inner.connection_timeout,
            self.inner.first_connect.lock(),
        )
        .await
        else {
            return Err(Failure::Unavailable(format!(
                "Redis at {} is still connecting",
                self.inner.shown
            )));
        };
        if let Some(found) = self.inner.live_or_fail_fast() {
            return found;
        }
        // Boxed: the connect path (TLS handshake, AUTH, discovery) is kilobytes of future
        // state that every command's future would otherwise carry and copy.
        match Box::pin(self.inner.open()).await {
            Ok(live) => Ok(live),
            Err(failure) => {
                let rejected = matches!(failure, Failure::Rejected(_));
                self.inner.report_outage(&failure.message(), rejected);
                Err(failure)
            }
        }
    }
}

impl Inner {
    /// The connection's state, as this process owns it (a forked child starts over).
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent in a harmful way.
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.adopt_after_fork();
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecuritySettings;
    use crate::crypto::{generate_encryption_key, Secret};

    /// A connection to `url` under `spec`, never opened: only its settings are looked at.
    fn unopened(url: &str, spec: &TopologySpec) -> SecureConnection {
        let config = SecurityConfig::new(
            SecuritySettings {
                redis_auth: Some(Secret::new("a-long-enough-password-0123456789")),
                encryption_key: Some(Secret::new(generate_encryption_key())),
                // Sentinel and Cluster need a CA or this choice; only the settings matter here.
                tls_trust_public_roots: true,
                ..SecuritySettings::default()
            },
            false,
        )
        .unwrap();
        let target = RedisTarget::parse(url, false).unwrap();
        SecureConnection::with_topology(target, &config, spec, false).unwrap()
    }

    #[test]
    fn the_database_is_the_urls_except_on_a_cluster() {
        let standalone = TopologySpec::default();
        assert_eq!(
            unopened("rediss://127.0.0.1:1/3", &standalone).database(),
            3
        );
        assert_eq!(unopened("rediss://127.0.0.1:1", &standalone).database(), 0);
        let sentinel = TopologySpec {
            sentinel_nodes: vec!["rediss://127.0.0.1:2".into()],
            sentinel_master: Some("primary".into()),
            ..TopologySpec::default()
        };
        assert_eq!(unopened("rediss://127.0.0.1:1/5", &sentinel).database(), 5);
        let cluster = TopologySpec {
            cluster: true,
            ..TopologySpec::default()
        };
        assert_eq!(unopened("rediss://127.0.0.1:1/0", &cluster).database(), 0);
    }
}
