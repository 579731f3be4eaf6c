//! Redis Cluster: finding the slot map through any reachable seed (the configured ones, then
//! the primaries the last connect saw), checking every primary through our own rustls
//! configuration, refusing to connect to a cluster that does not serve all 16384 slots (so
//! callers fall back while it fails over), and building the redis crate's cluster client over
//! connections we open ourselves (`cluster_connect`), so no node it reaches later escapes our
//! TLS settings.

use super::cluster_connect::{ClusterLink, ClusterNodeConnection};
use super::failure::{describe, first_success, refused, Failure};
use super::node::NodeReport;
use super::Inner;
use crate::config::SecurityConfig;
use crate::connection::handle::{cluster_nodes_from_slots, ClusterNodes, NodeAddress, RedisHandle};
use crate::connection::target::RedisTarget;
use crate::error::{Error, ErrorCode, Result};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// What the redis crate's cluster client needs, kept to build one per connect (its starting
/// nodes change as the cluster does): its timeouts, and the link through which every node
/// connection it makes is opened by us (`cluster_connect`). It is given no password, no
/// certificate and no trust root: it never opens a socket itself.
pub(super) struct ClusterSettings {
    pub(super) link: ClusterLink,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl ClusterSettings {
    pub(super) fn new(config: &SecurityConfig) -> ClusterSettings {
        ClusterSettings {
            link: ClusterLink::new(),
            connection_timeout: config.connection_timeout,
            response_timeout: config.socket_timeout,
        }
    }

    pub(super) fn client(&self, nodes: &[NodeAddress]) -> Result<ClusterClient> {
        // Plain `redis://` addresses: the redis crate is built without TLS (Cargo.toml), and
        // the scheme means nothing to it anyway, since `ClusterNodeConnection` opens every
        // node with our TLS. The password slot carries the link's handle, which
        // `ClusterNodeConnection` trades for our own connection settings (AUTH included).
        ClusterClientBuilder::new(nodes.iter().map(|node| format!("redis://{node}")))
            .password(self.link.handle())
            .connection_timeout(self.connection_timeout)
            .response_timeout(self.response_timeout)
            .retries(2)
            .build()
            .map_err(|err| {
                Error::configuration(format!(
                    "The Redis Cluster client cannot be built: {}. Check REDIS_CLUSTER_NODES.",
                    describe(&err)
                ))
                .code(ErrorCode::ClusterConfiguration)
            })
    }
}

impl Inner {
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
                ErrorCode::AclDenied,
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
                ErrorCode::NotACluster,
            )),
            Err(err) => Err(Failure::Unavailable(format!(
                "{shown} failed: {}",
                describe(&err)
            ))),
        }
    }

    pub(super) async fn open_cluster(
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
        // Every primary checked first: a refusal gets the precise error a single
        // node gets, and the security report gets each primary's handshake. (The cluster
        // client's own connections go through the same `open_node`, see `cluster_connect`.)
        let mut nodes = Vec::with_capacity(map.primaries.len());
        for report in self.check_nodes(&map.primaries, "primary", deadline).await {
            match report.error {
                None => nodes.push(report),
                Some(error) => {
                    return Err(report_failure(error, &report.address));
                }
            }
        }
        // The primaries just reached are the cluster client's starting points.
        let client = settings.client(&map.primaries).map_err(Failure::Rejected)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        // `get_async_generic_connection` is the crate's (doc-hidden) constructor for a cluster
        // connection over a connection type of our own; the timeouts come from the builder.
        let cluster = match timeout(
            remaining,
            client.get_async_generic_connection::<ClusterNodeConnection>(),
        )
        .await
        {
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
        self.lock().known_primaries.clone_from(&map.primaries);
        let tls = nodes.first().and_then(|node| node.tls.clone());
        self.install(RedisHandle::Cluster(cluster), None, tls, nodes, epoch)
    }

    /// A TLS handshake and AUTH with each node, concurrently, through our own configuration;
    /// a report per node, with the refusal or outage as `error`.
    pub(super) async fn check_nodes(
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
