//! URL, TLS-version, key and environment-settings parsing on arbitrary text: an error or a
//! value, never a panic.
//! Redaction oracles: the password of the input URL is replaced by a marker, and the marker
//! must appear in no error message and no displayed target, whatever the rest of the URL; the
//! same input read as environment values must never show its password or key in an error,
//! a Debug view or a configuration's description.
#![no_main]

use secure_redis_core::config::{SecurityConfig, TlsVersion};
use secure_redis_core::connection::{redact_url, RedisTarget};
use secure_redis_core::crypto::Keyring;
use libfuzzer_sys::fuzz_target;

const MARKER: &str = "Zq9SECRETmarker";

fn with_marker_password(text: &str) -> Option<String> {
    let (scheme, after) = text.split_once("://")?;
    let (userinfo, rest) = after.split_once('@')?;
    let (user, _password) = userinfo.split_once(':')?;
    // The marker must appear only where the password is (URL parsing drops tabs and
    // newlines, so look at the text the way the parser will).
    let parsed_view: String = text
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    if parsed_view.contains(&MARKER[..4])
        || user.contains(MARKER)
        || rest.contains(MARKER)
        || scheme.contains(MARKER)
    {
        return None;
    }
    Some(format!("{scheme}://{user}:{MARKER}@{rest}"))
}

/// Line `i` of the input is the value of `ENV_NAMES[i]` (an empty line leaves it unset), so
/// the fuzzer spends its time on values rather than on guessing names. The TLS path variables
/// are left out on purpose: they name files the parser opens, and a fuzzer-chosen path could be
/// a FIFO that blocks.
const ENV_NAMES: [&str; 17] = [
    "REDIS_PASSWORD",
    "REDIS_ENCRYPTION_KEY",
    "REDIS_TLS_MIN_VERSION",
    "REDIS_CONNECTION_TIMEOUT",
    "REDIS_SOCKET_TIMEOUT",
    "REDIS_RETRY_DELAY",
    "REDIS_MAX_RETRIES",
    "REDIS_USE_TLS",
    "REDIS_INSECURE_ALLOW_PLAINTEXT",
    "REDIS_ACL_USERNAME",
    "ENVIRONMENT",
    "ENFORCE_AUTH",
    "REDIS_AUTH",
    "NODE_ENV",
    "APP_ENV",
    "ENV",
    "DEPLOYMENT_ENV",
];
const KEY_MARKER: &str = "Zq9KEYmarkerNotAFernetKey";

fn env_from(text: &str) -> Vec<(&'static str, String)> {
    ENV_NAMES
        .iter()
        .zip(text.split('\n'))
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (*name, value.to_owned()))
        .collect()
}

fn check_env(env: &[(&'static str, String)], secrets: &[&str]) {
    let lookup = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let shows_secret = |text: &str| secrets.iter().any(|s| !s.is_empty() && text.contains(s));
    match SecurityConfig::settings_from_env(&lookup) {
        Ok(settings) => assert!(!shows_secret(&format!("{settings:?}")), "{env:?}"),
        Err(err) => assert!(!shows_secret(&format!("{err} {err:?}")), "{env:?}: {err}"),
    }
    match SecurityConfig::from_env(&lookup) {
        Ok(config) => assert!(
            !shows_secret(&format!("{} {config:?}", config.describe())),
            "{env:?}"
        ),
        Err(err) => assert!(!shows_secret(&format!("{err} {err:?}")), "{env:?}: {err}"),
    }
    match SecurityConfig::for_environment(&lookup) {
        Ok((config, detected)) => {
            assert!(
                !shows_secret(&format!("{} {config:?} {detected:?}", config.describe())),
                "{env:?}"
            )
        }
        Err(err) => assert!(!shows_secret(&format!("{err} {err:?}")), "{env:?}: {err}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = TlsVersion::parse(text);
    let _ = Keyring::parse(text);
    let _ = redact_url(text);
    for insecure in [false, true] {
        let _ = RedisTarget::parse(text, insecure);
    }
    if let Some(marked) = with_marker_password(text) {
        assert!(!redact_url(&marked).contains(MARKER), "{marked}");
        for insecure in [false, true] {
            match RedisTarget::parse(&marked, insecure) {
                Ok(target) => assert!(!target.display().contains(MARKER), "{marked}"),
                Err(err) => assert!(!err.to_string().contains(MARKER), "{marked}: {err}"),
            }
        }
    }
    let env = env_from(text);
    check_env(&env, &[]);
    // The same settings with a marked password and a marked (invalid) extra key: whatever the
    // other values, neither marker may surface anywhere.
    let parsed_view: String = text.chars().filter(|c| !c.is_control()).collect();
    if !parsed_view.contains(&MARKER[..4]) && !parsed_view.contains(&KEY_MARKER[..4]) {
        let mut marked: Vec<(&'static str, String)> = env
            .iter()
            .filter(|(name, _)| {
                !matches!(
                    *name,
                    "REDIS_PASSWORD" | "REDIS_AUTH" | "REDIS_ENCRYPTION_KEY"
                )
            })
            .cloned()
            .collect();
        let key = match env.iter().find(|(name, _)| *name == "REDIS_ENCRYPTION_KEY") {
            Some((_, given)) => format!("{given},{KEY_MARKER}"),
            None => KEY_MARKER.to_owned(),
        };
        marked.push((
            "REDIS_PASSWORD",
            format!("{MARKER}-long-enough-password-0123456789"),
        ));
        marked.push(("REDIS_ENCRYPTION_KEY", key));
        check_env(&marked, &[MARKER, KEY_MARKER]);
    }
});
