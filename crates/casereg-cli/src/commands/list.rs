//! `casereg list`: list cases.

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;
use casereg_proto::v1 as pb;

use crate::output::write_listing;
use crate::{CliError, Format};

/// The arguments of `casereg list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cases per page (at most 1000).
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// Continue from a previous page.
    #[arg(long, default_value = "")]
    pub page_token: String,
    /// Follow every page to the end.
    #[arg(long)]
    pub all: bool,
    /// Include retracted cases.
    #[arg(long)]
    pub include_retracted: bool,
}

/// Runs the command.
pub(crate) async fn run(
    args: Args,
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Args {
        page_size,
        page_token,
        all,
        include_retracted,
    } = args;
    let mut token = page_token;
    let mut cases = Vec::new();
    loop {
        let page = client
            .list_cases(page_size, &token, include_retracted)
            .await?;
        cases.extend(page.cases);
        token = page.next_page_token;
        if !all || token.is_empty() {
            break;
        }
    }
    match format {
        Format::Json => {
            let listing = pb::ListCasesResponse {
                cases,
                next_page_token: token,
            };
            writeln!(out, "{}", to_pretty_json(&listing)?)?;
        }
        Format::Human | Format::Csv => write_listing(out, &cases, &token)?,
    }
    Ok(())
}
