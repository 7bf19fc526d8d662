//! The `casereg` command-line tool: human output by default, `--format json` for machines.
//! A client of the registry like any other, through the `casereg-client` library.

pub mod commands;
mod output;
mod tables;
mod transfer;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use casereg_proto::v1 as pb;
use clap::{Parser, Subcommand, ValueEnum};

use casereg_client::tls::{PemKind, read_pem_file};
use casereg_client::{
    BearerToken, Client, ClientError, ClientIdentity, ConnectOptions, DEFAULT_SERVER, TlsOptions,
};

/// Output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable text and tables.
    Human,
    /// The server's response as proto3 JSON.
    Json,
    /// `stats` only: one row per cell with ids, labels and the count (as `--csv`).
    Csv,
}

/// casereg: rare-disease case registry client.
#[derive(Debug, Parser)]
#[command(name = "casereg", version, about, long_about = None)]
pub struct Cli {
    /// Registry address.
    #[arg(long, global = true, env = "CASEREG_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Deadline for each call, in seconds.
    #[arg(
        long,
        global = true,
        env = "CASEREG_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub timeout: u64,

    /// Bearer token sent with every call. Prefer the environment variable: a command line
    /// is visible to other users of the machine.
    #[arg(
        long,
        global = true,
        env = "CASEREG_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<BearerToken>,

    /// For an https:// server: trust this CA certificate (PEM) instead of the system's store.
    #[arg(long, global = true, env = "CASEREG_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Client certificate (PEM) for a server that requires one (mutual TLS). Needs --key.
    #[arg(
        long,
        global = true,
        env = "CASEREG_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,

    /// Private key (PEM, not encrypted) of --cert.
    #[arg(
        long,
        global = true,
        env = "CASEREG_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a case from a Phenopacket JSON file (`-` reads standard input).
    Add(commands::add::Args),
    /// Show a case.
    Get(commands::get::Args),
    /// List cases.
    List(commands::list::Args),
    /// Read the audit log: every write and every refused request (administrators only).
    Audit(commands::audit::Args),
    /// Replace a case's record with the file's, if VERSION is still current.
    Update(commands::update::Args),
    /// Retract a case (kept for audit, hidden from reads).
    Delete(commands::delete::Args),
    /// Import Phenopackets from files: .json (one record), .jsonl / .ndjson (one per line),
    /// either optionally .gz; directories (recursively); `-` for JSON Lines on standard input.
    /// Exits 3 when any record was rejected.
    Import(commands::import::Args),
    /// Export cases as Phenopacket JSON Lines (`.gz` output name: compressed).
    Export(commands::export::Args),
    /// Find cases with a query such as
    /// `phenotype:"calcinosis cutis" and disease:OMIM:270150 and not excluded:HP:0001369`.
    /// Keys: phenotype (=ID for exact), excluded, disease, gene, treatment, procedure, sex,
    /// center, publication, variant; onset and age with < <= = >= > and y/m/w/d units;
    /// and, or, not, parentheses. See the README for the full syntax.
    Search(commands::search::Args),
    /// Count the cases a query matches (no query: all active cases).
    Count(commands::count::Args),
    /// Count matching cases by one or two dimensions, e.g.
    /// `--by treatment --by response --where 'phenotype:"calcinosis cutis"'`.
    /// Dimensions: disease, phenotype (phenotype:N rolls up to N levels below Phenotypic
    /// abnormality; phenotype:1 = organ systems), excluded, gene, treatment, response,
    /// procedure, sex, onset:WIDTH and age:WIDTH (buckets, e.g. onset:10y), center,
    /// publication. Counts below the server's threshold show as `<k`.
    Stats(commands::stats::Args),
    /// What else the cases matching a query have: the most frequent values among them, with
    /// their frequency in the whole registry, the ratio, and a Fisher exact test (p, and q
    /// adjusted by Benjamini–Hochberg). By default observed and excluded phenotypes, in two
    /// tables.
    Cooccur(commands::cooccur::Args),
    /// Look up HPO terms: by id (`HP:0025520`) or by words of a name or synonym.
    Term(commands::term::Args),
    /// Registry versions, ontology releases and counts.
    Info,
    /// Health check: prints SERVING and exits 0 when the server is up.
    Health,
}

impl Command {
    /// The text query the command takes, if it has one.
    fn query(&self) -> Option<&str> {
        match self {
            Self::Search(args) => Some(&args.query),
            Self::Cooccur(args) => Some(&args.query),
            Self::Count(args) => args.query.as_deref(),
            Self::Export(args) => args.query.as_deref(),
            Self::Stats(args) => args.query.as_deref(),
            Self::Add(_)
            | Self::Get(_)
            | Self::List(_)
            | Self::Audit(_)
            | Self::Update(_)
            | Self::Delete(_)
            | Self::Import(_)
            | Self::Term(_)
            | Self::Info
            | Self::Health => None,
        }
    }
}

/// Import policy for records whose id is stored with different content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnChanged {
    /// Keep the stored version (report the record as skipped).
    Skip,
    /// Store the record as a new version.
    Replace,
    /// Reject the record.
    Reject,
}

impl From<OnChanged> for pb::ChangedRecordPolicy {
    fn from(value: OnChanged) -> Self {
        match value {
            OnChanged::Skip => Self::Skip,
            OnChanged::Replace => Self::Replace,
            OnChanged::Reject => Self::Reject,
        }
    }
}

/// A failed command, with the exit code to use.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A call or input failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Writing output failed.
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    /// The server answered but is not serving.
    #[error("server is {0}")]
    NotServing(String),
    /// A text query did not parse.
    #[error("{0}")]
    Query(#[from] casereg_client::query::QueryError),
    /// An import finished, but some records were rejected.
    #[error("{0} records rejected{1}")]
    Rejected(u64, String),
}

impl CliError {
    /// Exit status: 1 for errors from the server or input, 2 for a server not serving, 3 for
    /// an import that rejected records.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Client(_) | Self::Output(_) | Self::Query(_) => 1,
            Self::NotServing(_) => 2,
            Self::Rejected(..) => 3,
        }
    }

    /// The message for standard error, with each field violation on its own line.
    pub fn report(&self) -> String {
        let mut text = format!("error: {self}");
        if let Self::Client(ClientError::InvalidArgument { violations, .. }) = self {
            for violation in violations {
                text.push_str(&format!(
                    "\n  {}: {}",
                    violation.field, violation.description
                ));
            }
        }
        text
    }
}

/// Reads the files of `--ca`, `--cert` and `--key`.
fn tls_options(cli: &Cli) -> Result<TlsOptions, ClientError> {
    let ca_pem = cli
        .ca
        .as_deref()
        .map(|path| read_pem_file("--ca", path, PemKind::Certificate))
        .transpose()?;
    let identity = match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => Some(ClientIdentity {
            cert_pem: read_pem_file("--cert", cert, PemKind::Certificate)?,
            key_pem: read_pem_file("--key", key, PemKind::PrivateKey)?,
        }),
        (None, None) => None,
        // clap already refuses these two; a `Cli` built in code is checked here.
        (Some(_), None) => return Err(flag_error("--cert", "needs --key")),
        (None, Some(_)) => return Err(flag_error("--key", "needs --cert")),
    };
    Ok(TlsOptions { ca_pem, identity })
}

fn flag_error(flag: &str, message: &str) -> ClientError {
    ClientError::Input {
        path: flag.to_owned(),
        message: message.to_owned(),
    }
}

/// Runs one command, writing results to `out`.
pub async fn execute(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let options = ConnectOptions {
        request_timeout: Duration::from_secs(cli.timeout.max(1)),
        token: cli.token.clone(),
        tls: tls_options(&cli)?,
        ..ConnectOptions::default()
    };
    // A query that does not parse is reported before any connection is tried.
    if let Some(query) = cli.command.query() {
        casereg_client::query::parse_query(query)?;
    }
    if cli.format == Format::Csv && !matches!(cli.command, Command::Stats(_)) {
        return Err(CliError::Client(ClientError::Input {
            path: "--format".to_owned(),
            message: "csv is for `casereg stats`; use human or json here".to_owned(),
        }));
    }
    let mut client = Client::connect(&cli.server, &options).await?;
    let format = cli.format;
    commands::run(cli.command, &mut client, format, out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_token_stays_out_of_help_and_debug() {
        let command = Cli::command();
        let token = command
            .get_arguments()
            .find(|arg| arg.get_id() == "token")
            .expect("--token");
        assert!(token.is_hide_env_values_set());
        assert!(token.is_global_set());

        let cli = Cli::try_parse_from(["casereg", "--token", "hunter2-token", "health"])
            .expect("valid command line");
        assert_eq!(
            cli.token.as_ref().map(BearerToken::expose),
            Some("hunter2-token")
        );
        let debug = format!("{cli:?}");
        assert!(!debug.contains("hunter2-token"), "{debug}");
    }

    #[test]
    fn cert_and_key_come_together() {
        for args in [
            &["casereg", "--cert", "c.pem", "info"][..],
            &["casereg", "info", "--key", "k.pem"][..],
        ] {
            let e = Cli::try_parse_from(args).expect_err("one without the other");
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        }
        Cli::try_parse_from(["casereg", "--cert", "c.pem", "--key", "k.pem", "info"])
            .expect("both");
    }
}
