//! `SecurityConfig` made under the detected environment's policy (`policy`): the way every
//! public construction path (Python's `SecurityConfig(...)`, `from_env()`,
//! `create_for_environment()`, the caches built from a URL) makes one, so the rules the
//! validator reports are also the rules construction enforces.

use super::policy::{self, PlaintextOverride, Rule, RuleKind};
use super::{field_error, SecurityConfig, SecuritySettings};
use crate::env::Lookup;
use crate::environment::{self, DetectedEnvironment};
use crate::error::{Error, ErrorCode, Result};

impl SecurityConfig {
    /// Validates `settings` and applies the policy of `detected`: the plaintext override's
    /// production acknowledgement, password length and guessability, the minimum TLS version
    /// (an unset one becomes the environment's) and, when TLS is required, the trust roots.
    pub fn build(
        mut settings: SecuritySettings,
        detected: &DetectedEnvironment,
        plaintext: PlaintextOverride,
    ) -> Result<SecurityConfig> {
        let env = detected.environment;
        if let Some(rule) = policy::plaintext_override_rule(plaintext, env) {
            refuse(&rule, detected)?;
        }
        let version = policy::tls_version(settings.min_tls_version, env)
            .map_err(|rule| rule_error(&rule, detected))?;
        settings.min_tls_version = Some(version);
        if let Some(auth) = settings
            .redis_auth
            .as_ref()
            .filter(|a| !a.expose().trim().is_empty())
        {
            for rule in policy::password_rules(auth, settings.acl_username.as_deref(), env) {
                refuse(&rule, detected)?;
            }
        }
        if settings.use_tls {
            let rule = policy::trust_rule(
                settings.tls_ca_path.is_some(),
                settings.tls_trust_public_roots,
                env,
                None,
            );
            if let Some(rule) = rule {
                refuse(&rule, detected)?;
            }
        }
        let mut config = SecurityConfig::new(settings, plaintext.permits(env)).map_err(|err| {
            err.with("environment", env.as_str())
                .with("environment_signal", detected.signal.clone())
        })?;
        config.environment = env;
        Ok(config)
    }

    /// `settings` under the environment `lookup` describes (its name and the plaintext
    /// override): how Python's `SecurityConfig(...)` is made.
    pub fn with_policy(settings: SecuritySettings, lookup: Lookup<'_>) -> Result<SecurityConfig> {
        let detected = environment::detect(lookup);
        SecurityConfig::build(settings, &detected, PlaintextOverride::read(lookup))
    }

    /// The `REDIS_*` variables under the detected environment's policy, with the environment
    /// that was detected. Credentials always come from the environment; nothing is invented.
    pub fn for_environment(lookup: Lookup<'_>) -> Result<(SecurityConfig, DetectedEnvironment)> {
        let detected = environment::detect(lookup);
        let settings = Self::settings_from_env(lookup)?;
        let config = SecurityConfig::build(settings, &detected, PlaintextOverride::read(lookup))?;
        Ok((config, detected))
    }

    pub fn from_env(lookup: Lookup<'_>) -> Result<SecurityConfig> {
        Self::for_environment(lookup).map(|(config, _)| config)
    }

    /// The connection's side of the trust rule, once the topology is known: a CA is required
    /// for Sentinel and Cluster (and in production) unless the public roots were chosen.
    pub fn check_trust_for(&self, topology: &str) -> Result<()> {
        let rule = policy::trust_rule(
            self.tls_ca_path.is_some(),
            self.tls_trust_public_roots,
            self.environment,
            Some(topology),
        );
        match rule {
            Some(rule) if rule.is_refused() => Err(field_error(
                rule.field,
                format!("{} Fix: {}.", rule.message, rule.fix),
            )
            .with("environment", self.environment.as_str())
            .with("topology", topology.to_owned())
            .code(rule_code(rule.kind))),
            _ => Ok(()),
        }
    }
}

/// The error code each kind of rule is refused with.
pub fn rule_code(kind: RuleKind) -> ErrorCode {
    match kind {
        RuleKind::Password | RuleKind::TlsVersion => ErrorCode::EnvironmentPolicyViolation,
        RuleKind::PlaintextOverride => ErrorCode::PlaintextNotAcknowledged,
        RuleKind::TrustRoots => ErrorCode::TlsCaRequired,
    }
}

fn rule_error(rule: &Rule, detected: &DetectedEnvironment) -> Error {
    field_error(
        rule.field,
        format!("{} Fix: {}.", rule.message, rule.fix.trim_end_matches('.')),
    )
    .with("environment", detected.environment.as_str())
    .with("environment_signal", detected.signal.clone())
    .code(rule_code(rule.kind))
}

fn refuse(rule: &Rule, detected: &DetectedEnvironment) -> Result<()> {
    if rule.is_refused() {
        Err(rule_error(rule, detected))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsVersion;
    use crate::crypto::generate_encryption_key;
    use crate::env::from_pairs as env;
    use crate::environment::Environment;

    /// Any readable file passes the construction check; the PEM is read only when connecting.
    fn readable_file() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_owned()
    }

    const STRONG: &str = "k3J9x!vQ2mZp7Lr5Wt8yN4bH-Qe6Tz1Ua";

    #[test]
    fn environment_policy_applies_password_length_and_tls13() {
        let key = generate_encryption_key();
        let sixteen = "k3J9x!vQ2mZp7Lr5"; // 16
        let lookup = env(&[("REDIS_PASSWORD", sixteen), ("REDIS_ENCRYPTION_KEY", &key)]);
        let (config, detected) = SecurityConfig::for_environment(&lookup).unwrap();
        assert_eq!(detected.environment, Environment::Development);
        assert_eq!(config.min_tls_version, TlsVersion::V1_2);

        let ca = readable_file();
        let production = |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![
                ("ENVIRONMENT", "production"),
                ("REDIS_ENCRYPTION_KEY", key.as_str()),
                ("REDIS_TLS_CA_PATH", ca.as_str()),
            ];
            pairs.extend_from_slice(extra);
            SecurityConfig::for_environment(&env(&pairs))
        };
        let err = production(&[("REDIS_PASSWORD", sixteen)]).unwrap_err();
        assert_eq!(err.context["environment"], "production");
        assert!(err.message.contains("at least 32"));
        assert!(!err.to_string().contains(sixteen));

        let (config, _) = production(&[("REDIS_PASSWORD", STRONG)]).unwrap();
        assert_eq!(config.min_tls_version, TlsVersion::V1_3);
        assert_eq!(config.environment, Environment::Production);

        let err = production(&[("REDIS_PASSWORD", STRONG), ("REDIS_TLS_MIN_VERSION", "1.2")])
            .unwrap_err();
        assert_eq!(err.context["field"], "min_tls_version");
    }

    /// Issue 16: long but memorable passwords passed production; zxcvbn scores them 0 to 2.
    #[test]
    fn production_refuses_memorable_passwords_and_accepts_generated_ones() {
        let key = generate_encryption_key();
        let ca = readable_file();
        let production = |password: &str| {
            SecurityConfig::for_environment(&env(&[
                ("ENVIRONMENT", "production"),
                ("REDIS_PASSWORD", password),
                ("REDIS_ENCRYPTION_KEY", key.as_str()),
                ("REDIS_TLS_CA_PATH", ca.as_str()),
            ]))
        };
        for password in [
            "P@ssw0rd2024!P@ssw0rd2024!P@ssw0rd2024!".to_owned(),
            "0123456789".repeat(4),
            "abcdefghijklmnopqrstuvwxyz".repeat(2),
        ] {
            let err = production(&password).unwrap_err();
            assert_eq!(err.context["field"], "redis_auth", "{password}");
            assert!(!err.to_string().contains(&password));
        }
        let generated = crate::crypto::generate_secure_password(32).unwrap();
        assert!(production(&generated).is_ok());
    }

    #[test]
    fn environment_never_invents_a_password() {
        let key = generate_encryption_key();
        let lookup = env(&[("REDIS_ENCRYPTION_KEY", &key)]);
        let err = SecurityConfig::for_environment(&lookup).unwrap_err();
        assert_eq!(err.context["field"], "redis_auth");
    }

    /// Issue 14, item 3: a long but guessable password passed every construction path
    /// when the application did not call the validator.
    #[test]
    fn every_path_refuses_weak_passwords() {
        let key = generate_encryption_key();
        let weak = "a".repeat(54);
        let ca = readable_file();
        for environment in ["production", "development"] {
            let lookup = env(&[
                ("ENVIRONMENT", environment),
                ("REDIS_PASSWORD", &weak),
                ("REDIS_ENCRYPTION_KEY", &key),
                ("REDIS_TLS_CA_PATH", &ca),
            ]);
            let err = SecurityConfig::from_env(&lookup).unwrap_err();
            assert_eq!(err.context["field"], "redis_auth", "{environment}");
            assert!(err.message.contains("guessable"), "{}", err.message);
            assert!(!err.to_string().contains(&weak));
            let settings = SecuritySettings {
                redis_auth: Some(crate::crypto::Secret::new(weak.clone())),
                encryption_key: Some(crate::crypto::Secret::new(key.clone())),
                tls_ca_path: Some(ca.clone().into()),
                ..SecuritySettings::default()
            };
            let err = SecurityConfig::with_policy(settings, &lookup).unwrap_err();
            assert_eq!(
                err.error_code(),
                Some(ErrorCode::EnvironmentPolicyViolation)
            );
        }
    }

    /// Issue 14, item 3: `REDIS_INSECURE_ALLOW_PLAINTEXT=true` gave production a plaintext
    /// configuration.
    #[test]
    fn production_plaintext_needs_the_acknowledgement() {
        let key = generate_encryption_key();
        let lookup = |value: &str| {
            env(&[
                ("ENVIRONMENT", "production"),
                ("REDIS_PASSWORD", STRONG),
                ("REDIS_ENCRYPTION_KEY", &key),
                ("REDIS_INSECURE_ALLOW_PLAINTEXT", value),
            ])
        };
        let err = SecurityConfig::from_env(&lookup("true")).unwrap_err();
        assert_eq!(err.error_code(), Some(ErrorCode::PlaintextNotAcknowledged));
        assert!(err
            .message
            .contains("REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged"));
        let config = SecurityConfig::from_env(&lookup("production-acknowledged")).unwrap();
        assert!(!config.use_tls);
        // Outside production plain `true` keeps working.
        let dev = env(&[
            ("REDIS_PASSWORD", STRONG),
            ("REDIS_ENCRYPTION_KEY", &key),
            ("REDIS_INSECURE_ALLOW_PLAINTEXT", "true"),
        ]);
        assert!(!SecurityConfig::from_env(&dev).unwrap().use_tls);
    }

    /// Issue 14, item 2: without a CA, production silently trusted the public web roots.
    #[test]
    fn production_tls_needs_a_ca_or_the_public_roots_opt_in() {
        let key = generate_encryption_key();
        let mut pairs = vec![
            ("ENVIRONMENT", "production"),
            ("REDIS_PASSWORD", STRONG),
            ("REDIS_ENCRYPTION_KEY", key.as_str()),
        ];
        let err = SecurityConfig::from_env(&env(&pairs)).unwrap_err();
        assert_eq!(err.context["field"], "tls_ca_path");
        assert_eq!(err.error_code(), Some(ErrorCode::TlsCaRequired));
        pairs.push(("REDIS_TLS_TRUST_PUBLIC_ROOTS", "true"));
        let config = SecurityConfig::from_env(&env(&pairs)).unwrap();
        assert!(config.tls_trust_public_roots);
        // A single node outside production may still use the public roots...
        let dev = env(&[("REDIS_PASSWORD", STRONG), ("REDIS_ENCRYPTION_KEY", &key)]);
        let config = SecurityConfig::from_env(&dev).unwrap();
        assert!(config.check_trust_for("standalone").is_ok());
        // ...but hosts named by discovery may not.
        for topology in ["sentinel", "cluster"] {
            let err = config.check_trust_for(topology).unwrap_err();
            assert_eq!(err.error_code(), Some(ErrorCode::TlsCaRequired));
            assert_eq!(err.context["topology"], topology);
        }
    }
}
