//! Cryptography: the Fernet keyring (encryption with rotation) and secret handling.

pub mod keyring;
pub mod secret;

pub use keyring::{generate_encryption_key, DecryptError, Keyring};
pub use secret::Secret;
