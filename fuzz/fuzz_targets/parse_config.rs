//! URL, TLS-version and key parsing on arbitrary text: an error or a value, never a panic,
//! and no error message that repeats a password from the input URL.
#![no_main]

use _native::config::TlsVersion;
use _native::connection::{redact_url, RedisTarget};
use _native::crypto::Keyring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = TlsVersion::parse(text);
    let _ = Keyring::parse(text);
    let redacted = redact_url(text);
    for insecure in [false, true] {
        match RedisTarget::parse(text, insecure) {
            Ok(target) => {
                let shown = target.display();
                if let Some(password) = &target.password {
                    if password.expose().len() >= 4 {
                        assert!(!shown.contains(password.expose()));
                    }
                }
            }
            Err(err) => {
                let message = err.to_string();
                if let Some((_, after)) = text.split_once("://") {
                    if let Some((userinfo, _)) = after.split_once('@') {
                        if let Some((_, password)) = userinfo.split_once(':') {
                            if password.len() >= 6 && !redacted.contains(password) {
                                assert!(!message.contains(password), "{message}");
                            }
                        }
                    }
                }
            }
        }
    }
});
