//! Fencing abandoned connections. A request that timed out may still sit in the old socket's
//! send queue (or in the network) and land after a later write made on a new connection: the
//! partition heals, TCP retransmits, and Redis applies the old value over the new one. So a
//! connection given up is aborted at once (zero linger: the kernel discards its queue and
//! resets the connection; see `State::abandon`), and before a new connection to the same node
//! is used for anything, the server is told to close the old one (`CLIENT KILL ID`), so
//! nothing still on its way through the old connection can be applied afterwards. The kill
//! names the connection by id and by our address, since ids start again after a restart.

use super::failure::{describe, Failure};
use super::state::Fence;
use super::Inner;
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The ACL refused `CLIENT ID` or `CLIENT KILL` once: said once per process, not at every
/// reconnect.
static FENCE_REFUSED_WARNED: AtomicBool = AtomicBool::new(false);

fn warn_fence_refused(shown: &str, command: &str) {
    if !FENCE_REFUSED_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "secure_redis.connection",
            "Redis at {shown} refused {command} to this ACL user: a connection given up after a timeout is still \
             aborted locally, but the server cannot be made to close it, so a write delayed in the network could \
             land late. Grant +client|id and +client|kill to close that gap."
        );
    }
}

impl Inner {
    /// The server's id for a freshly opened connection to `shown`, to fence it later; `None`
    /// when the ACL does not allow asking.
    pub(super) async fn identify(
        &self,
        conn: &mut MultiplexedConnection,
        local_addr: Option<&str>,
        shown: &str,
        deadline: Instant,
    ) -> Result<Option<Fence>, Failure> {
        match self
            .discovery_query::<i64>(
                conn,
                &redis::cmd("CLIENT").arg("ID").clone(),
                deadline,
                shown,
            )
            .await?
        {
            // Without our address a kill could not tell our old connection from another
            // client's that has its id after a server restart: no server-side fence then.
            Ok(client_id) => Ok(local_addr.map(|addr| Fence {
                node: shown.to_owned(),
                client_id,
                local_addr: addr.to_owned(),
            })),
            Err(err) if err.code() == Some("NOPERM") => {
                warn_fence_refused(shown, "CLIENT ID");
                Ok(None)
            }
            Err(err) => Err(Failure::Unavailable(format!(
                "Redis at {shown} did not say who this connection is (CLIENT ID): {}",
                describe(&err)
            ))),
        }
    }

    /// Has the server close every abandoned connection to `shown`, on the connection about to
    /// replace them and before it is installed. A server that cannot be asked in time fails
    /// the connect (the fences wait for the next one); an ACL that refuses `CLIENT KILL`
    /// leaves only the socket abort, which is said once.
    pub(super) async fn fence_abandoned(
        &self,
        conn: &mut MultiplexedConnection,
        shown: &str,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let due: Vec<Fence> = self
            .lock()
            .abandoned
            .iter()
            .filter(|fence| fence.node == shown)
            .cloned()
            .collect();
        for fence in due {
            let mut kill = redis::cmd("CLIENT");
            // Both must match: after a restart the id may be another client's. (Behind NAT or a
            // proxy the server sees another address, nothing matches, and only the local abort
            // fences.)
            kill.arg("KILL")
                .arg("ID")
                .arg(fence.client_id)
                .arg("ADDR")
                .arg(&fence.local_addr);
            match self
                .discovery_query::<i64>(conn, &kill, deadline, shown)
                .await?
            {
                Ok(_) => {}
                Err(err) if err.code() == Some("NOPERM") => {
                    warn_fence_refused(shown, "CLIENT KILL");
                }
                // "No such client": it is gone already, which is all a fence asks.
                Err(err) if err.code() == Some("ERR") => {}
                Err(err) => {
                    return Err(Failure::Unavailable(format!(
                        "Redis at {shown} could not close an abandoned connection: {}",
                        describe(&err)
                    )))
                }
            }
            self.lock().abandoned.retain(|kept| kept != &fence);
        }
        Ok(())
    }
}
