//! Which Redis deployment a cache talks to: one node, a Sentinel-managed primary, or a Redis
//! Cluster. The choice is configuration (`REDIS_CLUSTER_NODES`, `REDIS_SENTINEL_NODES` or the
//! constructor's arguments); every shape keeps TLS, AUTH and the same trust roots on every node.

use super::target::RedisTarget;
use crate::crypto::Secret;
use crate::env::{self, non_empty, Lookup};
use crate::error::{Error, ErrorCode, Result};

/// Number of hash slots in Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16384;

/// What the user asked for, before it is checked against the main URL. `PartialEq` lets two
/// caches compare topologies for sharing a backend (`Secret` compares in constant time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopologySpec {
    /// Redis Cluster: seed nodes (the main URL is a seed too). Empty with `cluster` set means
    /// "the main URL is the only seed".
    pub cluster: bool,
    pub cluster_nodes: Vec<String>,
    /// Sentinel: the sentinels' URLs and the monitored primary's name.
    pub sentinel_nodes: Vec<String>,
    pub sentinel_master: Option<String>,
    /// AUTH of the sentinels themselves: their own password (the Redis password when absent)
    /// and, for sentinels with ACL users, the user name.
    pub sentinel_password: Option<Secret>,
    pub sentinel_username: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SentinelSpec {
    pub sentinels: Vec<RedisTarget>,
    pub master: String,
    pub password: Option<Secret>,
    pub username: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Topology {
    Standalone,
    Cluster { seeds: Vec<RedisTarget> },
    Sentinel(SentinelSpec),
}

impl TopologySpec {
    /// `REDIS_CLUSTER_NODES`, or `REDIS_SENTINEL_NODES` with `REDIS_SENTINEL_MASTER` (and
    /// `REDIS_SENTINEL_PASSWORD`); nothing set means one node.
    pub fn from_env(lookup: Lookup<'_>) -> TopologySpec {
        let get = |name: &str| non_empty(lookup, name);
        TopologySpec {
            cluster: false,
            cluster_nodes: get(env::REDIS_CLUSTER_NODES)
                .map(|v| split_node_list(&v))
                .unwrap_or_default(),
            sentinel_nodes: get(env::REDIS_SENTINEL_NODES)
                .map(|v| split_node_list(&v))
                .unwrap_or_default(),
            sentinel_master: get(env::REDIS_SENTINEL_MASTER).map(|v| v.trim().to_owned()),
            sentinel_password: get(env::REDIS_SENTINEL_PASSWORD).map(Secret::new),
            sentinel_username: get(env::REDIS_SENTINEL_USERNAME).map(|v| v.trim().to_owned()),
        }
    }

    /// The topology a cache uses: its constructor's arguments win; when they name none, the
    /// environment chooses (one node when it says nothing). Sentinel credentials always come
    /// from the environment, never from arguments.
    #[must_use]
    pub fn or_from_env(self, lookup: Lookup<'_>) -> TopologySpec {
        let from_env = TopologySpec::from_env(lookup);
        if self.is_standalone() {
            return from_env;
        }
        TopologySpec {
            sentinel_password: from_env.sentinel_password,
            sentinel_username: from_env.sentinel_username,
            ..self
        }
    }

    /// The topology's name as `Topology::name` will give it, before the nodes are parsed.
    pub fn name(&self) -> &'static str {
        if self.cluster || !self.cluster_nodes.is_empty() {
            "cluster"
        } else if self.is_standalone() {
            "standalone"
        } else {
            "sentinel"
        }
    }

    pub fn is_standalone(&self) -> bool {
        !self.cluster
            && self.cluster_nodes.is_empty()
            && self.sentinel_nodes.is_empty()
            && self.sentinel_master.is_none()
    }
}

/// Comma- or whitespace-separated node list, as in `REDIS_CLUSTER_NODES`.
pub fn split_node_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `host:port` is accepted in node lists and takes the main URL's scheme, so a list never
/// silently downgrades a `rediss://` deployment to plaintext.
fn node_target(raw: &str, main: &RedisTarget, insecure_override: bool) -> Result<RedisTarget> {
    let url = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("{}://{raw}", if main.tls { "rediss" } else { "redis" })
    };
    let node = RedisTarget::parse(&url, insecure_override)?;
    if node.tls != main.tls {
        return Err(Error::configuration(format!(
            "Node {} does not use the same scheme as the Redis URL {}. Every node of a deployment must use \
             rediss:// (TLS).",
            node.display(),
            main.display()
        ))
        .code(ErrorCode::MixedTlsModes));
    }
    if node.password.is_some() || node.username.is_some() {
        return Err(Error::configuration(format!(
            "Node {} carries credentials in its URL. Keep them out of node lists and set REDIS_PASSWORD (and \
             REDIS_ACL_USERNAME) instead.",
            node.display()
        ))
        .code(ErrorCode::ConflictingCredentials));
    }
    Ok(node)
}

impl Topology {
    pub fn resolve(
        spec: &TopologySpec,
        main: &RedisTarget,
        insecure_override: bool,
    ) -> Result<Topology> {
        let wants_cluster = spec.cluster || !spec.cluster_nodes.is_empty();
        let wants_sentinel = !spec.sentinel_nodes.is_empty() || spec.sentinel_master.is_some();
        if wants_cluster && wants_sentinel {
            return Err(Error::configuration(
                "Both Redis Cluster and Sentinel are configured. Set either REDIS_CLUSTER_NODES (cluster=True) or \
                 REDIS_SENTINEL_NODES with REDIS_SENTINEL_MASTER, not both.",
            )
            .code(ErrorCode::ConflictingTopology));
        }
        if wants_cluster {
            if main.db != 0 {
                return Err(Error::configuration(format!(
                    "Redis Cluster has only database 0, but the Redis URL {} selects database {}. Use /0.",
                    main.display(),
                    main.db
                ))
                .code(ErrorCode::ClusterDatabase));
            }
            let mut seeds = vec![main.clone()];
            for raw in &spec.cluster_nodes {
                let node = node_target(raw, main, insecure_override)?;
                if !seeds
                    .iter()
                    .any(|s| s.host == node.host && s.port == node.port)
                {
                    seeds.push(node);
                }
            }
            return Ok(Topology::Cluster { seeds });
        }
        if wants_sentinel {
            let master = spec
                .sentinel_master
                .clone()
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| {
                    Error::configuration(
                        "Sentinel nodes are configured without the monitored primary's name. Set \
                         REDIS_SENTINEL_MASTER (sentinel_master) to the name given in `sentinel monitor`.",
                    )
                    .code(ErrorCode::SentinelMasterMissing)
                })?;
            if spec.sentinel_nodes.is_empty() {
                return Err(Error::configuration(
                    "REDIS_SENTINEL_MASTER is set but no sentinel is. Set REDIS_SENTINEL_NODES (sentinel_nodes) to \
                     one or more rediss://host:port addresses of the sentinels.",
                )
                .code(ErrorCode::SentinelNodesMissing));
            }
            let sentinels = spec
                .sentinel_nodes
                .iter()
                .map(|raw| node_target(raw, main, insecure_override))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Topology::Sentinel(SentinelSpec {
                sentinels,
                master,
                password: spec.sentinel_password.clone(),
                username: spec.sentinel_username.clone(),
            }));
        }
        Ok(Topology::Standalone)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::Cluster { .. } => "cluster",
            Topology::Sentinel(_) => "sentinel",
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Topology::Cluster { .. })
    }
}

/// The part of a key Redis Cluster hashes: the first non-empty `{...}` section, else all.
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The cluster hash slot of a key: CRC16 (XMODEM) of its hash tag, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) % CLUSTER_SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_target(url: &str) -> RedisTarget {
        RedisTarget::parse(url, true).unwrap()
    }

    #[test]
    fn arguments_win_over_the_environment_which_keeps_the_sentinel_credentials() {
        let lookup = crate::env::from_pairs(&[
            ("REDIS_CLUSTER_NODES", "rediss://a:7000,rediss://b:7000"),
            ("REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
            ("REDIS_SENTINEL_USERNAME", "watcher"),
        ]);
        let from_env = TopologySpec::default().or_from_env(&lookup);
        assert_eq!(
            from_env.cluster_nodes,
            ["rediss://a:7000", "rediss://b:7000"]
        );
        let given = TopologySpec {
            sentinel_nodes: vec!["rediss://s1:26379".into()],
            sentinel_master: Some("cache".into()),
            ..TopologySpec::default()
        }
        .or_from_env(&lookup);
        assert!(given.cluster_nodes.is_empty());
        assert_eq!(given.sentinel_master.as_deref(), Some("cache"));
        assert_eq!(given.sentinel_password.unwrap().expose(), "sentinel-secret");
        assert_eq!(given.sentinel_username.as_deref(), Some("watcher"));
    }

    #[test]
    fn slots_match_the_cluster_specification() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert!(key_slot(b"") < CLUSTER_SLOTS);
    }

    #[test]
    fn node_lists_inherit_the_scheme_and_refuse_downgrades() {
        let main = main_target("rediss://10.0.0.1:7000/0");
        let spec = TopologySpec {
            cluster_nodes: split_node_list("10.0.0.2:7001, rediss://10.0.0.3:7002 10.0.0.1:7000"),
            ..Default::default()
        };
        match Topology::resolve(&spec, &main, false).unwrap() {
            Topology::Cluster { seeds } => {
                assert_eq!(seeds.len(), 3);
                assert!(seeds.iter().all(|s| s.tls));
            }
            other => panic!("{other:?}"),
        }
        let downgrade = TopologySpec {
            cluster_nodes: vec!["redis://10.0.0.2:7001".into()],
            ..Default::default()
        };
        let err = Topology::resolve(&downgrade, &main, true).unwrap_err();
        assert!(err.message.contains("rediss://"), "{}", err.message);
        let creds = TopologySpec {
            cluster_nodes: vec!["rediss://:hunter2hunter2@10.0.0.2:7001".into()],
            ..Default::default()
        };
        let err = Topology::resolve(&creds, &main, false).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn conflicting_or_incomplete_choices_fail_with_the_fix() {
        let main = main_target("rediss://h:1/0");
        let both = TopologySpec {
            cluster: true,
            sentinel_nodes: vec!["h:2".into()],
            sentinel_master: Some("m".into()),
            ..Default::default()
        };
        assert!(Topology::resolve(&both, &main, false)
            .unwrap_err()
            .message
            .contains("not both"));
        let no_name = TopologySpec {
            sentinel_nodes: vec!["h:2".into()],
            ..Default::default()
        };
        assert!(Topology::resolve(&no_name, &main, false)
            .unwrap_err()
            .message
            .contains("REDIS_SENTINEL_MASTER"));
        let db = TopologySpec {
            cluster: true,
            ..Default::default()
        };
        assert!(Topology::resolve(&db, &main_target("rediss://h:1/3"), false).is_err());
        assert!(matches!(
            Topology::resolve(&TopologySpec::default(), &main, false).unwrap(),
            Topology::Standalone
        ));
    }
}
