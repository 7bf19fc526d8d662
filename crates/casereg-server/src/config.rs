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
pub struct Config {
    /// Address to listen on. Off loopback the server refuses to start without `--insecure`
    /// (it has no authentication yet).
    #[arg(long, env = "CASEREG_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

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

    /// Aggregate counts from 1 to N−1 are withheld ("fewer than N") and totals that would
    /// reveal them are blurred, for callers without record-level access. 0 is refused: use
    /// --exact-counts.
    #[arg(long, env = "CASEREG_MIN_CELL_COUNT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_cell_count: u64,

    /// Give every caller exact aggregate counts (record-level access). Only on a loopback
    /// address: for a curator's own machine.
    #[arg(long, env = "CASEREG_EXACT_COUNTS")]
    pub exact_counts: bool,

    /// Allow listening on a non-loopback address without authentication or TLS.
    #[arg(long, env = "CASEREG_INSECURE")]
    pub insecure: bool,

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
}
