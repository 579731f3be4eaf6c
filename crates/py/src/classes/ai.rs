//! `AiPolicyCore`: the AI policy (key names, per-operation TTLs, statistics) for Python.
//! Conversion only.

use crate::classes::config::PySecurityConfig;
use crate::convert::value_to_py;
use crate::errors::IntoPyResult;
use crate::json;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use secure_redis_core::ai::{AiPolicy, Tiers};

#[pyclass(name = "AiPolicyCore", module = "secure_redis._native", frozen)]
pub struct PyAiPolicyCore {
    policy: AiPolicy,
}

#[pymethods]
impl PyAiPolicyCore {
    #[new]
    fn new(
        security_config: &PySecurityConfig,
        small: usize,
        medium: usize,
        large: usize,
        default_ttl: u64,
        operation_ttls: Vec<(String, u64)>,
    ) -> Self {
        PyAiPolicyCore {
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

    #[pyo3(signature = (text, operation, options=None, scope=None))]
    fn build_key(
        &self,
        py: Python<'_>,
        text: &str,
        operation: &str,
        options: Option<&Bound<'_, PyDict>>,
        scope: Option<&str>,
    ) -> PyResult<String> {
        let options = options.map(|o| json::to_value(o.as_any())).transpose()?;
        match scope {
            None => self
                .policy
                .build_key_with_options(text, operation, options.as_ref()),
            Some(scope) => self
                .policy
                .build_scoped_key(scope, text, operation, options.as_ref()),
        }
        .py_err(py)
    }

    fn previous_names(&self, key: &str) -> Vec<String> {
        self.policy.previous_names(key)
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
