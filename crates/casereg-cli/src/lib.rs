//! The `casereg` command-line tool: human output by default, `--format json` for machines.
//! A client of the registry like any other, through the `casereg-client` library.

mod import;
mod tables;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use casereg_proto::v1 as pb;
use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use tonic_health::pb::health_check_response::ServingStatus;

use casereg_client::json::{read_phenopacket, to_pretty_json};
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
    Add {
        /// The file.
        file: PathBuf,
    },
    /// Show a case.
    Get {
        /// Case id (16 hex digits).
        case_id: String,
        /// An earlier version (default: the current one).
        #[arg(long, default_value_t = 0)]
        version: u64,
        /// Show the case even if it is retracted.
        #[arg(long)]
        include_retracted: bool,
        /// Print only the phenopacket, as Phenopacket JSON (what `add` takes back).
        #[arg(long)]
        record: bool,
    },
    /// List cases.
    List {
        /// Cases per page (at most 1000).
        #[arg(long, default_value_t = 50)]
        page_size: u32,
        /// Continue from a previous page.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Follow every page to the end.
        #[arg(long)]
        all: bool,
        /// Include retracted cases.
        #[arg(long)]
        include_retracted: bool,
    },
    /// Read the audit log: every write and every refused request (administrators only).
    Audit {
        /// Entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Entries per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Follow every page to the end of the log.
        #[arg(long)]
        all: bool,
    },
    /// Replace a case's record with the file's, if VERSION is still current.
    Update {
        /// Case id.
        case_id: String,
        /// The file (`-` for standard input).
        file: PathBuf,
        /// The version you read (see `casereg get`).
        #[arg(long)]
        version: u64,
    },
    /// Retract a case (kept for audit, hidden from reads).
    Delete {
        /// Case id.
        case_id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Only if this is still the current version.
        #[arg(long, default_value_t = 0)]
        version: u64,
    },
    /// Import Phenopackets from files: .json (one record), .jsonl / .ndjson (one per line),
    /// either optionally .gz; directories (recursively); `-` for JSON Lines on standard input.
    /// Exits 3 when any record was rejected.
    Import {
        /// Files, directories or `-`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// What to do with a record whose id is stored with different content.
        #[arg(long, value_enum, default_value_t = OnChanged::Skip)]
        on_changed: OnChanged,
        /// Write a JSON report of every rejected (and skipped, replaced or warned-about)
        /// record to this file.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Export cases as Phenopacket JSON Lines (`.gz` output name: compressed).
    Export {
        /// Output file; standard output when absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Only cases of this center (repeatable).
        #[arg(long = "center")]
        centers: Vec<String>,
        /// Only these cases (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Include retracted cases.
        #[arg(long)]
        include_retracted: bool,
        /// Only active cases matching this query (the `search` syntax).
        #[arg(long = "where")]
        query: Option<String>,
    },
    /// Find cases with a query such as
    /// `phenotype:"calcinosis cutis" and disease:OMIM:270150 and not excluded:HP:0001369`.
    /// Keys: phenotype (=ID for exact), excluded, disease, gene, treatment, procedure, sex,
    /// center, publication, variant; onset and age with < <= = >= > and y/m/w/d units;
    /// and, or, not, parentheses. See the README for the full syntax.
    Search {
        /// The query (quote it for the shell).
        query: String,
        /// Cases per page (at most 1000).
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// Continue from a previous page.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Follow every page to the end.
        #[arg(long)]
        all: bool,
        /// Return full records (with `--format json`).
        #[arg(long)]
        full: bool,
        /// Ask the server's whole network: each center's count and, where the center allows
        /// it, its first `--page-size` (at most 100) case summaries.
        #[arg(long, conflicts_with_all = ["all", "full", "page_token"])]
        network: bool,
    },
    /// Count the cases a query matches (no query: all active cases).
    Count {
        /// The query, as for `search`.
        query: Option<String>,
        /// Ask the server's whole network of registries (its peers), with a table of each
        /// center's fate.
        #[arg(long)]
        network: bool,
    },
    /// Count matching cases by one or two dimensions, e.g.
    /// `--by treatment --by response --where 'phenotype:"calcinosis cutis"'`.
    /// Dimensions: disease, phenotype (phenotype:N rolls up to N levels below Phenotypic
    /// abnormality; phenotype:1 = organ systems), excluded, gene, treatment, response,
    /// procedure, sex, onset:WIDTH and age:WIDTH (buckets, e.g. onset:10y), center,
    /// publication. Counts below the server's threshold show as `<k`.
    Stats {
        /// A dimension (give one or two).
        #[arg(long = "by", required = true)]
        by: Vec<String>,
        /// Only cases matching this query (the `search` syntax).
        #[arg(long = "where")]
        query: Option<String>,
        /// Most cells, largest first (at most 1000).
        #[arg(long, default_value_t = 20)]
        top: u32,
        /// Leave out cells with fewer cases.
        #[arg(long, default_value_t = 0)]
        min_count: u64,
        /// Print CSV: one row per cell with ids, labels and the count.
        #[arg(long)]
        csv: bool,
        /// Ask the server's whole network of registries (its peers), merged, with a table
        /// of each center's fate.
        #[arg(long)]
        network: bool,
    },
    /// What else the cases matching a query have: the most frequent values among them, with
    /// their frequency in the whole registry, the ratio, and a Fisher exact test (p, and q
    /// adjusted by Benjamini–Hochberg). By default observed and excluded phenotypes, in two
    /// tables.
    Cooccur {
        /// The query, as for `search`.
        query: String,
        /// Report this dimension only: phenotype, excluded, disease, gene, treatment,
        /// response, procedure, center or publication.
        #[arg(long)]
        of: Option<String>,
        /// Most values per table (at most 1000).
        #[arg(long, default_value_t = 20)]
        top: u32,
        /// Ask the server's whole network of registries, merged.
        #[arg(long)]
        network: bool,
    },
    /// Look up HPO terms: by id (`HP:0025520`) or by words of a name or synonym.
    Term {
        /// An HPO id, or words to search for.
        query: String,
        /// Most search hits (at most 100).
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// For an id: list all its ancestors.
        #[arg(long, conflicts_with = "descendants")]
        ancestors: bool,
        /// For an id: list all its descendants (what a phenotype search includes).
        #[arg(long)]
        descendants: bool,
        /// Include obsolete terms in search hits.
        #[arg(long)]
        include_obsolete: bool,
    },
    /// Registry versions, ontology releases and counts.
    Info,
    /// Health check: prints SERVING and exits 0 when the server is up.
    Health,
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
    if let Command::Search { query, .. }
    | Command::Count {
        query: Some(query), ..
    }
    | Command::Export {
        query: Some(query), ..
    }
    | Command::Stats {
        query: Some(query), ..
    }
    | Command::Cooccur { query, .. } = &cli.command
    {
        casereg_client::query::parse_query(query)?;
    }
    if cli.format == Format::Csv && !matches!(cli.command, Command::Stats { .. }) {
        return Err(CliError::Client(ClientError::Input {
            path: "--format".to_owned(),
            message: "csv is for `casereg stats`; use human or json here".to_owned(),
        }));
    }
    let mut client = Client::connect(&cli.server, &options).await?;
    let format = cli.format;
    match cli.command {
        Command::Add { file } => {
            let phenopacket = read_phenopacket(&file)?;
            let response = client.create_case(phenopacket).await?;
            match format {
                Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                Format::Human | Format::Csv => {
                    let case = response.case.unwrap_or_default();
                    let verb = if response.created {
                        "created"
                    } else {
                        "already stored (identical)"
                    };
                    writeln!(
                        out,
                        "{verb}: case {} version {}",
                        case.case_id, case.version
                    )?;
                    write_warnings(out, &response.warnings)?;
                }
            }
        }
        Command::Get {
            case_id,
            version,
            include_retracted,
            record,
        } => {
            let case = client
                .get_case(&case_id, version, include_retracted)
                .await?;
            if record {
                writeln!(
                    out,
                    "{}",
                    to_pretty_json(&case.phenopacket.unwrap_or_default())?
                )?;
            } else {
                match format {
                    Format::Json => writeln!(out, "{}", to_pretty_json(&case)?)?,
                    Format::Human | Format::Csv => write_case(out, &case)?,
                }
            }
        }
        Command::List {
            page_size,
            page_token,
            all,
            include_retracted,
        } => {
            let mut token = page_token;
            let mut cases = Vec::new();
            loop {
                let page = client
                    .list_cases(page_size, &token, include_retracted)
                    .await?;
                cases.extend(page.cases);
                token = page.next_page_token;
                if !all || token.is_empty() {
                    break;
                }
            }
            match format {
                Format::Json => {
                    let listing = pb::ListCasesResponse {
                        cases,
                        next_page_token: token,
                    };
                    writeln!(out, "{}", to_pretty_json(&listing)?)?;
                }
                Format::Human | Format::Csv => write_listing(out, &cases, &token)?,
            }
        }
        Command::Audit {
            after,
            page_size,
            all,
        } => {
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
        }
        Command::Update {
            case_id,
            file,
            version,
        } => {
            let phenopacket = read_phenopacket(&file)?;
            let response = client.update_case(&case_id, version, phenopacket).await?;
            match format {
                Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                Format::Human | Format::Csv => {
                    let case = response.case.unwrap_or_default();
                    if response.changed {
                        writeln!(
                            out,
                            "updated: case {} is now version {}",
                            case.case_id, case.version
                        )?;
                    } else {
                        writeln!(
                            out,
                            "unchanged: case {} stays at version {}",
                            case.case_id, case.version
                        )?;
                    }
                    write_warnings(out, &response.warnings)?;
                }
            }
        }
        Command::Delete {
            case_id,
            reason,
            version,
        } => {
            let case = client.delete_case(&case_id, version, &reason).await?;
            match format {
                Format::Json => writeln!(out, "{}", to_pretty_json(&case)?)?,
                Format::Human | Format::Csv => writeln!(
                    out,
                    "retracted: case {} (version {}); kept for audit, read it with --include-retracted",
                    case.case_id, case.version
                )?,
            }
        }
        Command::Import {
            paths,
            on_changed,
            report,
        } => {
            let options = pb::ImportOptions {
                on_changed: pb::ChangedRecordPolicy::from(on_changed).into(),
                report_all: false,
            };
            let report_data = crate::import::run_import(&mut client, &paths, options).await?;
            if let Some(path) = &report {
                let text =
                    serde_json::to_string_pretty(&report_data).map_err(std::io::Error::other)?;
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
                Format::Human | Format::Csv => crate::import::write_summary(out, &report_data)?,
            }
            if report_data.rejected > 0 {
                let hint = match &report {
                    Some(path) => format!("; details in {}", path.display()),
                    None => "; rerun with --report FILE for details".to_owned(),
                };
                return Err(CliError::Rejected(report_data.rejected, hint));
            }
        }
        Command::Export {
            output,
            centers,
            ids,
            include_retracted,
            query,
        } => {
            let filter = query
                .as_deref()
                .map(casereg_client::query::parse_query)
                .transpose()?;
            let request = pb::ExportCasesRequest {
                case_ids: ids,
                center_ids: centers,
                include_retracted,
                filter,
            };
            let written =
                crate::import::run_export(&mut client, request, output.as_deref(), out).await?;
            eprintln!("exported {written} cases");
        }
        Command::Search {
            query,
            page_size,
            network: true,
            ..
        } => {
            let request = pb::NetworkSearchRequest {
                filter: Some(casereg_client::query::parse_query(&query)?),
                per_center: page_size,
                route: None,
            };
            let response = client.network_search(request, None).await?;
            match format {
                Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                Format::Human | Format::Csv => {
                    if !response.hits.is_empty() {
                        write_hits(out, &response.hits, None, &query, "")?;
                    }
                    writeln!(
                        out,
                        "{} matching cases in the network",
                        response.total.as_ref().map_or_else(
                            || if response.exists { "some" } else { "no" }.to_owned(),
                            |t| crate::tables::count_text(Some(t))
                        )
                    )?;
                    crate::tables::write_centers(out, &response.centers, response.partial)?;
                }
            }
        }
        Command::Search {
            query,
            page_size,
            page_token,
            all,
            full,
            network: false,
        } => {
            let filter = casereg_client::query::parse_query(&query)?;
            let mut token = page_token;
            let mut hits = Vec::new();
            let mut total;
            loop {
                let page = client
                    .search_cases(Some(filter.clone()), page_size, &token, full)
                    .await?;
                hits.extend(page.hits);
                total = page.total;
                token = page.next_page_token;
                if !all || token.is_empty() {
                    break;
                }
            }
            match format {
                Format::Json => {
                    let response = pb::SearchCasesResponse {
                        hits,
                        next_page_token: token,
                        total,
                    };
                    writeln!(out, "{}", to_pretty_json(&response)?)?;
                }
                Format::Human | Format::Csv => write_hits(out, &hits, Some(total), &query, &token)?,
            }
        }
        Command::Stats {
            by,
            query,
            top,
            min_count,
            csv,
            network,
        } => {
            let group_by = by
                .iter()
                .map(|text| crate::tables::parse_group_by(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| {
                    CliError::Client(ClientError::Input {
                        path: "--by".to_owned(),
                        message,
                    })
                })?;
            let filter = query
                .as_deref()
                .map(casereg_client::query::parse_query)
                .transpose()?;
            let request = pb::AggregateRequest {
                filter,
                group_by,
                top_n: top,
                min_count,
            };
            let (response, centers) = if network {
                let answer = client
                    .network_aggregate(
                        pb::NetworkAggregateRequest {
                            request: Some(request),
                            route: None,
                        },
                        None,
                    )
                    .await?;
                (
                    answer.merged.unwrap_or_default(),
                    Some((answer.centers, answer.partial)),
                )
            } else {
                (client.aggregate(request).await?, None)
            };
            let csv = csv || format == Format::Csv;
            if let (Some((centers, partial)), Format::Human, false) = (&centers, format, csv) {
                crate::tables::write_centers(out, centers, *partial)?;
            }
            match (format, csv) {
                (_, true) => crate::tables::write_csv(out, &response)?,
                (Format::Json, false) => writeln!(out, "{}", to_pretty_json(&response)?)?,
                (Format::Human | Format::Csv, false) => {
                    crate::tables::write_table(out, &response, &by)?
                }
            }
        }
        Command::Cooccur {
            query,
            of,
            top,
            network,
        } => {
            let filter = casereg_client::query::parse_query(&query)?;
            let dimensions = match &of {
                Some(name) => vec![crate::tables::parse_group_by(name)],
                None => vec![
                    crate::tables::parse_group_by("phenotype"),
                    crate::tables::parse_group_by("excluded"),
                ],
            };
            let mut responses = Vec::new();
            for dimension in dimensions {
                let dimension = dimension.map_err(|message| {
                    CliError::Client(ClientError::Input {
                        path: "--of".to_owned(),
                        message,
                    })
                })?;
                let request = pb::CoOccurrenceRequest {
                    filter: Some(filter.clone()),
                    dimension: dimension.dimension,
                    top_n: top,
                    min_count: 0,
                };
                let response = if network {
                    let answer = client
                        .network_co_occurrence(
                            pb::NetworkCoOccurrenceRequest {
                                request: Some(request),
                                route: None,
                            },
                            None,
                        )
                        .await?;
                    if format == Format::Human && responses.is_empty() {
                        crate::tables::write_centers(out, &answer.centers, answer.partial)?;
                    }
                    answer.merged.unwrap_or_default()
                } else {
                    client.cooccurrence(request).await?
                };
                responses.push((dimension.dimension, response));
            }
            for (dimension, response) in &responses {
                match format {
                    Format::Json => writeln!(out, "{}", to_pretty_json(response)?)?,
                    Format::Human | Format::Csv => {
                        crate::tables::write_cooccurrence(out, *dimension, response)?
                    }
                }
            }
        }
        Command::Count {
            query,
            network: true,
        } => {
            let filter = query
                .as_deref()
                .map(casereg_client::query::parse_query)
                .transpose()?;
            let request = pb::NetworkCountRequest {
                filter,
                route: None,
            };
            let response = client.network_count(request, None).await?;
            match format {
                Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                Format::Human | Format::Csv => {
                    match &response.count {
                        Some(count) => writeln!(out, "{}", crate::tables::count_text(Some(count)))?,
                        None => writeln!(out, "{}", if response.exists { "yes" } else { "no" })?,
                    }
                    crate::tables::write_centers(out, &response.centers, response.partial)?;
                }
            }
        }
        Command::Count {
            query,
            network: false,
        } => {
            let filter = query
                .as_deref()
                .map(casereg_client::query::parse_query)
                .transpose()?;
            let response = client.count_cases(filter).await?;
            match format {
                Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                // At boolean level there is no count, only whether a case matches.
                Format::Human | Format::Csv => match &response.count {
                    Some(count) => writeln!(out, "{}", crate::tables::count_text(Some(count)))?,
                    None => writeln!(out, "{}", if response.exists { "yes" } else { "no" })?,
                },
            }
        }
        Command::Term {
            query,
            limit,
            ancestors,
            descendants,
            include_obsolete,
        } => {
            let looks_like_id = query.trim().to_ascii_uppercase().starts_with("HP:");
            if ancestors || descendants {
                let response = client.term_relatives(query.trim(), ancestors).await?;
                match format {
                    Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                    Format::Human | Format::Csv => write_relatives(out, &response, ancestors)?,
                }
            } else if looks_like_id {
                let response = client.get_term(query.trim()).await?;
                match format {
                    Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                    Format::Human | Format::Csv => write_term(out, &response)?,
                }
            } else {
                let response = client.search_terms(&query, limit, include_obsolete).await?;
                match format {
                    Format::Json => writeln!(out, "{}", to_pretty_json(&response)?)?,
                    Format::Human | Format::Csv => write_term_matches(out, &response)?,
                }
            }
        }
        Command::Info => {
            let info = client.registry_info().await?;
            match format {
                Format::Json => writeln!(out, "{}", to_pretty_json(&info)?)?,
                Format::Human | Format::Csv => write_info(out, &info)?,
            }
        }
        Command::Health => {
            let status = client.health().await?;
            let name = status.as_str_name();
            match format {
                Format::Json => writeln!(out, "{{\"status\": \"{name}\"}}")?,
                Format::Human | Format::Csv => writeln!(out, "{name}")?,
            }
            if status != ServingStatus::Serving {
                return Err(CliError::NotServing(name.to_owned()));
            }
        }
    }
    Ok(())
}

fn write_warnings(out: &mut dyn Write, warnings: &[pb::TermWarning]) -> std::io::Result<()> {
    for warning in warnings {
        writeln!(out, "warning: {}: {}", warning.field, warning.message)?;
    }
    Ok(())
}

fn timestamp_text(timestamp: Option<&pbjson_types::Timestamp>) -> String {
    timestamp
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn status_text(status: i32) -> &'static str {
    match pb::CaseStatus::try_from(status) {
        Ok(pb::CaseStatus::Active) => "active",
        Ok(pb::CaseStatus::Retracted) => "retracted",
        Ok(pb::CaseStatus::Unspecified) | Err(_) => "unknown",
    }
}

fn sex_text(sex: i32) -> &'static str {
    match pb::Sex::try_from(sex) {
        Ok(pb::Sex::Female) => "female",
        Ok(pb::Sex::Male) => "male",
        Ok(pb::Sex::OtherSex) => "other",
        Ok(pb::Sex::UnknownSex) | Err(_) => "unknown",
    }
}

fn term_text(term: Option<&pb::OntologyClass>) -> String {
    match term {
        Some(t) if t.label.is_empty() => t.id.clone(),
        Some(t) => format!("{} ({})", t.label, t.id),
        None => "-".to_owned(),
    }
}

fn age_text(time: Option<&pb::TimeElement>) -> Option<String> {
    use pb::time_element::Element;
    match time?.element.as_ref()? {
        Element::Age(age) => Some(age.iso8601duration.clone()),
        Element::AgeRange(range) => Some(format!(
            "{}–{}",
            range
                .start
                .as_ref()
                .map_or("", |a| a.iso8601duration.as_str()),
            range
                .end
                .as_ref()
                .map_or("", |a| a.iso8601duration.as_str())
        )),
        Element::GestationalAge(g) => Some(format!("gestational week {}+{}", g.weeks, g.days)),
        Element::OntologyClass(c) => Some(term_text(Some(c))),
        Element::Timestamp(t) => Some(timestamp_text(Some(t))),
        Element::Interval(i) => Some(format!(
            "{} – {}",
            timestamp_text(i.start.as_ref()),
            timestamp_text(i.end.as_ref())
        )),
    }
}

fn write_case(out: &mut dyn Write, case: &pb::Case) -> std::io::Result<()> {
    let p = case.phenopacket.clone().unwrap_or_default();
    writeln!(
        out,
        "case         {} (version {}, {})",
        case.case_id,
        case.version,
        status_text(case.status)
    )?;
    writeln!(out, "center       {}", case.center_id)?;
    writeln!(out, "phenopacket  {}", p.id)?;
    writeln!(
        out,
        "stored       {} (created {})",
        timestamp_text(case.updated_at.as_ref()),
        timestamp_text(case.created_at.as_ref())
    )?;
    if !case.retraction_reason.is_empty() {
        writeln!(out, "retracted    {}", case.retraction_reason)?;
    }
    if let Some(subject) = &p.subject {
        let age = age_text(subject.time_at_last_encounter.as_ref())
            .unwrap_or_else(|| "age unknown".to_owned());
        writeln!(
            out,
            "subject      {}, {}, {}",
            subject.id,
            sex_text(subject.sex),
            age
        )?;
    }
    for disease in &p.diseases {
        let onset = age_text(disease.onset.as_ref())
            .map(|a| format!(", onset {a}"))
            .unwrap_or_default();
        writeln!(
            out,
            "disease      {}{onset}",
            term_text(disease.term.as_ref())
        )?;
    }
    let (excluded, present): (Vec<_>, Vec<_>) =
        p.phenotypic_features.iter().partition(|f| f.excluded);
    writeln!(out, "present      {} phenotypic features", present.len())?;
    for feature in present {
        writeln!(out, "  + {}", term_text(feature.r#type.as_ref()))?;
    }
    writeln!(out, "excluded     {} (looked for, absent)", excluded.len())?;
    for feature in excluded {
        writeln!(out, "  - {}", term_text(feature.r#type.as_ref()))?;
    }
    for action in &p.medical_actions {
        use pb::medical_action::Action;
        let what = match &action.action {
            Some(Action::Treatment(t)) => format!("treatment {}", term_text(t.agent.as_ref())),
            Some(Action::Procedure(pr)) => format!("procedure {}", term_text(pr.code.as_ref())),
            Some(Action::RadiationTherapy(r)) => {
                format!("radiation {}", term_text(r.modality.as_ref()))
            }
            Some(Action::TherapeuticRegimen(_)) => "therapeutic regimen".to_owned(),
            None => "-".to_owned(),
        };
        let response = action
            .response_to_treatment
            .as_ref()
            .map(|r| format!(" → {}", term_text(Some(r))))
            .unwrap_or_default();
        writeln!(out, "action       {what}{response}")?;
    }
    writeln!(
        out,
        "also         {} measurements, {} biosamples, {} interpretations, {} references",
        p.measurements.len(),
        p.biosamples.len(),
        p.interpretations.len(),
        p.meta_data
            .as_ref()
            .map_or(0, |m| m.external_references.len())
    )?;
    Ok(())
}

fn write_listing(
    out: &mut dyn Write,
    cases: &[pb::CaseSummary],
    next: &str,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "case",
        "center",
        "ver",
        "status",
        "phenopacket",
        "sex",
        "diseases",
        "present",
        "excluded",
    ]);
    for case in cases {
        table.add_row([
            case.case_id.clone(),
            case.center_id.clone(),
            case.version.to_string(),
            status_text(case.status).to_owned(),
            case.phenopacket_id.clone(),
            sex_text(case.sex).to_owned(),
            case.diseases.join("; "),
            case.present_features.to_string(),
            case.excluded_features.to_string(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(out, "{} cases shown", cases.len())?;
    if !next.is_empty() {
        writeln!(out, "more: casereg list --page-token {next}")?;
    }
    Ok(())
}

fn write_audit(out: &mut dyn Write, entries: &[pb::AuditEntry], next: u64) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "seq",
        "time",
        "principal",
        "center",
        "call",
        "case",
        "ver",
        "outcome",
        "detail",
    ]);
    for entry in entries {
        let outcome = pb::AuditOutcome::try_from(entry.outcome)
            .map_or("unknown", |o| o.as_str_name())
            .trim_start_matches("AUDIT_OUTCOME_")
            .to_ascii_lowercase();
        table.add_row([
            entry.sequence.to_string(),
            timestamp_text(entry.time.as_ref()),
            entry.principal.clone(),
            entry.center_id.clone(),
            entry.call.rsplit('/').next().unwrap_or_default().to_owned(),
            entry.case_id.clone(),
            if entry.version == 0 {
                String::new()
            } else {
                entry.version.to_string()
            },
            outcome,
            entry.detail.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(out, "{} entries shown", entries.len())?;
    if next != 0 {
        writeln!(out, "more: casereg audit --after {next}")?;
    }
    Ok(())
}

fn write_hits(
    out: &mut dyn Write,
    hits: &[pb::SearchHit],
    total: Option<u64>,
    query: &str,
    next: &str,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["case", "center", "sex", "diseases", "phenotypes (first 5)"]);
    for hit in hits {
        let summary = hit.summary.clone().unwrap_or_default();
        let phenotypes: Vec<&str> = hit
            .phenotypes
            .iter()
            .map(|t| if t.label.is_empty() { &t.id } else { &t.label })
            .map(String::as_str)
            .collect();
        table.add_row([
            summary.case_id,
            summary.center_id,
            sex_text(summary.sex).to_owned(),
            summary.diseases.join("; "),
            phenotypes.join("; "),
        ]);
    }
    if !hits.is_empty() {
        writeln!(out, "{table}")?;
    }
    if let Some(total) = total {
        writeln!(out, "{} of {total} matching cases shown", hits.len())?;
    }
    if !next.is_empty() {
        writeln!(
            out,
            "more: casereg search {} --page-token {next}",
            shell_quote(query)
        )?;
    }
    Ok(())
}

/// `text` quoted for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn write_term(out: &mut dyn Write, response: &pb::GetTermResponse) -> std::io::Result<()> {
    let term = response.term.clone().unwrap_or_default();
    writeln!(out, "{}  {}", term.id, term.name)?;
    if !response.requested_id.is_empty() {
        writeln!(
            out,
            "  (asked for {}, an alternative id of this term)",
            response.requested_id
        )?;
    }
    if term.obsolete {
        let replacement = if term.replaced_by.is_empty() {
            "no replacement named".to_owned()
        } else {
            format!("replaced by {}", term.replaced_by)
        };
        writeln!(out, "  obsolete: {replacement}")?;
    }
    for parent in &term.parents {
        writeln!(out, "  is a      {}  {}", parent.id, parent.name)?;
    }
    for synonym in &term.synonyms {
        writeln!(out, "  synonym   {synonym}")?;
    }
    writeln!(out, "  children  {}", term.child_count)?;
    writeln!(out, "  release   HPO {}", response.release)?;
    Ok(())
}

fn write_term_matches(
    out: &mut dyn Write,
    response: &pb::SearchTermsResponse,
) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["id", "name", "matched synonym"]);
    for hit in &response.matches {
        let term = hit.term.clone().unwrap_or_default();
        let synonym = if hit.synonym {
            hit.matched.clone()
        } else {
            String::new()
        };
        table.add_row([term.id, term.name, synonym]);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "{} of {} matching terms shown",
        response.matches.len(),
        response.total
    )?;
    Ok(())
}

fn write_relatives(
    out: &mut dyn Write,
    response: &pb::GetRelativesResponse,
    up: bool,
) -> std::io::Result<()> {
    let term = response.term.clone().unwrap_or_default();
    let what = if up { "ancestors" } else { "descendants" };
    writeln!(
        out,
        "{} {} of {}  {}",
        response.relatives.len(),
        what,
        term.id,
        term.name
    )?;
    for relative in &response.relatives {
        writeln!(out, "  {}  {}", relative.id, relative.name)?;
    }
    Ok(())
}

fn write_info(out: &mut dyn Write, info: &pb::RegistryInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {} (schema {}, Phenopacket {})",
        info.service_name,
        info.service_version,
        info.schema_version,
        info.phenopacket_schema_version
    )?;
    writeln!(out, "center       {}", info.center_id)?;
    if let Some(caller) = &info.caller {
        let level = pb::AccessLevel::try_from(caller.level)
            .map_or("unknown", |l| l.as_str_name())
            .trim_start_matches("ACCESS_LEVEL_")
            .to_ascii_lowercase();
        writeln!(
            out,
            "you          {} ({} of center {}, {level} access)",
            caller.principal, caller.role, caller.center_id
        )?;
    }
    match (&info.caller, &info.cases) {
        // Record level: both counts, exact.
        (Some(caller), _) if caller.level == pb::AccessLevel::Record as i32 => writeln!(
            out,
            "cases        {} active, {} retracted",
            info.active_cases, info.retracted_cases
        )?,
        (_, Some(cases)) => writeln!(
            out,
            "cases        {} active (small counts withheld below {})",
            crate::tables::count_text(Some(cases)),
            info.min_cell_count
        )?,
        _ => writeln!(out, "cases        (not shown at this access level)")?,
    }
    for ontology in &info.ontologies {
        writeln!(
            out,
            "ontology     {} {} ({} terms, {})",
            ontology.prefix, ontology.version, ontology.term_count, ontology.source
        )?;
        writeln!(out, "             {}", ontology.attribution)?;
    }
    writeln!(out, "strict terms {}", info.strict_terms)?;
    if let Some(limits) = &info.limits {
        if limits.all.is_empty() {
            // A server from before the full list.
            writeln!(
                out,
                "limits       message {} B, record {} B, text {} B, id {} B, page {}",
                limits.max_message_bytes,
                limits.max_record_bytes,
                limits.max_text_bytes,
                limits.max_id_bytes,
                limits.max_page_size
            )?;
        } else {
            writeln!(out, "limits the server enforces:")?;
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(["limit", "value", "unit"]);
            for limit in &limits.all {
                table.add_row([
                    limit.name.clone(),
                    limit.value.to_string(),
                    limit.unit.clone(),
                ]);
            }
            writeln!(out, "{table}")?;
        }
    }
    Ok(())
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
