//! casereg's benchmark tool: synthetic case reports calibrated on the real phenopacket-store
//! corpus, measured in process and through a real server over gRPC, reported as markdown.
//!
//! `casereg-bench search` measures search (see [`search`]); `casereg-bench aggregates` times
//! its aggregate calls in process (see [`aggregates`]); `casereg-bench network` times a facet
//! across several centers against the same facet on one center (see [`network`]). The tool
//! is meant to grow into the full suite (workloads W0–W7, against PostgreSQL); each workload
//! is a subcommand.
//!
//! Measurements are honest by construction: every figure in a report was measured in the
//! run that printed it, latencies are nearest-rank percentiles of repeated runs after a
//! warm-up, and results computed two ways are cross-checked (a mismatch is an error, not a
//! footnote).

pub mod aggregates;
pub mod error;
pub mod machine;
pub mod network;
pub mod postgres;
pub mod queries;
pub mod report;
pub mod rng;
pub mod search;
pub mod suite;
pub mod synth;
pub mod timing;

use std::path::{Path, PathBuf};

pub use error::{BenchError, Result};

/// The repository root (this crate lives in `crates/casereg-bench`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
