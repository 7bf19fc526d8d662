//! `casereg cooccur`: what else the cases matching a query have: the most frequent values among them, with

use std::io::Write;

use casereg_client::Client;
use casereg_client::ClientError;
use casereg_client::json::to_pretty_json;
use casereg_proto::v1 as pb;

use crate::{CliError, Format};

/// The arguments of `casereg cooccur`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query, as for `search`.
    pub query: String,
    /// Report this dimension only: phenotype, excluded, disease, gene, treatment,
    /// response, procedure, center or publication.
    #[arg(long)]
    pub of: Option<String>,
    /// Most values per table (at most 1000).
    #[arg(long, default_value_t = 20)]
    pub top: u32,
    /// Ask the server's whole network of registries, merged.
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
        query,
        of,
        top,
        network,
    } = args;
    let filter = casereg_client::query::parse_query(&query)?;
    let dimensions = match &of {
        Some(name) => vec![crate::tables::parse_group_by(name)],
        None => vec![
            crate::tables::parse_group_by("phenotype"),
            crate::tables::parse_group_by("excluded"),
        ],
    };
    let mut responses = Vec::new();
    for dimension in dimensions {
        let dimension = dimension.map_err(|message| {
            CliError::Client(ClientError::Input {
                path: "--of".to_owned(),
                message,
            })
        })?;
        let request = pb::CoOccurrenceRequest {
            filter: Some(filter.clone()),
            dimension: dimension.dimension,
            top_n: top,
            min_count: 0,
        };
        let response = if network {
            let answer = client
                .network_co_occurrence(
                    pb::NetworkCoOccurrenceRequest {
                        request: Some(request),
                        route: None,
                    },
                    None,
                )
                .await?;
            if format == Format::Human && responses.is_empty() {
                crate::tables::write_centers(out, &answer.centers, answer.partial)?;
            }
            answer.merged.unwrap_or_default()
        } else {
            client.cooccurrence(request).await?
        };
        responses.push((dimension.dimension, response));
    }
    for (dimension, response) in &responses {
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(response)?)?,
            Format::Human | Format::Csv => {
                crate::tables::write_cooccurrence(out, *dimension, response)?
            }
        }
    }
    Ok(())
}
