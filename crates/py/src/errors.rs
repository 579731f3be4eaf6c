//! Core errors become the Python exceptions defined in `secure_redis/exceptions.py`, with
//! `.message` and `.context` intact.

use crate::convert::value_to_py;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use secure_redis_core::error::{Error, ErrorKind};

static EXCEPTIONS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

pub fn to_py_err(py: Python<'_>, err: &Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = EXCEPTIONS
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("secure_redis.exceptions")?.unbind())
            })?
            .bind(py);
        let class = module.getattr(match err.kind {
            ErrorKind::Configuration => "ConfigurationError",
            ErrorKind::Validation => "ValidationError",
            ErrorKind::Infrastructure => "InfrastructureError",
        })?;
        let context = value_to_py(py, &serde_json::Value::Object(err.context.clone()))?;
        Ok(PyErr::from_value(
            class.call1((err.message.clone(), context))?,
        ))
    };
    build().unwrap_or_else(|import_failure| {
        PyRuntimeError::new_err(format!("{} ({import_failure})", err.message))
    })
}

pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|err| to_py_err(py, &err))
    }
}
