//! `casereg stats`: count matching cases by one or two dimensions, e.g.

use std::io::Write;

use casereg_client::Client;
use casereg_client::ClientError;
use casereg_client::json::to_pretty_json;
use casereg_proto::v1 as pb;

use crate::{CliError, Format};

/// The arguments of `casereg stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A dimension (give one or two).
    #[arg(long = "by", required = true)]
    pub by: Vec<String>,
    /// Only cases matching this query (the `search` syntax).
    #[arg(long = "where")]
    pub query: Option<String>,
    /// Most cells, largest first (at most 1000).
    #[arg(long, default_value_t = 20)]
    pub top: u32,
    /// Leave out cells with fewer cases.
    #[arg(long, default_value_t = 0)]
    pub min_count: u64,
    /// Print CSV: one row per cell with ids, labels and the count.
    #[arg(long)]
    pub csv: bool,
    /// Ask the server's whole network of registries (its peers), merged, with a table
    /// of each center's fate.
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
    let Args {
        by,
        query,
        top,
        min_count,
        csv,
        network,
    } = args;
    let group_by = by
        .iter()
        .map(|text| crate::tables::parse_group_by(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| {
            CliError::Client(ClientError::Input {
                path: "--by".to_owned(),
                message,
            })
        })?;
    let filter = query
        .as_deref()
        .map(casereg_client::query::parse_query)
        .transpose()?;
    let request = pb::AggregateRequest {
        filter,
        group_by,
        top_n: top,
        min_count,
    };
    let (response, centers) = if network {
        let answer = client
            .network_aggregate(
                pb::NetworkAggregateRequest {
                    request: Some(request),
                    route: None,
                },
                None,
            )
            .await?;
        (
            answer.merged.unwrap_or_default(),
            Some((answer.centers, answer.partial)),
        )
    } else {
        (client.aggregate(request).await?, None)
    };
    let csv = csv || format == Format::Csv;
    if let (Some((centers, partial)), Format::Human, false) = (&centers, format, csv) {
        crate::tables::write_centers(out, centers, *partial)?;
    }
    match (format, csv) {
        (_, true) => crate::tables::write_csv(out, &response)?,
        (Format::Json, false) => writeln!(out, "{}", to_pretty_json(&response)?)?,
        (Format::Human | Format::Csv, false) => crate::tables::write_table(out, &response, &by)?,
    }
    Ok(())
}
