//! `casereg`: the registry's command-line client.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: record checks and storage allocate many small
/// buffers, and glibc malloc/free took about a quarter of the CPU of a bulk import.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use casereg_cli::{Cli, execute};
use clap::Parser as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match execute(cli, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`casereg get ID --record | head`) is the reader's choice, not an error.
        Err(casereg_cli::CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
