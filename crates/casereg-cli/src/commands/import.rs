//! `casereg import`: import Phenopackets from files: .json (one record), .jsonl / .ndjson (one per line),

use std::io::Write;
use std::path::PathBuf;

use casereg_client::Client;
use casereg_client::ClientError;
use casereg_proto::v1 as pb;

use crate::{CliError, Format, OnChanged};

/// The arguments of `casereg import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files, directories or `-`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// What to do with a record whose id is stored with different content.
    #[arg(long, value_enum, default_value_t = OnChanged::Skip)]
    pub on_changed: OnChanged,
    /// Write a JSON report of every rejected (and skipped, replaced or warned-about)
    /// record to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs the command.
pub(crate) async fn run(
    args: Args,
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Args {
        paths,
        on_changed,
        report,
    } = args;
    let options = pb::ImportOptions {
        on_changed: pb::ChangedRecordPolicy::from(on_changed).into(),
        report_all: false,
    };
    let report_data = crate::transfer::run_import(client, &paths, options).await?;
    if let Some(path) = &report {
        let text = serde_json::to_string_pretty(&report_data).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n").map_err(|e| {
            CliError::Client(ClientError::Input {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        })?;
    }
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report_data).map_err(std::io::Error::other)?
        )?,
        Format::Human | Format::Csv => crate::transfer::write_summary(out, &report_data)?,
    }
    if report_data.rejected > 0 {
        let hint = match &report {
            Some(path) => format!("; details in {}", path.display()),
            None => "; rerun with --report FILE for details".to_owned(),
        };
        return Err(CliError::Rejected(report_data.rejected, hint));
    }
    Ok(())
}
