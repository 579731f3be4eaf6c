//! Startup validation for Python: each function returns plain dicts (the TypedDict shapes of
//! the replaced layer) built by `secure_redis_core::validate`.

use crate::args::secret_arg;
use crate::convert::value_to_py;
use crate::errors::IntoPyResult;
use crate::runtime::runtime;
use pyo3::prelude::*;
use secure_redis_core::clock::unix_now;
use secure_redis_core::config::PlaintextOverride;
use secure_redis_core::crypto::{password_strength as score_password, Secret};
use secure_redis_core::env;
use secure_redis_core::environment::{detect, DetectedEnvironment};
use secure_redis_core::validate::{self, Inputs, Report};
use std::path::PathBuf;

fn environment() -> DetectedEnvironment {
    detect(&env::process)
}

#[pyfunction]
pub fn detect_environment(py: Python<'_>) -> PyResult<Py<PyAny>> {
    crate::convert::to_py(py, &environment())
}

#[pyfunction]
pub fn password_strength(py: Python<'_>, password: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let password = secret_arg(Some(password), "password")?.unwrap_or_else(|| Secret::new(""));
    crate::convert::to_py(py, &score_password(password.expose()))
}

#[pyfunction]
#[pyo3(signature = (redis_url, insecure_override=false))]
pub fn check_url(
    py: Python<'_>,
    redis_url: Option<&str>,
    insecure_override: bool,
) -> PyResult<Py<PyAny>> {
    let plaintext = PlaintextOverride::from_caller(&env::process, Some(insecure_override));
    let result = validate::url::check_url(redis_url, plaintext, &environment());
    value_to_py(py, &result.to_value("url_info"))
}

#[pyfunction]
#[pyo3(signature = (redis_url, auth_password=None, acl_username=None))]
pub fn check_auth(
    py: Python<'_>,
    redis_url: Option<&str>,
    auth_password: Option<&Bound<'_, PyAny>>,
    acl_username: Option<&str>,
) -> PyResult<Py<PyAny>> {
    let password = secret_arg(auth_password, "auth_password")?.filter(|p| !p.is_empty());
    let result =
        validate::auth::check_auth(redis_url, password.as_ref(), acl_username, &environment());
    value_to_py(py, &result.to_value("auth_info"))
}

#[pyfunction]
#[pyo3(signature = (encryption_key=None))]
pub fn check_encryption_key(
    py: Python<'_>,
    encryption_key: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let key = secret_arg(encryption_key, "encryption_key")?;
    let result = validate::key::check_encryption_key(key.as_ref(), &environment());
    value_to_py(py, &result.to_value("key_info"))
}

#[pyfunction]
#[pyo3(signature = (cert_path=None, key_path=None, ca_path=None, uses_tls=true))]
pub fn check_certificates(
    py: Python<'_>,
    cert_path: Option<PathBuf>,
    key_path: Option<PathBuf>,
    ca_path: Option<PathBuf>,
    uses_tls: bool,
) -> PyResult<Py<PyAny>> {
    let non_empty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let (cert, key, ca) = (
        non_empty(cert_path),
        non_empty(key_path),
        non_empty(ca_path),
    );
    let result = validate::certificates::check_certificates(
        cert.as_deref(),
        key.as_deref(),
        ca.as_deref(),
        uses_tls,
        &environment(),
        unix_now(),
    );
    value_to_py(py, &result.to_value("cert_info"))
}

fn run_report(py: Python<'_>, inputs: Inputs, test_connectivity: bool) -> PyResult<Report> {
    let env = environment();
    if test_connectivity {
        let runtime = runtime().py_err(py)?;
        // Blocking is the point here: startup waits for the answer. The GIL is released.
        Ok(py
            .detach(|| runtime.block_on(Report::build_with_connectivity(&inputs, env, unix_now()))))
    } else {
        Ok(Report::build(&inputs, env, unix_now()))
    }
}

fn report_dict(py: Python<'_>, report: &Report) -> PyResult<Py<PyAny>> {
    value_to_py(py, &report.document())
}

/// Every check on explicit inputs (missing ones are read from nowhere: pass them), except the
/// plaintext override, read from REDIS_INSECURE_ALLOW_PLAINTEXT unless `insecure_override`
/// is given.
#[pyfunction]
#[pyo3(signature = (
    redis_url, encryption_key=None, tls_cert_path=None, tls_key_path=None, tls_ca_path=None,
    auth_password=None, acl_username=None, min_tls_version=None, insecure_override=None,
    test_connectivity=false
))]
#[allow(clippy::too_many_arguments)]
pub fn validate_configuration(
    py: Python<'_>,
    redis_url: Option<String>,
    encryption_key: Option<&Bound<'_, PyAny>>,
    tls_cert_path: Option<PathBuf>,
    tls_key_path: Option<PathBuf>,
    tls_ca_path: Option<PathBuf>,
    auth_password: Option<&Bound<'_, PyAny>>,
    acl_username: Option<String>,
    min_tls_version: Option<String>,
    insecure_override: Option<bool>,
    test_connectivity: bool,
) -> PyResult<Py<PyAny>> {
    let non_empty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let path = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let inputs = Inputs {
        redis_url: non_empty(redis_url),
        encryption_key: secret_arg(encryption_key, "encryption_key")?
            .filter(|k| !k.expose().trim().is_empty()),
        tls_cert_path: path(tls_cert_path),
        tls_key_path: path(tls_key_path),
        tls_ca_path: path(tls_ca_path),
        auth_password: secret_arg(auth_password, "auth_password")?.filter(|p| !p.is_empty()),
        acl_username: non_empty(acl_username),
        min_tls_version: non_empty(min_tls_version),
        // Like the topology, the public-roots opt-in is what the cache would read.
        tls_trust_public_roots: env::trust_public_roots(&env::process),
        insecure_override: PlaintextOverride::from_caller(&env::process, insecure_override),
        // The cache takes its topology from the environment too.
        topology: secure_redis_core::connection::TopologySpec::from_env(&env::process),
    };
    let report = run_report(py, inputs, test_connectivity)?;
    report_dict(py, &report)
}

fn environment_report(
    py: Python<'_>,
    redis_url: Option<String>,
    insecure_override: Option<bool>,
    test_connectivity: bool,
) -> PyResult<Report> {
    let mut inputs = Inputs::from_env(&env::process);
    if let Some(url) = redis_url.filter(|u| !u.trim().is_empty()) {
        inputs.redis_url = Some(url);
    }
    inputs.insecure_override = PlaintextOverride::from_caller(&env::process, insecure_override);
    run_report(py, inputs, test_connectivity)
}

/// Every check on the configuration in the environment (the URL and override may be
/// given); returns the report, never raises for findings.
#[pyfunction]
#[pyo3(signature = (redis_url=None, insecure_override=None, test_connectivity=false))]
pub fn validate_environment(
    py: Python<'_>,
    redis_url: Option<String>,
    insecure_override: Option<bool>,
    test_connectivity: bool,
) -> PyResult<Py<PyAny>> {
    let report = environment_report(py, redis_url, insecure_override, test_connectivity)?;
    report_dict(py, &report)
}

/// As `validate_environment`, but raises one ConfigurationError listing every violation.
#[pyfunction]
#[pyo3(signature = (redis_url=None, insecure_override=None, test_connectivity=false))]
pub fn validate_startup(
    py: Python<'_>,
    redis_url: Option<String>,
    insecure_override: Option<bool>,
    test_connectivity: bool,
) -> PyResult<Py<PyAny>> {
    let report = environment_report(py, redis_url, insecure_override, test_connectivity)?;
    if let Some(error) = report.startup_error() {
        return Err(error).py_err(py);
    }
    report_dict(py, &report)
}
