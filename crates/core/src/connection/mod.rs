//! Getting to Redis: where (the URL and the topology: one node, Sentinel or Cluster), how
//! (rustls with our trust roots) and staying there (reconnected with backoff, never a hang).

mod coalesce;
pub mod handle;
pub mod secure;
pub mod target;
pub mod tls;
pub mod topology;

#[cfg(test)]
mod live_tests;

pub use handle::{group_by_slot, NodeAddress, RedisHandle};
pub use secure::{
    ConnectionState, Failure, InvalidationLinks, NodeReport, SecureConnection, TlsSession,
    INVALIDATION_CLIENT_NAME,
};
pub use target::{redact_url, RedisTarget};
pub use topology::{split_node_list, Topology, TopologySpec};
