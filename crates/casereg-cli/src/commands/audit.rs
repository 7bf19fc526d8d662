//! `casereg audit`: read the audit log: every write and every refused request (administrators only).

use std::io::Write;

use casereg_client::Client;
use casereg_client::json::to_pretty_json;
use casereg_proto::v1 as pb;

use crate::output::write_audit;
use crate::{CliError, Format};

/// The arguments of `casereg audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Entries per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// Follow every page to the end of the log.
    #[arg(long)]
    pub all: bool,
}

/// Runs the command.
pub(crate) async fn run(
    args: Args,
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Args {
        after,
        page_size,
        all,
    } = args;
    let mut after = after;
    let mut entries = Vec::new();
    loop {
        let page = client.audit_entries(after, page_size).await?;
        entries.extend(page.entries);
        after = page.next_after;
        if !all || after == 0 {
            break;
        }
    }
    match format {
        Format::Json => {
            let listing = pb::ListAuditEntriesResponse {
                entries,
                next_after: after,
            };
            writeln!(out, "{}", to_pretty_json(&listing)?)?;
        }
        Format::Human | Format::Csv => write_audit(out, &entries, after)?,
    }
    Ok(())
}
