//! The cache's way to Redis, kept alive for the cache's lifetime: one multiplexed connection
//! over rustls to a single node or to the primary a Sentinel names, or the redis crate's
//! cluster connection to every primary of a Redis Cluster.
//!
//! Failure policy, in one place:
//! * The first connection is made inline (bounded by `connection_timeout`), so the first
//!   request after start-up waits for it instead of missing.
//! * After a connection breaks, requests never wait for Redis: they fail fast with
//!   `Failure::Unavailable` (the cache falls back to L1 or a miss) while a single background
//!   task reconnects with exponential back-off and jitter.
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
//! * Cluster: before the cluster connection is made, every primary is reached once through our
//!   own rustls configuration (the redis crate's TLS layer checks the CA and host name too, but
//!   cannot enforce our minimum TLS version); a cluster that is failing over (a primary gone,
//!   CLUSTERDOWN) counts as unavailable, so callers fall back until it has recovered.

use super::coalesce::Coalesced;
use super::handle::{cluster_nodes_from_slots, ClusterNodes, NodeAddress, RedisHandle};
use super::target::RedisTarget;
use super::tls;
use super::topology::{SentinelSpec, Topology, TopologySpec};
use crate::config::SecurityConfig;
use crate::error::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisError};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;

const MAX_BACKOFF: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub enum Failure {
    /// Redis cannot be reached right now (refused, timed out, reconnecting). Callers fall back.
    Unavailable(String),
    /// Something answered but we must not or cannot talk to it: TLS verification failed,
    /// AUTH was refused, or the port does not speak TLS. Carries the user-facing error.
    Rejected(Error),
    /// Redis answered the command with an error (a missing ACL permission, say).
    Command(String),
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Unavailable(m) | Failure::Command(m) => m.clone(),
            Failure::Rejected(e) => e.message.clone(),
        }
    }
}

/// What the TLS handshake of the current connection negotiated, for security reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    pub protocol: String,
    pub cipher_suite: String,
    pub server_subject: Option<String>,
    /// Unix time at which the server's certificate expires.
    pub server_not_after: Option<i64>,
}

impl TlsSession {
    fn from_connection(session: &rustls::ClientConnection) -> TlsSession {
        let leaf = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
            .map(|(_, cert)| {
                (
                    cert.subject().to_string(),
                    cert.validity().not_after.timestamp(),
                )
            });
        TlsSession {
            protocol: session
                .protocol_version()
                .map(|v| match v {
                    rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                    rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default(),
            cipher_suite: session
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            server_subject: leaf.as_ref().map(|(subject, _)| subject.clone()),
            server_not_after: leaf.map(|(_, not_after)| not_after),
        }
    }
}

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

/// One node a connect reached: a primary, a cluster primary or a sentinel.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub address: String,
    pub role: &'static str,
    pub tls: Option<TlsSession>,
    /// Why the node could not be reached or refused us (only in surveys of every node).
    pub error: Option<Failure>,
}

struct Live {
    id: u64,
    conn: RedisHandle,
}

/// A freshly opened node connection: the handle, the task that drives it, and the handshake.
struct NodeLink {
    conn: MultiplexedConnection,
    driver: Pin<Box<dyn Future<Output = ()> + Send>>,
    tls: Option<TlsSession>,
}

#[derive(Default)]
struct State {
    live: Option<Live>,
    next_id: u64,
    /// Bumped by `disconnect()`; a connect that started in an older epoch is discarded.
    epoch: u64,
    /// A first connection was attempted: from then on requests fail fast while a background
    /// task reconnects, instead of waiting for Redis inline.
    attempted: bool,
    ever_connected: bool,
    probing: bool,
    consecutive_failures: u32,
    retry_at: Option<Instant>,
    reconnecting: bool,
    outage_reported: bool,
    reconnects: u64,
    last_error: Option<String>,
    rejected: bool,
    tls: Option<TlsSession>,
    nodes: Vec<NodeReport>,
    /// Cluster primaries seen by the last successful connect: seeds for the next one, so a
    /// cluster stays reachable when the configured seed itself is the node that died.
    known_primaries: Vec<NodeAddress>,
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
    .error_type("conflicting_credentials")
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
            }) => password.expose().to_owned(),
            _ => config.redis_auth.expose().to_owned(),
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
            tls::server_name(&target.host)?;
            Some(tls::build_client_config(config)?)
        } else {
            None
        };
        let cluster = match &topology {
            Topology::Cluster { seeds } => {
                let settings = ClusterSettings::new(config, username.clone(), target.tls)?;
                // Refuse unusable settings now, not at the first connect.
                settings.client(seeds.iter().map(RedisTarget::display).collect())?;
                Some(settings)
            }
            _ => None,
        };
        Ok(SecureConnection {
            inner: Arc::new(Inner {
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
            }),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn display(&self) -> &str {
        &self.inner.shown
    }

    pub fn is_tls(&self) -> bool {
        self.inner.tls.is_some()
    }

    pub fn state(&self) -> ConnectionState {
        let st = self.inner.lock();
        ConnectionState {
            connected: st.live.is_some(),
            consecutive_failures: st.consecutive_failures,
            reconnects: st.reconnects,
            last_error: st.last_error.clone(),
            rejected: st.rejected,
            tls: st.live.as_ref().and(st.tls.clone()),
            topology: self.inner.topology.name(),
            nodes: if st.live.is_some() {
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
        if self.inner.lock().live.is_some() {
            return Ok(true);
        }
        let mut attempt = 0;
        loop {
            match self.inner.open().await {
                Ok(_) => return Ok(true),
                Err(Failure::Rejected(err)) => {
                    self.inner.report_outage(&err.message);
                    self.inner.lock().rejected = true;
                    return Err(err);
                }
                Err(failure) => {
                    if attempt >= self.inner.max_retries {
                        self.inner.report_outage(&failure.message());
                        self.inner.lock().rejected = false;
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
        st.live = None;
        st.epoch += 1;
        st.attempted = false;
        st.retry_at = None;
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
                self.inner.report_outage(&failure.message());
                self.inner.lock().rejected = matches!(failure, Failure::Rejected(_));
                Err(failure)
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent in a harmful way.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn backoff(&self, failures: u32) -> Duration {
        let base = self.retry_delay.max(MIN_BACKOFF);
        let exp = base
            .saturating_mul(1u32 << failures.min(16))
            .min(MAX_BACKOFF);
        exp.mul_f64(rand::random_range(0.8..1.2))
    }

    /// The live connection; or, once a first connection was attempted, a fast failure (and a
    /// background reconnect when one is due); or None: the caller should connect inline.
    fn live_or_fail_fast(self: &Arc<Self>) -> Option<Result<(u64, RedisHandle), Failure>> {
        let mut st = self.lock();
        if let Some(live) = &st.live {
            return Some(Ok((live.id, live.conn.clone())));
        }
        if !st.attempted {
            return None;
        }
        let due = st.retry_at.is_none_or(|at| Instant::now() >= at);
        if due && !st.reconnecting {
            st.reconnecting = true;
            let inner = self.clone();
            tokio::spawn(async move { inner.reconnect_in_background().await });
        }
        Some(Err(Failure::Unavailable(format!(
            "Redis at {} is unavailable ({}); reconnecting in the background",
            self.shown,
            st.last_error.as_deref().unwrap_or("not connected")
        ))))
    }

    /// Errors after which this connection must not be used again: transport failures, and,
    /// where a failover can move the primary, a node that is no longer (or not yet) it.
    fn breaks_connection(&self, err: &RedisError) -> bool {
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
    fn probe_after_timeout(self: &Arc<Self>, id: u64) {
        let conn = {
            let mut st = self.lock();
            let conn = match &st.live {
                Some(live) if live.id == id && !st.probing => live.conn.clone(),
                _ => return,
            };
            st.probing = true;
            conn
        };
        let inner = self.clone();
        tokio::spawn(async move {
            let mut conn = conn;
            let ping = timeout(
                inner.socket_timeout,
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await;
            inner.lock().probing = false;
            if !matches!(ping, Ok(Ok(_))) {
                let reason = format!(
                    "Redis at {} stopped answering (a request and a PING timed out)",
                    inner.shown
                );
                inner.mark_broken(id, &reason);
            }
        });
    }

    fn report_outage(self: &Arc<Self>, reason: &str) {
        let mut st = self.lock();
        st.attempted = true;
        st.consecutive_failures = st.consecutive_failures.saturating_add(1);
        st.retry_at = Some(Instant::now() + self.backoff(st.consecutive_failures));
        st.last_error = Some(reason.to_owned());
        if !st.outage_reported {
            st.outage_reported = true;
            tracing::warn!(
                target: "secure_redis.connection",
                "Redis unavailable: {reason}. Serving from the L1 memory tier (or as misses) and reconnecting \
                 with back-off."
            );
        }
    }

    /// Marks whatever connection is live now as broken (the next request reconnects).
    fn drop_live(self: &Arc<Self>, reason: &str) {
        let id = self.lock().live.as_ref().map(|live| live.id);
        if let Some(id) = id {
            self.mark_broken(id, reason);
        }
    }

    fn mark_broken(self: &Arc<Self>, id: u64, reason: &str) {
        let mut st = self.lock();
        if st.live.as_ref().is_some_and(|live| live.id == id) {
            st.live = None;
            st.retry_at = None; // the first reconnect may start at once
            st.last_error = Some(reason.to_owned());
            if !st.outage_reported {
                st.outage_reported = true;
                tracing::warn!(
                    target: "secure_redis.connection",
                    "Redis connection lost: {reason}. Serving from the L1 memory tier (or as misses) and \
                     reconnecting with back-off."
                );
            }
        }
    }

    async fn reconnect_in_background(self: Arc<Self>) {
        let epoch = self.lock().epoch;
        let result = self.open().await;
        let mut st = self.lock();
        st.reconnecting = false;
        if st.epoch != epoch {
            return; // disconnect() happened meanwhile; it reset the state
        }
        if let Err(failure) = result {
            st.consecutive_failures = st.consecutive_failures.saturating_add(1);
            st.retry_at = Some(Instant::now() + self.backoff(st.consecutive_failures));
            let message = failure.message();
            st.rejected = matches!(failure, Failure::Rejected(_));
            if let Failure::Rejected(_) = failure {
                tracing::error!(target: "secure_redis.connection", "Reconnecting to Redis was refused: {message}");
            }
            st.last_error = Some(message);
        }
    }

    /// Opens a connection for the configured topology and installs it as the live one
    /// (unless `disconnect()` happened meanwhile), returning it.
    async fn open(self: &Arc<Self>) -> Result<(u64, RedisHandle), Failure> {
        let epoch = self.lock().epoch;
        let deadline = Instant::now() + self.connection_timeout;
        match &self.topology {
            Topology::Standalone => {
                let link = self
                    .open_node(
                        &self.target.host,
                        self.target.port,
                        &self.info,
                        deadline,
                        &self.shown,
                    )
                    .await?;
                self.install_primary(link, self.shown.clone(), None, epoch)
            }
            Topology::Sentinel(spec) => {
                let (primary, sentinel) = self.ask_sentinels(spec, deadline).await?;
                let shown = self.node_display(&primary);
                let mut link = self
                    .open_node(&primary.host, primary.port, &self.info, deadline, &shown)
                    .await?;
                confirm_primary(&mut link.conn, &shown, deadline).await?;
                self.install_primary(link, shown, Some(sentinel), epoch)
            }
            Topology::Cluster { seeds } => self.open_cluster(seeds, deadline, epoch).await,
        }
    }

    fn node_display(&self, node: &NodeAddress) -> String {
        format!(
            "{}://{node}/{}",
            if self.tls.is_some() {
                "rediss"
            } else {
                "redis"
            },
            self.target.db
        )
    }

    /// The primary's address according to the first sentinel that knows it (all are asked at
    /// once, so one that hangs costs nothing), and that sentinel.
    async fn ask_sentinels(
        self: &Arc<Self>,
        spec: &SentinelSpec,
        deadline: Instant,
    ) -> Result<(NodeAddress, NodeReport), Failure> {
        first_success(
            spec.sentinels
                .iter()
                .map(|sentinel| self.ask_sentinel(sentinel, &spec.master, deadline))
                .collect(),
        )
        .await
    }

    async fn ask_sentinel(
        self: &Arc<Self>,
        sentinel: &RedisTarget,
        master: &str,
        deadline: Instant,
    ) -> Result<(NodeAddress, NodeReport), Failure> {
        let (shown, mut conn, tls) = self.open_sentinel(sentinel, deadline).await?;
        let reply = self
            .discovery_query::<Option<(String, String)>>(
                &mut conn,
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(master),
                deadline,
                &shown,
            )
            .await?;
        let report = NodeReport {
            address: shown.clone(),
            role: "sentinel",
            tls,
            error: None,
        };
        match reply {
            Ok(Some((host, port))) => match port.parse::<u16>() {
                Ok(port) => Ok((NodeAddress { host, port }, report)),
                Err(_) => Err(Failure::Unavailable(format!(
                    "sentinel {shown} answered an invalid port for {master:?}"
                ))),
            },
            Ok(None) => Err(refused(
                format!(
                    "Sentinel {shown} monitors no primary named {master:?}. Set REDIS_SENTINEL_MASTER to the name \
                     used in the sentinels' `sentinel monitor` line (for example REDIS_SENTINEL_MASTER=mymaster)."
                ),
                "sentinel",
                &shown,
                "sentinel_unknown_master",
            )),
            Err(err) if err.code() == Some("NOPERM") => Err(refused(
                format!(
                    "Sentinel {shown} does not let this user ask for the primary ({}). Allow \
                     +sentinel|get-master-addr-by-name for REDIS_SENTINEL_USERNAME, or use a sentinel user that \
                     may.",
                    describe(&err)
                ),
                "sentinel",
                &shown,
                "acl_denied",
            )),
            Err(err) => Err(Failure::Unavailable(format!(
                "sentinel {shown} could not name the primary: {}",
                describe(&err)
            ))),
        }
    }

    /// A discovery command (`SENTINEL ...`, `CLUSTER SLOTS`) on a connection to `shown`, within
    /// what is left of the connect `deadline`: running out of time is an outage; the reply, or
    /// the server's error for the caller to classify, otherwise.
    async fn discovery_query<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
        cmd: &redis::Cmd,
        deadline: Instant,
        shown: &str,
    ) -> Result<redis::RedisResult<T>, Failure> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        timeout(remaining, cmd.query_async::<T>(conn))
            .await
            .map_err(|_| {
                Failure::Unavailable(format!(
                    "{shown} did not answer within {:?}",
                    self.connection_timeout
                ))
            })
    }

    /// A connection to one sentinel with the sentinels' credentials: its display name, the
    /// connection (its driver already running) and the handshake.
    async fn open_sentinel(
        self: &Arc<Self>,
        sentinel: &RedisTarget,
        deadline: Instant,
    ) -> Result<(String, MultiplexedConnection, Option<TlsSession>), Failure> {
        let shown = sentinel.display();
        let link = self
            .open_node(
                &sentinel.host,
                sentinel.port,
                &self.sentinel_info,
                deadline,
                &shown,
            )
            .await?;
        tokio::spawn(link.driver);
        Ok((shown, link.conn, link.tls))
    }

    /// The replicas and the other sentinels one sentinel knows of (for surveys).
    async fn sentinel_peers(
        self: &Arc<Self>,
        spec: &SentinelSpec,
        deadline: Instant,
    ) -> (Vec<NodeAddress>, Vec<NodeAddress>) {
        for sentinel in &spec.sentinels {
            let Ok((_, mut conn, _)) = self.open_sentinel(sentinel, deadline).await else {
                continue;
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let listed = timeout(remaining, async {
                let replicas: redis::Value = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(&spec.master)
                    .query_async(&mut conn)
                    .await?;
                let sentinels: redis::Value = redis::cmd("SENTINEL")
                    .arg("SENTINELS")
                    .arg(&spec.master)
                    .query_async(&mut conn)
                    .await?;
                Ok::<_, RedisError>((announced_nodes(&replicas), announced_nodes(&sentinels)))
            })
            .await;
            if let Ok(Ok(found)) = listed {
                return found;
            }
        }
        (Vec::new(), Vec::new())
    }

    /// Every cluster node address worth trying as a seed: the configured ones, then the
    /// primaries the last successful connect saw.
    fn cluster_candidates(&self, seeds: &[RedisTarget]) -> Vec<NodeAddress> {
        let mut candidates: Vec<NodeAddress> = seeds
            .iter()
            .map(|seed| NodeAddress {
                host: seed.host.clone(),
                port: seed.port,
            })
            .collect();
        for known in self.lock().known_primaries.clone() {
            if !candidates.contains(&known) {
                candidates.push(known);
            }
        }
        candidates
    }

    /// A seed through our own TLS stack (so a wrong CA, password or plaintext port gets the
    /// same precise error as a single node) and what its `CLUSTER SLOTS` says.
    async fn read_cluster_map(
        self: &Arc<Self>,
        seed: NodeAddress,
        deadline: Instant,
    ) -> Result<(String, ClusterNodes), Failure> {
        let shown = self.node_display(&seed);
        let link = self
            .open_node(&seed.host, seed.port, &self.info, deadline, &shown)
            .await?;
        tokio::spawn(link.driver);
        let mut conn = link.conn;
        match self
            .discovery_query::<redis::Value>(
                &mut conn,
                redis::cmd("CLUSTER").arg("SLOTS"),
                deadline,
                &shown,
            )
            .await?
        {
            Ok(slots) => Ok((shown, cluster_nodes_from_slots(&slots))),
            Err(err) if err.code() == Some("NOPERM") => Err(refused(
                format!(
                    "{shown} does not let this user read the cluster layout ({}). Allow +cluster|slots for \
                     REDIS_ACL_USERNAME (ACL SETUSER <user> +cluster|slots).",
                    describe(&err)
                ),
                "redis_url",
                &shown,
                "acl_denied",
            )),
            Err(err) if err.code().is_some() => Err(refused(
                format!(
                    "{shown} is not a usable Redis Cluster node ({}). Point REDIS_URL and REDIS_CLUSTER_NODES at \
                     cluster nodes (cluster-enabled yes), or drop REDIS_CLUSTER_NODES and cluster=True for a \
                     single Redis.",
                    describe(&err)
                ),
                "redis_url",
                &shown,
                "not_a_cluster",
            )),
            Err(err) => Err(Failure::Unavailable(format!(
                "{shown} failed: {}",
                describe(&err)
            ))),
        }
    }

    async fn open_cluster(
        self: &Arc<Self>,
        seeds: &[RedisTarget],
        deadline: Instant,
        epoch: u64,
    ) -> Result<(u64, RedisHandle), Failure> {
        let Some(settings) = &self.cluster else {
            return Err(Failure::Unavailable("cluster settings missing".into()));
        };
        let (seed_shown, map) = first_success(
            self.cluster_candidates(seeds)
                .into_iter()
                .map(|seed| self.read_cluster_map(seed, deadline))
                .collect(),
        )
        .await?;
        if !map.is_complete() {
            return Err(Failure::Unavailable(format!(
                "the cluster behind {seed_shown} serves {} of 16384 hash slots (failing over or not set up yet)",
                map.covered_slots
            )));
        }
        // Every primary through our own rustls configuration, which enforces min_tls_version
        // (the redis crate's TLS layer checks CA and host name too, but offers TLS 1.2 and 1.3).
        let mut nodes = Vec::with_capacity(map.primaries.len());
        for report in self.check_nodes(&map.primaries, "primary", deadline).await {
            match report.error {
                None => nodes.push(report),
                Some(error) => {
                    return Err(report_failure(error, &report.address));
                }
            }
        }
        let config = redis::cluster::ClusterConfig::new()
            .set_connection_timeout(self.connection_timeout)
            .set_response_timeout(self.socket_timeout);
        // The primaries just reached are the cluster client's starting points.
        let client = settings
            .client(map.primaries.iter().map(|p| self.node_display(p)).collect())
            .map_err(Failure::Rejected)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let cluster =
            match timeout(remaining, client.get_async_connection_with_config(config)).await {
                Ok(Ok(cluster)) => cluster,
                Ok(Err(err)) => {
                    return Err(Failure::Unavailable(format!(
                        "the cluster connection via {seed_shown} failed: {}",
                        describe(&err)
                    )))
                }
                Err(_) => {
                    return Err(Failure::Unavailable(format!(
                        "the cluster connection via {seed_shown} timed out after {:?}",
                        self.connection_timeout
                    )))
                }
            };
        self.lock().known_primaries = map.primaries.clone();
        let tls = nodes.first().and_then(|node| node.tls.clone());
        self.install(RedisHandle::Cluster(cluster), None, tls, nodes, epoch)
    }

    /// A TLS handshake and AUTH with each node, concurrently, through our own configuration;
    /// a report per node, with the refusal or outage as `error`.
    async fn check_nodes(
        self: &Arc<Self>,
        nodes: &[NodeAddress],
        role: &'static str,
        deadline: Instant,
    ) -> Vec<NodeReport> {
        let info = if role == "sentinel" {
            &self.sentinel_info
        } else {
            &self.info
        };
        futures_util::future::join_all(nodes.iter().map(|node| {
            let shown = if role == "sentinel" {
                self.sentinel_display(node)
            } else {
                self.node_display(node)
            };
            async move {
                match self
                    .open_node(&node.host, node.port, info, deadline, &shown)
                    .await
                {
                    Ok(link) => {
                        drop(link.conn);
                        tokio::spawn(link.driver);
                        NodeReport {
                            address: shown,
                            role,
                            tls: link.tls,
                            error: None,
                        }
                    }
                    Err(failure) => NodeReport {
                        address: shown,
                        role,
                        tls: None,
                        error: Some(failure),
                    },
                }
            }
        }))
        .await
    }

    fn sentinel_display(&self, node: &NodeAddress) -> String {
        format!(
            "{}://{node}/0",
            if self.tls.is_some() {
                "rediss"
            } else {
                "redis"
            }
        )
    }

    /// TCP, then TLS with our rustls configuration (unless plaintext is allowed), then AUTH.
    async fn open_node(
        &self,
        host: &str,
        port: u16,
        info: &RedisConnectionInfo,
        deadline: Instant,
        shown: &str,
    ) -> Result<NodeLink, Failure> {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let tcp = match timeout(remaining(), TcpStream::connect((host, port))).await {
            Err(_) => {
                return Err(Failure::Unavailable(format!(
                    "connecting to {shown} timed out after {:?}",
                    self.connection_timeout
                )))
            }
            Ok(Err(err)) => {
                return Err(Failure::Unavailable(format!(
                    "cannot connect to {shown}: {err}"
                )))
            }
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => {
                tracing::warn!(
                    target: "secure_redis.connection",
                    "INSECURE: connecting to {shown} WITHOUT TLS because REDIS_INSECURE_ALLOW_PLAINTEXT=true. Traffic \
                     (AUTH password included) crosses the network in clear text; this is only acceptable on an \
                     isolated network. Values stay Fernet-encrypted."
                );
                self.setup(tcp, remaining(), None, info, shown).await
            }
            Some(config) => {
                let name = tls::server_name(host).map_err(Failure::Rejected)?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                match timeout(remaining(), connector.connect(name, tcp)).await {
                    Err(_) if speaks_plaintext_redis(host, port).await => Err(Failure::Rejected(
                        Error::configuration(format!(
                            "TLS connection refused: {shown} is a plaintext Redis port (it answered a plaintext PING \
                             and never completed a TLS handshake). Enable TLS on the server (tls-port) and use that \
                             port in the rediss:// URL."
                        ))
                        .with("redis_url", shown.to_owned())
                        .error_type("plaintext_server"),
                    )),
                    Err(_) => Err(Failure::Unavailable(format!(
                        "TLS handshake with {shown} timed out after {:?}",
                        self.connection_timeout
                    ))),
                    Ok(Err(err)) => match tls::explain_handshake_failure(&err, shown) {
                        Some(advice) => Err(Failure::Rejected(
                            Error::configuration(format!("TLS connection refused: {advice}"))
                                .with("redis_url", shown.to_owned())
                                .error_type("tls_handshake_failed"),
                        )),
                        None => Err(Failure::Unavailable(format!(
                            "TLS handshake with {shown} failed: {err}"
                        ))),
                    },
                    Ok(Ok(stream)) => {
                        let session = TlsSession::from_connection(stream.get_ref().1);
                        self.setup(stream, remaining(), Some(session), info, shown)
                            .await
                    }
                }
            }
        }
    }

    async fn setup<S>(
        &self,
        stream: S,
        remaining: Duration,
        tls: Option<TlsSession>,
        info: &RedisConnectionInfo,
        shown: &str,
    ) -> Result<NodeLink, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(self.socket_timeout));
        let refused =
            |message: String, error_type: &str| refused(message, "redis_url", shown, error_type);
        match timeout(
            remaining,
            MultiplexedConnection::new_with_config(info, Coalesced::new(stream), config),
        )
        .await
        {
            Err(_) => Err(Failure::Unavailable(format!(
                "Redis at {shown} did not answer AUTH within {:?}",
                self.connection_timeout
            ))),
            Ok(Err(err)) if is_auth_failure(&err) => Err(refused(
                format!(
                    "Redis at {shown} rejected the credentials ({}). Set REDIS_PASSWORD (and REDIS_ACL_USERNAME for \
                     an ACL user; REDIS_SENTINEL_PASSWORD for sentinels with a password of their own) to what the \
                     server expects.",
                    err.code().unwrap_or("authentication failed")
                ),
                "authentication_failed",
            )),
            Ok(Err(err)) if is_connection_level(&err) => Err(refused(
                format!(
                    "Redis at {shown} closed the connection during set-up ({}). If it requires TLS client \
                     certificates, set REDIS_TLS_CERT_PATH and REDIS_TLS_KEY_PATH.",
                    describe(&err)
                ),
                "connection_setup_failed",
            )),
            Ok(Err(err)) => Err(refused(
                format!(
                    "Redis at {shown} refused the connection set-up: {}",
                    describe(&err)
                ),
                "connection_setup_failed",
            )),
            Ok(Ok((conn, driver))) => Ok(NodeLink {
                conn,
                driver: Box::pin(driver),
                tls,
            }),
        }
    }

    /// Installs a connection to one primary (alone, or found through `sentinel`).
    fn install_primary(
        self: &Arc<Self>,
        link: NodeLink,
        shown: String,
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
            Some(link.driver),
            link.tls,
            nodes,
            epoch,
        )
    }

    /// Makes `conn` the live connection, unless `disconnect()` happened since `epoch`.
    fn install(
        self: &Arc<Self>,
        conn: RedisHandle,
        driver: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
        tls: Option<TlsSession>,
        nodes: Vec<NodeReport>,
        epoch: u64,
    ) -> Result<(u64, RedisHandle), Failure> {
        let id = {
            let mut st = self.lock();
            if st.epoch != epoch {
                return Err(Failure::Unavailable(format!(
                    "disconnected from {} while connecting",
                    self.shown
                )));
            }
            st.next_id += 1;
            let id = st.next_id;
            if st.ever_connected {
                st.reconnects += 1;
            }
            if st.outage_reported {
                tracing::info!(target: "secure_redis.connection", "Redis at {} is reachable again", self.shown);
            }
            st.live = Some(Live {
                id,
                conn: conn.clone(),
            });
            st.tls = tls;
            st.nodes = nodes;
            st.attempted = true;
            st.ever_connected = true;
            st.consecutive_failures = 0;
            st.retry_at = None;
            st.outage_reported = false;
            st.last_error = None;
            st.rejected = false;
            id
        };
        if let Some(driver) = driver {
            let inner = Arc::downgrade(self);
            tokio::spawn(async move {
                driver.await;
                if let Some(inner) = inner.upgrade() {
                    inner.mark_broken(id, "the connection was closed");
                }
            });
        }
        Ok((id, conn))
    }
}

/// `ip` and `port` of each entry of a `SENTINEL REPLICAS` / `SENTINEL SENTINELS` reply (flat
/// field-value arrays in RESP2, maps in RESP3), skipping entries flagged down or disconnected.
fn announced_nodes(reply: &redis::Value) -> Vec<NodeAddress> {
    let redis::Value::Array(entries) = reply else {
        return Vec::new();
    };
    let text = |value: &redis::Value| match value {
        redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        redis::Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    entries
        .iter()
        .filter_map(|entry| {
            let pairs: Vec<(String, String)> = match entry {
                redis::Value::Array(flat) => flat
                    .chunks(2)
                    .filter_map(|pair| Some((text(pair.first()?)?, text(pair.get(1)?)?)))
                    .collect(),
                redis::Value::Map(map) => map
                    .iter()
                    .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect(),
                _ => return None,
            };
            let field = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            if field("flags").is_some_and(|f| f.contains("down") || f.contains("disconnected")) {
                return None;
            }
            Some(NodeAddress {
                host: field("ip")?.to_owned(),
                port: field("port")?.parse().ok()?,
            })
        })
        .collect()
}

/// A configuration refusal from the node `shown`, with the fix in `message`.
fn refused(message: String, field: &str, shown: &str, error_type: &str) -> Failure {
    Failure::Rejected(
        Error::configuration(message)
            .with(field, shown.to_owned())
            .error_type(error_type),
    )
}

/// Runs `attempts` concurrently and returns the first success. When none succeeds, a refusal
/// (a configuration problem to fix) is reported before an outage.
async fn first_success<T, F>(attempts: Vec<F>) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut pending: FuturesUnordered<F> = attempts.into_iter().collect();
    let (mut refusal, mut outage) = (None, None);
    while let Some(result) = pending.next().await {
        match result {
            Ok(found) => return Ok(found),
            Err(failure @ Failure::Rejected(_)) => {
                refusal.get_or_insert(failure);
            }
            Err(failure) => outage = Some(failure),
        }
    }
    Err(refusal
        .or(outage)
        .unwrap_or_else(|| Failure::Unavailable("no node is configured".into())))
}

/// A cluster primary that failed its check: a refusal stays one; an outage means the cluster
/// has not yet replaced a dead primary.
fn report_failure(failure: Failure, address: &str) -> Failure {
    match failure {
        Failure::Rejected(err) => Failure::Rejected(err),
        other => Failure::Unavailable(format!(
            "cluster primary {address} is unreachable ({}); waiting for the cluster to fail over",
            other.message()
        )),
    }
}

/// A server that accepts TCP but never completes a TLS handshake is either stuck or a
/// plaintext Redis waiting for a newline. A bare PING (no credentials) tells them apart, so
/// the error can say exactly what to fix.
async fn speaks_plaintext_redis(host: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut tcp = TcpStream::connect((host, port)).await?;
        tcp.write_all(b"PING\r\n").await?;
        let mut first = [0u8; 1];
        tcp.read_exact(&mut first).await?;
        Ok::<_, std::io::Error>(matches!(first[0], b'+' | b'-'))
    };
    matches!(
        timeout(Duration::from_millis(500), probe).await,
        Ok(Ok(true))
    )
}

/// During a failover a sentinel may still name the old primary, now a replica: ROLE tells.
/// An ACL that forbids ROLE is no reason to refuse; a replica then shows itself by READONLY
/// on the first write, which breaks the connection as well.
async fn confirm_primary(
    conn: &mut MultiplexedConnection,
    shown: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let role = timeout(
        remaining,
        redis::cmd("ROLE").query_async::<redis::Value>(conn),
    )
    .await;
    match role {
        Ok(Ok(redis::Value::Array(fields))) => match fields.first() {
            Some(redis::Value::BulkString(role)) if role.as_slice() != b"master" => {
                Err(Failure::Unavailable(format!(
                    "{shown} is not the primary (yet): the sentinels are failing over"
                )))
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// What the redis crate's cluster client needs, kept to build one per connect (its starting
/// nodes change as the cluster does): the same password and ACL user as our own connections,
/// the configured CA as the only trust root (public roots only when no CA is configured, as
/// for one node), the client certificate for mutual TLS.
struct ClusterSettings {
    password: crate::crypto::Secret,
    username: Option<String>,
    certificates: Option<redis::TlsCertificates>,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl ClusterSettings {
    fn new(
        config: &SecurityConfig,
        username: Option<String>,
        tls: bool,
    ) -> Result<ClusterSettings> {
        let read = |field: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|err| {
                Error::configuration(format!(
                    "{field} {}: cannot read it ({err})",
                    path.display()
                ))
                .with("field", field)
                .error_type("invalid_tls_material")
            })
        };
        let certificates = if tls {
            let client_tls = match (&config.tls_cert_path, &config.tls_key_path) {
                (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                    client_cert: read("tls_cert_path", cert)?,
                    client_key: read("tls_key_path", key)?,
                }),
                _ => None,
            };
            let root_cert = match &config.tls_ca_path {
                Some(ca) => Some(read("tls_ca_path", ca)?),
                None => None,
            };
            Some(redis::TlsCertificates {
                client_tls,
                root_cert,
            })
        } else {
            None
        };
        Ok(ClusterSettings {
            password: config.redis_auth.clone(),
            username,
            certificates,
            connection_timeout: config.connection_timeout,
            response_timeout: config.socket_timeout,
        })
    }

    fn client(&self, nodes: Vec<String>) -> Result<ClusterClient> {
        let mut builder = ClusterClientBuilder::new(nodes)
            .password(self.password.expose())
            .connection_timeout(self.connection_timeout)
            .response_timeout(self.response_timeout)
            .retries(2);
        if let Some(user) = &self.username {
            builder = builder.username(user);
        }
        if let Some(certificates) = &self.certificates {
            builder = builder.certs(certificates.clone());
        }
        builder.build().map_err(|err| {
            Error::configuration(format!(
                "The Redis Cluster client cannot be built: {}. Check REDIS_CLUSTER_NODES and the TLS files.",
                describe(&err)
            ))
            .error_type("cluster_configuration")
        })
    }
}

fn is_auth_failure(err: &RedisError) -> bool {
    err.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

fn is_connection_level(err: &RedisError) -> bool {
    // A reply of an unexpected shape was read whole: the connection itself is fine. (A real
    // protocol error ends the connection's driver, which marks it broken.)
    if matches!(
        err.kind(),
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
    ) {
        return false;
    }
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

/// Redis error text without echoing arguments (our commands carry ciphertext only anyway).
fn describe(err: &RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{} ({})", err.category(), err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecuritySettings;
    use crate::crypto::{generate_encryption_key, Secret};

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        let config = SecurityConfig::new(
            SecuritySettings {
                redis_auth: Some(Secret::new("a-password-for-backoff-tests")),
                encryption_key: Some(Secret::new(generate_encryption_key())),
                retry_delay: 0.1,
                ..SecuritySettings::default()
            },
            false,
        )
        .unwrap();
        let target = RedisTarget::parse("rediss://cache.internal:6380/0", false).unwrap();
        let conn = SecureConnection::new(target, &config).unwrap();
        let within =
            |d: Duration, nominal: Duration| d >= nominal.mul_f64(0.8) && d <= nominal.mul_f64(1.2);
        for failures in 0..4 {
            let nominal = Duration::from_millis(100 * (1 << failures));
            assert!(within(conn.inner.backoff(failures), nominal));
        }
        for failures in [10, 31, u32::MAX] {
            assert!(within(conn.inner.backoff(failures), MAX_BACKOFF));
        }
    }
}
