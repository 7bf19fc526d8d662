//! `casereg-bench aggregates`: the aggregate and co-occurrence calls of the search report,
//! timed in process on the same synthetic cases, without the seven-minute gRPC run.
//!
//! The index is the ancestor-closure [`Index`] of phase 1 of `casereg-bench search`, built
//! from the same generator and seed. Building it takes about a minute at 1M cases, so it is
//! saved as an index snapshot (the format a clean server stop writes, and the one the
//! server loads at start-up) and loaded from there on later runs.
//!
//! Each call runs through the server's own request handling
//! ([`casereg_server::wire::aggregate::aggregate`] and [`casereg_server::wire::aggregate::cooccurrence`],
//! with the server's default small-count protection k = 5), which is what a gRPC call runs
//! minus HTTP/2 and encoding (about 0.2 ms, the health-check floor of the search report).
//! Calls are timed in interleaved rounds, like the gRPC phase. Two digests let a change be
//! checked for identical results: one of the encoded response, one of the core's complete,
//! uncut answer (every cell or value, with its p- and q-values to the last bit).

use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casereg_core::aggregate::{Cut, Dimension};
use casereg_core::ids::CenterId;
use casereg_core::index::{AgeField, CodeKind, Entry, Expansion, Index};
use casereg_core::ontology::Ontology;
use casereg_proto::v1 as pb;
use prost::Message as _;

use crate::error::{BenchError, Result};
use crate::machine::{self, Machine};
use crate::report::{Markdown, command_line, grouped, mib, num};
use crate::search::{
    AggregateCall, aggregate_calls, case_id, default_corpus, generate_facts, progress,
};
use crate::synth::{Generator, read_corpus};
use crate::timing::{Samples, micros, millis};

/// The server's default `--min-cell-count`, applied as the gRPC phase applies it.
const MIN_CELL_COUNT: u64 = 5;

/// The center every synthetic case belongs to (as in `casereg-bench search`).
const CENTER: &str = "local";

/// Arguments of `casereg-bench aggregates`.
#[derive(Debug, Clone, clap::Args)]
pub struct AggregatesArgs {
    /// Gzipped JSON Lines phenopackets the synthetic cases are drawn from [default: as for
    /// `search`].
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,

    /// Number of synthetic cases.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub cases: u32,

    /// Seed of the case generator (as for `search`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Timed rounds (each round runs every call once).
    #[arg(long, default_value_t = 40)]
    pub runs: usize,

    /// Untimed warm-up rounds.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,

    /// Index snapshot: loaded if it exists, else written after building the index [default:
    /// target/casereg-bench/aggregates-<cases>-seed<seed>.index].
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,

    /// Build the index from generated cases even if the snapshot exists (and rewrite it).
    #[arg(long)]
    pub rebuild: bool,

    /// Time only the calls whose description contains this text.
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,

    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// One call's figures.
struct Timed {
    what: &'static str,
    returned: usize,
    samples: Samples,
    response_digest: u64,
    full_digest: u64,
}

/// Runs the in-process aggregate benchmark and returns its markdown report.
pub fn run(args: &AggregatesArgs) -> Result<String> {
    let started = Instant::now();
    if args.cases == 0 || args.runs == 0 {
        return Err(BenchError::Input(
            "--cases and --runs must be at least 1".to_owned(),
        ));
    }
    let argv: Vec<String> = std::env::args().collect();
    let date = machine::utc_now();
    let machine = Machine::describe();
    let hpo = Arc::new(
        Ontology::embedded().map_err(|e| BenchError::registry("loading the embedded HPO", e))?,
    );
    let snapshot = args.snapshot.clone().unwrap_or_else(|| {
        crate::repo_root().join(format!(
            "target/casereg-bench/aggregates-{}-seed{}.index",
            args.cases, args.seed
        ))
    });
    let rss_before = machine::rss_kib();
    let load_started = Instant::now();
    let (index, source) = if snapshot.exists() && !args.rebuild {
        progress(started, format!("loading {}", snapshot.display()));
        (
            load(&snapshot, &hpo, args.cases)?,
            "loaded from the snapshot",
        )
    } else {
        let index = build(args, &hpo, &machine, started)?;
        save(&index, &snapshot, args.cases)?;
        progress(started, format!("saved {}", snapshot.display()));
        (index, "built from generated cases")
    };
    let load_time = load_started.elapsed();
    let rss_index = machine::rss_kib();
    progress(
        started,
        format!(
            "index ready in {:.0} ms ({source}); RSS {} MiB",
            millis(load_time),
            rss_index.map_or_else(|| "?".to_owned(), |k| mib(k * 1024))
        ),
    );

    let calls: Vec<(&'static str, AggregateCall)> = aggregate_calls()?
        .into_iter()
        .filter(|(what, _)| args.only.as_ref().is_none_or(|o| what.contains(o.as_str())))
        .collect();
    if calls.is_empty() {
        return Err(BenchError::Input("--only matches no call".to_owned()));
    }
    let timed = time_calls(&index, &calls, args)?;
    for t in &timed {
        progress(
            started,
            format!(
                "{}: p50 {} µs, digests {:016x} {:016x}",
                t.what,
                num(micros(t.samples.p50())),
                t.response_digest,
                t.full_digest
            ),
        );
    }

    let mut md = Markdown::new();
    md.line(format!(
        "# casereg-bench aggregates — {} cases, in process",
        grouped(args.cases)
    ));
    md.blank();
    md.line(format!("- Date: {date}"));
    md.line(format!(
        "- Machine: {}; nproc {}; CPU affinity {}",
        machine.model, machine.nproc, machine.cpus_allowed
    ));
    md.line(format!("- Command: `{}`", command_line(&argv)));
    md.line(format!(
        "- Index: ancestor closure, seed {}, {source} in {} ms; RSS {} MiB before, {} MiB \
         after",
        args.seed,
        num(millis(load_time)),
        rss_before.map_or_else(|| "?".to_owned(), |k| mib(k * 1024)),
        rss_index.map_or_else(|| "?".to_owned(), |k| mib(k * 1024)),
    ));
    md.line(format!(
        "- Latency: {} timed rounds after {} warm-up rounds, each round every call once, \
         through `casereg_server::wire::aggregate` with k = {MIN_CELL_COUNT}; µs",
        args.runs, args.warmup
    ));
    md.blank();
    let rows: Vec<Vec<String>> = timed
        .iter()
        .map(|t| {
            vec![
                t.what.to_owned(),
                grouped(t.returned),
                num(micros(t.samples.percentile(0.1))),
                num(micros(t.samples.p50())),
                num(micros(t.samples.p99())),
                format!("`{:016x}`", t.response_digest),
                format!("`{:016x}`", t.full_digest),
            ]
        })
        .collect();
    md.table(
        &[
            "call",
            "returned",
            "min",
            "p50",
            "p99",
            "response digest",
            "full answer digest",
        ],
        &[false, true, true, true, true, false, false],
        &rows,
    );
    md.line(format!(
        "Per-case phenotype lists (`Index::present_by_doc_bytes`, built by the first \
         co-occurrence call): {} MiB. RSS after the calls: {} MiB; peak: {} MiB.",
        mib(index.present_by_doc_bytes()),
        machine::rss_kib().map_or_else(|| "?".to_owned(), |k| mib(k * 1024)),
        machine::peak_rss_kib().map_or_else(|| "?".to_owned(), |k| mib(k * 1024)),
    ));
    md.blank();
    let report = md.into_string();
    if let Some(out) = &args.out {
        std::fs::write(out, &report)
            .map_err(|e| BenchError::io(format!("writing {}", out.display()), e))?;
    }
    Ok(report)
}

/// Builds the ancestor-closure index of the synthetic cases, as phase 1 of `search` does.
fn build(
    args: &AggregatesArgs,
    hpo: &Arc<Ontology>,
    machine: &Machine,
    started: Instant,
) -> Result<Index> {
    let path = default_corpus(args.corpus.as_deref());
    progress(started, format!("reading corpus {}", path.display()));
    let generator = Generator::new(read_corpus(&path)?, args.seed)?;
    progress(started, format!("generating {} cases", grouped(args.cases)));
    let all_facts = generate_facts(&generator, hpo, args.cases, machine.nproc)?;
    let center = CenterId::parse(CENTER).map_err(|e| BenchError::Input(e.0))?;
    progress(started, "building the index");
    let mut index = Index::new(Arc::clone(hpo), Expansion::AncestorClosure);
    for (doc, facts) in (0..args.cases).zip(&all_facts) {
        index.insert(Entry {
            doc,
            id: case_id(&center, doc)?,
            center: &center,
            active: true,
            facts,
        });
    }
    Ok(index)
}

/// The snapshot is tagged with the number of cases as its write sequence number.
fn save(index: &Index, path: &Path, cases: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
    }
    let file = std::fs::File::create(path)
        .map_err(|e| BenchError::io(format!("creating {}", path.display()), e))?;
    let mut w = BufWriter::new(file);
    index
        .write_snapshot(&mut w, u64::from(cases))
        .and_then(|()| w.flush())
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
}

fn load(path: &Path, hpo: &Arc<Ontology>, cases: u32) -> Result<Index> {
    let file = std::fs::File::open(path)
        .map_err(|e| BenchError::io(format!("opening {}", path.display()), e))?;
    let index = Index::read_snapshot(Arc::clone(hpo), &mut BufReader::new(file), u64::from(cases))
        .map_err(|e| BenchError::Input(format!("{}: {e} (use --rebuild)", path.display())))?;
    if index.active_count() != u64::from(cases) {
        return Err(BenchError::Check(format!(
            "{} holds {} active cases, not {cases} (use --rebuild)",
            path.display(),
            index.active_count()
        )));
    }
    Ok(index)
}

/// Runs one call through the server's handling; returns what it returned and the encoded
/// response.
fn call(index: &Index, call: &AggregateCall) -> Result<(usize, Vec<u8>)> {
    match call {
        AggregateCall::Aggregate(request) => {
            casereg_server::wire::aggregate::aggregate(request, index, MIN_CELL_COUNT)
                .map(|r| (r.cells.len(), r.encode_to_vec()))
        }
        AggregateCall::CoOccurrence(request) => {
            casereg_server::wire::aggregate::cooccurrence(request, index, MIN_CELL_COUNT)
                .map(|r| (r.values.len(), r.encode_to_vec()))
        }
    }
    .map_err(|e| BenchError::registry("aggregate call", e))
}

fn time_calls(
    index: &Index,
    calls: &[(&'static str, AggregateCall)],
    args: &AggregatesArgs,
) -> Result<Vec<Timed>> {
    for _ in 0..args.warmup {
        for (_, c) in calls {
            std::hint::black_box(call(index, c)?);
        }
    }
    let mut durations: Vec<Vec<Duration>> = vec![Vec::with_capacity(args.runs); calls.len()];
    let mut last = vec![(0, Vec::new()); calls.len()];
    for _ in 0..args.runs {
        for (k, (_, c)) in calls.iter().enumerate() {
            let started = Instant::now();
            let answer = std::hint::black_box(call(index, c)?);
            durations[k].push(started.elapsed());
            last[k] = answer;
        }
    }
    calls
        .iter()
        .zip(durations)
        .zip(last)
        .map(|(((what, c), durations), (returned, bytes))| {
            Ok(Timed {
                what,
                returned,
                samples: Samples::new(durations),
                response_digest: fnv1a(&bytes),
                full_digest: fnv1a(full_answer(index, c)?.as_bytes()),
            })
        })
        .collect()
}

/// The core's complete answer to a call (no cut, no protection), as text: every cell or
/// value, floats printed so that they read back to the same bits.
fn full_answer(index: &Index, call: &AggregateCall) -> Result<String> {
    let all = Cut {
        top: usize::MAX,
        min_count: 0,
    };
    let query = |filter: Option<&pb::Filter>| {
        casereg_server::wire::filter::to_query(filter, "filter", index)
            .map_err(|e| BenchError::registry("reading the filter", e))
    };
    let failed = |e: casereg_core::aggregate::AggregateError| BenchError::Registry(e.0);
    Ok(match call {
        AggregateCall::Aggregate(request) => {
            let dimensions = request
                .group_by
                .iter()
                .map(dimension)
                .collect::<Result<Vec<_>>>()?;
            let answer = index
                .aggregate(&query(request.filter.as_ref())?, &dimensions, all)
                .map_err(failed)?;
            format!("{answer:?}")
        }
        AggregateCall::CoOccurrence(request) => {
            let group = pb::GroupBy {
                dimension: request.dimension,
                ..pb::GroupBy::default()
            };
            let answer = index
                .cooccurrence(&query(request.filter.as_ref())?, dimension(&group)?, all)
                .map_err(failed)?;
            format!("{answer:?}")
        }
    })
}

/// The core dimension of the wire dimensions the benchmark's calls use.
fn dimension(g: &pb::GroupBy) -> Result<Dimension> {
    use pb::Dimension as D;
    Ok(match D::try_from(g.dimension) {
        Ok(D::Disease) => Dimension::Code(CodeKind::Disease),
        Ok(D::Phenotype) => Dimension::Phenotype {
            rollup_depth: g.rollup_depth,
        },
        Ok(D::Sex) => Dimension::Sex,
        Ok(D::Onset) => Dimension::Age {
            field: AgeField::Onset,
            bucket_days: g.bucket_days,
        },
        other => {
            return Err(BenchError::Input(format!(
                "the benchmark does not map dimension {other:?}"
            )));
        }
    })
}

/// FNV-1a, 64 bits: a stable digest for comparing answers across builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_known_inputs() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
