//! `casereg term`: look up HPO terms: by id (`HP:0025520`) or by words of a name or synonym.

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;

use crate::output::{write_relatives, write_term, write_term_matches};
use crate::{CliError, Format};

/// The arguments of `casereg term`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// An HPO id, or words to search for.
    pub query: String,
    /// Most search hits (at most 100).
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
    /// For an id: list all its ancestors.
    #[arg(long, conflicts_with = "descendants")]
    pub ancestors: bool,
    /// For an id: list all its descendants (what a phenotype search includes).
    #[arg(long)]
    pub descendants: bool,
    /// Include obsolete terms in search hits.
    #[arg(long)]
    pub include_obsolete: bool,
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
        limit,
        ancestors,
        descendants,
        include_obsolete,
    } = args;
    let looks_like_id = query.trim().to_ascii_uppercase().starts_with("HP:");
    if ancestors || descendants {
        let response = client.term_relatives(query.trim(), ancestors).await?;
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
            Format::Human | Format::Csv => write_relatives(out, &response, ancestors)?,
        }
    } else if looks_like_id {
        let response = client.get_term(query.trim()).await?;
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
            Format::Human | Format::Csv => write_term(out, &response)?,
        }
    } else {
        let response = client.search_terms(&query, limit, include_obsolete).await?;
        match format {
            Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
            Format::Human | Format::Csv => write_term_matches(out, &response)?,
        }
    }
    Ok(())
}
