//! The Redis URL: `rediss://` required; `redis://` only under the explicit override.

use super::{CheckResult, Finding};
use crate::connection::{redact_url, RedisTarget};
use crate::env::REDIS_INSECURE_ALLOW_PLAINTEXT;
use crate::environment::DetectedEnvironment;

const CHECK: &str = "url";
const EXAMPLE: &str = "REDIS_URL=rediss://redis.internal:6380/0";

pub fn check_url(
    url: Option<&str>,
    insecure_override: bool,
    env: &DetectedEnvironment,
) -> CheckResult {
    let mut result = CheckResult::default();
    let Some(raw) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        result.push(Finding::error(
            CHECK,
            "No Redis URL is configured.".into(),
            EXAMPLE,
            "redis-url",
        ));
        return result;
    };
    let shown = redact_url(raw);
    result.info("redis_url", shown.clone());
    let target = match RedisTarget::parse(raw, true) {
        Ok(target) => target,
        Err(err) => {
            result.push(Finding::error(CHECK, err.message, EXAMPLE, "redis-url"));
            return result;
        }
    };
    result.info("scheme", if target.tls { "rediss" } else { "redis" });
    result.info("host", target.host.clone());
    result.info("port", target.port);
    result.info("database", target.db);
    result.info("tls", target.tls);
    if !target.tls {
        if insecure_override {
            result.push(Finding::warning(
                CHECK,
                format!(
                    "INSECURE TRANSPORT: {shown} is plaintext and {REDIS_INSECURE_ALLOW_PLAINTEXT}=true allows it \
                     ({} environment). The AUTH password and every key name cross the network in clear; values \
                     stay Fernet-encrypted. This is only acceptable when the network itself is isolated (a private \
                     network or VPN, a service mesh with mTLS, firewall rules that admit only this service).",
                    env.environment
                ),
                "Use TLS: REDIS_URL=rediss://redis.internal:6380/0 and remove REDIS_INSECURE_ALLOW_PLAINTEXT.",
                "plaintext-override",
            ));
        } else {
            result.push(Finding::error(
                CHECK,
                format!(
                    "{shown} is a plaintext Redis URL; every environment requires TLS (rediss://)."
                ),
                "REDIS_URL=rediss://redis.internal:6380/0 (the server's tls-port), with REDIS_TLS_CA_PATH set \
                 to the CA that signed the server certificate.",
                "redis-url",
            ));
        }
    }
    if target.password.is_some() {
        result.info("credentials_in_url", true);
        result.push(Finding::warning(
            CHECK,
            format!("{shown} carries a password; URLs end up in logs, dashboards and process listings."),
            "Move it to REDIS_PASSWORD and use REDIS_URL=rediss://redis.internal:6380/0 without user info.",
            "authentication",
        ));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Environment;

    fn env(environment: Environment) -> DetectedEnvironment {
        DetectedEnvironment::fixed(environment)
    }

    #[test]
    fn tls_required_everywhere_override_downgrades_to_warning() {
        for e in [Environment::Development, Environment::Production] {
            let r = check_url(Some("redis://h:6379"), false, &env(e));
            assert!(!r.valid(), "{e}");
            let r = check_url(Some("redis://h:6379"), true, &env(e));
            assert!(r.valid());
            assert!(r.warnings()[0].contains("isolated"));
        }
        assert!(check_url(
            Some("rediss://h:6380/0"),
            false,
            &env(Environment::Production)
        )
        .valid());
        assert!(!check_url(None, false, &env(Environment::Development)).valid());
    }

    #[test]
    fn passwords_in_urls_are_flagged_and_hidden() {
        let r = check_url(
            Some("rediss://:hunter2hunter2@h:6380/0"),
            false,
            &env(Environment::Development),
        );
        assert!(r.valid());
        let text = format!("{r:?}");
        assert!(!text.contains("hunter2"));
        assert_eq!(r.warnings().len(), 1);
    }
}
