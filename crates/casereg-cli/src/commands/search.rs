//! `casereg search`: find cases with a query such as

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;
use casereg_proto::v1 as pb;

use crate::output::write_hits;
use crate::{CliError, Format};

/// The arguments of `casereg search`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query (quote it for the shell).
    pub query: String,
    /// Cases per page (at most 1000).
    #[arg(long, default_value_t = 20)]
    pub page_size: u32,
    /// Continue from a previous page.
    #[arg(long, default_value = "")]
    pub page_token: String,
    /// Follow every page to the end.
    #[arg(long)]
    pub all: bool,
    /// Return full records (with `--format json`).
    #[arg(long)]
    pub full: bool,
    /// Ask the server's whole network: each center's count and, where the center allows
    /// it, its first `--page-size` (at most 100) case summaries.
    #[arg(long, conflicts_with_all = ["all", "full", "page_token"])]
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
        page_size,
        page_token,
        all,
        full,
        network,
    } = args;
    if network {
        let request = pb::NetworkSearchRequest {
            filter: Some(casereg_client::query::parse_query(&query)?),
            per_center: page_size,
            route: None,
        };
        let response = client.network_search(request, None).await?;
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
            Format::Human | Format::Csv => {
                if !response.hits.is_empty() {
                    write_hits(out, &response.hits, None, &query, "")?;
                }
                writeln!(
                    out,
                    "{} matching cases in the network",
                    response.total.as_ref().map_or_else(
                        || if response.exists { "some" } else { "no" }.to_owned(),
                        |t| crate::tables::count_text(Some(t))
                    )
                )?;
                crate::tables::write_centers(out, &response.centers, response.partial)?;
            }
        }
    } else {
        let filter = casereg_client::query::parse_query(&query)?;
        let mut token = page_token;
        let mut hits = Vec::new();
        let mut total;
        loop {
            let page = client
                .search_cases(Some(filter.clone()), page_size, &token, full)
                .await?;
            hits.extend(page.hits);
            total = page.total;
            token = page.next_page_token;
            if !all || token.is_empty() {
                break;
            }
        }
        match format {
            Format::Json => {
                let response = pb::SearchCasesResponse {
                    hits,
                    next_page_token: token,
                    total,
                };
                writeln!(out, "{}", to_pretty_json(&response)?)?;
            }
            Format::Human | Format::Csv => write_hits(out, &hits, Some(total), &query, &token)?,
        }
    }
    Ok(())
}
