//! The core's constants and environment rules as `_native` attributes, so the Python classes
//! take their defaults, ranges and error codes from the one place they are defined.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use secure_redis_core::ai::{Tiers, DEFAULT_OPERATION_TTLS};
use secure_redis_core::cache::options::{
    Ranges, AI_MEMORY_CACHE_SIZE_RANGE, AI_RANGES, AI_TEXT_HASH_THRESHOLD_RANGE, GENERIC_RANGES,
};
use secure_redis_core::cache::CacheOptions;
use secure_redis_core::env;
use secure_redis_core::error::ErrorCode;

fn ranges<'py>(
    py: Python<'py>,
    ranges: &Ranges,
    extra: &[(&str, (i64, i64))],
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (name, (low, high)) in ranges.entries().iter().chain(extra) {
        out.set_item(name, PyTuple::new(py, [low, high])?)?;
    }
    Ok(out)
}

/// Adds the constants to the module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("GENERIC_RANGES", ranges(py, &GENERIC_RANGES, &[])?)?;
    m.add(
        "AI_RANGES",
        ranges(
            py,
            &AI_RANGES,
            &[
                ("text_hash_threshold", AI_TEXT_HASH_THRESHOLD_RANGE),
                ("memory_cache_size", AI_MEMORY_CACHE_SIZE_RANGE),
            ],
        )?,
    )?;
    let defaults = CacheOptions::default();
    let cache_defaults = PyDict::new(py);
    cache_defaults.set_item("default_ttl", defaults.default_ttl)?;
    cache_defaults.set_item("enable_l1_cache", defaults.enable_l1_cache)?;
    cache_defaults.set_item("l1_cache_size", defaults.l1_cache_size)?;
    cache_defaults.set_item("compression_threshold", defaults.compression_threshold)?;
    cache_defaults.set_item("compression_level", defaults.compression_level)?;
    m.add("CACHE_DEFAULTS", cache_defaults)?;
    let ttls = PyDict::new(py);
    for (operation, ttl) in DEFAULT_OPERATION_TTLS {
        ttls.set_item(operation, ttl)?;
    }
    m.add("DEFAULT_OPERATION_TTLS", ttls)?;
    let tiers = Tiers::default();
    let text_tiers = PyDict::new(py);
    text_tiers.set_item("small", tiers.small)?;
    text_tiers.set_item("medium", tiers.medium)?;
    text_tiers.set_item("large", tiers.large)?;
    m.add("DEFAULT_TEXT_SIZE_TIERS", text_tiers)?;
    m.add("DEFAULT_REDIS_URL", env::DEFAULT_REDIS_URL)?;
    let codes = PyDict::new(py);
    for code in ErrorCode::ALL {
        codes.set_item(code.as_str(), code.meaning())?;
    }
    m.add("ERROR_CODES", codes)?;
    m.add_function(wrap_pyfunction!(env_value, m)?)?;
    m.add_function(wrap_pyfunction!(insecure_override, m)?)?;
    Ok(())
}

/// The value of one of secure_redis's environment variables, None when unset or blank.
/// A name that is not one of ours raises ValueError instead of reading as unset.
#[pyfunction]
fn env_value(name: &str) -> PyResult<Option<String>> {
    if !env::REDIS_VARIABLES.contains(&name) {
        return Err(PyValueError::new_err(format!(
            "{name} is not an environment variable secure_redis reads"
        )));
    }
    Ok(env::non_empty(&env::process, name))
}

/// Whether REDIS_INSECURE_ALLOW_PLAINTEXT permits plaintext in the detected environment (a
/// true value; in production only `production-acknowledged`).
#[pyfunction]
fn insecure_override() -> bool {
    env::insecure_override(&env::process)
}
