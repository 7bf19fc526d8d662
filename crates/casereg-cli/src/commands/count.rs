//! `casereg count`: count the cases a query matches (no query: all active cases).

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;
use casereg_proto::v1 as pb;

use crate::{CliError, Format};

/// The arguments of `casereg count`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query, as for `search`.
    pub query: Option<String>,
    /// Ask the server's whole network of registries (its peers), with a table of each
    /// center's fate.
    #[arg(long)]
    pub network: bool,
}

/// Runs the command.
pub(crate) async fn run(
    args: Args,
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Args { query, network } = args;
    let filter = query
        .as_deref()
        .map(casereg_client::query::parse_query)
        .transpose()?;
    if network {
        let request = pb::NetworkCountRequest {
            filter,
            route: None,
        };
        let response = client.network_count(request, None).await?;
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
            Format::Human | Format::Csv => {
                match &response.count {
                    Some(count) => writeln!(out, "{}", crate::tables::count_text(Some(count)))?,
                    None => writeln!(out, "{}", if response.exists { "yes" } else { "no" })?,
                }
                crate::tables::write_centers(out, &response.centers, response.partial)?;
            }
        }
    } else {
        let response = client.count_cases(filter).await?;
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
            // At boolean level there is no count, only whether a case matches.
            Format::Human | Format::Csv => match &response.count {
                Some(count) => writeln!(out, "{}", crate::tables::count_text(Some(count)))?,
                None => writeln!(out, "{}", if response.exists { "yes" } else { "no" })?,
            },
        }
    }
    Ok(())
}
