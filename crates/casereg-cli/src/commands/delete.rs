//! `casereg delete`: retract a case (kept for audit, hidden from reads).

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;

use crate::{CliError, Format};

/// The arguments of `casereg delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Case id.
    pub case_id: String,
    /// Why.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Only if this is still the current version.
    #[arg(long, default_value_t = 0)]
    pub version: u64,
}

/// Runs the command.
pub(crate) async fn run(
    args: Args,
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Args {
        case_id,
        reason,
        version,
    } = args;
    let case = client.delete_case(&case_id, version, &reason).await?;
    match format {
        Format::Json => writeln!(out, "{}", to_pretty_json(&case)?)?,
        Format::Human | Format::Csv => writeln!(
            out,
            "retracted: case {} (version {}); kept for audit, read it with --include-retracted",
            case.case_id, case.version
        )?,
    }
    Ok(())
}
