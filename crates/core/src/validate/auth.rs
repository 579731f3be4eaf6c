//! Authentication: a password (or ACL user and password) must exist, be long enough for the
//! environment, and not be guessable (`config::policy::password_rules`, which construction
//! enforces too).

use super::{CheckResult, Finding};
use crate::config::policy::{password_rules, GENERATE_PASSWORD as GENERATE};
use crate::connection::RedisTarget;
use crate::crypto::{password_strength_for, Secret};
use crate::environment::DetectedEnvironment;
#[cfg(test)]
use crate::environment::Environment;

const CHECK: &str = "authentication";

pub fn check_auth(
    url: Option<&str>,
    password: Option<&Secret>,
    acl_username: Option<&str>,
    env: &DetectedEnvironment,
) -> CheckResult {
    let mut result = CheckResult::default();
    let from_url = url.and_then(|u| RedisTarget::parse(u, true).ok());
    let url_password = from_url.as_ref().and_then(|t| t.password.clone());
    let url_user = from_url.as_ref().and_then(|t| t.username.clone());

    let effective = match (password, &url_password) {
        (Some(configured), Some(in_url)) if configured != in_url => {
            result.push(Finding::error(
                CHECK,
                "The password in the Redis URL differs from REDIS_PASSWORD; the connection would fail.".into(),
                "Keep credentials out of the URL: REDIS_URL=rediss://redis.internal:6380/0 and the password only \
                 in REDIS_PASSWORD.",
                "authentication",
            ));
            Some(configured.clone())
        }
        (Some(configured), _) => {
            result.info("method", "REDIS_PASSWORD");
            Some(configured.clone())
        }
        (None, Some(in_url)) => {
            result.info("method", "URL-embedded credentials");
            Some(in_url.clone())
        }
        (None, None) => None,
    };
    if let (Some(configured), Some(in_url)) = (acl_username, &url_user) {
        if configured != in_url {
            result.push(Finding::error(
                CHECK,
                "The Redis URL names an ACL user other than REDIS_ACL_USERNAME; the connection would be \
                 refused."
                    .into(),
                "Keep the user only in REDIS_ACL_USERNAME and use REDIS_URL=rediss://redis.internal:6380/0",
                "authentication",
            ));
        }
    }
    let username = acl_username.map(str::to_owned).or(url_user);
    // Whether a user is configured, not its name: a password pasted into REDIS_ACL_USERNAME
    // must not reach a report.
    result.info(
        "username",
        match &username {
            Some(name) => format!("(set, {} characters)", name.chars().count()),
            None => "(default)".into(),
        },
    );
    result.info("acl", username.is_some());

    let Some(password) = effective else {
        result.info("status", "Missing");
        result.push(Finding::error(
            CHECK,
            format!(
                "No Redis password is configured; Redis must authenticate every client ({} environment).",
                env.environment
            ),
            GENERATE,
            "authentication",
        ));
        return result;
    };
    result.info("status", "Present");
    let minimum = env.environment.min_password_length();
    result.info("length", password.len());
    result.info("minimum_length", minimum);
    let strength = password_strength_for(password.expose(), username.as_deref().as_slice());
    result.info(
        "strength",
        serde_json::json!({
            "score": strength.score,
            "entropy_bits": strength.entropy_bits,
            "rating": strength.rating,
            "zxcvbn_score": strength.zxcvbn_score,
        }),
    );
    // The same rules refuse the password when a SecurityConfig is made.
    for rule in password_rules(&password, username.as_deref(), env.environment) {
        result.push(Finding::from_rule(CHECK, &rule));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(environment: Environment) -> DetectedEnvironment {
        DetectedEnvironment::fixed(environment)
    }

    #[test]
    fn missing_short_and_common_passwords_fail_everywhere() {
        let dev = env(Environment::Development);
        assert!(!check_auth(Some("rediss://h:1"), None, None, &dev).valid());
        let short = Secret::new("Xy7#kq2!");
        assert!(!check_auth(None, Some(&short), None, &dev).valid());
        let common = Secret::new("password1234567890");
        let r = check_auth(None, Some(&common), None, &dev);
        assert!(!r.valid());
        assert!(r.errors().iter().any(|e| e.contains("guessable")));
        assert!(!format!("{r:?}").contains("password1234567890"));
    }

    #[test]
    fn production_needs_32_characters() {
        let pw = Secret::new("k3J9x!vQ2mZp7Lr5Wt8yN4bH");
        assert!(check_auth(None, Some(&pw), None, &env(Environment::Staging)).valid());
        assert!(!check_auth(None, Some(&pw), None, &env(Environment::Production)).valid());
    }

    #[test]
    fn url_credentials_count_and_must_agree() {
        let dev = env(Environment::Development);
        let r = check_auth(
            Some("rediss://app:k3J9x!vQ2mZp7Lr5Wt8yN4bH@h:1/0"),
            None,
            None,
            &dev,
        );
        assert!(r.valid());
        assert_eq!(r.info["method"], "URL-embedded credentials");
        assert_eq!(r.info["username"], "(set, 3 characters)");
        assert_eq!(r.info["acl"], true);
        let other = Secret::new("k3J9x!vQ2mZp7Lr5Wt8yN4bHxx");
        assert!(!check_auth(
            Some("rediss://:k3J9x!vQ2mZp7Lr5Wt8yN4bH@h:1/0"),
            Some(&other),
            None,
            &dev
        )
        .valid());
    }
}
