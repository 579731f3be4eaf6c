//! AI key names: `ai_cache:op:{operation}|txt:{digest}[|opts:{digest}][|q:{digest}]`.
//!
//! The digests are HMAC-SHA256 (first 128 bits, hex) under a naming key: derived from the
//! encryption key for the Redis cache (processes sharing the key name entries alike, and
//! nobody without it can test guesses against the key names in Redis), random per process for
//! the in-memory cache (its keys never leave the process). The one implementation of the
//! scheme; `key_names_match_the_fixed_vector` pins it, since a change silently empties every
//! deployed cache.

use crate::crypto::keyring::name_digest as digest;
use crate::error::{Error, ErrorCode, Result};
use serde_json::Value;

pub const KEY_PREFIX: &str = "ai_cache:";
const OPERATION_PREFIX: &str = "ai_cache:op:";

/// Operation names go into key names verbatim, so they must be short identifiers.
pub fn validate_operation(operation: &str) -> Result<()> {
    let ok = !operation.is_empty()
        && operation.len() <= 64
        && operation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "Operation {operation:?} must be 1 to 64 characters of letters, digits, '_', '-' or '.'"
        ))
        .with("operation", operation)
        .code(ErrorCode::InvalidOperation))
    }
}

/// The operation an AI key name was built for (None for other keys).
pub fn operation_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(OPERATION_PREFIX)?;
    Some(rest.split('|').next().unwrap_or(rest))
}

/// Writes `value` as JSON with object keys sorted at every level, so option order never
/// changes a key name.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (n, (k, v)) in entries.into_iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (n, v) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// What of the options goes into a key name: their canonical JSON (None when there are none)
/// and, when `options["question"]` is truthy, the question (its text, or the canonical JSON
/// of a non-string value).
pub fn option_parts(options: Option<&Value>) -> (Option<String>, Option<String>) {
    let Some(options) = options.filter(|o| is_truthy(o)) else {
        return (None, None);
    };
    let question = options
        .get("question")
        .filter(|q| is_truthy(q))
        .map(|q| match q {
            Value::String(text) => text.clone(),
            other => canonical_json(other),
        });
    (Some(canonical_json(options)), question)
}

/// Python's truthiness for JSON values: null, false, 0, "" and empty containers are false.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// The key name of (`text`, `operation`, options) under one naming key. `options` is the
/// canonical JSON of the options (None when there are none), `question` the question's text.
pub fn key_name(
    naming_key: &[u8; 32],
    text: &str,
    operation: &str,
    options: Option<&str>,
    question: Option<&str>,
) -> String {
    let mut key = format!(
        "{OPERATION_PREFIX}{operation}|txt:{}",
        digest(naming_key, b"txt", text.as_bytes())
    );
    if let Some(options) = options {
        key.push_str("|opts:");
        key.push_str(&digest(naming_key, b"opts", options.as_bytes()));
    }
    if let Some(question) = question {
        key.push_str("|q:");
        key.push_str(&digest(naming_key, b"q", question.as_bytes()));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keyring;
    use serde_json::json;

    #[test]
    fn option_order_does_not_matter() {
        let one =
            canonical_json(&json!({"temperature": 0.7, "max": 10, "nested": {"b": 1, "a": 2}}));
        let two =
            canonical_json(&json!({"nested": {"a": 2, "b": 1}, "max": 10, "temperature": 0.7}));
        assert_eq!(one, two);
    }

    /// Key names must not change between releases: a change silently empties every
    /// deployed cache. The expected names were computed independently (Python hmac/hashlib).
    #[test]
    fn key_names_match_the_fixed_vector() {
        let keyring = Keyring::parse("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
        let naming_key = &keyring.naming_keys()[0];
        let options = canonical_json(&json!({"question": "Who jumps?", "max_length": 100}));
        assert_eq!(options, r#"{"max_length":100,"question":"Who jumps?"}"#);
        assert_eq!(
            key_name(naming_key, "The quick brown fox", "qa", Some(&options), Some("Who jumps?")),
            "ai_cache:op:qa|txt:66b5ef11c23444107b202ac866656974|opts:f9b1d801b17f1195f060deefb8fc137a\
             |q:35e0eaa965a7e1aad645edb436cf89f0"
        );
        assert_eq!(
            key_name(naming_key, "The quick brown fox", "summarize", None, None),
            "ai_cache:op:summarize|txt:66b5ef11c23444107b202ac866656974"
        );
    }

    #[test]
    fn option_parts_follow_python_truthiness() {
        assert_eq!(option_parts(None), (None, None));
        assert_eq!(option_parts(Some(&json!({}))), (None, None));
        let (canonical, question) = option_parts(Some(&json!({"question": "", "n": 1})));
        assert_eq!(
            (canonical.as_deref(), question),
            (Some(r#"{"n":1,"question":""}"#), None)
        );
        let (_, question) = option_parts(Some(&json!({"question": "Who jumps?"})));
        assert_eq!(question.as_deref(), Some("Who jumps?"));
        let (_, question) = option_parts(Some(&json!({"question": {"b": 2, "a": 1}})));
        assert_eq!(question.as_deref(), Some(r#"{"a":1,"b":2}"#));
        assert_eq!(option_parts(Some(&json!({"question": 0}))).1, None);
    }
}
