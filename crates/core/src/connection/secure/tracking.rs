//! Invalidation links: one RESP3 connection per node that holds the cache's keys (the one
//! node, the primary behind Sentinel, every cluster primary), named
//! `secure_redis:invalidation`, on which the server pushes the name of every key written or
//! deleted there as an `invalidate` message (client-side caching, BCAST mode, optionally
//! limited by `PREFIX`). This file opens and arms those links; what the pushes mean for L1 is
//! `cache::coherence`'s business.
//!
//! Why BCAST rather than Redis's default tracking mode: default mode reports only keys read on
//! the tracked connection, and only once per read; BCAST reports every write of a matching key,
//! and a PING on the link answered means every invalidation for writes before that PING has
//! arrived (one ordered stream), which is what lets L1 prove it is current.
//!
//! Who is tracked differs by topology. On one node (and behind Sentinel) it is our own data
//! connection, redirected to the link, with `NOLOOP`: the writes this process makes itself are
//! not reported back, so the value it just wrote stays in its L1. The data connection loses
//! that state when it is replaced, which is why links belong to one data connection
//! (`live_id`) and are reopened, and the redirect re-armed, after every reconnect. On a Cluster
//! the data connection is the redis crate's, reconnecting per node on its own, so tracking
//! cannot be armed on it reliably: each link tracks itself instead, and this process's own
//! writes come back as invalidations too (its L1 copy is then read again from Redis once).

use super::failure::{describe, Failure};
use super::Inner;
use super::SecureConnection;
use crate::connection::handle::{NodeAddress, RedisHandle};
use crate::connection::topology::Topology;
use crate::error::{Error, ErrorCode};
use redis::aio::MultiplexedConnection;
use redis::{ProtocolVersion, PushInfo};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::timeout;

/// The name invalidation links carry in `CLIENT LIST`, for operators (and tests) to find them.
pub const INVALIDATION_CLIENT_NAME: &str = "secure_redis:invalidation";

struct Link {
    conn: MultiplexedConnection,
    driver: tokio::task::JoinHandle<()>,
}

/// The links of one data connection (`live_id`): closed, socket and all, when dropped.
pub struct InvalidationLinks {
    live_id: u64,
    links: Vec<Link>,
}

impl InvalidationLinks {
    /// The data connection these links were opened for; when it is replaced (a reconnect,
    /// perhaps to another primary), the links must be opened again.
    pub fn live_id(&self) -> u64 {
        self.live_id
    }

    /// A PING on every link, answered within `limit`. Once this returns `Ok`, every
    /// invalidation for a write made before it was called has been handed to the push channel.
    pub async fn ping(&self, limit: Duration) -> Result<(), String> {
        let pings = self.links.iter().map(|link| {
            let mut conn = link.conn.clone();
            async move {
                match timeout(limit, redis::cmd("PING").query_async::<String>(&mut conn)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(describe(&err)),
                    Err(_) => Err(format!("no answer within {limit:?}")),
                }
            }
        });
        futures_util::future::try_join_all(pings).await.map(|_| ())
    }

    /// A link's connection has closed (its driver ended).
    pub fn any_closed(&self) -> bool {
        self.links.iter().any(|link| link.driver.is_finished())
    }
}

impl Drop for InvalidationLinks {
    fn drop(&mut self) {
        for link in &self.links {
            link.driver.abort();
        }
    }
}

impl SecureConnection {
    /// The id of the live data connection, if there is one.
    pub fn live_id(&self) -> Option<u64> {
        self.inner.lock().live().map(|live| live.id)
    }

    /// Opens a tracking link to every node the live data connection writes to, each sending
    /// its pushes to `pushes`. `Failure::Rejected` when a server refuses tracking (an ACL
    /// without `+client|tracking` or `+hello`, or a Redis older than 6): retrying will not
    /// help, the caller should say what to fix.
    pub async fn open_invalidation_links(
        &self,
        prefixes: &[String],
        pushes: &UnboundedSender<PushInfo>,
    ) -> Result<InvalidationLinks, Failure> {
        let inner = &self.inner;
        let (live_id, data, nodes) = {
            let st = inner.lock();
            let Some(live) = st.live() else {
                return Err(Failure::Unavailable(format!(
                    "Redis at {} is not connected",
                    inner.shown
                )));
            };
            let nodes = match &inner.topology {
                Topology::Standalone => vec![NodeAddress {
                    host: inner.target.host.clone(),
                    port: inner.target.port,
                }],
                Topology::Sentinel(_) => st.primary.iter().cloned().collect(),
                Topology::Cluster { .. } => st.known_primaries.clone(),
            };
            (live.id, live.conn.clone(), nodes)
        };
        if nodes.is_empty() {
            return Err(Failure::Unavailable(
                "no node known to track invalidations on".to_owned(),
            ));
        }
        let deadline = Instant::now() + inner.connection_timeout;
        let info = inner.info.clone().set_protocol(ProtocolVersion::RESP3);
        let redirect = match data {
            RedisHandle::Node(conn) => Some(conn),
            RedisHandle::Cluster(_) => None,
        };
        let mut links = Vec::with_capacity(nodes.len());
        for node in &nodes {
            links.push(
                inner
                    .open_tracking_link(node, &info, prefixes, pushes, redirect.clone(), deadline)
                    .await?,
            );
        }
        Ok(InvalidationLinks { live_id, links })
    }
}

impl Inner {
    /// Opens the link to `node` and arms tracking: on `redirect` (our data connection to the
    /// node) towards the link, or on the link itself when there is none (a cluster).
    async fn open_tracking_link(
        &self,
        node: &NodeAddress,
        info: &redis::RedisConnectionInfo,
        prefixes: &[String],
        pushes: &UnboundedSender<PushInfo>,
        redirect: Option<MultiplexedConnection>,
        deadline: Instant,
    ) -> Result<Link, Failure> {
        let shown = match &self.topology {
            Topology::Standalone => self.shown.clone(),
            _ => self.node_display(node),
        };
        let mut link = self
            .open_node_with(
                &node.host,
                node.port,
                info,
                deadline,
                &shown,
                Some(pushes.clone()),
            )
            .await?;
        let name = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(INVALIDATION_CLIENT_NAME)
            .clone();
        if let Ok(Err(err)) = self
            .discovery_query::<()>(&mut link.conn, &name, deadline, &shown)
            .await
        {
            if err.code() != Some("NOPERM") {
                link.driver.abort();
                return Err(Failure::Unavailable(describe(&err)));
            }
            // NOPERM: the name is for operators only.
        }
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON");
        let (mut armed, off) = if let Some(data) = redirect {
            let id = match self
                .discovery_query::<i64>(
                    &mut link.conn,
                    &redis::cmd("CLIENT").arg("ID").clone(),
                    deadline,
                    &shown,
                )
                .await?
            {
                Ok(id) => id,
                Err(err) => {
                    link.driver.abort();
                    return Err(tracking_refused(&shown, &err));
                }
            };
            tracking.arg("REDIRECT").arg(id).arg("BCAST").arg("NOLOOP");
            // Turned off first: the data connection may still track for a link now gone, and
            // tracking cannot be re-armed with other options while on.
            let off = redis::cmd("CLIENT").arg("TRACKING").arg("OFF").clone();
            (data, Some(off))
        } else {
            tracking.arg("BCAST");
            (link.conn.clone(), None)
        };
        for prefix in prefixes {
            tracking.arg("PREFIX").arg(prefix);
        }
        for command in off.iter().chain(std::iter::once(&tracking)) {
            match self
                .discovery_query::<()>(&mut armed, command, deadline, &shown)
                .await?
            {
                Ok(()) => {}
                Err(err) => {
                    link.driver.abort();
                    return Err(tracking_refused(&shown, &err));
                }
            }
        }
        Ok(Link {
            conn: link.conn,
            driver: link.driver,
        })
    }
}

/// A server that answered with an error refused tracking (a configuration matter); one that
/// could not answer (a broken pipe, a timeout) is just unavailable for now.
fn tracking_refused(shown: &str, err: &redis::RedisError) -> Failure {
    if err.code().is_none() {
        return Failure::Unavailable(format!(
            "arming invalidations at {shown} failed: {}",
            describe(err)
        ));
    }
    Failure::Rejected(
        Error::configuration(format!(
            "Redis at {shown} refused client-side caching invalidations (CLIENT TRACKING: {}), so the L1 \
             tier cannot be kept coherent with other processes and is bypassed. Allow it (Redis 6 or newer; \
             for an ACL user, +hello, +client|id and +client|tracking), or set enable_l1_cache=False.",
            describe(err)
        ))
        .with("redis_url", shown.to_owned())
        .code(ErrorCode::ConnectionSetupFailed),
    )
}
