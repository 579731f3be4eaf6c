//! A live check: TLS handshake with the configured CA and host name, AUTH, and an encrypted
//! write, read and delete; records what was negotiated and how long a round trip takes.

use super::{CheckResult, Finding};
use crate::cache::{CacheOptions, GenericCache};
use crate::config::SecurityConfig;
use crate::environment::{DetectedEnvironment, Environment};
use std::time::Instant;

const CHECK: &str = "connectivity";
const DAY: i64 = 86_400;

pub async fn check_connectivity(
    url: &str,
    config: &SecurityConfig,
    insecure_override: bool,
    env: &DetectedEnvironment,
    now: i64,
) -> CheckResult {
    let mut result = CheckResult::default();
    let options = CacheOptions {
        enable_l1_cache: false,
        ..CacheOptions::default()
    };
    let cache = match GenericCache::new(url, options, config, insecure_override) {
        Ok(cache) => cache,
        Err(err) => {
            result.push(Finding::error(
                CHECK,
                err.message,
                "Correct the setting the message names, then run secure-redis check --connect again",
                "connectivity",
            ));
            return result;
        }
    };
    let result = check_live(&cache, env, now).await;
    cache.disconnect();
    result
}

/// Connects `cache` if needed and checks the live connection: TLS details, PING, and an
/// encrypted write/read/delete through the cache's own codec.
pub async fn check_live(cache: &GenericCache, env: &DetectedEnvironment, now: i64) -> CheckResult {
    let mut result = CheckResult::default();
    let started = Instant::now();
    match cache.connect().await {
        Err(err) => {
            result.push(Finding::error(
                CHECK,
                err.message,
                "Correct the setting the message names (REDIS_PASSWORD, REDIS_ACL_USERNAME, REDIS_TLS_CA_PATH, \
                 REDIS_TLS_CERT_PATH/KEY_PATH or the port in REDIS_URL), then run secure-redis check --connect",
                "troubleshooting",
            ));
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
                "Check the host and port in REDIS_URL, that redis-server listens on its tls-port, and firewalls",
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
            if let Some(not_after) = tls.server_not_after {
                let days = (not_after - now).div_euclid(DAY);
                result.info("server_certificate_days_until_expiry", days);
                let renew = "Renew the server certificate (scripts/init-redis-tls.sh --force) and restart Redis";
                if days < 7 && env.environment == Environment::Production {
                    result.push(Finding::error(
                        CHECK,
                        format!("The server certificate expires in {days} day(s); production requires at least 7."),
                        renew,
                        "certificate-expiry",
                    ));
                } else if days < 30 {
                    result.push(Finding::warning(
                        CHECK,
                        format!("The server certificate expires in {days} day(s)."),
                        renew,
                        "certificate-expiry",
                    ));
                }
            }
        }
        None => result.info("tls_version", "none (plaintext override)"),
    }

    let ping_started = Instant::now();
    let pong = cache.ping().await;
    result.info("round_trip_ms", round_ms(ping_started));
    if !pong {
        result.push(Finding::error(
            CHECK,
            "Redis did not answer PING after connecting.".into(),
            "Check the server's health and the ACL user's permissions (+ping)",
            "troubleshooting",
        ));
        return result;
    }
    match probe(cache).await {
        Ok(()) => result.info("encrypted_round_trip", "write, read and delete succeeded"),
        Err(why) => result.push(Finding::error(
            CHECK,
            format!("The encrypted write/read/delete round trip failed: {why}."),
            "Give the ACL user +@read +@write +@keyspace on the cache's keys (see the ACL example)",
            "acl-users",
        )),
    }
    result
}

fn round_ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

/// Writes a random value through the codec, reads it back, compares, deletes.
async fn probe(cache: &GenericCache) -> Result<(), String> {
    let key = format!("secure_redis:startup-check:{:016x}", rand::random::<u64>());
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
        .decode(&key, &stored, crate::codec::unix_now())
        .map_err(|e| format!("read: {}", e.describe()))?;
    if opened.json != nonce.as_bytes() {
        return Err("read: the value read back differs from the value written".into());
    }
    if deleted != 1 {
        return Err("delete: the probe key was not deleted".into());
    }
    Ok(())
}
