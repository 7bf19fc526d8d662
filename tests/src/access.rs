//! Principals for test servers: a principals file written with the server's own
//! `add_principal`, and clients and command lines that present a principal's token.

use std::collections::BTreeMap;
use std::path::PathBuf;

use casereg_client::{BearerToken, Client};
use casereg_server::principals::{Level, NewPrincipal, Role, add_principal};

use crate::TestServer;

/// One principal to create: name, center, role, level.
pub type PrincipalSpec<'a> = (&'a str, &'a str, Role, Option<Level>);

/// The principals every access test uses (the server's own center is `local`).
pub const STANDARD: &[PrincipalSpec<'static>] = &[
    ("admin", "local", Role::Admin, None),
    ("curator-a", "center-a", Role::Curator, None),
    ("curator-b", "center-b", Role::Curator, None),
    ("reader-record", "uni", Role::Reader, Some(Level::Record)),
    ("reader-count", "uni", Role::Reader, Some(Level::Count)),
    ("reader-boolean", "uni", Role::Reader, Some(Level::Boolean)),
    ("peer", "center-c", Role::Peer, None),
];

/// A principals file in a temporary directory, and the token of each principal.
pub struct TestPrincipals {
    /// The file.
    pub path: PathBuf,
    tokens: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

impl TestPrincipals {
    /// Writes a file with these principals.
    pub fn new(specs: &[PrincipalSpec<'_>]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("principals.toml");
        let tokens = specs
            .iter()
            .map(|&(name, center, role, level)| {
                let new = NewPrincipal {
                    name,
                    center,
                    role,
                    level,
                };
                let token = add_principal(&path, &new).expect("add principal");
                (name.to_owned(), token)
            })
            .collect();
        Self {
            path,
            tokens,
            _dir: dir,
        }
    }

    /// The file with [`STANDARD`].
    pub fn standard() -> Self {
        Self::new(STANDARD)
    }

    /// The token of principal `name`.
    pub fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no test principal {name:?}"))
    }

    /// The server flags that load this file.
    pub fn flags(&self) -> [String; 2] {
        ["--principals".to_owned(), self.path.display().to_string()]
    }
}

impl TestServer {
    /// A server on a fresh data directory with these principals and extra flags.
    pub async fn start_secured(principals: &TestPrincipals, extra: &[&str]) -> Self {
        let flags = principals.flags();
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        Self::start_with(&args).await
    }

    /// A client presenting `token`.
    pub async fn client_as(&self, token: &str) -> Client {
        let mut options = self.connect_options();
        options.token = Some(BearerToken::new(token));
        Client::connect(&self.url(), &options)
            .await
            .expect("connect to test server")
    }

    /// Runs one `casereg` command line presenting `token`.
    pub async fn cli_as<S: AsRef<str>>(
        &self,
        token: &str,
        args: &[S],
    ) -> Result<String, casereg_cli::CliError> {
        let mut argv = vec!["--token".to_owned(), token.to_owned()];
        argv.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self.cli(&argv).await
    }
}
