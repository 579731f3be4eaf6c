//! The documents a cache reports about itself: `get_cache_stats()` and
//! `get_security_status()`, and what Redis says about the keyspace for them. Typed and
//! serializable, so their shape is pinned here by `cargo test`; the bindings turn them into
//! dicts generically, field by field in declaration order.

use super::namespace::escape_glob;
use super::rejections::RejectionCounts;
use super::GenericRedisCache;
use crate::clock::days_until;
use crate::config::{SecurityConfig, SecurityLevel};
use crate::connection::{Failure, NodeReport, SecureConnection, TlsSession};
use serde::Serialize;
use std::collections::HashSet;

/// What Redis said about the keyspace (and, for a namespace, the server).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RedisReport {
    pub reachable: bool,
    /// Keys counted; None when the server refused the command (an ACL without DBSIZE/SCAN).
    pub keys: Option<u64>,
    /// INFO memory and clients, read for namespace reports only.
    pub server: Option<ServerFigures>,
}

/// From INFO; each is None when the ACL user may not run it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerFigures {
    pub memory_used: Option<String>,
    pub memory_used_bytes: Option<u64>,
    pub connected_clients: Option<u64>,
}

/// `get_cache_stats()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStats {
    pub redis: RedisStats,
    pub memory: L1Stats,
    pub performance: PerformanceStats,
    pub encryption: EncryptionStats,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedisStats {
    /// "connected" when a connection is live and Redis answered just now, else "unavailable".
    pub status: &'static str,
    pub url: String,
    /// The prefix of every key of this cache ("" by default); `keys` counts only those.
    pub namespace: String,
    pub tls: bool,
    pub keys: Option<u64>,
    pub reconnects: u64,
    pub topology: &'static str,
    pub nodes: Vec<NodeStatus>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    #[serde(flatten)]
    pub server: Option<ServerFigures>,
}

/// One node the connection reached, without credentials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub address: String,
    pub role: &'static str,
    #[serde(flatten)]
    pub tls: Option<NodeTls>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeTls {
    pub tls_version: String,
    #[serde(flatten)]
    pub certificate: ServerCertificate,
}

/// The server certificate a handshake presented.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerCertificate {
    pub server_certificate_subject: Option<String>,
    pub server_certificate_days_until_expiry: Option<i64>,
}

impl ServerCertificate {
    fn of(session: &TlsSession, now: u64) -> ServerCertificate {
        ServerCertificate {
            server_certificate_subject: session.server_subject.clone(),
            server_certificate_days_until_expiry: session
                .server_not_after
                .map(|t| days_until(t, now)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct L1Stats {
    pub enabled: bool,
    pub memory_cache_entries: usize,
    pub memory_cache_size_limit: usize,
    /// "entries/limit", as the layer we replace shows it.
    pub memory_cache_utilization: String,
    /// L1 may answer now: its invalidation links from Redis are up and current. When false,
    /// reads go to Redis (see `cache::coherence`).
    pub coherent: bool,
    /// Keys evicted because Redis said they were written (by any process).
    pub invalidations: u64,
    /// Times L1 was flushed because its invalidation links were lost.
    pub coherence_flushes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceStats {
    pub gets: u64,
    pub hits: u64,
    pub l1_hits: u64,
    pub redis_hits: u64,
    pub misses: u64,
    pub hit_ratio: f64,
    pub sets: u64,
    pub deletes: u64,
    pub redis_failures: u64,
    pub l1_only_writes: u64,
    pub rejected_entries: u64,
    pub rejected_by_kind: RejectionCounts,
    /// Warnings about rejected entries held back: at most one per key and kind a minute.
    pub tamper_warnings_suppressed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncryptionStats {
    /// Always true: there is no unencrypted mode to report.
    pub enabled: bool,
    pub algorithm: &'static str,
    pub plaintext_bytes: u64,
    pub stored_bytes: u64,
    pub size_overhead_ratio: f64,
    pub compressed_writes: u64,
    pub encrypt_operations: u64,
    pub decrypt_operations: u64,
    pub avg_encrypt_ms: f64,
    pub avg_decrypt_ms: f64,
}

/// `get_security_status()`: configuration and connection facts, without I/O or secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityStatus {
    pub security_level: SecurityLevel,
    pub configuration: SecurityConfiguration,
    pub connection: ConnectionStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(clippy::struct_excessive_bools)] // a document of yes/no facts, not a state machine
pub struct SecurityConfiguration {
    /// Always true: a SecurityConfig cannot be built without a password.
    pub has_authentication: bool,
    pub tls_enabled: bool,
    pub acl_configured: bool,
    /// Always true: there is no option to skip it.
    pub certificate_verification: bool,
    pub private_ca: bool,
    pub mutual_tls: bool,
    pub min_tls_version: &'static str,
    pub encryption: &'static str,
    pub encryption_keys: usize,
    pub connection_timeout: f64,
    pub socket_timeout: f64,
    pub max_retries: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionStatus {
    pub redis_url: String,
    pub connected: bool,
    pub reconnects: u64,
    pub last_error: Option<String>,
    #[serde(flatten)]
    pub tls: Option<SessionStatus>,
    pub topology: &'static str,
    pub nodes: Vec<NodeStatus>,
}

/// What the current connection's handshake negotiated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionStatus {
    pub tls_version: String,
    pub cipher_suite: String,
    #[serde(flatten)]
    pub certificate: ServerCertificate,
}

const ALGORITHM: &str = "Fernet (AES-128-CBC + HMAC-SHA256)";

impl CacheStats {
    /// The cache's counters and connection state now, with `redis` just read from the server.
    pub fn of(cache: &GenericRedisCache, url: &str, redis: RedisReport, now: u64) -> CacheStats {
        let state = cache.connection_state();
        let s = cache.stats();
        let (entries, limit) = cache.l1().map_or((0, 0), |l1| (l1.len(), l1.capacity()));
        let coherence = cache
            .coherence()
            .map(super::coherence::Coherence::stats)
            .unwrap_or_default();
        CacheStats {
            redis: RedisStats {
                status: if state.connected && redis.reachable {
                    "connected"
                } else {
                    "unavailable"
                },
                url: url.to_owned(),
                namespace: cache.namespace().as_str().to_owned(),
                tls: cache.connection().is_tls(),
                keys: redis.keys,
                reconnects: state.reconnects,
                topology: state.topology,
                nodes: NodeStatus::list(&state.nodes, now),
                consecutive_failures: state.consecutive_failures,
                last_error: state.last_error,
                server: redis.server,
            },
            memory: L1Stats {
                enabled: cache.l1().is_some(),
                memory_cache_entries: entries,
                memory_cache_size_limit: limit,
                memory_cache_utilization: format!("{entries}/{limit}"),
                coherent: coherence.active,
                invalidations: coherence.invalidations,
                coherence_flushes: coherence.flushes,
            },
            performance: PerformanceStats {
                gets: s.gets,
                hits: s.l1_hits + s.redis_hits,
                l1_hits: s.l1_hits,
                redis_hits: s.redis_hits,
                misses: s.misses,
                hit_ratio: s.hit_ratio(),
                sets: s.sets,
                deletes: s.deletes,
                redis_failures: s.redis_failures,
                l1_only_writes: s.l1_only_writes,
                rejected_entries: s.rejected_entries,
                rejected_by_kind: s.rejected_by_kind,
                tamper_warnings_suppressed: s.tamper_warnings_suppressed,
            },
            encryption: EncryptionStats {
                enabled: true,
                algorithm: ALGORITHM,
                plaintext_bytes: s.plaintext_bytes,
                stored_bytes: s.stored_bytes,
                size_overhead_ratio: if s.plaintext_bytes == 0 {
                    0.0
                } else {
                    s.stored_bytes as f64 / s.plaintext_bytes as f64
                },
                compressed_writes: s.compressed_writes,
                encrypt_operations: s.encodes,
                decrypt_operations: s.decodes,
                avg_encrypt_ms: super::stats::average_ms(s.encode_seconds, s.encodes),
                avg_decrypt_ms: super::stats::average_ms(s.decode_seconds, s.decodes),
            },
        }
    }
}

impl SecurityStatus {
    pub fn of(
        cache: &GenericRedisCache,
        url: &str,
        config: &SecurityConfig,
        now: u64,
    ) -> SecurityStatus {
        let state = cache.connection_state();
        let tls = cache.connection().is_tls();
        SecurityStatus {
            security_level: SecurityLevel::of(tls),
            configuration: SecurityConfiguration {
                has_authentication: true,
                tls_enabled: tls,
                acl_configured: config.acl_username.is_some(),
                certificate_verification: true,
                private_ca: config.tls_ca_path.is_some(),
                mutual_tls: config.tls_cert_path.is_some(),
                min_tls_version: config.min_tls_version.as_str(),
                encryption: "Fernet",
                encryption_keys: config.keyring.len(),
                connection_timeout: config.connection_timeout.as_secs_f64(),
                socket_timeout: config.socket_timeout.as_secs_f64(),
                max_retries: config.max_retries,
            },
            connection: ConnectionStatus {
                redis_url: url.to_owned(),
                connected: state.connected,
                reconnects: state.reconnects,
                last_error: state.last_error,
                tls: state.tls.map(|session| SessionStatus {
                    certificate: ServerCertificate::of(&session, now),
                    tls_version: session.protocol,
                    cipher_suite: session.cipher_suite,
                }),
                topology: state.topology,
                nodes: NodeStatus::list(&state.nodes, now),
            },
        }
    }
}

impl NodeStatus {
    fn list(nodes: &[NodeReport], now: u64) -> Vec<NodeStatus> {
        nodes
            .iter()
            .map(|node| NodeStatus {
                address: node.address.clone(),
                role: node.role,
                tls: node.tls.as_ref().map(|tls| NodeTls {
                    tls_version: tls.protocol.clone(),
                    certificate: ServerCertificate::of(tls, now),
                }),
            })
            .collect()
    }
}

const SCAN_BATCH: usize = 1000;

impl RedisReport {
    /// What `get_cache_stats()` reports of `cache`'s keyspace: with `prefix` (the AI cache's
    /// `ai_cache:`), the keys under it inside the namespace, with the server figures;
    /// otherwise the keys of the namespace, or DBSIZE in the default namespace.
    pub async fn of_cache(cache: &GenericRedisCache, prefix: Option<&str>) -> RedisReport {
        let namespace = cache.namespace();
        match prefix {
            Some(prefix) => {
                let pattern = namespace.pattern(&format!("{}*", escape_glob(prefix)));
                RedisReport::namespace(cache.connection(), &pattern).await
            }
            None if namespace.is_empty() => RedisReport::database(cache.connection()).await,
            None => {
                let counted = keys_matching(cache.connection(), &namespace.everything()).await;
                match counted {
                    Ok(keys) => RedisReport::reached(keys),
                    Err(()) => RedisReport::default(),
                }
            }
        }
    }

    /// DBSIZE: every key of the database (what `GenericRedisCache.get_cache_stats()` shows).
    pub async fn database(conn: &SecureConnection) -> RedisReport {
        match conn
            .run(|mut c| async move { redis::cmd("DBSIZE").query_async::<u64>(&mut c).await })
            .await
        {
            Ok(keys) => RedisReport::reached(Some(keys)),
            Err(Failure::Command(_)) => RedisReport::reached(None),
            Err(_) => RedisReport::default(),
        }
    }

    /// The keys matching the SCAN `pattern` counted (the database may hold other
    /// applications' keys, so DBSIZE would overstate it; KEYS would block the server), plus
    /// INFO memory and clients.
    pub async fn namespace(conn: &SecureConnection, pattern: &str) -> RedisReport {
        let Ok(keys) = keys_matching(conn, pattern).await else {
            // Unreachable: the server figures are still reported, as unknown.
            return RedisReport {
                server: Some(ServerFigures::default()),
                ..RedisReport::default()
            };
        };
        RedisReport {
            server: Some(ServerFigures::read(conn).await),
            ..RedisReport::reached(keys)
        }
    }

    fn reached(keys: Option<u64>) -> RedisReport {
        RedisReport {
            reachable: true,
            keys,
            server: None,
        }
    }
}

/// How many distinct keys match `pattern` (SCAN may return a key twice); `Ok(None)` when the
/// server refused SCAN, `Err` when it could not be reached.
async fn keys_matching(conn: &SecureConnection, pattern: &str) -> Result<Option<u64>, ()> {
    match conn.scan(pattern, SCAN_BATCH, false).await {
        Ok(names) => Ok(Some(names.into_iter().collect::<HashSet<_>>().len() as u64)),
        Err(Failure::Command(_)) => Ok(None),
        Err(_) => Err(()),
    }
}

impl ServerFigures {
    async fn read(conn: &SecureConnection) -> ServerFigures {
        // One INFO reply on a node; a cluster answers with one per primary, which are summed.
        let info = conn
            .run(|mut c| async move {
                let memory: redis::Value =
                    redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
                let clients: redis::Value = redis::cmd("INFO")
                    .arg("clients")
                    .query_async(&mut c)
                    .await?;
                Ok((info_texts(memory), info_texts(clients)))
            })
            .await
            .unwrap_or_default();
        let (memory, clients) = info;
        let memory_used_bytes = sum_field(&memory, "used_memory");
        ServerFigures {
            memory_used: match memory.as_slice() {
                [one] => info_field(one, "used_memory_human").map(str::to_owned),
                _ => memory_used_bytes.map(human_bytes),
            },
            memory_used_bytes,
            connected_clients: sum_field(&clients, "connected_clients"),
        }
    }
}

fn info_texts(reply: redis::Value) -> Vec<String> {
    match reply {
        redis::Value::BulkString(bytes) => vec![String::from_utf8_lossy(&bytes).into_owned()],
        redis::Value::VerbatimString { text, .. } | redis::Value::SimpleString(text) => vec![text],
        redis::Value::Map(per_node) => per_node
            .into_iter()
            .flat_map(|(_, reply)| info_texts(reply))
            .collect(),
        _ => Vec::new(),
    }
}

fn sum_field(texts: &[String], name: &str) -> Option<u64> {
    let values: Vec<u64> = texts
        .iter()
        .filter_map(|text| info_field(text, name)?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Like Redis's `used_memory_human`: 1024-based, two decimals.
fn human_bytes(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", units[unit])
    }
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        (field == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A document's keys, in the order Python will see them.
    fn keys_of(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .expect("a document is an object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn info_fields_are_read_by_exact_name() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n# Clients\r\nconnected_clients:3\r\n";
        assert_eq!(info_field(info, "used_memory"), Some("1048576"));
        assert_eq!(info_field(info, "used_memory_human"), Some("1.00M"));
        assert_eq!(info_field(info, "connected_clients"), Some("3"));
        assert_eq!(info_field(info, "used"), None);
        assert_eq!(info_field("", "used_memory"), None);
    }

    #[test]
    fn human_bytes_is_1024_based_like_redis() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.00M");
    }

    #[test]
    fn server_figures_appear_only_in_namespace_reports() {
        let node = NodeStatus {
            address: "rediss://cache:6380".into(),
            role: "primary",
            tls: None,
        };
        let mut stats = RedisStats {
            status: "connected",
            url: "rediss://cache:6380/0".into(),
            namespace: String::new(),
            tls: true,
            keys: Some(3),
            reconnects: 0,
            topology: "standalone",
            nodes: vec![node],
            consecutive_failures: 0,
            last_error: None,
            server: None,
        };
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            json!({
                "status": "connected", "url": "rediss://cache:6380/0", "namespace": "", "tls": true, "keys": 3,
                "reconnects": 0, "topology": "standalone",
                "nodes": [{"address": "rediss://cache:6380", "role": "primary"}],
                "consecutive_failures": 0, "last_error": null,
            })
        );
        stats.server = Some(ServerFigures {
            memory_used: Some("1.00M".into()),
            memory_used_bytes: None,
            connected_clients: Some(2),
        });
        let value = serde_json::to_value(&stats).unwrap();
        let keys = keys_of(&value);
        assert_eq!(
            keys[keys.len() - 3..],
            ["memory_used", "memory_used_bytes", "connected_clients"]
        );
        assert_eq!(value["memory_used_bytes"], json!(null));
    }

    #[test]
    fn security_status_has_the_session_inline_and_levels_in_capitals() {
        let status = ConnectionStatus {
            redis_url: "rediss://cache:6380/0".into(),
            connected: true,
            reconnects: 1,
            last_error: None,
            tls: Some(SessionStatus {
                tls_version: "TLSv1.3".into(),
                cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
                certificate: ServerCertificate {
                    server_certificate_subject: Some("CN=cache".into()),
                    server_certificate_days_until_expiry: Some(89),
                },
            }),
            topology: "standalone",
            nodes: Vec::new(),
        };
        let value = serde_json::to_value(&status).unwrap();
        let keys = keys_of(&value);
        assert_eq!(
            keys,
            [
                "redis_url",
                "connected",
                "reconnects",
                "last_error",
                "tls_version",
                "cipher_suite",
                "server_certificate_subject",
                "server_certificate_days_until_expiry",
                "topology",
                "nodes",
            ]
        );
        assert_eq!(
            serde_json::to_value(SecurityLevel::of(true)).unwrap(),
            json!("HIGH")
        );
        assert_eq!(
            serde_json::to_value(SecurityLevel::of(false)).unwrap(),
            json!("LOW")
        );
    }
}
