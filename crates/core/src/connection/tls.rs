//! The rustls client configuration: `ring` provider, the configured CA as the only trust root
//! (public web roots only when no CA is given, which `config::policy::trust_rule` allows only
//! where it is safe or chosen), hostname verification always on, the minimum TLS version
//! enforced by the protocol list, and an optional client certificate.
//!
//! Built once per cache and shared by every reconnect, so TLS session resumption applies.
//!
//! A certificate the public roots do not trust fails with `NotPubliclyTrusted` rather than
//! rustls' `UnknownIssuer`, so the advice for a failed handshake can say which roots were
//! asked without the caller having to tell it.

use crate::config::{SecurityConfig, TlsVersion};
use crate::error::{Error, ErrorCode, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;

/// The file is named by its field, never by its path: a secret pasted into a path variable
/// must not be printed.
fn tls_error(field: &str, path: &Path, why: String) -> Error {
    Error::configuration(format!(
        "{field} ({}): {why}",
        crate::config::describe_path(path)
    ))
    .with("field", field)
    .code(ErrorCode::InvalidTlsMaterial)
}

/// The public roots rejected the server's certificate (no `tls_ca_path` was configured).
#[derive(Debug)]
pub struct NotPubliclyTrusted;

impl std::fmt::Display for NotPubliclyTrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the certificate is not trusted by the public web roots")
    }
}

impl std::error::Error for NotPubliclyTrusted {}

/// Verification against the public web roots, reporting an unknown issuer as
/// `NotPubliclyTrusted`; everything else is the webpki verifier's.
#[derive(Debug)]
struct PublicRootsVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for PublicRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|err| match err {
                rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature,
                ) => rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(NotPubliclyTrusted)),
                )),
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn read_certificates(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(field, path, format!("cannot read PEM certificates ({e})")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_error(field, path, format!("is not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(tls_error(
            field,
            path,
            "contains no PEM certificate (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

pub fn build_client_config(config: &SecurityConfig) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match config.min_tls_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| Error::configuration(format!("TLS setup failed: {e}")))?;
    let builder = match &config.tls_ca_path {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates("tls_ca_path", path)? {
                roots.add(cert).map_err(|e| {
                    tls_error(
                        "tls_ca_path",
                        path,
                        format!("holds a certificate rustls cannot use as a trust root ({e})"),
                    )
                })?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(public_roots_verifier(provider)?),
    };
    let client_config = match (&config.tls_cert_path, &config.tls_key_path) {
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certificates("tls_cert_path", cert_path)?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                tls_error(
                    "tls_key_path",
                    key_path,
                    format!("holds no usable PEM private key ({e})"),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                tls_error(
                    "tls_key_path",
                    key_path,
                    format!("does not match the client certificate or is unsupported ({e})"),
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(client_config))
}

/// The webpki verifier over the public web roots, reporting an unknown issuer as such.
fn public_roots_verifier(provider: Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Error::configuration(format!("TLS setup failed: {e}")))?;
    Ok(Arc::new(PublicRootsVerifier(verifier)))
}

pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).map_err(|_| {
        Error::configuration(format!(
            "The host in the Redis URL ({} characters) is not a valid DNS name or IP address for TLS \
             verification.",
            host.chars().count()
        ))
        .code(ErrorCode::InvalidRedisUrl)
    })
}

/// Turns a handshake failure into advice. rustls errors arrive wrapped in `io::Error`.
pub fn explain_handshake_failure(err: &std::io::Error, target: &str) -> Option<String> {
    use rustls::{CertificateError, Error as E};
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())?;
    let advice = match tls {
        E::InvalidCertificate(CertificateError::Other(other))
            if other.0.downcast_ref::<NotPubliclyTrusted>().is_some() =>
        {
            format!(
                "the server certificate of {target} is not trusted by the public web roots, and no CA is \
                 configured. Set REDIS_TLS_CA_PATH (tls_ca_path) to the CA that issued the server's certificate."
            )
        }
        E::InvalidCertificate(CertificateError::UnknownIssuer |
CertificateError::BadSignature) => format!(
            "the server certificate of {target} is not signed by the configured CA. Set REDIS_TLS_CA_PATH \
             (tls_ca_path) to the CA that issued the server's certificate."
        ),
        E::InvalidCertificate(CertificateError::NotValidForName |
CertificateError::NotValidForNameContext { .. }) => format!(
            "the server certificate is not valid for the host in the URL ({target}). Connect using a host name \
             listed in the certificate's subjectAltName, or reissue the certificate for this host."
        ),
        E::InvalidCertificate(CertificateError::Expired |
CertificateError::ExpiredContext { .. }) => format!(
            "the server certificate of {target} has expired. Renew it (scripts/init-redis-tls.sh) and restart Redis."
        ),
        E::InvalidCertificate(CertificateError::NotValidYet |
CertificateError::NotValidYetContext { .. }) => format!(
            "the server certificate of {target} is not valid yet. Check the clocks of both machines."
        ),
        E::InvalidCertificate(other) => format!(
            "the server certificate of {target} was rejected ({other:?}). Check REDIS_TLS_CA_PATH and the server \
             certificate."
        ),
        E::InvalidMessage(_) => format!(
            "{target} did not answer with TLS. Is this a plaintext Redis port? Enable TLS on the server \
             (tls-port) and connect to that port."
        ),
        E::PeerIncompatible(_) => format!(
            "{target} and this client share no TLS version or cipher suite. Check min_tls_version and the \
             server's tls-protocols."
        ),
        E::AlertReceived(rustls::AlertDescription::ProtocolVersion) => format!(
            "{target} does not offer a TLS version this client accepts. Enable TLSv1.3 on the server \
             (tls-protocols \"TLSv1.2 TLSv1.3\"), or lower min_tls_version (REDIS_TLS_MIN_VERSION=1.2) where \
             the environment's policy allows it."
        ),
        E::AlertReceived(alert) => format!(
            "{target} refused the TLS handshake ({alert:?}). If the server requires client certificates \
             (tls-auth-clients yes), set REDIS_TLS_CERT_PATH and REDIS_TLS_KEY_PATH."
        ),
        other => format!("TLS handshake with {target} failed: {other}."),
    };
    Some(advice)
}
