//! TLS for `https://` servers: which CA to trust and, for mutual TLS, which certificate to
//! present. Without a CA, the system's certificate store is trusted.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::{self, PemObject as _, SectionKind};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::ClientError;

/// Largest certificate, CA or key file read, in bytes. A chain of a few certificates is a few
/// KiB; a file near this size is the wrong file.
pub use casereg_proto::limits::MAX_PEM_FILE_BYTES;

/// TLS settings for `https://` addresses. Given with an `http://` address they are an error,
/// so that a forgotten `s` cannot quietly turn TLS off.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// CA certificates (PEM) to trust for the server's certificate, instead of the system's
    /// store.
    pub ca_pem: Option<Vec<u8>>,
    /// The certificate and key to present to a server that requires one (mutual TLS).
    pub identity: Option<ClientIdentity>,
}

impl TlsOptions {
    /// Whether anything is set.
    pub fn is_empty(&self) -> bool {
        self.ca_pem.is_none() && self.identity.is_none()
    }

    /// tonic's settings for these options, after checking the PEM contents.
    pub(crate) fn client_config(
        &self,
        timeout: std::time::Duration,
    ) -> Result<ClientTlsConfig, String> {
        let mut config = ClientTlsConfig::new().timeout(timeout);
        config = match &self.ca_pem {
            Some(ca) => {
                check_pem(ca, PemKind::Certificate).map_err(|e| format!("CA certificate: {e}"))?;
                config.ca_certificate(Certificate::from_pem(ca))
            }
            None => config.with_native_roots(),
        };
        if let Some(identity) = &self.identity {
            check_pem(&identity.cert_pem, PemKind::Certificate)
                .map_err(|e| format!("client certificate: {e}"))?;
            check_pem(&identity.key_pem, PemKind::PrivateKey)
                .map_err(|e| format!("client key: {e}"))?;
            config = config.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        }
        Ok(config)
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field(
                "ca_pem",
                &self
                    .ca_pem
                    .as_ref()
                    .map(|pem| format!("<{} bytes>", pem.len())),
            )
            .field("identity", &self.identity)
            .finish()
    }
}

/// A client certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// The private key (PKCS #8, PKCS #1 or SEC1; not encrypted).
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// What a PEM file must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    /// At least one certificate.
    Certificate,
    /// A private key.
    PrivateKey,
}

/// Reads a PEM file named by a command-line flag and checks that it holds `kind`; errors
/// name the flag and the file.
pub fn read_pem_file(flag: &str, path: &Path, kind: PemKind) -> Result<Vec<u8>, ClientError> {
    let fail = |message: String| ClientError::Input {
        path: format!("{flag} {}", path.display()),
        message,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if size > MAX_PEM_FILE_BYTES {
        return Err(fail(format!(
            "{size} bytes; a PEM certificate or key file is at most {MAX_PEM_FILE_BYTES}"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    check_pem(&bytes, kind).map_err(fail)?;
    Ok(bytes)
}

/// Checks that `bytes` is PEM holding at least one section of `kind`.
pub fn check_pem(bytes: &[u8], kind: PemKind) -> Result<(), String> {
    let kinds: Vec<SectionKind> = <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .map(|section| section.map(|(kind, _)| kind))
        .collect::<Result<_, pem::Error>>()
        .map_err(|e| format!("malformed PEM: {e}"))?;
    let (wanted, missing): (fn(&SectionKind) -> bool, _) = match kind {
        PemKind::Certificate => (|k| *k == SectionKind::Certificate, "no certificate found"),
        PemKind::PrivateKey => (
            |k| {
                matches!(
                    k,
                    SectionKind::PrivateKey
                        | SectionKind::RsaPrivateKey
                        | SectionKind::EcPrivateKey
                )
            },
            "no private key found (encrypted keys are not supported)",
        ),
    };
    if kinds.iter().any(wanted) {
        return Ok(());
    }
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err("not PEM (no \"-----BEGIN\" line; DER files must be converted)".to_owned());
    }
    let found: Vec<&str> = kinds.iter().map(|k| label(*k)).collect();
    Err(if found.is_empty() {
        missing.to_owned()
    } else {
        format!("{missing}; the file holds: {}", found.join(", "))
    })
}

/// A section's PEM label, as written after `-----BEGIN `.
fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        SectionKind::EchConfigList => "ECHCONFIG",
        // The enum is non-exhaustive: a kind added later is still named, if less well.
        _ => "another PEM section",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(label: &str) -> Vec<u8> {
        format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n").into_bytes()
    }

    #[test]
    fn pem_contents_are_told_apart() {
        assert_eq!(
            check_pem(&section("CERTIFICATE"), PemKind::Certificate),
            Ok(())
        );
        assert_eq!(
            check_pem(&section("EC PRIVATE KEY"), PemKind::PrivateKey),
            Ok(())
        );
        let e = check_pem(b"\x30\x82 DER bytes", PemKind::Certificate).expect_err("DER");
        assert!(e.starts_with("not PEM"), "{e}");
        let e = check_pem(&section("PRIVATE KEY"), PemKind::Certificate).expect_err("key");
        assert_eq!(e, "no certificate found; the file holds: PRIVATE KEY");
        let e = check_pem(&section("ENCRYPTED PRIVATE KEY"), PemKind::PrivateKey)
            .expect_err("encrypted");
        assert!(e.contains("encrypted keys are not supported"), "{e}");
        let e = check_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n", PemKind::Certificate)
            .expect_err("unterminated");
        assert!(e.starts_with("malformed PEM"), "{e}");
    }

    #[test]
    fn file_errors_name_the_flag_and_path() {
        let dir = std::env::temp_dir().join(format!("casereg-client-tls-{}", std::process::id()));
        let missing = dir.join("absent-ca.pem");
        let e = read_pem_file("--ca", &missing, PemKind::Certificate)
            .expect_err("missing file")
            .to_string();
        assert!(
            e.starts_with(&format!("--ca {}: cannot read", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let options = TlsOptions {
            ca_pem: Some(section("CERTIFICATE")),
            identity: Some(ClientIdentity {
                cert_pem: section("CERTIFICATE"),
                key_pem: b"-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n".to_vec(),
            }),
        };
        let text = format!("{options:?}");
        assert!(!text.contains("SECRETKEYBYTES"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}
