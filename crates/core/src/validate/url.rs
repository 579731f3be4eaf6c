//! The Redis URL: `rediss://` required; `redis://` only under the explicit override, which
//! production accepts only as `production-acknowledged` (`config::policy`).

use super::{CheckResult, Finding};
use crate::config::policy::{plaintext_override_rule, PlaintextOverride};
use crate::connection::{redact_url, RedisTarget};
use crate::env::REDIS_INSECURE_ALLOW_PLAINTEXT;
use crate::environment::DetectedEnvironment;

const CHECK: &str = "url";
const EXAMPLE: &str = "REDIS_URL=rediss://redis.internal:6380/0";

pub fn check_url(
    url: Option<&str>,
    plaintext: PlaintextOverride,
    env: &DetectedEnvironment,
) -> CheckResult {
    let mut result = CheckResult::default();
    // Plain `true` in production is an error even with a rediss:// URL: construction refuses
    // it, whatever the URL.
    if let Some(rule) = plaintext_override_rule(plaintext, env.environment) {
        result.push(Finding::from_rule(CHECK, &rule));
    }
    let insecure_override = plaintext.permits(env.environment);
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
                    "INSECURE TRANSPORT: {shown} is plaintext and {REDIS_INSECURE_ALLOW_PLAINTEXT} allows it \
                     ({} environment). The AUTH password and every key name cross the network in clear; values \
                     stay Fernet-encrypted. This is only acceptable when the network itself is isolated (a private \
                     network or VPN, a service mesh with mTLS, firewall rules that admit only this service).",
                    env.environment
                ),
                "Use TLS: REDIS_URL=rediss://redis.internal:6380/0 and remove REDIS_INSECURE_ALLOW_PLAINTEXT.",
                "plaintext-override",
            ));
        } else if !plaintext.is_set() {
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
        use PlaintextOverride::{Off, On, ProductionAcknowledged};
        for e in [Environment::Development, Environment::Production] {
            let r = check_url(Some("redis://h:6379"), Off, &env(e));
            assert!(!r.valid(), "{e}");
            let r = check_url(Some("redis://h:6379"), ProductionAcknowledged, &env(e));
            assert!(r.valid());
            assert!(r.warnings().iter().any(|w| w.contains("isolated")));
        }
        let r = check_url(Some("redis://h:6379"), On, &env(Environment::Development));
        assert!(r.valid());
        assert!(check_url(
            Some("rediss://h:6380/0"),
            Off,
            &env(Environment::Production)
        )
        .valid());
        assert!(!check_url(None, Off, &env(Environment::Development)).valid());
    }

    /// Issue 14, item 3: `true` in production gave a passing validation.
    #[test]
    fn production_override_needs_the_acknowledgement() {
        let production = env(Environment::Production);
        for url in ["redis://h:6379", "rediss://h:6380/0"] {
            let r = check_url(Some(url), PlaintextOverride::On, &production);
            assert!(!r.valid(), "{url}");
            assert!(r.errors()[0].contains("production-acknowledged"));
        }
        let r = check_url(
            Some("redis://h:6379"),
            PlaintextOverride::ProductionAcknowledged,
            &production,
        );
        assert!(r.valid());
        assert!(r
            .warnings()
            .iter()
            .any(|w| w.contains("PRODUCTION WITHOUT TLS")));
    }

    #[test]
    fn passwords_in_urls_are_flagged_and_hidden() {
        let r = check_url(
            Some("rediss://:hunter2hunter2@h:6380/0"),
            PlaintextOverride::Off,
            &env(Environment::Development),
        );
        assert!(r.valid());
        let text = format!("{r:?}");
        assert!(!text.contains("hunter2"));
        assert_eq!(r.warnings().len(), 1);
    }
}
