//! Passwords for Redis AUTH, drawn from the operating system's random source.

use crate::error::{Error, Result};
use rand::rngs::OsRng;
use rand::TryRngCore;

/// Letters, digits and a few punctuation marks, without the look-alikes 0 O l I, and
/// without characters that need quoting in redis.conf, URLs or shell (`"`, `'`, `\`, `:`,
/// `@`, `/`, `#`, space).
pub const PASSWORD_ALPHABET: &[u8] =
    b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ123456789!%^&*-_=+";

pub const MIN_GENERATED_LENGTH: usize = 16;
pub const MAX_GENERATED_LENGTH: usize = 1024;

pub fn generate_secure_password(length: usize) -> Result<String> {
    if !(MIN_GENERATED_LENGTH..=MAX_GENERATED_LENGTH).contains(&length) {
        return Err(Error::validation(format!(
            "Password length must be between {MIN_GENERATED_LENGTH} and {MAX_GENERATED_LENGTH}, got {length}."
        ))
        .with("length", length)
        .error_type("invalid_password_length"));
    }
    let mut rng = OsRng;
    let n = PASSWORD_ALPHABET.len() as u32;
    // Rejection sampling keeps every symbol equally likely.
    let zone = u32::MAX - (u32::MAX % n);
    let mut out = String::with_capacity(length);
    while out.len() < length {
        let draw = rng.try_next_u32().map_err(|e| {
            Error::infrastructure(format!("The OS random source failed: {e}"))
                .error_type("random_source_failure")
        })?;
        if draw < zone {
            out.push(PASSWORD_ALPHABET[(draw % n) as usize] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_have_the_length_and_alphabet() {
        let a = generate_secure_password(32).unwrap();
        let b = generate_secure_password(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
        assert!(generate_secure_password(8).is_err());
    }
}
