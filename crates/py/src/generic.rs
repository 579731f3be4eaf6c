//! The native half of `GenericRedisCache`: each method converts arguments under the GIL,
//! hands the work to the runtime and returns an asyncio future.

use crate::bridge;
use crate::config::PySecurityConfig;
use crate::errors::{to_py_err, IntoPyResult};
use crate::json;
use crate::json::value_to_py;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};
use secure_redis_core::cache::ai::namespace_report;
use secure_redis_core::cache::generic::RedisReport;
use secure_redis_core::cache::options::validate_key;
use secure_redis_core::cache::options::{AI_RANGES, GENERIC_RANGES};
use secure_redis_core::cache::stats::average_ms;
use secure_redis_core::cache::{CacheOptions, GenericCache};
use secure_redis_core::clock::{days_until, unix_now};
use secure_redis_core::config::SecurityConfig;
use secure_redis_core::connection::{redact_url, TopologySpec};
use secure_redis_core::env::{self, insecure_override};
use secure_redis_core::environment::detect;
use secure_redis_core::error::Error;
use secure_redis_core::validate::connectivity::check_live;
use secure_redis_core::validate::{Inputs, Report};
use std::sync::Arc;

#[pyclass(name = "GenericCacheCore", module = "secure_redis._native", frozen)]
pub struct PyGenericCache {
    core: Arc<GenericCache>,
    config: Arc<SecurityConfig>,
    insecure_override: bool,
    url: String,
}

fn none(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

fn py_bool(py: Python<'_>, value: bool) -> PyResult<Py<PyAny>> {
    Ok(PyBool::new(py, value).to_owned().into_any().unbind())
}

/// A cache key from Python: a str that encodes to UTF-8, non-empty and not too long.
/// The value of an opened entry, or None (a miss, with a warning) when its JSON does not
/// parse: a genuine token can only carry bad JSON if someone holding the key wrote it.
fn value_or_miss<'py>(py: Python<'py>, key: &str, json: &[u8]) -> Option<Bound<'py, PyAny>> {
    match json::loads(py, json) {
        Ok(value) => Some(value),
        Err(_) => {
            let logger = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", ("secure_redis.tamper",)));
            if let Ok(logger) = logger {
                let _ = logger.call_method1(
                    "warning",
                    (format!(
                        "Cache entry {key:?} holds malformed JSON and is treated as a miss"
                    ),),
                );
            }
            None
        }
    }
}

pub fn key_arg(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = obj.py();
    let text = match obj.cast::<PyString>() {
        Ok(s) => s.to_str().map(str::to_owned).map_err(|_| {
            to_py_err(
                py,
                &Error::validation("Cache key is not valid Unicode (it holds a lone surrogate).")
                    .error_type("invalid_key"),
            )
        })?,
        Err(_) => {
            let type_name = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(to_py_err(
                py,
                &Error::validation(format!("Cache keys must be str, got {type_name}."))
                    .with("type", type_name)
                    .error_type("invalid_key"),
            ));
        }
    };
    validate_key(&text).py_err(py)?;
    Ok(text)
}

impl PyGenericCache {
    /// For the AI bindings, which work on the same core.
    pub(super) fn core(&self) -> &Arc<GenericCache> {
        &self.core
    }
}

#[pymethods]
impl PyGenericCache {
    #[new]
    #[pyo3(signature = (
        redis_url, security_config, default_ttl, enable_l1_cache, l1_cache_size, compression_threshold,
        compression_level, profile="generic", cluster=false, cluster_nodes=None, sentinel_nodes=None,
        sentinel_master=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        redis_url: &str,
        security_config: &PySecurityConfig,
        default_ttl: i64,
        enable_l1_cache: bool,
        l1_cache_size: i64,
        compression_threshold: i64,
        compression_level: i64,
        profile: &str,
        cluster: bool,
        cluster_nodes: Option<Vec<String>>,
        sentinel_nodes: Option<Vec<String>>,
        sentinel_master: Option<String>,
    ) -> PyResult<Self> {
        let ranges = if profile == "ai" {
            &AI_RANGES
        } else {
            &GENERIC_RANGES
        };
        let options = CacheOptions::validated_with(
            ranges,
            default_ttl,
            enable_l1_cache,
            l1_cache_size,
            compression_threshold,
            compression_level,
        )
        .py_err(py)?;
        let insecure_override = insecure_override(&env::process);
        // Arguments win; without any, the environment chooses (one node when it says nothing).
        let from_env = TopologySpec::from_env(&env::process);
        let mut topology = TopologySpec {
            cluster,
            cluster_nodes: cluster_nodes.unwrap_or_default(),
            sentinel_nodes: sentinel_nodes.unwrap_or_default(),
            sentinel_master,
            sentinel_password: from_env.sentinel_password.clone(),
            sentinel_username: from_env.sentinel_username.clone(),
        };
        if topology.is_standalone() {
            topology = from_env;
        }
        let core = GenericCache::with_topology(
            redis_url,
            options,
            &security_config.inner,
            insecure_override,
            &topology,
        )
        .py_err(py)?;
        Ok(PyGenericCache {
            url: core.connection().display().to_owned(),
            core: Arc::new(core),
            config: security_config.inner.clone(),
            insecure_override,
        })
    }

    /// The Redis URL without credentials.
    #[getter]
    fn redis_url(&self) -> &str {
        &self.url
    }

    #[getter]
    fn uses_tls(&self) -> bool {
        self.core.connection().is_tls()
    }

    /// Whether a live Redis connection exists right now (no I/O).
    #[getter]
    fn available(&self) -> bool {
        self.core.connection_state().connected
    }

    #[getter]
    fn last_error(&self) -> Option<String> {
        self.core.connection_state().last_error
    }

    /// The server was reached but refused us (credentials, certificate, not TLS).
    #[getter]
    fn rejected(&self) -> bool {
        self.core.connection_state().rejected
    }

    fn connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        bridge::spawn(py, async move { core.connect().await }, |py, ok| {
            py_bool(py, ok)
        })
    }

    fn disconnect(&self) {
        self.core.disconnect();
    }

    /// Resolves to the value, or to `miss` when the key is absent, expired or rejected.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        miss: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        if let Some(json) = self.core.get_local(&key) {
            let value = value_or_miss(py, &key, &json).unwrap_or_else(|| miss.bind(py).clone());
            return bridge::ready(py, value);
        }
        let core = self.core.clone();
        bridge::spawn(
            py,
            async move {
                let found = core.get_remote(&key).await;
                Ok((key, found))
            },
            move |py, (key, found)| {
                Ok(found
                    .and_then(|json| value_or_miss(py, &key, &json))
                    .map_or(miss, |value| value.unbind()))
            },
        )
    }

    #[pyo3(signature = (key, value, ttl=None))]
    fn set<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        ttl: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let json: Arc<[u8]> = Arc::from(json::dumps(value).py_err(py)?);
        let core = self.core.clone();
        bridge::spawn(
            py,
            async move { core.set(&key, json, ttl).await },
            |py, ()| none(py),
        )
    }

    fn delete<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let core = self.core.clone();
        bridge::spawn(py, async move { core.delete(&key).await }, |py, found| {
            py_bool(py, found)
        })
    }

    fn exists<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let core = self.core.clone();
        bridge::spawn(py, async move { core.exists(&key).await }, |py, found| {
            py_bool(py, found)
        })
    }

    fn get_ttl<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let core = self.core.clone();
        bridge::spawn(py, async move { core.get_ttl(&key).await }, |py, ttl| {
            Ok(ttl.into_pyobject(py)?.unbind())
        })
    }

    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys = keys
            .iter()
            .map(key_arg)
            .collect::<PyResult<Vec<String>>>()?;
        let core = self.core.clone();
        bridge::spawn(
            py,
            async move {
                let found = core.get_many(&keys).await?;
                Ok((keys, found))
            },
            |py, (keys, found)| {
                let out = PyDict::new(py);
                for (key, json) in keys.into_iter().zip(found) {
                    if let Some(value) = json.and_then(|json| value_or_miss(py, &key, &json)) {
                        out.set_item(key, value)?;
                    }
                }
                Ok(out.into_any().unbind())
            },
        )
    }

    #[pyo3(signature = (mapping, ttl=None))]
    fn set_many<'py>(
        &self,
        py: Python<'py>,
        mapping: &Bound<'py, PyDict>,
        ttl: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut items = Vec::with_capacity(mapping.len());
        for (key, value) in mapping.iter() {
            let key = key_arg(&key)?;
            items.push((key, Arc::from(json::dumps(&value).py_err(py)?)));
        }
        let core = self.core.clone();
        bridge::spawn(
            py,
            async move { core.set_many(items, ttl).await },
            |py, ()| none(py),
        )
    }

    fn invalidate_pattern<'py>(
        &self,
        py: Python<'py>,
        pattern: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        bridge::spawn(
            py,
            async move { core.invalidate_pattern(&pattern).await },
            |py, n| Ok(n.into_pyobject(py)?.into_any().unbind()),
        )
    }

    fn clear<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        bridge::spawn(py, async move { core.clear().await }, |py, n| {
            Ok(n.into_pyobject(py)?.into_any().unbind())
        })
    }

    fn ping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        bridge::spawn(py, async move { Ok(core.ping().await) }, |py, ok| {
            py_bool(py, ok)
        })
    }

    /// Statistics as a dict; asks Redis for its key count. With `namespace="ai"`, only the
    /// `ai_cache:` keys are counted and INFO memory/clients figures are added.
    #[pyo3(signature = (namespace=None))]
    fn stats<'py>(&self, py: Python<'py>, namespace: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        let url = self.url.clone();
        let ai_namespace = namespace == Some("ai");
        bridge::spawn(
            py,
            async move {
                if ai_namespace {
                    let ns = namespace_report(core.connection()).await;
                    let redis = RedisReport {
                        reachable: ns.reachable,
                        keys: ns.keys,
                    };
                    Ok((redis, Some(ns), core))
                } else {
                    Ok((core.redis_report().await, None, core))
                }
            },
            move |py, (redis, ns, core)| {
                let state = core.connection_state();
                let s = core.stats();
                let out = PyDict::new(py);

                let r = PyDict::new(py);
                r.set_item(
                    "status",
                    if state.connected && redis.reachable {
                        "connected"
                    } else {
                        "unavailable"
                    },
                )?;
                r.set_item("url", &url)?;
                r.set_item("tls", core.connection().is_tls())?;
                r.set_item("keys", redis.keys)?;
                r.set_item("reconnects", state.reconnects)?;
                r.set_item("topology", state.topology)?;
                r.set_item("nodes", nodes_list(py, &state.nodes)?)?;
                r.set_item("consecutive_failures", state.consecutive_failures)?;
                r.set_item("last_error", state.last_error)?;
                if let Some(ns) = ns {
                    r.set_item("memory_used", ns.memory_used)?;
                    r.set_item("memory_used_bytes", ns.memory_used_bytes)?;
                    r.set_item("connected_clients", ns.connected_clients)?;
                }
                out.set_item("redis", r)?;

                let m = PyDict::new(py);
                let (entries, limit) = core
                    .l1()
                    .map(|l1| (l1.len(), l1.capacity()))
                    .unwrap_or((0, 0));
                m.set_item("enabled", core.l1().is_some())?;
                m.set_item("memory_cache_entries", entries)?;
                m.set_item("memory_cache_size_limit", limit)?;
                m.set_item("memory_cache_utilization", format!("{entries}/{limit}"))?;
                out.set_item("memory", m)?;

                let p = PyDict::new(py);
                p.set_item("gets", s.gets)?;
                p.set_item("hits", s.l1_hits + s.redis_hits)?;
                p.set_item("l1_hits", s.l1_hits)?;
                p.set_item("redis_hits", s.redis_hits)?;
                p.set_item("misses", s.misses)?;
                p.set_item("hit_ratio", s.hit_ratio())?;
                p.set_item("sets", s.sets)?;
                p.set_item("deletes", s.deletes)?;
                p.set_item("redis_failures", s.redis_failures)?;
                p.set_item("l1_only_writes", s.l1_only_writes)?;
                p.set_item("rejected_entries", s.rejected_entries)?;
                out.set_item("performance", p)?;

                let e = PyDict::new(py);
                e.set_item("enabled", true)?;
                e.set_item("algorithm", "Fernet (AES-128-CBC + HMAC-SHA256)")?;
                e.set_item("plaintext_bytes", s.plaintext_bytes)?;
                e.set_item("stored_bytes", s.stored_bytes)?;
                e.set_item(
                    "size_overhead_ratio",
                    if s.plaintext_bytes == 0 {
                        0.0
                    } else {
                        s.stored_bytes as f64 / s.plaintext_bytes as f64
                    },
                )?;
                e.set_item("compressed_writes", s.compressed_writes)?;
                e.set_item("encrypt_operations", s.encodes)?;
                e.set_item("decrypt_operations", s.decodes)?;
                e.set_item("avg_encrypt_ms", average_ms(s.encode_seconds, s.encodes))?;
                e.set_item("avg_decrypt_ms", average_ms(s.decode_seconds, s.decodes))?;
                out.set_item("encryption", e)?;
                Ok(out.into_any().unbind())
            },
        )
    }

    /// Every static check on this cache's configuration plus a live check through its own
    /// connection; resolves to the report dict.
    fn validate_security<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        let inputs = Inputs::from_config(&self.url, &self.config, self.insecure_override);
        bridge::spawn(
            py,
            async move {
                let env = detect(&env::process);
                let now = unix_now();
                let mut report = Report::build(&inputs, env, now);
                report.connectivity = Some(check_live(&core, &report.environment, now).await);
                Ok(report)
            },
            |py, report| {
                let mut value = report.to_value();
                value["success_line"] = serde_json::json!(report.success_line());
                value_to_py(py, &value)
            },
        )
    }

    /// Configuration and connection facts, without I/O and without secrets.
    fn security_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = self.core.connection_state();
        let c = &self.config;
        let out = PyDict::new(py);
        out.set_item(
            "security_level",
            if self.core.connection().is_tls() {
                "HIGH"
            } else {
                "LOW"
            },
        )?;
        let conf = PyDict::new(py);
        conf.set_item("has_authentication", true)?;
        conf.set_item("tls_enabled", self.core.connection().is_tls())?;
        conf.set_item("acl_configured", c.acl_username.is_some())?;
        conf.set_item("certificate_verification", true)?;
        conf.set_item("private_ca", c.tls_ca_path.is_some())?;
        conf.set_item("mutual_tls", c.tls_cert_path.is_some())?;
        conf.set_item("min_tls_version", c.min_tls_version.as_str())?;
        conf.set_item("encryption", "Fernet")?;
        conf.set_item("encryption_keys", c.keyring.len())?;
        conf.set_item("connection_timeout", c.connection_timeout.as_secs_f64())?;
        conf.set_item("socket_timeout", c.socket_timeout.as_secs_f64())?;
        conf.set_item("max_retries", c.max_retries)?;
        out.set_item("configuration", conf)?;
        let conn = PyDict::new(py);
        conn.set_item("redis_url", &self.url)?;
        conn.set_item("connected", state.connected)?;
        conn.set_item("reconnects", state.reconnects)?;
        conn.set_item("last_error", state.last_error)?;
        if let Some(tls) = state.tls {
            conn.set_item("tls_version", tls.protocol)?;
            conn.set_item("cipher_suite", tls.cipher_suite)?;
            conn.set_item("server_certificate_subject", tls.server_subject)?;
            conn.set_item(
                "server_certificate_days_until_expiry",
                tls.server_not_after.map(|t| days_until(t, unix_now())),
            )?;
        }
        conn.set_item("topology", state.topology)?;
        conn.set_item("nodes", nodes_list(py, &state.nodes)?)?;
        out.set_item("connection", conn)?;
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!("GenericCacheCore(redis_url={:?})", redact_url(&self.url))
    }
}

/// Every node the connection reached (address without credentials, role, TLS version and
/// certificate expiry), for reports and health endpoints.
fn nodes_list<'py>(
    py: Python<'py>,
    nodes: &[secure_redis_core::connection::NodeReport],
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let list = pyo3::types::PyList::empty(py);
    for node in nodes {
        let entry = PyDict::new(py);
        entry.set_item("address", &node.address)?;
        entry.set_item("role", node.role)?;
        if let Some(tls) = &node.tls {
            entry.set_item("tls_version", &tls.protocol)?;
            entry.set_item("server_certificate_subject", &tls.server_subject)?;
            entry.set_item(
                "server_certificate_days_until_expiry",
                tls.server_not_after.map(|t| days_until(t, unix_now())),
            )?;
        }
        list.append(entry)?;
    }
    Ok(list)
}
