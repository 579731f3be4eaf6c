//! URL, TLS-version and key parsing on arbitrary text: an error or a value, never a panic.
//! Redaction oracle: the password of the input URL is replaced by a marker, and the marker
//! must appear in no error message and no displayed target, whatever the rest of the URL.
#![no_main]

use _native::config::TlsVersion;
use _native::connection::{redact_url, RedisTarget};
use _native::crypto::Keyring;
use libfuzzer_sys::fuzz_target;

const MARKER: &str = "Zq9SECRETmarker";

fn with_marker_password(text: &str) -> Option<String> {
    let (scheme, after) = text.split_once("://")?;
    let (userinfo, rest) = after.split_once('@')?;
    let (user, _password) = userinfo.split_once(':')?;
    // The marker must appear only where the password is (URL parsing drops tabs and
    // newlines, so look at the text the way the parser will).
    let parsed_view: String = text.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    if parsed_view.contains(&MARKER[..4]) || user.contains(MARKER) || rest.contains(MARKER) || scheme.contains(MARKER) {
        return None;
    }
    Some(format!("{scheme}://{user}:{MARKER}@{rest}"))
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
});
