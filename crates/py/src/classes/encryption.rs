//! `EncryptedCacheLayer`: Fernet encryption of JSON values, interoperable with `cryptography`.
//! There is no passthrough mode: without a valid key the constructor raises.

use crate::args::secret_arg;
use crate::convert::to_py;
use crate::errors::IntoPyResult;
use crate::json;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use secure_redis_core::crypto::layer::EncryptionLayer;
use secure_redis_core::crypto::Secret;

/// Fernet encryption of JSON values for callers who encrypt outside the cache, interoperable
/// with `cryptography.fernet`. There is no passthrough mode: without a valid key the
/// constructor raises `ConfigurationError`.
///
/// `encryption_key` is a Fernet key (or comma-separated keys, the first encrypting, all
/// decrypting) as str, bytes or a pydantic `SecretStr`/`SecretBytes`; it cannot be read back.
/// `performance_monitoring` (default True) keeps the timings `get_performance_stats()`
/// returns. `encrypt_cache_data` and `decrypt_cache_data` are the two operations.
#[pyclass(name = "EncryptedCacheLayer", module = "secure_redis", frozen)]
pub struct PyEncryptedCacheLayer {
    layer: EncryptionLayer,
}

#[pymethods]
impl PyEncryptedCacheLayer {
    #[new]
    #[pyo3(signature = (encryption_key=None, performance_monitoring=true))]
    fn new(
        py: Python<'_>,
        encryption_key: Option<&Bound<'_, PyAny>>,
        performance_monitoring: bool,
    ) -> PyResult<Self> {
        let key = secret_arg(encryption_key, "encryption_key")?;
        let layer = EncryptionLayer::new(
            key.as_ref().map_or("", |k| k.expose()),
            performance_monitoring,
        )
        .py_err(py)?;
        Ok(PyEncryptedCacheLayer { layer })
    }

    /// A layer under a fresh key of its own, as the replaced layer's classmethod: only this
    /// layer can read what it encrypts (persist nothing with it). `performance_monitoring`
    /// as in the constructor.
    #[classmethod]
    #[pyo3(signature = (performance_monitoring=true))]
    fn create_with_generated_key(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        performance_monitoring: bool,
    ) -> PyResult<Self> {
        let layer = EncryptionLayer::with_generated_key(performance_monitoring).py_err(py)?;
        Ok(PyEncryptedCacheLayer { layer })
    }

    /// A Fernet token of the value's compact JSON.
    fn encrypt_cache_data<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let json = json::dumps(data).py_err(py)?;
        let token = py.detach(|| self.layer.encrypt(&json));
        Ok(PyBytes::new(py, token.as_bytes()))
    }

    /// Opens a token made by this layer or by `cryptography.fernet.Fernet` with one of our keys.
    fn decrypt_cache_data<'py>(
        &self,
        py: Python<'py>,
        encrypted_data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let token: Vec<u8> = if let Ok(s) = encrypted_data.cast::<PyString>() {
            s.to_str()?.as_bytes().to_vec()
        } else {
            encrypted_data.extract::<Vec<u8>>()?
        };
        let plaintext = py.detach(|| self.layer.decrypt(&token)).py_err(py)?;
        json::loads(py, &plaintext)
    }

    /// Always True: there is no passthrough mode.
    #[getter]
    #[allow(clippy::unused_self)] // a Python property that is constant by design
    fn is_enabled(&self) -> bool {
        true
    }

    /// Whether operations are counted and timed, as given to the constructor.
    #[getter]
    fn performance_monitoring(&self) -> bool {
        self.layer.monitoring()
    }

    #[getter]
    fn key_count(&self) -> usize {
        self.layer.key_count()
    }

    fn get_performance_stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.layer.stats())
    }

    fn reset_performance_stats(&self) {
        self.layer.reset_stats();
    }

    fn __repr__(&self) -> String {
        format!(
            "EncryptedCacheLayer(keys={}, key='***')",
            self.layer.key_count()
        )
    }
}

/// A fresh Fernet key (url-safe base64 of 32 random bytes from the OS).
#[pyfunction]
pub fn generate_encryption_key(py: Python<'_>) -> Bound<'_, PyString> {
    // Held as a Secret until Python has its str, so the Rust copy is wiped.
    let key = Secret::new(secure_redis_core::crypto::generate_encryption_key());
    PyString::new(py, key.expose())
}

/// A random password from the OS random source (16 to 1024 characters).
#[pyfunction]
#[pyo3(signature = (length=32))]
pub fn generate_secure_password(py: Python<'_>, length: usize) -> PyResult<Bound<'_, PyString>> {
    let password =
        Secret::new(secure_redis_core::crypto::generate_secure_password(length).py_err(py)?);
    Ok(PyString::new(py, password.expose()))
}
