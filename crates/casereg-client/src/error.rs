//! The client's error type: the one table from gRPC statuses to what callers handle.

use tonic::Code;
use tonic_types::StatusExt as _;

/// One problem with one request field, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path, e.g. `phenopacket.phenotypicFeatures[0].type.id`.
    pub field: String,
    /// What is wrong.
    pub description: String,
}

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is malformed or the server cannot be reached.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The address tried.
        url: String,
        /// Why.
        message: String,
    },
    /// The request was refused as invalid; nothing changed.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// The server's summary.
        message: String,
        /// Each problem with its field path.
        violations: Vec<Violation>,
    },
    /// The case (or version) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The case changed since it was read (stale version); nothing changed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A different record is already stored under this id.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The case's state does not allow the call.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The server is down, overloaded or shutting down; the call may be retried.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No credentials, or credentials the server does not know: give a token (`--token` or
    /// `CASEREG_TOKEN`).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller's role, center or access level does not allow the call; nothing changed.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The call's deadline passed (the server may or may not have acted on it).
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// Any other status.
    #[error("{code:?}: {message}")]
    Other {
        /// gRPC status code.
        code: Code,
        /// Server message.
        message: String,
    },
    /// A local file could not be read.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        // A status made on this side from a transport failure (a refused TLS handshake, a
        // reset connection) says only "transport error"; its cause says what happened.
        let message = match std::error::Error::source(&status) {
            Some(cause) => {
                let chain = crate::error_chain(cause);
                if chain.starts_with(status.message()) {
                    chain
                } else {
                    format!("{}: {chain}", status.message())
                }
            }
            None => status.message().to_owned(),
        };
        match status.code() {
            Code::InvalidArgument => {
                let violations = status
                    .get_details_bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .into_iter()
                            .map(|v| Violation {
                                field: v.field,
                                description: v.description,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Self::InvalidArgument {
                    message,
                    violations,
                }
            }
            Code::NotFound => Self::NotFound(message),
            Code::Aborted => Self::Conflict(message),
            Code::AlreadyExists => Self::AlreadyExists(message),
            Code::FailedPrecondition => Self::FailedPrecondition(message),
            Code::Unavailable => Self::Unavailable(message),
            Code::DeadlineExceeded | Code::Cancelled => Self::DeadlineExceeded(message),
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::PermissionDenied => Self::PermissionDenied(message),
            code @ (Code::Ok
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss) => Self::Other { code, message },
        }
    }
}

impl ClientError {
    /// The gRPC code this error came from, where it came from a status.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::InvalidArgument { .. } => Some(Code::InvalidArgument),
            Self::NotFound(_) => Some(Code::NotFound),
            Self::Conflict(_) => Some(Code::Aborted),
            Self::AlreadyExists(_) => Some(Code::AlreadyExists),
            Self::FailedPrecondition(_) => Some(Code::FailedPrecondition),
            Self::Unavailable(_) => Some(Code::Unavailable),
            Self::DeadlineExceeded(_) => Some(Code::DeadlineExceeded),
            Self::Unauthenticated(_) => Some(Code::Unauthenticated),
            Self::PermissionDenied(_) => Some(Code::PermissionDenied),
            Self::Other { code, .. } => Some(*code),
            Self::Connect { .. } | Self::Input { .. } => None,
        }
    }
}
