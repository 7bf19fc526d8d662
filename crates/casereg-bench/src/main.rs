//! `casereg-bench`: measures casereg and prints markdown reports.

use std::process::ExitCode;

/// mimalloc, as in the registry's own binaries, so that allocation costs are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use casereg_bench::aggregates::AggregatesArgs;
use casereg_bench::network::NetworkArgs;
use casereg_bench::search::SearchArgs;
use casereg_bench::suite::SuiteArgs;
use clap::{Parser, Subcommand};

/// casereg-bench: benchmarks of the casereg registry on synthetic cases calibrated on the
/// real phenopacket-store corpus. Reports are markdown on standard output; progress goes to
/// standard error.
#[derive(Debug, Parser)]
#[command(name = "casereg-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Search: index build and count latency in process (ancestor closure against
    /// descendant union), then start-up and count latency over gRPC.
    Search(SearchArgs),
    /// Aggregates: the aggregate and co-occurrence calls of `search`, timed in process on
    /// the same synthetic cases (the index is cached as a snapshot between runs).
    Aggregates(AggregatesArgs),
    /// Network: a facet via `NetworkAggregate` across centers holding the cases split
    /// between them, against the same facet via `Aggregate` on one center holding them all.
    Network(NetworkArgs),
    /// Suite: casereg's release server against PostgreSQL and the gRPC floor on the same
    /// synthetic cases, workloads W0–W7, with a markdown report (see bench/suite.sh).
    Suite(SuiteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Search(args) => casereg_bench::search::run(args),
        Command::Aggregates(args) => casereg_bench::aggregates::run(args),
        Command::Network(args) => casereg_bench::network::run(args),
        Command::Suite(args) => casereg_bench::suite::run(args),
    };
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("casereg-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
