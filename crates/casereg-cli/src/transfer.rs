//! The CLI's import and export commands: progress display, summary, output files.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use casereg_proto::v1 as pb;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use flate2::Compression;
use flate2::write::GzEncoder;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_stream::wrappers::ReceiverStream;

use casereg_client::import::{self, Progress, Report};
use casereg_client::{Client, ClientError};

use crate::CliError;

/// How often the plain (non-terminal) progress line is printed.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Reads `paths`, streams them to the registry, and builds the report.
pub(crate) async fn run_import(
    client: &mut Client,
    paths: &[PathBuf],
    options: pb::ImportOptions,
) -> Result<Report, CliError> {
    let inputs = import::expand(paths)?;
    if inputs.is_empty() {
        return Err(ClientError::Input {
            path: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            message: "no .json, .jsonl or .ndjson files (optionally .gz) found".to_owned(),
        }
        .into());
    }
    let total = import::total_bytes(&inputs);
    let progress = Arc::new(Progress::default());
    let rejects = Arc::new(Mutex::new(Vec::new()));
    let (sender, receiver) = import::channel();
    let reader = {
        let progress = Arc::clone(&progress);
        let rejects = Arc::clone(&rejects);
        tokio::task::spawn_blocking(move || {
            import::read_inputs(&inputs, options, &sender, &progress, &rejects)
        })
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let display = tokio::spawn(show_progress(Arc::clone(&progress), total, done_rx));

    let response = client.import_cases(ReceiverStream::new(receiver)).await;
    let read = reader.await.map_err(|e| ClientError::Input {
        path: "(reader)".to_owned(),
        message: e.to_string(),
    })?;
    let _ = done_tx.send(());
    let _ = display.await;
    // A server error explains a reader that could not send, so it goes first.
    let response = response?;
    read?;
    let rejects = rejects.lock().map(|list| list.clone()).unwrap_or_default();
    Ok(Report::new(
        &response,
        &rejects,
        progress.records.load(Ordering::Relaxed),
    ))
}

/// A progress bar with rate and ETA on a terminal; a plain line every few seconds otherwise.
async fn show_progress(
    progress: Arc<Progress>,
    total: Option<u64>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| match total {
        Some(bytes) => ProgressBar::new(bytes).with_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    });
    let mut last_plain = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let finished = tokio::select! {
            _ = &mut done => true,
            _ = tick.tick() => false,
        };
        let records = progress.records.load(Ordering::Relaxed);
        let rate = records as f64 / started.elapsed().as_secs_f64().max(0.001);
        match &bar {
            Some(bar) => {
                bar.set_position(progress.bytes.load(Ordering::Relaxed));
                bar.set_message(format!("{records} records, {rate:.0}/s"));
            }
            None if finished || last_plain.elapsed() >= PLAIN_PROGRESS_EVERY => {
                eprintln!("import: {records} records read ({rate:.0}/s)");
                last_plain = Instant::now();
            }
            None => {}
        }
        if finished {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return;
        }
    }
}

/// The end-of-import table.
pub(crate) fn write_summary(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["records", "count"]);
    for (name, count) in [
        ("read", report.read),
        ("created", report.created),
        ("replaced", report.replaced),
        ("unchanged", report.unchanged),
        ("skipped (changed, kept)", report.skipped),
        ("rejected", report.rejected),
        ("with warnings", report.with_warnings),
    ] {
        table.add_row([name.to_owned(), count.to_string()]);
    }
    writeln!(out, "{table}")?;
    for entry in report.rejected_records.iter().take(10) {
        writeln!(
            out,
            "rejected {}: {}",
            entry.source,
            entry.errors.join("; ")
        )?;
    }
    if report.rejected_records.len() > 10 {
        writeln!(
            out,
            "… and {} more rejected records",
            report.rejected_records.len() - 10
        )?;
    }
    Ok(())
}

/// Streams an export into `output` (or `out`), one compact Phenopacket JSON per line.
/// Returns the number of cases written.
pub(crate) async fn run_export(
    client: &mut Client,
    request: pb::ExportCasesRequest,
    output: Option<&Path>,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
    let mut stream = client.export_cases(request).await?;
    let file_error = |path: &Path, e: std::io::Error| {
        CliError::Client(ClientError::Input {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let mut sink = match output {
        None => Sink::Out(out),
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| file_error(path, e))?;
            let buffered = std::io::BufWriter::new(file);
            if path.extension().is_some_and(|e| e == "gz") {
                Sink::Gzip(GzEncoder::new(buffered, Compression::default()))
            } else {
                Sink::File(buffered)
            }
        }
    };
    let mut written = 0u64;
    // A record that cannot be written as JSON (stored before the server refused enum
    // numbers the contract lacks) is named and left out; the export goes on, so that one
    // such record does not cut a backup short, and then fails.
    let mut unwritable: Vec<String> = Vec::new();
    let mut line = Vec::new();
    while let Some(message) = stream.message().await.map_err(ClientError::from)? {
        for case in message.cases {
            let record = case.phenopacket.unwrap_or_default();
            line.clear();
            match serde_json::to_writer(&mut line, &record) {
                Ok(()) => {
                    line.push(b'\n');
                    sink.write_all(&line)?;
                    written += 1;
                }
                Err(e) => {
                    eprintln!("case {}: cannot be written as JSON: {e}", case.case_id);
                    unwritable.push(case.case_id);
                }
            }
        }
    }
    sink.finish()?;
    if let Some(first) = unwritable.first() {
        return Err(CliError::Client(ClientError::Input {
            path: output.map_or_else(|| "-".to_owned(), |p| p.display().to_string()),
            message: format!(
                "{written} cases written; {} could not be written as JSON and were left out \
                 (the first: case {first}); see the lines above",
                unwritable.len()
            ),
        }));
    }
    Ok(written)
}

/// Where an export goes; `finish` completes a gzip stream and reports any error.
enum Sink<'a> {
    Out(&'a mut dyn Write),
    File(std::io::BufWriter<std::fs::File>),
    Gzip(GzEncoder<std::io::BufWriter<std::fs::File>>),
}

impl Sink<'_> {
    fn finish(self) -> std::io::Result<()> {
        match self {
            Self::Out(out) => out.flush(),
            Self::File(mut file) => file.flush(),
            Self::Gzip(gzip) => gzip.finish()?.flush(),
        }
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Out(out) => out.write(buf),
            Self::File(file) => file.write(buf),
            Self::Gzip(gzip) => gzip.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Out(out) => out.flush(),
            Self::File(file) => file.flush(),
            Self::Gzip(gzip) => gzip.flush(),
        }
    }
}
