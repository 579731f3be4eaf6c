//! The per-environment policy over `SecurityConfig::from_env`: production needs a password of
//! at least 32 characters and TLS 1.3, staging 24 and TLS 1.2+, development and testing 16.

use super::{field_error, SecurityConfig, TlsVersion};
use crate::env::{self, insecure_override, non_empty, Lookup};
use crate::environment::{self, DetectedEnvironment, Environment};
use crate::error::{Error, ErrorCode, Result};

impl SecurityConfig {
    /// `from_env` plus the detected environment's policy: production needs a password of at
    /// least 32 characters and TLS 1.3, staging 24 and TLS 1.2+, development and testing 16.
    /// Credentials always come from the environment; nothing is invented.
    pub fn for_environment(lookup: Lookup<'_>) -> Result<(SecurityConfig, DetectedEnvironment)> {
        let detected = environment::detect(lookup);
        let mut settings = Self::settings_from_env(lookup)?;
        let env = detected.environment;
        if env == Environment::Production {
            let explicit = non_empty(lookup, env::REDIS_TLS_MIN_VERSION);
            if explicit.is_some() && settings.min_tls_version < TlsVersion::V1_3 {
                return Err(policy_error(
                    &detected,
                    "min_tls_version",
                    "production requires TLS 1.3: set REDIS_TLS_MIN_VERSION=1.3 (or unset it) and enable \
                     TLSv1.3 on the server (tls-protocols \"TLSv1.3\")."
                        .into(),
                ));
            }
            settings.min_tls_version = TlsVersion::V1_3;
        }
        if let Some(auth) = &settings.redis_auth {
            let minimum = env.min_password_length();
            if auth.len() < minimum {
                return Err(policy_error(
                    &detected,
                    "redis_auth",
                    format!(
                        "REDIS_PASSWORD is {} characters long; the {env} environment requires at least {minimum}. \
                         Generate one with secure_redis.generate_secure_password({}) and set it on the server too.",
                        auth.len(),
                        minimum.max(32)
                    ),
                ));
            }
        }
        let config = SecurityConfig::new(settings, insecure_override(lookup)).map_err(|err| {
            err.with("environment", env.as_str())
                .with("environment_signal", detected.signal.clone())
        })?;
        Ok((config, detected))
    }
}

fn policy_error(detected: &DetectedEnvironment, field: &str, message: String) -> Error {
    field_error(field, message)
        .with("environment", detected.environment.as_str())
        .with("environment_signal", detected.signal.clone())
        .code(ErrorCode::EnvironmentPolicyViolation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::generate_encryption_key;
    use crate::env::from_pairs as env;

    #[test]
    fn environment_policy_applies_password_length_and_tls13() {
        let key = generate_encryption_key();
        let short = "sixteen-chars-ok"; // 16
        let lookup = env(&[("REDIS_PASSWORD", short), ("REDIS_ENCRYPTION_KEY", &key)]);
        let (config, detected) = SecurityConfig::for_environment(&lookup).unwrap();
        assert_eq!(detected.environment, Environment::Development);
        assert_eq!(config.min_tls_version, TlsVersion::V1_2);

        let lookup = env(&[
            ("ENVIRONMENT", "production"),
            ("REDIS_PASSWORD", short),
            ("REDIS_ENCRYPTION_KEY", &key),
        ]);
        let err = SecurityConfig::for_environment(&lookup).unwrap_err();
        assert_eq!(err.context["environment"], "production");
        assert!(err.message.contains("at least 32"));
        assert!(!err.to_string().contains(short));

        let long = "x".repeat(12) + "Yz0-long-password-for-prod!!";
        let lookup = env(&[
            ("ENVIRONMENT", "prod"),
            ("REDIS_PASSWORD", &long),
            ("REDIS_ENCRYPTION_KEY", &key),
        ]);
        let (config, _) = SecurityConfig::for_environment(&lookup).unwrap();
        assert_eq!(config.min_tls_version, TlsVersion::V1_3);

        let lookup = env(&[
            ("ENVIRONMENT", "prod"),
            ("REDIS_PASSWORD", &long),
            ("REDIS_ENCRYPTION_KEY", &key),
            ("REDIS_TLS_MIN_VERSION", "1.2"),
        ]);
        let err = SecurityConfig::for_environment(&lookup).unwrap_err();
        assert_eq!(err.context["field"], "min_tls_version");
    }

    #[test]
    fn environment_never_invents_a_password() {
        let key = generate_encryption_key();
        let lookup = env(&[("REDIS_ENCRYPTION_KEY", &key)]);
        let err = SecurityConfig::for_environment(&lookup).unwrap_err();
        assert_eq!(err.context["field"], "redis_auth");
    }
}
