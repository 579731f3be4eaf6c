//! Arguments from Python that need more than PyO3's extraction: cache keys, secrets and
//! lists of names. Each is checked here once, at the boundary, and a failure never echoes the
//! value.

use crate::errors::to_py_err;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use secure_redis_core::cache::scope::validate_scope_name;
use secure_redis_core::crypto::Secret;
use secure_redis_core::error::{Error, ErrorCode};

/// A cache key from Python: a str that encodes to UTF-8. Its length and emptiness are the
/// core's to check (once, in the cache method the key is passed to).
pub fn key_arg(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    text_arg(obj, "Cache key", ErrorCode::InvalidKey)
}

/// A tenant scope's name from Python, checked whole (a str of 1 to 1,024 UTF-8 bytes).
pub fn scope_arg(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let name = text_arg(obj, "Scope name", ErrorCode::InvalidScope)?;
    validate_scope_name(&name).map_err(|error| to_py_err(obj.py(), &error))?;
    Ok(name)
}

/// A str that encodes to UTF-8, `what` (singular, capitalised) for the messages.
fn text_arg(obj: &Bound<'_, PyAny>, what: &str, code: ErrorCode) -> PyResult<String> {
    let py = obj.py();
    let text = if let Ok(s) = obj.cast::<PyString>() {
        s.to_str().map(str::to_owned).map_err(|_| {
            to_py_err(
                py,
                &Error::validation(format!(
                    "{what} is not valid Unicode (it holds a lone surrogate)."
                ))
                .code(code),
            )
        })?
    } else {
        let type_name = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        return Err(to_py_err(
            py,
            &Error::validation(format!("{what}s must be str, got {type_name}."))
                .with("type", type_name)
                .code(code),
        ));
    };
    Ok(text)
}

/// A password or key from Python: str, UTF-8 bytes, or a wrapper with `get_secret_value()`
/// returning one of them (pydantic's `SecretStr`/`SecretBytes`, found by duck typing so
/// pydantic is never imported). The revealed value lives only until it is copied into the
/// core `Secret` here. Conversion failures are reported without the value: Python's own
/// UnicodeEncodeError would carry the whole string.
pub fn secret_arg(value: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<Secret>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let py = value.py();
    let revealed;
    let value = if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() {
        value
    } else if value.hasattr(intern!(py, "get_secret_value"))? {
        // The wrapper's own exception is not chained: its message might quote the value.
        revealed = value
            .call_method0(intern!(py, "get_secret_value"))
            .map_err(|e| {
                let error_type = e
                    .get_type(py)
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                to_py_err(
                    py,
                    &Error::configuration(format!(
                        "{field}.get_secret_value() raised {error_type}."
                    ))
                    .with("field", field)
                    .code(secret_code(field)),
                )
            })?;
        &revealed
    } else {
        value
    };
    let code = secret_code(field);
    let refuse = |why: String| {
        to_py_err(
            py,
            &Error::configuration(format!("{field} {why}"))
                .with("field", field)
                .code(code),
        )
    };
    if let Ok(text) = value.cast::<PyString>() {
        return match text.to_str() {
            Ok(text) => Ok(Some(Secret::new(text))),
            Err(_) => Err(refuse(
                "is not valid Unicode text (it holds a lone surrogate).".into(),
            )),
        };
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return match std::str::from_utf8(bytes.as_bytes()) {
            Ok(text) => Ok(Some(Secret::new(text))),
            Err(_) => Err(refuse("bytes are not UTF-8.".into())),
        };
    }
    let type_name = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(refuse(format!(
        "must be str or bytes (or an object whose get_secret_value() returns one, such as \
         pydantic's SecretStr), not {type_name}."
    )))
}

/// The error code for a refused secret: the encryption key has its own.
fn secret_code(field: &str) -> ErrorCode {
    if field == "encryption_key" {
        ErrorCode::InvalidEncryptionKey
    } else {
        ErrorCode::InvalidSecret
    }
}

/// A list of names from Python: None, a str (one name; "" is none, as `if names:` read it) or
/// an iterable of str.
pub fn text_list_arg(
    value: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<Vec<String>>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_string_lossy().into_owned();
        return Ok(Some(if text.is_empty() { vec![] } else { vec![text] }));
    }
    value.extract::<Vec<String>>().map(Some).map_err(|_| {
        to_py_err(
            value.py(),
            &Error::configuration(format!("{field} must be a list of str."))
                .with("field", field)
                .code(ErrorCode::InvalidSecurityConfig),
        )
    })
}
