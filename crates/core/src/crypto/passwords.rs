//! Passwords for Redis AUTH: drawn from the operating system's random source, and rated by
//! the zxcvbn estimator with our own pattern checks on top.
//!
//! Invariant: nothing here logs, formats or returns the password. zxcvbn's `Entropy` holds
//! pieces of it (its match sequence), so it never leaves `password_strength_for` and is never
//! printed with `Debug`; only its score, guess count and fixed feedback texts are kept.

use crate::error::{Error, ErrorCode, Result};
use rand::rngs::OsRng;
use rand::TryRngCore;

/// Letters, digits and a few punctuation marks, without the look-alikes 0 O l I, and
/// without characters that need quoting in redis.conf, URLs or shell (`"`, `'`, `\`, `:`,
/// `@`, `/`, `#`, space, and `&`, which ends the assignment when a shell sources the env file
/// with `set -a; . ./.env.secure`).
pub const PASSWORD_ALPHABET: &[u8] =
    b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ123456789!%^*-_=+";

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

/// Words every Redis password is checked against as zxcvbn "user inputs", so a password built
/// from the product's or the server's names rates low.
pub const BASE_USER_INPUTS: &[&str] = &[
    "redis",
    "secure_redis",
    "secure-redis",
    "secureredis",
    "requirepass",
    "default",
    "cache",
];

/// zxcvbn's verdict on a password, in zxcvbn's own terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EstimatorFeedback {
    /// zxcvbn's warning, a fixed sentence that never quotes the password.
    pub warning: Option<String>,
    /// zxcvbn's suggestions, fixed sentences as well.
    pub suggestions: Vec<String>,
}

/// `password_strength()`: field names and order are the dict Python sees.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PasswordStrength {
    /// 0 to 100 from `entropy_bits` (128 bits is 100).
    pub score: u8,
    /// Estimated bits: the lower of zxcvbn's guess count (log2) and our pattern-penalised
    /// length times character-pool estimate.
    pub entropy_bits: f64,
    /// "strong" (zxcvbn 4 and score 80+), "weak" (zxcvbn 0-2 or score under 50), else "fair".
    pub rating: &'static str,
    pub issues: Vec<String>,
    /// zxcvbn's score, 0 to 4: 4 means more than 10^10 guesses.
    pub zxcvbn_score: u8,
    pub feedback: EstimatorFeedback,
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

/// `password_strength_for` with only the `BASE_USER_INPUTS`.
pub fn password_strength(password: &str) -> PasswordStrength {
    password_strength_for(password, &[])
}

/// Scores a password with zxcvbn (dictionaries, keyboard patterns, repeats, sequences, dates,
/// l33t substitutions, and `user_inputs` such as the ACL user name on top of
/// `BASE_USER_INPUTS`) and with our own checks (common Redis passwords, repeated characters,
/// sequences, length); the weaker estimate wins.
pub fn password_strength_for(password: &str, user_inputs: &[&str]) -> PasswordStrength {
    let inputs: Vec<&str> = BASE_USER_INPUTS
        .iter()
        .copied()
        .chain(user_inputs.iter().copied().filter(|i| !i.is_empty()))
        .collect();
    // The Entropy stays in this block: its match sequence holds parts of the password.
    let (zxcvbn_score, estimator_bits, feedback) = {
        let estimate = zxcvbn::zxcvbn(password, &inputs);
        let feedback = estimate.feedback().map_or_else(
            || EstimatorFeedback {
                warning: None,
                suggestions: Vec::new(),
            },
            |f| EstimatorFeedback {
                warning: f.warning().map(|w| w.to_string()),
                suggestions: f.suggestions().iter().map(ToString::to_string).collect(),
            },
        );
        // zxcvbn counts guesses in a u64: at u64::MAX (64 bits) it only says "at least
        // that", and the pattern estimate decides.
        let bits = if password.is_empty() {
            0.0
        } else if estimate.guesses() == u64::MAX {
            f64::INFINITY
        } else {
            estimate.guesses_log10() * std::f64::consts::LOG2_10
        };
        (u8::from(estimate.score()), bits, feedback)
    };
    let mut strength = pattern_strength(password);
    if let Some(warning) = &feedback.warning {
        strength
            .issues
            .push(format!("estimator: {}", warning.trim_end_matches('.')));
    }
    if zxcvbn_score < 4 && !password.is_empty() {
        strength.issues.push(format!(
            "estimator score {zxcvbn_score}/4: guessable in about 10^{} tries",
            (estimator_bits / std::f64::consts::LOG2_10).round()
        ));
    }
    let entropy_bits = (strength.entropy_bits.min(estimator_bits).max(0.0) * 10.0).round() / 10.0;
    let score = ((entropy_bits / 128.0) * 100.0).clamp(0.0, 100.0).round() as u8;
    let rating = if zxcvbn_score <= 2 || score < 50 {
        "weak"
    } else if zxcvbn_score == 4 && score >= 80 {
        "strong"
    } else {
        "fair"
    };
    PasswordStrength {
        score,
        entropy_bits,
        rating,
        issues: strength.issues,
        zxcvbn_score,
        feedback,
    }
}

/// Our own checks: what the estimator does not know (the common Redis passwords) and what
/// the policy refuses everywhere (common, repeated characters).
struct PatternStrength {
    entropy_bits: f64,
    issues: Vec<String>,
}

/// Entropy from length and character classes, with patterns (common passwords, repeated
/// characters, keyboard or alphabet sequences) cutting it down.
fn pattern_strength(password: &str) -> PatternStrength {
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
    PatternStrength {
        entropy_bits: effective_length.max(0.0) * bits_per_char,
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

    /// Memorable-but-long passwords the old length-and-classes estimate rated strong or
    /// let through in production; zxcvbn scores them 0 to 2.
    pub(crate) const MEMORABLE: &[&str] = &[
        "P@ssw0rd2024!P@ssw0rd2024!",
        "0123456789012345678901234567890123456789",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
    ];

    #[test]
    fn memorable_passwords_are_weak() {
        for password in MEMORABLE {
            let strength = password_strength(password);
            assert_eq!(strength.rating, "weak", "{strength:?}");
            assert!(strength.zxcvbn_score <= 2, "{strength:?}");
            assert!(
                strength.feedback.warning.is_some() || !strength.feedback.suggestions.is_empty()
            );
            assert!(!format!("{strength:?}").contains(password));
        }
    }

    #[test]
    fn generated_passwords_score_four() {
        for _ in 0..200 {
            let strength = password_strength(&generate_secure_password(32).unwrap());
            assert_eq!(strength.zxcvbn_score, 4, "{strength:?}");
            assert_eq!(strength.rating, "strong", "{strength:?}");
        }
    }

    #[test]
    fn user_inputs_lower_the_score() {
        let password = "cache-app-orders-2024-cache-app-orders";
        let plain = password_strength(password);
        let named = password_strength_for(password, &["cache-app-orders"]);
        assert!(
            named.entropy_bits < plain.entropy_bits,
            "{named:?} {plain:?}"
        );
        assert!(password_strength("redisredisredisredisredisredis1!").rating == "weak");
    }
}
