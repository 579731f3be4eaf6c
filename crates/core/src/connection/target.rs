//! Parsing `rediss://` URLs, and printing them without credentials.

use crate::crypto::Secret;
use crate::env::REDIS_INSECURE_ALLOW_PLAINTEXT;
use crate::error::{Error, ErrorCode, Result};
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub db: i64,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// A URL with any user name and password removed, safe for logs and errors. Anything that
/// does not parse is reduced to its scheme, since it might still hold a password.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        // An unencoded '#', '?' or '/' in a password moves the split point, so what parses
        // as host or path may be part of the password: show nothing but the scheme.
        Ok(url)
            if url.query().is_some() || url.fragment().is_some() || url.path().contains('@') =>
        {
            format!("{}://***", url.scheme())
        }
        // A scheme that is not Redis's may be a pasted secret that happens to parse.
        Ok(url) if !matches!(url.scheme(), "redis" | "rediss" | "unix" | "redis+unix") => {
            "***".into()
        }
        Ok(url) => {
            let host = url.host_str().unwrap_or("");
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let creds = if url.username().is_empty() && url.password().is_none() {
                ""
            } else {
                "***@"
            };
            format!("{}://{creds}{host}{port}{}", url.scheme(), url.path())
        }
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) if scheme.chars().all(|c| c.is_ascii_alphanumeric()) => {
                format!("{scheme}://***")
            }
            _ => "***".into(),
        },
    }
}

impl RedisTarget {
    /// `insecure_override` is `REDIS_INSECURE_ALLOW_PLAINTEXT`; without it `redis://` is refused.
    pub fn parse(raw: &str, insecure_override: bool) -> Result<RedisTarget> {
        let shown = redact_url(raw);
        let invalid = |why: &str| {
            Error::configuration(format!(
                "Invalid Redis URL {shown}: {why}. Expected rediss://host:port/db."
            ))
            .with("redis_url", shown.clone())
            .code(ErrorCode::InvalidRedisUrl)
        };
        let url = Url::parse(raw.trim()).map_err(|_| invalid("it does not parse as a URL"))?;
        if url.query().is_some() || url.fragment().is_some() || url.path().contains('@') {
            return Err(invalid(
                "it has a query or fragment; percent-encode '#', '?' and '/' in passwords, or better, \
                 keep the password in REDIS_PASSWORD",
            ));
        }
        let tls = match url.scheme() {
            "rediss" => true,
            "redis" if insecure_override => false,
            "redis" => {
                return Err(Error::configuration(format!(
                    "Plaintext Redis URL refused: {shown}. Use rediss:// (TLS). Only on an isolated network may \
                     {REDIS_INSECURE_ALLOW_PLAINTEXT}=true allow redis://; AUTH and value encryption stay on."
                ))
                .with("redis_url", shown)
                .with("redis_url_scheme", "redis")
                .code(ErrorCode::InsecureRedisUrl))
            }
            "unix" | "redis+unix" => {
                return Err(invalid("unix sockets are not supported; use rediss://"))
            }
            _ => return Err(invalid("the scheme must be rediss://")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("it has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let valid_host = host.parse::<std::net::IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid_host {
            return Err(invalid("the host is not a DNS name or an IP address"));
        }
        let port = url.port().unwrap_or(6379);
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            digits => digits
                .parse::<i64>()
                .ok()
                .filter(|db| (0..=1_000_000).contains(db))
                .ok_or_else(|| invalid("the path must be a database number such as /0"))?,
        };
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| invalid("its user info is not valid percent-encoding"))
        };
        let username = match url.username() {
            "" => None,
            user => Some(decode(user)?),
        };
        let password = match url.password() {
            None | Some("") => None,
            Some(pw) => Some(Secret::new(decode(pw)?)),
        };
        Ok(RedisTarget {
            host,
            port,
            db,
            tls,
            username,
            password,
        })
    }

    /// `rediss://host:port/db`, without credentials.
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{}://{}:{}/{}",
            if self.tls { "rediss" } else { "redis" },
            host,
            self.port,
            self.db
        )
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rediss_urls() {
        let t = RedisTarget::parse("rediss://cache.internal:6380/2", false).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.db, t.tls),
            ("cache.internal", 6380, 2, true)
        );
        let t = RedisTarget::parse("rediss://app:p%40ss@127.0.0.1:1", false).unwrap();
        assert_eq!(t.username.as_deref(), Some("app"));
        assert_eq!(t.password.unwrap().expose(), "p@ss");
        let t = RedisTarget::parse("rediss://[::1]:7000/0", false).unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.display(), "rediss://[::1]:7000/0");
    }

    #[test]
    fn plaintext_needs_override_and_errors_hide_credentials() {
        let err = RedisTarget::parse("redis://:topsecret@host:6379", false).unwrap_err();
        assert!(err.message.contains("rediss://"));
        assert!(!err.to_string().contains("topsecret"));
        assert!(!RedisTarget::parse("redis://host:6379", true).unwrap().tls);
        for bad in [
            "http://x",
            "rediss://",
            "rediss://h:1/notadb",
            "::::",
            "unix:///tmp/r.sock",
        ] {
            let err = RedisTarget::parse(bad, true).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Configuration, "{bad}");
        }
    }

    #[test]
    fn unencoded_separators_in_passwords_never_leak() {
        let raw = "rediss://user:1234#secret@host:6380/0";
        assert_eq!(redact_url(raw), "rediss://***");
        let err = RedisTarget::parse(raw, false).unwrap_err();
        assert!(!err.to_string().contains("1234") && !err.to_string().contains("secret"));
        assert!(RedisTarget::parse("rediss://h:1/0?ssl_cert_reqs=none", false).is_err());
        let slash = "rediss://default:8443/Sup3rS3cretPart@redis.internal:6380/0";
        assert_eq!(redact_url(slash), "rediss://***");
        let err = RedisTarget::parse(slash, false).unwrap_err();
        assert!(!err.to_string().contains("Sup3r") && !err.to_string().contains("8443"));
    }

    #[test]
    fn redaction_removes_user_info() {
        assert_eq!(redact_url("rediss://u:pw@h:1/0"), "rediss://***@h:1/0");
        assert_eq!(redact_url("rediss://h:1/0"), "rediss://h:1/0");
        assert_eq!(redact_url("rediss://:pw@h:bad"), "rediss://***");
        assert_eq!(redact_url("garbage with pw"), "***");
    }
}
