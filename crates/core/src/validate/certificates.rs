//! TLS material on disk: files readable, PEM parses, validity windows, the CA signs the client
//! certificate, the client key matches it, and private keys are not readable by others. A
//! path is shown only once it names an existing file: one that names nothing may be a secret
//! pasted into the wrong variable.

use super::{CheckResult, Finding};
use crate::clock::days_until;
use crate::config::policy::trust_rule;
use crate::environment::{DetectedEnvironment, Environment};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use x509_parser::prelude::{FromDer, X509Certificate};

const CHECK: &str = "certificates";
const INIT_TLS: &str = "scripts/init-redis-tls.sh";

/// The file a variable usually names, so every fix can show a complete example assignment.
fn example_path(variable: &str) -> &'static str {
    match variable {
        "REDIS_TLS_CA_PATH" => "/etc/redis/tls/ca.crt",
        "REDIS_TLS_KEY_PATH" => "/etc/redis/tls/client.key",
        _ => "/etc/redis/tls/client.crt",
    }
}

struct Loaded {
    ders: Vec<CertificateDer<'static>>,
}

fn load_certificates(result: &mut CheckResult, variable: &str, path: &Path) -> Option<Loaded> {
    if let Err(err) = std::fs::File::open(path) {
        result.push(Finding::error(
            CHECK,
            format!(
                "{variable}: cannot read the file at the path given ({}): {}.",
                crate::config::describe_path(path),
                err
            ),
            &format!("{variable}=/etc/redis/tls/<file> pointing at a readable PEM file (create them with {INIT_TLS})"),
            "certificates",
        ));
        return None;
    }
    let ders: Result<Vec<_>, _> = match CertificateDer::pem_file_iter(path) {
        Ok(iter) => iter.collect(),
        Err(err) => Err(err),
    };
    match ders {
        Ok(ders) if !ders.is_empty() => Some(Loaded { ders }),
        Ok(_) => {
            result.push(Finding::error(
                CHECK,
                format!("{variable}: the file holds no PEM certificate."),
                &format!(
                    "{variable}={} (a file with -----BEGIN CERTIFICATE----- blocks)",
                    example_path(variable)
                ),
                "certificates",
            ));
            None
        }
        Err(err) => {
            result.push(Finding::error(
                CHECK,
                format!("{variable}: the file is not valid PEM ({err})."),
                &format!(
                    "{variable}={} (a PEM certificate file; create them with {INIT_TLS})",
                    example_path(variable)
                ),
                "certificates",
            ));
            None
        }
    }
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
    X509Certificate::from_der(der.as_ref()).ok().map(|(_, c)| c)
}

/// Checks the validity window of one certificate; records subject, issuer and expiry.
/// `variable` is the setting that names the file, so the fix can say what to change.
fn check_validity(
    result: &mut CheckResult,
    what: &str,
    variable: &str,
    prefix: &str,
    cert: &X509Certificate<'_>,
    env: &DetectedEnvironment,
    now: u64,
) {
    let validity = cert.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    let days_left = days_until(not_after, now);
    // Certificate times are signed; a clock past i64::MAX seconds is not a case to handle.
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    result.info(&format!("{prefix}subject"), cert.subject().to_string());
    result.info(&format!("{prefix}issuer"), cert.issuer().to_string());
    result.info(
        &format!("{prefix}not_before"),
        validity.not_before.to_string(),
    );
    result.info(&format!("{prefix}expires"), validity.not_after.to_string());
    result.info(&format!("{prefix}days_until_expiry"), days_left);
    let example = example_path(variable);
    let renew =
        format!("Renew it ({INIT_TLS} --force) and set {variable}={example} to the new file");
    if now < not_before {
        result.push(Finding::error(
            CHECK,
            format!(
                "The {what} is not valid yet (valid from {}).",
                validity.not_before
            ),
            &format!(
                "Check the system clocks (timedatectl), or reissue the certificate with a current start date \
                 ({INIT_TLS} --force) and set {variable}={example} to the new file"
            ),
            "certificate-expiry",
        ));
    } else if now > not_after {
        result.push(Finding::error(
            CHECK,
            format!(
                "The {what} expired {} day(s) ago ({}).",
                -days_left, validity.not_after
            ),
            &renew,
            "certificate-expiry",
        ));
    } else if days_left < 7 && env.environment == Environment::Production {
        result.push(Finding::error(
            CHECK,
            format!("The {what} expires in {days_left} day(s); production requires at least 7."),
            &renew,
            "certificate-expiry",
        ));
    } else if days_left < 30 {
        result.push(Finding::warning(
            CHECK,
            format!("The {what} expires in {days_left} day(s)."),
            &renew,
            "certificate-expiry",
        ));
    }
}

#[cfg(unix)]
fn check_key_permissions(result: &mut CheckResult, path: &Path, env: &DetectedEnvironment) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    result.info("key_file_mode", format!("{mode:o}"));
    if mode & 0o077 != 0 {
        let message = format!(
            "The private key {} is readable by {} (mode {mode:o}).",
            path.display(),
            if mode & 0o007 != 0 {
                "everyone"
            } else {
                "its group"
            }
        );
        let fix = format!(
            "chmod 600 {} (owned by the service user), or set REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key \
             to a copy with mode 600",
            path.display()
        );
        result.push(if env.environment == Environment::Production {
            Finding::error(CHECK, message, &fix, "key-file-permissions")
        } else {
            Finding::warning(CHECK, message, &fix, "key-file-permissions")
        });
    }
}

#[cfg(not(unix))]
fn check_key_permissions(_: &mut CheckResult, _: &Path, _: &DetectedEnvironment) {}

fn keys_match(cert: &X509Certificate<'_>, key_path: &Path) -> Result<bool, String> {
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| e.to_string())?;
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| e.to_string())?;
    match signing.public_key() {
        Some(spki) => Ok(spki.as_ref() == cert.public_key().raw),
        None => Err("this key type cannot be compared".into()),
    }
}

const STANDALONE: &str = "standalone";

/// The files of a single node that has not opted into the public roots.
pub fn check_certificates(
    cert_path: Option<&Path>,
    key_path: Option<&Path>,
    ca_path: Option<&Path>,
    uses_tls: bool,
    env: &DetectedEnvironment,
    now: u64,
) -> CheckResult {
    check_certificates_with(
        cert_path, key_path, ca_path, uses_tls, env, now, false, STANDALONE,
    )
}

/// The files, and whether the trust roots are acceptable for `topology` with or without the
/// public-roots opt-in (`config::policy::trust_rule`, which construction enforces too).
#[allow(clippy::too_many_arguments)] // each is one input of the check, named at the call
pub fn check_certificates_with(
    cert_path: Option<&Path>,
    key_path: Option<&Path>,
    ca_path: Option<&Path>,
    uses_tls: bool,
    env: &DetectedEnvironment,
    now: u64,
    trust_public_roots: bool,
    topology: &str,
) -> CheckResult {
    let mut result = CheckResult::default();
    if uses_tls {
        let rule = trust_rule(
            ca_path.is_some(),
            trust_public_roots,
            env.environment,
            Some(topology),
        );
        if let Some(rule) = rule {
            result.push(Finding::from_rule(CHECK, &rule));
        }
    }

    let mut ca_certs = Vec::new();
    if let Some(path) = ca_path {
        result.info("ca_path", absolute(path));
        if let Some(loaded) = load_certificates(&mut result, "REDIS_TLS_CA_PATH", path) {
            ca_certs = loaded.ders;
        }
    }
    let parsed_cas: Vec<X509Certificate<'_>> = ca_certs.iter().filter_map(parse).collect();
    if ca_certs.len() != parsed_cas.len() {
        result.push(Finding::error(
            CHECK,
            "REDIS_TLS_CA_PATH holds a certificate that does not parse as X.509.".into(),
            "REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt (the PEM CA certificate)",
            "certificates",
        ));
    }
    if let Some(ca) = parsed_cas.first() {
        if !ca.is_ca() {
            result.push(Finding::warning(
                CHECK,
                "The certificate in REDIS_TLS_CA_PATH is not a CA certificate (basicConstraints CA:FALSE); it \
                 cannot anchor verification of the server."
                    .into(),
                "REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt (the CA that signed the server certificate, not the \
                 server certificate itself)",
                "certificates",
            ));
        }
        check_validity(
            &mut result,
            "CA certificate",
            "REDIS_TLS_CA_PATH",
            "ca_",
            ca,
            env,
            now,
        );
    }

    match (cert_path, key_path) {
        (Some(_), None) => result.push(Finding::error(
            CHECK,
            "REDIS_TLS_CERT_PATH is set but REDIS_TLS_KEY_PATH is not.".into(),
            "REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key",
            "mutual-tls",
        )),
        (None, Some(_)) => result.push(Finding::error(
            CHECK,
            "REDIS_TLS_KEY_PATH is set but REDIS_TLS_CERT_PATH is not.".into(),
            "REDIS_TLS_CERT_PATH=/etc/redis/tls/client.crt",
            "mutual-tls",
        )),
        _ => {}
    }
    if let Some(path) = key_path {
        result.info("key_path", absolute(path));
        if std::fs::File::open(path).is_err() {
            result.push(Finding::error(
                CHECK,
                format!(
                    "REDIS_TLS_KEY_PATH: cannot read the file at the path given ({}).",
                    crate::config::describe_path(path)
                ),
                "REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key, readable by this service only",
                "mutual-tls",
            ));
        } else {
            check_key_permissions(&mut result, path, env);
        }
    }
    let Some(path) = cert_path else {
        return result;
    };
    result.info("cert_path", absolute(path));
    let Some(loaded) = load_certificates(&mut result, "REDIS_TLS_CERT_PATH", path) else {
        return result;
    };
    let Some(cert) = parse(&loaded.ders[0]) else {
        result.push(Finding::error(
            CHECK,
            "REDIS_TLS_CERT_PATH holds a certificate that does not parse as X.509.".into(),
            "REDIS_TLS_CERT_PATH=/etc/redis/tls/client.crt (PEM)",
            "mutual-tls",
        ));
        return result;
    };
    check_validity(
        &mut result,
        "client certificate",
        "REDIS_TLS_CERT_PATH",
        "",
        &cert,
        env,
        now,
    );
    if !parsed_cas.is_empty() {
        let signed = parsed_cas
            .iter()
            .any(|ca| cert.verify_signature(Some(ca.public_key())).is_ok());
        result.info("signed_by_ca", signed);
        if !signed {
            result.push(Finding::error(
                CHECK,
                "The client certificate is not signed by the CA in REDIS_TLS_CA_PATH; a server that trusts that \
                 CA will refuse it."
                    .into(),
                &format!(
                    "Issue the client certificate from the same CA ({INIT_TLS}) and set \
                     REDIS_TLS_CERT_PATH=/etc/redis/tls/client.crt, or set REDIS_TLS_CA_PATH=/etc/redis/tls/ca.crt \
                     to the CA that issued it"
                ),
                "mutual-tls",
            ));
        }
    }
    if let Some(key_path) = key_path {
        match keys_match(&cert, key_path) {
            Ok(true) => result.info("key_matches_certificate", true),
            Ok(false) => {
                result.info("key_matches_certificate", false);
                result.push(Finding::error(
                    CHECK,
                    format!(
                        "The private key {} does not belong to the client certificate {}.",
                        key_path.display(),
                        path.display()
                    ),
                    "REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key (the key generated with this certificate)",
                    "mutual-tls",
                ));
            }
            Err(why) => result.push(Finding::error(
                CHECK,
                format!(
                    "The private key {} cannot be used: {why}.",
                    key_path.display()
                ),
                "REDIS_TLS_KEY_PATH=/etc/redis/tls/client.key (an unencrypted PEM private key: PKCS#8, RSA or EC)",
                "mutual-tls",
            )),
        }
    }
    result
}

/// The absolute path of a file that exists; a path that names no file may be a secret pasted
/// into the wrong variable, so it is only described.
fn absolute(path: &Path) -> String {
    if !path.exists() {
        return crate::config::describe_path(path);
    }
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use std::path::PathBuf;

    struct Pki {
        dir: PathBuf,
    }

    impl Pki {
        fn new(name: &str) -> Pki {
            let dir = std::env::temp_dir().join(format!(
                "sr-certs-{name}-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Pki { dir }
        }

        fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
            let path = self.dir.join(name);
            std::fs::write(&path, contents).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            path
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn ca() -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert, Issuer::new(params, key))
    }

    fn leaf(
        issuer: &Issuer<'_, KeyPair>,
        from: (i32, u8, u8),
        to: (i32, u8, u8),
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["client".to_string()]).unwrap();
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(to.0, to.1, to.2);
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn env(environment: Environment) -> DetectedEnvironment {
        DetectedEnvironment::fixed(environment)
    }

    const NOW_2026: u64 = 1_795_000_000; // 2026-11-18

    /// Every finding must tell the operator which variable to set, with an example value.
    fn assert_fixes_name_variables(r: &CheckResult) {
        for finding in &r.findings {
            assert!(
                names_assignment(&finding.fix),
                "fix without VARIABLE=example: {finding:?}"
            );
        }
    }

    /// `[A-Z_]{4,}=value` somewhere in the text (no regex crate just for a test).
    fn names_assignment(fix: &str) -> bool {
        fix.match_indices('=').any(|(at, _)| {
            let name = fix[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .count();
            name >= 4
                && fix[at + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| !c.is_whitespace())
        })
    }

    #[test]
    fn valid_mutual_tls_material_passes() {
        let pki = Pki::new("valid");
        let (ca_cert, issuer) = ca();
        let (cert, key) = leaf(&issuer, (2026, 1, 1), (2028, 1, 1));
        let ca = pki.write("ca.crt", &ca_cert.pem(), 0o644);
        let cert = pki.write("client.crt", &cert, 0o644);
        let key = pki.write("client.key", &key, 0o600);
        let r = check_certificates(
            Some(&cert),
            Some(&key),
            Some(&ca),
            true,
            &env(Environment::Production),
            NOW_2026,
        );
        assert!(r.valid(), "{:?}", r.findings);
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.info["signed_by_ca"], true);
        assert_eq!(r.info["key_matches_certificate"], true);
    }

    #[test]
    fn expired_not_yet_valid_and_expiring_certificates() {
        let pki = Pki::new("dates");
        let (ca_cert, issuer) = ca();
        let ca = pki.write("ca.crt", &ca_cert.pem(), 0o644);
        let cases = [
            ((2020, 1, 1), (2021, 1, 1), "expired"),
            ((2027, 1, 1), (2028, 1, 1), "not valid yet"),
            ((2026, 1, 1), (2026, 11, 22), "expires in"),
        ];
        for (from, to, phrase) in cases {
            let (cert, key) = leaf(&issuer, from, to);
            let cert = pki.write("c.crt", &cert, 0o644);
            let key = pki.write("c.key", &key, 0o600);
            let prod = check_certificates(
                Some(&cert),
                Some(&key),
                Some(&ca),
                true,
                &env(Environment::Production),
                NOW_2026,
            );
            assert!(!prod.valid(), "{phrase}");
            assert_fixes_name_variables(&prod);
            assert!(
                prod.errors().iter().any(|e| e.contains(phrase)),
                "{phrase}: {:?}",
                prod.errors()
            );
        }
        // Four days left is only a warning outside production.
        let (cert, key) = leaf(&issuer, (2026, 1, 1), (2026, 11, 22));
        let cert = pki.write("c.crt", &cert, 0o644);
        let key = pki.write("c.key", &key, 0o600);
        let dev = check_certificates(
            Some(&cert),
            Some(&key),
            Some(&ca),
            true,
            &env(Environment::Development),
            NOW_2026,
        );
        assert!(dev.valid());
        assert!(dev.warnings().iter().any(|w| w.contains("expires in")));
        assert_fixes_name_variables(&dev);
    }

    #[test]
    fn wrong_ca_mismatched_key_and_loose_permissions() {
        let pki = Pki::new("wrong");
        let (ca_cert, issuer) = ca();
        let (other_ca_cert, _) = ca();
        let (cert, _) = leaf(&issuer, (2026, 1, 1), (2028, 1, 1));
        let (_, other_key) = leaf(&issuer, (2026, 1, 1), (2028, 1, 1));
        let other_ca = pki.write("other-ca.crt", &other_ca_cert.pem(), 0o644);
        let _ = pki.write("ca.crt", &ca_cert.pem(), 0o644);
        let cert = pki.write("client.crt", &cert, 0o644);
        let wrong_key = pki.write("wrong.key", &other_key, 0o644);
        let r = check_certificates(
            Some(&cert),
            Some(&wrong_key),
            Some(&other_ca),
            true,
            &env(Environment::Production),
            NOW_2026,
        );
        assert_fixes_name_variables(&r);
        let errors = r.errors().join("\n");
        assert!(errors.contains("not signed by the CA"), "{errors}");
        assert!(
            errors.contains("does not belong to the client certificate"),
            "{errors}"
        );
        assert!(errors.contains("readable by everyone"), "{errors}");
        let dev = check_certificates(
            Some(&cert),
            Some(&wrong_key),
            None,
            true,
            &env(Environment::Development),
            NOW_2026,
        );
        assert!(dev
            .warnings()
            .iter()
            .any(|w| w.contains("readable by everyone")));
        assert_fixes_name_variables(&dev);
    }

    #[test]
    fn missing_and_garbage_files() {
        let pki = Pki::new("missing");
        let garbage = pki.write("garbage.crt", "not a certificate", 0o644);
        let r = check_certificates(
            None,
            None,
            Some(&garbage),
            true,
            &env(Environment::Development),
            NOW_2026,
        );
        assert!(!r.valid());
        assert_fixes_name_variables(&r);
        let r = check_certificates(
            Some(Path::new("/nonexistent/c.crt")),
            None,
            None,
            true,
            &env(Environment::Development),
            NOW_2026,
        );
        assert_fixes_name_variables(&r);
        let errors = r.errors().join("\n");
        assert!(
            errors.contains("cannot read") && errors.contains("REDIS_TLS_KEY_PATH"),
            "{errors}"
        );
    }
}
