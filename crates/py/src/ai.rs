//! The AI policy (key names, per-operation TTLs, statistics) and the in-memory cache, for
//! Python. Conversion only.

use crate::config::PySecurityConfig;
use crate::errors::IntoPyResult;
use crate::generic::PyGenericCache;
use crate::json::{self, value_to_py};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use secure_redis_core::cache::ai::{canonical_json, AiPolicy, Tiers};
use secure_redis_core::cache::memory::MemoryCache;
use std::sync::Arc;

#[pyclass(name = "AiPolicyCore", module = "secure_redis._native", frozen)]
pub struct PyAiPolicy {
    policy: AiPolicy,
}

#[pymethods]
impl PyAiPolicy {
    #[new]
    fn new(
        security_config: &PySecurityConfig,
        small: usize,
        medium: usize,
        large: usize,
        default_ttl: u64,
        operation_ttls: Vec<(String, u64)>,
    ) -> Self {
        PyAiPolicy {
            policy: AiPolicy::new(
                &security_config.inner.keyring,
                Tiers {
                    small,
                    medium,
                    large,
                },
                default_ttl,
                &operation_ttls,
            ),
        }
    }

    #[pyo3(signature = (text, operation, options=None))]
    fn build_key(
        &self,
        py: Python<'_>,
        text: &str,
        operation: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let (canonical, question) = match options.filter(|o| !o.is_empty()) {
            None => (None, None),
            Some(options) => {
                let parsed: serde_json::Value =
                    serde_json::from_slice(&json::dumps(options.as_any()).py_err(py)?)
                        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
                let question = match options.get_item("question")? {
                    Some(q) if q.is_truthy()? => Some(match q.cast::<PyString>() {
                        Ok(s) => s.to_str()?.to_owned(),
                        Err(_) => canonical_json(&parsed["question"]),
                    }),
                    _ => None,
                };
                (Some(canonical_json(&parsed)), question)
            }
        };
        self.policy
            .build_key(text, operation, canonical.as_deref(), question.as_deref())
            .py_err(py)
    }

    fn previous_names(&self, key: &str) -> Vec<String> {
        self.policy.previous_names(key)
    }

    /// Raises what `set` would raise for this key and value, without writing anything.
    fn check_entry(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        crate::generic::key_arg(key)?;
        json::dumps(value).py_err(py).map(|_| ())
    }

    /// The live entries of `cache`'s L1 tier, as fresh objects (a copy: L1 holds JSON bytes).
    fn l1_entries<'py>(
        &self,
        py: Python<'py>,
        cache: PyRef<'_, PyGenericCache>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        if let Some(l1) = cache.core().l1() {
            for key in l1.live_keys() {
                if let Some(found) = l1.get(&key) {
                    out.set_item(&key, json::loads(py, &found)?)?;
                }
            }
        }
        Ok(out)
    }

    fn clear_l1(&self, cache: PyRef<'_, PyGenericCache>) {
        if let Some(l1) = cache.core().l1() {
            l1.note_write_all(); // a read in flight must not refill what was just cleared
            l1.clear();
        }
    }

    fn ttl_for_key(&self, key: &str) -> Option<u64> {
        self.policy.ttl_for_key(key)
    }

    fn tier_of_text(&self, text: &str) -> &'static str {
        self.policy.tier_of_text(text)
    }

    fn tier_of_key(&self, key: &str) -> &'static str {
        self.policy.tier_of_key(key)
    }

    #[pyo3(signature = (key, hit, seconds))]
    fn record(&self, key: &str, hit: Option<bool>, seconds: f64) {
        self.policy.record(key, hit, seconds);
    }

    #[pyo3(signature = (operation, keys))]
    fn record_invalidation(&self, operation: Option<&str>, keys: u64) {
        self.policy.record_invalidation(operation, keys);
    }

    fn snapshot(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        value_to_py(py, &self.policy.snapshot())
    }
}

#[pyclass(name = "MemoryCacheCore", module = "secure_redis._native", frozen)]
pub struct PyMemoryCache {
    core: Arc<MemoryCache>,
}

#[pymethods]
impl PyMemoryCache {
    #[new]
    fn new(py: Python<'_>, default_ttl: i64, max_size: i64) -> PyResult<Self> {
        Ok(PyMemoryCache {
            core: Arc::new(MemoryCache::new(default_ttl, max_size).py_err(py)?),
        })
    }

    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, miss: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let key = crate::generic::key_arg(key)?;
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
        let key = crate::generic::key_arg(key)?;
        let json = json::dumps(value).py_err(py)?;
        self.core.set(&key, Arc::from(json), ttl).py_err(py)
    }

    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = crate::generic::key_arg(key)?;
        self.core.delete(&key).py_err(py)
    }

    fn exists(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = crate::generic::key_arg(key)?;
        self.core.exists(&key).py_err(py)
    }

    fn ttl(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let key = crate::generic::key_arg(key)?;
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

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.stats();
        let out = PyDict::new(py);
        out.set_item("total_entries", s.entries)?;
        out.set_item("active_entries", s.live_entries)?;
        out.set_item("expired_entries", s.entries - s.live_entries.min(s.entries))?;
        out.set_item("max_size", s.max_size)?;
        out.set_item("default_ttl", s.default_ttl)?;
        out.set_item("hits", s.hits)?;
        out.set_item("misses", s.misses)?;
        out.set_item("evictions", s.evictions)?;
        out.set_item("memory_usage_bytes", s.bytes)?;
        Ok(out)
    }
}
