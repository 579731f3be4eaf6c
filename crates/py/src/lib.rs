//! The extension module `secure_redis._native`: PyO3 bindings over `secure_redis_core`,
//! type and error conversion only. No policy lives here.

mod args;
mod classes;
mod constants;
mod convert;
mod errors;
mod futures;
mod imports;
mod json;
mod logging;
mod runtime;
mod validate;

use classes::{ai, config, encryption, generic, memory};

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Exactly one rustls provider is compiled in; installing it as the process default is a
    // guard for code paths that ask for the default instead of taking ours explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    logging::install();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    constants::add(m)?;
    m.add_class::<config::PySecurityConfig>()?;
    m.add_class::<encryption::PyEncryptedCacheLayer>()?;
    m.add_class::<generic::PyGenericCacheCore>()?;
    m.add_class::<generic::PyCacheProfile>()?;
    m.add_class::<ai::PyAiPolicyCore>()?;
    m.add_class::<memory::PyMemoryCacheCore>()?;
    m.add_class::<futures::CancelTask>()?;
    m.add_class::<futures::LoopWaker>()?;
    m.add_function(wrap_pyfunction!(encryption::generate_encryption_key, m)?)?;
    m.add_function(wrap_pyfunction!(encryption::generate_secure_password, m)?)?;
    m.add("_shutdown", wrap_pyfunction!(runtime::shutdown, m)?)?;
    m.add(
        "_in_flight_tasks",
        wrap_pyfunction!(runtime::in_flight_tasks, m)?,
    )?;
    m.add(
        "_after_fork_in_child",
        wrap_pyfunction!(runtime::after_fork_in_child, m)?,
    )?;
    m.add_function(wrap_pyfunction!(json::json_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(validate::detect_environment, m)?)?;
    m.add_function(wrap_pyfunction!(validate::password_strength, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_url, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_auth, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_encryption_key, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_certificates, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validate_configuration, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validate_startup, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validate_environment, m)?)?;
    m.add_function(wrap_pyfunction!(json::json_loads, m)?)?;
    Ok(())
}
