//! `MemoryCacheCore`: the in-memory cache (`InMemoryCache`'s native half), for Python.
//! Conversion only.

use crate::args::{key_arg, scope_arg};
use crate::convert::to_py;
use crate::errors::IntoPyResult;
use crate::json;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use secure_redis_core::cache::memory::InMemoryCache;
use std::sync::Arc;

#[pyclass(name = "MemoryCacheCore", module = "secure_redis._native", frozen)]
pub struct PyMemoryCacheCore {
    core: Arc<InMemoryCache>,
}

#[pymethods]
impl PyMemoryCacheCore {
    #[new]
    fn new(py: Python<'_>, default_ttl: i64, max_size: i64) -> PyResult<Self> {
        Ok(PyMemoryCacheCore {
            core: Arc::new(InMemoryCache::new(default_ttl, max_size).py_err(py)?),
        })
    }

    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, miss: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let key = key_arg(key)?;
        match self.core.get(&key).py_err(py)? {
            Some(json) => Ok(json::loads(py, &json)?.unbind()),
            None => Ok(miss),
        }
    }

    #[pyo3(signature = (key, value, ttl=None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<i64>,
    ) -> PyResult<()> {
        let key = key_arg(key)?;
        let json = json::dumps(value).py_err(py)?;
        self.core.set(&key, Arc::from(json), ttl).py_err(py)
    }

    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.core.delete(&key).py_err(py)
    }

    fn exists(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.core.exists(&key).py_err(py)
    }

    fn ttl(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let key = key_arg(key)?;
        self.core.ttl(&key).py_err(py)
    }

    fn invalidate_pattern(&self, py: Python<'_>, pattern: &str) -> PyResult<usize> {
        self.core.invalidate_pattern(pattern).py_err(py)
    }

    fn clear(&self) {
        self.core.clear();
    }

    fn keys(&self) -> Vec<String> {
        self.core.keys()
    }

    fn live_keys(&self) -> Vec<String> {
        self.core.live_keys()
    }

    /// Entries held, expired ones not yet removed included: O(1), no sweep.
    fn len(&self) -> usize {
        self.core.len()
    }

    /// A tenant scope's name, checked as the Redis caches check it (InMemoryCache.scope).
    #[staticmethod]
    fn check_scope_name(name: &Bound<'_, PyAny>) -> PyResult<String> {
        scope_arg(name)
    }

    /// An AI key name built as `AIResponseCache` builds its own, under a key of this process's.
    #[pyo3(signature = (text, operation, options=None))]
    fn build_key(
        &self,
        text: &str,
        operation: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let options = options.map(|o| json::to_value(o.as_any())).transpose()?;
        Ok(self.core.build_key(text, operation, options.as_ref()))
    }

    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.core.stats())
    }
}
