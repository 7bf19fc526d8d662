//! The one table from core errors to gRPC statuses. Every variant is mapped on purpose.

use casereg_core::CoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// Turns a core error into the status a client sees. Invalid input carries a
/// `google.rpc.BadRequest` with one field violation per problem.
pub fn to_status(error: CoreError) -> Status {
    match error {
        CoreError::Invalid(violations) => {
            let message = casereg_core::error::summarize(&violations);
            let mut details = ErrorDetails::new();
            for violation in violations {
                details.add_bad_request_violation(violation.field, violation.description);
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        e @ CoreError::NotFound { .. } => Status::not_found(e.to_string()),
        e @ CoreError::VersionConflict { .. } => Status::aborted(e.to_string()),
        e @ CoreError::AlreadyExists { .. } => Status::already_exists(e.to_string()),
        CoreError::FailedPrecondition(message) => Status::failed_precondition(message),
        CoreError::PermissionDenied(message) => Status::permission_denied(message),
        e @ CoreError::Storage(_) => {
            tracing::error!(error = %e, "storage failure");
            Status::unavailable(e.to_string())
        }
        e @ CoreError::Corrupt(_) => {
            tracing::error!(error = %e, "corrupt stored data");
            Status::data_loss(e.to_string())
        }
    }
}

/// A request field that failed to parse (an id, a token) as INVALID_ARGUMENT.
pub fn invalid_field(field: &str, description: impl Into<String>) -> Status {
    to_status(CoreError::Invalid(vec![casereg_core::FieldViolation::new(
        field,
        description,
    )]))
}
