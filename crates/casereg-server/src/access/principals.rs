//! Principals: who may call the service, read from a TOML file that holds only token hashes.
//!
//! ```toml
//! [[principal]]
//! name = "ana"                 # unique; appears in the audit log
//! center = "hospital-a"        # the center it acts for
//! role = "curator"             # admin | curator | reader | peer
//! # level = "count"            # reader: record | count | boolean (required);
//! #                            # peer: defaults to count; admin and curator: record
//! token_sha256 = "9f86d0…"     # SHA-256 of the bearer token, 64 hex digits
//! ```
//!
//! Tokens are 256 random bits, so a plain SHA-256 is enough to make a stolen file useless
//! (there is nothing to guess); a slow password hash would only slow every call down.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use casereg_core::ids::CenterId;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Prefix of every token, so that one found in a log or a file is recognisable.
pub const TOKEN_PREFIX: &str = "crg_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// What a principal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: all centers' cases, the audit log.
    Admin,
    /// Writes its own center's cases; reads records.
    Curator,
    /// Reads at its access level.
    Reader,
    /// Another registry of the network, aggregating: count level unless configured.
    Peer,
}

impl Role {
    /// Parses `admin`, `curator`, `reader` or `peer`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Self::Admin),
            "curator" => Ok(Self::Curator),
            "reader" => Ok(Self::Reader),
            "peer" => Ok(Self::Peer),
            other => Err(format!(
                "{other:?} is not a role (admin, curator, reader or peer)"
            )),
        }
    }

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Curator => "curator",
            Self::Reader => "reader",
            Self::Peer => "peer",
        }
    }

    /// Whether it writes cases (its own center's, or any for an admin).
    pub fn writes(self) -> bool {
        matches!(self, Self::Admin | Self::Curator)
    }
}

/// How much of the data a principal's answers may show, as in GA4GH Beacon. Ordered from
/// least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only whether any case matches.
    Boolean,
    /// Counts and aggregates, with small counts withheld; no record, no case id.
    Count,
    /// Records, case ids and exact counts.
    Record,
}

impl Level {
    /// Parses `record`, `count` or `boolean`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "record" => Ok(Self::Record),
            "count" => Ok(Self::Count),
            "boolean" => Ok(Self::Boolean),
            other => Err(format!(
                "{other:?} is not an access level (record, count or boolean)"
            )),
        }
    }

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Count => "count",
            Self::Boolean => "boolean",
        }
    }
}

/// One principal.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    /// Unique name.
    pub name: String,
    /// The center it acts for.
    pub center: CenterId,
    /// What it is for.
    pub role: Role,
    /// How much its answers may show.
    pub level: Level,
    token_sha256: [u8; 32],
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is left out on purpose: it has no business in logs.
        f.debug_struct("Principal")
            .field("name", &self.name)
            .field("center", &self.center.as_str())
            .field("role", &self.role)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// The caller when no principals are configured (loopback only): an administrator of
    /// the server's own center.
    pub fn local_admin(center: CenterId) -> Self {
        Self {
            name: "local".to_owned(),
            center,
            role: Role::Admin,
            level: Level::Record,
            token_sha256: [0; 32],
        }
    }
}

/// A principals file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("principals file {path}: {message}")]
pub struct PrincipalsError {
    /// The file.
    pub path: String,
    /// What is wrong, naming the entry and the field.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    principal: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    center: String,
    role: String,
    level: Option<String>,
    token_sha256: String,
}

/// The configured principals.
#[derive(Debug, Clone)]
pub struct Principals {
    list: Vec<Arc<Principal>>,
}

/// The SHA-256 of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new random token (`crg_` and 43 base64url characters).
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the system: {e}"))?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The level a role gets when the file gives `level` (or none).
fn level_for(role: Role, level: Option<&str>) -> Result<Level, String> {
    let level = level.map(Level::parse).transpose()?;
    match (role, level) {
        (Role::Admin | Role::Curator, None | Some(Level::Record)) => Ok(Level::Record),
        (Role::Admin | Role::Curator, Some(other)) => Err(format!(
            "level: a {} reads records; level {:?} is for readers and peers",
            role.as_str(),
            other.as_str()
        )),
        (Role::Reader, None) => {
            Err("level: a reader needs an access level (record, count or boolean)".to_owned())
        }
        (Role::Peer, None) => Ok(Level::Count),
        (Role::Reader | Role::Peer, Some(level)) => Ok(level),
    }
}

impl Principals {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, PrincipalsError> {
        let text = std::fs::read_to_string(path).map_err(|e| PrincipalsError {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text).map_err(|message| PrincipalsError {
            path: path.display().to_string(),
            message,
        })
    }

    /// Checks the text of a principals file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut list: Vec<Arc<Principal>> = Vec::with_capacity(file.principal.len());
        for (i, entry) in file.principal.into_iter().enumerate() {
            let at = |message: String| format!("principal[{i}] ({:?}): {message}", entry.name);
            if entry.name.is_empty()
                || entry.name.len() > 64
                || entry.name.chars().any(char::is_control)
            {
                return Err(at(
                    "name: must be 1 to 64 characters, no control characters".to_owned(),
                ));
            }
            if list.iter().any(|p| p.name == entry.name) {
                return Err(at("name: used by an earlier principal".to_owned()));
            }
            let center =
                CenterId::parse(&entry.center).map_err(|e| at(format!("center: {}", e.0)))?;
            let role = Role::parse(&entry.role).map_err(|e| at(format!("role: {e}")))?;
            let level = level_for(role, entry.level.as_deref()).map_err(at)?;
            let token_sha256 = parse_hex_32(&entry.token_sha256).ok_or_else(|| {
                at(
                    "token_sha256: must be 64 hexadecimal digits (the SHA-256 of the token)"
                        .to_owned(),
                )
            })?;
            if list.iter().any(|p| p.token_sha256 == token_sha256) {
                return Err(at(
                    "token_sha256: the same token as an earlier principal".to_owned()
                ));
            }
            list.push(Arc::new(Principal {
                name: entry.name,
                center,
                role,
                level,
                token_sha256,
            }));
        }
        if list.is_empty() {
            return Err(
                "no [[principal]] entries: add one with `casereg-server principal add`".to_owned(),
            );
        }
        Ok(Self { list })
    }

    /// The principal whose token this is. Every entry is compared, in constant time, so
    /// the time taken says nothing about how close a guess came.
    pub fn authenticate(&self, token: &str) -> Option<&Arc<Principal>> {
        let hash = token_hash(token);
        let mut found = None;
        for principal in &self.list {
            if bool::from(principal.token_sha256.ct_eq(&hash)) {
                found = Some(principal);
            }
        }
        found
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (a loaded file never has none).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// What `casereg-server principal add` writes: a new principal with a fresh token.
#[derive(Debug, Clone)]
pub struct NewPrincipal<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Its center.
    pub center: &'a str,
    /// Its role.
    pub role: Role,
    /// Its level (readers must give one; see the module documentation).
    pub level: Option<Level>,
}

/// Appends a principal to the file at `path` (created, readable by its owner only, if
/// missing) and returns its token, which exists nowhere else: only its hash is written.
/// The file is checked with the new entry before anything is written.
pub fn add_principal(path: &Path, new: &NewPrincipal<'_>) -> Result<String, PrincipalsError> {
    let error = |message: String| PrincipalsError {
        path: path.display().to_string(),
        message,
    };
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(error(format!("cannot read: {e}"))),
    };
    let token = new_token().map_err(error)?;
    let mut block = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        block.push('\n');
    }
    block.push_str(&format!(
        "\n[[principal]]\nname = {}\ncenter = {}\nrole = {:?}\n",
        toml_string(new.name),
        toml_string(new.center),
        new.role.as_str()
    ));
    if let Some(level) = new.level {
        block.push_str(&format!("level = {:?}\n", level.as_str()));
    }
    block.push_str(&format!("token_sha256 = {:?}\n", hex(&token_hash(&token))));
    Principals::parse(&format!("{existing}{block}")).map_err(error)?;
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| error(format!("cannot write: {e}")))?;
    file.write_all(block.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| error(format!("cannot write: {e}")))?;
    Ok(token)
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, role: &str, level: Option<&str>, token: &str) -> String {
        let level = level
            .map(|l| format!("level = \"{l}\"\n"))
            .unwrap_or_default();
        format!(
            "[[principal]]\nname = \"{name}\"\ncenter = \"c1\"\nrole = \"{role}\"\n{level}token_sha256 = \"{}\"\n",
            hex(&token_hash(token))
        )
    }

    #[test]
    fn a_token_finds_its_principal_and_nothing_else() {
        let text = [
            entry("ana", "curator", None, "t-ana"),
            entry("bo", "reader", Some("count"), "t-bo"),
            entry("peer", "peer", None, "t-peer"),
        ]
        .concat();
        let principals = Principals::parse(&text).expect("parse");
        let ana = principals.authenticate("t-ana").expect("ana");
        assert_eq!(
            (ana.name.as_str(), ana.role, ana.level),
            ("ana", Role::Curator, Level::Record)
        );
        let bo = principals.authenticate("t-bo").expect("bo");
        assert_eq!(bo.level, Level::Count);
        assert_eq!(
            principals.authenticate("t-peer").expect("peer").level,
            Level::Count
        );
        assert!(principals.authenticate("t-an").is_none());
        assert!(principals.authenticate("").is_none());
        assert!(!format!("{ana:?}").contains(&hex(&token_hash("t-ana"))));
    }

    #[test]
    fn bad_files_name_the_entry_and_the_field() {
        let cases = [
            (entry("ana", "nurse", None, "t"), "role"),
            (entry("ana", "reader", None, "t"), "level"),
            (entry("ana", "curator", Some("count"), "t"), "level"),
            (entry("ana", "reader", Some("some"), "t"), "access level"),
            (
                entry("ana", "admin", None, "t").replace("c1", "bad center"),
                "center",
            ),
            (
                [
                    entry("ana", "admin", None, "t"),
                    entry("ana", "admin", None, "u"),
                ]
                .concat(),
                "name",
            ),
            (
                [
                    entry("ana", "admin", None, "t"),
                    entry("bo", "admin", None, "t"),
                ]
                .concat(),
                "same token",
            ),
            (
                entry("ana", "admin", None, "t")
                    .replace("token_sha256 = \"", "token_sha256 = \"zz"),
                "64 hexadecimal",
            ),
            (
                format!("{}colour = \"red\"\n", entry("ana", "admin", None, "t")),
                "colour",
            ),
            (String::new(), "no [[principal]]"),
        ];
        for (text, needle) in cases {
            let message = Principals::parse(&text).expect_err(&text);
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            );
        }
    }

    #[test]
    fn add_appends_a_usable_principal_and_keeps_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("principals.toml");
        std::fs::write(&path, "# our principals\n").expect("write");
        let new = NewPrincipal {
            name: "ana \"A\"",
            center: "hospital-a",
            role: Role::Curator,
            level: None,
        };
        let token = add_principal(&path, &new).expect("add");
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 43);
        let reader = NewPrincipal {
            name: "bo",
            center: "uni",
            role: Role::Reader,
            level: Some(Level::Boolean),
        };
        let second = add_principal(&path, &reader).expect("add reader");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# our principals\n"));
        assert!(!text.contains(&token) && !text.contains(&second));
        let principals = Principals::load(&path).expect("load");
        assert_eq!(principals.len(), 2);
        assert_eq!(
            principals.authenticate(&token).expect("ana").name,
            "ana \"A\""
        );
        assert_eq!(
            principals.authenticate(&second).expect("bo").level,
            Level::Boolean
        );
        // A duplicate name is refused and the file is left as it was.
        let error = add_principal(&path, &reader).expect_err("duplicate");
        assert!(error.message.contains("name"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
    }
}
