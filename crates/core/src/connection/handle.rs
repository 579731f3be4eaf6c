//! The connection a request runs on: one node's multiplexed connection, or the redis crate's
//! cluster connection, which routes each command to the primary that owns its key's slot.
//!
//! Both are `ConnectionLike`, so cache code writes one command for every topology; what does
//! differ (pipelines and multi-key commands must stay inside one slot, SCAN must visit every
//! primary) has its own methods here.

use super::secure::ClusterNodeConnection;
use super::topology::key_slot;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::collections::BTreeMap;

#[derive(Clone)]
pub enum RedisHandle {
    Node(MultiplexedConnection),
    /// Over connections we open ourselves (see `secure::cluster_connect`).
    Cluster(ClusterConnection<ClusterNodeConnection>),
}

/// One primary of a cluster, as `CLUSTER SLOTS` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddress {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ConnectionLike for RedisHandle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisHandle::Node(conn) => conn.req_packed_command(cmd),
            RedisHandle::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisHandle::Node(conn) => conn.req_packed_commands(cmd, offset, count),
            RedisHandle::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisHandle::Node(conn) => conn.get_db(),
            RedisHandle::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Indexes of `keys` grouped so that each group may share one pipeline or multi-key command:
/// everything at once on one node, one group per hash slot on a cluster. Groups keep the
/// keys' order.
pub fn group_by_slot<K: AsRef<[u8]>>(keys: &[K], cluster: bool) -> Vec<Vec<usize>> {
    if !cluster {
        return if keys.is_empty() {
            Vec::new()
        } else {
            vec![(0..keys.len()).collect()]
        };
    }
    let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (index, key) in keys.iter().enumerate() {
        groups
            .entry(key_slot(key.as_ref()))
            .or_default()
            .push(index);
    }
    groups.into_values().collect()
}

/// What a `CLUSTER SLOTS` reply says: the primaries (each range's first node), their
/// replicas, and how many of the 16384 slots have a primary at all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClusterNodes {
    pub primaries: Vec<NodeAddress>,
    pub replicas: Vec<NodeAddress>,
    pub covered_slots: u32,
}

impl ClusterNodes {
    /// Every slot has a primary: a cluster that is not failing over or being set up.
    pub fn is_complete(&self) -> bool {
        self.covered_slots == u32::from(super::topology::CLUSTER_SLOTS)
    }
}

fn node_of(entry: &Value) -> Option<NodeAddress> {
    let Value::Array(fields) = entry else {
        return None;
    };
    let host = match fields.first()? {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    let Some(Value::Int(port)) = fields.get(1) else {
        return None;
    };
    Some(NodeAddress {
        host,
        port: u16::try_from(*port).ok()?,
    })
}

pub fn cluster_nodes_from_slots(reply: &Value) -> ClusterNodes {
    let mut found = ClusterNodes::default();
    let Value::Array(ranges) = reply else {
        return found;
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last))) = (fields.first(), fields.get(1))
        else {
            continue;
        };
        let Some(primary) = fields.get(2).and_then(node_of) else {
            continue;
        };
        found.covered_slots += u32::try_from(last - first + 1).unwrap_or(0);
        if !found.primaries.contains(&primary) {
            found.primaries.push(primary);
        }
        for replica in fields.iter().skip(3).filter_map(node_of) {
            if !found.replicas.contains(&replica) {
                found.replicas.push(replica);
            }
        }
    }
    found.primaries.sort();
    found.replicas.sort();
    found
}

/// The replicas in a `CLUSTER NODES` reply that are not failing. (`CLUSTER SLOTS` leaves out
/// a replica until it has reported a replication offset, so it cannot list them all.)
pub fn replicas_from_cluster_nodes(text: &str) -> Vec<NodeAddress> {
    let mut found: Vec<NodeAddress> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = *fields.get(2)?;
            let unusable = ["fail", "noaddr", "handshake"];
            if !flags.split(',').any(|f| f == "slave")
                || flags.split(',').any(|f| unusable.contains(&f))
            {
                return None;
            }
            // ip:port@cport[,hostname]
            let address = fields.get(1)?.split('@').next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some(NodeAddress {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port: port.parse().ok()?,
            })
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

impl RedisHandle {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisHandle::Cluster(_))
    }

    /// `CLUSTER <subcommand>` as any node of the cluster answers it (`None` on a single node).
    async fn ask_any_cluster_node(&mut self, subcommand: &str) -> RedisResult<Option<Value>> {
        match self {
            RedisHandle::Node(_) => Ok(None),
            RedisHandle::Cluster(conn) => conn
                .route_command(
                    redis::cmd("CLUSTER").arg(subcommand).clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await
                .map(Some),
        }
    }

    /// `CLUSTER SLOTS` as any node of the cluster answers it (`None` on a single node).
    pub async fn cluster_slots(&mut self) -> RedisResult<Option<ClusterNodes>> {
        let reply = self.ask_any_cluster_node("SLOTS").await?;
        Ok(reply.map(|reply| cluster_nodes_from_slots(&reply)))
    }

    /// The cluster's healthy replicas (empty on a single node).
    pub async fn cluster_replicas(&mut self) -> RedisResult<Vec<NodeAddress>> {
        match self.ask_any_cluster_node("NODES").await? {
            None => Ok(Vec::new()),
            Some(reply) => {
                let text: String = redis::from_redis_value(reply)?;
                Ok(replicas_from_cluster_nodes(&text))
            }
        }
    }

    /// One SCAN step on `node`; `None` is the node a single-node handle is connected to.
    pub async fn scan_step(
        &mut self,
        node: Option<&NodeAddress>,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match (self, node) {
            (RedisHandle::Cluster(conn), Some(node)) => {
                let reply = conn
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: node.host.clone(),
                            port: node.port,
                        }),
                    )
                    .await?;
                Ok(redis::from_redis_value(reply)?)
            }
            (handle, _) => cmd.query_async(handle).await,
        }
    }

    /// UNLINK of `names`, one command per hash slot on a cluster, sent concurrently (one
    /// SCAN batch spreads over hundreds of slots). Returns how many existed.
    pub async fn unlink(&mut self, names: &[Vec<u8>]) -> RedisResult<i64> {
        let groups = group_by_slot(names, self.is_cluster());
        let removed = futures_util::future::try_join_all(groups.into_iter().map(|group| {
            let mut conn = self.clone();
            let mut cmd = redis::cmd("UNLINK");
            for &index in &group {
                cmd.arg(&names[index]);
            }
            async move { cmd.query_async::<i64>(&mut conn).await }
        }))
        .await?;
        Ok(removed.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_on_a_node_one_per_slot_on_a_cluster() {
        let keys = ["a", "{user1}:x", "b", "{user1}:y"];
        assert_eq!(group_by_slot(&keys, false), vec![vec![0, 1, 2, 3]]);
        let groups = group_by_slot(&keys, true);
        assert!(groups.contains(&vec![1, 3]));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 4);
        for group in &groups {
            let slot = key_slot(keys[group[0]].as_bytes());
            assert!(group.iter().all(|&i| key_slot(keys[i].as_bytes()) == slot));
        }
        assert!(group_by_slot::<&str>(&[], false).is_empty());
    }

    #[test]
    fn healthy_replicas_are_read_from_cluster_nodes() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7004@17004,redis-4 slave a1 0 1 1 connected
c3 127.0.0.1:7005@17005 slave,fail a1 0 1 1 connected
d4 [::1]:7006@17006 slave a1 0 1 1 connected
";
        let found = replicas_from_cluster_nodes(text);
        assert_eq!(
            found.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["127.0.0.1:7004", "[::1]:7006"]
        );
    }

    #[test]
    fn nodes_and_coverage_are_read_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7001),
                node("127.0.0.1", 7004),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7002),
            ]),
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node("127.0.0.1", 7001),
            ]),
        ]);
        let found = cluster_nodes_from_slots(&reply);
        assert_eq!(
            found
                .primaries
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert_eq!(found.replicas.len(), 1);
        assert!(found.is_complete());
        let partial = cluster_nodes_from_slots(&Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            node("127.0.0.1", 7001),
        ])]));
        assert!(!partial.is_complete());
        assert_eq!(
            cluster_nodes_from_slots(&Value::Nil),
            ClusterNodes::default()
        );
    }
}
