//! Reading Phenopacket files for import, streaming them to a registry, and reporting.
//!
//! Files are read on their own thread, a line at a time, and handed to the gRPC stream in
//! bounded batches: memory stays flat however large the input. A line that is not a valid
//! Phenopacket (malformed JSON, unknown field, too long) is rejected here with its line
//! number and never sent; the server judges the rest.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use casereg_proto::v1 as pb;
use flate2::read::MultiGzDecoder;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::ClientError;

pub use casereg_proto::limits::{
    MAX_JSON_FILE_BYTES, MAX_LINE_BYTES, MESSAGES_IN_FLIGHT, RECORDS_PER_MESSAGE,
};

/// How a file holds its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One phenopacket per file.
    Document,
    /// One phenopacket per line.
    Lines,
}

/// One input to read: a file or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The path (`-` for standard input).
    pub path: PathBuf,
    layout: Layout,
    gzip: bool,
}

impl Input {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Classifies one file by its name: `.json`, `.jsonl`, `.ndjson`, each optionally `.gz`.
fn classify(path: &Path) -> Option<Input> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem.to_owned(), true),
        None => (name, false),
    };
    let layout = if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
        Layout::Lines
    } else if stem.ends_with(".json") {
        Layout::Document
    } else {
        return None;
    };
    Some(Input {
        path: path.to_path_buf(),
        layout,
        gzip,
    })
}

/// Expands the command line's paths: files as named, directories recursively (in name
/// order, Phenopacket files only), `-` as JSON Lines on standard input.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<Input>, ClientError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input {
                path: path.clone(),
                layout: Layout::Lines,
                gzip: false,
            });
        } else if path.is_dir() {
            walk_dir(path, &mut inputs)?;
        } else if let Some(input) = classify(path) {
            if !path.exists() {
                return Err(input_error(path, "no such file"));
            }
            inputs.push(input);
        } else {
            return Err(input_error(
                path,
                "not a directory, '-', or a .json / .jsonl / .ndjson file (optionally .gz)",
            ));
        }
    }
    Ok(inputs)
}

fn walk_dir(dir: &Path, inputs: &mut Vec<Input>) -> Result<(), ClientError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| input_error(dir, &e.to_string()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| input_error(dir, &e.to_string()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk_dir(&path, inputs)?;
        } else if let Some(input) = classify(&path) {
            inputs.push(input);
        }
    }
    Ok(())
}

fn input_error(path: &Path, message: &str) -> ClientError {
    ClientError::Input {
        path: path.display().to_string(),
        message: message.to_owned(),
    }
}

/// A record refused before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalReject {
    /// `file:line`.
    pub source: String,
    /// Why, e.g. the JSON parser's message naming the unknown field.
    pub message: String,
}

/// Counters the reader updates for the progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from files (compressed bytes for `.gz`).
    pub bytes: AtomicU64,
    /// Records read (sent or rejected locally).
    pub records: AtomicU64,
}

/// Counts bytes as they are read.
struct Counting<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Feeds records from `inputs` into `sender` in stream messages, the first carrying
/// `options`. Returns the locally rejected records. Runs on a plain thread.
pub fn read_inputs(
    inputs: &[Input],
    options: pb::ImportOptions,
    sender: &mpsc::Sender<pb::ImportCasesRequest>,
    progress: &Arc<Progress>,
    rejects: &Mutex<Vec<LocalReject>>,
) -> Result<(), ClientError> {
    let mut batch = Batch {
        sender,
        options: Some(options),
        records: Vec::with_capacity(RECORDS_PER_MESSAGE),
    };
    let reject = |source: String, message: String| {
        if let Ok(mut list) = rejects.lock() {
            list.push(LocalReject { source, message });
        }
    };
    for input in inputs {
        let name = input.name();
        let raw: Box<dyn Read> = if name == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(&input.path).map_err(|e| input_error(&input.path, &e.to_string()))?)
        };
        let counted = Counting {
            inner: raw,
            progress: Arc::clone(progress),
        };
        let reader: Box<dyn Read> = if input.gzip {
            Box::new(MultiGzDecoder::new(counted))
        } else {
            Box::new(counted)
        };
        match input.layout {
            Layout::Document => {
                let mut text = String::new();
                reader
                    .take(MAX_JSON_FILE_BYTES + 1)
                    .read_to_string(&mut text)
                    .map_err(|e| input_error(&input.path, &e.to_string()))?;
                progress.records.fetch_add(1, Ordering::Relaxed);
                if text.len() as u64 > MAX_JSON_FILE_BYTES {
                    reject(
                        name,
                        format!("file is larger than {MAX_JSON_FILE_BYTES} bytes"),
                    );
                    continue;
                }
                match crate::json::parse_phenopacket(&text, &name) {
                    Ok(record) => batch.push(name, record)?,
                    Err(e) => reject(name, json_message(e)),
                }
            }
            Layout::Lines => {
                let mut reader = BufReader::with_capacity(256 * 1024, reader);
                let mut line = Vec::new();
                let mut number = 0usize;
                loop {
                    line.clear();
                    let read = (&mut reader)
                        .take(MAX_LINE_BYTES as u64 + 1)
                        .read_until(b'\n', &mut line)
                        .map_err(|e| {
                            input_error(&input.path, &format!("line {}: {e}", number + 1))
                        })?;
                    if read == 0 {
                        break;
                    }
                    number += 1;
                    let source = format!("{name}:{number}");
                    if line.len() > MAX_LINE_BYTES && !line.ends_with(b"\n") {
                        skip_rest_of_line(&mut reader)
                            .map_err(|e| input_error(&input.path, &e.to_string()))?;
                        progress.records.fetch_add(1, Ordering::Relaxed);
                        reject(
                            source,
                            format!("line is longer than {MAX_LINE_BYTES} bytes"),
                        );
                        continue;
                    }
                    let text = match std::str::from_utf8(&line) {
                        Ok(text) => text.trim(),
                        Err(e) => {
                            progress.records.fetch_add(1, Ordering::Relaxed);
                            reject(source, format!("not UTF-8: {e}"));
                            continue;
                        }
                    };
                    if text.is_empty() {
                        continue;
                    }
                    progress.records.fetch_add(1, Ordering::Relaxed);
                    match crate::json::parse_phenopacket(text, &source) {
                        Ok(record) => batch.push(source, record)?,
                        Err(e) => reject(source, json_message(e)),
                    }
                }
            }
        }
    }
    batch.finish()
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = buffer.len();
                reader.consume(n);
            }
        }
    }
}

fn json_message(error: ClientError) -> String {
    match error {
        ClientError::Input { message, .. } => message,
        other => other.to_string(),
    }
}

/// Groups records into stream messages.
struct Batch<'a> {
    sender: &'a mpsc::Sender<pb::ImportCasesRequest>,
    options: Option<pb::ImportOptions>,
    records: Vec<pb::ImportRecord>,
}

impl Batch<'_> {
    fn push(&mut self, source: String, phenopacket: pb::Phenopacket) -> Result<(), ClientError> {
        self.records.push(pb::ImportRecord {
            source,
            phenopacket: Some(phenopacket),
        });
        if self.records.len() == RECORDS_PER_MESSAGE {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), ClientError> {
        let message = pb::ImportCasesRequest {
            options: self.options.take(),
            records: std::mem::replace(&mut self.records, Vec::with_capacity(RECORDS_PER_MESSAGE)),
        };
        self.sender.blocking_send(message).map_err(|_| {
            ClientError::Unavailable(
                "the import stream closed early (the server ended the call; see its error)"
                    .to_owned(),
            )
        })
    }

    fn finish(mut self) -> Result<(), ClientError> {
        // Always send at least one message, so the options reach the server.
        if !self.records.is_empty() || self.options.is_some() {
            self.send()?;
        }
        Ok(())
    }
}

/// Channel between the reader thread and the gRPC stream.
pub fn channel() -> (
    mpsc::Sender<pb::ImportCasesRequest>,
    mpsc::Receiver<pb::ImportCasesRequest>,
) {
    mpsc::channel(MESSAGES_IN_FLIGHT)
}

/// Total size of the inputs in bytes, where known (not for standard input).
pub fn total_bytes(inputs: &[Input]) -> Option<u64> {
    inputs.iter().try_fold(0u64, |sum, input| {
        if input.path.as_os_str() == "-" {
            None
        } else {
            std::fs::metadata(&input.path).ok().map(|m| sum + m.len())
        }
    })
}

/// The machine-readable import report (`--report FILE`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Records read from the inputs.
    pub read: u64,
    /// Records the server received.
    pub received: u64,
    /// Stored as new cases.
    pub created: u64,
    /// Stored as new versions.
    pub replaced: u64,
    /// Identical to what was stored.
    pub unchanged: u64,
    /// Changed, left alone.
    pub skipped: u64,
    /// Refused, here or by the server.
    pub rejected: u64,
    /// Records with warnings.
    pub with_warnings: u64,
    /// Every refused record and why.
    pub rejected_records: Vec<ReportEntry>,
    /// Skipped, replaced and warned-about records (up to the server's outcome limit).
    pub other_records: Vec<ReportEntry>,
    /// Outcomes the server left out of its list (counts stay complete).
    pub outcomes_omitted: u64,
}

/// One record in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportEntry {
    /// `file:line`.
    pub source: String,
    /// The record's id, if it was read.
    pub phenopacket_id: String,
    /// `created`, `replaced`, `unchanged`, `skipped` or `rejected`.
    pub outcome: String,
    /// The case id, if known.
    pub case_id: String,
    /// Problems, `field: description`.
    pub errors: Vec<String>,
    /// Warnings, `field: message`.
    pub warnings: Vec<String>,
}

impl Report {
    /// Combines the server's answer with the records refused locally.
    pub fn new(response: &pb::ImportCasesResponse, local: &[LocalReject], read: u64) -> Self {
        use pb::import_outcome::Kind;
        let mut rejected_records: Vec<ReportEntry> = local
            .iter()
            .map(|r| ReportEntry {
                source: r.source.clone(),
                phenopacket_id: String::new(),
                outcome: "rejected".to_owned(),
                case_id: String::new(),
                errors: vec![format!("json: {}", r.message)],
                warnings: Vec::new(),
            })
            .collect();
        let mut other_records = Vec::new();
        for outcome in &response.outcomes {
            let kind = Kind::try_from(outcome.kind).unwrap_or(Kind::Unspecified);
            let entry = ReportEntry {
                source: outcome.source.clone(),
                phenopacket_id: outcome.phenopacket_id.clone(),
                outcome: match kind {
                    Kind::Created => "created",
                    Kind::Replaced => "replaced",
                    Kind::Unchanged => "unchanged",
                    Kind::Skipped => "skipped",
                    Kind::Rejected | Kind::Unspecified => "rejected",
                }
                .to_owned(),
                case_id: outcome.case_id.clone(),
                errors: outcome
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.description))
                    .collect(),
                warnings: outcome
                    .warnings
                    .iter()
                    .map(|w| format!("{}: {}", w.field, w.message))
                    .collect(),
            };
            if matches!(kind, Kind::Rejected | Kind::Unspecified) {
                rejected_records.push(entry);
            } else {
                other_records.push(entry);
            }
        }
        Self {
            read,
            received: response.received,
            created: response.created,
            replaced: response.replaced,
            unchanged: response.unchanged,
            skipped: response.skipped,
            rejected: response.rejected + local.len() as u64,
            with_warnings: response.with_warnings,
            rejected_records,
            other_records,
            outcomes_omitted: response.outcomes_omitted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_classified_by_name() {
        let kinds = |name: &str| classify(Path::new(name)).map(|i| (i.layout, i.gzip));
        assert_eq!(kinds("a.json"), Some((Layout::Document, false)));
        assert_eq!(kinds("a.JSONL.gz"), Some((Layout::Lines, true)));
        assert_eq!(kinds("a.ndjson"), Some((Layout::Lines, false)));
        assert_eq!(kinds("a.json.gz"), Some((Layout::Document, true)));
        assert_eq!(kinds("a.txt"), None);
    }
}
