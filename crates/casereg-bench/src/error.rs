//! The benchmark's one error type: what failed, with enough context to act on.

use std::fmt;

/// Why a benchmark could not run, or why its results cannot be trusted.
#[derive(Debug)]
pub enum BenchError {
    /// Reading or writing a file failed.
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The input (corpus, arguments) cannot be used.
    Input(String),
    /// A cross-check failed: two ways of computing the same number disagree.
    Check(String),
    /// The registry (store, server or client) failed.
    Registry(String),
    /// The PostgreSQL peer (its programs, server or client) failed.
    Peer(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A registry error with what was being done.
    pub fn registry(context: &str, error: impl fmt::Display) -> Self {
        Self::Registry(format!("{context}: {error}"))
    }

    /// A PostgreSQL peer error with what was being done.
    pub fn peer(context: &str, error: impl fmt::Display) -> Self {
        Self::Peer(format!("{context}: {error}"))
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::Input(message) => write!(f, "input: {message}"),
            Self::Check(message) => write!(f, "cross-check failed: {message}"),
            Self::Registry(message) => write!(f, "registry: {message}"),
            Self::Peer(message) => write!(f, "PostgreSQL: {message}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Results of the benchmark's own functions.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
