//! The native half of `GenericRedisCache`: each method converts arguments under the GIL,
//! hands the work to the runtime and returns an asyncio future.

use crate::args::{key_arg, scope_arg};
use crate::classes::config::PySecurityConfig;
use crate::convert::{to_py, value_to_py};
use crate::errors::IntoPyResult;
use crate::futures;
use crate::json;
use crate::logging;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use secure_redis_core::ai::KEY_PREFIX;
use secure_redis_core::cache::options::{validate_key, validate_pattern, CacheProfile};
use secure_redis_core::cache::report::{CacheStats, RedisReport, SecurityStatus};
use secure_redis_core::cache::{CacheOptions, CacheView, GenericRedisCache, Need};
use secure_redis_core::clock::unix_now;
use secure_redis_core::config::PlaintextOverride;
use secure_redis_core::config::SecurityConfig;
use secure_redis_core::connection::{redact_url, TopologySpec};
use secure_redis_core::env::{self, insecure_override};
use secure_redis_core::environment::detect;
use secure_redis_core::validate::connectivity::check_live;
use secure_redis_core::validate::{Inputs, Report};
use std::sync::Arc;

/// Which parameter ranges a cache class enforces: each keeps those of the class it replaces.
#[pyclass(
    name = "CacheProfile",
    module = "secure_redis._native",
    eq,
    eq_int,
    frozen,
    from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PyCacheProfile {
    #[pyo3(name = "GENERIC")]
    Generic,
    #[pyo3(name = "AI")]
    Ai,
}

impl From<PyCacheProfile> for CacheProfile {
    fn from(profile: PyCacheProfile) -> CacheProfile {
        match profile {
            PyCacheProfile::Generic => CacheProfile::Generic,
            PyCacheProfile::Ai => CacheProfile::Ai,
        }
    }
}

#[pyclass(name = "GenericCacheCore", module = "secure_redis._native", frozen)]
pub struct PyGenericCacheCore {
    /// The cache itself (connection-level calls) or one tenant scope of it (entry calls).
    view: CacheView,
    core: Arc<GenericRedisCache>,
    config: Arc<SecurityConfig>,
    insecure_override: PlaintextOverride,
    url: String,
}

fn py_bool(py: Python<'_>, value: bool) -> Py<PyAny> {
    PyBool::new(py, value).to_owned().into_any().unbind()
}

/// The value of an opened entry, or None (a miss, counted by the core, with the warning it
/// says is due) when its JSON does not parse: a genuine token can only carry bad JSON if
/// someone holding the key wrote it.
fn value_or_miss<'py>(
    py: Python<'py>,
    core: &GenericRedisCache,
    key: &str,
    json: &[u8],
) -> Option<Bound<'py, PyAny>> {
    if let Ok(value) = json::loads(py, json) {
        Some(value)
    } else {
        if let Some(warning) = core.reject_malformed_json(key) {
            logging::warn_now(py, "secure_redis.tamper", warning);
        }
        None
    }
}

#[pymethods]
impl PyGenericCacheCore {
    #[new]
    #[pyo3(signature = (
        redis_url, security_config, default_ttl, enable_l1_cache, l1_cache_size, compression_threshold,
        compression_level, profile=PyCacheProfile::Generic, cluster=false, cluster_nodes=None, sentinel_nodes=None,
        sentinel_master=None, namespace="", share_connection=true
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
        profile: PyCacheProfile,
        cluster: bool,
        cluster_nodes: Option<Vec<String>>,
        sentinel_nodes: Option<Vec<String>>,
        sentinel_master: Option<String>,
        namespace: &str,
        share_connection: bool,
    ) -> PyResult<Self> {
        let options = CacheOptions::validated_with(
            CacheProfile::from(profile).ranges(),
            default_ttl,
            enable_l1_cache,
            l1_cache_size,
            compression_threshold,
            compression_level,
        )
        .and_then(|options| options.with_namespace(namespace))
        .map(|options| CacheOptions {
            share_connection,
            ..options
        })
        .py_err(py)?;
        let insecure_override = insecure_override(&env::process);
        let topology = TopologySpec {
            cluster,
            cluster_nodes: cluster_nodes.unwrap_or_default(),
            sentinel_nodes: sentinel_nodes.unwrap_or_default(),
            sentinel_master,
            ..TopologySpec::default()
        }
        .or_from_env(&env::process);
        let core = GenericRedisCache::with_topology(
            redis_url,
            options,
            &security_config.inner,
            insecure_override,
            &topology,
        )
        .py_err(py)?;
        let core = Arc::new(core);
        Ok(PyGenericCacheCore {
            url: core.connection().display().to_owned(),
            view: CacheView::whole(core.clone()),
            core,
            config: security_config.inner.clone(),
            insecure_override: PlaintextOverride::read(&env::process),
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

    /// How many caches of this process share this cache's connection now (itself included).
    #[getter]
    fn shared_by(&self) -> usize {
        self.core.sharing()
    }

    /// Equal for caches sharing one backend (same settings and secrets); `get_or_set` shares
    /// in-flight loads between them.
    #[getter]
    fn backend_id(&self) -> usize {
        self.core.backend_id()
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
        if let Some(connected) = self.core.connect_without_io() {
            return futures::ready(py, py_bool(py, connected).into_bound(py));
        }
        let core = self.core.clone();
        futures::spawn(py, async move { core.connect().await }, |py, ok| {
            Ok(py_bool(py, ok))
        })
    }

    /// On a scope's view, nothing: the view holds nothing of its own, and the cache it came
    /// from (which other views share) stays connected.
    fn disconnect(&self) {
        if !self.view.is_scoped() {
            self.core.disconnect();
        }
    }

    /// Resolves to the value, or to `miss` when the key is absent, expired or rejected.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        miss: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        if let Some(core) = self.view.now() {
            if let Some(json) = core.get_local(&key).py_err(py)? {
                let value =
                    value_or_miss(py, &core, &key, &json).unwrap_or_else(|| miss.bind(py).clone());
                return futures::ready(py, value);
            }
        } else {
            validate_key(&key).py_err(py)?;
        }
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                let Some(core) = view.entries(Need::Read).await? else {
                    return Ok((key, None, view.parent().clone()));
                };
                let found = core.get_remote(&key).await;
                Ok((key, found, core))
            },
            move |py, (key, found, core)| {
                Ok(found
                    .and_then(|json| value_or_miss(py, &core, &key, &json))
                    .map_or(miss, pyo3::Bound::unbind))
            },
        )
    }

    #[pyo3(signature = (key, value, ttl=None, tags=None))]
    fn set<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        ttl: Option<i64>,
        tags: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let json: Arc<[u8]> = Arc::from(json::dumps(value).py_err(py)?);
        let view = self.view.clone();
        let tags = tags.unwrap_or_default();
        futures::spawn(
            py,
            async move {
                view.run(Need::Write, (), |core| async move {
                    core.set_tagged(&key, json, ttl, &tags).await
                })
                .await
            },
            |py, ()| Ok(py.None()),
        )
    }

    fn call_digest(&self, text: &str) -> String {
        self.view.call_digest(text)
    }

    fn invalidate_tags<'py>(
        &self,
        py: Python<'py>,
        tags: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                view.run(Need::Read, 0, |core| async move {
                    core.invalidate_tags(&tags).await
                })
                .await
            },
            |py, n| Ok(n.into_pyobject(py)?.into_any().unbind()),
        )
    }

    fn lock_acquire<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        lease_ms: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                match view.entries(Need::Write).await? {
                    Some(core) => core.lock_acquire(&key, lease_ms).await,
                    None => Err(view.unreachable_scope()),
                }
            },
            |py, token| Ok(token.into_pyobject(py)?.into_any().unbind()),
        )
    }

    fn lock_release<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        token: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                view.run(Need::Read, false, |core| async move {
                    core.lock_release(&key, &token).await
                })
                .await
            },
            |py, released| Ok(py_bool(py, released)),
        )
    }

    fn delete<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                view.run(
                    Need::Read,
                    false,
                    |core| async move { core.delete(&key).await },
                )
                .await
            },
            |py, found| Ok(py_bool(py, found)),
        )
    }

    fn exists<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                view.run(
                    Need::Read,
                    false,
                    |core| async move { core.exists(&key).await },
                )
                .await
            },
            |py, found| Ok(py_bool(py, found)),
        )
    }

    fn get_ttl<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_arg(key)?;
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                view.run(
                    Need::Read,
                    None,
                    |core| async move { core.get_ttl(&key).await },
                )
                .await
            },
            |py, ttl| Ok(ttl.into_pyobject(py)?.unbind()),
        )
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
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                let Some(core) = view.entries(Need::Read).await? else {
                    for key in &keys {
                        validate_key(key)?;
                    }
                    return Ok((keys, Vec::new(), view.parent().clone()));
                };
                let found = core.get_many(&keys).await?;
                Ok((keys, found, core))
            },
            |py, (keys, found, core)| {
                let out = PyDict::new(py);
                for (key, json) in keys.into_iter().zip(found) {
                    if let Some(value) = json.and_then(|json| value_or_miss(py, &core, &key, &json))
                    {
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
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                view.run(Need::Write, (), |core| async move {
                    core.set_many(items, ttl).await
                })
                .await
            },
            |py, ()| Ok(py.None()),
        )
    }

    fn invalidate_pattern<'py>(
        &self,
        py: Python<'py>,
        pattern: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                match view.entries(Need::Read).await? {
                    Some(core) => core.invalidate_pattern(&pattern).await,
                    None => validate_pattern(&pattern).map(|()| 0),
                }
            },
            |py, n| Ok(n.into_pyobject(py)?.into_any().unbind()),
        )
    }

    fn clear<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let view = self.view.clone();
        futures::spawn(
            py,
            async move {
                view.run(Need::Read, 0, |core| async move { core.clear().await })
                    .await
            },
            |py, n| Ok(n.into_pyobject(py)?.into_any().unbind()),
        )
    }

    fn ping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        futures::spawn(py, async move { Ok(core.ping().await) }, |py, ok| {
            Ok(py_bool(py, ok))
        })
    }

    /// Statistics as a dict; asks Redis for its key count. With `ai=True`, only the
    /// `ai_cache:` keys are counted and INFO memory/clients figures are added.
    #[pyo3(signature = (ai=false))]
    fn stats<'py>(&self, py: Python<'py>, ai: bool) -> PyResult<Bound<'py, PyAny>> {
        let view = self.view.clone();
        let url = self.url.clone();
        futures::spawn(
            py,
            async move {
                // A scope's own counters and keys, once it exists.
                let core = view
                    .entries(Need::Read)
                    .await?
                    .unwrap_or_else(|| view.parent().clone());
                let redis = RedisReport::of_cache(&core, ai.then_some(KEY_PREFIX)).await;
                Ok(CacheStats::of(&core, &url, redis, unix_now()))
            },
            |py, stats| to_py(py, &stats),
        )
    }

    /// Every static check on this cache's configuration plus a live check through its own
    /// connection; resolves to the report dict.
    fn validate_security<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        let inputs = Inputs::from_config(&self.url, &self.config, self.insecure_override);
        futures::spawn(
            py,
            async move {
                let env = detect(&env::process);
                let now = unix_now();
                let mut report = Report::build(&inputs, env, now);
                report.connectivity = Some(check_live(&core, &report.environment, now).await);
                Ok(report)
            },
            |py, report| value_to_py(py, &report.document()),
        )
    }

    /// Configuration and connection facts, without I/O and without secrets.
    fn security_status(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(
            py,
            &SecurityStatus::of(&self.core, &self.url, &self.config, unix_now()),
        )
    }

    /// Raises what `set` would raise for this key and value, without writing anything.
    #[staticmethod]
    fn check_entry(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        validate_key(&key_arg(key)?).py_err(py)?;
        json::dumps(value).py_err(py).map(|_| ())
    }

    /// The live entries of the L1 tier, as fresh objects (a copy: L1 holds JSON bytes).
    fn l1_entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let Some(core) = self.view.now() else {
            return Ok(out);
        };
        for (key, found) in core.l1_entries() {
            out.set_item(&key, json::loads(py, &found)?)?;
        }
        Ok(out)
    }

    /// Empties the L1 tier only; Redis keeps its entries.
    fn clear_l1(&self) {
        if let Some(l1) = self.core.l1() {
            l1.note_write_all(); // a read in flight must not refill what was just cleared
            l1.clear();
        }
    }

    /// The view of tenant scope `name` of this cache (same connection; see `cache::scope`).
    fn scoped(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<PyGenericCacheCore> {
        let name = scope_arg(name)?;
        Ok(PyGenericCacheCore {
            view: self.view.scoped(&name).py_err(py)?,
            core: self.core.clone(),
            config: self.config.clone(),
            insecure_override: self.insecure_override,
            url: self.url.clone(),
        })
    }

    #[getter]
    fn is_scoped(&self) -> bool {
        self.view.is_scoped()
    }

    /// Tells scopes apart (None for the whole cache); reveals no scope name.
    #[getter]
    fn scope_id(&self) -> Option<&str> {
        self.view.scope_id()
    }

    /// Destroys scope `name`'s data key; resolves to how many entries were deleted with
    /// `wait`, else to None (they are deleted in the background).
    #[pyo3(signature = (name, wait=false))]
    fn forget_scope<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        wait: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = scope_arg(name)?;
        let view = self.view.clone();
        futures::spawn(
            py,
            async move { view.forget_scope(&name, wait).await },
            |py, removed| Ok(removed.into_pyobject(py)?.into_any().unbind()),
        )
    }

    fn __repr__(&self) -> String {
        format!("GenericCacheCore(redis_url={:?})", redact_url(&self.url))
    }
}
