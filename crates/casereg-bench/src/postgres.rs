//! The PostgreSQL peer: the same cases in a tuned PostgreSQL, asked the same questions.
//!
//! A [`Cluster`] is a throw-away server in a temporary directory, reached only through a unix
//! socket in that directory. It is tuned as a competent DBA would tune it for this workload on
//! this machine (see [`Cluster::start`]) and keeps the registry's durability (`fsync` and
//! `synchronous_commit` on). The schema stores each case once: the phenopacket as JSONB, and
//! beside it the facts search reads, as the registry extracts them
//! (`casereg_server::wire::facts::extract`):
//!
//! ```sql
//! cases(id text primary key, document jsonb, sex int, onset_from int, onset_to int,
//!       present int[], present_closure int[], excluded int[], diseases text[])
//! ```
//!
//! `present_closure` holds every observed term and all its ancestors, so "this phenotype or
//! any descendant" is one containment test that a GIN index answers — the same ancestor
//! closure the registry's index posts. Without it PostgreSQL would miss the descendants (a
//! naive JSONB design misses 44% of true hits).
//!
//! Every answer here must equal the registry's: the tests compare each query with a scan of
//! the same rows in Rust.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use casereg_core::ids::TermId;
use casereg_core::ontology::Ontology;
use casereg_core::stats::{Enrichment, benjamini_hochberg};
use casereg_proto::v1 as pb;
use postgres::types::Type;
use postgres::{Client, NoTls, Row, Statement};

use crate::error::{BenchError, Result};

/// The superuser `initdb` creates, trusted on the socket (nothing else can reach it).
const SUPERUSER: &str = "postgres";

/// The operating system account PostgreSQL runs as when we are root (it refuses root).
const SERVICE_ACCOUNT: &str = "postgres";

/// The database the cases are loaded into.
const DATABASE: &str = "casereg";

/// The socket's port number is this plus the process id modulo [`PORT_SPREAD`]. Each cluster
/// has a socket directory of its own, so the number only names the socket file.
const PORT_BASE: u32 = 54_000;

/// See [`PORT_BASE`].
const PORT_SPREAD: u32 = 1_000;

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Longest wait for the server to start or stop, in seconds.
const PG_CTL_TIMEOUT_SECS: u32 = 120;

/// Cap on `shared_buffers`, in MiB: a quarter of RAM up to this.
const MAX_SHARED_BUFFERS_MIB: u64 = 4_096;

/// Bytes of COPY text gathered before they are sent to the server.
const COPY_BUFFER_BYTES: usize = 1 << 20;

/// Bytes of the server log quoted when it fails to start.
const LOG_TAIL_BYTES: usize = 4_096;

/// Where `runuser` may be.
const RUNUSER_PATHS: [&str; 3] = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"];

/// Where `setpriv` may be (used when there is no `runuser`).
const SETPRIV_PATHS: [&str; 2] = ["/usr/bin/setpriv", "/bin/setpriv"];

/// Where distributions install versioned server programs (`/usr/lib/postgresql/15/bin`).
const VERSIONED_INSTALLS: &str = "/usr/lib/postgresql";

/// Where PostgreSQL's programs are.
#[derive(Debug, Clone)]
pub struct PgTools {
    /// The directory holding `pg_ctl`, `initdb` and `postgres`.
    pub bin: PathBuf,
    /// The version `pg_ctl --version` reports (e.g. `15.18 (Debian 15.18-0+deb12u1)`).
    pub version: String,
}

impl PgTools {
    /// Finds `pg_ctl` on `PATH` first, then in the highest `/usr/lib/postgresql/*/bin`;
    /// `None` when `pg_ctl` or `initdb` is missing or `pg_ctl` does not run.
    pub fn find() -> Option<PgTools> {
        let on_path = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|dir| {
                // A `pg_ctl` on PATH is often a link into the versioned directory, where the
                // `postgres` it starts lives too.
                let pg_ctl = std::fs::canonicalize(dir.join("pg_ctl")).ok()?;
                pg_ctl.parent().map(Path::to_path_buf)
            });
        let mut versioned: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(VERSIONED_INSTALLS)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let number: Vec<u32> = name
                    .split('.')
                    .map(str::parse)
                    .collect::<std::result::Result<_, _>>()
                    .ok()?;
                Some((number, entry.path().join("bin")))
            })
            .collect();
        versioned.sort_by(|a, b| b.0.cmp(&a.0));
        on_path
            .chain(versioned.into_iter().map(|(_, bin)| bin))
            .filter(|bin| bin.join("pg_ctl").is_file() && bin.join("initdb").is_file())
            .find_map(|bin| {
                let version = pg_ctl_version(&bin)?;
                Some(PgTools { bin, version })
            })
    }
}

fn pg_ctl_version(bin: &Path) -> Option<String> {
    let output = Command::new(bin.join("pg_ctl"))
        .arg("--version")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let text = text.trim();
    Some(
        text.split_once("(PostgreSQL) ")
            .map_or(text, |(_, version)| version)
            .to_owned(),
    )
}

/// How the server's programs are run: as ourselves, or, when we are root, as the service
/// account through `runuser` or `setpriv`.
#[derive(Debug, Clone)]
enum Runner {
    Direct,
    Runuser(PathBuf),
    Setpriv {
        program: PathBuf,
        uid: u32,
        gid: u32,
    },
}

impl Runner {
    /// The runner for this process, with the account's uid and gid when we are root.
    fn for_this_process() -> Result<(Runner, Option<(u32, u32)>)> {
        if effective_uid()? != 0 {
            return Ok((Runner::Direct, None));
        }
        let (uid, gid) = account_ids(SERVICE_ACCOUNT)?;
        let existing = |paths: &[&str]| paths.iter().map(PathBuf::from).find(|p| p.is_file());
        let runner = if let Some(program) = existing(&RUNUSER_PATHS) {
            Runner::Runuser(program)
        } else if let Some(program) = existing(&SETPRIV_PATHS) {
            Runner::Setpriv { program, uid, gid }
        } else {
            return Err(BenchError::Peer(format!(
                "running as root, PostgreSQL must run as `{SERVICE_ACCOUNT}`, and neither \
                 runuser nor setpriv was found"
            )));
        };
        Ok((runner, Some((uid, gid))))
    }

    /// A command running `program`, pinned to `cpus` (a `taskset -c` list) when given.
    fn command(&self, program: &Path, cpus: Option<&str>) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(cpus) = cpus {
            argv.extend(["taskset".into(), "-c".into(), cpus.into()]);
        }
        match self {
            Runner::Direct => {}
            Runner::Runuser(runuser) => {
                argv.extend([
                    runuser.into(),
                    "-u".into(),
                    SERVICE_ACCOUNT.into(),
                    "--".into(),
                ]);
            }
            Runner::Setpriv { program, uid, gid } => argv.extend([
                program.into(),
                format!("--reuid={uid}").into(),
                format!("--regid={gid}").into(),
                "--clear-groups".into(),
            ]),
        }
        argv.push(program.into());
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        command
    }
}

/// The effective uid, from `/proc/self/status` (`Uid: real effective saved filesystem`).
fn effective_uid() -> Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| BenchError::io("reading /proc/self/status", e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| BenchError::Peer("no effective uid in /proc/self/status".to_owned()))
}

/// The uid and gid of an account, from `/etc/passwd`.
fn account_ids(account: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| BenchError::io("reading /etc/passwd", e))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == account).then_some(())?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .ok_or_else(|| {
            BenchError::Peer(format!(
                "running as root, PostgreSQL must run as `{account}`, which /etc/passwd lacks"
            ))
        })
}

/// Runs a command to completion; an error quotes its output.
fn run(mut command: Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .map_err(|e| BenchError::io(format!("starting {what}"), e))?;
    if output.status.success() {
        return Ok(());
    }
    Err(BenchError::Peer(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        String::from_utf8_lossy(&output.stdout).trim(),
    )))
}

/// `MemTotal` from `/proc/meminfo`, in MiB.
fn memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// CPUs in a `taskset -c` list (`1`, `0-3`, `0,2`).
fn cpu_count(list: &str) -> Option<usize> {
    list.split(',').try_fold(0, |sum, part| {
        let part = part.trim();
        let n = match part.split_once('-') {
            Some((low, high)) => {
                let (low, high): (usize, usize) = (low.parse().ok()?, high.parse().ok()?);
                high.checked_sub(low)? + 1
            }
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
        Some(sum + n)
    })
}

/// A size in MiB as PostgreSQL writes it (`4GB`, `768MB`).
fn size(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{}GB", mib / 1024)
    } else {
        format!("{mib}MB")
    }
}

/// The tuning for a machine with `memory_mib` of RAM and `cpus` CPUs for the server.
fn tuning(memory_mib: Option<u64>, cpus: usize) -> Vec<(&'static str, String)> {
    // Without /proc/meminfo, tune for a small machine rather than overcommit.
    let memory = memory_mib.unwrap_or(4_096);
    // More workers than CPUs only queue: with one CPU the leader works alone.
    let workers = if cpus > 1 { cpus } else { 0 };
    vec![
        (
            "shared_buffers",
            size((memory / 4).min(MAX_SHARED_BUFFERS_MIB)),
        ),
        ("effective_cache_size", size(memory * 3 / 4)),
        ("work_mem", "64MB".to_owned()),
        ("maintenance_work_mem", "1GB".to_owned()),
        ("max_parallel_workers", workers.to_string()),
        ("max_parallel_workers_per_gather", workers.to_string()),
        ("max_parallel_maintenance_workers", workers.to_string()),
        // Compiling expressions costs more than it saves on queries of milliseconds: a DBA
        // turns JIT off for a workload of short analytical queries.
        ("jit", "off".to_owned()),
        // Solid-state storage and a warm cache: random reads cost about what sequential do.
        ("random_page_cost", "1.1".to_owned()),
        ("effective_io_concurrency", "200".to_owned()),
        // Durable like the registry: an acknowledged write survives a crash.
        ("fsync", "on".to_owned()),
        ("synchronous_commit", "on".to_owned()),
        ("full_page_writes", "on".to_owned()),
        // A standalone server: no replication or archiving, so a table created and filled
        // in one transaction needs no WAL (PostgreSQL's own advice for bulk loads).
        ("wal_level", "minimal".to_owned()),
        ("max_wal_senders", "0".to_owned()),
        ("max_wal_size", "8GB".to_owned()),
        ("checkpoint_timeout", "30min".to_owned()),
    ]
}

/// A throw-away PostgreSQL cluster in a temporary directory, listening only on a unix socket
/// in that directory. Stopped (`pg_ctl stop -m immediate`) and deleted when dropped.
///
/// The `postgres` client runs its own small async runtime: use it from plain threads, not
/// from inside a tokio runtime.
pub struct Cluster {
    /// The temporary directory: socket, log and `data/`; deleted after the server stops.
    dir: tempfile::TempDir,
    tools: PgTools,
    runner: Runner,
    port: u16,
    settings: Vec<(&'static str, String)>,
    /// Set before `pg_ctl start` runs, so that a failed start is still stopped.
    started: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Creates a cluster (`initdb`) in a new directory under `parent`, writes the tuned
    /// settings ([`Cluster::settings`]) into its `postgresql.conf`, starts it and creates the
    /// benchmark database. With `cores` (a `taskset -c` list such as `1`) the postmaster
    /// starts pinned to those CPUs, and every backend inherits the pinning.
    ///
    /// When we are root the server runs as the `postgres` account, which must be able to
    /// reach `parent`.
    pub fn start(tools: &PgTools, parent: &Path, cores: Option<&str>) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("casereg-pg-")
            .tempdir_in(parent)
            .map_err(|e| {
                BenchError::io(format!("creating a directory in {}", parent.display()), e)
            })?;
        let port = u16::try_from(PORT_BASE + std::process::id() % PORT_SPREAD)
            .map_err(|e| BenchError::peer("choosing a port", e))?;
        let socket = dir.path().join(format!(".s.PGSQL.{port}"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH_BYTES {
            return Err(BenchError::Input(format!(
                "the socket path {} is longer than {MAX_SOCKET_PATH_BYTES} bytes: choose a \
                 shorter directory for the PostgreSQL cluster",
                socket.display()
            )));
        }
        let (runner, account) = Runner::for_this_process()?;
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| {
                BenchError::io(
                    format!("giving {} to {SERVICE_ACCOUNT}", dir.path().display()),
                    e,
                )
            })?;
        }
        let cpus = match cores {
            Some(list) => cpu_count(list)
                .ok_or_else(|| BenchError::Input(format!("{list:?} is not a CPU list")))?,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let mut cluster = Cluster {
            dir,
            tools: tools.clone(),
            runner,
            port,
            settings: tuning(memory_mib(), cpus),
            started: false,
        };
        cluster.init()?;
        cluster.started = true;
        cluster.start_server(cores)?;
        let mut client = cluster.connect_to(SUPERUSER)?;
        client
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .map_err(|e| BenchError::peer("creating the benchmark database", e))?;
        Ok(cluster)
    }

    /// The cluster's directory (socket, server log, `data/`).
    pub fn directory(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn command(&self, program: &str, cores: Option<&str>) -> Command {
        let mut command = self.runner.command(&self.tools.bin.join(program), cores);
        // The service account may not be able to read our working directory.
        command.current_dir(self.dir.path());
        command
    }

    /// `initdb`, then the settings appended to `postgresql.conf` (later lines win).
    fn init(&self) -> Result<()> {
        let mut initdb = self.command("initdb", None);
        // The C locale sorts text by bytes, as the registry sorts ids; `--no-sync` only skips
        // flushing the fresh cluster, which is thrown away after the run anyway.
        initdb
            .arg("-D")
            .arg(self.data())
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale"])
            .args(["--no-sync", "--no-instructions"]);
        run(initdb, "initdb")?;
        let mut conf = String::from("\n# casereg benchmark peer\n");
        let _ = writeln!(conf, "listen_addresses = ''");
        let _ = writeln!(
            conf,
            "unix_socket_directories = '{}'",
            self.dir.path().display().to_string().replace('\'', "''")
        );
        let _ = writeln!(conf, "port = {}", self.port);
        for (name, value) in &self.settings {
            let _ = writeln!(conf, "{name} = '{value}'");
        }
        let path = self.data().join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(conf.as_bytes()))
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn start_server(&self, cores: Option<&str>) -> Result<()> {
        let mut pg_ctl = self.command("pg_ctl", cores);
        pg_ctl
            .arg("start")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", &PG_CTL_TIMEOUT_SECS.to_string()]);
        run(pg_ctl, "pg_ctl start").map_err(|e| {
            let log = std::fs::read(self.log()).unwrap_or_default();
            let tail = &log[log.len().saturating_sub(LOG_TAIL_BYTES)..];
            BenchError::Peer(format!(
                "{e}\nserver log:\n{}",
                String::from_utf8_lossy(tail).trim()
            ))
        })
    }

    fn connect_to(&self, database: &str) -> Result<Client> {
        postgres::Config::new()
            .host_path(self.dir.path())
            .port(self.port)
            .user(SUPERUSER)
            .dbname(database)
            .application_name("casereg-bench")
            .connect(NoTls)
            .map_err(|e| BenchError::peer("connecting", e))
    }

    /// A new connection to the benchmark database.
    pub fn connect(&self) -> Result<Client> {
        self.connect_to(DATABASE)
    }

    /// Creates the schema and loads `rows` with one streamed `COPY` (in the transaction that
    /// creates the table, `FREEZE`: no WAL, and the rows are visible to all at once); then
    /// builds the indexes on two connections at a time, fills the count tables, `VACUUM
    /// (ANALYZE)` (statistics, and a visibility map for index-only scans) and `CHECKPOINT`,
    /// so that queries start from a settled database. Once per cluster.
    ///
    /// `copy` times the `COPY` and its commit, and with them whatever `rows` spends producing
    /// the rows (pass rows made beforehand to time PostgreSQL alone); `index` everything
    /// after the commit.
    pub fn load(&self, rows: &mut dyn Iterator<Item = Result<PgRow>>) -> Result<PgLoad> {
        let mut client = self.connect()?;
        let intarray = has_intarray(
            &mut client,
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'intarray'",
        )?;
        if intarray {
            client
                .batch_execute("CREATE EXTENSION intarray")
                .map_err(|e| BenchError::peer("creating extension intarray", e))?;
        }

        let started = Instant::now();
        let rows_copied = copy_cases(&mut client, rows)?;
        let copy = started.elapsed();

        let started = Instant::now();
        // The ancestor closure's index is the largest: build it beside the others, as
        // `pg_restore --jobs` would (CREATE INDEX takes a lock that lets others build too).
        let closure_index = if intarray {
            "CREATE INDEX cases_present_closure ON cases USING gin (present_closure gin__int_ops)"
        } else {
            "CREATE INDEX cases_present_closure ON cases USING gin (present_closure)"
        };
        std::thread::scope(|scope| {
            let closure = scope.spawn(|| self.execute("indexing present_closure", closure_index));
            let others = self.execute("indexing", OTHER_INDEXES);
            let closure = closure.join().unwrap_or_else(|_| {
                Err(BenchError::Peer("the indexing thread panicked".to_owned()))
            });
            others.and(closure)
        })?;
        let total = i64::try_from(rows_copied).map_err(|e| BenchError::peer("row count", e))?;
        client
            .execute("INSERT INTO case_count (cases) VALUES ($1)", &[&total])
            .and_then(|_| client.batch_execute(CONSTRAINTS))
            // VACUUM runs outside any transaction: one statement per call.
            .and_then(|()| client.batch_execute("VACUUM (ANALYZE)"))
            .and_then(|()| client.batch_execute("CHECKPOINT"))
            .map_err(|e| BenchError::peer("finishing the load", e))?;
        let index = started.elapsed();

        Ok(PgLoad {
            rows: rows_copied,
            copy,
            index,
            intarray,
        })
    }

    fn execute(&self, what: &str, sql: &str) -> Result<()> {
        self.connect()?
            .batch_execute(sql)
            .map_err(|e| BenchError::peer(what, e))
    }

    /// Peak resident memory of the server: the sum of `VmHWM` over the postmaster and its
    /// child processes now running, in KiB; `None` if unreadable. Shared buffers count once
    /// in every process that touched them, so this bounds the memory from above; backends
    /// that have exited are no longer counted.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let postmaster: u32 = pid_file.lines().next()?.trim().parse().ok()?;
        let mut total = peak_of(postmaster)?;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if parent_of(pid) == Some(postmaster) {
                // A child that exits between the two reads is simply not counted.
                total += peak_of(pid).unwrap_or(0);
            }
        }
        Some(total)
    }

    /// `pg_database_size` of the benchmark database (tables, indexes, TOAST), in bytes.
    pub fn database_bytes(&self) -> Result<u64> {
        let bytes: i64 = self
            .connect()?
            .query_one("SELECT pg_database_size(current_database())", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| BenchError::peer("measuring the database", e))?;
        u64::try_from(bytes).map_err(|e| BenchError::peer("database size", e))
    }

    /// The tuned settings, for the report: `shared_buffers=4GB work_mem=64MB …`.
    pub fn settings(&self) -> String {
        self.settings
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let mut pg_ctl = self.command("pg_ctl", None);
        pg_ctl.arg("stop").arg("-D").arg(self.data()).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            &PG_CTL_TIMEOUT_SECS.to_string(),
        ]);
        // Nothing to do about a failure here but say so; a postmaster left behind shuts
        // itself down once it finds its directory gone.
        if let Err(e) = run(pg_ctl, "pg_ctl stop") {
            eprintln!("stopping the PostgreSQL peer: {e}");
        }
    }
}

/// `VmHWM` of a process, in KiB.
fn peak_of(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The parent of a process, from `/proc/PID/stat` (read after the command name, which may
/// hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The table, without indexes: they are built after the rows are in.
const CREATE_CASES: &str = "
    CREATE TABLE cases (
        id text NOT NULL,
        document jsonb NOT NULL,
        sex int NOT NULL,
        onset_from int,
        onset_to int,
        present int[] NOT NULL,
        present_closure int[] NOT NULL,
        excluded int[] NOT NULL,
        diseases text[] NOT NULL
    );
    -- Active cases in the registry, kept at load as the registry keeps its count.
    CREATE TABLE case_count (cases bigint NOT NULL);
";

const COPY_CASES: &str = "COPY cases (id, document, sex, onset_from, onset_to, present, \
                          present_closure, excluded, diseases) FROM STDIN WITH (FREEZE)";

/// Indexes other than the closure's, and the per-term counts. `term_counts` holds how many
/// cases record each observed term, as the size of the registry's posting list for it does:
/// co-occurrence reads a term's registry count from it rather than counting the table.
const OTHER_INDEXES: &str = "
    CREATE UNIQUE INDEX cases_id ON cases (id);
    CREATE INDEX cases_diseases ON cases USING gin (diseases);
    CREATE INDEX cases_sex ON cases (sex);
    CREATE INDEX cases_onset_to ON cases (onset_to);
    CREATE TABLE term_counts AS
        SELECT term, count(*) AS cases FROM cases, unnest(cases.present) AS term GROUP BY term;
    ALTER TABLE term_counts ADD PRIMARY KEY (term);
";

/// Made once every index is built (`ALTER TABLE` would wait for the other builds).
const CONSTRAINTS: &str =
    "ALTER TABLE cases ADD CONSTRAINT cases_pkey PRIMARY KEY USING INDEX cases_id";

/// Whether `count_sql` (a count of the catalog rows naming intarray: available, or
/// installed) finds it.
fn has_intarray(client: &mut Client, count_sql: &str) -> Result<bool> {
    client
        .query_one(count_sql, &[])
        .and_then(|row| row.try_get::<_, i64>(0))
        .map(|n| n > 0)
        .map_err(|e| BenchError::peer("looking for intarray", e))
}

/// Streams the rows into a new `cases` table in one transaction; returns the rows copied.
fn copy_cases(client: &mut Client, rows: &mut dyn Iterator<Item = Result<PgRow>>) -> Result<u64> {
    let failed = |e: postgres::Error| BenchError::peer("copying the cases", e);
    let mut transaction = client.transaction().map_err(failed)?;
    transaction.batch_execute(CREATE_CASES).map_err(failed)?;
    let writer = transaction.copy_in(COPY_CASES).map_err(failed)?;
    let mut out = BufWriter::with_capacity(COPY_BUFFER_BYTES, writer);
    let mut line = String::new();
    let mut sent: u64 = 0;
    for row in rows {
        line.clear();
        row?.copy_line(&mut line);
        out.write_all(line.as_bytes())
            .map_err(|e| BenchError::peer("copying the cases", e))?;
        sent += 1;
    }
    let writer = out
        .into_inner()
        .map_err(|e| BenchError::peer("copying the cases", e.into_error()))?;
    let copied = writer.finish().map_err(failed)?;
    transaction.commit().map_err(failed)?;
    if copied != sent {
        return Err(BenchError::Check(format!(
            "PostgreSQL copied {copied} rows of {sent} sent"
        )));
    }
    Ok(copied)
}

/// Copied rows and how long loading took.
#[derive(Debug, Clone)]
pub struct PgLoad {
    /// Rows copied.
    pub rows: u64,
    /// Creating the table, the `COPY` (with the time the row iterator took) and its commit.
    pub copy: Duration,
    /// Indexes, count tables, `VACUUM (ANALYZE)` and `CHECKPOINT`.
    pub index: Duration,
    /// Whether the closure's GIN index uses intarray's `gin__int_ops` (else the built-in
    /// `array_ops`).
    pub intarray: bool,
}

/// One case as the peer stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRow {
    /// The phenopacket id (the record's own `id`).
    pub id: String,
    /// The phenopacket as JSON text (stored as JSONB).
    pub document: String,
    /// Subject sex as the Phenopacket enum number (0 unknown, 1 female, 2 male, 3 other).
    pub sex: i32,
    /// Earliest possible age at onset, in days; `None` without an onset.
    pub onset_from: Option<i32>,
    /// Latest possible age at onset, in days (`i32::MAX` when open-ended); `None` without an
    /// onset.
    pub onset_to: Option<i32>,
    /// Observed phenotypes as recorded, by HPO number (`HP:0001250` is 1250).
    pub present: Vec<i32>,
    /// The observed phenotypes and every ancestor of each, ascending, each once.
    pub present_closure: Vec<i32>,
    /// Phenotypes looked for and found absent, as recorded.
    pub excluded: Vec<i32>,
    /// Disease ids (not excluded ones).
    pub diseases: Vec<String>,
}

/// An HPO number as a PostgreSQL `int` (HPO numbers have seven digits).
fn term_number(term: TermId) -> i32 {
    i32::try_from(term.0).unwrap_or(i32::MAX)
}

impl PgRow {
    /// The row of a record, from the facts the registry extracts from it.
    pub fn of(record: &pb::Phenopacket, document: String, hpo: &Ontology) -> PgRow {
        let facts = casereg_server::wire::facts::extract_typed(record, hpo)
            .expect("a record's own encoding reads as its view");
        let mut closure: Vec<i32> = Vec::new();
        for &term in &facts.present {
            closure.push(term_number(term));
            closure.extend(hpo.ancestors(term).into_iter().map(term_number));
        }
        closure.sort_unstable();
        closure.dedup();
        PgRow {
            id: record.id.clone(),
            document,
            sex: facts.sex,
            onset_from: facts.onset.map(|span| span.from),
            onset_to: facts.onset.map(|span| span.to),
            present: facts.present.iter().copied().map(term_number).collect(),
            present_closure: closure,
            excluded: facts.excluded.iter().copied().map(term_number).collect(),
            diseases: facts.diseases.into_iter().map(|d| d.id).collect(),
        }
    }

    /// Appends the row as a line of `COPY` text format.
    fn copy_line(&self, out: &mut String) {
        push_copy_text(out, &self.id);
        out.push('\t');
        push_copy_text(out, &self.document);
        let _ = write!(out, "\t{}\t", self.sex);
        push_copy_int(out, self.onset_from);
        out.push('\t');
        push_copy_int(out, self.onset_to);
        for terms in [&self.present, &self.present_closure, &self.excluded] {
            out.push('\t');
            push_int_array(out, terms);
        }
        out.push('\t');
        let mut literal = String::new();
        push_text_array(&mut literal, &self.diseases);
        push_copy_text(out, &literal);
        out.push('\n');
    }
}

/// A value in `COPY` text format: backslash, tab, newline and carriage return escaped.
fn push_copy_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// An optional integer in `COPY` text format (`\N` for NULL).
fn push_copy_int(out: &mut String, value: Option<i32>) {
    match value {
        Some(value) => {
            let _ = write!(out, "{value}");
        }
        None => out.push_str("\\N"),
    }
}

/// An `int[]` literal (`{1,2,3}`), which needs no `COPY` escaping.
fn push_int_array(out: &mut String, values: &[i32]) {
    out.push('{');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{value}");
    }
    out.push('}');
}

/// A `text[]` literal with every element quoted (`{"OMIM:1","a \"b\""}`).
fn push_text_array(out: &mut String, values: &[String]) {
    out.push('{');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
}

/// W3: cases with the term or a descendant, of a sex, with an onset span ending before a
/// day (the registry's `onset < until`: `onset_to < until`, NULL when there is no onset).
const COUNT_SQL: &str = "
    SELECT count(*) FROM cases
    WHERE present_closure @> ARRAY[$1::int4] AND sex = $2 AND onset_to < $3";

/// W4a: the matching cases' diseases, most frequent first, and how many cases match (one
/// row even when no case matches).
const FACET_SQL: &str = r#"
    WITH matching AS MATERIALIZED (
        SELECT diseases FROM cases WHERE present_closure @> ARRAY[$1::int4] AND sex = $2
    ), cells AS (
        SELECT disease, count(*) AS n
        FROM matching, unnest(matching.diseases) AS disease
        GROUP BY disease
        ORDER BY n DESC, disease COLLATE "C"
        LIMIT $3
    )
    SELECT (SELECT count(*) FROM matching), cells.disease, cells.n
    FROM (VALUES (1)) AS one (x) LEFT JOIN cells ON true
    ORDER BY cells.n DESC, cells.disease COLLATE "C""#;

/// W5: every observed phenotype of the cases with the term or a descendant, with its count
/// there and in the registry; and the subset's and the registry's sizes (one row even for an
/// empty subset).
const COOCCURRENCE_SQL: &str = "
    WITH subset AS MATERIALIZED (
        SELECT present FROM cases WHERE present_closure @> ARRAY[$1::int4]
    ), hits AS (
        SELECT term, count(*) AS n FROM subset, unnest(subset.present) AS term GROUP BY term
    )
    SELECT (SELECT count(*) FROM subset), (SELECT cases FROM case_count),
           hits.term, hits.n, term_counts.cases
    FROM (VALUES (1)) AS one (x)
    LEFT JOIN (hits JOIN term_counts ON term_counts.term = hits.term) ON true";

/// W4b, with the organ systems written into the text as a constant array. With intarray a
/// case's organ systems are the intersection (`&`) of its sorted closure with them; else its
/// closure is unnested and each term looked up in the constant (which PostgreSQL hashes).
/// Measured on 100,000 synthetic cases the intersection took half the time.
fn pivot_sql(organ_systems: &[i32], intarray: bool) -> String {
    let mut organs = String::new();
    push_int_array(&mut organs, organ_systems);
    let (organ_source, organ_filter) = if intarray {
        (
            format!("unnest(cases.present_closure & '{organs}'::int4[])"),
            String::new(),
        )
    } else {
        (
            "unnest(cases.present_closure)".to_owned(),
            format!("AND organ = ANY ('{organs}'::int4[])"),
        )
    };
    format!(
        "
    SELECT organ, cases.sex, count(*) AS n
    FROM cases, {organ_source} AS organ
    WHERE cases.present_closure @> ARRAY[$1::int4] {organ_filter}
    GROUP BY organ, cases.sex
    ORDER BY n DESC, organ, cases.sex
    LIMIT $2"
    )
}

/// A count column, which PostgreSQL returns as `bigint`.
fn count_at(row: &Row, column: usize) -> Result<u64> {
    let n: i64 = row
        .try_get(column)
        .map_err(|e| BenchError::peer("reading a count", e))?;
    u64::try_from(n).map_err(|e| BenchError::peer("reading a count", e))
}

/// The workloads' statements on one connection.
///
/// The by-id lookup is prepared once: it has one best plan. The analytical queries are sent
/// with their parameters in one round trip and planned for each call with the values given
/// (the protocol's unnamed statement): a term's cases range from a handful to most of the
/// table, and the generic plan a prepared statement settles on after five runs would serve
/// every term with the plan of an average one — a DBA forces custom plans for such queries.
#[derive(Debug)]
pub struct Statements {
    get: Statement,
    pivot: String,
}

impl Statements {
    /// Prepares the statements on `client` (they serve only that connection); `organ_systems`
    /// are the pivot's terms (those one `is_a` step below HP:0000118).
    pub fn prepare(client: &mut Client, organ_systems: &[i32]) -> Result<Statements> {
        let get = client
            .prepare_typed(
                "SELECT document::text FROM cases WHERE id = $1",
                &[Type::TEXT],
            )
            .map_err(|e| BenchError::peer("preparing the lookup by id", e))?;
        let intarray = has_intarray(
            client,
            "SELECT count(*) FROM pg_extension WHERE extname = 'intarray'",
        )?;
        Ok(Statements {
            get,
            pivot: pivot_sql(organ_systems, intarray),
        })
    }

    /// W2: reads the document of one case by id (JSONB as text); false when absent.
    pub fn get(&self, c: &mut Client, id: &str) -> Result<bool> {
        let row = c
            .query_opt(&self.get, &[&id])
            .map_err(|e| BenchError::peer("reading a case", e))?;
        match row {
            Some(row) => {
                let document: &str = row
                    .try_get(0)
                    .map_err(|e| BenchError::peer("reading a case", e))?;
                Ok(!document.is_empty())
            }
            None => Ok(false),
        }
    }

    /// W3: how many cases have `term` or a descendant observed, sex `sex`, and an onset span
    /// within `[.., onset_until)` days (that is, ending before `onset_until`).
    pub fn count(&self, c: &mut Client, term: i32, sex: i32, onset_until: i32) -> Result<u64> {
        let row = c
            .query_typed(
                COUNT_SQL,
                &[
                    (&term, Type::INT4),
                    (&sex, Type::INT4),
                    (&onset_until, Type::INT4),
                ],
            )
            .map_err(|e| BenchError::peer("counting", e))?;
        match row.first() {
            Some(row) => count_at(row, 0),
            None => Err(BenchError::Peer("a count returned no row".to_owned())),
        }
    }

    /// W4a: the diseases of the cases with `term` or a descendant observed and sex `sex`, the
    /// `top` most frequent (count descending, then id), and how many cases match. A case
    /// with two diseases counts in both.
    pub fn facet(
        &self,
        c: &mut Client,
        term: i32,
        sex: i32,
        top: i64,
    ) -> Result<(u64, Vec<(String, u64)>)> {
        let rows = c
            .query_typed(
                FACET_SQL,
                &[(&term, Type::INT4), (&sex, Type::INT4), (&top, Type::INT8)],
            )
            .map_err(|e| BenchError::peer("faceting", e))?;
        let Some(first) = rows.first() else {
            return Err(BenchError::Peer("a facet returned no row".to_owned()));
        };
        let total = count_at(first, 0)?;
        let mut cells = Vec::with_capacity(rows.len());
        for row in &rows {
            let disease: Option<String> = row
                .try_get(1)
                .map_err(|e| BenchError::peer("reading a facet", e))?;
            if let Some(disease) = disease {
                cells.push((disease, count_at(row, 2)?));
            }
        }
        Ok((total, cells))
    }

    /// W4b: organ system × sex over the cases with `term` or a descendant observed, as
    /// (organ system, sex, cases), count descending then (organ system, sex), the first
    /// `top`. A case counts in every organ system its ancestor closure holds.
    pub fn pivot(&self, c: &mut Client, term: i32, top: i64) -> Result<Vec<(i32, i32, u64)>> {
        let rows = c
            .query_typed(&self.pivot, &[(&term, Type::INT4), (&top, Type::INT8)])
            .map_err(|e| BenchError::peer("pivoting", e))?;
        rows.iter()
            .map(|row| {
                let organ: i32 = row
                    .try_get(0)
                    .map_err(|e| BenchError::peer("reading a pivot", e))?;
                let sex: i32 = row
                    .try_get(1)
                    .map_err(|e| BenchError::peer("reading a pivot", e))?;
                Ok((organ, sex, count_at(row, 2)?))
            })
            .collect()
    }

    /// W5: the observed phenotypes (as recorded) of the cases with `term` or a descendant
    /// observed, each with its count there and in the registry, tested for enrichment with
    /// the registry's own functions; the `top` by count in the subset descending, then
    /// p-value, then term.
    pub fn cooccurrence(&self, c: &mut Client, term: i32, top: usize) -> Result<PgCoOccurrence> {
        let failed = |e: postgres::Error| BenchError::peer("co-occurrence", e);
        let rows = c
            .query_typed(COOCCURRENCE_SQL, &[(&term, Type::INT4)])
            .map_err(failed)?;
        let Some(first) = rows.first() else {
            return Err(BenchError::Peer("co-occurrence returned no row".to_owned()));
        };
        let subset = count_at(first, 0)?;
        let registry = count_at(first, 1)?;
        let mut counted: Vec<(i32, u64, u64)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let value: Option<i32> = row.try_get(2).map_err(failed)?;
            if let Some(value) = value {
                counted.push((value, count_at(row, 3)?, count_at(row, 4)?));
            }
        }
        let test = Enrichment::new(subset, registry);
        let values: Vec<(i32, u64, u64, f64)> = counted
            .into_iter()
            .map(|(value, hits, cases)| (value, hits, cases, test.p_value(hits, cases)))
            .collect();
        let p: Vec<f64> = values.iter().map(|v| v.3).collect();
        let tested = values.len();
        let mut ranked: Vec<((i32, u64, u64, f64), f64)> =
            values.into_iter().zip(benjamini_hochberg(&p)).collect();
        ranked
            .sort_by(|(a, _), (b, _)| b.1.cmp(&a.1).then(a.3.total_cmp(&b.3)).then(a.0.cmp(&b.0)));
        ranked.truncate(top);
        let (values, q_values) = ranked.into_iter().unzip();
        Ok(PgCoOccurrence {
            subset,
            registry,
            tested,
            values,
            q_values,
        })
    }
}

/// Co-occurring observed phenotypes, as [`Statements::cooccurrence`] reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct PgCoOccurrence {
    /// Cases with the term or a descendant observed.
    pub subset: u64,
    /// Cases in the table.
    pub registry: u64,
    /// Distinct observed phenotypes in the subset (every one is tested).
    pub tested: usize,
    /// (term, cases of the subset with it, cases of the registry with it, one-sided Fisher
    /// p-value), most frequent in the subset first.
    pub values: Vec<(i32, u64, u64, f64)>,
    /// Benjamini–Hochberg q-values over every tested term, in the order of `values`.
    pub q_values: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::{BTreeMap, HashSet};
    use std::io::{BufRead as _, BufReader};

    use casereg_core::aggregate::PHENOTYPIC_ABNORMALITY;
    use flate2::read::GzDecoder;

    /// Cases loaded from the committed sample.
    const SAMPLE_CASES: usize = 50;

    /// `onset<1y` as the client parses it.
    const ONE_YEAR_DAYS: i32 = 365;

    #[test]
    fn copy_text_is_escaped() {
        let mut out = String::new();
        push_copy_text(&mut out, "a\\b\tc\nd\re");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re");
        let mut literal = String::new();
        push_text_array(&mut literal, &["OMIM:1".to_owned(), "a \"b\\".to_owned()]);
        assert_eq!(literal, r#"{"OMIM:1","a \"b\\"}"#);
        let mut ints = String::new();
        push_int_array(&mut ints, &[]);
        push_copy_int(&mut ints, None);
        push_int_array(&mut ints, &[1, 22]);
        assert_eq!(ints, "{}\\N{1,22}");
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(cpu_count("1"), Some(1));
        assert_eq!(cpu_count("0-3"), Some(4));
        assert_eq!(cpu_count("0,2-3"), Some(3));
        assert_eq!(cpu_count("3-1"), None);
        assert_eq!(cpu_count("x"), None);
    }

    #[test]
    fn tuning_follows_the_machine() {
        let big = tuning(Some(24 * 1024), 2);
        let value = |settings: &[(&str, String)], name: &str| {
            settings
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(value(&big, "shared_buffers"), "4GB");
        assert_eq!(value(&big, "effective_cache_size"), "18GB");
        assert_eq!(value(&big, "max_parallel_workers_per_gather"), "2");
        let small = tuning(Some(2 * 1024), 1);
        assert_eq!(value(&small, "shared_buffers"), "512MB");
        assert_eq!(value(&small, "max_parallel_workers_per_gather"), "0");
    }

    fn sample_rows(hpo: &Ontology) -> Vec<PgRow> {
        let path = crate::repo_root().join("tests/data/phenopacket-store-sample.jsonl.gz");
        let file = std::fs::File::open(&path).unwrap();
        let mut ids = HashSet::new();
        BufReader::new(GzDecoder::new(file))
            .lines()
            .map(Result::unwrap)
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let record = casereg_client::json::parse_phenopacket(&line, "sample").unwrap();
                PgRow::of(&record, line, hpo)
            })
            .filter(|row| ids.insert(row.id.clone()))
            .take(SAMPLE_CASES)
            .collect()
    }

    fn matching(rows: &[PgRow], term: i32) -> impl Iterator<Item = &PgRow> {
        rows.iter()
            .filter(move |row| row.present_closure.contains(&term))
    }

    fn scan_count(rows: &[PgRow], term: i32, sex: i32, until: i32) -> u64 {
        matching(rows, term)
            .filter(|row| row.sex == sex && row.onset_to.is_some_and(|to| to < until))
            .count() as u64
    }

    fn scan_facet(rows: &[PgRow], term: i32, sex: i32, top: usize) -> (u64, Vec<(String, u64)>) {
        let cases: Vec<&PgRow> = matching(rows, term).filter(|r| r.sex == sex).collect();
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for row in &cases {
            for disease in &row.diseases {
                *counts.entry(disease).or_default() += 1;
            }
        }
        let mut cells: Vec<(String, u64)> =
            counts.into_iter().map(|(d, n)| (d.to_owned(), n)).collect();
        cells.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        cells.truncate(top);
        (cases.len() as u64, cells)
    }

    fn scan_pivot(rows: &[PgRow], term: i32, organs: &[i32], top: usize) -> Vec<(i32, i32, u64)> {
        let mut counts: BTreeMap<(i32, i32), u64> = BTreeMap::new();
        for row in matching(rows, term) {
            for organ in organs.iter().filter(|o| row.present_closure.contains(o)) {
                *counts.entry((*organ, row.sex)).or_default() += 1;
            }
        }
        let mut cells: Vec<(i32, i32, u64)> =
            counts.into_iter().map(|((o, s), n)| (o, s, n)).collect();
        cells.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        cells.truncate(top);
        cells
    }

    fn scan_cooccurrence(rows: &[PgRow], term: i32, top: usize) -> PgCoOccurrence {
        let mut registry_counts: BTreeMap<i32, u64> = BTreeMap::new();
        for row in rows {
            for t in &row.present {
                *registry_counts.entry(*t).or_default() += 1;
            }
        }
        let subset: Vec<&PgRow> = matching(rows, term).collect();
        let mut hits: BTreeMap<i32, u64> = BTreeMap::new();
        for row in &subset {
            for t in &row.present {
                *hits.entry(*t).or_default() += 1;
            }
        }
        let test = Enrichment::new(subset.len() as u64, rows.len() as u64);
        let all: Vec<(i32, u64, u64, f64)> = hits
            .into_iter()
            .map(|(t, n)| {
                let with = registry_counts[&t];
                (t, n, with, test.p_value(n, with))
            })
            .collect();
        let q = benjamini_hochberg(&all.iter().map(|v| v.3).collect::<Vec<_>>());
        let mut indexed: Vec<(usize, (i32, u64, u64, f64))> =
            all.iter().copied().enumerate().collect();
        indexed
            .sort_by(|(_, a), (_, b)| b.1.cmp(&a.1).then(a.3.total_cmp(&b.3)).then(a.0.cmp(&b.0)));
        indexed.truncate(top);
        PgCoOccurrence {
            subset: subset.len() as u64,
            registry: rows.len() as u64,
            tested: all.len(),
            values: indexed.iter().map(|(_, v)| *v).collect(),
            q_values: indexed.iter().map(|(i, _)| q[*i]).collect(),
        }
    }

    #[test]
    fn a_pinned_server_runs_on_its_cpu() {
        let Some(tools) = PgTools::find() else {
            println!("SKIPPED: PostgreSQL not found");
            return;
        };
        if Command::new("taskset").arg("--version").output().is_err() {
            println!("SKIPPED: taskset not found");
            return;
        }
        let cluster = Cluster::start(&tools, &std::env::temp_dir(), Some("0")).unwrap();
        let pid_file = std::fs::read_to_string(cluster.data().join("postmaster.pid")).unwrap();
        let pid = pid_file.lines().next().unwrap().trim();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let allowed = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(allowed.trim(), "0");
        assert!(
            cluster
                .settings()
                .contains("max_parallel_workers_per_gather=0")
        );
    }

    #[test]
    fn answers_equal_a_scan_of_the_same_rows() {
        let Some(tools) = PgTools::find() else {
            println!("SKIPPED: PostgreSQL not found");
            return;
        };
        let hpo = Ontology::embedded().unwrap();
        let rows = sample_rows(&hpo);
        assert_eq!(rows.len(), SAMPLE_CASES);
        let organs: Vec<i32> = hpo
            .children(PHENOTYPIC_ABNORMALITY)
            .iter()
            .copied()
            .map(term_number)
            .collect();

        let cluster = Cluster::start(&tools, &std::env::temp_dir(), None).unwrap();
        let directory = cluster.directory().to_path_buf();
        let load = cluster.load(&mut rows.iter().cloned().map(Ok)).unwrap();
        assert_eq!(load.rows, SAMPLE_CASES as u64);
        assert!(cluster.database_bytes().unwrap() > 0);
        assert!(cluster.peak_rss_kib().is_some_and(|kib| kib > 0));
        assert!(cluster.settings().contains("jit=off"));

        let mut client = cluster.connect().unwrap();
        let statements = Statements::prepare(&mut client, &organs).unwrap();
        assert!(statements.get(&mut client, &rows[0].id).unwrap());
        assert!(!statements.get(&mut client, "no-such-case").unwrap());

        // Terms from the most to the least frequent in the closures, one absent, and the
        // organ systems themselves.
        let mut frequency: BTreeMap<i32, usize> = BTreeMap::new();
        for row in &rows {
            for t in &row.present_closure {
                *frequency.entry(*t).or_default() += 1;
            }
        }
        let mut by_frequency: Vec<(i32, usize)> = frequency.into_iter().collect();
        by_frequency.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let step = (by_frequency.len() / 12).max(1);
        let mut terms: Vec<i32> = by_frequency.iter().step_by(step).map(|(t, _)| *t).collect();
        terms.extend(organs.iter().take(3));
        terms.push(9_999_999);

        let mut matched = 0;
        for &term in &terms {
            for sex in 0..=3 {
                for until in [0, ONE_YEAR_DAYS, 18 * ONE_YEAR_DAYS, i32::MAX] {
                    let expected = scan_count(&rows, term, sex, until);
                    matched += expected;
                    assert_eq!(
                        statements.count(&mut client, term, sex, until).unwrap(),
                        expected,
                        "count of HP:{term:07} sex {sex} onset < {until}d"
                    );
                }
                for top in [1, 3, 100] {
                    assert_eq!(
                        statements.facet(&mut client, term, sex, top).unwrap(),
                        scan_facet(&rows, term, sex, top as usize),
                        "facet of HP:{term:07} sex {sex} top {top}"
                    );
                }
            }
            for top in [2, 1_000] {
                assert_eq!(
                    statements.pivot(&mut client, term, top).unwrap(),
                    scan_pivot(&rows, term, &organs, top as usize),
                    "pivot of HP:{term:07} top {top}"
                );
                assert_eq!(
                    statements
                        .cooccurrence(&mut client, term, top as usize)
                        .unwrap(),
                    scan_cooccurrence(&rows, term, top as usize),
                    "co-occurrence of HP:{term:07} top {top}"
                );
            }
        }
        assert!(
            matched > 0,
            "no count matched any case: the check proves nothing"
        );

        // The pivot without intarray (used where it is not installed) answers the same.
        let plain_pivot = pivot_sql(&organs, false);
        for &term in &terms {
            let cells: Vec<(i32, i32, u64)> = client
                .query_typed(
                    &plain_pivot,
                    &[(&term, Type::INT4), (&1_000_i64, Type::INT8)],
                )
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1), count_at(row, 2).unwrap()))
                .collect();
            assert_eq!(
                cells,
                scan_pivot(&rows, term, &organs, 1_000),
                "HP:{term:07}"
            );
        }

        // The closure's GIN index can answer the containment test every query makes (shown
        // on the queries where it is the only indexed condition: with so few rows the
        // planner prefers the sex index elsewhere).
        client.batch_execute("SET enable_seqscan = off").unwrap();
        let rare = by_frequency.last().unwrap().0;
        for sql in [
            COOCCURRENCE_SQL,
            statements.pivot.as_str(),
            plain_pivot.as_str(),
        ] {
            let explain = format!("EXPLAIN (COSTS OFF) {sql}");
            let plan: Vec<String> = if sql.contains("$2") {
                client.query_typed(&explain, &[(&rare, Type::INT4), (&10_i64, Type::INT8)])
            } else {
                client.query_typed(&explain, &[(&rare, Type::INT4)])
            }
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
            assert!(
                plan.iter()
                    .any(|line| line.contains("Bitmap Index Scan on cases_present_closure")),
                "{plan:#?}"
            );
        }

        drop(client);
        drop(cluster);
        assert!(!directory.exists(), "{} left behind", directory.display());
    }
}
