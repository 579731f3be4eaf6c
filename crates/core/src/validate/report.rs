//! The whole picture: every check's findings, statuses for people, a dict for machines, and
//! the one startup error that lists every violation.

use super::auth::check_auth;
use super::certificates::check_certificates_with;
use super::connectivity::check_connectivity;
use super::key::check_encryption_key;
use super::url::check_url;
use super::{CheckResult, Finding, Inputs, Severity};
use crate::config::policy;
use crate::config::{SecurityConfig, SecuritySettings, TlsVersion};
use crate::connection::RedisTarget;
use crate::environment::{DetectedEnvironment, Environment};
use crate::error::{Error, ErrorCode};
use serde_json::{json, Value};
use std::fmt::Write;

#[derive(Debug, Clone)]
pub struct Report {
    pub environment: DetectedEnvironment,
    pub environment_check: CheckResult,
    pub url: CheckResult,
    pub auth: CheckResult,
    pub encryption: CheckResult,
    pub certificates: CheckResult,
    pub connectivity: Option<CheckResult>,
    uses_tls: bool,
    insecure_override: bool,
    has_client_certificate: bool,
}

fn tls_policy(
    inputs: &Inputs,
    env: &DetectedEnvironment,
    url: &mut CheckResult,
) -> Option<TlsVersion> {
    let requested = inputs.min_tls_version.as_deref()?;
    match TlsVersion::parse(requested) {
        Err(err) => {
            url.push(Finding::error(
                "url",
                format!("REDIS_TLS_MIN_VERSION: {}", err.message),
                "REDIS_TLS_MIN_VERSION=1.3",
                "tls-versions",
            ));
            None
        }
        Ok(version) => match policy::tls_version(Some(version), env.environment) {
            Ok(version) => Some(version),
            Err(rule) => {
                url.push(Finding::from_rule("url", &rule));
                None
            }
        },
    }
}

impl Report {
    /// All static checks (no network).
    pub fn build(inputs: &Inputs, environment: DetectedEnvironment, now: u64) -> Report {
        let mut url = check_url(
            inputs.redis_url.as_deref(),
            inputs.insecure_override,
            &environment,
        );
        tls_policy(inputs, &environment, &mut url);
        let uses_tls = url.info.get("tls").and_then(Value::as_bool).unwrap_or(true);
        let auth = check_auth(
            inputs.redis_url.as_deref(),
            inputs.auth_password.as_ref(),
            inputs.acl_username.as_deref(),
            &environment,
        );
        let encryption = check_encryption_key(inputs.encryption_key.as_ref(), &environment);
        let certificates = check_certificates_with(
            inputs.tls_cert_path.as_deref(),
            inputs.tls_key_path.as_deref(),
            inputs.tls_ca_path.as_deref(),
            uses_tls,
            &environment,
            now,
            inputs.tls_trust_public_roots,
            inputs.topology.name(),
        );
        let plaintext_permitted = inputs.insecure_override.permits(environment.environment);
        let mut environment_check = CheckResult::default();
        for setting in &environment.unrecognized {
            let variable = setting.split('=').next().unwrap_or("ENVIRONMENT");
            let mut fix = format!(
                "{variable}=production (or development, testing, staging; dev, test, stage, prod, live)"
            );
            if variable != "ENVIRONMENT" {
                fix.push_str(", or ENVIRONMENT=production, which takes precedence");
            }
            environment_check.push(Finding::warning(
                "environment",
                format!(
                    "{setting} is not a recognised environment name, so it was ignored ({} rules apply).",
                    environment.environment
                ),
                &fix,
                "environments",
            ));
        }
        Report {
            environment,
            environment_check,
            url,
            auth,
            encryption,
            certificates,
            connectivity: None,
            uses_tls,
            insecure_override: plaintext_permitted,
            has_client_certificate: inputs.tls_cert_path.is_some(),
        }
    }

    /// Static checks, then a live connection when they leave a usable configuration.
    pub async fn build_with_connectivity(
        inputs: &Inputs,
        environment: DetectedEnvironment,
        now: u64,
    ) -> Report {
        let mut report = Report::build(inputs, environment, now);
        let mut connectivity = CheckResult::default();
        match report.security_config(inputs) {
            Some(config) if report.is_valid() => {
                let url = inputs.redis_url.as_deref().unwrap_or_default();
                connectivity = check_connectivity(
                    url,
                    &config,
                    inputs
                        .insecure_override
                        .permits(report.environment.environment),
                    &inputs.topology,
                    &report.environment,
                    now,
                )
                .await;
            }
            _ => connectivity.info("skipped", "the configuration has errors; fix them first"),
        }
        report.connectivity = Some(connectivity);
        report
    }

    fn security_config(&self, inputs: &Inputs) -> Option<SecurityConfig> {
        let url_password = inputs
            .redis_url
            .as_deref()
            .and_then(|u| RedisTarget::parse(u, true).ok())
            .and_then(|t| t.password);
        let min_tls_version = inputs.parsed_min_tls_version().unwrap_or(
            if self.environment.environment == Environment::Production {
                TlsVersion::V1_3
            } else {
                TlsVersion::V1_2
            },
        );
        let env = self.environment.environment;
        let settings = SecuritySettings {
            redis_auth: inputs.auth_password.clone().or(url_password),
            encryption_key: inputs.encryption_key.clone(),
            use_tls: self.uses_tls,
            tls_ca_path: inputs.tls_ca_path.clone(),
            tls_cert_path: inputs.tls_cert_path.clone(),
            tls_key_path: inputs.tls_key_path.clone(),
            acl_username: inputs.acl_username.clone(),
            min_tls_version: Some(min_tls_version),
            tls_trust_public_roots: inputs.tls_trust_public_roots,
            max_retries: 0,
            ..SecuritySettings::default()
        };
        // The static checks applied the policy; the config records the environment so the
        // live check refuses what the cache would (public roots for discovered hosts).
        let mut config =
            SecurityConfig::new(settings, inputs.insecure_override.permits(env)).ok()?;
        config.environment = env;
        Some(config)
    }

    fn checks(&self) -> impl Iterator<Item = &CheckResult> {
        [
            &self.environment_check,
            &self.url,
            &self.auth,
            &self.encryption,
            &self.certificates,
        ]
        .into_iter()
        .chain(self.connectivity.as_ref())
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.checks().flat_map(|c| c.findings.iter())
    }

    pub fn violations(&self) -> Vec<&Finding> {
        self.findings()
            .filter(|f| f.severity == Severity::Error)
            .collect()
    }

    pub fn is_valid(&self) -> bool {
        self.checks().all(CheckResult::valid)
    }

    pub fn security_level(&self) -> &'static str {
        match (self.is_valid(), self.uses_tls) {
            (false, _) => "INSECURE",
            (true, true) => "HIGH",
            (true, false) => "LOW",
        }
    }

    pub fn tls_status(&self) -> String {
        if !self.url.valid() && self.url.info.get("tls").is_none() {
            return "❌ No valid Redis URL".into();
        }
        if !self.uses_tls {
            return if self.insecure_override {
                "⚠️  Plaintext (REDIS_INSECURE_ALLOW_PLAINTEXT=true)".into()
            } else {
                "❌ No TLS (redis:// URL)".into()
            };
        }
        if !self.url.valid() {
            return "❌ TLS policy violated".into();
        }
        if !self.certificates.valid() {
            return "⚠️  TLS URL but certificate issues".into();
        }
        let trust = if self.certificates.info.contains_key("ca_path") {
            "private CA"
        } else {
            "public CAs"
        };
        let mutual = if self.has_client_certificate {
            ", mutual TLS"
        } else {
            ""
        };
        format!("✅ Valid (rediss://, {trust}{mutual})")
    }

    pub fn encryption_status(&self) -> String {
        let count = self
            .encryption
            .info
            .get("key_count")
            .and_then(Value::as_u64);
        match (self.encryption.valid(), count) {
            (true, Some(1)) => "✅ Valid (Fernet, 1 key)".into(),
            (true, Some(n)) => format!("✅ Valid (Fernet, {n} keys, rotation)"),
            _ if self.encryption.info.get("status") == Some(&json!("Missing")) => {
                "❌ Missing".into()
            }
            _ => "❌ Invalid".into(),
        }
    }

    pub fn auth_status(&self) -> String {
        if self.auth.info.get("status") == Some(&json!("Missing")) {
            return "❌ Missing".into();
        }
        if !self.auth.valid() {
            return "❌ Too weak or conflicting".into();
        }
        let who = match self.auth.info.get("acl") {
            Some(Value::Bool(true)) => "ACL user",
            _ => "password",
        };
        let rating = self.auth.info["strength"]["rating"].as_str().unwrap_or("?");
        format!("✅ Configured ({who}, {rating})")
    }

    pub fn connectivity_status(&self) -> String {
        match &self.connectivity {
            None => "⏭️  Skipped".into(),
            Some(c) if c.info.contains_key("skipped") => {
                "⏭️  Skipped (configuration errors)".into()
            }
            Some(c) if c.valid() => format!(
                "✅ Connected ({}, {} ms round trip)",
                c.info
                    .get("tls_version")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                c.info.get("round_trip_ms").cloned().unwrap_or(json!("?"))
            ),
            Some(_) => "❌ Failed".into(),
        }
    }

    pub fn recommendations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.uses_tls {
            out.push(
                "Move to TLS (rediss://) and remove REDIS_INSECURE_ALLOW_PLAINTEXT.".to_owned(),
            );
        }
        if self.auth.info.get("acl") == Some(&json!(false)) {
            out.push(
                "Use a least-privilege ACL user (REDIS_ACL_USERNAME) instead of the default user."
                    .to_owned(),
            );
        }
        if self.uses_tls
            && !self.has_client_certificate
            && self.environment.environment == Environment::Production
        {
            out.push(
                "Consider mutual TLS (REDIS_TLS_CERT_PATH, REDIS_TLS_KEY_PATH) so a leaked password alone cannot \
                 connect."
                    .to_owned(),
            );
        }
        if self.encryption.info.get("key_count") == Some(&json!(1)) {
            out.push(
                "Plan key rotation: put a new key first in REDIS_ENCRYPTION_KEY and keep the old one until its \
                 entries expire."
                    .to_owned(),
            );
        }
        let expiring = ["days_until_expiry", "ca_days_until_expiry"]
            .iter()
            .filter_map(|k| self.certificates.info.get(*k).and_then(Value::as_i64))
            .any(|days| (0..90).contains(&days));
        if expiring {
            out.push("Plan certificate renewal soon (less than 90 days left).".to_owned());
        }
        out
    }

    pub fn to_value(&self) -> Value {
        let lines = |severity: Severity| -> Vec<String> {
            self.findings()
                .filter(|f| f.severity == severity)
                .map(Finding::one_line)
                .collect()
        };
        let certificate_info = if self.certificates.info.is_empty() {
            Value::Null
        } else {
            Value::Object(self.certificates.info.clone())
        };
        json!({
            "is_valid": self.is_valid(),
            "tls_status": self.tls_status(),
            "encryption_status": self.encryption_status(),
            "auth_status": self.auth_status(),
            "connectivity_status": self.connectivity_status(),
            "warnings": lines(Severity::Warning),
            "errors": lines(Severity::Error),
            "recommendations": self.recommendations(),
            "certificate_info": certificate_info,
            "environment": self.environment.environment.as_str(),
            "environment_signal": self.environment.signal,
            "security_level": self.security_level(),
            "url_info": Value::Object(self.url.info.clone()),
            "auth_info": Value::Object(self.auth.info.clone()),
            "key_info": Value::Object(self.encryption.info.clone()),
            "connectivity_info": self.connectivity.as_ref().map(|c| Value::Object(c.info.clone())),
            "findings": serde_json::to_value(self.findings().collect::<Vec<_>>()).unwrap_or(Value::Null),
        })
    }

    /// One error listing every violation, or None when the configuration is valid.
    pub fn startup_error(&self) -> Option<Error> {
        let violations = self.violations();
        if violations.is_empty() {
            return None;
        }
        let mut message = format!(
            "Redis security validation failed in the {} environment (detected from {}): {} problem(s) must be \
             fixed before this service may start.\n",
            self.environment.environment,
            self.environment.signal,
            violations.len()
        );
        for (n, finding) in violations.iter().enumerate() {
            // Writing to a String cannot fail.
            let _ = write!(
                message,
                "\n  {}. [{}] {}",
                n + 1,
                finding.check,
                finding.message
            );
            if !finding.fix.is_empty() {
                let _ = write!(message, "\n     Fix:  {}", finding.fix);
            }
            let _ = write!(message, "\n     Docs: {}", finding.doc);
        }
        let listed: Vec<Value> = violations
            .iter()
            .map(|f| serde_json::to_value(f).unwrap_or(Value::Null))
            .collect();
        let mut error = Error::configuration(message)
            .code(ErrorCode::SecurityValidationFailed)
            .with("environment", self.environment.environment.as_str())
            .with("environment_signal", self.environment.signal.clone())
            .with("violations", Value::Array(listed));
        if let Some(url) = self.url.info.get("redis_url") {
            error = error.with("redis_url", url.clone());
        }
        Some(error)
    }

    /// The report as Python sees it: `to_value` plus the one-line summary.
    pub fn document(&self) -> Value {
        let mut value = self.to_value();
        value["success_line"] = Value::String(self.success_line());
        value
    }

    pub fn success_line(&self) -> String {
        let warnings = self
            .findings()
            .filter(|f| f.severity == Severity::Warning)
            .count();
        format!(
            "Redis security validation passed: {} environment (detected from {}), security level {}, {}, {} \
             warning(s)",
            self.environment.environment,
            self.environment.signal,
            self.security_level(),
            self.url
                .info
                .get("redis_url")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            warnings
        )
    }
}
