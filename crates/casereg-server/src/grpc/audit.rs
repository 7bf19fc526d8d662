//! The `Audit` gRPC service: reads the audit log a page at a time. The access layer lets
//! only administrators in; nothing here (or anywhere) writes or removes entries on request.

use std::sync::Arc;

use casereg_core::audit::{AuditEntry, Outcome};
use casereg_core::case::UnixMicros;
use casereg_proto::v1 as pb;
use casereg_proto::v1::audit_server::Audit;
use tonic::{Request, Response, Status};

use crate::grpc::status::{invalid_field, to_status};
use crate::registry::Registry;
use crate::wire::convert::timestamp;

use casereg_core::limits::{DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};

/// The gRPC face of the audit log.
#[derive(Debug, Clone)]
pub struct AuditService {
    registry: Arc<Registry>,
}

impl AuditService {
    /// Serves the audit log of `registry`'s store.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

fn to_wire(entry: AuditEntry) -> pb::AuditEntry {
    let outcome = match entry.outcome() {
        Outcome::Unspecified => pb::AuditOutcome::Unspecified,
        Outcome::Applied => pb::AuditOutcome::Applied,
        Outcome::Unchanged => pb::AuditOutcome::Unchanged,
        Outcome::Failed => pb::AuditOutcome::Failed,
        Outcome::Denied => pb::AuditOutcome::Denied,
    };
    pb::AuditEntry {
        sequence: entry.sequence,
        time: Some(timestamp(UnixMicros(entry.at_micros))),
        principal: entry.principal,
        center_id: entry.center,
        call: entry.call,
        case_id: entry.case_id,
        version: entry.version,
        outcome: outcome.into(),
        detail: entry.detail,
    }
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let pb::ListAuditEntriesRequest { after, page_size } = request.into_inner();
        let limit = match page_size {
            0 => DEFAULT_AUDIT_PAGE,
            n if n > MAX_AUDIT_PAGE => {
                return Err(invalid_field(
                    "page_size",
                    format!("is {n}; the limit is {MAX_AUDIT_PAGE}"),
                ));
            }
            n => n,
        } as usize;
        let registry = Arc::clone(&self.registry);
        // One more than asked, to know whether the log goes on.
        let mut entries =
            tokio::task::spawn_blocking(move || registry.store.audit_entries(after, limit + 1))
                .await
                .map_err(|e| Status::internal(format!("audit task failed: {e}")))?
                .map_err(to_status)?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next_after = match entries.last() {
            Some(last) if more => last.sequence,
            _ => 0,
        };
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: entries.into_iter().map(to_wire).collect(),
            next_after,
        }))
    }
}
