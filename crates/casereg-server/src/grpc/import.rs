//! Bulk import and export: the streaming halves of the service.
//!
//! Import reads its stream as [`zero_copy::ImportCasesRequest`]s (served by
//! [`RegistryRoutes`]): each record stays in the encoding it arrived in, and is stored as it
//! is when it is canonical, never decoded whole (see `record_walk`).
//!
//! Import is a pipeline of batches. Each batch is checked and committed on a blocking thread
//! (one sled transaction, one flush); batches are checked side by side but commit in stream
//! order, so a record that comes twice ends as its later form, as it would one at a time.
//! While two batches are in flight the next one is received and decoded; a third waits for
//! the oldest to finish, so memory stays bounded whatever the stream's length.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use casereg_core::audit::Actor;
use casereg_core::case::UnixMicros;
use casereg_core::ids::{CaseId, CenterId};
use casereg_core::limits::{
    EXPORT_CHUNK_CASES, IMPORT_BATCH_RECORDS, IMPORT_BATCHES_IN_FLIGHT, MAX_EXPORT_IDS,
    MAX_IMPORT_OUTCOMES, MAX_IMPORT_RECORDS_PER_MESSAGE, MAX_SOURCE_BYTES,
};
use casereg_core::store::{ChangedPolicy, ImportResult};
use casereg_core::{CoreError, FieldViolation};
use casereg_proto::v1 as pb;
use casereg_proto::{view, zero_copy};
use pb::import_outcome::Kind;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt as _};
use tonic::Status;

use crate::grpc::status::{invalid_field, to_status};
use crate::registry::Registry;
use crate::wire::convert;

/// A record waiting for its batch: stream position, source label, the record's encoding.
struct Pending {
    index: u64,
    source: String,
    phenopacket: Option<bytes::Bytes>,
}

type BatchTask = JoinHandle<Result<Vec<pb::ImportOutcome>, CoreError>>;

/// How many of one stream's batches have committed (or failed): batch `n` commits when
/// this reaches `n`.
#[derive(Default)]
struct CommitOrder {
    done: Mutex<u64>,
    advanced: Condvar,
}

/// Batch `n`'s place in the commit order. The turn passes on when the batch's transaction
/// has committed (the next batch's may then start while this one is flushed), or else when
/// this is dropped, as the batch fails or panics: a failed batch never holds up the ones
/// after it.
struct Turn {
    order: Arc<CommitOrder>,
    n: u64,
    passed: AtomicBool,
}

impl Turn {
    /// Blocks until every earlier batch has committed or failed.
    fn wait(&self) {
        let mut done = self
            .order
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *done < self.n {
            done = self
                .order
                .advanced
                .wait(done)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Lets the next batch commit (once; later calls do nothing).
    fn pass(&self) {
        if self.passed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.wait();
        *self
            .order
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        self.order.advanced.notify_all();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.pass();
    }
}

/// What a stream's batches share.
struct Batches {
    registry: Arc<Registry>,
    actor: Arc<Actor>,
    order: Arc<CommitOrder>,
    spawned: u64,
    in_flight: VecDeque<BatchTask>,
}

impl Batches {
    /// Starts checking and committing `batch` after the ones already spawned.
    fn spawn(&mut self, batch: Vec<Pending>, policy: ChangedPolicy) {
        let registry = Arc::clone(&self.registry);
        let actor = Arc::clone(&self.actor);
        let order = Arc::clone(&self.order);
        let n = self.spawned;
        self.spawned += 1;
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                let turn = Turn {
                    order,
                    n,
                    passed: AtomicBool::new(false),
                };
                import_batch(&registry, &actor, batch, policy, &turn)
            }));
    }

    /// The oldest batch's outcomes, once it has finished.
    async fn next_done(&mut self) -> Option<Result<Vec<pb::ImportOutcome>, Status>> {
        let task = self.in_flight.pop_front()?;
        Some(join(task).await)
    }
}

/// Runs one `ImportCases` stream to its end.
pub async fn import_stream(
    registry: Arc<Registry>,
    actor: Actor,
    stream: impl Stream<Item = Result<zero_copy::ImportCasesRequest, Status>>,
) -> Result<pb::ImportCasesResponse, Status> {
    let mut stream = std::pin::pin!(stream);
    let mut summary = Summary::default();
    let mut options: Option<pb::ImportOptions> = None;
    let mut pending: Vec<Pending> = Vec::with_capacity(IMPORT_BATCH_RECORDS);
    let mut batches = Batches {
        registry,
        actor: Arc::new(actor),
        order: Arc::default(),
        spawned: 0,
        in_flight: VecDeque::with_capacity(IMPORT_BATCHES_IN_FLIGHT + 1),
    };
    let mut next_index = 0u64;
    let mut first = true;
    while let Some(message) = stream.next().await.transpose()? {
        let zero_copy::ImportCasesRequest {
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
        for zero_copy::ImportRecord {
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
                batches.spawn(batch, policy_of(options.as_ref()));
                while batches.in_flight.len() > IMPORT_BATCHES_IN_FLIGHT {
                    if let Some(done) = batches.next_done().await {
                        summary.absorb(done?, options.as_ref());
                    }
                }
            }
        }
    }
    if !pending.is_empty() {
        batches.spawn(pending, policy_of(options.as_ref()));
    }
    while let Some(done) = batches.next_done().await {
        summary.absorb(done?, options.as_ref());
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

/// Checks every record of a batch, waits for its `turn`, commits the valid ones together,
/// and returns one outcome per record in stream order.
fn import_batch(
    registry: &Registry,
    actor: &Actor,
    batch: Vec<Pending>,
    policy: ChangedPolicy,
    turn: &Turn,
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
        let mut outcome = pb::ImportOutcome {
            index,
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
        match registry.check_encoded(phenopacket.as_deref()) {
            Ok((draft, notes)) => {
                outcome.phenopacket_id = draft.external_id.as_str().to_owned();
                outcome.case_id = CaseId::derive(&actor.center, &draft.external_id).to_string();
                outcome.warnings = notes
                    .into_iter()
                    .map(|note| convert::note_to_warning(note, &registry.hpo))
                    .collect();
                slots.push(outcomes.len());
                drafts.push(draft);
            }
            Err(CoreError::Invalid(violations)) => {
                // The record's own id, for the report, when it can be read at all.
                outcome.phenopacket_id = phenopacket
                    .as_deref()
                    .and_then(|bytes| view::Identified::decode(bytes).ok())
                    .map(|read| read.id)
                    .unwrap_or_default();
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
    turn.wait();
    let results =
        registry
            .store
            .import_batch_then(actor, &drafts, policy, UnixMicros::now(), || turn.pass())?;
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
            let query =
                crate::wire::filter::to_query(Some(filter), "filter", &registry.store.index())
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
