//! `EncryptedCacheLayer`: Fernet encryption of JSON values, interoperable with `cryptography`.
//! There is no passthrough mode: without a valid key the constructor raises.

use crate::args::secret_arg;
use crate::errors::{to_py_err, IntoPyResult};
use crate::json;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use secure_redis_core::cache::stats::average_ms;
use secure_redis_core::crypto::Keyring;
use secure_redis_core::error::{Error, ErrorCode};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Fernet encryption of JSON values for callers who encrypt outside the cache, interoperable
/// with `cryptography.fernet`. There is no passthrough mode: without a valid key the
/// constructor raises `ConfigurationError`.
#[pyclass(name = "EncryptedCacheLayer", module = "secure_redis", frozen)]
pub struct PyEncryptedCacheLayer {
    keyring: Keyring,
    performance_monitoring: bool,
    encryptions: AtomicU64,
    decryptions: AtomicU64,
    encrypt_nanos: AtomicU64,
    decrypt_nanos: AtomicU64,
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
        let keyring = Keyring::parse(key.as_ref().map_or("", |k| k.expose())).py_err(py)?;
        Ok(PyEncryptedCacheLayer {
            keyring,
            performance_monitoring,
            encryptions: AtomicU64::new(0),
            decryptions: AtomicU64::new(0),
            encrypt_nanos: AtomicU64::new(0),
            decrypt_nanos: AtomicU64::new(0),
        })
    }

    /// A Fernet token of the value's compact JSON.
    fn encrypt_cache_data<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let started = Instant::now();
        let json = json::dumps(data).py_err(py)?;
        let token = py.detach(|| self.keyring.encrypt(&json));
        self.encryptions.fetch_add(1, Relaxed);
        self.encrypt_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        Ok(PyBytes::new(py, token.as_bytes()))
    }

    /// Opens a token made by this layer or by `cryptography.fernet.Fernet` with one of our keys.
    fn decrypt_cache_data<'py>(
        &self,
        py: Python<'py>,
        encrypted_data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let started = Instant::now();
        let token: Vec<u8> = if let Ok(s) = encrypted_data.cast::<PyString>() {
            s.to_str()?.as_bytes().to_vec()
        } else {
            encrypted_data.extract::<Vec<u8>>()?
        };
        let plaintext = py
            .detach(|| self.keyring.decrypt(&token))
            .map_err(|_| {
                to_py_err(
                    py,
                    &Error::configuration(
                        "Decryption failed: the data is not a Fernet token made with any configured key \
                         (wrong key, tampered or unencrypted data).",
                    )
                    .code(ErrorCode::DecryptionFailure)
                    .with("data_size", token.len()),
                )
            })?;
        let value = json::loads(py, &plaintext)?;
        self.decryptions.fetch_add(1, Relaxed);
        self.decrypt_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        Ok(value)
    }

    /// Always True: there is no passthrough mode.
    #[getter]
    #[allow(clippy::unused_self)] // a Python property that is constant by design
    fn is_enabled(&self) -> bool {
        true
    }

    #[getter]
    fn key_count(&self) -> usize {
        self.keyring.len()
    }

    fn get_performance_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = PyDict::new(py);
        if !self.performance_monitoring {
            stats.set_item("error", "Performance monitoring is disabled")?;
            return Ok(stats);
        }
        let enc = self.encryptions.load(Relaxed);
        let dec = self.decryptions.load(Relaxed);
        let enc_s = self.encrypt_nanos.load(Relaxed) as f64 / 1e9;
        let dec_s = self.decrypt_nanos.load(Relaxed) as f64 / 1e9;
        stats.set_item("encryption_enabled", true)?;
        stats.set_item("encryption_operations", enc)?;
        stats.set_item("decryption_operations", dec)?;
        stats.set_item("total_operations", enc + dec)?;
        stats.set_item("total_encryption_time", enc_s)?;
        stats.set_item("total_decryption_time", dec_s)?;
        stats.set_item("avg_encryption_time", average_ms(enc_s, enc))?;
        stats.set_item("avg_decryption_time", average_ms(dec_s, dec))?;
        stats.set_item("performance_monitoring", true)?;
        Ok(stats)
    }

    fn reset_performance_stats(&self) {
        for counter in [
            &self.encryptions,
            &self.decryptions,
            &self.encrypt_nanos,
            &self.decrypt_nanos,
        ] {
            counter.store(0, Relaxed);
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "EncryptedCacheLayer(keys={}, key='***')",
            self.keyring.len()
        )
    }
}

/// A fresh Fernet key (url-safe base64 of 32 random bytes from the OS).
#[pyfunction]
pub fn generate_encryption_key() -> String {
    secure_redis_core::crypto::generate_encryption_key()
}

/// A random password from the OS random source (16 to 1024 characters).
#[pyfunction]
#[pyo3(signature = (length=32))]
pub fn generate_secure_password(py: Python<'_>, length: usize) -> PyResult<String> {
    secure_redis_core::crypto::generate_secure_password(length).py_err(py)
}
