//! Server settings: command-line flags, each with an environment-variable equivalent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// casereg-server: the rare-disease case registry (GA4GH Phenopackets over gRPC).
#[derive(Debug, Clone, Parser)]
#[command(name = "casereg-server", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Config {
    /// An administration command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on. Off loopback the server refuses to start without --principals,
    /// and without TLS (--tls-cert) unless --insecure.
    #[arg(long, env = "CASEREG_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Principals (TOML: names, centers, roles, access levels, token hashes; see
    /// `casereg-server principal add`). Without it every caller is an administrator, and
    /// only loopback addresses are allowed.
    #[arg(long, env = "CASEREG_PRINCIPALS", value_name = "FILE")]
    pub principals: Option<PathBuf>,

    /// Directory of the embedded sled database (created if missing).
    #[arg(long, env = "CASEREG_DATA_DIR", default_value = "casereg-data")]
    pub data_dir: PathBuf,

    /// This center's id: owner of every case created here (letters, digits, '-', '_', '.').
    #[arg(long, env = "CASEREG_CENTER", default_value = "local")]
    pub center: String,

    /// Load this HPO release (hp.obo or hp.obo.gz) instead of the embedded 2025-01-16 one.
    #[arg(long, env = "CASEREG_HPO")]
    pub hpo: Option<PathBuf>,

    /// Reject records with HPO ids unknown to the loaded release (default: keep them and
    /// return a warning).
    #[arg(long, env = "CASEREG_STRICT_TERMS")]
    pub strict_terms: bool,

    /// Counts from 1 to N−1 are withheld ("fewer than N") and totals that would reveal them
    /// are blurred, for callers below record-level access (count-level readers and peers).
    #[arg(long, env = "CASEREG_MIN_CELL_COUNT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_cell_count: u64,

    /// Allow a non-loopback address without TLS (when something else, such as a
    /// TLS-terminating proxy on a private network, protects the traffic). Principals are
    /// still required.
    #[arg(long, env = "CASEREG_INSECURE")]
    pub insecure: bool,

    /// Serve TLS with this certificate chain (PEM, leaf first). Needs --tls-key.
    #[arg(long, env = "CASEREG_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS #8, PKCS #1 or SEC1; not encrypted).
    #[arg(long, env = "CASEREG_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Mutual TLS: refuse clients without a certificate signed by one of these CA
    /// certificates (PEM). Only with --tls-cert.
    #[arg(long, env = "CASEREG_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,

    /// A peer registry, NAME=URL (repeatable): network calls ask it too. NAME is how this
    /// server refers to it (letters, digits, '-', '_', '.').
    #[arg(long = "peer", value_name = "NAME=URL")]
    pub peers: Vec<String>,

    /// The bearer token this server presents to peer NAME, NAME=TOKEN (repeatable; also
    /// `CASEREG_PEER_TOKENS`, comma-separated). The peer decides what it may see.
    #[arg(
        long = "peer-token",
        value_name = "NAME=TOKEN",
        env = "CASEREG_PEER_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub peer_tokens: Vec<String>,

    /// CA certificate (PEM) to trust for https:// peers (default: the system's store).
    #[arg(long, env = "CASEREG_PEER_CA", value_name = "FILE")]
    pub peer_ca: Option<PathBuf>,

    /// How long to wait for each peer's answer (e.g. 2s, 500ms); the caller's own deadline
    /// cuts it shorter.
    #[arg(long, env = "CASEREG_PEER_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub peer_timeout: Duration,

    /// How many times a network request may be passed on from registry to registry (1: this
    /// server's peers answer for themselves only). At most 8.
    #[arg(long, env = "CASEREG_MAX_HOPS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub max_hops: u32,

    /// Log format.
    #[arg(long, env = "CASEREG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds to let in-flight calls finish after SIGINT/SIGTERM before closing anyway.
    #[arg(long, env = "CASEREG_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

impl Config {
    /// The drain deadline after a shutdown signal.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Whether the server is set to speak TLS (both --tls-cert and --tls-key given; the files
    /// are checked by [`crate::tls::server_tls_config`]).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// Whether clients must also present a certificate (TLS with --tls-client-ca).
    pub fn mtls_enabled(&self) -> bool {
        self.tls_enabled() && self.tls_client_ca.is_some()
    }
}

/// Reads `2s`, `500ms`, `1m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 2s, 500ms, 1m)"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s or m)"
            ));
        }
    };
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

/// Administration commands of `casereg-server`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage the principals file.
    #[command(subcommand)]
    Principal(PrincipalCommand),
}

/// `casereg-server principal ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PrincipalCommand {
    /// Add a principal (creating the file if needed) and print its new token, once: only the
    /// token's hash is stored. Restart the server to load it.
    Add {
        /// The principals file.
        #[arg(long, env = "CASEREG_PRINCIPALS", value_name = "FILE")]
        principals: PathBuf,
        /// Unique name (appears in the audit log).
        #[arg(long)]
        name: String,
        /// The center it acts for (letters, digits, '-', '_', '.').
        #[arg(long)]
        center: String,
        /// admin, curator, reader or peer.
        #[arg(long)]
        role: String,
        /// record, count or boolean (readers: required; peers: default count; admins and
        /// curators: record).
        #[arg(long)]
        level: Option<String>,
    },
}
