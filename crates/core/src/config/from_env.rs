//! `SecurityConfig` from `REDIS_*` environment variables (through `env`, the one reader),
//! with no per-environment policy: a value that does not parse names its variable, and no
//! message repeats the value (a password pasted into the wrong variable would be printed).

use super::{SecurityConfig, SecuritySettings, TlsVersion};
use crate::crypto::Secret;
use crate::env::{self, insecure_override, non_empty, Lookup};
use crate::error::{Error, ErrorCode, Result};
use std::path::PathBuf;

impl SecurityConfig {
    /// Reads the settings from environment variables (through `lookup`) without applying any
    /// per-environment policy.
    pub fn settings_from_env(lookup: Lookup<'_>) -> Result<SecuritySettings> {
        let get = |name: &str| non_empty(lookup, name);
        let mut settings = SecuritySettings {
            redis_auth: env::redis_password(lookup).map(Secret::new),
            encryption_key: get(env::REDIS_ENCRYPTION_KEY).map(Secret::new),
            acl_username: get(env::REDIS_ACL_USERNAME).map(|u| u.trim().to_owned()),
            tls_ca_path: get(env::REDIS_TLS_CA_PATH).map(PathBuf::from),
            tls_cert_path: get(env::REDIS_TLS_CERT_PATH).map(PathBuf::from),
            tls_key_path: get(env::REDIS_TLS_KEY_PATH).map(PathBuf::from),
            tls_trust_public_roots: env::trust_public_roots(lookup),
            ..SecuritySettings::default()
        };
        if let Some(version) = get(env::REDIS_TLS_MIN_VERSION) {
            settings.min_tls_version = Some(
                TlsVersion::parse(&version)
                    .map_err(|err| err.with("variable", env::REDIS_TLS_MIN_VERSION))?,
            );
        }
        let number = |name: &str| -> Result<Option<f64>> {
            match get(name) {
                None => Ok(None),
                Some(raw) => raw.trim().parse::<f64>().map(Some).map_err(|_| {
                    Error::configuration(format!(
                        "{name} must be a number; its value ({} characters) is not one.",
                        raw.trim().chars().count()
                    ))
                    .with("variable", name)
                    .code(ErrorCode::InvalidEnvironmentValue)
                }),
            }
        };
        if let Some(value) = number(env::REDIS_CONNECTION_TIMEOUT)? {
            settings.connection_timeout = value;
        }
        if let Some(value) = number(env::REDIS_SOCKET_TIMEOUT)? {
            settings.socket_timeout = value;
        }
        if let Some(value) = number(env::REDIS_RETRY_DELAY)? {
            settings.retry_delay = value;
        }
        if let Some(value) = number(env::REDIS_MAX_RETRIES)? {
            if value.fract() != 0.0 {
                return Err(Error::configuration(format!(
                    "{} must be a whole number; its value is not.",
                    env::REDIS_MAX_RETRIES
                ))
                .with("variable", env::REDIS_MAX_RETRIES)
                .code(ErrorCode::InvalidEnvironmentValue));
            }
            settings.max_retries = value as i64;
        }
        // `use_tls` means "TLS is required". Under the plaintext override it defaults to off, so
        // the override alone is enough to allow a redis:// URL; a rediss:// URL still uses TLS.
        settings.use_tls = match get(env::REDIS_USE_TLS) {
            Some(use_tls) => !matches!(
                use_tls.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            ),
            None => !insecure_override(lookup),
        };
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::from_pairs as env;

    #[test]
    fn invalid_environment_values_are_reported() {
        let lookup = env(&[("REDIS_CONNECTION_TIMEOUT", "soon")]);
        let err = SecurityConfig::settings_from_env(&lookup).unwrap_err();
        assert_eq!(err.context["variable"], "REDIS_CONNECTION_TIMEOUT");
        let lookup = env(&[("REDIS_TLS_MIN_VERSION", "1.1")]);
        assert!(SecurityConfig::settings_from_env(&lookup).is_err());
        let lookup = env(&[("REDIS_TLS_TRUST_PUBLIC_ROOTS", "yes")]);
        assert!(
            SecurityConfig::settings_from_env(&lookup)
                .unwrap()
                .tls_trust_public_roots
        );
    }

    /// Issue 14, item 8: a password pasted into the wrong variable was printed by the error.
    #[test]
    fn errors_never_repeat_a_value() {
        let secret = "Pasted-Secret-0f9a8b7c6d5e4f3a2b1c";
        for name in [
            env::REDIS_CONNECTION_TIMEOUT,
            env::REDIS_SOCKET_TIMEOUT,
            env::REDIS_RETRY_DELAY,
            env::REDIS_MAX_RETRIES,
            env::REDIS_TLS_MIN_VERSION,
        ] {
            let lookup = env(&[(name, secret)]);
            let err = SecurityConfig::settings_from_env(&lookup).unwrap_err();
            assert_eq!(err.context["variable"], name);
            assert!(!err.to_string().contains(secret), "{name}: {err}");
        }
        let lookup = env(&[
            ("REDIS_AUTH", "via-alias"),
            ("REDIS_TLS_MIN_VERSION", "TLSv1.3"),
        ]);
        let settings = SecurityConfig::settings_from_env(&lookup).unwrap();
        assert_eq!(settings.redis_auth.unwrap().expose(), "via-alias");
        assert_eq!(settings.min_tls_version, Some(TlsVersion::V1_3));
    }
}
