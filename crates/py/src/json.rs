//! Python objects <-> JSON text, without going through Python's `json` module.
//!
//! Only JSON types are accepted (dict with str keys, list, str, int within 64 bits, finite
//! float, bool, None); anything else is a `ValidationError` naming the type and where it sits.
//! Values nest at most `MAX_DEPTH` levels, below serde_json's reading limit of 128, so
//! everything we write can be read back.

use crate::errors::{to_py_err, IntoPyResult};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use secure_redis_core::error::{Error, ErrorCode};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::Write;

pub const MAX_DEPTH: usize = 100;

struct Rejection {
    message: String,
    type_name: String,
    path: Vec<String>,
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

fn reject(obj: &Bound<'_, PyAny>, message: String) -> Rejection {
    Rejection {
        message,
        type_name: type_name(obj),
        path: Vec::new(),
    }
}

/// Serializes `obj` to compact JSON.
pub fn dumps(obj: &Bound<'_, PyAny>) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(128);
    write_value(obj, &mut out, 0).map_err(|r| {
        let mut path = String::from("value");
        for segment in r.path.iter().rev() {
            path.push_str(segment);
        }
        Error::validation(format!("Cannot cache {path}: {}", r.message))
            .with("type", r.type_name)
            .with("path", path)
            .code(ErrorCode::UnsupportedValue)
    })?;
    Ok(out)
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // Most cached text needs no escaping at all. Checking that 32 bytes at a time (the check
    // vectorises) and copying is several times faster on long strings than serde_json's
    // byte-by-byte escaper, which still writes every string that does need escaping.
    if needs_no_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

/// Whether serde_json would write `bytes` unchanged: no control character, quote or backslash.
fn needs_no_escape(bytes: &[u8]) -> bool {
    let plain = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
    let mut chunks = bytes.chunks_exact(32);
    let whole = chunks.all(|chunk| chunk.iter().fold(true, |ok, &b| ok & plain(b)));
    whole && chunks.remainder().iter().all(|&b| plain(b))
}

fn write_value(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> Result<(), Rejection> {
    if depth > MAX_DEPTH {
        return Err(reject(
            obj,
            format!("it nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    if obj.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(b) = obj.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|_| {
            reject(
                obj,
                "the string is not valid Unicode (it holds a lone surrogate)".into(),
            )
        })?;
        write_str(text, out);
    } else if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            write!(out, "{v}").expect("vec write");
        } else if let Ok(v) = i.extract::<u64>() {
            write!(out, "{v}").expect("vec write");
        } else {
            return Err(reject(
                obj,
                "the integer does not fit in 64 bits; store it as a string".into(),
            ));
        }
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return Err(reject(
                obj,
                format!("float {v} is not a JSON number (NaN and Infinity cannot be cached)"),
            ));
        }
        serde_json::to_writer(&mut *out, &v).expect("vec write");
    } else if let Ok(d) = obj.cast::<PyDict>() {
        out.push(b'{');
        for (n, (key, value)) in d.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let Ok(key_str) = key.cast::<PyString>() else {
                let mut r = reject(
                    &key,
                    format!(
                        "dict keys must be str, found a key of type {}",
                        type_name(&key)
                    ),
                );
                r.path.push(String::new());
                return Err(r);
            };
            let text = key_str.to_str().map_err(|_| {
                reject(
                    &key,
                    "a dict key is not valid Unicode (lone surrogate)".into(),
                )
            })?;
            write_str(text, out);
            out.push(b':');
            write_value(&value, out, depth + 1).map_err(|mut r| {
                r.path.push(format!("[{text:?}]"));
                r
            })?;
        }
        out.push(b'}');
    } else if let Ok(l) = obj.cast::<PyList>() {
        out.push(b'[');
        for (n, item) in l.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_value(&item, out, depth + 1).map_err(|mut r| {
                r.path.push(format!("[{n}]"));
                r
            })?;
        }
        out.push(b']');
    } else {
        return Err(reject(
            obj,
            format!(
                "type {} is not a JSON type; cache values must be dict, list, str, int, float, bool or None",
                type_name(obj)
            ),
        ));
    }
    Ok(())
}

/// A Python value as a `serde_json::Value`, through the cache's own serializer (so it accepts
/// exactly what the cache can store).
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let bytes = dumps(obj).py_err(obj.py())?;
    serde_json::from_slice(&bytes)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

/// Builds Python objects straight from JSON text.
pub fn loads<'py>(py: Python<'py>, json: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = PySeed(py).deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    value.map_err(|err| {
        to_py_err(
            py,
            &Error::validation(format!("Cached JSON is malformed: {err}"))
                .code(ErrorCode::DeserializationError),
        )
    })
}

struct PySeed<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn py_fail<E: de::Error>(err: PyErr) -> E {
    E::custom(err.to_string())
}

impl<'de, 'py> Visitor<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(o) = v.into_pyobject(self.0);
        Ok(o.into_any())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(o) = v.into_pyobject(self.0);
        Ok(o.into_any())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.0, v).into_any())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(PySeed(self.0))? {
            items.push(item);
        }
        PyList::new(self.0, items)
            .map(pyo3::Bound::into_any)
            .map_err(py_fail)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key_seed(PySeed(self.0))? {
            let value = map.next_value_seed(PySeed(self.0))?;
            dict.set_item(key, value).map_err(py_fail)?;
        }
        Ok(dict.into_any())
    }
}

/// `json_dumps(obj) -> bytes`: the exact serializer the cache uses, exposed for tests and
/// for callers who want to check a value before caching it.
#[pyfunction]
pub fn json_dumps<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = dumps(obj).py_err(py)?;
    Ok(PyBytes::new(py, &bytes))
}

#[pyfunction]
pub fn json_loads<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    loads(py, data)
}
