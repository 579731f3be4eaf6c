//! Rust data as Python objects: `serde_json::Value` (error contexts, validation reports) and
//! any `Serialize` report of the core (statistics, security status), built generically so the
//! bindings never assemble a document by hand.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};
use serde::Serialize;

/// A serde_json value as the equivalent Python object (dict keys keep their order).
pub fn value_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any().unbind(),
            (_, Some(u), _) => u.into_pyobject(py)?.into_any().unbind(),
            (_, _, Some(f)) => PyFloat::new(py, f).into_any().unbind(),
            _ => py.None(),
        },
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(items) => {
            let converted: PyResult<Vec<Py<PyAny>>> =
                items.iter().map(|v| value_to_py(py, v)).collect();
            PyList::new(py, converted?)?.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, value_to_py(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// A core report as a Python dict, with the field names and order of its struct.
pub fn to_py<T: Serialize>(py: Python<'_>, report: &T) -> PyResult<Py<PyAny>> {
    let value = serde_json::to_value(report)
        .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))?;
    value_to_py(py, &value)
}
