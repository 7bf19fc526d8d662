//! `casereg update`: replace a case's record with the file's, if VERSION is still current.

use std::io::Write;
use std::path::PathBuf;

use casereg_client::Client;
use casereg_client::json::{read_phenopacket, to_pretty_json};

use crate::output::write_warnings;
use crate::{CliError, Format};

/// The arguments of `casereg update`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Case id.
    pub case_id: String,
    /// The file (`-` for standard input).
    pub file: PathBuf,
    /// The version you read (see `casereg get`).
    #[arg(long)]
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
        file,
        version,
    } = args;
    let phenopacket = read_phenopacket(&file)?;
    let response = client.update_case(&case_id, version, phenopacket).await?;
    match format {
        Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
        Format::Human | Format::Csv => {
            let case = response.case.unwrap_or_default();
            if response.changed {
                writeln!(
                    out,
                    "updated: case {} is now version {}",
                    case.case_id, case.version
                )?;
            } else {
                writeln!(
                    out,
                    "unchanged: case {} stays at version {}",
                    case.case_id, case.version
                )?;
            }
            write_warnings(out, &response.warnings)?;
        }
    }
    Ok(())
}
