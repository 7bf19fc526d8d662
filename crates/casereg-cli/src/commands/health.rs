//! `casereg health`: health check: prints SERVING and exits 0 when the server is up.

use std::io::Write;

use casereg_client::Client;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{CliError, Format};

/// Runs the command.
pub(crate) async fn run(
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let status = client.health().await?;
    let name = status.as_str_name();
    match format {
        Format::Json => writeln!(out, "{{\"status\": \"{name}\"}}")?,
        Format::Human | Format::Csv => writeln!(out, "{name}")?,
    }
    if status != ServingStatus::Serving {
        return Err(CliError::NotServing(name.to_owned()));
    }
    Ok(())
}
