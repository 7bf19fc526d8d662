//! Bulk import and export: the streaming halves of the service.
//!
//! Import is a pipeline of batches: while one batch is checked and committed on a blocking
//! thread (one sled transaction, one flush), the next one is received and checked on another;
//! commits take turns. At most two batches are in flight and one is filling, so memory stays
//! bounded whatever the stream's length.

use std::sync::Arc;

use casereg_core::audit::Actor;
use casereg_core::case::UnixMicros;
use casereg_core::ids::{CaseId, CenterId};
use casereg_core::limits::{
    EXPORT_CHUNK_CASES, IMPORT_BATCH_RECORDS, MAX_EXPORT_IDS, MAX_IMPORT_OUTCOMES,
    MAX_IMPORT_RECORDS_PER_MESSAGE, MAX_SOURCE_BYTES,
};
use casereg_core::store::{ChangedPolicy, ImportResult};
use casereg_core::{CoreError, FieldViolation};
use casereg_proto::v1 as pb;
use pb::import_outcome::Kind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Status, Streaming};

use crate::convert;
use crate::service::Registry;
use crate::status::{invalid_field, to_status};

/// A record waiting for its batch: stream position, source label, the record.
struct Pending {
    index: u64,
    source: String,
    phenopacket: Option<pb::Phenopacket>,
}

type BatchTask = JoinHandle<Result<Vec<pb::ImportOutcome>, CoreError>>;

/// Runs one `ImportCases` stream to its end.
pub async fn import_stream(
    registry: Arc<Registry>,
    actor: Actor,
    mut stream: Streaming<pb::ImportCasesRequest>,
) -> Result<pb::ImportCasesResponse, Status> {
    let mut summary = Summary::default();
    let mut options: Option<pb::ImportOptions> = None;
    let mut pending: Vec<Pending> = Vec::with_capacity(IMPORT_BATCH_RECORDS);
    let mut in_flight: Option<BatchTask> = None;
    let mut next_index = 0u64;
    let mut first = true;
    let actor = Arc::new(actor);
    while let Some(message) = stream.message().await? {
        let pb::ImportCasesRequest {
            options: message_options,
            records,
        } = message;
        if first {
            options = Some(message_options.unwrap_or_default());
            first = false;
        } else if message_options.is_some() {
            return Err(invalid_field(
                "options",
                "may be set in the first message of the stream only",
            ));
        }
        if records.len() > MAX_IMPORT_RECORDS_PER_MESSAGE {
            return Err(invalid_field(
                "records",
                format!(
                    "{} records in one message; the limit is {MAX_IMPORT_RECORDS_PER_MESSAGE}",
                    records.len()
                ),
            ));
        }
        for pb::ImportRecord {
            source,
            phenopacket,
        } in records
        {
            pending.push(Pending {
                index: next_index,
                source,
                phenopacket,
            });
            next_index += 1;
            if pending.len() == IMPORT_BATCH_RECORDS {
                let batch =
                    std::mem::replace(&mut pending, Vec::with_capacity(IMPORT_BATCH_RECORDS));
                let policy = policy_of(options.as_ref());
                if let Some(previous) =
                    in_flight.replace(spawn_batch(&registry, &actor, batch, policy))
                {
                    summary.absorb(join(previous).await?, options.as_ref());
                }
            }
        }
    }
    if let Some(previous) = in_flight.take() {
        summary.absorb(join(previous).await?, options.as_ref());
    }
    if !pending.is_empty() {
        let policy = policy_of(options.as_ref());
        let last = spawn_batch(&registry, &actor, pending, policy);
        summary.absorb(join(last).await?, options.as_ref());
    }
    tracing::info!(
        received = summary.response.received,
        created = summary.response.created,
        rejected = summary.response.rejected,
        batches = summary.response.batches,
        "import"
    );
    Ok(summary.response)
}

fn policy_of(options: Option<&pb::ImportOptions>) -> ChangedPolicy {
    let on_changed = options.map_or(0, |o| o.on_changed);
    match pb::ChangedRecordPolicy::try_from(on_changed) {
        Ok(pb::ChangedRecordPolicy::Replace) => ChangedPolicy::Replace,
        Ok(pb::ChangedRecordPolicy::Reject) => ChangedPolicy::Reject,
        Ok(pb::ChangedRecordPolicy::Skip | pb::ChangedRecordPolicy::Unspecified) | Err(_) => {
            ChangedPolicy::Skip
        }
    }
}

async fn join(task: BatchTask) -> Result<Vec<pb::ImportOutcome>, Status> {
    task.await
        .map_err(|e| Status::internal(format!("import batch task failed: {e}")))?
        .map_err(to_status)
}

fn spawn_batch(
    registry: &Arc<Registry>,
    actor: &Arc<Actor>,
    batch: Vec<Pending>,
    policy: ChangedPolicy,
) -> BatchTask {
    let registry = Arc::clone(registry);
    let actor = Arc::clone(actor);
    tokio::task::spawn_blocking(move || import_batch(&registry, &actor, batch, policy))
}

/// Checks every record of a batch, commits the valid ones together, and returns one outcome
/// per record in stream order.
fn import_batch(
    registry: &Registry,
    actor: &Actor,
    batch: Vec<Pending>,
    policy: ChangedPolicy,
) -> Result<Vec<pb::ImportOutcome>, CoreError> {
    let mut outcomes: Vec<pb::ImportOutcome> = Vec::with_capacity(batch.len());
    let mut drafts = Vec::with_capacity(batch.len());
    // For each accepted draft, the position of its outcome in `outcomes`.
    let mut slots = Vec::with_capacity(batch.len());
    for Pending {
        index,
        source,
        phenopacket,
    } in batch
    {
        let phenopacket_id = phenopacket
            .as_ref()
            .map(|p| p.id.clone())
            .unwrap_or_default();
        let mut outcome = pb::ImportOutcome {
            index,
            phenopacket_id,
            ..pb::ImportOutcome::default()
        };
        if source.len() > MAX_SOURCE_BYTES {
            outcome.kind = Kind::Rejected.into();
            outcome.errors.push(field_error(FieldViolation::new(
                "source",
                format!(
                    "is {} bytes long; the limit is {MAX_SOURCE_BYTES} bytes",
                    source.len()
                ),
            )));
            outcomes.push(outcome);
            continue;
        }
        outcome.source = source;
        match registry.check_record(phenopacket.as_ref()) {
            Ok((draft, notes)) => {
                outcome.case_id = CaseId::derive(&actor.center, &draft.external_id).to_string();
                outcome.warnings = notes
                    .into_iter()
                    .map(|note| convert::note_to_warning(note, &registry.hpo))
                    .collect();
                slots.push(outcomes.len());
                drafts.push(draft);
            }
            Err(CoreError::Invalid(violations)) => {
                outcome.kind = Kind::Rejected.into();
                outcome.errors = violations.into_iter().map(field_error).collect();
            }
            Err(other) => return Err(other),
        }
        outcomes.push(outcome);
    }
    if drafts.is_empty() {
        return Ok(outcomes);
    }
    let results = registry
        .store
        .import_batch(actor, &drafts, policy, UnixMicros::now())?;
    for (slot, result) in slots.into_iter().zip(results) {
        let outcome = &mut outcomes[slot];
        let (kind, version) = match result {
            ImportResult::Created { .. } => (Kind::Created, 1),
            ImportResult::Replaced { version, .. } => (Kind::Replaced, version),
            ImportResult::Unchanged { version, .. } => (Kind::Unchanged, version),
            ImportResult::Skipped { version, .. } => {
                outcome.errors.push(pb::FieldError {
                    field: "phenopacket".to_owned(),
                    description: "differs from the stored version, which was kept (policy: skip changed records)"
                        .to_owned(),
                });
                (Kind::Skipped, version)
            }
            ImportResult::Rejected {
                version, reason, ..
            } => {
                outcome.errors.push(pb::FieldError {
                    field: "phenopacket.id".to_owned(),
                    description: reason,
                });
                (Kind::Rejected, version)
            }
        };
        outcome.kind = kind.into();
        outcome.version = version;
    }
    Ok(outcomes)
}

fn field_error(violation: FieldViolation) -> pb::FieldError {
    let FieldViolation { field, description } = violation;
    pb::FieldError { field, description }
}

/// Counts and the bounded list of outcomes.
#[derive(Default)]
struct Summary {
    response: pb::ImportCasesResponse,
}

impl Summary {
    fn absorb(&mut self, outcomes: Vec<pb::ImportOutcome>, options: Option<&pb::ImportOptions>) {
        let report_all = options.is_some_and(|o| o.report_all);
        let r = &mut self.response;
        r.batches += 1;
        for outcome in outcomes {
            r.received += 1;
            let kind = Kind::try_from(outcome.kind).unwrap_or(Kind::Unspecified);
            match kind {
                Kind::Created => r.created += 1,
                Kind::Replaced => r.replaced += 1,
                Kind::Unchanged => r.unchanged += 1,
                Kind::Skipped => r.skipped += 1,
                Kind::Rejected | Kind::Unspecified => r.rejected += 1,
            }
            if !outcome.warnings.is_empty() {
                r.with_warnings += 1;
            }
            let noteworthy =
                !matches!(kind, Kind::Created | Kind::Unchanged) || !outcome.warnings.is_empty();
            if report_all || noteworthy {
                if r.outcomes.len() < MAX_IMPORT_OUTCOMES {
                    r.outcomes.push(outcome);
                } else {
                    r.outcomes_omitted += 1;
                }
            }
        }
    }
}

/// Checks an export request and starts streaming it.
pub fn export_stream(
    registry: Arc<Registry>,
    request: pb::ExportCasesRequest,
) -> Result<mpsc::Receiver<Result<pb::ExportCasesResponse, Status>>, Status> {
    let pb::ExportCasesRequest {
        case_ids,
        center_ids,
        include_retracted,
        filter,
    } = request;
    if case_ids.len() > MAX_EXPORT_IDS {
        return Err(invalid_field(
            "case_ids",
            format!("{} ids; the limit is {MAX_EXPORT_IDS}", case_ids.len()),
        ));
    }
    let ids = case_ids
        .iter()
        .enumerate()
        .map(|(i, id)| CaseId::parse(id).map_err(|e| invalid_field(&format!("case_ids[{i}]"), e.0)))
        .collect::<Result<Vec<_>, _>>()?;
    let centers = center_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            CenterId::parse(id).map_err(|e| invalid_field(&format!("center_ids[{i}]"), e.0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A filter is read now, so that a bad one fails the call rather than the stream.
    let matching = match &filter {
        Some(filter) => {
            let query = crate::filter::to_query(Some(filter), "filter", &registry.store.index())
                .map_err(to_status)?;
            Some(registry.store.matching_ids(&query))
        }
        None => None,
    };
    // Two chunks in the channel: the reader stays just ahead of a slow client.
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let send = |chunk: Vec<pb::Case>| {
            tx.blocking_send(Ok(pb::ExportCasesResponse { cases: chunk }))
                .is_ok()
        };
        let matched: Option<std::collections::HashSet<CaseId>> =
            matching.as_ref().map(|ids| ids.iter().copied().collect());
        let keep = |case: &casereg_core::case::CaseRecord| {
            (centers.is_empty() || centers.contains(&case.center))
                && matched.as_ref().is_none_or(|m| m.contains(&case.id))
        };
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK_CASES);
        let read = |id: &CaseId| registry.store.get(id, None, include_retracted);
        let cases: Box<dyn Iterator<Item = Result<_, CoreError>>> =
            match (&matching, ids.is_empty()) {
                (_, false) => Box::new(ids.iter().map(read)),
                (Some(matching), true) => Box::new(matching.iter().map(read)),
                (None, true) => Box::new(registry.store.scan(include_retracted)),
            };
        for case in cases {
            let wire = case.and_then(|case| {
                if keep(&case) {
                    convert::case_to_wire(case).map(Some)
                } else {
                    Ok(None)
                }
            });
            match wire {
                Ok(Some(case)) => chunk.push(case),
                Ok(None) => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(to_status(e)));
                    return;
                }
            }
            if chunk.len() == EXPORT_CHUNK_CASES && !send(std::mem::take(&mut chunk)) {
                // The client went away.
                return;
            }
        }
        if !chunk.is_empty() {
            send(chunk);
        }
    });
    Ok(rx)
}
