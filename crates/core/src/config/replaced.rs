//! The replaced layer's `SecurityConfig` arguments that are not settings of ours
//! (`acl_password`, `verify_certificates`, `cipher_suites`, `enable_security_monitoring`,
//! `log_security_events`): each is folded into `SecuritySettings` with the meaning it had, or
//! refused naming it and why. (`min_tls_version` as an `ssl.TLSVersion` number is
//! `TlsVersion::from_ssl_value`.)
//!
//! Invariant: nothing here weakens a setting. A value asking for less security is refused,
//! never ignored, and no message repeats a value given.

use super::SecuritySettings;
use crate::crypto::Secret;
use crate::error::{Error, ErrorCode, Result};

/// The replaced `SecurityConfig`'s own arguments, with its defaults.
#[derive(Debug, Clone)]
pub struct ReplacedArguments {
    /// The ACL user's password. We send one password (with `acl_username`, or alone for the
    /// default user), so it is `redis_auth` when that is not given, and must equal it when it is.
    pub acl_password: Option<Secret>,
    /// Only `true`: the server's certificate is always verified.
    pub verify_certificates: bool,
    /// `None` (or an empty list, which the replaced layer also ignored): rustls's suites.
    pub cipher_suites: Option<Vec<String>>,
    /// Accepted, no effect. The replaced layer's security manager kept an event list and logged
    /// its start behind these two flags; here security events (the plaintext override, a
    /// refused connection, a rejected entry, a certificate close to expiry) are always logged
    /// on the `secure_redis` loggers and the status is always available
    /// (`get_security_status`, `validate_security`), because an event nobody can see is one
    /// nobody acts on. Silence them through the logging configuration instead.
    pub enable_security_monitoring: bool,
    /// See `enable_security_monitoring`.
    pub log_security_events: bool,
}

impl Default for ReplacedArguments {
    fn default() -> Self {
        ReplacedArguments {
            acl_password: None,
            verify_certificates: true,
            cipher_suites: None,
            enable_security_monitoring: true,
            log_security_events: true,
        }
    }
}

/// Why `verify_certificates=False` is refused.
pub const VERIFY_CERTIFICATES_REFUSED: &str = "verify_certificates=False is refused: \
certificate verification cannot be turned off, since a client that accepts any certificate \
talks to whoever intercepts the connection. Give the CA that signed the server's certificate \
as tls_ca_path (REDIS_TLS_CA_PATH), or omit verify_certificates.";

/// Why a `cipher_suites` list is refused.
pub const CIPHER_SUITES_REFUSED: &str = "cipher_suites is refused: the TLS library (rustls) \
offers only AEAD suites with forward secrecy (TLS 1.3 AES-GCM and ChaCha20-Poly1305, TLS 1.2 \
ECDHE with the same ciphers) and picks among them, so there is no weak suite to exclude, and an \
OpenSSL cipher string cannot be honoured. Leave cipher_suites unset; raise min_tls_version to \
\"1.3\" to allow only TLS 1.3 suites.";

fn refused(field: &str, message: &str) -> Error {
    Error::configuration(message)
        .with("field", field)
        .code(ErrorCode::UnsupportedParameter)
}

impl ReplacedArguments {
    /// Folds these arguments into `settings`, or refuses one of them.
    pub fn apply(self, settings: &mut SecuritySettings) -> Result<()> {
        if !self.verify_certificates {
            return Err(refused("verify_certificates", VERIFY_CERTIFICATES_REFUSED));
        }
        if self.cipher_suites.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(refused("cipher_suites", CIPHER_SUITES_REFUSED));
        }
        if let Some(password) = self.acl_password {
            match &settings.redis_auth {
                None => settings.redis_auth = Some(password),
                Some(auth) if *auth == password => {}
                Some(_) => {
                    return Err(Error::configuration(
                        "acl_password and redis_auth are both given and differ: one password is \
                         sent (with acl_username, or alone). Give only one of them.",
                    )
                    .with("field", "acl_password")
                    .code(ErrorCode::ConflictingCredentials))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(auth: Option<&str>) -> SecuritySettings {
        SecuritySettings {
            redis_auth: auth.map(Secret::new),
            ..SecuritySettings::default()
        }
    }

    #[test]
    fn the_defaults_change_nothing() {
        let mut settings = with_auth(Some("pw"));
        ReplacedArguments::default().apply(&mut settings).unwrap();
        assert_eq!(settings.redis_auth, Some(Secret::new("pw")));
    }

    #[test]
    fn acl_password_is_the_password_unless_redis_auth_differs() {
        let acl = |password: &str| ReplacedArguments {
            acl_password: Some(Secret::new(password)),
            ..ReplacedArguments::default()
        };
        let mut settings = with_auth(None);
        acl("pw").apply(&mut settings).unwrap();
        assert_eq!(settings.redis_auth, Some(Secret::new("pw")));
        acl("pw").apply(&mut settings).unwrap();
        let err = acl("other").apply(&mut settings).unwrap_err();
        assert_eq!(err.error_code(), Some(ErrorCode::ConflictingCredentials));
        assert!(!err.message.contains("other"));
    }

    #[test]
    fn weakening_arguments_are_refused_by_name() {
        let unverified = ReplacedArguments {
            verify_certificates: false,
            ..ReplacedArguments::default()
        };
        let ciphers = ReplacedArguments {
            cipher_suites: Some(vec!["ECDHE-RSA-AES256-GCM-SHA384".into()]),
            ..ReplacedArguments::default()
        };
        for (args, field) in [
            (unverified, "verify_certificates"),
            (ciphers, "cipher_suites"),
        ] {
            let err = args.apply(&mut with_auth(Some("pw"))).unwrap_err();
            assert_eq!(err.error_code(), Some(ErrorCode::UnsupportedParameter));
            assert_eq!(err.context["field"], field);
            assert!(err.message.starts_with(field));
        }
        let empty = ReplacedArguments {
            cipher_suites: Some(vec![]),
            enable_security_monitoring: false,
            log_security_events: false,
            ..ReplacedArguments::default()
        };
        assert!(empty.apply(&mut with_auth(Some("pw"))).is_ok());
    }
}
