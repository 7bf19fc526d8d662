//! `casereg-bench network`: one facet asked of a network of centers, against the same facet
//! asked of one center holding all their cases.
//!
//! 1. The synthetic cases of `casereg-bench search` (same generator and seed) are generated
//!    once and written through the record checks and [`Store::import_batch`] twice: case `i`
//!    into center `c(i mod C + 1)`'s data directory, and every case into the data directory
//!    of center `single`.
//! 2. All of them are served in this process on `127.0.0.1:0` (one multi-thread runtime for
//!    every server), with a coordinator that holds no cases and has each center as a
//!    `--peer`. No principals: every caller is the local administrator, so counts are exact.
//! 3. One client (its own current-thread runtime) times, in interleaved rounds after a
//!    warm-up: the coordinator's health check (the floor), the facet of the search report
//!    via `Aggregate` on `single`, the same facet via `NetworkAggregate` on the coordinator
//!    (every center asked for its full distribution, merged, cut to top N), and via
//!    `NetworkAggregate` on `single`, which has no peers (the network path's own cost:
//!    full distribution, merge, cut). Every answer is checked against `single`'s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casereg_client::{Client, ConnectOptions};
use casereg_core::audit::Actor;
use casereg_core::case::{CaseDraft, UnixMicros};
use casereg_core::ids::CenterId;
use casereg_core::limits::{IMPORT_BATCH_RECORDS, MAX_TOP_N};
use casereg_core::ontology::Ontology;
use casereg_core::store::{ChangedPolicy, ImportResult, Store};
use casereg_proto::v1 as pb;
use casereg_server::wire::convert;
use casereg_server::{Config, Registry};
use clap::Parser as _;
use tokio::net::TcpListener;

use crate::error::{BenchError, Result};
use crate::machine::{self, Machine};
use crate::report::{Markdown, grouped, mib, num, ratio};
use crate::rng::SplitMix64;
use crate::search::{AggregateCall, aggregate_calls, default_corpus, dir_size, progress, rss_note};
use crate::synth::{Generator, read_corpus};
use crate::timing::{Repeat, Samples, micros, millis};

/// Most centers a run may have: the coordinator asks at most this many peers at once
/// (`casereg_core::limits::MAX_CONCURRENT_PEERS`); more would queue, which is another
/// measurement.
pub const MAX_CENTERS: u32 = casereg_core::limits::MAX_CONCURRENT_PEERS as u32;

/// The center holding every case.
const SINGLE: &str = "single";

/// The center that holds no cases and asks the others.
const COORDINATOR: &str = "coordinator";

/// The coordinator's `--peer-timeout`: generous, so that a slow center is measured rather
/// than dropped (a dropped center fails the run: its answer is marked partial).
const PEER_TIMEOUT: &str = "30s";

/// The client's deadline for a network call (the coordinator waits for its peers until this,
/// less its answer margin, or the peer timeout, whichever comes first).
const NETWORK_DEADLINE: Duration = Duration::from_secs(60);

/// How long a stopping server lets in-flight calls finish (none are left by then).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The facet timed, as `casereg-bench search` names it (its request is taken from there).
const FACET: &str = "facet: diseases of `phenotype:HP:0000707 and sex:female` (top 20)";

/// Arguments of `casereg-bench network`.
#[derive(Debug, Clone, clap::Args)]
pub struct NetworkArgs {
    /// Gzipped JSON Lines phenopackets the synthetic cases are drawn from [default: as for
    /// `search`].
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,

    /// Number of synthetic cases (all of them in `single`, split over the centers).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub cases: u32,

    /// Number of centers the cases are split over (case i goes to center i mod C), at most
    /// 16.
    #[arg(long, value_name = "C", default_value_t = 5)]
    pub centers: u32,

    /// Seed of the case generator (as for `search`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Timed rounds (each round makes every call once).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,

    /// Untimed warm-up rounds.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,

    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A data directory of the run and the center that owns its cases.
struct Site {
    center: CenterId,
    dir: PathBuf,
    /// Cases written into it.
    cases: u64,
    /// Its size on disk after writing, in bytes.
    bytes: u64,
}

/// The two temporary directories of a run: the centers' (and the coordinator's) and the
/// single center's. Both are deleted when the run ends, whatever happened.
struct RunDirs {
    centers: PathBuf,
    single: PathBuf,
}

impl RunDirs {
    fn create() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let root = crate::repo_root().join("target/casereg-bench");
        let tag = format!("{}-{nanos}", std::process::id());
        let dirs = Self {
            centers: root.join(format!("network-centers-{tag}")),
            single: root.join(format!("network-single-{tag}")),
        };
        for dir in [&dirs.centers, &dirs.single] {
            if dir.exists() {
                return Err(BenchError::Input(format!(
                    "{} exists already",
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
        }
        Ok(dirs)
    }

    fn remove(&self, started: Instant) -> Result<()> {
        for dir in [&self.centers, &self.single] {
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .map_err(|e| BenchError::io(format!("deleting {}", dir.display()), e))?;
                progress(started, format!("deleted {}", dir.display()));
            }
        }
        Ok(())
    }
}

/// What writing the cases gave.
struct Written {
    /// The centers, in order (`c1`, `c2`, ...).
    centers: Vec<Site>,
    single: Site,
    /// Wall time of generating, checking and writing everything.
    took: Duration,
    /// Encoded record bytes of all cases (each written twice).
    record_bytes: u64,
}

/// One timed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Health check on the coordinator.
    Health,
    /// `Aggregate` on `single`.
    Single,
    /// `NetworkAggregate` on the coordinator.
    Network,
    /// `NetworkAggregate` on `single` (no peers).
    LocalNetwork,
}

/// The calls of a round (each round shuffles their order).
const CALLS: [Call; 4] = [
    Call::Health,
    Call::Single,
    Call::Network,
    Call::LocalNetwork,
];

impl Call {
    fn what(self) -> &'static str {
        match self {
            Self::Health => "health check (floor)",
            Self::Single => "`Aggregate`",
            Self::Network => "`NetworkAggregate`",
            Self::LocalNetwork => "`NetworkAggregate`, no peers",
        }
    }

    fn server(self) -> &'static str {
        match self {
            Self::Health | Self::Network => COORDINATOR,
            Self::Single | Self::LocalNetwork => SINGLE,
        }
    }
}

/// One center's full distribution of the facet.
struct Distribution {
    /// Cells returned (at most [`MAX_TOP_N`]).
    cells: usize,
    /// Matching cases (the answer's total).
    matching: u64,
}

/// What the servers and the client measured.
struct Measured {
    /// Per call of [`CALLS`]: its timings and the cells of its last answer.
    timings: Vec<(Call, Samples, usize)>,
    /// Start-up of each registry (`open_registry`, index rebuilt from the store), in the
    /// order centers, single.
    startups: Vec<Duration>,
    /// Each center's full distribution, then `single`'s.
    distributions: Vec<Distribution>,
    /// Whether the network's top N listed the same cells as `single`'s, not only cells
    /// with the same counts (ties at the cut may be broken differently).
    same_cells: bool,
}

/// Runs the network benchmark and returns its markdown report (also written to `--out`).
pub fn run(args: &NetworkArgs) -> Result<String> {
    let started = Instant::now();
    if args.cases == 0 || args.runs == 0 {
        return Err(BenchError::Input(
            "--cases and --runs must be at least 1".to_owned(),
        ));
    }
    if args.centers == 0 || args.centers > MAX_CENTERS {
        return Err(BenchError::Input(format!(
            "--centers is {}; give 1 to {MAX_CENTERS}",
            args.centers
        )));
    }
    let argv: Vec<String> = std::env::args().collect();
    let date = machine::utc_now();
    let machine = Machine::describe();
    progress(
        started,
        format!(
            "CPUs allowed (Cpus_allowed_list): {}; {} available",
            machine.cpus_allowed, machine.nproc
        ),
    );
    let facet = facet_request()?;

    let path = default_corpus(args.corpus.as_deref());
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    progress(started, format!("reading corpus {}", path.display()));
    let records = read_corpus(&path)?;
    let record_count = records.len();
    let generator = Generator::new(records, args.seed)?;
    let hpo = Arc::new(
        Ontology::embedded().map_err(|e| BenchError::registry("loading the embedded HPO", e))?,
    );

    let dirs = RunDirs::create()?;
    let result = (|| {
        let written = write_all(&generator, &hpo, args, &dirs, started)?;
        let measured = serve_and_measure(args, &facet, &written, started)?;
        Ok::<_, BenchError>((written, measured))
    })();
    // The run's own error, if any, says more than a failure to delete.
    let removed = dirs.remove(started);
    let (written, measured) = result?;
    removed?;

    let report = render(&Report {
        args,
        argv: &argv,
        date: &date,
        machine: &machine,
        corpus: &path,
        templates: record_count,
        hpo: &hpo,
        written: &written,
        measured: &measured,
    });
    if let Some(out) = &args.out {
        std::fs::write(out, &report)
            .map_err(|e| BenchError::io(format!("writing {}", out.display()), e))?;
    }
    progress(started, "done");
    Ok(report)
}

/// The facet's request, as `casereg-bench search` times it.
fn facet_request() -> Result<pb::AggregateRequest> {
    aggregate_calls()?
        .into_iter()
        .find_map(|(what, call)| match call {
            AggregateCall::Aggregate(request) if what == FACET => Some(request),
            AggregateCall::Aggregate(_) | AggregateCall::CoOccurrence(_) => None,
        })
        .ok_or_else(|| BenchError::Input(format!("`search` no longer has the call {FACET}")))
}

/// The name of center `k` (0-based): `c1`, `c2`, ...
fn center_name(k: usize) -> String {
    format!("c{}", k + 1)
}

/// Generates the cases once and writes them into every center's store and into `single`'s.
fn write_all(
    generator: &Generator,
    hpo: &Arc<Ontology>,
    args: &NetworkArgs,
    dirs: &RunDirs,
    started: Instant,
) -> Result<Written> {
    let parse = |name: &str| CenterId::parse(name).map_err(|e| BenchError::Input(e.0));
    let mut centers = (0..args.centers as usize)
        .map(|k| {
            let name = center_name(k);
            Ok(Site {
                center: parse(&name)?,
                dir: dirs.centers.join(&name),
                cases: 0,
                bytes: 0,
            })
        })
        .collect::<Result<Vec<Site>>>()?;
    let mut single = Site {
        center: parse(SINGLE)?,
        dir: dirs.single.join(SINGLE),
        cases: 0,
        bytes: 0,
    };
    progress(
        started,
        format!(
            "writing {} cases into {} centers under {} and into `{SINGLE}` under {}",
            grouped(args.cases),
            args.centers,
            dirs.centers.display(),
            dirs.single.display()
        ),
    );
    let write_started = Instant::now();
    let stores = centers
        .iter()
        .chain(std::iter::once(&single))
        .map(|site| {
            Store::open(&site.dir, Arc::clone(hpo))
                .map_err(|e| BenchError::registry(&format!("opening {}", site.dir.display()), e))
        })
        .collect::<Result<Vec<Store>>>()?;
    let sites: Vec<&CenterId> = centers
        .iter()
        .chain(std::iter::once(&single))
        .map(|s| &s.center)
        .collect();
    let counts = write_split(&stores, &sites, generator, hpo, args.cases, started)?;
    for store in &stores {
        store
            .flush()
            .map_err(|e| BenchError::registry("flushing a store", e))?;
    }
    drop(stores);
    let took = write_started.elapsed();

    let mut record_bytes = 0;
    for (site, (cases, bytes)) in centers
        .iter_mut()
        .chain(std::iter::once(&mut single))
        .zip(counts)
    {
        site.cases = cases;
        site.bytes = dir_size(&site.dir)?;
        record_bytes += bytes;
    }
    progress(
        started,
        format!(
            "written in {:.1} s; {SINGLE} {} MiB, the centers {} MiB together",
            took.as_secs_f64(),
            mib(single.bytes),
            mib(centers.iter().map(|s| s.bytes).sum())
        ),
    );
    Ok(Written {
        centers,
        single,
        took,
        record_bytes,
    })
}

/// Writes the cases: one thread generates and checks them in chunks of
/// `IMPORT_BATCH_RECORDS` per center, and each store has a thread of its own committing
/// durable batches of up to `IMPORT_BATCH_RECORDS`. `stores` and `centers` are the centers
/// in order, then the single center (last), which gets every case. Returns the cases and
/// encoded record bytes written into each store.
fn write_split(
    stores: &[Store],
    centers: &[&CenterId],
    generator: &Generator,
    hpo: &Ontology,
    cases: u32,
    started: Instant,
) -> Result<Vec<(u64, u64)>> {
    // The last store is the single center's; the others split the cases between them.
    let split = centers.len().saturating_sub(1);
    if split == 0 || stores.len() != centers.len() {
        return Err(BenchError::Input(format!(
            "{} stores for {} centers: give one per center, the single center last",
            stores.len(),
            centers.len()
        )));
    }
    let chunk = u32::try_from(IMPORT_BATCH_RECORDS.saturating_mul(split))
        .map_err(|_| BenchError::Input("too many centers".to_owned()))?;
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(stores.len());
        let mut committers = Vec::with_capacity(stores.len());
        for (k, (store, center)) in stores.iter().zip(centers).enumerate() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<CaseDraft>>(2);
            senders.push(tx);
            // The single center gets every case: its progress is the run's.
            let report = (k == split).then_some((u64::from(cases), started));
            committers.push(scope.spawn(move || commit(store, center, &rx, report)));
        }
        let generated = scope.spawn(move || -> Result<()> {
            for start in (0..cases).step_by(chunk as usize) {
                let end = start.saturating_add(chunk).min(cases);
                let mut parts: Vec<Vec<CaseDraft>> = vec![Vec::new(); split];
                let mut all = Vec::with_capacity((end - start) as usize);
                for i in start..end {
                    let record = generator.case(u64::from(i));
                    let (draft, _warnings) =
                        convert::phenopacket_to_draft(Some(&record), "phenopacket", hpo, false)
                            .map_err(|e| {
                                BenchError::Check(format!(
                                    "synthetic-{i} fails the record checks: {e}"
                                ))
                            })?;
                    parts[i as usize % split].push(draft.clone());
                    all.push(draft);
                }
                for (tx, drafts) in senders.iter().zip(parts.into_iter().chain([all])) {
                    // A committer that stopped reports its own error.
                    if tx.send(drafts).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        let generated = generated
            .join()
            .map_err(|_| BenchError::Input("the generator thread panicked".to_owned()))?;
        let committed = committers
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| BenchError::Input("a committer thread panicked".to_owned()))?
            })
            .collect::<Result<Vec<(u64, u64)>>>()?;
        generated?;
        for (k, (center, (written, _))) in centers.iter().zip(&committed).enumerate() {
            let (cases, split, k) = (u64::from(cases), split as u64, k as u64);
            let expected = if k == split {
                cases
            } else {
                cases / split + u64::from(k < cases % split)
            };
            if *written != expected {
                return Err(BenchError::Check(format!(
                    "wrote {written} cases into {center}, expected {expected}"
                )));
            }
        }
        Ok(committed)
    })
}

/// Commits the drafts `rx` brings into `store` for `center`, in durable batches of up to
/// `IMPORT_BATCH_RECORDS`; every one must create a case. With `report` (the total to
/// expect and the run's start), prints progress every tenth. Returns cases and encoded
/// record bytes written.
fn commit(
    store: &Store,
    center: &CenterId,
    rx: &std::sync::mpsc::Receiver<Vec<CaseDraft>>,
    report: Option<(u64, Instant)>,
) -> Result<(u64, u64)> {
    let actor = Actor {
        principal: "casereg-bench".to_owned(),
        center: center.clone(),
        any_center: false,
    };
    let (mut written, mut bytes) = (0_u64, 0_u64);
    for drafts in rx {
        for batch in drafts.chunks(IMPORT_BATCH_RECORDS) {
            bytes += batch.iter().map(|d| d.record.len() as u64).sum::<u64>();
            let results = store
                .import_batch(&actor, batch, ChangedPolicy::Reject, UnixMicros::now())
                .map_err(|e| BenchError::registry(&format!("import batch into {center}"), e))?;
            if let Some(other) = results
                .iter()
                .find(|r| !matches!(r, ImportResult::Created { .. }))
            {
                return Err(BenchError::Check(format!(
                    "a fresh data directory should create every case, got {other:?}"
                )));
            }
            let before = written;
            written += batch.len() as u64;
            if let Some((total, started)) = report {
                let step = (total / 10).max(1);
                if written / step != before / step {
                    progress(
                        started,
                        format!(
                            "written {} / {} (each into `{center}` and its center){}",
                            grouped(written),
                            grouped(total),
                            rss_note()
                        ),
                    );
                }
            }
        }
    }
    Ok((written, bytes))
}

/// The servers of a run, all on one runtime, stopped together.
struct Servers {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    running: Vec<tokio::task::JoinHandle<std::result::Result<(), casereg_server::ServerError>>>,
    /// Kept until the servers have stopped, then dropped before the runtime.
    registries: Vec<Arc<Registry>>,
}

impl Servers {
    fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("casereg-server")
            .build()
            .map_err(|e| BenchError::io("starting the server runtime", e))?;
        Ok(Self {
            runtime,
            stop: tokio::sync::watch::channel(false).0,
            running: Vec::new(),
            registries: Vec::new(),
        })
    }

    /// Opens the registry `flags` describe (after `casereg-server`), checks it holds
    /// `cases` active cases, and serves it on `127.0.0.1:0`. Returns its address and how
    /// long opening took.
    fn start(&mut self, flags: &[String], cases: u64) -> Result<(SocketAddr, Duration)> {
        let config = Config::try_parse_from(
            ["casereg-server", "--listen", "127.0.0.1:0"]
                .into_iter()
                .map(str::to_owned)
                .chain(flags.iter().cloned()),
        )
        .map_err(|e| BenchError::Input(format!("server configuration: {e}")))?;
        let opened = Instant::now();
        // Peers' channels are created here; their tasks run on the server runtime.
        let registry = {
            let _runtime = self.runtime.enter();
            casereg_server::open_registry(&config)
                .map_err(|e| BenchError::registry(&format!("opening {}", config.center), e))?
        };
        let startup = opened.elapsed();
        let active = registry
            .store
            .counts()
            .map_err(|e| BenchError::registry("reading counts", e))?
            .active;
        if active != cases {
            return Err(BenchError::Check(format!(
                "{} holds {active} active cases, not {cases}",
                config.center
            )));
        }
        let listener = self
            .runtime
            .block_on(TcpListener::bind(config.listen))
            .map_err(|e| BenchError::io("binding 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::io("reading the listen address", e))?;
        let registry = Arc::new(registry);
        let mut stop = self.stop.subscribe();
        self.running.push(self.runtime.spawn(casereg_server::serve(
            Arc::clone(&registry),
            listener,
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            },
            casereg_server::ServeOptions {
                grace: SHUTDOWN_GRACE,
                tls: None,
            },
        )));
        self.registries.push(registry);
        Ok((addr, startup))
    }

    /// Stops every server and waits for each to flush and close its store.
    fn stop(self) -> Result<()> {
        let Self {
            runtime,
            stop,
            running,
            registries,
        } = self;
        let _ = stop.send(true);
        let mut first_error = None;
        for handle in running {
            let result = match runtime.block_on(handle) {
                Ok(served) => served.map_err(|e| BenchError::registry("server", e)),
                Err(e) => Err(BenchError::registry("server task", e)),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        drop(registries);
        runtime.shutdown_timeout(Duration::from_secs(5));
        first_error.map_or(Ok(()), Err)
    }
}

/// Starts the centers, the coordinator and `single`, measures, and stops them all (whatever
/// happened).
fn serve_and_measure(
    args: &NetworkArgs,
    facet: &pb::AggregateRequest,
    written: &Written,
    started: Instant,
) -> Result<Measured> {
    let mut servers = Servers::new()?;
    let result = measure_on(&mut servers, args, facet, written, started);
    let stopped = servers.stop();
    let measured = result?;
    stopped?;
    Ok(measured)
}

fn site_flags(site: &Site) -> Vec<String> {
    vec![
        "--data-dir".to_owned(),
        site.dir.display().to_string(),
        "--center".to_owned(),
        site.center.to_string(),
    ]
}

fn measure_on(
    servers: &mut Servers,
    args: &NetworkArgs,
    facet: &pb::AggregateRequest,
    written: &Written,
    started: Instant,
) -> Result<Measured> {
    let mut startups = Vec::new();
    let mut peers = Vec::new();
    let mut center_addrs = Vec::new();
    for site in &written.centers {
        let (addr, startup) = servers.start(&site_flags(site), site.cases)?;
        progress(
            started,
            format!(
                "{} serving on {addr} ({} cases; opened in {:.0} ms)",
                site.center,
                grouped(site.cases),
                millis(startup)
            ),
        );
        startups.push(startup);
        peers.extend([
            "--peer".to_owned(),
            format!("{}=http://{addr}", site.center),
        ]);
        center_addrs.push(addr);
    }
    let coordinator_dir = written
        .centers
        .first()
        .and_then(|s| s.dir.parent())
        .map_or_else(|| PathBuf::from(COORDINATOR), |p| p.join(COORDINATOR));
    let mut flags = vec![
        "--data-dir".to_owned(),
        coordinator_dir.display().to_string(),
        "--center".to_owned(),
        COORDINATOR.to_owned(),
        "--peer-timeout".to_owned(),
        PEER_TIMEOUT.to_owned(),
    ];
    flags.extend(peers);
    let (coordinator_addr, _) = servers.start(&flags, 0)?;
    progress(
        started,
        format!(
            "{COORDINATOR} serving on {coordinator_addr} with {} peers",
            written.centers.len()
        ),
    );
    let (single_addr, startup) =
        servers.start(&site_flags(&written.single), written.single.cases)?;
    startups.push(startup);
    progress(
        started,
        format!(
            "{SINGLE} serving on {single_addr} ({} cases; opened in {:.0} ms)",
            grouped(written.single.cases),
            millis(startup)
        ),
    );

    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting the client runtime", e))?;
    let measured = client_runtime.block_on(async {
        let connect = |addr: SocketAddr| async move {
            Client::connect(&format!("http://{addr}"), &ConnectOptions::default())
                .await
                .map_err(|e| BenchError::registry(&format!("connecting to {addr}"), e))
        };
        let mut clients = Clients {
            coordinator: connect(coordinator_addr).await?,
            single: connect(single_addr).await?,
        };

        // The reference: every center's full distribution, and single's (exact: the caller
        // is the local administrator).
        let full = pb::AggregateRequest {
            top_n: MAX_TOP_N,
            min_count: 0,
            ..facet.clone()
        };
        let mut distributions = Vec::new();
        let mut center_sums: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for addr in &center_addrs {
            let answer = connect(*addr)
                .await?
                .aggregate(full.clone())
                .await
                .map_err(|e| BenchError::registry("aggregate on a center", e))?;
            for (ids, count) in exact_cells(&answer)? {
                *center_sums.entry(ids).or_default() += count;
            }
            distributions.push(distribution(&answer)?);
        }
        let single_full = clients
            .single
            .aggregate(full)
            .await
            .map_err(|e| BenchError::registry("aggregate on single", e))?;
        let reference: BTreeMap<Vec<String>, u64> =
            exact_cells(&single_full)?.into_iter().collect();
        distributions.push(distribution(&single_full)?);
        // Untruncated distributions must add up: the split lost or doubled no case.
        if distributions.iter().all(|d| d.cells < MAX_TOP_N as usize) && center_sums != reference {
            return Err(BenchError::Check(format!(
                "the centers' full distributions do not add up to {SINGLE}'s"
            )));
        }
        for (site, d) in written
            .centers
            .iter()
            .chain(std::iter::once(&written.single))
            .zip(&distributions)
        {
            progress(
                started,
                format!(
                    "{}: {} matching cases in {} cells",
                    site.center,
                    grouped(d.matching),
                    grouped(d.cells)
                ),
            );
        }
        let expected = clients
            .single
            .aggregate(facet.clone())
            .await
            .map_err(|e| BenchError::registry("aggregate on single", e))?;
        check_cells(&expected, &expected, &reference)?;

        let repeat = Repeat {
            warmup: args.warmup,
            runs: args.runs,
        };
        let mut durations = vec![Vec::with_capacity(repeat.runs); CALLS.len()];
        let mut cells = [0; CALLS.len()];
        let mut same_cells = true;
        // Each round makes the calls in its own order: a call made right after another on the
        // same server and data finds that data in the cache, so a fixed order would favour
        // whichever call follows its own server's.
        let mut rng = SplitMix64::new(args.seed);
        let mut order: Vec<usize> = (0..CALLS.len()).collect();
        for round in 0..repeat.warmup + repeat.runs {
            rng.shuffle(&mut order);
            for &k in &order {
                let what = CALLS[k];
                let call_started = Instant::now();
                let answer = clients.call(what, facet).await?;
                let took = call_started.elapsed();
                if round >= repeat.warmup {
                    durations[k].push(took);
                }
                if let Some(answer) = answer {
                    same_cells &= check_cells(&answer, &expected, &reference)
                        .map_err(|e| BenchError::Check(format!("{}: {e}", what.what())))?;
                    cells[k] = answer.cells.len();
                }
            }
        }
        let timings: Vec<(Call, Samples, usize)> = CALLS
            .into_iter()
            .zip(durations)
            .zip(cells)
            .map(|((call, durations), cells)| (call, Samples::new(durations), cells))
            .collect();
        for (call, samples, _) in &timings {
            progress(
                started,
                format!(
                    "{} on {}: p50 {} µs",
                    call.what(),
                    call.server(),
                    num(micros(samples.p50()))
                ),
            );
        }
        Ok::<_, BenchError>(Measured {
            timings,
            startups,
            distributions,
            same_cells,
        })
    });
    // Close the client's connections (their tasks live on this runtime), so that the servers
    // drain at once instead of waiting out their grace period.
    drop(client_runtime);
    measured
}

/// The client's connections.
struct Clients {
    coordinator: Client,
    single: Client,
}

impl Clients {
    /// Makes `call`; returns the aggregate it answered (none for the health check), with
    /// every network answer checked to be complete.
    async fn call(
        &mut self,
        call: Call,
        facet: &pb::AggregateRequest,
    ) -> Result<Option<pb::AggregateResponse>> {
        let network = || pb::NetworkAggregateRequest {
            request: Some(facet.clone()),
            route: None,
        };
        match call {
            Call::Health => {
                let status = self
                    .coordinator
                    .health()
                    .await
                    .map_err(|e| BenchError::registry("health check", e))?;
                // `ServingStatus` is tonic-health's; its name is enough to check it.
                if status.as_str_name() != "SERVING" {
                    return Err(BenchError::Registry(format!(
                        "the coordinator is not serving: {}",
                        status.as_str_name()
                    )));
                }
                Ok(None)
            }
            Call::Single => self
                .single
                .aggregate(facet.clone())
                .await
                .map(Some)
                .map_err(|e| BenchError::registry("aggregate", e)),
            Call::Network => complete(
                self.coordinator
                    .network_aggregate(network(), Some(NETWORK_DEADLINE))
                    .await
                    .map_err(|e| BenchError::registry("network aggregate", e))?,
            )
            .map(Some),
            Call::LocalNetwork => complete(
                self.single
                    .network_aggregate(network(), Some(NETWORK_DEADLINE))
                    .await
                    .map_err(|e| BenchError::registry("network aggregate on single", e))?,
            )
            .map(Some),
        }
    }
}

/// The merged answer of a network call in which every center answered.
fn complete(response: pb::NetworkAggregateResponse) -> Result<pb::AggregateResponse> {
    let pb::NetworkAggregateResponse {
        merged,
        partial,
        centers,
    } = response;
    let failed: Vec<String> = centers
        .iter()
        .filter(|c| c.status != pb::CenterStatus::Answered as i32)
        .map(|c| format!("{} ({}: {})", c.center, c.status, c.message))
        .collect();
    if partial || !failed.is_empty() {
        return Err(BenchError::Check(format!(
            "a partial network answer; not answered: {}",
            failed.join(", ")
        )));
    }
    merged.ok_or_else(|| BenchError::Check("a network answer without a result".to_owned()))
}

/// The exact count of a cell or total: every count of these runs must be exact (the caller
/// is the local administrator, and every center answered).
fn exact(count: Option<&pb::Count>, what: &str) -> Result<u64> {
    match count {
        Some(count) if count.precision == pb::Precision::Exact as i32 => Ok(count.value),
        Some(count) => Err(BenchError::Check(format!(
            "{what}: {} with precision {}, not exact",
            count.value, count.precision
        ))),
        None => Err(BenchError::Check(format!("{what}: no count"))),
    }
}

/// Each cell's key ids and exact count.
fn exact_cells(answer: &pb::AggregateResponse) -> Result<Vec<(Vec<String>, u64)>> {
    answer
        .cells
        .iter()
        .map(|cell| {
            let ids: Vec<String> = cell.keys.iter().map(|k| k.id.clone()).collect();
            let count = exact(cell.count.as_ref(), &format!("cell {ids:?}"))?;
            Ok((ids, count))
        })
        .collect()
}

fn distribution(answer: &pb::AggregateResponse) -> Result<Distribution> {
    Ok(Distribution {
        cells: answer.cells.len(),
        matching: exact(answer.total.as_ref(), "total")?,
    })
}

/// Checks `answer` against `expected` (single's top N), with `reference` (single's full
/// distribution) for the cells: the same total, the same counts in the same order, and each
/// cell's count equal to its count in `reference`. Cells tied at the cut may differ (the
/// core and the merge break ties by different key orders); returns whether the listed cells
/// were the same ones.
fn check_cells(
    answer: &pb::AggregateResponse,
    expected: &pb::AggregateResponse,
    reference: &BTreeMap<Vec<String>, u64>,
) -> Result<bool> {
    let (total, expected_total) = (
        exact(answer.total.as_ref(), "total")?,
        exact(expected.total.as_ref(), "total")?,
    );
    if total != expected_total {
        return Err(BenchError::Check(format!(
            "{total} matching cases, {SINGLE} has {expected_total}"
        )));
    }
    let cells = exact_cells(answer)?;
    let wanted = exact_cells(expected)?;
    let counts: Vec<u64> = cells.iter().map(|(_, c)| *c).collect();
    let wanted_counts: Vec<u64> = wanted.iter().map(|(_, c)| *c).collect();
    if counts != wanted_counts {
        return Err(BenchError::Check(format!(
            "cell counts {counts:?}, {SINGLE} has {wanted_counts:?}"
        )));
    }
    for (ids, count) in &cells {
        match reference.get(ids) {
            Some(true_count) if true_count == count => {}
            Some(true_count) => {
                return Err(BenchError::Check(format!(
                    "cell {ids:?}: {count} cases, {SINGLE} has {true_count}"
                )));
            }
            None => {
                return Err(BenchError::Check(format!(
                    "cell {ids:?} ({count} cases) is not in {SINGLE}'s distribution"
                )));
            }
        }
    }
    let mut ids: Vec<&Vec<String>> = cells.iter().map(|(ids, _)| ids).collect();
    let mut wanted_ids: Vec<&Vec<String>> = wanted.iter().map(|(ids, _)| ids).collect();
    ids.sort_unstable();
    wanted_ids.sort_unstable();
    Ok(ids == wanted_ids)
}

/// Everything the report is made of.
struct Report<'a> {
    args: &'a NetworkArgs,
    argv: &'a [String],
    date: &'a str,
    machine: &'a Machine,
    corpus: &'a Path,
    templates: usize,
    hpo: &'a Ontology,
    written: &'a Written,
    measured: &'a Measured,
}

/// The markdown report.
fn render(report: &Report<'_>) -> String {
    let Report {
        args,
        argv,
        date,
        machine,
        corpus,
        templates,
        hpo,
        written,
        measured,
    } = report;
    let c = written.centers.len();
    let mut md = Markdown::new();
    md.line(format!(
        "# casereg-bench network — {} cases over {c} centers",
        grouped(args.cases)
    ));
    md.blank();
    md.line("## Setup");
    md.blank();
    md.setup(
        date,
        machine,
        argv,
        " — every server and the client share these",
    );
    md.line(format!(
        "- HPO: release {} ({})",
        hpo.version(),
        hpo.source()
    ));
    md.line(format!(
        "- Synthetic cases: {} (seed {}) from {} ({} templates), generated as for \
         `casereg-bench search`, once, and written twice through the record checks and \
         `Store::import_batch` in durable batches of {IMPORT_BATCH_RECORDS}: case *i* into \
         center `c`(*i* mod {c} + 1), and every case into center `{SINGLE}`; {:.1} s in all \
         ({} encoded record bytes per case)",
        grouped(args.cases),
        args.seed,
        corpus.display(),
        grouped(*templates),
        written.took.as_secs_f64(),
        grouped(written.record_bytes / (2 * u64::from(args.cases)))
    ));
    md.line(format!(
        "- Servers, all in this process on 127.0.0.1:0, on one multi-thread tokio runtime (one \
         worker per available CPU): the {c} centers; `{COORDINATOR}`, holding no cases, with \
         `--peer cK=URL` for each center and `--peer-timeout {PEER_TIMEOUT}`; and `{SINGLE}`. \
         No principals: the client and the coordinator are the local administrator, so every \
         count is exact (k = 0). Data directories deleted afterwards."
    ));
    md.line(format!(
        "- Latency: {} timed rounds after {} warm-up rounds; each round makes each call once, \
         in an order shuffled for each round (seeded; a fixed order lets a call profit from \
         the cache of the call before it on the same server), from one `casereg_client::Client` per server on its own \
         current-thread runtime; p50 and p99 are nearest-rank percentiles, in µs",
        args.runs, args.warmup
    ));
    md.blank();

    md.line("## Centers");
    md.blank();
    md.line(format!(
        "*cells*: the full distribution of the facet (top {MAX_TOP_N}, what the coordinator \
         asks each center for), by `Aggregate` on each center. *start-up*: \
         `casereg_server::open_registry` (embedded HPO loaded, indexes rebuilt from the store)."
    ));
    md.blank();
    let rows: Vec<Vec<String>> = written
        .centers
        .iter()
        .chain(std::iter::once(&written.single))
        .zip(&measured.distributions)
        .zip(&measured.startups)
        .map(|((site, d), startup)| {
            vec![
                format!("`{}`", site.center),
                grouped(site.cases),
                mib(site.bytes),
                num(millis(*startup)),
                grouped(d.matching),
                grouped(d.cells),
            ]
        })
        .collect();
    md.table(
        &[
            "center",
            "cases",
            "data dir (MiB)",
            "start-up (ms)",
            "matching cases",
            "cells",
        ],
        &[false, true, true, true, true, true],
        &rows,
    );
    if measured
        .distributions
        .iter()
        .any(|d| d.cells >= MAX_TOP_N as usize)
    {
        md.line(format!(
            "A distribution reached the {MAX_TOP_N}-cell limit: the merge bounded the cells \
             it did not list (the top cells were still exact, as checked)."
        ));
        md.blank();
    }

    md.line(format!("## {FACET}"));
    md.blank();
    md.line(format!(
        "Every answer was checked against `{SINGLE}`'s `Aggregate`: every count exact, the same \
         total, the same counts in the same order, and each cell's count equal to its count \
         in `{SINGLE}`'s full distribution; {}. Every network answer was complete (every \
         center answered).",
        if measured.same_cells {
            "the network answers listed the same cells"
        } else {
            "the network answers broke some ties at the cut differently (cells with equal \
             counts)"
        }
    ));
    md.blank();
    let p50 = |call: Call| {
        measured
            .timings
            .iter()
            .find(|(c, _, _)| *c == call)
            .map_or(0.0, |(_, s, _)| s.p50().as_secs_f64())
    };
    let (floor, single) = (p50(Call::Health).max(1e-9), p50(Call::Single).max(1e-9));
    let rows: Vec<Vec<String>> = measured
        .timings
        .iter()
        .map(|(call, samples, cells)| {
            vec![
                call.what().to_owned(),
                format!("`{}`", call.server()),
                if *call == Call::Health {
                    "—".to_owned()
                } else {
                    grouped(cells)
                },
                num(micros(samples.p50())),
                num(micros(samples.p99())),
                ratio(samples.p50().as_secs_f64() / floor),
                if *call == Call::Health {
                    "—".to_owned()
                } else {
                    ratio(samples.p50().as_secs_f64() / single)
                },
            ]
        })
        .collect();
    md.table(
        &[
            "call",
            "server",
            "cells",
            "p50",
            "p99",
            "p50 / health p50",
            "p50 / `Aggregate` p50",
        ],
        &[false, false, true, true, true, true, true],
        &rows,
    );
    let network = p50(Call::Network) / single;
    md.line(format!(
        "**Network p50 / single-center p50: {}** (target: within 2×; {}). The network path on \
         `{SINGLE}` alone (its full distribution, merged with nothing, cut to top 20): {} of \
         `Aggregate`; asking {c} centers over loopback adds {} µs at p50.",
        ratio(network),
        if network <= 2.0 { "met" } else { "missed" },
        ratio(p50(Call::LocalNetwork) / single),
        num((p50(Call::Network) - p50(Call::LocalNetwork)) * 1e6)
    ));
    md.blank();
    if let Some(kib) = machine::peak_rss_kib() {
        md.line(format!(
            "Peak RSS of the whole run ({} registries in one process, each with its own HPO): \
             {} MiB.",
            c + 2,
            mib(kib * 1024)
        ));
        md.blank();
    }
    md.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(total: u64, cells: &[(&str, u64)]) -> pb::AggregateResponse {
        let count = |value| {
            Some(pb::Count {
                value,
                precision: pb::Precision::Exact.into(),
            })
        };
        pb::AggregateResponse {
            cells: cells
                .iter()
                .map(|(id, n)| pb::AggregateCell {
                    keys: vec![pb::GroupKey {
                        id: (*id).to_owned(),
                        label: String::new(),
                    }],
                    count: count(*n),
                })
                .collect(),
            total: count(total),
            ..Default::default()
        }
    }

    fn reference(cells: &[(&str, u64)]) -> BTreeMap<Vec<String>, u64> {
        cells
            .iter()
            .map(|(id, n)| (vec![(*id).to_owned()], *n))
            .collect()
    }

    #[test]
    fn the_same_cells_pass() {
        let full = reference(&[("A", 9), ("B", 5), ("C", 5), ("D", 1)]);
        let top = answer(20, &[("A", 9), ("B", 5)]);
        assert!(check_cells(&top, &top, &full).expect("same answer"));
    }

    #[test]
    fn a_tie_broken_otherwise_at_the_cut_passes_but_is_told() {
        let full = reference(&[("A", 9), ("B", 5), ("C", 5), ("D", 1)]);
        let expected = answer(20, &[("A", 9), ("B", 5)]);
        let network = answer(20, &[("A", 9), ("C", 5)]);
        assert!(!check_cells(&network, &expected, &full).expect("a tie"));
    }

    #[test]
    fn wrong_counts_totals_cells_and_precision_fail() {
        let full = reference(&[("A", 9), ("B", 5), ("C", 4)]);
        let expected = answer(20, &[("A", 9), ("B", 5)]);
        for wrong in [
            answer(20, &[("A", 9), ("B", 4)]),
            answer(21, &[("A", 9), ("B", 5)]),
            answer(20, &[("A", 9), ("C", 5)]),
            answer(20, &[("A", 9), ("E", 5)]),
            answer(20, &[("A", 9)]),
        ] {
            assert!(check_cells(&wrong, &expected, &full).is_err(), "{wrong:?}");
        }
        let mut inexact = expected.clone();
        if let Some(count) = inexact.cells[1].count.as_mut() {
            count.precision = pb::Precision::AtLeast.into();
        }
        assert!(check_cells(&inexact, &expected, &full).is_err());
    }

    #[test]
    fn an_incomplete_network_answer_fails() {
        let outcome = |status: pb::CenterStatus| pb::CenterOutcome {
            center: "c1".to_owned(),
            status: status.into(),
            ..Default::default()
        };
        let response = |partial, status| pb::NetworkAggregateResponse {
            merged: Some(answer(1, &[("A", 1)])),
            partial,
            centers: vec![outcome(status)],
        };
        assert!(complete(response(false, pb::CenterStatus::Answered)).is_ok());
        assert!(complete(response(true, pb::CenterStatus::Answered)).is_err());
        assert!(complete(response(false, pb::CenterStatus::TimedOut)).is_err());
    }

    #[test]
    fn center_counts_are_checked() {
        let args = |centers| NetworkArgs {
            corpus: None,
            cases: 10,
            centers,
            seed: 1,
            runs: 1,
            warmup: 0,
            out: None,
        };
        assert!(matches!(run(&args(0)), Err(BenchError::Input(_))));
        assert!(matches!(
            run(&args(MAX_CENTERS + 1)),
            Err(BenchError::Input(_))
        ));
    }
}
