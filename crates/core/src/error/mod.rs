//! The one error type of the core. Every variant maps 1:1 onto a Python exception class
//! (`ConfigurationError`, `ValidationError`, `InfrastructureError`), so the binding layer
//! never has to decide what an error *means*.
//!
//! Messages and context values must never contain a password, an encryption key or a URL
//! with credentials: callers pass redacted values only (see `connection::target::redact`).

mod code;

pub use code::ErrorCode;
use serde_json::{Map, Value};
use std::fmt;

/// Which Python exception an error becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration cannot work, or would be insecure: fix the settings.
    Configuration,
    /// A caller passed a value the API does not accept.
    Validation,
    /// The outside world failed (network, Redis, filesystem at run time).
    Infrastructure,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub context: Map<String, Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Map::new(),
        }
    }

    pub fn configuration(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Configuration, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Infrastructure, message)
    }

    /// Adds one context entry; chains like a builder.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    /// Tags the error with its code (`context["error_type"]` for Python).
    pub fn code(self, code: ErrorCode) -> Self {
        self.with("error_type", code.as_str())
    }

    /// The error's code, if it was tagged with one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(self.context.get("error_type")?.as_str()?)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "{} (Context: {})",
                self.message,
                Value::Object(self.context.clone())
            )
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_context_only_when_present() {
        let bare = Error::validation("bad key");
        assert_eq!(bare.to_string(), "bad key");
        let rich = Error::configuration("no password").with("field", "redis_auth");
        assert_eq!(
            rich.to_string(),
            r#"no password (Context: {"field":"redis_auth"})"#
        );
        assert_eq!(rich.kind, ErrorKind::Configuration);
    }
}
