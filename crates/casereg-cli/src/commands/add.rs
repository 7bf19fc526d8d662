//! `casereg add`: store a case from a Phenopacket JSON file (`-` reads standard input).

use std::io::Write;
use std::path::PathBuf;

use casereg_client::Client;
use casereg_client::json::{read_phenopacket, to_pretty_json};

use crate::output::write_warnings;
use crate::{CliError, Format};

/// The arguments of `casereg add`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file.
    pub file: PathBuf,
}

/// Runs the command.
pub(crate) async fn run(
    args: Args,
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Args { file } = args;
    let phenopacket = read_phenopacket(&file)?;
    let response = client.create_case(phenopacket).await?;
    match format {
        Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
        Format::Human | Format::Csv => {
            let case = response.case.unwrap_or_default();
            let verb = if response.created {
                "created"
            } else {
                "already stored (identical)"
            };
            writeln!(
                out,
                "{verb}: case {} version {}",
                case.case_id, case.version
            )?;
            write_warnings(out, &response.warnings)?;
        }
    }
    Ok(())
}
