//! `SecurityConfig` for Python: a frozen view of the validated core config.

use crate::args::{secret_arg, text_list_arg};
use crate::errors::IntoPyResult;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};
use secure_redis_core::config::{ReplacedArguments, SecurityConfig, SecuritySettings, TlsVersion};
use secure_redis_core::env;
use secure_redis_core::error::{Error, ErrorCode};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything needed to reach Redis securely: the password (or ACL user), the Fernet key(s),
/// TLS settings and timeouts, validated when it is made. A configuration that would be
/// insecure or cannot work raises `ConfigurationError` naming the setting to change.
/// `SecurityConfig.create_for_environment()` reads the `REDIS_*` variables and applies the
/// detected environment's policy. Its repr never shows a secret.
///
/// `redis_auth` is the Redis password (with `acl_username` for an ACL user) and
/// `encryption_key` the Fernet key or comma-separated rotation keys, each as str, bytes or a
/// pydantic `SecretStr`/`SecretBytes`; neither can be read back. `use_tls` (only off with
/// the plaintext override), `tls_ca_path`, `tls_cert_path`/`tls_key_path` (client
/// certificate) and `min_tls_version` ("1.2" or "1.3") set TLS; `connection_timeout`,
/// `socket_timeout`, `max_retries` and `retry_delay` the connection. It is immutable:
/// `copy.copy` and `copy.deepcopy` return it unchanged.
///
/// The replaced layer's arguments are taken by name: `acl_password` is the password when
/// `redis_auth` is not given (both given and different is refused); `verify_certificates`
/// accepts only True and `cipher_suites` only None, each refused naming why;
/// `min_tls_version` also takes `ssl.TLSVersion` values (771, 772);
/// `enable_security_monitoring` and `log_security_events` are accepted and change nothing
/// (security events are always logged).
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
        socket_timeout=2.0, max_retries=3, retry_delay=0.1, tls_trust_public_roots=false,
        acl_password=None, verify_certificates=true, cipher_suites=None,
        enable_security_monitoring=true, log_security_events=true
    ))]
    // Python's keyword signature, the replaced layer's flags included: one parameter per name.
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn new(
        py: Python<'_>,
        redis_auth: Option<&Bound<'_, PyAny>>,
        encryption_key: Option<&Bound<'_, PyAny>>,
        use_tls: bool,
        tls_ca_path: Option<PathBuf>,
        tls_cert_path: Option<PathBuf>,
        tls_key_path: Option<PathBuf>,
        acl_username: Option<String>,
        min_tls_version: Option<&Bound<'_, PyAny>>,
        connection_timeout: f64,
        socket_timeout: f64,
        max_retries: i64,
        retry_delay: f64,
        tls_trust_public_roots: bool,
        acl_password: Option<&Bound<'_, PyAny>>,
        verify_certificates: bool,
        cipher_suites: Option<&Bound<'_, PyAny>>,
        enable_security_monitoring: bool,
        log_security_events: bool,
    ) -> PyResult<Self> {
        let mut settings = SecuritySettings {
            redis_auth: secret_arg(redis_auth, "redis_auth")?,
            encryption_key: secret_arg(encryption_key, "encryption_key")?,
            use_tls,
            tls_ca_path,
            tls_cert_path,
            tls_key_path,
            acl_username,
            min_tls_version: tls_version_arg(min_tls_version).py_err(py)?,
            tls_trust_public_roots,
            connection_timeout,
            socket_timeout,
            max_retries,
            retry_delay,
        };
        ReplacedArguments {
            acl_password: secret_arg(acl_password, "acl_password")?,
            verify_certificates,
            cipher_suites: text_list_arg(cipher_suites, "cipher_suites")?,
            enable_security_monitoring,
            log_security_events,
        }
        .apply(&mut settings)
        .py_err(py)?;
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
    /// Always True: the server's certificate is always verified.
    #[getter]
    #[allow(clippy::unused_self)] // a Python property that is constant by design
    fn verify_certificates(&self) -> bool {
        true
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

    // A SecurityConfig is frozen and its core config is never mutated after validation, so
    // a copy (shallow or deep) is the same object: nothing reachable from it can change, and
    // no secret is revealed or duplicated to make it. Without these, `copy` falls back on
    // pickling, which a native class with secrets refuses.
    fn __copy__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __deepcopy__(slf: Py<Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf
    }
}

/// `min_tls_version` as given: "1.2"/"1.3" (or "TLSv1.3"), or an `ssl.TLSVersion` value.
fn tls_version_arg(value: Option<&Bound<'_, PyAny>>) -> Result<Option<TlsVersion>, Error> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(text) = value.cast::<PyString>() {
        return TlsVersion::parse(&text.to_string_lossy()).map(Some);
    }
    if value.cast::<PyInt>().is_ok() && value.cast::<PyBool>().is_err() {
        let number = value.extract::<i64>().unwrap_or(i64::MIN);
        return TlsVersion::from_ssl_value(number).map(Some);
    }
    let type_name = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(Error::configuration(format!(
        "min_tls_version must be \"1.2\", \"1.3\" or ssl.TLSVersion.TLSv1_2/TLSv1_3, not {type_name}."
    ))
    .with("field", "min_tls_version")
    .code(ErrorCode::InvalidTlsVersion))
}
