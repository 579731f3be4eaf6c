//! The connection a request runs on: one node's multiplexed connection, or the redis crate's
//! cluster connection, which routes each command to the primary that owns its key's slot.
//!
//! Both are `ConnectionLike`, so cache code writes one command for every topology; what does
//! differ (pipelines and multi-key commands must stay inside one slot, SCAN must visit every
//! primary) has its own methods here.

use super::topology::key_slot;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::collections::BTreeMap;

#[derive(Clone)]
pub enum RedisHandle {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
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

/// The primaries in a `CLUSTER SLOTS` reply: each range's first node, deduplicated.
pub fn primaries_from_slots(reply: &Value) -> Vec<NodeAddress> {
    let mut found: Vec<NodeAddress> = Vec::new();
    let Value::Array(ranges) = reply else {
        return found;
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let Some(Value::Array(primary)) = fields.get(2) else {
            continue;
        };
        let host = match primary.first() {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(text)) => text.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        let node = NodeAddress { host, port };
        if !found.contains(&node) {
            found.push(node);
        }
    }
    found.sort();
    found
}

impl RedisHandle {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisHandle::Cluster(_))
    }

    /// The nodes SCAN has to visit: `None` is "the node we are connected to".
    pub async fn scan_targets(&mut self) -> RedisResult<Vec<Option<NodeAddress>>> {
        match self {
            RedisHandle::Node(_) => Ok(vec![None]),
            RedisHandle::Cluster(conn) => {
                let reply = conn
                    .route_command(
                        redis::cmd("CLUSTER").arg("SLOTS").clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await?;
                Ok(primaries_from_slots(&reply).into_iter().map(Some).collect())
            }
        }
    }

    /// One SCAN step on `node` (see `scan_targets`).
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

    /// UNLINK of `names`, one command per hash slot on a cluster. Returns how many existed.
    pub async fn unlink(&mut self, names: &[Vec<u8>]) -> RedisResult<i64> {
        let mut removed = 0;
        for group in group_by_slot(names, self.is_cluster()) {
            let mut cmd = redis::cmd("UNLINK");
            for &index in &group {
                cmd.arg(&names[index]);
            }
            removed += cmd.query_async::<i64>(self).await?;
        }
        Ok(removed)
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
    fn primaries_are_read_from_cluster_slots() {
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
        let found = primaries_from_slots(&reply);
        assert_eq!(
            found.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert!(primaries_from_slots(&Value::Nil).is_empty());
    }
}
