//! Support for casereg's end-to-end tests: real servers on `127.0.0.1:0` (in this process or
//! in a child process that can be killed), and the fixtures and real records they load.

pub mod access;

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use casereg_client::{Client, ConnectOptions, TlsOptions};
use casereg_proto::v1 as pb;
use casereg_server::{Config, Registry, ServeOptions, ServerError};
use clap::Parser as _;
use flate2::read::GzDecoder;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Server settings for a test: loopback port 0, the given data directory, extra flags.
pub fn test_config(data_dir: &Path, extra: &[&str]) -> Config {
    let mut args = vec![
        "casereg-server".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--shutdown-grace-secs".to_owned(),
        "2".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Config::parse_from(args)
}

/// A server running inside the test process.
pub struct TestServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The registry it serves (for checks that bypass gRPC).
    pub registry: Arc<Registry>,
    /// Whether it serves TLS (started with `--tls-cert` and `--tls-key`).
    pub tls: bool,
    /// What its own helpers ([`Self::client`], [`Self::channel`]) trust and present over TLS;
    /// see [`Self::with_client_tls`].
    pub client_tls: TlsOptions,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server on a fresh temporary data directory.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server on a fresh temporary data directory with extra flags.
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = Self::start_in(dir.path(), extra).await;
        server._dir = Some(dir);
        server
    }

    /// A server on `data_dir` (kept after the server stops).
    pub async fn start_in(data_dir: &Path, extra: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Self::start_on(listener, data_dir, extra).await
    }

    /// A server on a listener bound beforehand (so that its address can be given to
    /// another server first), with a fresh temporary data directory.
    pub async fn start_listening(listener: TcpListener, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = Self::start_on(listener, dir.path(), extra).await;
        server._dir = Some(dir);
        server
    }

    async fn start_on(listener: TcpListener, data_dir: &Path, extra: &[&str]) -> Self {
        let config = test_config(data_dir, extra);
        let options = ServeOptions::from_config(&config).expect("serve options");
        let registry = Arc::new(casereg_server::open_registry(&config).expect("open registry"));
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(casereg_server::serve(
            Arc::clone(&registry),
            listener,
            async move {
                let _ = stopped.await;
            },
            options,
        ));
        Self {
            addr,
            registry,
            tls: config.tls_enabled(),
            client_tls: TlsOptions::default(),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// What this server's own client helpers trust and present over TLS (the CA that signed
    /// its certificate, a client certificate for mutual TLS).
    pub fn with_client_tls(mut self, tls: TlsOptions) -> Self {
        self.client_tls = tls;
        self
    }

    /// `http://` address for clients, `https://` when the server serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Connection settings for this server: over TLS, [`Self::client_tls`].
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            tls: if self.tls {
                self.client_tls.clone()
            } else {
                TlsOptions::default()
            },
            ..ConnectOptions::default()
        }
    }

    /// A raw channel, for generated clients of other services (health, reflection).
    pub async fn channel(&self) -> tonic::transport::Channel {
        let mut endpoint = tonic::transport::Channel::from_shared(self.url()).expect("address");
        if self.tls {
            let mut tls = tonic::transport::ClientTlsConfig::new();
            if let Some(ca) = &self.client_tls.ca_pem {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(ca));
            }
            if let Some(identity) = &self.client_tls.identity {
                tls = tls.identity(tonic::transport::Identity::from_pem(
                    &identity.cert_pem,
                    &identity.key_pem,
                ));
            }
            endpoint = endpoint.tls_config(tls).expect("client TLS settings");
        }
        endpoint.connect().await.expect("connect to test server")
    }

    /// Runs one `casereg` command line (without the program name) against this server, in
    /// process, and returns what it printed.
    pub async fn cli<S: AsRef<str>>(&self, args: &[S]) -> Result<String, casereg_cli::CliError> {
        let mut argv = vec!["casereg".to_owned(), "--server".to_owned(), self.url()];
        argv.extend(args.iter().map(|a| a.as_ref().to_owned()));
        let cli = casereg_cli::Cli::try_parse_from(argv).expect("valid command line");
        let mut out = Vec::new();
        casereg_cli::execute(cli, &mut out).await?;
        Ok(String::from_utf8(out).expect("UTF-8 output"))
    }

    /// A connected client.
    pub async fn client(&self) -> Client {
        Client::connect(&self.url(), &self.connect_options())
            .await
            .expect("connect to test server")
    }

    /// Stops the server the way a signal would, and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Environment variable that turns a test binary into a server child process.
pub const CHILD_DATA_DIR_ENV: &str = "CASEREG_E2E_CHILD_DATA_DIR";
/// The line a child server prints once it listens, followed by its address.
const CHILD_READY: &str = "CASEREG-E2E-LISTENING ";

/// Body of the child-process entry test: serves on the directory named by
/// [`CHILD_DATA_DIR_ENV`] until killed. Returns at once when the variable is unset.
pub fn run_child_server_from_env() {
    let Ok(dir) = std::env::var(CHILD_DATA_DIR_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let config = test_config(Path::new(&dir), &[]);
        let registry = Arc::new(casereg_server::open_registry(&config).expect("open registry"));
        let listener = TcpListener::bind(config.listen).await.expect("bind");
        println!("{CHILD_READY}{}", listener.local_addr().expect("address"));
        let options = ServeOptions::from_config(&config).expect("serve options");
        casereg_server::serve(registry, listener, std::future::pending(), options)
            .await
            .expect("serve");
    });
}

/// A server in a child process (this test binary re-run as `entry_test`), killable with
/// SIGKILL to test crash durability.
pub struct ChildServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    child: Child,
}

impl ChildServer {
    /// Starts the child on `data_dir` and waits until it listens.
    pub fn start(entry_test: &str, data_dir: &Path) -> Self {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                entry_test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DATA_DIR_ENV, data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child server");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    // libtest may have printed "test NAME ... " on the same line first.
                    if let Some(at) = line.find(CHILD_READY) {
                        break line[at + CHILD_READY.len()..]
                            .trim()
                            .parse()
                            .expect("child address");
                    }
                }
                other => {
                    let _ = child.kill();
                    panic!("child server ended before listening: {other:?}");
                }
            }
        };
        // Keep draining the child's output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { addr, child }
    }

    /// `http://` address for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no shutdown hook, no flush, no drain.
    pub fn kill(mut self) {
        self.child.kill().expect("kill child");
        self.child.wait().expect("reap child");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a case and returns its id.
pub async fn create(client: &mut Client, record: pb::Phenopacket) -> String {
    let response = client.create_case(record).await.expect("create case");
    response.case.expect("case in response").case_id
}

/// Parses a Phenopacket JSON file from `tests/fixtures/`.
pub fn fixture(name: &str) -> pb::Phenopacket {
    let path = repo_root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    casereg_client::json::parse_phenopacket(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The hand-written seed case (calcinosis cutis in Sjögren's syndrome).
pub fn seed_case() -> pb::Phenopacket {
    fixture("seed-calcinosis-cutis-sjogren.json")
}

/// The two GA4GH schema example phenopackets.
pub fn schema_fixtures() -> Vec<pb::Phenopacket> {
    vec![
        fixture("phenopacket-schema-covid19.json"),
        fixture("phenopacket-schema-mcahs1.json"),
    ]
}

/// Reads a gzipped JSON Lines file of phenopackets: (1-based line, raw line, parsed record).
pub fn read_jsonl_gz(path: &Path) -> Vec<(usize, String, pb::Phenopacket)> {
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let record = casereg_client::json::parse_phenopacket(
                line,
                &format!("{} line {}", path.display(), i + 1),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            (i + 1, line.to_owned(), record)
        })
        .collect()
}

/// The committed sample of real published cases (257 phenopacket-store records).
pub fn sample_records() -> Vec<(usize, String, pb::Phenopacket)> {
    read_jsonl_gz(&repo_root().join("tests/data/phenopacket-store-sample.jsonl.gz"))
}

/// The full shared corpus (`../shared/data/phenopacket-store.jsonl.gz`), when this checkout
/// has it beside it. Says loudly when it does not.
pub fn shared_corpus(test: &str) -> Option<PathBuf> {
    let path = repo_root().join("../shared/data/phenopacket-store.jsonl.gz");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED {test}: {} not found (the full-corpus check runs only beside ../shared/data)",
            path.display()
        );
        None
    }
}

/// A short pause for polling loops.
pub const POLL: Duration = Duration::from_millis(20);

/// For references that must not use the index: a case's age at onset read from the record
/// alone — the earliest onset of its observed phenotypes and diseases, from the smallest
/// lower bound to the smallest upper bound. Only the reading of one `TimeElement` into days
/// (`facts::span`, unit-tested on its own) is the server's.
pub fn reference_onset(p: &pb::Phenopacket) -> Option<casereg_core::case::AgeSpan> {
    let birth = reference_birth(p);
    let spans: Vec<_> = p
        .phenotypic_features
        .iter()
        .filter(|f| !f.excluded)
        .filter_map(|f| f.onset.as_ref())
        .chain(
            p.diseases
                .iter()
                .filter(|d| !d.excluded)
                .filter_map(|d| d.onset.as_ref()),
        )
        .filter_map(|t| casereg_server::wire::facts::span(t, birth))
        .collect();
    let from = spans.iter().map(|s| s.from).min()?;
    let to = spans.iter().map(|s| s.to).min()?;
    Some(casereg_core::case::AgeSpan { from, to })
}

/// For references: a case's age at last encounter, read from the record alone.
pub fn reference_last_encounter(p: &pb::Phenopacket) -> Option<casereg_core::case::AgeSpan> {
    let time = p.subject.as_ref()?.time_at_last_encounter.as_ref()?;
    casereg_server::wire::facts::span(time, reference_birth(p))
}

fn reference_birth(p: &pb::Phenopacket) -> Option<i64> {
    p.subject
        .as_ref()?
        .date_of_birth
        .as_ref()
        .map(|t| t.seconds)
}
