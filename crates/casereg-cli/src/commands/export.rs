//! `casereg export`: export cases as Phenopacket JSON Lines (`.gz` output name: compressed).

use std::io::Write;
use std::path::PathBuf;

use casereg_client::Client;
use casereg_proto::v1 as pb;

use crate::{CliError, Format};

/// The arguments of `casereg export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output file; standard output when absent.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Only cases of this center (repeatable).
    #[arg(long = "center")]
    pub centers: Vec<String>,
    /// Only these cases (repeatable).
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// Include retracted cases.
    #[arg(long)]
    pub include_retracted: bool,
    /// Only active cases matching this query (the `search` syntax).
    #[arg(long = "where")]
    pub query: Option<String>,
}

/// Runs the command.
pub(crate) async fn run(
    args: Args,
    client: &mut Client,
    _format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Args {
        output,
        centers,
        ids,
        include_retracted,
        query,
    } = args;
    let filter = query
        .as_deref()
        .map(casereg_client::query::parse_query)
        .transpose()?;
    let request = pb::ExportCasesRequest {
        case_ids: ids,
        center_ids: centers,
        include_retracted,
        filter,
    };
    let written = crate::transfer::run_export(client, request, output.as_deref(), out).await?;
    eprintln!("exported {written} cases");
    Ok(())
}
