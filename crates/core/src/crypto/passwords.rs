//! Passwords for Redis AUTH, drawn from the operating system's random source.

use crate::error::{Error, ErrorCode, Result};
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
        .code(ErrorCode::InvalidPasswordLength));
    }
    let mut rng = OsRng;
    let n = PASSWORD_ALPHABET.len() as u32;
    // Rejection sampling keeps every symbol equally likely.
    let zone = u32::MAX - (u32::MAX % n);
    let mut out = String::with_capacity(length);
    while out.len() < length {
        let draw = rng.try_next_u32().map_err(|e| {
            Error::infrastructure(format!("The OS random source failed: {e}"))
                .code(ErrorCode::RandomSourceFailure)
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

/// Passwords that appear in defaults, docs and breach lists; matched case-insensitively,
/// also as the whole password with digits or punctuation appended.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "passw0rd",
    "p@ssw0rd",
    "123456",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty",
    "qwertyuiop",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "root",
    "toor",
    "redis",
    "redispass",
    "redispassword",
    "redis_password",
    "changeme",
    "change_me",
    "secret",
    "default",
    "iloveyou",
    "monkey",
    "dragon",
    "master",
    "abc123",
    "football",
    "trustno1",
    "sunshine",
    "princess",
    "secure_default_password",
    "your-secure-password",
    "your_redis_password",
    "mypassword",
    "foobared",
    "test",
    "testing",
    "example",
    "password123",
    "passwordpassword",
];

/// `password_strength()`: field names and order are the dict Python sees.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PasswordStrength {
    /// 0 to 100; 80 and above is strong.
    pub score: u8,
    /// Estimated bits of entropy, after penalties for patterns.
    pub entropy_bits: f64,
    /// "weak", "fair" or "strong".
    pub rating: &'static str,
    pub issues: Vec<String>,
}

impl PasswordStrength {
    pub fn is_common(&self) -> bool {
        self.issues.iter().any(|i| i.starts_with("common"))
    }
    pub fn is_repetitive(&self) -> bool {
        self.issues.iter().any(|i| i.starts_with("repeated"))
    }
}

fn pool_size(password: &str) -> f64 {
    let mut pool = 0.0;
    if password.chars().any(|c| c.is_ascii_lowercase()) {
        pool += 26.0;
    }
    if password.chars().any(|c| c.is_ascii_uppercase()) {
        pool += 26.0;
    }
    if password.chars().any(|c| c.is_ascii_digit()) {
        pool += 10.0;
    }
    if password
        .chars()
        .any(|c| c.is_ascii_punctuation() || c == ' ')
    {
        pool += 33.0;
    }
    if !password.is_ascii() {
        pool += 100.0;
    }
    f64::max(pool, 1.0)
}

fn longest_run(password: &str) -> usize {
    let chars: Vec<char> = password.chars().collect();
    let (mut best, mut run) = (0usize, 0usize);
    for (i, c) in chars.iter().enumerate() {
        run = if i > 0 && chars[i - 1] == *c {
            run + 1
        } else {
            1
        };
        best = best.max(run);
    }
    best
}

fn longest_sequence(password: &str) -> usize {
    let bytes = password.as_bytes();
    let (mut best, mut run) = (1usize, 1usize);
    for pair in bytes.windows(2) {
        let step = i16::from(pair[1]) - i16::from(pair[0]);
        run = if step == 1 || step == -1 { run + 1 } else { 1 };
        best = best.max(run);
    }
    if bytes.is_empty() {
        0
    } else {
        best
    }
}

/// Scores a password: entropy from length and character classes, with patterns (common
/// passwords, repeated characters, keyboard or alphabet sequences) cutting it down.
pub fn password_strength(password: &str) -> PasswordStrength {
    let length = password.chars().count();
    let mut issues = Vec::new();
    let bits_per_char = pool_size(password).log2();
    let mut effective_length = length as f64;

    let lowered = password.to_lowercase();
    let stripped =
        lowered.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    if COMMON_PASSWORDS.contains(&lowered.as_str()) || COMMON_PASSWORDS.contains(&stripped) {
        issues.push(
            "common password: it appears in default configurations and breach lists".to_owned(),
        );
        effective_length = effective_length.min(2.0);
    }
    let unique: std::collections::HashSet<char> = password.chars().collect();
    let run = longest_run(password);
    // Relative to what the password could use: 64 hex digits use 16 symbols of a 36-symbol
    // pool and are perfectly random; 32 times "a" is not. Runs count once they are a quarter
    // of the password, so chance runs in random passwords pass.
    let expected_unique = (pool_size(password) as usize).min(length);
    if length > 0 && (run >= 4.max(length / 4) || unique.len() * 3 < expected_unique) {
        issues.push(format!(
            "repeated characters: only {} distinct characters, longest run {run}",
            unique.len()
        ));
        effective_length = effective_length.min(unique.len() as f64);
    }
    let sequence = longest_sequence(password);
    if sequence >= 4 {
        issues.push(format!(
            "sequence of {sequence} consecutive characters (like 1234 or abcd)"
        ));
        effective_length -= (sequence - 1) as f64;
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|present| **present)
    .count();
    if classes < 2 && length > 0 {
        issues.push("uses a single character class".to_owned());
    }
    if length < 16 {
        issues.push(format!(
            "short: {length} characters (16 is the minimum anywhere)"
        ));
    }
    let entropy_bits = (effective_length.max(0.0) * bits_per_char * 10.0).round() / 10.0;
    let score = ((entropy_bits / 128.0) * 100.0).clamp(0.0, 100.0).round() as u8;
    let rating = match score {
        80..=100 => "strong",
        50..=79 => "fair",
        _ => "weak",
    };
    PasswordStrength {
        score,
        entropy_bits,
        rating,
        issues,
    }
}

#[cfg(test)]
mod strength_tests {
    use super::*;

    #[test]
    fn generated_passwords_are_strong() {
        let strength = password_strength(&generate_secure_password(32).unwrap());
        assert_eq!(strength.rating, "strong", "{strength:?}");
        assert!(strength.entropy_bits > 150.0);
    }

    #[test]
    fn patterns_are_flagged() {
        let common = password_strength("Password123!");
        assert!(common.is_common() && common.rating == "weak");
        let repeated = password_strength("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert!(repeated.is_repetitive() && repeated.rating == "weak");
        let padded = password_strength("Xq7#Lm2!Zr9$Kp4&eeeeeeeeeeeeeeee");
        assert!(padded.is_repetitive());
        let hex = "3f9a0c4e7b1d8a2f3f9a0c4e7b1d8a2f0011223344556677e1f2a3b4c5d6e7f8";
        assert!(
            !password_strength(hex).is_repetitive(),
            "random hex is not repetitive"
        );
        assert!(!password_strength("a3f9aaaa0c4e7b1d8a2f9c4e7b1d8a2f").is_repetitive());
        let sequence = password_strength("abcdefghijklmnop");
        assert!(sequence.issues.iter().any(|i| i.starts_with("sequence")));
        assert!(password_strength("").score == 0);
    }
}
