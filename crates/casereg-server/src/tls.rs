//! TLS for the server: reads the files named by `--tls-cert`, `--tls-key` and
//! `--tls-client-ca` into tonic's rustls settings, with errors that name the flag and the file.
//!
//! Everything is checked at start-up, including that the key belongs to the certificate, so a
//! wrong file stops the server with one clear line instead of failing every handshake.

use std::path::Path;
use std::time::Duration;

use rustls_pki_types::pem::{self, PemObject as _, SectionKind};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use casereg_core::limits::{MAX_PEM_FILE_BYTES, TLS_HANDSHAKE_TIMEOUT_SECS};

use crate::{Config, ServerError};

/// The TLS settings `config` asks for: `None` when neither `--tls-cert` nor `--tls-key` is
/// given (plain HTTP/2).
pub fn server_tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, ServerError> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) if config.tls_client_ca.is_some() => {
            return Err(ServerError::Config(
                "--tls-client-ca needs --tls-cert and --tls-key: client certificates are only \
                 checked over TLS"
                    .to_owned(),
            ));
        }
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ServerError::Config(
                "--tls-cert needs --tls-key (the certificate's private key)".to_owned(),
            ));
        }
        (None, Some(_)) => {
            return Err(ServerError::Config(
                "--tls-key needs --tls-cert (the certificate chain for that key)".to_owned(),
            ));
        }
    };
    let cert = read_pem("--tls-cert", cert_path)?;
    require(
        "--tls-cert",
        cert_path,
        &cert,
        is_certificate,
        "no certificate found",
    )?;
    let key = read_pem("--tls-key", key_path)?;
    require(
        "--tls-key",
        key_path,
        &key,
        is_private_key,
        "no private key found (encrypted keys are not supported)",
    )?;
    let mut tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .timeout(Duration::from_secs(TLS_HANDSHAKE_TIMEOUT_SECS));
    if let Some(ca_path) = &config.tls_client_ca {
        let ca = read_pem("--tls-client-ca", ca_path)?;
        require(
            "--tls-client-ca",
            ca_path,
            &ca,
            is_certificate,
            "no CA certificate found",
        )?;
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    // rustls checks that the key fits the certificate only when the acceptor is built: build
    // one now, so that a mismatched pair fails here, naming the flags.
    tonic::transport::Server::builder()
        .tls_config(tls.clone())
        .map_err(|e| {
            ServerError::Config(format!(
                "--tls-cert {} with --tls-key {}: unusable: {}",
                cert_path.display(),
                key_path.display(),
                error_chain(&e)
            ))
        })?;
    Ok(Some(tls))
}

/// The bytes of a PEM file, bounded by [`MAX_PEM_FILE_BYTES`].
fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>, ServerError> {
    let fail =
        |message: String| ServerError::Config(format!("{flag} {}: {message}", path.display()));
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if size > MAX_PEM_FILE_BYTES {
        return Err(fail(format!(
            "{size} bytes; a PEM certificate or key file is at most {MAX_PEM_FILE_BYTES}"
        )));
    }
    std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// Checks that `bytes` is PEM with at least one section that `wanted` accepts.
fn require(
    flag: &str,
    path: &Path,
    bytes: &[u8],
    wanted: fn(SectionKind) -> bool,
    missing: &str,
) -> Result<(), ServerError> {
    let fail =
        |message: String| ServerError::Config(format!("{flag} {}: {message}", path.display()));
    let kinds = section_kinds(bytes).map_err(|e| fail(format!("malformed PEM: {e}")))?;
    if kinds.iter().any(|kind| wanted(*kind)) {
        return Ok(());
    }
    if !contains(bytes, b"-----BEGIN ") {
        return Err(fail(
            "not PEM (no \"-----BEGIN\" line; DER files must be converted)".to_owned(),
        ));
    }
    let found: Vec<&str> = kinds.iter().map(|kind| label(*kind)).collect();
    Err(fail(if found.is_empty() {
        missing.to_owned()
    } else {
        format!("{missing}; the file holds: {}", found.join(", "))
    }))
}

/// The kinds of the PEM sections in `bytes` that rustls knows, in order.
fn section_kinds(bytes: &[u8]) -> Result<Vec<SectionKind>, pem::Error> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .map(|section| section.map(|(kind, _)| kind))
        .collect()
}

fn is_certificate(kind: SectionKind) -> bool {
    kind == SectionKind::Certificate
}

fn is_private_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// An error with its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["casereg-server"];
        argv.extend_from_slice(args);
        Config::parse_from(argv)
    }

    fn error(args: &[&str]) -> String {
        match server_tls_config(&config(args)) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => e.to_string(),
        }
    }

    /// A syntactically valid PEM section whose body is not a real certificate or key: enough
    /// for the checks that run before rustls reads the contents.
    fn section(label: &str) -> String {
        format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n")
    }

    #[test]
    fn no_flags_means_no_tls() {
        assert!(server_tls_config(&config(&[])).expect("no TLS").is_none());
        assert!(!config(&[]).tls_enabled());
    }

    #[test]
    fn cert_and_key_come_together() {
        let e = error(&["--tls-key", "key.pem"]);
        assert!(e.contains("--tls-key needs --tls-cert"), "{e}");
        let e = error(&["--tls-cert", "cert.pem"]);
        assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
        let e = error(&["--tls-client-ca", "ca.pem"]);
        assert!(e.contains("--tls-client-ca needs --tls-cert"), "{e}");
        assert!(!config(&["--tls-cert", "cert.pem"]).tls_enabled());
        assert!(!config(&["--tls-client-ca", "ca.pem"]).mtls_enabled());
    }

    #[test]
    fn a_missing_file_is_named_with_its_flag() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cert = dir.path().join("absent-cert.pem");
        let key = dir.path().join("absent-key.pem");
        let e = error(&[
            "--tls-cert",
            cert.to_str().expect("UTF-8 path"),
            "--tls-key",
            key.to_str().expect("UTF-8 path"),
        ]);
        assert!(
            e.contains(&format!("--tls-cert {}: cannot read", cert.display())),
            "{e}"
        );
    }

    #[test]
    fn wrong_contents_are_told_apart() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write test file");
            path.to_str().expect("UTF-8 path").to_owned()
        };
        let not_pem = write("cert.der", "\u{30}\u{82} binary-looking");
        let key_only = write("key.pem", &section("PRIVATE KEY"));
        let cert_only = write("cert.pem", &section("CERTIFICATE"));
        let encrypted = write("enc.pem", &section("ENCRYPTED PRIVATE KEY"));

        let e = error(&["--tls-cert", &not_pem, "--tls-key", &key_only]);
        assert!(e.contains("--tls-cert") && e.contains("not PEM"), "{e}");

        let e = error(&["--tls-cert", &key_only, "--tls-key", &key_only]);
        assert!(
            e.contains(&format!("--tls-cert {key_only}: no certificate found"))
                && e.contains("the file holds: PRIVATE KEY"),
            "{e}"
        );

        let e = error(&["--tls-cert", &cert_only, "--tls-key", &cert_only]);
        assert!(
            e.contains(&format!("--tls-key {cert_only}: no private key found")),
            "{e}"
        );

        let e = error(&["--tls-cert", &cert_only, "--tls-key", &encrypted]);
        assert!(e.contains("encrypted keys are not supported"), "{e}");

        let e = error(&[
            "--tls-cert",
            &cert_only,
            "--tls-key",
            &key_only,
            "--tls-client-ca",
            &key_only,
        ]);
        assert!(
            e.contains(&format!(
                "--tls-client-ca {key_only}: no CA certificate found"
            )),
            "{e}"
        );

        // Well-formed sections whose contents are not a certificate and key: rustls refuses
        // them at start-up, and the error names both files.
        let e = error(&["--tls-cert", &cert_only, "--tls-key", &key_only]);
        assert!(
            e.contains(&format!(
                "--tls-cert {cert_only} with --tls-key {key_only}: unusable"
            )),
            "{e}"
        );
    }

    #[test]
    fn an_oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let big = dir.path().join("big.pem");
        let file = std::fs::File::create(&big).expect("create");
        file.set_len(MAX_PEM_FILE_BYTES + 1).expect("grow");
        let big = big.to_str().expect("UTF-8 path");
        let e = error(&["--tls-cert", big, "--tls-key", big]);
        assert!(
            e.contains("a PEM certificate or key file is at most"),
            "{e}"
        );
    }
}
