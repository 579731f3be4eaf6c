//! Every `error_type` secure_redis puts in an error's context: a public contract (callers and
//! tests branch on them), so they are listed here once, each with its meaning, and nowhere
//! else. Python gets the same list as `secure_redis.ErrorCode`; docs/architecture.md carries
//! the table, and `every_code_is_documented` keeps the two in step.

use serde::Serialize;

macro_rules! error_codes {
    ($($variant:ident = $text:literal => $meaning:literal,)*) => {
        /// What went wrong, as a stable machine-readable code (`error.context["error_type"]`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum ErrorCode {
            $(#[doc = $meaning] #[serde(rename = $text)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the table in docs/architecture.md.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The string callers see in `context["error_type"]`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text,)* }
            }

            /// One sentence saying when the code is used.
            pub fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning,)* }
            }
        }
    };
}

error_codes! {
    // Configuration: the settings cannot work or would be insecure.
    InvalidSecurityConfig = "invalid_security_config" => "A SecurityConfig setting is missing, out of range or names a file that cannot be used.",
    InvalidSecret = "invalid_secret" => "A password is not text, or not valid UTF-8.",
    InvalidEncryptionKey = "invalid_encryption_key" => "An encryption key is missing or is not a Fernet key (32 url-safe base64 bytes).",
    InvalidPasswordLength = "invalid_password_length" => "generate_secure_password was asked for a length out of range.",
    InvalidTlsVersion = "invalid_tls_version" => "REDIS_TLS_MIN_VERSION names no TLS version we support (1.2 or 1.3).",
    InvalidTlsMaterial = "invalid_tls_material" => "A CA, certificate or private key file cannot be read or parsed, or the pair does not match.",
    TlsConfigurationConflict = "tls_configuration_conflict" => "TLS is required but the URL says redis://, or a client certificate comes without its key.",
    InvalidRedisUrl = "invalid_redis_url" => "The Redis URL does not parse or has no host.",
    InsecureRedisUrl = "insecure_redis_url" => "A plaintext redis:// URL without REDIS_INSECURE_ALLOW_PLAINTEXT=true.",
    MixedTlsModes = "mixed_tls_modes" => "Nodes of one topology mix redis:// and rediss://.",
    ConflictingCredentials = "conflicting_credentials" => "The URL carries a password or user name that differs from the configured one, or acl_password differs from redis_auth.",
    ConflictingTopology = "conflicting_topology" => "Both Cluster and Sentinel settings are given.",
    SentinelNodesMissing = "sentinel_nodes_missing" => "A Sentinel master name is given without any sentinel.",
    SentinelMasterMissing = "sentinel_master_missing" => "Sentinels are given without the master name.",
    ClusterDatabase = "cluster_database" => "A Cluster URL selects a database other than 0.",
    ClusterConfiguration = "cluster_configuration" => "The cluster client cannot be built from the given nodes.",
    InvalidEnvironmentValue = "invalid_environment_value" => "A numeric REDIS_* variable does not hold a number.",
    EnvironmentPolicyViolation = "environment_policy_violation" => "The detected environment requires more (a longer or less guessable password, TLS 1.3).",
    PlaintextNotAcknowledged = "plaintext_not_acknowledged" => "REDIS_INSECURE_ALLOW_PLAINTEXT=true in production, where plaintext needs REDIS_INSECURE_ALLOW_PLAINTEXT=production-acknowledged.",
    TlsCaRequired = "tls_ca_required" => "TLS without REDIS_TLS_CA_PATH in production or with Sentinel or Cluster, and without REDIS_TLS_TRUST_PUBLIC_ROOTS=true.",
    SecurityValidationFailed = "security_validation_failed" => "Startup validation found errors; the report is in the context.",
    // Configuration found by talking to Redis: it answered, but we must not or cannot use it.
    AuthenticationFailed = "authentication_failed" => "Redis refused the password or the ACL user.",
    AclDenied = "acl_denied" => "The ACL user lacks a permission the cache needs (NOPERM).",
    TlsHandshakeFailed = "tls_handshake_failed" => "The TLS handshake failed: unknown CA, wrong host name, expired certificate, no common version.",
    PlaintextServer = "plaintext_server" => "The port speaks plaintext Redis, not TLS.",
    ConnectionSetupFailed = "connection_setup_failed" => "Redis refused the connection set-up after TLS (HELLO, SELECT, the first command).",
    NotACluster = "not_a_cluster" => "Cluster mode was asked for but the server is not a cluster node.",
    SentinelUnknownMaster = "sentinel_unknown_master" => "No sentinel knows the configured master name.",
    RedisRejectedConfiguration = "redis_rejected_configuration" => "CacheManager: Redis keeps rejecting the configuration, so it will not fall back silently.",
    // Validation: a caller passed a value the API does not accept.
    InvalidKey = "invalid_key" => "A cache key is not a non-empty str of valid UTF-8 within the length limit.",
    InvalidTtl = "invalid_ttl" => "A TTL is negative or longer than a year.",
    InvalidCacheParameter = "invalid_cache_parameter" => "A cache constructor argument is out of range.",
    UnknownParameter = "unknown_parameter" => "A cache constructor got a keyword argument it does not take (a typo): the message names the closest valid one.",
    UnsupportedParameter = "unsupported_parameter" => "A constructor argument of the replaced layer asks for what secure_redis refuses (certificate verification off, a cipher list, a hash other than SHA-256, a security setting outside SecurityConfig).",
    InvalidPattern = "invalid_pattern" => "An invalidation glob is empty, too long or malformed.",
    InvalidScope = "invalid_scope" => "A tenant scope name is not a non-empty str of at most 1024 bytes, or a scope was asked of a scoped view (scopes do not nest).",
    InvalidOperation = "invalid_operation" => "An AI operation name is empty, longer than 64 bytes, or holds a character other than a letter, digit, underscore, hyphen or dot.",
    UnsupportedValue = "unsupported_value" => "A value cannot be stored as JSON (its type, a NaN, a cycle, too deep).",
    ValueTooLarge = "value_too_large" => "A value is larger than the 32 MiB cap.",
    DeserializationError = "deserialization_error" => "JSON being turned into Python objects does not parse (json_loads, EncryptedCacheLayer.decrypt_cache_data).",
    DecryptionFailure = "decryption_failure" => "EncryptedCacheLayer: the data is not a Fernet token of any configured key.",
    // Infrastructure: the outside world failed.
    RedisUnreachable = "redis_unreachable" => "Redis cannot be reached (FastAPI health check, connect() with fail_on_connection_error=True).",
    CacheNotInitialized = "cache_not_initialized" => "The FastAPI dependency was used before the lifespan made the cache.",
    MissingRedisUrl = "missing_redis_url" => "No Redis URL was given and REDIS_URL is unset.",
    ScopeUnavailable = "scope_unavailable" => "Redis could not read, create or delete a tenant scope's key record, or the record there is not one of ours (tampered, or sealed with a key this process lacks).",
    RuntimeStartFailure = "runtime_start_failure" => "The background runtime could not start.",
    RandomSourceFailure = "random_source_failure" => "The operating system's random source failed.",
    InternalError = "internal_error" => "A bug: a Rust panic was caught before it reached Python.",
}

impl ErrorCode {
    /// The code named by `text`, for reading a code back from an error's context.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{text}"
            );
            assert_eq!(ErrorCode::parse(text), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), text);
            assert!(code.meaning().ends_with('.'), "{text}: {}", code.meaning());
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    /// docs/architecture.md lists every code with its meaning, and nothing else.
    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../../docs/architecture.md");
        let section = doc
            .split("\n## ")
            .find(|s| s.starts_with("Error codes"))
            .expect("docs/architecture.md has an 'Error codes' section");
        let documented: HashSet<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
            .collect();
        let codes: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            codes.difference(&documented).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "codes missing from docs/architecture.md"
        );
        assert_eq!(
            documented.difference(&codes).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "docs/architecture.md lists codes that do not exist"
        );
        for &code in ErrorCode::ALL {
            assert!(
                section.contains(code.meaning()),
                "{}: meaning not in the table",
                code.as_str()
            );
        }
    }
}
