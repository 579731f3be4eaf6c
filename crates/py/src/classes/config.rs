//! `SecurityConfig` for Python: a frozen view of the validated core config.

use crate::args::secret_arg;
use crate::errors::IntoPyResult;
use pyo3::prelude::*;
use secure_redis_core::config::{SecurityConfig, SecuritySettings, TlsVersion};
use secure_redis_core::env;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything needed to reach Redis securely: the password (or ACL user), the Fernet key(s),
/// TLS settings and timeouts, validated when it is made. A configuration that would be
/// insecure or cannot work raises `ConfigurationError` naming the setting to change.
/// `SecurityConfig.create_for_environment()` reads the `REDIS_*` variables and applies the
/// detected environment's policy. Its repr never shows a secret.
#[pyclass(name = "SecurityConfig", module = "secure_redis", frozen)]
pub struct PySecurityConfig {
    pub inner: Arc<SecurityConfig>,
    environment: Option<(String, String)>,
}

#[pymethods]
impl PySecurityConfig {
    #[new]
    #[pyo3(signature = (
        redis_auth=None, encryption_key=None, use_tls=true, tls_ca_path=None, tls_cert_path=None,
        tls_key_path=None, acl_username=None, min_tls_version=None, connection_timeout=5.0,
        socket_timeout=2.0, max_retries=3, retry_delay=0.1, tls_trust_public_roots=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        redis_auth: Option<&Bound<'_, PyAny>>,
        encryption_key: Option<&Bound<'_, PyAny>>,
        use_tls: bool,
        tls_ca_path: Option<PathBuf>,
        tls_cert_path: Option<PathBuf>,
        tls_key_path: Option<PathBuf>,
        acl_username: Option<String>,
        min_tls_version: Option<&str>,
        connection_timeout: f64,
        socket_timeout: f64,
        max_retries: i64,
        retry_delay: f64,
        tls_trust_public_roots: bool,
    ) -> PyResult<Self> {
        let settings = SecuritySettings {
            redis_auth: secret_arg(redis_auth, "redis_auth")?,
            encryption_key: secret_arg(encryption_key, "encryption_key")?,
            use_tls,
            tls_ca_path,
            tls_cert_path,
            tls_key_path,
            acl_username,
            min_tls_version: min_tls_version
                .map(TlsVersion::parse)
                .transpose()
                .py_err(py)?,
            tls_trust_public_roots,
            connection_timeout,
            socket_timeout,
            max_retries,
            retry_delay,
        };
        let config = SecurityConfig::with_policy(settings, &env::process).py_err(py)?;
        Ok(PySecurityConfig {
            inner: Arc::new(config),
            environment: None,
        })
    }

    /// Reads REDIS_PASSWORD (or REDIS_AUTH), REDIS_ACL_USERNAME, REDIS_ENCRYPTION_KEY,
    /// REDIS_TLS_CA_PATH, REDIS_TLS_CERT_PATH, REDIS_TLS_KEY_PATH, REDIS_TLS_MIN_VERSION and
    /// REDIS_TLS_TRUST_PUBLIC_ROOTS, under the detected environment's policy.
    #[classmethod]
    fn from_env(_cls: &Bound<'_, pyo3::types::PyType>, py: Python<'_>) -> PyResult<Self> {
        let config = SecurityConfig::from_env(&env::process).py_err(py)?;
        Ok(PySecurityConfig {
            inner: Arc::new(config),
            environment: None,
        })
    }

    /// `from_env()` plus the detected environment's policy (password length, TLS version).
    /// `encryption_key`, when given, takes the place of REDIS_ENCRYPTION_KEY.
    #[classmethod]
    #[pyo3(signature = (encryption_key=None))]
    fn create_for_environment(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        encryption_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let encryption_key = secret_arg(encryption_key, "encryption_key")?;
        let lookup = |name: &str| {
            if name == env::REDIS_ENCRYPTION_KEY {
                if let Some(key) = &encryption_key {
                    return Some(key.expose().to_owned());
                }
            }
            env::process(name)
        };
        let (config, detected) = SecurityConfig::for_environment(&lookup).py_err(py)?;
        Ok(PySecurityConfig {
            inner: Arc::new(config),
            environment: Some((detected.environment.as_str().into(), detected.signal)),
        })
    }

    #[getter]
    fn use_tls(&self) -> bool {
        self.inner.use_tls
    }
    #[getter]
    fn tls_ca_path(&self) -> Option<PathBuf> {
        self.inner.tls_ca_path.clone()
    }
    #[getter]
    fn tls_cert_path(&self) -> Option<PathBuf> {
        self.inner.tls_cert_path.clone()
    }
    #[getter]
    fn tls_key_path(&self) -> Option<PathBuf> {
        self.inner.tls_key_path.clone()
    }
    /// Without tls_ca_path, the public web roots verify the server even in production and
    /// for Sentinel and Cluster (REDIS_TLS_TRUST_PUBLIC_ROOTS=true): for managed services.
    #[getter]
    fn tls_trust_public_roots(&self) -> bool {
        self.inner.tls_trust_public_roots
    }
    #[getter]
    fn acl_username(&self) -> Option<String> {
        self.inner.acl_username.clone()
    }
    #[getter]
    fn min_tls_version(&self) -> &'static str {
        self.inner.min_tls_version.as_str()
    }
    #[getter]
    fn connection_timeout(&self) -> f64 {
        self.inner.connection_timeout.as_secs_f64()
    }
    #[getter]
    fn socket_timeout(&self) -> f64 {
        self.inner.socket_timeout.as_secs_f64()
    }
    #[getter]
    fn max_retries(&self) -> u32 {
        self.inner.max_retries
    }
    #[getter]
    fn retry_delay(&self) -> f64 {
        self.inner.retry_delay.as_secs_f64()
    }
    /// Always True: a config without credentials cannot be constructed.
    #[getter]
    #[allow(clippy::unused_self)] // a Python property that is constant by design
    fn has_authentication(&self) -> bool {
        true
    }
    #[getter]
    fn encryption_key_count(&self) -> usize {
        self.inner.keyring.len()
    }
    #[getter]
    fn has_client_certificate(&self) -> bool {
        self.inner.tls_cert_path.is_some()
    }
    /// "HIGH" with TLS (AUTH and encryption are always on), "LOW" on the plaintext override.
    #[getter]
    fn security_level(&self) -> &'static str {
        self.inner.security_level().as_str()
    }
    /// The detected environment, for configs made by `create_for_environment()`.
    #[getter]
    fn environment(&self) -> Option<String> {
        self.environment.as_ref().map(|(env, _)| env.clone())
    }
    #[getter]
    fn environment_signal(&self) -> Option<String> {
        self.environment.as_ref().map(|(_, signal)| signal.clone())
    }

    fn __repr__(&self) -> String {
        self.inner.describe()
    }

    fn __str__(&self) -> String {
        self.inner.describe()
    }
}
