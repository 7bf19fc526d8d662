//! `casereg-bench search`: how fast the registry counts matching cases.
//!
//! 1. Synthetic cases (see [`crate::synth`]) become [`CaseFacts`] as the server extracts
//!    them, and two in-process [`Index`]es are built from the same facts, one per
//!    [`Expansion`] strategy: build time, bitmap size, and the latency of
//!    [`Index::count`] for a fixed list of queries. Both strategies must give the same count
//!    for every query.
//! 2. The same cases are written through the real path (record checks, then
//!    [`Store::import_batch`] in durable batches) into a fresh data directory; the registry
//!    is reopened as the server opens it (ontology load and index rebuild timed), served on
//!    `127.0.0.1:0`, and one client times sequential calls: the health check as the floor,
//!    and `CountCases` for the same queries written as query text. The counts must equal
//!    those of phase 1.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casereg_client::{Client, ConnectOptions};
use casereg_core::case::{CaseDraft, CaseFacts, UnixMicros};
use casereg_core::ids::{CaseId, CenterId, ExternalId};
use casereg_core::index::{Entry, Expansion, Index};
use casereg_core::limits::IMPORT_BATCH_RECORDS;
use casereg_core::ontology::Ontology;
use casereg_core::store::{ChangedPolicy, ImportResult, Store};
use casereg_proto::v1 as pb;
use casereg_server::Config;
use casereg_server::wire::{convert, facts};
use clap::Parser as _;
use tokio::net::TcpListener;

use crate::error::{BenchError, Result};
use crate::machine::{self, Machine};
use crate::queries::{BenchQuery, search_queries, union_terms};
use crate::report::{Markdown, grouped, mib, num, ratio};
use crate::synth::{DROP_FEATURE_PROBABILITY, Generator, MAX_ADDED_FEATURES, read_corpus};
use crate::timing::{Repeat, Samples, micros, millis, time_sync};

/// The center every synthetic case belongs to (the server's default `--center`).
const CENTER: &str = "local";

/// Arguments of `casereg-bench search`.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// Gzipped JSON Lines phenopackets the synthetic cases are drawn from [default:
    /// ../shared/data/phenopacket-store.jsonl.gz beside the repository if it exists, else
    /// tests/data/phenopacket-store-sample.jsonl.gz].
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,

    /// Number of synthetic cases.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub cases: u32,

    /// Seed of the case generator: the same seed and corpus give the same cases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Timed runs of each query (after the warm-up runs).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,

    /// Untimed warm-up runs of each query.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,

    /// Data directory for phase 2; must not exist yet [default: a new directory under
    /// target/casereg-bench/].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Keep the data directory afterwards (it is deleted by default).
    #[arg(long)]
    pub keep: bool,

    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A progress line on standard error, with the time since the run started.
pub(crate) fn progress(started: Instant, message: impl AsRef<str>) {
    eprintln!(
        "[{:>7.1} s] {}",
        started.elapsed().as_secs_f64(),
        message.as_ref()
    );
}

/// The corpus to use: the one given, or the default.
fn corpus_path(args: &SearchArgs) -> PathBuf {
    default_corpus(args.corpus.as_deref())
}

/// `given`, or the default corpus: the shared phenopacket-store beside the repository if it
/// exists, else the sample in `tests/data`.
pub(crate) fn default_corpus(given: Option<&Path>) -> PathBuf {
    if let Some(path) = given {
        return path.to_path_buf();
    }
    let root = crate::repo_root();
    let shared = root.join("../shared/data/phenopacket-store.jsonl.gz");
    if shared.exists() {
        shared
    } else {
        root.join("tests/data/phenopacket-store-sample.jsonl.gz")
    }
}

/// What the corpus and the generator gave.
struct CorpusInfo {
    path: PathBuf,
    file_bytes: u64,
    records: usize,
    pool: usize,
    mean_template_bytes: f64,
}

/// The timings of one query under one strategy.
struct StrategyTiming {
    count: u64,
    samples: Samples,
}

/// Phase 1 results.
struct Phase1 {
    generate: Duration,
    mean_present: f64,
    mean_excluded: f64,
    with_onset: u64,
    builds: Vec<(Expansion, Duration, u64)>,
    /// Per query: (closure, union).
    queries: Vec<(StrategyTiming, StrategyTiming)>,
    peak_rss_kib: Option<u64>,
}

/// Phase 2 results.
struct Phase2 {
    data_dir: PathBuf,
    write: Duration,
    record_bytes: u64,
    data_dir_bytes: u64,
    startup: Duration,
    snapshot_save: Duration,
    snapshot_bytes: u64,
    snapshot_startup: Duration,
    active: u64,
    health: Samples,
    counts: Vec<StrategyTiming>,
    /// Aggregate calls: what each is, and its timing (count: cells or values returned).
    aggregates: Vec<(String, StrategyTiming)>,
    kept: bool,
}

/// What the phases of a run share.
struct Bench<'a> {
    args: &'a SearchArgs,
    started: Instant,
    date: String,
    argv: Vec<String>,
    machine: Machine,
    repeat: Repeat,
    center: CenterId,
    queries: Vec<BenchQuery>,
    corpus: CorpusInfo,
    generator: Generator,
    hpo: Arc<Ontology>,
    hpo_load: Duration,
}

/// Runs the search benchmark and returns its markdown report (also written to `--out`).
pub fn run(args: &SearchArgs) -> Result<String> {
    let started = Instant::now();
    if args.cases == 0 || args.runs == 0 {
        return Err(BenchError::Input(
            "--cases and --runs must be at least 1".to_owned(),
        ));
    }
    let argv: Vec<String> = std::env::args().collect();
    let date = machine::utc_now();
    let machine = Machine::describe();
    let repeat = Repeat {
        warmup: args.warmup,
        runs: args.runs,
    };
    let center = CenterId::parse(CENTER).map_err(|e| BenchError::Input(e.0))?;
    let queries = search_queries()?;

    let path = corpus_path(args);
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    progress(started, format!("reading corpus {}", path.display()));
    let file_bytes = std::fs::metadata(&path)
        .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?
        .len();
    let records = read_corpus(&path)?;
    let record_count = records.len();
    let generator = Generator::new(records, args.seed)?;
    let corpus = CorpusInfo {
        path,
        file_bytes,
        records: record_count,
        pool: generator.pool_len(),
        mean_template_bytes: generator.mean_template_bytes(),
    };

    let hpo_started = Instant::now();
    let hpo = Arc::new(
        Ontology::embedded().map_err(|e| BenchError::registry("loading the embedded HPO", e))?,
    );
    let hpo_load = hpo_started.elapsed();
    progress(
        started,
        format!(
            "{} templates, {} pool features; HPO {} loaded in {:.0} ms",
            grouped(corpus.records),
            grouped(corpus.pool),
            hpo.version(),
            millis(hpo_load)
        ),
    );

    let bench = Bench {
        args,
        started,
        date,
        argv,
        machine,
        repeat,
        center,
        queries,
        corpus,
        generator,
        hpo,
        hpo_load,
    };
    let phase1 = bench.phase1()?;
    let phase2 = bench.phase2(&phase1)?;
    let report = bench.render(&phase1, &phase2);
    if let Some(out) = &args.out {
        std::fs::write(out, &report)
            .map_err(|e| BenchError::io(format!("writing {}", out.display()), e))?;
    }
    progress(started, "done");
    Ok(report)
}

/// Generates the cases and extracts their facts, on all available cores (each case has
/// its own random stream, so the split does not change the cases).
pub(crate) fn generate_facts(
    generator: &Generator,
    hpo: &Ontology,
    cases: u32,
    threads: usize,
) -> Result<Vec<CaseFacts>> {
    let threads = u32::try_from(threads.max(1)).unwrap_or(1).min(cases);
    let chunk = cases.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (lo, hi) = (
                    t.saturating_mul(chunk),
                    (t + 1).saturating_mul(chunk).min(cases),
                );
                scope.spawn(move || {
                    (lo..hi)
                        .map(|i| {
                            facts::extract_typed(&generator.case(u64::from(i)), hpo)
                                .expect("a record's own encoding reads as its view")
                        })
                        .collect::<Vec<CaseFacts>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(cases as usize);
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| BenchError::Input("a generator thread panicked".to_owned()))?;
            all.extend(part);
        }
        Ok(all)
    })
}

/// The registry id of synthetic case `index`, as the store derives it.
pub(crate) fn case_id(center: &CenterId, index: u32) -> Result<CaseId> {
    let external = ExternalId::parse(&format!("synthetic-{index}"))
        .map_err(|e| BenchError::Input(format!("synthetic-{index}: {}", e.0)))?;
    Ok(CaseId::derive(center, &external))
}

/// A new data directory (never one that exists: the benchmark deletes it afterwards).
fn fresh_data_dir(args: &SearchArgs) -> Result<PathBuf> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            crate::repo_root().join(format!(
                "target/casereg-bench/search-{}-{nanos}",
                std::process::id()
            ))
        }
    };
    if dir.exists() {
        return Err(BenchError::Input(format!(
            "data directory {} exists; give a new one (it is deleted afterwards unless --keep)",
            dir.display()
        )));
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
    }
    Ok(dir)
}

/// Total size of the files under `dir`, in bytes.
pub(crate) fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BenchError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io(format!("listing {}", dir.display()), e))?;
        let meta = entry
            .metadata()
            .map_err(|e| BenchError::io(format!("reading {}", entry.path().display()), e))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Writes the synthetic cases through the record checks and durable batch imports: one
/// thread generates and checks batches, this one commits them (as the server overlaps
/// checking and committing). Returns the total encoded record bytes.
fn write_cases(
    store: &Store,
    generator: &Generator,
    hpo: &Ontology,
    center: &CenterId,
    cases: u32,
    started: Instant,
) -> Result<u64> {
    let batch_len = u32::try_from(IMPORT_BATCH_RECORDS).unwrap_or(512);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<CaseDraft>>>(2);
        scope.spawn(move || {
            for start in (0..cases).step_by(IMPORT_BATCH_RECORDS) {
                let end = start.saturating_add(batch_len).min(cases);
                let batch = (start..end)
                    .map(|i| {
                        let record = generator.case(u64::from(i));
                        convert::phenopacket_to_draft(Some(&record), "phenopacket", hpo, false)
                            .map(|(draft, _warnings)| draft)
                            .map_err(|e| {
                                BenchError::Check(format!(
                                    "synthetic-{i} fails the record checks: {e}"
                                ))
                            })
                    })
                    .collect::<Result<Vec<CaseDraft>>>();
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        let mut written: u64 = 0;
        let mut bytes: u64 = 0;
        let step = (u64::from(cases) / 10).max(1);
        let actor = casereg_core::audit::Actor {
            principal: "casereg-bench".to_owned(),
            center: center.clone(),
            any_center: false,
        };
        for batch in rx {
            let drafts = batch?;
            bytes += drafts.iter().map(|d| d.record.len() as u64).sum::<u64>();
            let results = store
                .import_batch(&actor, &drafts, ChangedPolicy::Reject, UnixMicros::now())
                .map_err(|e| BenchError::registry("import batch", e))?;
            if let Some(other) = results
                .iter()
                .find(|r| !matches!(r, ImportResult::Created { .. }))
            {
                return Err(BenchError::Check(format!(
                    "a fresh data directory should create every case, got {other:?}"
                )));
            }
            let before = written / step;
            written += drafts.len() as u64;
            if written / step != before {
                progress(
                    started,
                    format!(
                        "written {} / {}{}",
                        grouped(written),
                        grouped(cases),
                        rss_note()
                    ),
                );
            }
        }
        if written != u64::from(cases) {
            return Err(BenchError::Check(format!(
                "wrote {written} cases of {cases}"
            )));
        }
        Ok(bytes)
    })
}

/// One timed call.
enum Call<'a> {
    Health,
    Count(&'a pb::Filter),
    Aggregate(&'a pb::AggregateRequest),
    CoOccurrence(&'a pb::CoOccurrenceRequest),
}

/// The aggregate calls timed over gRPC: what each is, as text, and the request.
pub(crate) fn aggregate_calls() -> Result<Vec<(&'static str, AggregateCall)>> {
    let parse = |text: &str| {
        casereg_client::query::parse_query(text)
            .map_err(|e| BenchError::Input(format!("query `{text}`:\n{e}")))
    };
    let group = |dimension: pb::Dimension, rollup_depth: u32, bucket_days: u32| pb::GroupBy {
        dimension: dimension.into(),
        rollup_depth,
        bucket_days,
    };
    let aggregate = |filter, group_by| {
        AggregateCall::Aggregate(pb::AggregateRequest {
            filter: Some(filter),
            group_by,
            top_n: 20,
            min_count: 0,
        })
    };
    let cooccur = |filter| {
        AggregateCall::CoOccurrence(pb::CoOccurrenceRequest {
            filter: Some(filter),
            dimension: pb::Dimension::Phenotype.into(),
            top_n: 20,
            min_count: 0,
        })
    };
    Ok(vec![
        (
            "facet: diseases of `phenotype:HP:0000707 and sex:female` (top 20)",
            aggregate(
                parse("phenotype:HP:0000707 and sex:female")?,
                vec![group(pb::Dimension::Disease, 0, 0)],
            ),
        ),
        (
            "pivot: organ systems × sex of `onset<1y`",
            aggregate(
                parse("onset<1y")?,
                vec![
                    group(pb::Dimension::Phenotype, 1, 0),
                    group(pb::Dimension::Sex, 0, 0),
                ],
            ),
        ),
        (
            "facet: onset in 5-year buckets of `phenotype:HP:0001250`",
            aggregate(
                parse("phenotype:HP:0001250")?,
                vec![group(pb::Dimension::Onset, 0, 1826)],
            ),
        ),
        (
            "co-occurring phenotypes of `phenotype:HP:0001250` (Fisher + BH over all)",
            cooccur(parse("phenotype:HP:0001250")?),
        ),
        (
            "co-occurring phenotypes of `disease:OMIM:612164`",
            cooccur(parse("disease:OMIM:612164")?),
        ),
    ])
}

/// An aggregate request of either kind.
pub(crate) enum AggregateCall {
    Aggregate(pb::AggregateRequest),
    CoOccurrence(pb::CoOccurrenceRequest),
}

impl AggregateCall {
    fn call(&self) -> Call<'_> {
        match self {
            Self::Aggregate(r) => Call::Aggregate(r),
            Self::CoOccurrence(r) => Call::CoOccurrence(r),
        }
    }
}

async fn call(client: &mut Client, call: &Call<'_>) -> Result<u64> {
    match call {
        Call::Health => {
            let status = client
                .health()
                .await
                .map_err(|e| BenchError::registry("health check", e))?;
            // `ServingStatus` is tonic-health's; its name is enough to check it.
            if status.as_str_name() != "SERVING" {
                return Err(BenchError::Registry(format!(
                    "server is not serving: {}",
                    status.as_str_name()
                )));
            }
            Ok(0)
        }
        Call::Count(filter) => client
            .exact_count(Some((*filter).clone()))
            .await
            .map_err(|e| BenchError::registry("count cases", e)),
        // For aggregates, the number of cells (or values) returned.
        Call::Aggregate(request) => client
            .aggregate((*request).clone())
            .await
            .map(|r| r.cells.len() as u64)
            .map_err(|e| BenchError::registry("aggregate", e)),
        Call::CoOccurrence(request) => client
            .cooccurrence((*request).clone())
            .await
            .map(|r| r.values.len() as u64)
            .map_err(|e| BenchError::registry("co-occurrence", e)),
    }
}

/// Times `calls` in interleaved rounds: each round makes one call of each, in order, so
/// that drift (frequency scaling, other load, the server's threads parking) affects all of
/// them alike. Returns each call's timings and its last result.
async fn time_calls(
    client: &mut Client,
    repeat: Repeat,
    calls: &[Call<'_>],
) -> Result<Vec<StrategyTiming>> {
    for _ in 0..repeat.warmup {
        for what in calls {
            call(client, what).await?;
        }
    }
    let mut durations = vec![Vec::with_capacity(repeat.runs); calls.len()];
    let mut counts = vec![0; calls.len()];
    for _ in 0..repeat.runs {
        for (k, what) in calls.iter().enumerate() {
            let started = Instant::now();
            counts[k] = call(client, what).await?;
            durations[k].push(started.elapsed());
        }
    }
    Ok(durations
        .into_iter()
        .zip(counts)
        .map(|(durations, count)| StrategyTiming {
            count,
            samples: Samples::new(durations),
        })
        .collect())
}

impl Bench<'_> {
    /// Phase 1: the in-process indexes.
    fn phase1(&self) -> Result<Phase1> {
        let Self {
            args,
            generator,
            hpo,
            center,
            queries,
            machine,
            ..
        } = self;
        let (repeat, started) = (self.repeat, self.started);
        progress(
            started,
            format!(
                "phase 1: generating {} cases and extracting their facts on {} threads",
                grouped(args.cases),
                machine.nproc
            ),
        );
        let generate_started = Instant::now();
        let all_facts = generate_facts(generator, hpo, args.cases, machine.nproc)?;
        let ids = (0..args.cases)
            .map(|i| case_id(center, i))
            .collect::<Result<Vec<CaseId>>>()?;
        let generate = generate_started.elapsed();
        let n = all_facts.len() as f64;
        let mean_present = all_facts.iter().map(|f| f.present.len()).sum::<usize>() as f64 / n;
        let mean_excluded = all_facts.iter().map(|f| f.excluded.len()).sum::<usize>() as f64 / n;
        let with_onset = all_facts.iter().filter(|f| f.onset.is_some()).count() as u64;
        progress(
            started,
            format!("generated in {:.1} s", generate.as_secs_f64()),
        );

        let mut builds = Vec::new();
        let mut indexes = Vec::new();
        for expansion in [Expansion::AncestorClosure, Expansion::DescendantUnion] {
            let build_started = Instant::now();
            let mut index = Index::new(Arc::clone(hpo), expansion);
            for (doc, (facts, id)) in all_facts.iter().zip(&ids).enumerate() {
                index.insert(Entry {
                    doc: u32::try_from(doc)
                        .map_err(|_| BenchError::Input("more cases than u32 docs".to_owned()))?,
                    id: *id,
                    center,
                    active: true,
                    facts,
                });
            }
            let build = build_started.elapsed();
            let bytes = index.bitmap_bytes();
            progress(
                started,
                format!(
                    "built {expansion:?} index in {:.0} ms, bitmaps {} MiB{}",
                    millis(build),
                    mib(bytes),
                    rss_note()
                ),
            );
            builds.push((expansion, build, bytes));
            indexes.push(index);
        }
        drop(all_facts);
        drop(ids);
        let [closure, union] = indexes.as_slice() else {
            return Err(BenchError::Input("expected two indexes".to_owned()));
        };

        let mut timings = Vec::new();
        for (number, q) in queries.iter().enumerate() {
            let (closure_samples, closure_count) = time_sync(repeat, || closure.count(&q.query));
            let (union_samples, union_count) = time_sync(repeat, || union.count(&q.query));
            let (closure_count, union_count) =
                (closure_count.unwrap_or(0), union_count.unwrap_or(0));
            if closure_count != union_count {
                return Err(BenchError::Check(format!(
                    "query {} `{}`: ancestor closure counts {closure_count}, descendant union {union_count}",
                    number + 1,
                    q.text
                )));
            }
            progress(
                started,
                format!(
                    "query {} `{}`: {} cases; p50 closure {} µs, union {} µs",
                    number + 1,
                    q.text,
                    grouped(closure_count),
                    num(micros(closure_samples.p50())),
                    num(micros(union_samples.p50()))
                ),
            );
            timings.push((
                StrategyTiming {
                    count: closure_count,
                    samples: closure_samples,
                },
                StrategyTiming {
                    count: union_count,
                    samples: union_samples,
                },
            ));
        }
        let peak_rss_kib = machine::peak_rss_kib();
        Ok(Phase1 {
            generate,
            mean_present,
            mean_excluded,
            with_onset,
            builds,
            queries: timings,
            peak_rss_kib,
        })
    }

    /// Phase 2: a real data directory and server; the directory is deleted afterwards
    /// (unless `--keep`), whether or not the phase succeeds.
    fn phase2(&self, phase1: &Phase1) -> Result<Phase2> {
        let (args, started) = (self.args, self.started);
        let dir = fresh_data_dir(args)?;
        progress(
            started,
            format!(
                "phase 2: writing {} cases to {}",
                grouped(args.cases),
                dir.display()
            ),
        );
        let result = self.phase2_in(phase1, &dir);
        if !args.keep && dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| BenchError::io(format!("deleting {}", dir.display()), e))?;
            progress(started, format!("deleted {}", dir.display()));
        }
        result
    }

    fn phase2_in(&self, phase1: &Phase1, dir: &Path) -> Result<Phase2> {
        let Self {
            args,
            generator,
            hpo,
            center,
            queries,
            ..
        } = self;
        let (repeat, started) = (self.repeat, self.started);
        let write_started = Instant::now();
        let store = Store::open(dir, Arc::clone(hpo))
            .map_err(|e| BenchError::registry(&format!("opening {}", dir.display()), e))?;
        let record_bytes = write_cases(&store, generator, hpo, center, args.cases, started)?;
        store
            .flush()
            .map_err(|e| BenchError::registry("flushing the store", e))?;
        drop(store);
        let write = write_started.elapsed();
        let data_dir_bytes = dir_size(dir)?;
        progress(
            started,
            format!(
                "written in {:.1} s; data directory {} MiB",
                write.as_secs_f64(),
                mib(data_dir_bytes)
            ),
        );

        let dir_text = dir.display().to_string();
        let config = Config::try_parse_from([
            "casereg-server",
            "--data-dir",
            dir_text.as_str(),
            "--listen",
            "127.0.0.1:0",
            "--center",
            CENTER,
        ])
        .map_err(|e| BenchError::Input(format!("server configuration: {e}")))?;
        let startup_started = Instant::now();
        let registry = casereg_server::open_registry(&config)
            .map_err(|e| BenchError::registry("opening the registry", e))?;
        let startup = startup_started.elapsed();
        let active = registry
            .store
            .counts()
            .map_err(|e| BenchError::registry("reading counts", e))?
            .active;
        if active != u64::from(args.cases) {
            return Err(BenchError::Check(format!(
                "the reopened registry holds {active} active cases, not {}",
                args.cases
            )));
        }
        progress(
            started,
            format!(
                "registry opened in {:.0} ms (indexes rebuilt)",
                millis(startup)
            ),
        );
        // A clean stop saves the index; the next start loads it instead of rebuilding.
        let save_started = Instant::now();
        registry
            .store
            .save_index_snapshot()
            .map_err(|e| BenchError::Input(format!("saving the index snapshot: {e}")))?;
        let snapshot_save = save_started.elapsed();
        let snapshot_bytes = std::fs::metadata(dir.join(casereg_core::store::SNAPSHOT_FILE))
            .map_err(|e| BenchError::Input(format!("index snapshot: {e}")))?
            .len();
        drop(registry);
        let snapshot_started = Instant::now();
        let registry = casereg_server::open_registry(&config)
            .map_err(|e| BenchError::registry("reopening the registry", e))?;
        let snapshot_startup = snapshot_started.elapsed();
        if !registry.store.index_from_snapshot() {
            return Err(BenchError::Check(
                "the reopened registry did not load the index snapshot".to_owned(),
            ));
        }
        progress(
            started,
            format!(
                "registry reopened in {:.0} ms (index snapshot)",
                millis(snapshot_startup)
            ),
        );

        // The text queries must mean what phase 1 measured: parse them as the client does and
        // read them as the server does.
        let mut filters = Vec::with_capacity(queries.len());
        for q in queries {
            let filter = casereg_client::query::parse_query(q.text)
                .map_err(|e| BenchError::Input(format!("query `{}`:\n{e}", q.text)))?;
            let read = casereg_server::wire::filter::to_query(
                Some(&filter),
                "filter",
                &registry.store.index(),
            )
            .map_err(|e| BenchError::Input(format!("query `{}`: {e}", q.text)))?;
            if read != q.query {
                return Err(BenchError::Check(format!(
                    "query `{}` reads as {read:?} on the server, but phase 1 measured {:?}",
                    q.text, q.query
                )));
            }
            filters.push(filter);
        }

        let registry = Arc::new(registry);
        let server_runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("casereg-server")
            .build()
            .map_err(|e| BenchError::io("starting the server runtime", e))?;
        let listener = server_runtime
            .block_on(TcpListener::bind(config.listen))
            .map_err(|e| BenchError::io("binding 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::io("reading the listen address", e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = server_runtime.spawn(casereg_server::serve(
            Arc::clone(&registry),
            listener,
            async move {
                let _ = stopped.await;
            },
            casereg_server::ServeOptions {
                grace: Duration::from_secs(1),
                tls: None,
            },
        ));
        progress(started, format!("serving on {addr}"));

        let client_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BenchError::io("starting the client runtime", e))?;
        let measured = client_runtime.block_on(async {
            let mut client = Client::connect(&format!("http://{addr}"), &ConnectOptions::default())
                .await
                .map_err(|e| BenchError::registry("connecting", e))?;
            let calls: Vec<Call<'_>> = std::iter::once(Call::Health)
                .chain(filters.iter().map(Call::Count))
                .collect();
            let mut timings = time_calls(&mut client, repeat, &calls).await?.into_iter();
            let health = timings
                .next()
                .ok_or_else(|| BenchError::Check("no health timing".to_owned()))?;
            progress(
                started,
                format!("health p50 {} µs", num(micros(health.samples.p50()))),
            );
            let counts: Vec<StrategyTiming> = timings.collect();
            for (number, (q, timing)) in queries.iter().zip(&counts).enumerate() {
                let expected = phase1.queries[number].0.count;
                if timing.count != expected {
                    return Err(BenchError::Check(format!(
                        "query {} `{}`: gRPC counts {}, phase 1 counted {expected}",
                        number + 1,
                        q.text,
                        timing.count
                    )));
                }
                progress(
                    started,
                    format!(
                        "gRPC query {} `{}`: {} cases, p50 {} µs",
                        number + 1,
                        q.text,
                        grouped(timing.count),
                        num(micros(timing.samples.p50()))
                    ),
                );
            }
            let aggregates = aggregate_calls()?;
            let calls: Vec<Call<'_>> = aggregates.iter().map(|(_, a)| a.call()).collect();
            let timed = time_calls(&mut client, repeat, &calls).await?;
            let aggregates: Vec<(String, StrategyTiming)> = aggregates
                .iter()
                .zip(timed)
                .map(|((what, _), timing)| {
                    progress(
                        started,
                        format!("gRPC {what}: p50 {} µs", num(micros(timing.samples.p50()))),
                    );
                    ((*what).to_owned(), timing)
                })
                .collect();
            Ok::<_, BenchError>((health.samples, counts, aggregates))
        });
        // Close the client's connection (its tasks live on this runtime), so that the server
        // drains at once instead of waiting out its grace period.
        drop(client_runtime);

        // Stop the server whatever happened, so that the store is flushed and closed.
        let _ = stop.send(());
        let served = server_runtime.block_on(server);
        drop(registry);
        server_runtime.shutdown_timeout(Duration::from_secs(5));
        let (health, counts, aggregates) = measured?;
        served
            .map_err(|e| BenchError::registry("server task", e))?
            .map_err(|e| BenchError::registry("server", e))?;

        Ok(Phase2 {
            data_dir: dir.to_path_buf(),
            write,
            record_bytes,
            data_dir_bytes,
            startup,
            snapshot_save,
            snapshot_bytes,
            snapshot_startup,
            active,
            health,
            counts,
            aggregates,
            kept: args.keep,
        })
    }

    /// The markdown report.
    fn render(&self, phase1: &Phase1, phase2: &Phase2) -> String {
        let Self {
            args,
            argv,
            date,
            machine,
            corpus,
            hpo,
            hpo_load,
            queries,
            ..
        } = self;
        let mut md = Markdown::new();
        let n = args.cases;
        md.line(format!("# casereg-bench search — {} cases", grouped(n)));
        md.blank();
        md.line("## Setup");
        md.blank();
        md.setup(date, machine, argv, "");
        md.line(format!(
            "- HPO: release {} ({}), loaded in {} ms (measured once, at start)",
            hpo.version(),
            hpo.source(),
            num(millis(*hpo_load))
        ));
        md.line(format!(
            "- Templates: {} ({} records, {} bytes gzipped); pool of {} phenotypic features",
            corpus.path.display(),
            grouped(corpus.records),
            grouped(corpus.file_bytes),
            grouped(corpus.pool)
        ));
        md.line(format!(
            "- Synthetic cases: {} (seed {}), each a compact copy of a random template (only \
         subject, phenotypicFeatures, diseases, interpretations, metaData kept; biosamples, \
         files, measurements, medicalActions dropped; mean compact template {} bytes encoded) \
         with new ids, the sex of another random record, each feature dropped with \
         probability {DROP_FEATURE_PROBABILITY}, 0–{MAX_ADDED_FEATURES} features added from \
         the pool, ages as in the template",
            grouped(n),
            args.seed,
            grouped(corpus.mean_template_bytes.round() as u64)
        ));
        md.line(format!(
            "- Per case (mean): {:.1} present and {:.2} excluded distinct phenotypes; {} cases \
         ({:.1}%) have an onset age",
            phase1.mean_present,
            phase1.mean_excluded,
            grouped(phase1.with_onset),
            100.0 * phase1.with_onset as f64 / f64::from(n)
        ));
        md.line(format!(
            "- Latency: {} timed runs per query after {} warm-up runs, one call at a time; p50 \
         and p99 are nearest-rank percentiles of those runs",
            args.runs, args.warmup
        ));
        md.blank();

        md.line("## Phase 1 — in-process index, two expansion strategies");
        md.blank();
        md.line(format!(
            "Generating the cases and extracting their facts (`casereg_server::wire::facts::extract`) \
         took {} ms on {} threads. Each index is then built from the same facts on one \
         thread. Bitmaps: `Index::bitmap_bytes()`, the serialized size of the phenotype and \
         code bitmaps (sex, age and active-set bitmaps not included).",
            num(millis(phase1.generate)),
            machine.nproc
        ));
        md.blank();
        let build_rows: Vec<Vec<String>> = phase1
            .builds
            .iter()
            .map(|(expansion, build, bytes)| {
                vec![format!("{expansion:?}"), num(millis(*build)), mib(*bytes)]
            })
            .collect();
        md.table(
            &["strategy", "build (ms)", "bitmaps (MiB)"],
            &[false, true, true],
            &build_rows,
        );
        md.line(
        "`Index::count` latency, µs, each query's runs back to back on one thread (warm \
         caches: the best case for both strategies). *terms*: how many phenotype term bitmaps the descendant \
         union reads (the closure reads one per phenotype leaf; — where the query has no \
         phenotype leaf and both read the same bitmaps). Both strategies gave the same count \
         for every query (checked).",
    );
        md.blank();
        let query_rows: Vec<Vec<String>> = queries
            .iter()
            .zip(&phase1.queries)
            .enumerate()
            .map(|(i, (q, (closure, union)))| {
                vec![
                    (i + 1).to_string(),
                    format!("{} `{}`", q.what, q.text),
                    union_terms(&q.query, hpo).map_or_else(|| "—".to_owned(), grouped),
                    grouped(closure.count),
                    num(micros(closure.samples.p50())),
                    num(micros(closure.samples.p99())),
                    num(micros(union.samples.p50())),
                    num(micros(union.samples.p99())),
                    ratio(
                        union.samples.p50().as_secs_f64()
                            / closure.samples.p50().as_secs_f64().max(1e-9),
                    ),
                ]
            })
            .collect();
        md.table(
            &[
                "#",
                "query",
                "terms",
                "count",
                "closure p50",
                "closure p99",
                "union p50",
                "union p99",
                "union/closure p50",
            ],
            &[true, false, true, true, true, true, true, true, true],
            &query_rows,
        );
        if let Some(kib) = phase1.peak_rss_kib {
            md.line(format!(
                "Peak RSS after phase 1 (facts of all cases and both indexes in memory): {} MiB.",
                mib(kib * 1024)
            ));
            md.blank();
        }

        md.line("## Phase 2 — a real server over gRPC");
        md.blank();
        let write_secs = phase2.write.as_secs_f64();
        md.line(format!(
            "Written through the record checks (`convert::phenopacket_to_draft`) and \
         `Store::import_batch` in durable batches of {IMPORT_BATCH_RECORDS} (one thread \
         generating and checking, one committing; no gRPC): {} cases in {:.1} s ({} cases/s), \
         {} encoded record bytes per case on average. Data directory on disk: {} MiB ({}{}).",
            grouped(phase2.active),
            write_secs,
            grouped((f64::from(n) / write_secs).round() as u64),
            grouped(phase2.record_bytes / u64::from(n)),
            mib(phase2.data_dir_bytes),
            phase2.data_dir.display(),
            if phase2.kept {
                ", kept"
            } else {
                ", deleted afterwards"
            }
        ));
        md.blank();
        md.line(format!(
            "Start-up, `casereg_server::open_registry` on that directory (loads the embedded HPO, \
         opens sled, rebuilds the search indexes from {} envelopes, as after a crash): {} ms. \
         Saving the index snapshot (as a clean stop does): {} ms, {} MiB. Start-up again, \
         loading the snapshot: {} ms.",
            grouped(phase2.active),
            num(millis(phase2.startup)),
            num(millis(phase2.snapshot_save)),
            mib(phase2.snapshot_bytes),
            num(millis(phase2.snapshot_startup))
        ));
        md.blank();
        md.line(
            "Served in this process on 127.0.0.1:0 (server on a multi-thread tokio runtime with \
         one worker per available CPU; the client on its own current-thread runtime). One \
         `casereg_client::Client`, sequential calls in interleaved rounds (each round one \
         health check, then each query once; warm-up rounds first); query text parsed with \
         `casereg_client::query::parse_query` (checked to read as the same `Query` as phase \
         1). Latency in µs per call, including the parse on the server, encoding, loopback \
         HTTP/2 and decoding. The counts equal phase 1's (checked).",
        );
        md.blank();
        let floor = phase2.health.p50().as_secs_f64().max(1e-9);
        let mut rows = vec![vec![
            "—".to_owned(),
            "health check (floor)".to_owned(),
            "—".to_owned(),
            num(micros(phase2.health.p50())),
            num(micros(phase2.health.p99())),
            ratio(1.0),
            "—".to_owned(),
        ]];
        for (i, ((q, grpc), (closure, _))) in queries
            .iter()
            .zip(&phase2.counts)
            .zip(&phase1.queries)
            .enumerate()
        {
            rows.push(vec![
                (i + 1).to_string(),
                format!("`{}`", q.text),
                grouped(grpc.count),
                num(micros(grpc.samples.p50())),
                num(micros(grpc.samples.p99())),
                ratio(grpc.samples.p50().as_secs_f64() / floor),
                num(micros(closure.samples.p50())),
            ]);
        }
        md.table(
            &[
                "#",
                "call",
                "count",
                "p50",
                "p99",
                "p50 / health p50",
                "in-process closure p50 (phase 1)",
            ],
            &[true, false, true, true, true, true, true],
            &rows,
        );
        md.line(
            "Aggregates over the same connection, timed the same way in rounds of their own \
         (the server runs without principals, so the caller is the local administrator: record \
         level, exact counts). *returned*: cells or values in the answer.",
        );
        md.blank();
        let rows: Vec<Vec<String>> = phase2
            .aggregates
            .iter()
            .map(|(what, timing)| {
                vec![
                    what.clone(),
                    grouped(timing.count),
                    num(micros(timing.samples.p50())),
                    num(micros(timing.samples.p99())),
                    ratio(timing.samples.p50().as_secs_f64() / floor),
                ]
            })
            .collect();
        md.table(
            &["call", "returned", "p50", "p99", "p50 / health p50"],
            &[false, true, true, true, true],
            &rows,
        );
        if let Some(kib) = machine::peak_rss_kib() {
            md.line(format!(
                "Peak RSS of the whole run: {} MiB.",
                mib(kib * 1024)
            ));
            md.blank();
        }
        md.into_string()
    }
}

/// The current resident set size, for progress lines.
pub(crate) fn rss_note() -> String {
    machine::rss_kib().map_or_else(String::new, |k| format!(" (RSS {} MiB)", mib(k * 1024)))
}
