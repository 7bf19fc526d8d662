//! `casereg info`: registry versions, ontology releases and counts.

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;

use crate::output::write_info;
use crate::{CliError, Format};

/// Runs the command.
pub(crate) async fn run(
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let info = client.registry_info().await?;
    match format {
        Format::Json => writeln!(out, "{}", to_pretty_json(&info)?)?,
        Format::Human | Format::Csv => write_info(out, &info)?,
    }
    Ok(())
}
