//! TLS, mutual TLS and bearer tokens end to end: certificates made here by a throwaway CA,
//! real servers on 127.0.0.1:0, the client library and the CLI.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use casereg_client::{
    BearerToken, Client, ClientError, ClientIdentity, ConnectOptions, TlsOptions,
};
use casereg_e2e::{TestServer, seed_case, test_config};
use casereg_proto::v1 as pb;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use tonic_health::pb::health_check_response::ServingStatus;

/// A certificate authority that lives for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Pair {
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.as_ref().pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    fn server(&self) -> Pair {
        self.leaf(
            "casereg test server",
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate for `name`.
    fn client(&self, name: &str) -> Pair {
        self.leaf(name, vec![], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, name: &str, names: Vec<String>, usage: ExtendedKeyUsagePurpose) -> Pair {
        let mut params = CertificateParams::new(names).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes `text` to `dir/name` and returns the path as a string (for flags).
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A TLS server (mutual TLS when `client_ca` is given), its helpers trusting `ca`.
async fn tls_server(dir: &Path, ca: &Ca, client_ca: Option<&Ca>) -> TestServer {
    let pair = ca.server();
    let cert = write(dir, "server.pem", &pair.cert_pem);
    let key = write(dir, "server.key", &pair.key_pem);
    let mut flags = vec!["--tls-cert", &cert, "--tls-key", &key];
    let client_ca_file;
    if let Some(client_ca) = client_ca {
        client_ca_file = write(dir, "client-ca.pem", &client_ca.pem());
        flags.extend(["--tls-client-ca", &client_ca_file]);
    }
    let server = TestServer::start_with(&flags).await;
    assert!(server.tls);
    server.with_client_tls(TlsOptions {
        ca_pem: Some(ca.pem().into_bytes()),
        identity: None,
    })
}

fn trusting(ca: &Ca) -> ConnectOptions {
    ConnectOptions {
        tls: TlsOptions {
            ca_pem: Some(ca.pem().into_bytes()),
            identity: None,
        },
        ..ConnectOptions::default()
    }
}

/// Connects and checks health: over mutual TLS, a refused certificate may surface only at the
/// first call (TLS 1.3 finishes the client's side of the handshake first).
async fn connect_and_check(url: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
    let mut client = Client::connect(url, options).await?;
    client.health().await?;
    Ok(client)
}

#[tokio::test]
async fn a_client_trusting_the_ca_calls_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("casereg test CA");
    let server = tls_server(dir.path(), &ca, None).await;
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );

    let mut client = server.client().await;
    assert_eq!(client.health().await.unwrap(), ServingStatus::Serving);
    let info = client.registry_info().await.unwrap();
    assert_eq!(info.center_id, "local");

    // By name too: the certificate is for localhost as well as 127.0.0.1.
    let by_name = format!("https://localhost:{}", server.addr.port());
    let mut client = Client::connect(&by_name, &trusting(&ca)).await.unwrap();
    assert_eq!(client.health().await.unwrap(), ServingStatus::Serving);

    // The raw channel helper speaks TLS as well (for health and reflection clients).
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);

    server.stop().await;
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path(), &Ca::new("casereg test CA"), None).await;
    let other = Ca::new("someone else's CA");

    let e = connect_and_check(&server.url(), &trusting(&other))
        .await
        .expect_err("a certificate from an untrusted CA is refused");
    let text = e.to_string();
    assert!(matches!(e, ClientError::Connect { .. }), "{text}");
    assert!(text.contains("invalid peer certificate"), "{text}");

    // Plain HTTP/2 to a TLS port does not get through either.
    let plain = format!("http://{}", server.addr);
    assert!(
        connect_and_check(&plain, &ConnectOptions::default())
            .await
            .is_err()
    );
    // Nor does a CA given for a plain address: a forgotten `s` must not turn TLS off.
    let e = connect_and_check(&plain, &trusting(&other))
        .await
        .expect_err("TLS settings with http:// are refused");
    assert!(e.to_string().contains("use https://"), "{e}");
}

#[tokio::test]
async fn mutual_tls_needs_a_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("casereg test CA");
    let clients = Ca::new("casereg client CA");
    let server = tls_server(dir.path(), &ca, Some(&clients)).await;

    // No certificate: refused.
    let e = connect_and_check(&server.url(), &trusting(&ca))
        .await
        .expect_err("a client without a certificate is refused");
    assert!(e.to_string().contains("fatal alert"), "{e}");

    // A certificate from another CA (here, the server's own): refused.
    let stranger = ca.client("stranger");
    let mut options = trusting(&ca);
    options.tls.identity = Some(ClientIdentity {
        cert_pem: stranger.cert_pem.into_bytes(),
        key_pem: stranger.key_pem.into_bytes(),
    });
    let e = connect_and_check(&server.url(), &options)
        .await
        .expect_err("a certificate from another CA is refused");
    assert!(e.to_string().contains("fatal alert"), "{e}");

    // A certificate signed by the client CA: served.
    let member = clients.client("member");
    let mut options = trusting(&ca);
    options.tls.identity = Some(ClientIdentity {
        cert_pem: member.cert_pem.into_bytes(),
        key_pem: member.key_pem.into_bytes(),
    });
    let mut client = connect_and_check(&server.url(), &options).await.unwrap();
    assert_eq!(client.registry_info().await.unwrap().center_id, "local");

    server.stop().await;
}

#[tokio::test]
async fn the_cli_speaks_tls_with_ca_cert_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("casereg test CA");
    let clients = Ca::new("casereg client CA");
    let server = tls_server(dir.path(), &ca, Some(&clients)).await;
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let member = clients.client("member");
    let cert = write(dir.path(), "member.pem", &member.cert_pem);
    let key = write(dir.path(), "member.key", &member.key_pem);

    // `TestServer::cli` passes `--server https://127.0.0.1:PORT`.
    let out = server
        .cli(&["--ca", &ca_file, "--cert", &cert, "--key", &key, "info"])
        .await
        .unwrap();
    assert!(out.contains("local"), "{out}");
    let out = server
        .cli(&["health", "--ca", &ca_file, "--cert", &cert, "--key", &key])
        .await
        .unwrap();
    assert!(out.to_lowercase().contains("serving"), "{out}");

    // Files that are missing or wrong are named with their flag, before any connection.
    let absent = dir.path().join("absent.pem").display().to_string();
    let e = server
        .cli(&["--ca", &absent, "info"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("--ca {absent}: cannot read")), "{e}");
    let e = server
        .cli(&["--ca", &key, "info"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("--ca {key}: no certificate found")),
        "{e}"
    );
    let e = server
        .cli(&["--ca", &ca_file, "--cert", &cert, "--key", &cert, "info"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("--key {cert}: no private key found")),
        "{e}"
    );

    // One of --cert/--key alone is a usage error.
    let parsed =
        <casereg_cli::Cli as clap::Parser>::try_parse_from(["casereg", "--cert", &cert, "info"]);
    let e = parsed.expect_err("--cert without --key").to_string();
    assert!(e.contains("--key"), "{e}");

    server.stop().await;
}

#[tokio::test]
async fn the_server_refuses_mismatched_or_partial_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("casereg test CA");
    let one = ca.server();
    let two = ca.server();
    let cert = write(dir.path(), "one.pem", &one.cert_pem);
    let wrong_key = write(dir.path(), "two.key", &two.key_pem);
    let data = dir.path().join("data");

    let config = test_config(&data, &["--tls-cert", &cert, "--tls-key", &wrong_key]);
    assert!(config.tls_enabled() && !config.mtls_enabled());
    let e = casereg_server::ServeOptions::from_config(&config)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "--tls-cert {cert} with --tls-key {wrong_key}: unusable"
        )),
        "{e}"
    );

    let config = test_config(&data, &["--tls-key", &wrong_key]);
    let e = casereg_server::ServeOptions::from_config(&config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--tls-key needs --tls-cert"), "{e}");
}

/// The server of the next test: it answers every call from its token alone, before any
/// service sees it, so the answer tells whether the client sent the token.
fn echo_token(request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    Err(match request.metadata().get("authorization") {
        Some(value) if value == "Bearer e2e-token" => {
            tonic::Status::failed_precondition("token received")
        }
        Some(_) => tonic::Status::unauthenticated("wrong token"),
        None => tonic::Status::unauthenticated("no token"),
    })
}

/// The code and message a call of that server ended with.
fn answer<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (tonic::Code, String) {
    let e = result.unwrap_err();
    (e.code().expect("a status from the server"), e.to_string())
}

/// Asserts that the server saw the right token.
fn received<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    let (code, message) = answer(result);
    assert_eq!(code, tonic::Code::FailedPrecondition, "{message}");
    assert!(message.contains("token received"), "{message}");
}

/// Asserts that the server refused the call for its token.
fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>, why: &str) {
    let (code, message) = answer(result);
    assert_eq!(code, tonic::Code::Unauthenticated, "{message}");
    assert!(message.contains(why), "{message}");
}

#[tokio::test]
async fn the_bearer_token_goes_with_unary_and_streaming_calls() {
    let ca = Ca::new("casereg test CA");
    let pair = ca.server();
    let (_, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&pair.cert_pem, &pair.key_pem),
        ))
        .unwrap()
        .layer(tonic::service::InterceptorLayer::new(echo_token))
        .add_service(health);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(router.serve_with_incoming_shutdown(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        async move {
            let _ = stopped.await;
        },
    ));
    let url = format!("https://127.0.0.1:{}", addr.port());

    let mut anonymous = Client::connect(&url, &trusting(&ca)).await.unwrap();
    refused(anonymous.registry_info().await, "no token");

    let options = ConnectOptions {
        token: Some(BearerToken::new("e2e-token")),
        ..trusting(&ca)
    };
    assert!(!format!("{options:?}").contains("e2e-token"));
    let mut client = Client::connect(&url, &options).await.unwrap();
    received(client.health().await);
    received(client.registry_info().await);
    received(client.get_term("HP:0025520").await);
    // Client streaming.
    let import = client
        .import_cases(tokio_stream::iter(vec![pb::ImportCasesRequest {
            options: None,
            records: vec![pb::ImportRecord {
                source: "tls-test:1".to_owned(),
                phenopacket: Some(seed_case()),
            }],
        }]))
        .await;
    received(import);
    // Server streaming.
    let export = client.export_cases(pb::ExportCasesRequest::default()).await;
    received(export);

    // A wrong token is refused, and the error does not repeat it.
    let wrong = ConnectOptions {
        token: Some(BearerToken::new("not-the-token")),
        ..trusting(&ca)
    };
    let mut intruder = Client::connect(&url, &wrong).await.unwrap();
    let (_, message) = answer(intruder.registry_info().await);
    assert!(!message.contains("not-the-token"), "{message}");
    refused(
        intruder
            .export_cases(pb::ExportCasesRequest::default())
            .await,
        "wrong token",
    );

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
