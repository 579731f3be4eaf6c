//! The one reader of the process environment: the name of every variable secure_redis reads,
//! the lookup type every loader takes (the real environment in production, a map in tests),
//! and the rules shared by all of them (a blank value counts as unset; `REDIS_PASSWORD`
//! before the starter's older `REDIS_AUTH`).

use crate::config::PlaintextOverride;
use crate::environment::detect;

/// How loaders read a variable. Taking a function instead of reading `std::env` directly
/// lets every loader be tested with a map, without touching the process environment.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub const REDIS_URL: &str = "REDIS_URL";
pub const REDIS_PASSWORD: &str = "REDIS_PASSWORD";
/// The starter's older name for the password, read when `REDIS_PASSWORD` is unset.
pub const REDIS_AUTH: &str = "REDIS_AUTH";
pub const REDIS_ENCRYPTION_KEY: &str = "REDIS_ENCRYPTION_KEY";
pub const REDIS_ACL_USERNAME: &str = "REDIS_ACL_USERNAME";
pub const REDIS_USE_TLS: &str = "REDIS_USE_TLS";
pub const REDIS_TLS_CA_PATH: &str = "REDIS_TLS_CA_PATH";
pub const REDIS_TLS_CERT_PATH: &str = "REDIS_TLS_CERT_PATH";
pub const REDIS_TLS_KEY_PATH: &str = "REDIS_TLS_KEY_PATH";
pub const REDIS_TLS_MIN_VERSION: &str = "REDIS_TLS_MIN_VERSION";
/// With no CA, verify the server against the public web roots even where a CA is required
/// (production, Sentinel, Cluster): the opt-in for managed services.
pub const REDIS_TLS_TRUST_PUBLIC_ROOTS: &str = "REDIS_TLS_TRUST_PUBLIC_ROOTS";
pub const REDIS_CONNECTION_TIMEOUT: &str = "REDIS_CONNECTION_TIMEOUT";
pub const REDIS_SOCKET_TIMEOUT: &str = "REDIS_SOCKET_TIMEOUT";
pub const REDIS_RETRY_DELAY: &str = "REDIS_RETRY_DELAY";
pub const REDIS_MAX_RETRIES: &str = "REDIS_MAX_RETRIES";
/// The only escape hatch: plaintext transport (AUTH and Fernet stay on), said loudly. `true`
/// outside production; production needs `production-acknowledged` (`config::policy`).
pub const REDIS_INSECURE_ALLOW_PLAINTEXT: &str = "REDIS_INSECURE_ALLOW_PLAINTEXT";
pub const REDIS_CLUSTER_NODES: &str = "REDIS_CLUSTER_NODES";
pub const REDIS_SENTINEL_NODES: &str = "REDIS_SENTINEL_NODES";
pub const REDIS_SENTINEL_MASTER: &str = "REDIS_SENTINEL_MASTER";
pub const REDIS_SENTINEL_PASSWORD: &str = "REDIS_SENTINEL_PASSWORD";
pub const REDIS_SENTINEL_USERNAME: &str = "REDIS_SENTINEL_USERNAME";
/// Forces the production policy whatever the environment name says.
pub const ENFORCE_AUTH: &str = "ENFORCE_AUTH";
/// Every `REDIS_*` variable above, for callers that name one at run time (Python's
/// `_native.env_value`), so a misspelt name fails instead of reading as unset.
pub const REDIS_VARIABLES: [&str; 22] = [
    REDIS_URL,
    REDIS_PASSWORD,
    REDIS_AUTH,
    REDIS_ENCRYPTION_KEY,
    REDIS_ACL_USERNAME,
    REDIS_USE_TLS,
    REDIS_TLS_CA_PATH,
    REDIS_TLS_CERT_PATH,
    REDIS_TLS_KEY_PATH,
    REDIS_TLS_MIN_VERSION,
    REDIS_TLS_TRUST_PUBLIC_ROOTS,
    REDIS_CONNECTION_TIMEOUT,
    REDIS_SOCKET_TIMEOUT,
    REDIS_RETRY_DELAY,
    REDIS_MAX_RETRIES,
    REDIS_INSECURE_ALLOW_PLAINTEXT,
    REDIS_CLUSTER_NODES,
    REDIS_SENTINEL_NODES,
    REDIS_SENTINEL_MASTER,
    REDIS_SENTINEL_PASSWORD,
    REDIS_SENTINEL_USERNAME,
    ENFORCE_AUTH,
];

/// The URL a cache uses when neither its arguments nor `REDIS_URL` name one.
pub const DEFAULT_REDIS_URL: &str = "rediss://localhost:6380";

/// Where the deployment environment's name is looked for, in order; the first one holding a
/// recognised value decides (see `environment::detect`).
pub const ENVIRONMENT_VARIABLES: [&str; 6] = [
    "ENVIRONMENT",
    "NODE_ENV",
    "FLASK_ENV",
    "APP_ENV",
    "ENV",
    "DEPLOYMENT_ENV",
];

/// The process environment, as the Python bindings and the CLI see it.
pub fn process(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The variable's value, or `None` when it is unset or blank: a line `REDIS_URL=` in an env
/// file means "not configured", never "an empty URL".
pub fn non_empty(lookup: Lookup<'_>, name: &str) -> Option<String> {
    lookup(name).filter(|value| !value.trim().is_empty())
}

/// The Redis password: `REDIS_PASSWORD`, else `REDIS_AUTH`.
pub fn redis_password(lookup: Lookup<'_>) -> Option<String> {
    non_empty(lookup, REDIS_PASSWORD).or_else(|| non_empty(lookup, REDIS_AUTH))
}

/// Whether `REDIS_TLS_TRUST_PUBLIC_ROOTS` opts into the public web roots.
pub fn trust_public_roots(lookup: Lookup<'_>) -> bool {
    lookup(REDIS_TLS_TRUST_PUBLIC_ROOTS).is_some_and(|value| crate::environment::is_truthy(&value))
}

/// Whether `REDIS_INSECURE_ALLOW_PLAINTEXT` permits plaintext in the detected environment: a
/// true value outside production, `production-acknowledged` in production.
pub fn insecure_override(lookup: Lookup<'_>) -> bool {
    PlaintextOverride::read(lookup).permits(detect(lookup).environment)
}

/// A lookup over fixed pairs, for tests of every loader.
#[cfg(test)]
pub fn from_pairs(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_count_as_unset() {
        let lookup = from_pairs(&[(REDIS_URL, "  "), (REDIS_ACL_USERNAME, "cache")]);
        assert_eq!(non_empty(&lookup, REDIS_URL), None);
        assert_eq!(
            non_empty(&lookup, REDIS_ACL_USERNAME).as_deref(),
            Some("cache")
        );
        assert_eq!(non_empty(&lookup, REDIS_TLS_CA_PATH), None);
    }

    #[test]
    fn redis_password_prefers_redis_password_over_redis_auth() {
        let both = from_pairs(&[(REDIS_PASSWORD, "new"), (REDIS_AUTH, "old")]);
        assert_eq!(redis_password(&both).as_deref(), Some("new"));
        let old_only = from_pairs(&[(REDIS_PASSWORD, ""), (REDIS_AUTH, "old")]);
        assert_eq!(redis_password(&old_only).as_deref(), Some("old"));
        assert_eq!(redis_password(&from_pairs(&[])), None);
    }

    #[test]
    fn insecure_override_needs_a_true_value() {
        for (value, expected) in [
            ("true", true),
            ("1", true),
            ("yes", true),
            ("false", false),
            ("", false),
        ] {
            let lookup = from_pairs(&[(REDIS_INSECURE_ALLOW_PLAINTEXT, value)]);
            assert_eq!(insecure_override(&lookup), expected, "{value:?}");
        }
        assert!(!insecure_override(&from_pairs(&[])));
        let production = |value| {
            from_pairs(&[
                ("ENVIRONMENT", "production"),
                (REDIS_INSECURE_ALLOW_PLAINTEXT, value),
            ])
        };
        assert!(!insecure_override(&production("true")));
        assert!(insecure_override(&production("production-acknowledged")));
    }
}
