//! Which deployment environment the process runs in, and which signal said so.
//!
//! Detection is deliberately simple and explainable: the first recognised variable wins,
//! `ENFORCE_AUTH=true` forces production rules, and no signal means development. Every
//! report carries the signal so an operator can see *why* a rule applied.

use crate::env::{non_empty, Lookup, ENFORCE_AUTH, ENVIRONMENT_VARIABLES};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Environment {
    Development,
    Testing,
    Staging,
    Production,
}

impl Environment {
    pub fn parse(value: &str) -> Option<Environment> {
        match value.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Some(Environment::Development),
            "testing" | "test" => Some(Environment::Testing),
            "staging" | "stage" => Some(Environment::Staging),
            "production" | "prod" | "live" => Some(Environment::Production),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Testing => "testing",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Minimum Redis password length the environment accepts.
    pub fn min_password_length(self) -> usize {
        match self {
            Environment::Production => 32,
            Environment::Staging => 24,
            Environment::Development | Environment::Testing => 16,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `detect` found; serialized (for `detect_environment()`) as its environment and signal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DetectedEnvironment {
    pub environment: Environment,
    /// Human-readable origin, e.g. `ENVIRONMENT=prod`, `ENFORCE_AUTH=true` or `default`.
    pub signal: String,
    /// Variables that were set to a value this detector does not know (e.g. `ENV=prd`): a
    /// likely typo that would otherwise silently get development rules.
    #[serde(skip)]
    pub unrecognized: Vec<String>,
}

impl serde::Serialize for Environment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl DetectedEnvironment {
    /// An environment as if detected from a signal named `test` (for unit tests).
    #[cfg(test)]
    pub fn fixed(environment: Environment) -> DetectedEnvironment {
        DetectedEnvironment {
            environment,
            signal: "test".into(),
            unrecognized: vec![],
        }
    }
}

pub fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

/// Detects the environment from variables read through `lookup` (the process environment
/// in production, a map in tests).
pub fn detect(lookup: Lookup<'_>) -> DetectedEnvironment {
    let mut unrecognized = Vec::new();
    let mut found = None;
    for name in ENVIRONMENT_VARIABLES {
        if let Some(value) = non_empty(lookup, name) {
            match Environment::parse(&value) {
                Some(environment) if found.is_none() => {
                    found = Some((environment, format!("{name}={}", value.trim())));
                }
                Some(_) => {}
                None => unrecognized.push(format!("{name}={}", value.trim())),
            }
        }
    }
    if lookup(ENFORCE_AUTH).is_some_and(|v| is_truthy(&v)) {
        return DetectedEnvironment {
            environment: Environment::Production,
            signal: "ENFORCE_AUTH=true".into(),
            unrecognized,
        };
    }
    match found {
        Some((environment, signal)) => DetectedEnvironment {
            environment,
            signal,
            unrecognized,
        },
        None => DetectedEnvironment {
            environment: Environment::Development,
            signal: "default (no environment variable set)".into(),
            unrecognized,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_from(pairs: &[(&str, &str)]) -> DetectedEnvironment {
        detect(&crate::env::from_pairs(pairs))
    }

    #[test]
    fn no_signal_is_development() {
        let detected = detect_from(&[]);
        assert_eq!(detected.environment, Environment::Development);
        assert!(detected.signal.starts_with("default"));
    }

    #[test]
    fn first_recognised_variable_wins() {
        let detected = detect_from(&[("ENVIRONMENT", "nonsense"), ("NODE_ENV", "prod")]);
        assert_eq!(detected.environment, Environment::Production);
        assert_eq!(detected.signal, "NODE_ENV=prod");
        let detected = detect_from(&[("ENVIRONMENT", "Stage"), ("NODE_ENV", "prod")]);
        assert_eq!(detected.environment, Environment::Staging);
    }

    #[test]
    fn unrecognized_values_are_reported() {
        let detected = detect_from(&[("ENVIRONMENT", "prd"), ("NODE_ENV", "staging")]);
        assert_eq!(detected.environment, Environment::Staging);
        assert_eq!(detected.unrecognized, vec!["ENVIRONMENT=prd".to_string()]);
    }

    #[test]
    fn enforce_auth_forces_production() {
        let detected = detect_from(&[("ENVIRONMENT", "development"), ("ENFORCE_AUTH", "true")]);
        assert_eq!(detected.environment, Environment::Production);
        assert_eq!(detected.signal, "ENFORCE_AUTH=true");
    }

    #[test]
    fn password_minimums_follow_policy() {
        assert_eq!(Environment::Production.min_password_length(), 32);
        assert_eq!(Environment::Staging.min_password_length(), 24);
        assert_eq!(Environment::Development.min_password_length(), 16);
    }
}
