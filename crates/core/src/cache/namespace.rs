//! A cache's namespace: the prefix in front of every key it stores in Redis, and the one place
//! that turns a caller's key or glob into a Redis name or a SCAN pattern.
//!
//! Invariants a reader must not break:
//! * The default namespace is empty, so a cache without one keeps today's key names.
//! * Below the public API every tier uses the full name (`{namespace}{key}`): Redis, the L1
//!   tier, the dirty set of the repair and the key binding the codec seals into each entry.
//! * A namespace is printable ASCII without spaces; glob metacharacters are allowed in it but
//!   always escaped in the patterns made here, so `invalidate_pattern` and SCAN never reach
//!   past the prefix.

use crate::error::{Error, ErrorCode, Result};
use std::borrow::Cow;

/// Longest namespace we accept, in bytes: it is repeated in every key name.
pub const MAX_NAMESPACE_BYTES: usize = 128;

const GLOB_SPECIALS: &[u8] = b"*?[]\\";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
    /// `prefix` with its glob metacharacters escaped, ready to start a pattern.
    escaped: String,
}

/// `text` with every Redis glob metacharacter escaped, so it matches only itself.
pub fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && GLOB_SPECIALS.contains(&(c as u8)) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Namespace {
    /// A checked namespace; "" is the default (no prefix).
    pub fn new(prefix: &str) -> Result<Namespace> {
        let refuse = |why: &str| {
            Err(Error::configuration(format!(
                "namespace must be at most {MAX_NAMESPACE_BYTES} printable ASCII characters without spaces \
                 (for example \"billing:\"); {why}"
            ))
            .with("namespace_bytes", prefix.len())
            .code(ErrorCode::InvalidCacheParameter))
        };
        if prefix.len() > MAX_NAMESPACE_BYTES {
            return refuse("this one is longer");
        }
        if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return refuse("this one holds a space, a control character or non-ASCII text");
        }
        Ok(Namespace {
            prefix: prefix.to_owned(),
            escaped: escape_glob(prefix),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// The namespace `{self}{suffix}`: a tenant scope's, whose suffix the cache makes (ASCII
    /// without spaces), so it is not held to the caller's length limit.
    pub fn within(&self, suffix: &str) -> Namespace {
        let prefix = format!("{}{suffix}", self.prefix);
        Namespace {
            escaped: escape_glob(&prefix),
            prefix,
        }
    }

    /// Whether a Redis name lies inside this namespace.
    pub fn contains(&self, name: &str) -> bool {
        name.starts_with(&self.prefix)
    }

    pub fn is_empty(&self) -> bool {
        self.prefix.is_empty()
    }

    /// The Redis name of `key`; borrowed (no allocation) in the default namespace.
    pub fn name<'a>(&self, key: &'a str) -> Cow<'a, str> {
        if self.prefix.is_empty() {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(format!("{}{key}", self.prefix))
        }
    }

    /// The caller's key for a Redis name of this namespace.
    pub fn key_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_prefix(self.prefix.as_str())
    }

    /// The SCAN pattern for a caller's glob: matches only names inside the namespace.
    pub fn pattern(&self, glob: &str) -> String {
        format!("{}{glob}", self.escaped)
    }

    /// Every name of the namespace (every name of the database for the default one).
    pub fn everything(&self) -> String {
        self.pattern("*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pattern::glob_match;

    #[test]
    fn the_default_keeps_names_and_patterns_unchanged() {
        let ns = Namespace::default();
        assert!(matches!(ns.name("user:1"), Cow::Borrowed("user:1")));
        assert_eq!(ns.pattern("user:*"), "user:*");
        assert_eq!(ns.everything(), "*");
        assert_eq!(ns.key_of("user:1"), Some("user:1"));
        assert_eq!(Namespace::new("").unwrap(), ns);
    }

    #[test]
    fn names_and_patterns_stay_inside_the_prefix() {
        let ns = Namespace::new("app[1]*:").unwrap();
        assert_eq!(ns.name("k"), "app[1]*:k");
        assert_eq!(ns.key_of("app[1]*:k"), Some("k"));
        assert_eq!(ns.key_of("other:k"), None);
        let all = ns.everything();
        assert_eq!(all, "app\\[1\\]\\*:*");
        assert!(glob_match(all.as_bytes(), b"app[1]*:k"));
        // Unescaped, "app[1]*:*" would also match these.
        for outside in ["app1:k", "app1x:k", "k", "app[1]:k"] {
            assert!(!glob_match(all.as_bytes(), outside.as_bytes()), "{outside}");
        }
        assert!(glob_match(ns.pattern("u?").as_bytes(), b"app[1]*:u1"));
    }

    #[test]
    fn bad_namespaces_are_configuration_errors() {
        for bad in ["has space", "tab\t", "caf\u{e9}:", "new\nline"] {
            let err = Namespace::new(bad).unwrap_err();
            assert_eq!(err.context["error_type"], "invalid_cache_parameter");
        }
        assert!(Namespace::new(&"n".repeat(MAX_NAMESPACE_BYTES + 1)).is_err());
        assert!(Namespace::new(&"n".repeat(MAX_NAMESPACE_BYTES)).is_ok());
        assert!(Namespace::new("{tenant-7}:cache:").is_ok());
    }
}
