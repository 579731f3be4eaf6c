//! The connections of the redis crate's cluster client, opened by us: every node it talks to
//! (the starting primaries, and any node it learns of later through MOVED, ASK or a slot
//! refresh: a node added, a replica promoted, a resharding) is reached through `open_node`,
//! so through our rustls configuration (our CA as the only root, `min_tls_version`, the client
//! certificate, the `ring` provider) and our AUTH, exactly like a single node.
//!
//! Why this cannot be bypassed: the cluster client is a `ClusterConnection<ClusterNodeConnection>`,
//! and the only way the redis crate can obtain a `ClusterNodeConnection` is
//! `Connect::connect_with_config`, implemented here. The crate offers no way to hand it a rustls
//! `ClientConfig` (it builds its own from PEM bytes, offering TLS 1.2 and 1.3 whatever we ask),
//! so instead of configuring its TLS we never let it open a socket. It is even built without
//! its TLS features (Cargo.toml): a connection it made on its own could not be TLS, and every
//! node we talk to speaks TLS only, so it would fail rather than escape our settings.
//!
//! `Connect` is a static function: the crate gives it the node's address and the credentials
//! of its `ClusterClientBuilder`, nothing else of ours. So the cluster client is never given
//! the password: its password slot carries a handle naming the cache's connection in
//! `REGISTRY`, and the real credentials stay in `Inner::info`. Invariants: a handle is
//! registered only while its `ClusterSettings` lives; a handle that names no live connection
//! opens nothing (fails closed).

use super::failure::Failure;
use super::Inner;
use crate::connection::handle::NodeAddress;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::Connect;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, Value,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

/// The prefix of every handle; the number after it is the key in `REGISTRY`.
const HANDLE_PREFIX: &str = "secure-redis-cluster-client-";

/// The connections whose cluster clients may open nodes, by handle number. Weak: the registry
/// never keeps a closed cache's connection alive.
static REGISTRY: Mutex<BTreeMap<u64, Weak<Inner>>> = Mutex::new(BTreeMap::new());
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<u64, Weak<Inner>>> {
    // Entries are inserted and removed whole: a panic elsewhere cannot leave one half-written.
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One cache's place in `REGISTRY`, removed when dropped (with the cache's `ClusterSettings`).
pub(super) struct ClusterLink {
    id: u64,
}

impl ClusterLink {
    pub(super) fn new() -> ClusterLink {
        ClusterLink {
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// What the cluster client is given in place of the password. Not a secret: it opens
    /// nothing outside this process, and within it only what the cache itself may open.
    pub(super) fn handle(&self) -> String {
        format!("{HANDLE_PREFIX}{}", self.id)
    }

    /// Lets the cluster client behind this link open nodes through `inner`.
    pub(super) fn register(&self, inner: &Arc<Inner>) {
        registry().insert(self.id, Arc::downgrade(inner));
    }
}

impl Drop for ClusterLink {
    fn drop(&mut self) {
        registry().remove(&self.id);
    }
}

fn lookup(handle: &str) -> Option<Arc<Inner>> {
    let id: u64 = handle.strip_prefix(HANDLE_PREFIX)?.parse().ok()?;
    registry().get(&id)?.upgrade()
}

/// A node connection of the cluster client: a multiplexed connection over our own TLS.
#[derive(Clone)]
pub struct ClusterNodeConnection(MultiplexedConnection);

impl ConnectionLike for ClusterNodeConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// A node the cluster client cannot use, as the redis crate expects a connect error: an I/O
/// error (connection-level, for the crate's retries and our own classification).
fn connect_error(message: String) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        message,
    ))
}

impl Connect for ClusterNodeConnection {
    // The crate's `AsyncConnectionConfig` carries the timeouts we gave its builder (the same
    // `connection_timeout` and `socket_timeout` `open_node` applies) and, for RESP3 only, a
    // push sender; we speak RESP2, so nothing in it is lost.
    fn connect_with_config<'a, T>(info: T, _config: AsyncConnectionConfig) -> RedisFuture<'a, Self>
    where
        T: IntoConnectionInfo + Send + 'a,
    {
        Box::pin(async move {
            let info = info.into_connection_info()?;
            let node = match info.addr() {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                    NodeAddress {
                        host: host.clone(),
                        port: *port,
                    }
                }
                _ => {
                    return Err(connect_error(
                        "the cluster named a node that is not a TCP address".into(),
                    ))
                }
            };
            let Some(inner) = info.redis_settings().password().and_then(lookup) else {
                return Err(connect_error(format!(
                    "cluster node {node}: this cache's connection is closed"
                )));
            };
            inner
                .open_cluster_node(&node)
                .await
                .map(ClusterNodeConnection)
        })
    }
}

impl Inner {
    /// One node for the cluster client, within `connection_timeout`, through `open_node`.
    ///
    /// A node that refuses us (a TLS version below `min_tls_version`, a certificate from
    /// another CA, a wrong password) is a configuration problem, as it would be at connect:
    /// the live connection is given up, so the cache answers misses at once instead of waiting
    /// on the crate's retries for every request to that node, and the reconnect that follows
    /// checks every primary and reports the refusal (`connect()` raises it).
    async fn open_cluster_node(
        self: &Arc<Self>,
        node: &NodeAddress,
    ) -> RedisResult<MultiplexedConnection> {
        let shown = self.node_display(node);
        let deadline = Instant::now() + self.connection_timeout;
        match self
            .open_node(&node.host, node.port, &self.info, deadline, &shown)
            .await
        {
            Ok(link) => Ok(link.conn),
            Err(failure) => {
                let message = format!(
                    "cluster node {shown}: {}",
                    failure.message().trim_end_matches('.')
                );
                if let Failure::Rejected(_) = failure {
                    self.drop_live(&message);
                }
                Err(connect_error(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterNodeConnection;
    use crate::config::{SecurityConfig, TlsVersion};
    use crate::connection::{RedisTarget, SecureConnection, TopologySpec};
    use crate::test_support::{ServerOptions, TlsRedis};
    use redis::aio::ConnectionLike;
    use redis::cluster_async::Connect;
    use redis::AsyncConnectionConfig;

    fn cluster_connection(server: &TlsRedis, min: TlsVersion) -> SecureConnection {
        let mut settings = server.settings_with_password(&server.password);
        settings.min_tls_version = Some(min);
        let spec = TopologySpec {
            cluster: true,
            ..TopologySpec::default()
        };
        SecureConnection::with_topology(
            RedisTarget::parse(&server.url(), false).unwrap(),
            &SecurityConfig::new(settings, false).unwrap(),
            &spec,
            false,
        )
        .unwrap()
    }

    /// What the redis crate's cluster client does for every node it reaches, the ones it
    /// learns of through MOVED or ASK included: `connect_with_config` with the node's address
    /// and the credentials of its builder (our handle in the password slot).
    async fn crate_connects(
        conn: &SecureConnection,
        port: u16,
    ) -> redis::RedisResult<ClusterNodeConnection> {
        let handle = conn.inner.cluster.as_ref().unwrap().link.handle();
        let info = format!("redis://:{handle}@127.0.0.1:{port}/0");
        ClusterNodeConnection::connect_with_config(info, AsyncConnectionConfig::new()).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_cluster_node_connection_uses_our_tls_settings() {
        let legacy = TlsRedis::start_with(
            "cluster-connect-tls12",
            ServerOptions {
                tls_protocols: "TLSv1.2",
                ..ServerOptions::default()
            },
        );
        // min_tls_version 1.3: the redis crate's own TLS would have settled for 1.2.
        let strict = cluster_connection(&legacy, TlsVersion::V1_3);
        let err = crate_connects(&strict, legacy.port)
            .await
            .err()
            .expect("a TLS 1.2-only node is refused");
        assert!(err.to_string().contains("min_tls_version"), "{err}");
        // The same node is fine under min_tls_version 1.2, with our AUTH: it answers a PING.
        let lenient = cluster_connection(&legacy, TlsVersion::V1_2);
        let mut node = crate_connects(&lenient, legacy.port).await.unwrap();
        let pong = node.req_packed_command(&redis::cmd("PING")).await.unwrap();
        assert_eq!(pong, redis::Value::SimpleString("PONG".into()));
        // A handle outlives nothing: once its connection is gone, or if it never named one,
        // it opens nothing (no password of ours to send anyway).
        let handle_gone = lenient.inner.cluster.as_ref().unwrap().link.handle();
        drop(lenient);
        for password in [handle_gone.as_str(), "secure-redis-cluster-client-0", "x"] {
            let info = format!("redis://:{password}@127.0.0.1:{}/0", legacy.port);
            let refused =
                ClusterNodeConnection::connect_with_config(info, AsyncConnectionConfig::new())
                    .await
                    .err()
                    .expect("no connection without a live registration");
            assert!(refused.to_string().contains("closed"), "{refused}");
        }
    }
}
