//! One module per `casereg` command: its arguments and what it does.

pub mod add;
pub mod audit;
pub mod cooccur;
pub mod count;
pub mod delete;
pub mod export;
pub mod get;
pub mod health;
pub mod import;
pub mod info;
pub mod list;
pub mod search;
pub mod stats;
pub mod term;
pub mod update;

use std::io::Write;

use casereg_client::Client;

use crate::{CliError, Command, Format};

/// Runs `command` against `client`.
pub(crate) async fn run(
    command: Command,
    client: &mut Client,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        Command::Add(args) => add::run(args, client, format, out).await,
        Command::Get(args) => get::run(args, client, format, out).await,
        Command::List(args) => list::run(args, client, format, out).await,
        Command::Audit(args) => audit::run(args, client, format, out).await,
        Command::Update(args) => update::run(args, client, format, out).await,
        Command::Delete(args) => delete::run(args, client, format, out).await,
        Command::Import(args) => import::run(args, client, format, out).await,
        Command::Export(args) => export::run(args, client, format, out).await,
        Command::Search(args) => search::run(args, client, format, out).await,
        Command::Count(args) => count::run(args, client, format, out).await,
        Command::Stats(args) => stats::run(args, client, format, out).await,
        Command::Cooccur(args) => cooccur::run(args, client, format, out).await,
        Command::Term(args) => term::run(args, client, format, out).await,
        Command::Info => info::run(client, format, out).await,
        Command::Health => health::run(client, format, out).await,
    }
}
