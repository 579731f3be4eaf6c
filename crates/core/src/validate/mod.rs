//! Startup validation: every check that decides whether a Redis configuration is safe to run
//! with, each finding carrying the variable to change, an example, and the docs section.
//!
//! Unlike the layer we replace, anything that makes the cache insecure is an error in every
//! environment; the environment only tightens thresholds (password length, TLS version,
//! certificate expiry, key-file permissions).

pub mod auth;
pub mod certificates;
pub mod connectivity;
pub mod key;
pub mod report;
pub mod url;

use crate::config::policy::{PlaintextOverride, Rule, Verdict};
use crate::config::TlsVersion;
use crate::crypto::Secret;
use crate::env::{self, non_empty, Lookup};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;

pub use report::Report;

pub const SECURITY_DOC: &str = "docs/infrastructure/redis-security.md";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The variable or URL to change, with an example of a correct value.
    pub fix: String,
    /// Where the docs explain it, e.g. `docs/infrastructure/redis-security.md#authentication`.
    pub doc: String,
}

impl Finding {
    fn new(
        check: &'static str,
        severity: Severity,
        message: String,
        fix: &str,
        anchor: &str,
    ) -> Self {
        Finding {
            check,
            severity,
            message,
            fix: fix.to_owned(),
            doc: format!("{SECURITY_DOC}#{anchor}"),
        }
    }

    pub fn error(check: &'static str, message: String, fix: &str, anchor: &str) -> Self {
        Self::new(check, Severity::Error, message, fix, anchor)
    }

    pub fn warning(check: &'static str, message: String, fix: &str, anchor: &str) -> Self {
        Self::new(check, Severity::Warning, message, fix, anchor)
    }

    /// A policy rule as a finding: refused is an error, anything else a warning.
    pub fn from_rule(check: &'static str, rule: &Rule) -> Self {
        let severity = match rule.verdict {
            Verdict::Refused => Severity::Error,
            Verdict::Warning => Severity::Warning,
        };
        Self::new(check, severity, rule.message.clone(), rule.fix, rule.anchor)
    }

    /// One line, for the list-of-strings results of the compatible API.
    pub fn one_line(&self) -> String {
        if self.fix.is_empty() {
            format!("{} (see {})", self.message, self.doc)
        } else {
            format!("{} Fix: {} (see {})", self.message, self.fix, self.doc)
        }
    }
}

/// The outcome of one check: its findings and what it learned (paths, expiry, methods).
#[derive(Debug, Clone, Default)]
pub struct CheckResult {
    pub findings: Vec<Finding>,
    pub info: Map<String, Value>,
}

impl CheckResult {
    pub fn valid(&self) -> bool {
        self.findings.iter().all(|f| f.severity != Severity::Error)
    }

    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn info(&mut self, key: &str, value: impl Into<Value>) {
        self.info.insert(key.to_owned(), value.into());
    }

    fn lines(&self, severity: Severity) -> Vec<String> {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(Finding::one_line)
            .collect()
    }

    pub fn errors(&self) -> Vec<String> {
        self.lines(Severity::Error)
    }

    pub fn warnings(&self) -> Vec<String> {
        self.lines(Severity::Warning)
    }

    /// `{valid, errors, warnings, <info_key>: info, findings}`: the TypedDict shapes of the
    /// replaced layer (`cert_info`, `key_info`, `auth_info`) plus structured findings.
    pub fn to_value(&self, info_key: &str) -> Value {
        let mut out = Map::new();
        out.insert("valid".into(), self.valid().into());
        out.insert("errors".into(), self.errors().into());
        out.insert("warnings".into(), self.warnings().into());
        out.insert(info_key.into(), Value::Object(self.info.clone()));
        out.insert(
            "findings".into(),
            serde_json::to_value(&self.findings).unwrap_or(Value::Null),
        );
        Value::Object(out)
    }
}

/// Everything the validator looks at, usually read from the environment.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub redis_url: Option<String>,
    pub encryption_key: Option<Secret>,
    pub tls_cert_path: Option<PathBuf>,
    pub tls_key_path: Option<PathBuf>,
    pub tls_ca_path: Option<PathBuf>,
    pub auth_password: Option<Secret>,
    pub acl_username: Option<String>,
    pub min_tls_version: Option<String>,
    pub tls_trust_public_roots: bool,
    pub insecure_override: PlaintextOverride,
    /// Sentinel or Cluster, for the live check (which then visits every node).
    pub topology: crate::connection::TopologySpec,
}

impl Inputs {
    pub fn from_env(lookup: Lookup<'_>) -> Inputs {
        let get = |name: &str| non_empty(lookup, name);
        Inputs {
            redis_url: get(env::REDIS_URL),
            encryption_key: get(env::REDIS_ENCRYPTION_KEY).map(Secret::new),
            tls_cert_path: get(env::REDIS_TLS_CERT_PATH).map(PathBuf::from),
            tls_key_path: get(env::REDIS_TLS_KEY_PATH).map(PathBuf::from),
            tls_ca_path: get(env::REDIS_TLS_CA_PATH).map(PathBuf::from),
            auth_password: env::redis_password(lookup).map(Secret::new),
            acl_username: get(env::REDIS_ACL_USERNAME),
            min_tls_version: get(env::REDIS_TLS_MIN_VERSION),
            tls_trust_public_roots: env::trust_public_roots(lookup),
            insecure_override: PlaintextOverride::read(lookup),
            topology: crate::connection::TopologySpec::from_env(lookup),
        }
    }

    /// What a running cache was built from, for re-validating it.
    pub fn from_config(
        redis_url: &str,
        config: &crate::config::SecurityConfig,
        insecure_override: PlaintextOverride,
    ) -> Inputs {
        Inputs {
            redis_url: Some(redis_url.to_owned()),
            encryption_key: Some(config.encryption_key.clone()),
            tls_cert_path: config.tls_cert_path.clone(),
            tls_key_path: config.tls_key_path.clone(),
            tls_ca_path: config.tls_ca_path.clone(),
            auth_password: Some(config.redis_auth.clone()),
            acl_username: config.acl_username.clone(),
            min_tls_version: Some(config.min_tls_version.as_str().to_owned()),
            tls_trust_public_roots: config.tls_trust_public_roots,
            insecure_override,
            topology: crate::connection::TopologySpec::default(),
        }
    }

    pub fn parsed_min_tls_version(&self) -> Option<TlsVersion> {
        self.min_tls_version
            .as_deref()
            .and_then(|v| TlsVersion::parse(v).ok())
    }
}
