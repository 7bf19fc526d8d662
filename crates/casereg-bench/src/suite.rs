//! The benchmark suite: the registry's release server over gRPC, against the gRPC floor and
//! against a tuned PostgreSQL holding the same cases, from one command.
//!
//! For each size, the same synthetic cases (full records, realistic size) are
//! - imported into a `casereg-server` child process through `ImportCases` (W1, durable), and
//!   loaded into a throw-away PostgreSQL cluster with COPY (when PostgreSQL is installed);
//! - then asked the same questions by the same number of clients, each on its own
//!   connection, in a closed loop: W0 the health check (the floor), W2 get by id, W3 a count
//!   with descendant expansion and filters, W4 a facet and a pivot, W5 co-occurrence, W6 a
//!   mix of these; W7 the facet of W4 through a coordinator over centers holding the cases
//!   split between them.
//!
//! Before anything is timed, PostgreSQL's answers are checked against the registry's: the
//! same count, the same facet and pivot cells, the same co-occurring values. The servers
//! (both) run on the server cores and this process on the client cores (`taskset`); the
//! report says which. Each workload runs `repeats` times, alternating the two systems, and
//! the report gives the median of each figure over the repeats.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use casereg_client::{Client, ConnectOptions};
use casereg_core::age::{AgeUnit, days};
use casereg_core::ids::{CaseId, CenterId, ExternalId, TermId};
use casereg_core::ontology::Ontology;
use casereg_proto::v1 as pb;

use crate::error::{BenchError, Result};
use crate::machine::{Machine, utc_now};
use crate::postgres::{Cluster, PgLoad, PgRow, PgTools, Statements};
use crate::report::{Markdown, grouped, mib, num, ratio};
use crate::rng::SplitMix64;
use crate::search::progress;
use crate::synth::{Generator, read_corpus};
use crate::timing::{Samples, millis};

/// The center name of the single server.
const CENTER: &str = "bench";

/// Records per `ImportCasesRequest` message (the server takes at most 1,000).
const IMPORT_MESSAGE_RECORDS: usize = 500;

/// Longest wait for a server to serve after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Deadline of each timed call.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// HPO terms of the workloads (release 2025-01-16): Abnormality of the nervous system,
/// Seizure, Phenotypic abnormality (the root of the organ systems).
const NERVOUS_SYSTEM: u32 = 707;
const SEIZURE: u32 = 1250;
const PHENOTYPIC_ABNORMALITY: u32 = 118;

/// Cells of every facet, pivot and co-occurrence.
const TOP: usize = 20;

/// Arguments of `casereg-bench suite`.
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteArgs {
    /// Numbers of synthetic cases, one full run each (repeat the flag) [default: 100000 and
    /// 1000000; 10000 with --smoke].
    #[arg(long = "cases", value_name = "N")]
    pub cases: Vec<u32>,

    /// A quick run that only shows the suite works: 10,000 cases, one repeat, a few requests,
    /// two centers for W7. Its timings mean little.
    #[arg(long)]
    pub smoke: bool,

    /// Concurrent clients of every workload, each with its own connection.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub clients: usize,

    /// Requests per client in each run of a workload (a run also stops after --seconds).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub requests: usize,

    /// Longest run of one workload on one system, in seconds.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub seconds: u64,

    /// Runs of each workload on each system; the report gives medians over them.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeats: usize,

    /// CPUs of the servers (casereg's and PostgreSQL's), as `taskset -c` takes them.
    #[arg(long, value_name = "LIST", default_value = "1")]
    pub server_cpus: String,

    /// CPUs of this process (the load generator).
    #[arg(long, value_name = "LIST", default_value = "0")]
    pub client_cpus: String,

    /// Centers of W7 (each holds a share of the cases; 0 leaves W7 out).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub centers: u32,

    /// Leave PostgreSQL out even when it is installed.
    #[arg(long)]
    pub no_postgres: bool,

    /// Gzipped JSON Lines phenopackets the cases are drawn from [default:
    /// ../shared/data/phenopacket-store.jsonl.gz, else the committed sample].
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,

    /// Seed of the case generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs the suite and returns its report.
pub fn run(args: &SuiteArgs) -> Result<String> {
    let started = Instant::now();
    let mut args = args.clone();
    if args.smoke {
        args.requests = args.requests.min(40);
        args.repeats = 1;
        args.seconds = args.seconds.min(3);
        args.centers = args.centers.min(2);
    }
    if args.cases.is_empty() {
        args.cases = if args.smoke {
            vec![10_000]
        } else {
            vec![100_000, 1_000_000]
        };
    }
    if args.clients == 0 || args.requests == 0 || args.repeats == 0 {
        return Err(BenchError::Input(
            "--clients, --requests and --repeats must be at least 1".to_owned(),
        ));
    }
    pin_self(&args.client_cpus)?;
    let machine = Machine::describe();
    progress(
        started,
        format!(
            "this process on CPUs {}; servers on CPUs {}",
            machine.cpus_allowed, args.server_cpus
        ),
    );
    let corpus = crate::search::default_corpus(args.corpus.as_deref());
    progress(started, format!("reading corpus {}", corpus.display()));
    let generator = Generator::full(read_corpus(&corpus)?, args.seed)?;
    let hpo = Ontology::embedded().map_err(|e| BenchError::registry("loading the HPO", e))?;
    let tools = if args.no_postgres {
        None
    } else {
        PgTools::find()
    };
    let server_bin = sibling_binary("casereg-server")?;
    let mut report = Markdown::new();
    report.line("# casereg-bench suite — casereg against PostgreSQL and the gRPC floor");
    report.blank();
    report.line("## Setup");
    report.blank();
    let argv: Vec<String> = std::env::args().collect();
    report.setup(
        &utc_now(),
        &machine,
        &argv,
        &format!(
            " — this process (the clients); the servers run under `taskset -c {}`",
            args.server_cpus
        ),
    );
    report.line(format!(
        "- Cases: synthetic, seed {}, drawn from {} ({} templates, whole records); mean JSON \
         size {} bytes (over the first 1,000)",
        args.seed,
        corpus.display(),
        grouped(generator.template_count()),
        grouped(mean_json_bytes(&generator, 1_000)?)
    ));
    report.line(format!(
        "- Load: {} clients, each on its own connection and thread, in a closed loop; each run \
         of a workload makes {} requests per client or stops after {} s; {} runs per workload \
         and system, alternating; figures are medians over the runs; latencies are nearest-rank \
         percentiles in ms",
        args.clients, args.requests, args.seconds, args.repeats
    ));
    report.line(format!(
        "- casereg: `casereg-server` (release) on 127.0.0.1, no principals (the client is the \
         local administrator: counts exact), data directory deleted afterwards; {}",
        server_bin.display()
    ));
    match &tools {
        Some(tools) => report.line(format!(
            "- PostgreSQL {}: a throw-away cluster on a unix socket; JSONB document, \
             ancestor-closure int[] with GIN, b-tree on sex and onset (see \
             `crates/casereg-bench/src/postgres.rs`)",
            tools.version
        )),
        None => report.line("- PostgreSQL: not found (or --no-postgres); its columns are empty"),
    }
    report.blank();
    for &cases in &args.cases {
        let run = SizeRun {
            args: &args,
            generator: &generator,
            hpo: &hpo,
            tools: tools.as_ref(),
            server_bin: &server_bin,
            cases,
            started,
        };
        run.run(&mut report)?;
    }
    progress(started, "done");
    let text = report.into_string();
    if let Some(out) = &args.out {
        std::fs::write(out, &text)
            .map_err(|e| BenchError::io(format!("writing {}", out.display()), e))?;
    }
    Ok(text)
}

/// A program built beside this one (`target/release/casereg-server`).
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let me =
        std::env::current_exe().map_err(|e| BenchError::io("finding this program's path", e))?;
    let path = me
        .parent()
        .map(|dir| dir.join(name))
        .ok_or_else(|| BenchError::Input("this program has no directory".to_owned()))?;
    if path.exists() {
        Ok(path)
    } else {
        Err(BenchError::Input(format!(
            "{} not found: build it first (cargo build --release -p casereg-server -p \
             casereg-bench), or use bench/suite.sh",
            path.display()
        )))
    }
}

/// Pins every thread of this process to `cpus` (before any thread is started).
fn pin_self(cpus: &str) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| BenchError::io("running taskset (util-linux)", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Input(format!(
            "taskset could not pin this process to CPUs {cpus}"
        )))
    }
}

/// Mean size of the JSON of the first `n` cases.
fn mean_json_bytes(generator: &Generator, n: u64) -> Result<u64> {
    let mut total = 0u64;
    for i in 0..n {
        total += json_of(&generator.case(i))?.len() as u64;
    }
    Ok(total / n.max(1))
}

fn json_of(record: &pb::Phenopacket) -> Result<String> {
    serde_json::to_string(record)
        .map_err(|e| BenchError::Input(format!("writing {} as JSON: {e}", record.id)))
}

/// A `casereg-server` child process serving one data directory.
struct ServerProcess {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl ServerProcess {
    /// Starts the server on a free loopback port under `taskset -c cpus` and waits until it
    /// serves; returns it with the time that took.
    fn start(
        bin: &Path,
        cpus: &str,
        dir: &Path,
        center: &str,
        extra: &[String],
    ) -> Result<(Self, Duration)> {
        let port = free_port()?;
        let log = std::fs::File::create(dir.with_extension("log"))
            .map_err(|e| BenchError::io(format!("creating {}.log", dir.display()), e))?;
        let begun = Instant::now();
        let child = Command::new("taskset")
            .arg("-c")
            .arg(cpus)
            .arg(bin)
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--center", center, "--log-format", "json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", bin.display()), e))?;
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_owned(),
        };
        let runtime = current_thread()?;
        loop {
            if let Some(status) = server
                .child
                .try_wait()
                .map_err(|e| BenchError::io("waiting for the server", e))?
            {
                return Err(BenchError::Registry(format!(
                    "the server stopped ({status}); see {}.log",
                    dir.display()
                )));
            }
            let ready = runtime.block_on(async {
                let mut client = Client::connect(&server.url, &ConnectOptions::default())
                    .await
                    .ok()?;
                client.health().await.ok()
            });
            if ready.is_some_and(|s| s.as_str_name() == "SERVING") {
                return Ok((server, begun.elapsed()));
            }
            if begun.elapsed() > START_TIMEOUT {
                server.kill();
                return Err(BenchError::Registry(format!(
                    "the server did not serve within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Peak resident memory of the server process, in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Asks the server to stop (SIGTERM: a clean stop, which saves the index snapshot) and
    /// waits for it.
    fn stop(mut self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| BenchError::io("signalling the server", e))?;
        if !status.success() {
            self.kill();
            return Err(BenchError::Registry(
                "could not signal the server".to_owned(),
            ));
        }
        let exit = self
            .child
            .wait()
            .map_err(|e| BenchError::io("waiting for the server to stop", e))?;
        if exit.success() {
            Ok(())
        } else {
            Err(BenchError::Registry(format!(
                "the server stopped with {exit}; see {}.log",
                self.dir.display()
            )))
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::io("finding a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::io("finding a free port", e))
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting a runtime", e))
}

/// Bytes under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Imports cases `i` with `keep(i)` of `0..cases` into the server at `url` and returns how
/// many were created and how long the import took (first record sent to the server's
/// answer, which comes after the last durable commit).
fn import(
    url: &str,
    generator: &Generator,
    cases: u32,
    keep: impl Fn(u64) -> bool + Send + Sync,
) -> Result<(u64, Duration)> {
    let runtime = current_thread()?;
    runtime.block_on(async {
        let mut client = Client::connect(url, &ConnectOptions::default())
            .await
            .map_err(|e| BenchError::registry("connecting", e))?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<pb::ImportCasesRequest>(4);
        let begun = Instant::now();
        let call = client.import_cases(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let produce = async move {
            let mut records = Vec::with_capacity(IMPORT_MESSAGE_RECORDS);
            let mut first = true;
            for i in (0..u64::from(cases)).filter(|&i| keep(i)) {
                records.push(pb::ImportRecord {
                    source: String::new(),
                    phenopacket: Some(generator.case(i)),
                });
                if records.len() == IMPORT_MESSAGE_RECORDS {
                    let message = pb::ImportCasesRequest {
                        options: first.then(pb::ImportOptions::default),
                        records: std::mem::take(&mut records),
                    };
                    first = false;
                    if sender.send(message).await.is_err() {
                        return;
                    }
                }
            }
            if !records.is_empty() {
                let _ = sender
                    .send(pb::ImportCasesRequest {
                        options: first.then(pb::ImportOptions::default),
                        records,
                    })
                    .await;
            }
        };
        let (answer, ()) = tokio::join!(call, produce);
        let answer = answer.map_err(|e| BenchError::registry("importing", e))?;
        if answer.rejected > 0 {
            return Err(BenchError::Check(format!(
                "{} synthetic cases rejected by the import",
                answer.rejected
            )));
        }
        Ok((answer.created, begun.elapsed()))
    })
}

/// One workload's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Floor,
    Get,
    Count,
    Facet,
    Pivot,
    CoOccurrence,
    Mixed,
    Network,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Floor => "W0 floor: health check",
            Self::Get => "W2 get by id",
            Self::Count => "W3 count `phenotype:HP:0000707 and sex:female and onset<1y`",
            Self::Facet => "W4 facet: diseases of `phenotype:HP:0000707 and sex:female`, top 20",
            Self::Pivot => "W4 pivot: organ systems × sex of `phenotype:HP:0001250`, top 20",
            Self::CoOccurrence => "W5 co-occurring phenotypes of `phenotype:HP:0001250`, top 20",
            Self::Mixed => "W6 mixed: 50% W2, 20% W3, 20% W4 facet, 10% W5",
            Self::Network => "W7 network facet (W4 facet via a coordinator)",
        }
    }

    /// The workload one mixed request makes, from a uniform draw in 0..10.
    fn mixed(draw: usize) -> Self {
        match draw {
            0..=4 => Self::Get,
            5..=6 => Self::Count,
            7..=8 => Self::Facet,
            _ => Self::CoOccurrence,
        }
    }
}

/// The registry's requests, parsed once.
#[derive(Clone)]
struct Requests {
    count: pb::Filter,
    facet: pb::AggregateRequest,
    pivot: pb::AggregateRequest,
    cooccurrence: pb::CoOccurrenceRequest,
}

impl Requests {
    fn new() -> Result<Self> {
        let parse = |text: &str| {
            casereg_client::query::parse_query(text)
                .map_err(|e| BenchError::Input(format!("query `{text}`:\n{e}")))
        };
        let group = |dimension: pb::Dimension, rollup_depth: u32| pb::GroupBy {
            dimension: dimension.into(),
            rollup_depth,
            bucket_days: 0,
        };
        Ok(Self {
            count: parse("phenotype:HP:0000707 and sex:female and onset<1y")?,
            facet: pb::AggregateRequest {
                filter: Some(parse("phenotype:HP:0000707 and sex:female")?),
                group_by: vec![group(pb::Dimension::Disease, 0)],
                top_n: TOP as u32,
                min_count: 0,
            },
            pivot: pb::AggregateRequest {
                filter: Some(parse("phenotype:HP:0001250")?),
                group_by: vec![
                    group(pb::Dimension::Phenotype, 1),
                    group(pb::Dimension::Sex, 0),
                ],
                top_n: TOP as u32,
                min_count: 0,
            },
            cooccurrence: pb::CoOccurrenceRequest {
                filter: Some(parse("phenotype:HP:0001250")?),
                dimension: pb::Dimension::Phenotype.into(),
                top_n: TOP as u32,
                min_count: 0,
            },
        })
    }
}

/// One client's connection to one system, making one request of a single workload at a time
/// (never `Mixed`: the loop draws a mixed request's workload first).
trait Driver {
    fn call(&mut self, workload: Workload, rng: &mut SplitMix64) -> Result<()>;
}

/// A client of the registry: its own connection and runtime.
struct CaseregDriver {
    runtime: tokio::runtime::Runtime,
    client: Client,
    requests: Requests,
    center: CenterId,
    cases: u32,
}

impl CaseregDriver {
    fn connect(url: &str, requests: Requests, cases: u32) -> Result<Self> {
        let runtime = current_thread()?;
        let options = ConnectOptions {
            request_timeout: CALL_TIMEOUT,
            ..ConnectOptions::default()
        };
        let client = runtime
            .block_on(Client::connect(url, &options))
            .map_err(|e| BenchError::registry("connecting", e))?;
        let center = CenterId::parse(CENTER).map_err(|e| BenchError::Input(e.0))?;
        Ok(Self {
            runtime,
            client,
            requests,
            center,
            cases,
        })
    }
}

impl Driver for CaseregDriver {
    fn call(&mut self, workload: Workload, rng: &mut SplitMix64) -> Result<()> {
        let client = &mut self.client;
        let requests = &self.requests;
        let id = (workload == Workload::Get)
            .then(|| {
                let i = rng.below(self.cases as usize);
                ExternalId::parse(&format!("synthetic-{i}"))
                    .map(|e| CaseId::derive(&self.center, &e).to_string())
                    .map_err(|e| BenchError::Input(e.0))
            })
            .transpose()?;
        self.runtime.block_on(async move {
            let failed = |what: &str, e: casereg_client::ClientError| BenchError::registry(what, e);
            match workload {
                Workload::Floor => client
                    .health()
                    .await
                    .map(drop)
                    .map_err(|e| failed("health", e)),
                Workload::Get => client
                    .get_case(id.as_deref().unwrap_or_default(), 0, false)
                    .await
                    .map(drop)
                    .map_err(|e| failed("get", e)),
                Workload::Count => client
                    .exact_count(Some(requests.count.clone()))
                    .await
                    .map(drop)
                    .map_err(|e| failed("count", e)),
                Workload::Facet | Workload::Pivot => {
                    let request = if workload == Workload::Facet {
                        &requests.facet
                    } else {
                        &requests.pivot
                    };
                    client
                        .aggregate(request.clone())
                        .await
                        .map(drop)
                        .map_err(|e| failed("aggregate", e))
                }
                Workload::CoOccurrence => client
                    .cooccurrence(requests.cooccurrence.clone())
                    .await
                    .map(drop)
                    .map_err(|e| failed("co-occurrence", e)),
                Workload::Network => {
                    let answer = client
                        .network_aggregate(
                            pb::NetworkAggregateRequest {
                                request: Some(requests.facet.clone()),
                                route: None,
                            },
                            Some(CALL_TIMEOUT),
                        )
                        .await
                        .map_err(|e| failed("network facet", e))?;
                    if answer.partial {
                        return Err(BenchError::Check("a network answer was partial".to_owned()));
                    }
                    Ok(())
                }
                Workload::Mixed => Ok(()),
            }
        })
    }
}

/// A client of PostgreSQL: its own connection and prepared statements.
struct PgDriver {
    client: postgres::Client,
    statements: Statements,
    cases: u32,
    until: i32,
}

impl Driver for PgDriver {
    fn call(&mut self, workload: Workload, rng: &mut SplitMix64) -> Result<()> {
        let c = &mut self.client;
        let female = pb::Sex::Female as i32;
        match workload {
            Workload::Floor | Workload::Network | Workload::Mixed => Ok(()),
            Workload::Get => {
                let id = format!("synthetic-{}", rng.below(self.cases as usize));
                if self.statements.get(c, &id)? {
                    Ok(())
                } else {
                    Err(BenchError::Check(format!("PostgreSQL has no case {id}")))
                }
            }
            Workload::Count => self
                .statements
                .count(c, NERVOUS_SYSTEM as i32, female, self.until)
                .map(drop),
            Workload::Facet => self
                .statements
                .facet(c, NERVOUS_SYSTEM as i32, female, TOP as i64)
                .map(drop),
            Workload::Pivot => self
                .statements
                .pivot(c, SEIZURE as i32, TOP as i64)
                .map(drop),
            Workload::CoOccurrence => self
                .statements
                .cooccurrence(c, SEIZURE as i32, TOP)
                .map(drop),
        }
    }
}

/// What one run of a workload measured.
#[derive(Debug, Clone)]
struct RunStats {
    samples: usize,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    per_second: f64,
}

/// The median of each figure over several runs.
fn median_stats(runs: &[RunStats]) -> Option<RunStats> {
    fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
        values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        values[(values.len() - 1) / 2]
    }
    if runs.is_empty() {
        return None;
    }
    Some(RunStats {
        samples: runs.iter().map(|r| r.samples).sum(),
        p50: median(runs.iter().map(|r| r.p50).collect()),
        p99: median(runs.iter().map(|r| r.p99).collect()),
        p999: median(runs.iter().map(|r| r.p999).collect()),
        per_second: median(runs.iter().map(|r| r.per_second).collect()),
    })
}

/// Runs `workload` with one driver per client (made by `connect` on the client's thread),
/// each making `requests` requests or stopping after `limit`; returns latencies and
/// throughput.
fn closed_loop<D: Driver>(
    clients: usize,
    requests: usize,
    limit: Duration,
    workload: Workload,
    seed: u64,
    connect: impl Fn() -> Result<D> + Sync,
) -> Result<RunStats> {
    let start = Barrier::new(clients);
    let results: Vec<Result<(Vec<Duration>, Instant, Instant)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|k| {
                let start = &start;
                let connect = &connect;
                scope.spawn(move || {
                    let driver = connect();
                    start.wait();
                    let mut driver = driver?;
                    let mut rng = SplitMix64::for_item(seed, k as u64);
                    let mut durations = Vec::with_capacity(requests);
                    let begun = Instant::now();
                    while durations.len() < requests && begun.elapsed() < limit {
                        let t = Instant::now();
                        // A mixed request is drawn here, so drivers see only single workloads.
                        let one = match workload {
                            Workload::Mixed => Workload::mixed(rng.below(10)),
                            w => w,
                        };
                        driver.call(one, &mut rng)?;
                        durations.push(t.elapsed());
                    }
                    Ok((durations, begun, Instant::now()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BenchError::Check("a client thread panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::new();
    let mut first = None::<Instant>;
    let mut last = None::<Instant>;
    for result in results {
        let (durations, begun, ended) = result?;
        all.extend(durations);
        first = Some(first.map_or(begun, |f| f.min(begun)));
        last = Some(last.map_or(ended, |l| l.max(ended)));
    }
    let wall = match (first, last) {
        (Some(f), Some(l)) => l - f,
        _ => Duration::ZERO,
    };
    let samples = Samples::new(all);
    let count = samples.len();
    Ok(RunStats {
        samples: count,
        p50: samples.p50(),
        p99: samples.p99(),
        p999: samples.percentile(99.9),
        per_second: count as f64 / wall.as_secs_f64().max(1e-9),
    })
}

/// One size of the suite.
struct SizeRun<'a> {
    args: &'a SuiteArgs,
    generator: &'a Generator,
    hpo: &'a Ontology,
    tools: Option<&'a PgTools>,
    server_bin: &'a Path,
    cases: u32,
    started: Instant,
}

/// A temporary directory, deleted when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn create(tag: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = crate::repo_root().join(format!(
            "target/casereg-bench/suite-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::io(format!("creating {}", path.display()), e))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The casereg side of one size, measured.
struct CaseregFigures {
    ingest: (u64, Duration),
    startup: Duration,
    bytes_per_case: f64,
    peak_rss_kib: Option<u64>,
}

/// The PostgreSQL side of one size.
struct PgFigures {
    load: PgLoad,
    bytes_per_case: f64,
    peak_rss_kib: Option<u64>,
    settings: String,
}

impl SizeRun<'_> {
    fn note(&self, message: impl AsRef<str>) {
        progress(self.started, message);
    }

    fn run(&self, report: &mut Markdown) -> Result<()> {
        let args = self.args;
        let dirs = TempDir::create(&self.cases.to_string())?;
        let data = dirs.0.join("single");
        std::fs::create_dir_all(&data)
            .map_err(|e| BenchError::io(format!("creating {}", data.display()), e))?;

        // W1 and the resources of casereg.
        self.note(format!(
            "{} cases: importing into casereg (W1)",
            grouped(self.cases)
        ));
        let (server, _) =
            ServerProcess::start(self.server_bin, &args.server_cpus, &data, CENTER, &[])?;
        let ingest = import(&server.url, self.generator, self.cases, |_| true)?;
        if ingest.0 != u64::from(self.cases) {
            return Err(BenchError::Check(format!(
                "created {} cases of {}",
                ingest.0, self.cases
            )));
        }
        self.note(format!(
            "imported in {:.1} s; restarting to time start-up",
            ingest.1.as_secs_f64()
        ));
        server.stop()?;
        let bytes = dir_bytes(&data);
        let (server, startup) =
            ServerProcess::start(self.server_bin, &args.server_cpus, &data, CENTER, &[])?;
        self.note(format!("serving again after {} ms", startup.as_millis()));

        // PostgreSQL, loaded and checked.
        let cluster = match self.tools {
            Some(tools) => Some(self.load_postgres(tools)?),
            None => None,
        };
        let requests = Requests::new()?;
        let organ_systems: Vec<i32> = self
            .hpo
            .children(TermId(PHENOTYPIC_ABNORMALITY))
            .iter()
            .map(|t| t.0 as i32)
            .collect();
        let until = i32::try_from(days(1, AgeUnit::Years))
            .map_err(|_| BenchError::Input("one year in days".to_owned()))?;
        if let Some((cluster, _)) = &cluster {
            self.check_answers(&server.url, &requests, cluster, &organ_systems, until)?;
        }

        // W7: centers holding the cases split between them, and a coordinator.
        let network = if args.centers > 0 {
            Some(self.start_network(&dirs.0)?)
        } else {
            None
        };

        // The workloads.
        let workloads = [
            Workload::Floor,
            Workload::Get,
            Workload::Count,
            Workload::Facet,
            Workload::Pivot,
            Workload::CoOccurrence,
            Workload::Mixed,
            Workload::Network,
        ];
        let mut rows = Vec::new();
        let limit = Duration::from_secs(args.seconds);
        for workload in workloads {
            let url = match workload {
                Workload::Network => match &network {
                    Some(n) => n.coordinator.url.clone(),
                    None => continue,
                },
                _ => server.url.clone(),
            };
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for repeat in 0..args.repeats {
                self.note(format!("{} (run {})", workload.name(), repeat + 1));
                let seed = args.seed ^ ((repeat as u64) << 32);
                ours.push(closed_loop(
                    args.clients,
                    args.requests,
                    limit,
                    workload,
                    seed,
                    || CaseregDriver::connect(&url, requests.clone(), self.cases),
                )?);
                let peer_has_it = !matches!(workload, Workload::Floor | Workload::Network);
                if let (Some((cluster, _)), true) = (&cluster, peer_has_it) {
                    theirs.push(closed_loop(
                        args.clients,
                        args.requests,
                        limit,
                        workload,
                        seed,
                        || {
                            let mut client = cluster.connect()?;
                            let statements = Statements::prepare(&mut client, &organ_systems)?;
                            Ok(PgDriver {
                                client,
                                statements,
                                cases: self.cases,
                                until,
                            })
                        },
                    )?);
                }
            }
            rows.push((workload, median_stats(&ours), median_stats(&theirs)));
        }
        let casereg = CaseregFigures {
            ingest,
            startup,
            bytes_per_case: bytes as f64 / f64::from(self.cases),
            peak_rss_kib: server.peak_rss_kib(),
        };
        let network_note = match network {
            Some(n) => {
                let note = n.describe();
                n.stop()?;
                Some(note)
            }
            None => None,
        };
        server.stop()?;
        let pg = match cluster {
            Some((cluster, load)) => {
                let figures = PgFigures {
                    bytes_per_case: cluster.database_bytes()? as f64 / f64::from(self.cases),
                    peak_rss_kib: cluster.peak_rss_kib(),
                    settings: cluster.settings(),
                    load,
                };
                drop(cluster);
                Some(figures)
            }
            None => None,
        };
        self.render(report, &rows, &casereg, pg.as_ref(), network_note);
        Ok(())
    }

    /// Starts a PostgreSQL cluster, loads the cases (rows made on the fly, streamed to COPY)
    /// and returns it with the load's timings.
    fn load_postgres(&self, tools: &PgTools) -> Result<(Cluster, PgLoad)> {
        self.note("starting PostgreSQL and loading the same cases with COPY");
        // Under the system's temporary directory: when run as root, PostgreSQL runs as its
        // own account, which must be able to reach the cluster's directory; a checkout may
        // sit under a directory only its owner can enter.
        let cluster = Cluster::start(tools, &std::env::temp_dir(), Some(&self.args.server_cpus))?;
        let mut rows = (0..u64::from(self.cases)).map(|i| {
            let record = self.generator.case(i);
            let json = json_of(&record)?;
            Ok(PgRow::of(&record, json, self.hpo))
        });
        let load = cluster.load(&mut rows)?;
        self.note(format!(
            "PostgreSQL loaded: COPY {:.1} s, indexes {:.1} s",
            load.copy.as_secs_f64(),
            load.index.as_secs_f64()
        ));
        Ok((cluster, load))
    }

    /// PostgreSQL's answers to W3, W4 and W5 must be the registry's.
    fn check_answers(
        &self,
        url: &str,
        requests: &Requests,
        cluster: &Cluster,
        organ_systems: &[i32],
        until: i32,
    ) -> Result<()> {
        let runtime = current_thread()?;
        let (count, facet, pivot, co) = runtime.block_on(async {
            let mut client = Client::connect(url, &ConnectOptions::default())
                .await
                .map_err(|e| BenchError::registry("connecting", e))?;
            let count = client
                .exact_count(Some(requests.count.clone()))
                .await
                .map_err(|e| BenchError::registry("count", e))?;
            let facet = client
                .aggregate(requests.facet.clone())
                .await
                .map_err(|e| BenchError::registry("facet", e))?;
            let pivot = client
                .aggregate(requests.pivot.clone())
                .await
                .map_err(|e| BenchError::registry("pivot", e))?;
            let co = client
                .cooccurrence(requests.cooccurrence.clone())
                .await
                .map_err(|e| BenchError::registry("co-occurrence", e))?;
            Ok::<_, BenchError>((count, facet, pivot, co))
        })?;
        let mut pg = cluster.connect()?;
        let statements = Statements::prepare(&mut pg, organ_systems)?;
        let female = pb::Sex::Female as i32;
        let differ = |what: &str, ours: String, theirs: String| {
            if ours == theirs {
                Ok(())
            } else {
                Err(BenchError::Check(format!(
                    "{what}: casereg answered {ours}, PostgreSQL {theirs}"
                )))
            }
        };
        let pg_count = statements.count(&mut pg, NERVOUS_SYSTEM as i32, female, until)?;
        differ("W3 count", count.to_string(), pg_count.to_string())?;
        let value = |c: Option<&pb::Count>| c.map_or(0, |c| c.value);
        let cells = |answer: &pb::AggregateResponse| -> Vec<String> {
            answer
                .cells
                .iter()
                .map(|cell| {
                    let keys: Vec<&str> = cell.keys.iter().map(|k| k.id.as_str()).collect();
                    format!("{}={}", keys.join("×"), value(cell.count.as_ref()))
                })
                .collect()
        };
        let (total, pg_facet) =
            statements.facet(&mut pg, NERVOUS_SYSTEM as i32, female, TOP as i64)?;
        differ(
            "W4 facet total",
            value(facet.total.as_ref()).to_string(),
            total.to_string(),
        )?;
        differ(
            "W4 facet cells",
            format!("{:?}", cells(&facet)),
            format!(
                "{:?}",
                pg_facet
                    .iter()
                    .map(|(id, n)| format!("{id}={n}"))
                    .collect::<Vec<_>>()
            ),
        )?;
        let pg_pivot = statements.pivot(&mut pg, SEIZURE as i32, TOP as i64)?;
        differ(
            "W4 pivot cells",
            format!("{:?}", cells(&pivot)),
            format!(
                "{:?}",
                pg_pivot
                    .iter()
                    .map(|(term, sex, n)| {
                        let sex = pb::Sex::try_from(*sex).map_or("?", |s| s.as_str_name());
                        format!("{}×{sex}={n}", TermId(*term as u32))
                    })
                    .collect::<Vec<_>>()
            ),
        )?;
        let pg_co = statements.cooccurrence(&mut pg, SEIZURE as i32, TOP)?;
        differ(
            "W5 co-occurring values",
            format!(
                "{:?}",
                co.values
                    .iter()
                    .map(|v| format!(
                        "{}={}/{}",
                        v.key.as_ref().map_or("", |k| k.id.as_str()),
                        value(v.cases.as_ref()),
                        value(v.registry_cases.as_ref())
                    ))
                    .collect::<Vec<_>>()
            ),
            format!(
                "{:?}",
                pg_co
                    .values
                    .iter()
                    .map(|(term, subset, registry, _)| format!(
                        "{}={subset}/{registry}",
                        TermId(*term as u32)
                    ))
                    .collect::<Vec<_>>()
            ),
        )?;
        self.note(format!(
            "PostgreSQL answers equal casereg's (W3 count {count}, W4 facet and pivot, W5 \
             co-occurrence over {} cases)",
            value(co.subset_cases.as_ref())
        ));
        Ok(())
    }

    /// Starts the centers of W7, imports each one's share, and a coordinator over them.
    fn start_network(&self, parent: &Path) -> Result<Network> {
        let args = self.args;
        let centers = args.centers;
        let mut servers = Vec::new();
        for k in 0..centers {
            let name = format!("c{}", k + 1);
            let dir = parent.join(&name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
            let (server, _) =
                ServerProcess::start(self.server_bin, &args.server_cpus, &dir, &name, &[])?;
            self.note(format!(
                "W7: importing the cases i with i mod {centers} = {k} into {name}"
            ));
            import(&server.url, self.generator, self.cases, |i| {
                i % u64::from(centers) == u64::from(k)
            })?;
            servers.push((name, server));
        }
        let mut flags = vec!["--peer-timeout".to_owned(), "60s".to_owned()];
        for (name, server) in &servers {
            flags.push("--peer".to_owned());
            flags.push(format!("{name}={}", server.url));
        }
        let dir = parent.join("coordinator");
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
        let (coordinator, _) = ServerProcess::start(
            self.server_bin,
            &args.server_cpus,
            &dir,
            "coordinator",
            &flags,
        )?;
        Ok(Network {
            centers: servers,
            coordinator,
        })
    }

    fn render(
        &self,
        report: &mut Markdown,
        rows: &[(Workload, Option<RunStats>, Option<RunStats>)],
        casereg: &CaseregFigures,
        pg: Option<&PgFigures>,
        network: Option<String>,
    ) {
        let ms = |d: Duration| num(millis(d));
        report.line(format!("## {} cases", grouped(self.cases)));
        report.blank();
        let header = [
            "workload",
            "casereg p50",
            "p99",
            "p99.9",
            "req/s",
            "PostgreSQL p50",
            "p99",
            "p99.9",
            "req/s",
            "PostgreSQL p50 / casereg p50",
        ];
        let right = [false, true, true, true, true, true, true, true, true, true];
        let cells = |s: &Option<RunStats>| -> Vec<String> {
            match s {
                Some(s) => vec![
                    ms(s.p50),
                    ms(s.p99),
                    ms(s.p999),
                    grouped(s.per_second.round() as u64),
                ],
                None => vec!["—".to_owned(); 4],
            }
        };
        let mut table = Vec::new();
        let per_second = |s: Duration, n: u64| n as f64 / s.as_secs_f64().max(1e-9);
        let ours_ingest = per_second(casereg.ingest.1, casereg.ingest.0);
        let mut w1 = vec![
            "W1 durable bulk ingest (cases/s: ImportCases over gRPC; COPY + indexes)".to_owned(),
            "—".to_owned(),
            "—".to_owned(),
            "—".to_owned(),
            grouped(ours_ingest.round() as u64),
        ];
        match pg {
            Some(pg) => {
                let theirs = per_second(pg.load.copy + pg.load.index, pg.load.rows);
                w1.extend([
                    "—".to_owned(),
                    "—".to_owned(),
                    "—".to_owned(),
                    grouped(theirs.round() as u64),
                    format!(
                        "{} (throughput, casereg / PostgreSQL)",
                        ratio(ours_ingest / theirs)
                    ),
                ]);
            }
            None => w1.extend(vec!["—".to_owned(); 5]),
        }
        table.push(w1);
        for (workload, ours, theirs) in rows {
            let mut row = vec![workload.name().to_owned()];
            row.extend(cells(ours));
            row.extend(cells(theirs));
            row.push(match (ours, theirs) {
                (Some(o), Some(t)) => ratio(t.p50.as_secs_f64() / o.p50.as_secs_f64().max(1e-12)),
                _ => "—".to_owned(),
            });
            table.push(row);
        }
        report.table(&header, &right, &table);
        report.blank();
        let kib = |k: Option<u64>| k.map_or_else(|| "—".to_owned(), |k| mib(k * 1024));
        report.table(
            &["resource", "casereg", "PostgreSQL"],
            &[false, true, true],
            &[
                vec![
                    "server peak RSS (MiB)".to_owned(),
                    kib(casereg.peak_rss_kib),
                    pg.map_or_else(|| "—".to_owned(), |p| kib(p.peak_rss_kib)),
                ],
                vec![
                    "bytes on disk per case".to_owned(),
                    grouped(casereg.bytes_per_case.round() as u64),
                    pg.map_or_else(
                        || "—".to_owned(),
                        |p| grouped(p.bytes_per_case.round() as u64),
                    ),
                ],
                vec![
                    "start-up to serving, data loaded (ms)".to_owned(),
                    grouped(casereg.startup.as_millis() as u64),
                    "—".to_owned(),
                ],
            ],
        );
        report.blank();
        let find = |w: Workload| {
            rows.iter()
                .find(|(x, _, _)| *x == w)
                .and_then(|(_, o, t)| o.clone().map(|o| (o, t.clone())))
        };
        report.line("Targets:");
        report.blank();
        let verdict = |ok: bool| if ok { "met" } else { "missed" };
        if let Some((o, t)) = find(Workload::Count) {
            let speedup = t
                .as_ref()
                .map(|t| t.p50.as_secs_f64() / o.p50.as_secs_f64());
            report.line(format!(
                "- W3 p50 ≤ 2 ms: {} ms, {}; ≥ 100× faster than PostgreSQL: {}",
                num(millis(o.p50)),
                verdict(o.p50 <= Duration::from_millis(2)),
                speedup.map_or_else(
                    || "no peer".to_owned(),
                    |s| format!("{}, {}", ratio(s), verdict(s >= 100.0))
                )
            ));
        }
        for w in [Workload::Facet, Workload::Pivot] {
            if let Some((o, t)) = find(w) {
                let speedup = t
                    .as_ref()
                    .map(|t| t.p50.as_secs_f64() / o.p50.as_secs_f64());
                report.line(format!(
                    "- {} p50 ≤ 10 ms: {} ms, {}; ≥ 50×: {}",
                    if w == Workload::Facet {
                        "W4 facet"
                    } else {
                        "W4 pivot"
                    },
                    num(millis(o.p50)),
                    verdict(o.p50 <= Duration::from_millis(10)),
                    speedup.map_or_else(
                        || "no peer".to_owned(),
                        |s| format!("{}, {}", ratio(s), verdict(s >= 50.0))
                    )
                ));
            }
        }
        if let (Some((get, _)), Some((floor, _))) = (find(Workload::Get), find(Workload::Floor)) {
            let share = get.per_second / floor.per_second;
            report.line(format!(
                "- W2 throughput ≥ 60% of W0 at {} clients: {:.0}%, {}",
                self.args.clients,
                share * 100.0,
                verdict(share >= 0.6)
            ));
        }
        report.line(format!(
            "- W1 ≥ 20,000 cases/s durable: {}, {}",
            grouped(ours_ingest.round() as u64),
            verdict(ours_ingest >= 20_000.0)
        ));
        let rss_ok = casereg.peak_rss_kib.is_some_and(|k| k <= 2 * 1024 * 1024);
        report.line(format!(
            "- server RSS ≤ 2 GiB: {} MiB, {}; start-up ≤ 5 s: {} ms, {}",
            kib(casereg.peak_rss_kib),
            verdict(rss_ok),
            grouped(casereg.startup.as_millis() as u64),
            verdict(casereg.startup <= Duration::from_secs(5))
        ));
        if let (Some((net, _)), Some((facet, _))) = (find(Workload::Network), find(Workload::Facet))
        {
            report.line(format!(
                "- W7 network facet p50 within 2× of the single-center facet: {}, {}",
                ratio(net.p50.as_secs_f64() / facet.p50.as_secs_f64()),
                verdict(net.p50.as_secs_f64() <= 2.0 * facet.p50.as_secs_f64())
            ));
        }
        report.blank();
        report.line(format!(
            "casereg ingest: {} cases created in {:.1} s. Start-up: the server stopped cleanly \
             (index snapshot saved) and started again on the same data directory.",
            grouped(casereg.ingest.0),
            casereg.ingest.1.as_secs_f64()
        ));
        if let Some(note) = network {
            report.line(note);
        }
        if let Some(pg) = pg {
            report.line(format!(
                "PostgreSQL load: COPY {:.1} s (including making the rows in this process), \
                 indexes, VACUUM ANALYZE and CHECKPOINT {:.1} s; settings: {}. Its peak RSS \
                 adds each process's own peak (shared buffers count once per process that \
                 touched them), so it overstates.",
                pg.load.copy.as_secs_f64(),
                pg.load.index.as_secs_f64(),
                pg.settings
            ));
        }
        report.blank();
    }
}

/// The servers of W7.
struct Network {
    centers: Vec<(String, ServerProcess)>,
    coordinator: ServerProcess,
}

impl Network {
    fn describe(&self) -> String {
        let peak: u64 = self
            .centers
            .iter()
            .map(|(_, s)| s.peak_rss_kib().unwrap_or(0))
            .sum::<u64>()
            + self.coordinator.peak_rss_kib().unwrap_or(0);
        format!(
            "W7: {} centers (case i in center i mod {}) and a coordinator with a peer per \
             center, each its own `casereg-server` process on the server CPUs; their peak RSS \
             together {} MiB.",
            self.centers.len(),
            self.centers.len(),
            grouped(peak / 1024)
        )
    }

    fn stop(self) -> Result<()> {
        self.coordinator.stop()?;
        for (_, server) in self.centers {
            server.stop()?;
        }
        Ok(())
    }
}
