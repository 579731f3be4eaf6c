//! `SecurityConfig`: everything needed to reach Redis securely, validated at construction so
//! that a configuration which would be insecure or cannot work fails at startup, naming the
//! field and the fix. Loading from the environment lives in `from_env`, the security policy
//! in `policy`, construction under the detected environment's policy in `construct`, and the
//! replaced layer's arguments that are not settings of ours in `replaced`.
//!
//! No message here repeats a configured value: a password pasted into the wrong variable or
//! field would be printed. Messages name the field and say what is wrong with its value.

use crate::crypto::{Keyring, Secret};
use crate::env::REDIS_INSECURE_ALLOW_PLAINTEXT;
use crate::environment::Environment;
use crate::error::{Error, ErrorCode, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod construct;
mod from_env;
pub mod policy;
mod replaced;

pub use construct::rule_code;
pub use policy::{PlaintextOverride, PRODUCTION_ACKNOWLEDGED};
pub use replaced::{ReplacedArguments, CIPHER_SUITES_REFUSED, VERIFY_CERTIFICATES_REFUSED};

/// "HIGH" over TLS (AUTH and encryption are always on), "LOW" under the plaintext override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SecurityLevel {
    High,
    Low,
}

impl SecurityLevel {
    pub fn of(tls: bool) -> SecurityLevel {
        if tls {
            SecurityLevel::High
        } else {
            SecurityLevel::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SecurityLevel::High => "HIGH",
            SecurityLevel::Low => "LOW",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn parse(value: &str) -> Result<TlsVersion> {
        match value
            .trim()
            .trim_start_matches("TLSv")
            .trim_start_matches("tls")
        {
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            _ => Err(Error::configuration(format!(
                "min_tls_version must be \"1.2\" or \"1.3\"; the value given ({} characters) is neither.",
                value.chars().count()
            ))
            .with("field", "min_tls_version")
            .code(ErrorCode::InvalidTlsVersion)),
        }
    }

    /// An `ssl.TLSVersion` value, as the replaced layer took it: 771 is TLS 1.2, 772 TLS 1.3.
    /// Older versions (768 to 770) and the `MINIMUM_SUPPORTED`/`MAXIMUM_SUPPORTED` markers are
    /// refused.
    pub fn from_ssl_value(value: i64) -> Result<TlsVersion> {
        match value {
            771 => Ok(TlsVersion::V1_2),
            772 => Ok(TlsVersion::V1_3),
            _ => {
                let why = if (768..=770).contains(&value) {
                    "SSL 3.0, TLS 1.0 and TLS 1.1 are not supported (they are broken or deprecated)"
                } else {
                    "it is not the number of a TLS version"
                };
                Err(Error::configuration(format!(
                    "min_tls_version must be \"1.2\" or \"1.3\" (ssl.TLSVersion.TLSv1_2 = 771, \
                     TLSv1_3 = 772); {value} is refused: {why}."
                ))
                .with("field", "min_tls_version")
                .code(ErrorCode::InvalidTlsVersion))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// Raw settings as a caller provides them; `SecurityConfig::new` validates them.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub redis_auth: Option<Secret>,
    pub encryption_key: Option<Secret>,
    pub use_tls: bool,
    pub tls_ca_path: Option<PathBuf>,
    pub tls_cert_path: Option<PathBuf>,
    pub tls_key_path: Option<PathBuf>,
    pub acl_username: Option<String>,
    /// `None`: the environment's minimum (1.3 in production, 1.2 elsewhere).
    pub min_tls_version: Option<TlsVersion>,
    /// With no `tls_ca_path`, verify the server against the public web roots even where a CA
    /// is otherwise required (production, Sentinel, Cluster): for managed services.
    pub tls_trust_public_roots: bool,
    pub connection_timeout: f64,
    pub socket_timeout: f64,
    pub max_retries: i64,
    pub retry_delay: f64,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            redis_auth: None,
            encryption_key: None,
            use_tls: true,
            tls_ca_path: None,
            tls_cert_path: None,
            tls_key_path: None,
            acl_username: None,
            min_tls_version: None,
            tls_trust_public_roots: false,
            connection_timeout: 5.0,
            socket_timeout: 2.0,
            max_retries: 3,
            retry_delay: 0.1,
        }
    }
}

#[derive(Clone)]
pub struct SecurityConfig {
    pub redis_auth: Secret,
    pub encryption_key: Secret,
    pub keyring: Arc<Keyring>,
    pub use_tls: bool,
    pub tls_ca_path: Option<PathBuf>,
    pub tls_cert_path: Option<PathBuf>,
    pub tls_key_path: Option<PathBuf>,
    pub acl_username: Option<String>,
    pub min_tls_version: TlsVersion,
    pub tls_trust_public_roots: bool,
    /// The environment whose policy the config was made under (`build`); `new` alone applies
    /// none and records development.
    pub environment: Environment,
    pub connection_timeout: Duration,
    pub socket_timeout: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn field_error(field: &str, message: String) -> Error {
    Error::configuration(message)
        .with("field", field)
        .code(ErrorCode::InvalidSecurityConfig)
}

fn check_readable(field: &str, path: &Path) -> Result<()> {
    use std::io::Read;
    // Opening is not enough: a directory opens fine and only fails when read. An io::Error
    // from opening or reading carries the OS reason, never the path.
    match std::fs::File::open(path).and_then(|mut file| file.read(&mut [0u8; 1])) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(field_error(
            field,
            format!(
                "{field}: file not found at the path given ({}). Point it at an existing PEM file (see \
                 scripts/init-redis-tls.sh).",
                describe_path(path)
            ),
        )),
        Err(err) => Err(field_error(
            field,
            format!(
                "{field}: cannot read the file at the path given ({}): {}. Check the path and the file's \
                 permissions.",
                describe_path(path),
                err
            ),
        )),
    }
}

/// What a path looks like, without the path: a password pasted into a path variable must
/// not be printed by the error that says the file does not exist.
pub(crate) fn describe_path(path: &Path) -> String {
    format!(
        "{} path of {} characters",
        if path.is_absolute() {
            "an absolute"
        } else {
            "a relative"
        },
        path.as_os_str().len()
    )
}

fn check_timeout(field: &str, seconds: f64) -> Result<Duration> {
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 3600.0 {
        return Err(field_error(
            field,
            format!("{field} must be a positive number of seconds, at most 3600; the value given is not."),
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl SecurityConfig {
    /// Validates `settings` without any environment policy (see `build` for that, which every
    /// public construction path uses). `insecure_override` says whether the plaintext override
    /// permits `use_tls=false` (`PlaintextOverride::permits`).
    pub fn new(settings: SecuritySettings, insecure_override: bool) -> Result<SecurityConfig> {
        let redis_auth = match settings.redis_auth {
            Some(auth) if !auth.expose().trim().is_empty() => auth,
            _ => return Err(field_error(
                "redis_auth",
                "redis_auth is required: Redis must authenticate every client. Set REDIS_PASSWORD \
                     (and REDIS_ACL_USERNAME for an ACL user) to the password the server expects; \
                     generate one with secure_redis.generate_secure_password(32)."
                    .into(),
            )),
        };
        let encryption_key = match settings.encryption_key {
            Some(key) if !key.expose().trim().is_empty() => key,
            _ => {
                return Err(field_error(
                    "encryption_key",
                    "encryption_key is required: every cached value is Fernet-encrypted. Set REDIS_ENCRYPTION_KEY; \
                     generate one with secure_redis.generate_encryption_key()."
                        .into(),
                )
                .code(ErrorCode::InvalidEncryptionKey))
            }
        };
        let keyring = Arc::new(Keyring::parse(encryption_key.expose())?);
        if !settings.use_tls && !insecure_override {
            return Err(field_error(
                "use_tls",
                format!(
                    "use_tls=False is refused: Redis traffic must be encrypted in transit. Use a rediss:// URL with TLS, \
                     or, only on an isolated network, set {REDIS_INSECURE_ALLOW_PLAINTEXT}=true (in production: \
                     {REDIS_INSECURE_ALLOW_PLAINTEXT}={PRODUCTION_ACKNOWLEDGED})."
                ),
            ));
        }
        if let Some(user) = &settings.acl_username {
            if user.trim().is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(field_error(
                    "acl_username",
                    "acl_username must be a non-empty Redis ACL user name without spaces.".into(),
                ));
            }
        }
        match (&settings.tls_cert_path, &settings.tls_key_path) {
            (Some(_), None) => {
                return Err(field_error(
                    "tls_key_path",
                    "tls_cert_path is set but tls_key_path is not: a client certificate needs its private key \
                     (REDIS_TLS_KEY_PATH)."
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(field_error(
                    "tls_cert_path",
                    "tls_key_path is set but tls_cert_path is not: set REDIS_TLS_CERT_PATH to the client certificate."
                        .into(),
                ))
            }
            _ => {}
        }
        for (field, path) in [
            ("tls_ca_path", &settings.tls_ca_path),
            ("tls_cert_path", &settings.tls_cert_path),
            ("tls_key_path", &settings.tls_key_path),
        ] {
            if let Some(path) = path {
                check_readable(field, path)?;
            }
        }
        let connection_timeout = check_timeout("connection_timeout", settings.connection_timeout)?;
        let socket_timeout = check_timeout("socket_timeout", settings.socket_timeout)?;
        if !(0..=100).contains(&settings.max_retries) {
            return Err(field_error(
                "max_retries",
                "max_retries must be a whole number between 0 and 100; the value given is not."
                    .into(),
            ));
        }
        if !settings.retry_delay.is_finite()
            || settings.retry_delay < 0.0
            || settings.retry_delay > 60.0
        {
            return Err(field_error(
                "retry_delay",
                "retry_delay must be between 0 and 60 seconds; the value given is not.".into(),
            ));
        }
        Ok(SecurityConfig {
            redis_auth,
            encryption_key,
            keyring,
            use_tls: settings.use_tls,
            tls_ca_path: settings.tls_ca_path,
            tls_cert_path: settings.tls_cert_path,
            tls_key_path: settings.tls_key_path,
            acl_username: settings.acl_username,
            min_tls_version: settings.min_tls_version.unwrap_or(TlsVersion::V1_2),
            tls_trust_public_roots: settings.tls_trust_public_roots,
            environment: Environment::Development,
            connection_timeout,
            socket_timeout,
            max_retries: settings.max_retries as u32,
            retry_delay: Duration::from_secs_f64(settings.retry_delay),
        })
    }

    /// TLS required means "HIGH"; only the plaintext override gives "LOW".
    pub fn security_level(&self) -> SecurityLevel {
        SecurityLevel::of(self.use_tls)
    }

    /// A one-line, secret-free description used by `repr`, `str` and `Debug`.
    pub fn describe(&self) -> String {
        let path = |p: &Option<PathBuf>| match p {
            Some(p) => format!("{:?}", p.display().to_string()),
            None => "None".into(),
        };
        format!(
            "SecurityConfig(redis_auth='***', encryption_key='***' ({} key(s)), use_tls={}, tls_ca_path={}, \
             tls_cert_path={}, tls_key_path={}, tls_trust_public_roots={}, acl_username={}, min_tls_version='{}', \
             connection_timeout={}, socket_timeout={}, max_retries={}, retry_delay={})",
            self.keyring.len(),
            if self.use_tls { "True" } else { "False" },
            path(&self.tls_ca_path),
            path(&self.tls_cert_path),
            path(&self.tls_key_path),
            if self.tls_trust_public_roots {
                "True"
            } else {
                "False"
            },
            // Shown as set or not: a password pasted into REDIS_ACL_USERNAME must not be printed.
            if self.acl_username.is_some() {
                "'***'"
            } else {
                "None"
            },
            self.min_tls_version.as_str(),
            self.connection_timeout.as_secs_f64(),
            self.socket_timeout.as_secs_f64(),
            self.max_retries,
            self.retry_delay.as_secs_f64(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_tls_version_numbers() {
        assert_eq!(TlsVersion::from_ssl_value(771).unwrap(), TlsVersion::V1_2);
        assert_eq!(TlsVersion::from_ssl_value(772).unwrap(), TlsVersion::V1_3);
        for refused in [769, 770, -2, -1, 0, 773] {
            let err = TlsVersion::from_ssl_value(refused).unwrap_err();
            assert_eq!(
                err.error_code(),
                Some(ErrorCode::InvalidTlsVersion),
                "{refused}"
            );
        }
    }
    use crate::crypto::generate_encryption_key;

    fn valid() -> SecuritySettings {
        SecuritySettings {
            redis_auth: Some(Secret::new("a-long-enough-password-0123456789")),
            encryption_key: Some(Secret::new(generate_encryption_key())),
            ..SecuritySettings::default()
        }
    }

    fn field_of(err: &Error) -> &str {
        err.context["field"].as_str().unwrap()
    }

    #[test]
    fn missing_password_and_key_name_the_field() {
        let err = SecurityConfig::new(
            SecuritySettings {
                redis_auth: None,
                ..valid()
            },
            false,
        )
        .unwrap_err();
        assert_eq!(field_of(&err), "redis_auth");
        assert!(err.message.contains("REDIS_PASSWORD"));
        let err = SecurityConfig::new(
            SecuritySettings {
                encryption_key: Some(Secret::new("  ")),
                ..valid()
            },
            false,
        )
        .unwrap_err();
        assert_eq!(field_of(&err), "encryption_key");
    }

    #[test]
    fn plaintext_needs_the_override() {
        let plaintext = || SecuritySettings {
            use_tls: false,
            ..valid()
        };
        let err = SecurityConfig::new(plaintext(), false).unwrap_err();
        assert_eq!(field_of(&err), "use_tls");
        assert!(err.message.contains(REDIS_INSECURE_ALLOW_PLAINTEXT));
        assert!(SecurityConfig::new(plaintext(), true).is_ok());
    }

    #[test]
    fn files_must_exist_and_timeouts_be_positive() {
        let err = SecurityConfig::new(
            SecuritySettings {
                tls_ca_path: Some("/nonexistent/ca.crt".into()),
                ..valid()
            },
            false,
        )
        .unwrap_err();
        assert_eq!(field_of(&err), "tls_ca_path");
        assert!(err.message.contains("not found"));
        assert!(!err.message.contains("/nonexistent"));
        for (field, settings) in [
            (
                "connection_timeout",
                SecuritySettings {
                    connection_timeout: 0.0,
                    ..valid()
                },
            ),
            (
                "socket_timeout",
                SecuritySettings {
                    socket_timeout: -1.0,
                    ..valid()
                },
            ),
            (
                "max_retries",
                SecuritySettings {
                    max_retries: -1,
                    ..valid()
                },
            ),
        ] {
            let err = SecurityConfig::new(settings, false).unwrap_err();
            assert_eq!(field_of(&err), field);
        }
    }

    #[test]
    fn describe_hides_secrets() {
        let config = SecurityConfig::new(valid(), false).unwrap();
        let text = format!("{config:?}");
        assert!(!text.contains("a-long-enough-password"));
        assert!(!text.contains(config.encryption_key.expose()));
        assert!(text.contains("redis_auth='***'"));
    }
}
