//! The core error type. The server maps each variant to a gRPC status in one table.

use crate::ids::CaseId;

/// One problem with one field of a request, named by its path (`phenopacket.subject.id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, in the JSON (camelCase) spelling of the record.
    pub field: String,
    /// What is wrong and what the limit or rule is.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The input breaks one or more rules; nothing was changed.
    #[error("invalid input: {}", summarize(.0))]
    Invalid(Vec<FieldViolation>),
    /// No such case (or it is retracted and the caller did not ask for retracted cases).
    #[error("case {case_id} not found{detail}")]
    NotFound {
        /// The case asked for.
        case_id: CaseId,
        /// Extra words, e.g. " at version 7" or " (it is retracted)".
        detail: String,
    },
    /// The caller based its change on a version that is no longer current.
    #[error(
        "case {case_id} is at version {current}, not {expected}: read it again and reapply the change"
    )]
    VersionConflict {
        /// The case.
        case_id: CaseId,
        /// The version the caller named.
        expected: u64,
        /// The version stored.
        current: u64,
    },
    /// A create named a record id that is already stored with different content.
    #[error("{message}")]
    AlreadyExists {
        /// The existing case.
        case_id: CaseId,
        /// Explanation with the way forward.
        message: String,
    },
    /// The case is in a state that does not allow the call (e.g. updating a retracted case).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller may not do this (e.g. change another center's case); nothing changed.
    #[error("{0}")]
    PermissionDenied(String),
    /// The storage engine failed.
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    /// Stored bytes could not be decoded: the data directory is damaged or from another
    /// program.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One line naming the first violation and how many more there are.
pub fn summarize(violations: &[FieldViolation]) -> String {
    match violations {
        [] => "no details".to_owned(),
        [one] => format!("{}: {}", one.field, one.description),
        [first, rest @ ..] => format!(
            "{}: {} (and {} more)",
            first.field,
            first.description,
            rest.len()
        ),
    }
}

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
