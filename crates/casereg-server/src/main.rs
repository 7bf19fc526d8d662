//! `casereg-server`: parses flags, sets up logging and runs the server.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: record checks and storage allocate many small
/// buffers, and glibc malloc/free took about a quarter of the CPU of a bulk import.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = casereg_server::Config::parse();
    if let Some(command) = config.command.take() {
        return match casereg_server::run_command(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    casereg_server::init_logging(config.log_format);
    match casereg_server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logs go to standard error, so this one line is what an operator sees.
            tracing::error!(error = %e, "casereg-server stopped");
            ExitCode::FAILURE
        }
    }
}
