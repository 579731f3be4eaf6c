//! Cryptography: the Fernet keyring (encryption with rotation), the encryption layer for
//! callers who encrypt outside the cache, passwords and secret handling.

pub mod keyring;
pub mod layer;
pub mod passwords;
pub mod secret;

pub use keyring::{generate_encryption_key, DecryptError, Keyring};
pub use passwords::{
    generate_secure_password, password_strength, password_strength_for, EstimatorFeedback,
    PasswordStrength, BASE_USER_INPUTS,
};
pub use secret::Secret;
