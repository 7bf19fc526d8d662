//! `casereg get`: show a case.

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;

use crate::output::write_case;
use crate::{CliError, Format};

/// The arguments of `casereg get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Case id (16 hex digits).
    pub case_id: String,
    /// An earlier version (default: the current one).
    #[arg(long, default_value_t = 0)]
    pub version: u64,
    /// Show the case even if it is retracted.
    #[arg(long)]
    pub include_retracted: bool,
    /// Print only the phenopacket, as Phenopacket JSON (what `add` takes back).
    #[arg(long)]
    pub record: bool,
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
        version,
        include_retracted,
        record,
    } = args;
    let case = client
        .get_case(&case_id, version, include_retracted)
        .await?;
    if record {
        writeln!(
            out,
            "{}",
            to_pretty_json(&case.phenopacket.unwrap_or_default())?
        )?;
    } else {
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(&case)?)?,
            Format::Human | Format::Csv => write_case(out, &case)?,
        }
    }
    Ok(())
}
