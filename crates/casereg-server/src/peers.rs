//! This server's peers: the other centers' registries named by `--peer`, each with the
//! token this server presents to it, asked through the public client like any caller.

use std::collections::BTreeMap;
use std::time::Duration;

use casereg_client::{BearerToken, Client, ConnectOptions, TlsOptions};
use casereg_core::ids::CenterId;

use crate::ServerError;
use crate::config::Config;
/// One peer registry.
#[derive(Debug, Clone)]
pub struct Peer {
    /// How this server names it (`--peer NAME=URL`).
    pub name: String,
    pub(crate) client: Client,
}

/// This server's peers and how to ask them.
#[derive(Debug, Clone)]
pub struct Peers {
    pub(crate) list: Vec<Peer>,
    /// Deadline of each peer's answer.
    pub timeout: Duration,
    /// Hops a request from a client may take.
    pub max_hops: u32,
}

fn split_pair<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str), ServerError> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok((name, value)),
        _ => Err(ServerError::Config(format!(
            "{flag}: expected NAME=VALUE, got {:?}",
            if flag == "--peer-token" {
                "<hidden>"
            } else {
                text
            }
        ))),
    }
}

impl Peers {
    /// The peers `config` names, each with its token; clients connect on first use.
    pub fn from_config(config: &Config) -> Result<Self, ServerError> {
        let mut tokens = BTreeMap::new();
        for pair in &config.peer_tokens {
            let (name, token) = split_pair("--peer-token", pair)?;
            tokens.insert(name.to_owned(), token.to_owned());
        }
        let ca_pem =
            match &config.peer_ca {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    ServerError::Config(format!("--peer-ca {}: {e}", path.display()))
                })?),
                None => None,
            };
        let mut list: Vec<Peer> = Vec::new();
        for pair in &config.peers {
            let (name, url) = split_pair("--peer", pair)?;
            CenterId::parse(name)
                .map_err(|e| ServerError::Config(format!("--peer {pair}: the name: {}", e.0)))?;
            if list.iter().any(|p| p.name == name) {
                return Err(ServerError::Config(format!("--peer {name} is given twice")));
            }
            let options = ConnectOptions {
                connect_timeout: config.peer_timeout,
                request_timeout: config.peer_timeout,
                token: tokens.remove(name).map(BearerToken::new),
                tls: TlsOptions {
                    ca_pem: ca_pem.clone(),
                    identity: None,
                },
            };
            let options = if url.starts_with("https://") {
                options
            } else {
                ConnectOptions {
                    tls: TlsOptions::default(),
                    ..options
                }
            };
            let client = Client::connect_lazy(url, &options)
                .map_err(|e| ServerError::Config(format!("--peer {name}: {e}")))?;
            list.push(Peer {
                name: name.to_owned(),
                client,
            });
        }
        if let Some(name) = tokens.keys().next() {
            return Err(ServerError::Config(format!(
                "--peer-token for {name:?}, which is not a --peer"
            )));
        }
        Ok(Self {
            list,
            timeout: config.peer_timeout,
            max_hops: config.max_hops,
        })
    }

    /// No peers (a registry on its own).
    pub fn none() -> Self {
        Self {
            list: Vec::new(),
            timeout: Duration::from_secs(2),
            max_hops: 0,
        }
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
