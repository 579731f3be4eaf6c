//! Sentinel discovery: which node is the primary (asked of every configured sentinel at once,
//! over TLS with the sentinels' own credentials, on every connect), whether it still is one
//! (ROLE, because a sentinel may name the old primary during a failover), and which replicas
//! and sentinels exist, for surveys.

use super::failure::{describe, first_success, refused, Failure};
use super::node::{NodeReport, TlsSession};
use super::Inner;
use crate::connection::handle::NodeAddress;
use crate::connection::target::RedisTarget;
use crate::connection::topology::SentinelSpec;
use crate::error::ErrorCode;
use redis::aio::MultiplexedConnection;
use redis::RedisError;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::timeout;

impl Inner {
    /// The primary's address according to the first sentinel that knows it (all are asked at
    /// once, so one that hangs costs nothing), and that sentinel.
    pub(super) async fn ask_sentinels(
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
                    "sentinel {shown} answered an invalid port for the primary named by REDIS_SENTINEL_MASTER"
                ))),
            },
            Ok(None) => Err(refused(
                format!(
                    "Sentinel {shown} monitors no primary of the name in REDIS_SENTINEL_MASTER ({} characters). Set \
                     REDIS_SENTINEL_MASTER to the name \
                     used in the sentinels' `sentinel monitor` line (for example REDIS_SENTINEL_MASTER=mymaster).",
                    master.chars().count()
                ),
                "sentinel",
                &shown,
                ErrorCode::SentinelUnknownMaster,
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
                ErrorCode::AclDenied,
            )),
            Err(err) => Err(Failure::Unavailable(format!(
                "sentinel {shown} could not name the primary: {}",
                describe(&err)
            ))),
        }
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
        Ok((shown, link.conn, link.tls))
    }

    /// The replicas and the other sentinels one sentinel knows of (for surveys).
    pub(super) async fn sentinel_peers(
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

    pub(super) fn sentinel_display(&self, node: &NodeAddress) -> String {
        format!(
            "{}://{node}/0",
            if self.tls.is_some() {
                "rediss"
            } else {
                "redis"
            }
        )
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

/// During a failover a sentinel may still name the old primary, now a replica: ROLE tells.
/// An ACL that forbids ROLE is no reason to refuse; a replica then shows itself by READONLY
/// on the first write, which breaks the connection as well.
pub(super) async fn confirm_primary(
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
