//! A live check: TLS handshake with the configured CA and host name, AUTH, and an encrypted
//! write, read and delete; records what was negotiated and how long a round trip takes.

use super::{CheckResult, Finding};
use crate::cache::{CacheOptions, GenericRedisCache};
use crate::clock::{days_until, unix_now};
use crate::config::SecurityConfig;
use crate::connection::TopologySpec;
use crate::environment::{DetectedEnvironment, Environment};
use crate::error::{Error, ErrorCode};
use std::time::Instant;

const CHECK: &str = "connectivity";
const URL_EXAMPLE: &str = "REDIS_URL=rediss://redis.internal:6380/0";
const AGAIN: &str = "then run secure-redis check --connect again";

/// The setting to change for a refused connection, with an example value. The connection
/// layer classifies failures by `ErrorCode` and explains TLS failures in its message, so
/// both are read here.
fn connect_fix(err: &Error) -> String {
    let message = err.message.as_str();
    let fix = match err.error_code() {
        Some(ErrorCode::AuthenticationFailed) => {
            "REDIS_PASSWORD=<the server's requirepass value, e.g. from /run/secrets/redis_password>, and \
             REDIS_ACL_USERNAME=cache-service when the server uses an ACL user"
                .to_owned()
        }
        Some(ErrorCode::PlaintextServer) => format!(
            "{URL_EXAMPLE} with the server's tls-port (not its plaintext port 6379)"
        ),
        Some(ErrorCode::TlsHandshakeFailed) if message.contains("not signed by the configured CA") => {
            "REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt (the CA that issued the server's certificate)".to_owned()
        }
        Some(ErrorCode::TlsHandshakeFailed) if message.contains("not valid for the host") => format!(
            "{URL_EXAMPLE} using a host name listed in the server certificate's subjectAltName, or reissue \
             the server certificate for the host now in REDIS_URL"
        ),
        Some(ErrorCode::TlsHandshakeFailed) if message.contains("expired") || message.contains("not valid yet") => {
            "Renew the server certificate (scripts/init-redis-tls.sh --force) and restart Redis; keep \
             REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt pointing at the CA that signs it"
                .to_owned()
        }
        Some(ErrorCode::TlsHandshakeFailed) if message.contains("share no TLS version") => {
            "REDIS_TLS_MIN_VERSION=1.3 with tls-protocols \"TLSv1.3\" on the server (1.2 only outside production)"
                .to_owned()
        }
        Some(ErrorCode::TlsHandshakeFailed) if message.contains("did not answer with TLS") => {
            format!("{URL_EXAMPLE} with the server's tls-port")
        }
        Some(ErrorCode::TlsHandshakeFailed | ErrorCode::ConnectionSetupFailed) => {
            "REDIS_TLS_CERT_PATH=/etc/redis/tls/client.crt and REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key \
             when the server requires client certificates (tls-auth-clients yes), and \
             REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt"
                .to_owned()
        }
        Some(ErrorCode::InvalidTlsMaterial) => {
            let variable = match err.context.get("field").and_then(|v| v.as_str()) {
                Some("tls_cert_path") => "REDIS_TLS_CERT_PATH=/etc/redis/tls/client.crt",
                Some("tls_key_path") => "REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key",
                _ => "REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt",
            };
            format!("{variable} (a readable PEM file)")
        }
        _ => format!(
            "{URL_EXAMPLE}, REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt and REDIS_PASSWORD=<the server's password>, \
             matching the server"
        ),
    };
    format!("{fix}; {AGAIN}")
}

pub async fn check_connectivity(
    url: &str,
    config: &SecurityConfig,
    insecure_override: bool,
    topology: &TopologySpec,
    env: &DetectedEnvironment,
    now: u64,
) -> CheckResult {
    let mut result = CheckResult::default();
    let options = CacheOptions {
        enable_l1_cache: false,
        ..CacheOptions::default()
    };
    let cache =
        match GenericRedisCache::with_topology(url, options, config, insecure_override, topology) {
            Ok(cache) => cache,
            Err(err) => {
                let fix = connect_fix(&err);
                result.push(Finding::error(CHECK, err.message, &fix, "connectivity"));
                return result;
            }
        };
    let result = check_live(&cache, env, now).await;
    cache.disconnect();
    result
}

/// Connects `cache` if needed and checks the live connection: TLS details, PING, and an
/// encrypted write/read/delete through the cache's own codec.
pub async fn check_live(
    cache: &GenericRedisCache,
    env: &DetectedEnvironment,
    now: u64,
) -> CheckResult {
    let mut result = CheckResult::default();
    let started = Instant::now();
    match cache.connect().await {
        Err(err) => {
            let fix = connect_fix(&err);
            result.push(Finding::error(CHECK, err.message, &fix, "troubleshooting"));
            return result;
        }
        Ok(false) => {
            let why = cache
                .connection_state()
                .last_error
                .unwrap_or_else(|| "no answer".into());
            result.push(Finding::error(
                CHECK,
                format!("Redis is unreachable: {why}."),
                &format!(
                    "{URL_EXAMPLE} naming the host and tls-port redis-server listens on (check firewalls too); {AGAIN}"
                ),
                "troubleshooting",
            ));
            return result;
        }
        Ok(true) => {}
    }
    result.info("connect_ms", round_ms(started));
    let state = cache.connection_state();
    match &state.tls {
        Some(tls) => {
            result.info("tls_version", tls.protocol.clone());
            result.info("cipher_suite", tls.cipher_suite.clone());
            if let Some(subject) = &tls.server_subject {
                result.info("server_certificate_subject", subject.clone());
            }
        }
        None => result.info("tls_version", "none (plaintext override)"),
    }
    // Every node of the deployment (each cluster primary and replica; the primary, replicas
    // and sentinels behind Sentinel): its TLS version and certificate expiry, each checked
    // like a single server's, and any node that refuses us or cannot be reached.
    result.info("topology", state.topology);
    let surveyed = cache.connection().survey().await;
    let named = surveyed.len() > 1;
    let mut nodes = Vec::with_capacity(surveyed.len());
    for node in &surveyed {
        let mut entry = serde_json::Map::new();
        entry.insert("address".into(), node.address.clone().into());
        entry.insert("role".into(), node.role.into());
        if let Some(tls) = &node.tls {
            entry.insert("tls_version".into(), tls.protocol.clone().into());
            if let Some(not_after) = tls.server_not_after {
                let days = days_until(not_after, now);
                entry.insert("server_certificate_days_until_expiry".into(), days.into());
                expiry_finding(&mut result, env, days, &node.address, named);
            }
        }
        if let Some(failure) = &node.error {
            entry.insert("error".into(), failure.message().into());
            let (message, fix) = match failure {
                crate::connection::Failure::Rejected(err) => (err.message.clone(), connect_fix(err)),
                other => (
                    format!("{} {} is unreachable: {}.", node.role, node.address, other.message()),
                    format!(
                        "Start it or remove it from the deployment (for a cluster: CLUSTER FORGET; for \
                         Sentinel: SENTINEL RESET <name>); {AGAIN}"
                    ),
                ),
            };
            result.push(Finding::error(CHECK, message, &fix, "troubleshooting"));
        }
        nodes.push(serde_json::Value::Object(entry));
    }
    result.info("nodes", nodes);
    if let Some(not_after) = state.tls.as_ref().and_then(|tls| tls.server_not_after) {
        result.info(
            "server_certificate_days_until_expiry",
            days_until(not_after, now),
        );
    }

    let ping_started = Instant::now();
    let pong = cache.ping().await;
    result.info("round_trip_ms", round_ms(ping_started));
    if !pong {
        result.push(Finding::error(
            CHECK,
            "Redis did not answer PING after connecting.".into(),
            "Check the server's health and that the ACL user may run PING (ACL SETUSER cache-service +ping), or \
             set REDIS_ACL_USERNAME=cache-service to a user that may",
            "troubleshooting",
        ));
        return result;
    }
    match probe(cache).await {
        Ok(()) => result.info("encrypted_round_trip", "write, read and delete succeeded"),
        Err(why) => result.push(Finding::error(
            CHECK,
            format!("The encrypted write/read/delete round trip failed: {why}."),
            "Give the ACL user +@read +@write +@keyspace on the cache's keys (see the ACL example), or set \
             REDIS_ACL_USERNAME=cache-service to a user that has them",
            "acl-users",
        )),
    }
    result
}

/// A server certificate close to expiry: an error in production within 7 days, else a
/// warning within 30. `named` puts the node's address in the message.
fn expiry_finding(
    result: &mut CheckResult,
    env: &DetectedEnvironment,
    days: i64,
    address: &str,
    named: bool,
) {
    let whose = if named {
        format!("The server certificate of {address}")
    } else {
        "The server certificate".to_owned()
    };
    let renew = "Renew the server certificate (scripts/init-redis-tls.sh --renew, tls-cert-file on the \
                 server) and restart Redis; keep REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt pointing at \
                 the CA that signs it";
    if days < 7 && env.environment == Environment::Production {
        result.push(Finding::error(
            CHECK,
            format!("{whose} expires in {days} day(s); production requires at least 7."),
            renew,
            "certificate-expiry",
        ));
    } else if days < 30 {
        result.push(Finding::warning(
            CHECK,
            format!("{whose} expires in {days} day(s)."),
            renew,
            "certificate-expiry",
        ));
    }
}

fn round_ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

/// Writes a random value through the codec, reads it back, compares, deletes. Inside the
/// cache's namespace, where an ACL user limited to it may write.
async fn probe(cache: &GenericRedisCache) -> Result<(), String> {
    let probe = format!("secure_redis:startup-check:{:016x}", rand::random::<u64>());
    let key = cache.namespace().name(&probe).into_owned();
    let nonce = format!("{{\"probe\":\"{:032x}\"}}", rand::random::<u128>());
    let (token, _) = cache
        .codec()
        .encode(&key, nonce.as_bytes(), 30)
        .map_err(|e| e.message)?;
    let conn = cache.connection();
    let k = key.clone();
    conn.run(|mut c| async move {
        redis::cmd("SET")
            .arg(&k)
            .arg(token)
            .arg("EX")
            .arg(30)
            .query_async::<()>(&mut c)
            .await
    })
    .await
    .map_err(|f| format!("write: {}", f.message()))?;
    let k = key.clone();
    let stored: Option<Vec<u8>> = conn
        .run(|mut c| async move { redis::cmd("GET").arg(&k).query_async(&mut c).await })
        .await
        .map_err(|f| format!("read: {}", f.message()))?;
    let k = key.clone();
    let deleted = conn
        .run(|mut c| async move { redis::cmd("DEL").arg(&k).query_async::<i64>(&mut c).await })
        .await
        .map_err(|f| format!("delete: {}", f.message()))?;
    let stored = stored.ok_or("read: the value written a moment ago is missing")?;
    let opened = cache
        .codec()
        .decode(&key, &stored, unix_now())
        .map_err(|e| format!("read: {}", e.describe()))?;
    if opened.json != nonce.as_bytes() {
        return Err("read: the value read back differs from the value written".into());
    }
    if deleted != 1 {
        return Err("delete: the probe key was not deleted".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_names_the_variable_to_change() {
        let cases = [
            (
                "authentication_failed",
                "rejected the credentials",
                "REDIS_PASSWORD=",
            ),
            (
                "plaintext_server",
                "is a plaintext Redis port",
                "REDIS_URL=rediss://",
            ),
            (
                "tls_handshake_failed",
                "is not signed by the configured CA",
                "REDIS_TLS_CA_PATH=",
            ),
            (
                "tls_handshake_failed",
                "is not valid for the host in the URL",
                "REDIS_URL=rediss://",
            ),
            (
                "tls_handshake_failed",
                "has expired. Renew it",
                "REDIS_TLS_CA_PATH=",
            ),
            (
                "tls_handshake_failed",
                "share no TLS version",
                "REDIS_TLS_MIN_VERSION=",
            ),
            (
                "tls_handshake_failed",
                "did not answer with TLS",
                "REDIS_URL=rediss://",
            ),
            (
                "tls_handshake_failed",
                "refused the TLS handshake",
                "REDIS_TLS_CERT_PATH=",
            ),
            (
                "connection_setup_failed",
                "closed the connection",
                "REDIS_TLS_KEY_PATH=",
            ),
            (
                "invalid_tls_material",
                "tls_ca_path: unreadable",
                "REDIS_TLS_CA_PATH=",
            ),
            ("something_new", "anything", "REDIS_URL=rediss://"),
        ];
        for (error_type, message, expected) in cases {
            // A code connect_fix has no case for (or none at all) gets the general fix.
            let err = Error::configuration(message);
            let err = match ErrorCode::parse(error_type) {
                Some(code) => err.code(code),
                None => err,
            };
            let fix = connect_fix(&err);
            assert!(fix.contains(expected), "{error_type}/{message}: {fix}");
        }
        let key = Error::configuration("tls_key_path x: bad")
            .with("field", "tls_key_path")
            .code(ErrorCode::InvalidTlsMaterial);
        assert!(connect_fix(&key).contains("REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key"));
    }
}
