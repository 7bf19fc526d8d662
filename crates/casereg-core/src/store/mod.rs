//! The sled-backed case store.
//!
//! Trees (all keys are bytes, see ARCHITECTURE.md "Storage encoding"):
//! - `current`: case id (16 ASCII hex bytes) → the case's current version, record included.
//! - `history`: case id + version (8 bytes big-endian) → each version a later one replaced,
//!   record included, append-only, so retraction and updates never lose history.
//! - `meta`: `format` → [`FORMAT`]; `count.active` / `count.retracted` / `write.seq` /
//!   `audit.seq` → u64 big-endian.
//! - `audit`: sequence number (8 bytes big-endian) → an [`AuditEntry`], append-only. A
//!   write's entries are written in the write's own transaction.
//!
//! A version is stored as its envelope (a length-delimited protobuf `StoredCase`) followed by
//! the record's bytes, so listings and the index read the envelope alone.
//!
//! The search [`Index`] lives in memory beside the trees: rebuilt from the envelopes when the
//! store opens and updated after every committed write, in commit order. Writers take turns
//! under one writer lock for their transactions; a writer takes its turn to publish (apply
//! its changes to the index) before it releases the writer lock, so the next writer's
//! transaction runs while these changes are applied, and its changes are applied after
//! them.
//!
//! Beside this module, which holds the store and its writes and reads: `envelope` (the
//! stored form of a version), `migration` (from `casereg-store-3`), `recovery` (the index at
//! open: snapshot or rebuild) and `tokens` (page sizes and tokens).
//!
//! Architecture invariant: every write is one sled transaction over these trees followed by
//! `Db::flush()` before the method returns, so an acknowledged write survives a crash of the
//! process (not of the machine: see ARCHITECTURE.md).

mod envelope;
mod migration;
mod recovery;
mod tokens;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::Instant;

use prost::Message as _;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree, abort};
use sled::{IVec, Transactional as _, Tree};

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::case::{CaseDraft, CaseRecord, CaseStatus, CaseSummary, UnixMicros};
use crate::error::{CoreError, FieldViolation, Result};
use crate::ids::{CaseId, CenterId};
use crate::index::{Entry, Index, Query};
use crate::limits::MAX_REASON_BYTES;
use crate::ontology::Ontology;

use envelope::{decode, encode, version_key};
use migration::{FORMAT_3, drop_trees_of_format_3, migrate_from_format_3};
use recovery::{REBUILD_CHUNK, load_snapshot, rebuild_index};
use tokens::{
    SEARCH_TOKEN_PREFIX, checked_page_size, decode_page_token, decode_search_token,
    encode_page_token, encode_token,
};

/// Identifies the on-disk layout; a data directory with another value is refused.
pub const FORMAT: &[u8] = b"casereg-store-4";

const TREE_CURRENT: &str = "current";
const TREE_HISTORY: &str = "history";
const TREE_META: &str = "meta";
const TREE_AUDIT: &str = "audit";
const KEY_FORMAT: &[u8] = b"format";
const KEY_ACTIVE: &[u8] = b"count.active";
const KEY_RETRACTED: &[u8] = b"count.retracted";
/// Number of committed writes that changed a case: what an index snapshot is checked by.
const KEY_WRITE_SEQ: &[u8] = b"write.seq";
/// The sequence number of the last audit entry.
const KEY_AUDIT_SEQ: &[u8] = b"audit.seq";
/// The gRPC methods whose writes the store records in the audit log.
pub mod calls {
    /// `CreateCase`.
    pub const CREATE: &str = "casereg.v1.CaseRegistry/CreateCase";
    /// `UpdateCase`.
    pub const UPDATE: &str = "casereg.v1.CaseRegistry/UpdateCase";
    /// `DeleteCase` (a retraction).
    pub const DELETE: &str = "casereg.v1.CaseRegistry/DeleteCase";
    /// `ImportCases`.
    pub const IMPORT: &str = "casereg.v1.CaseRegistry/ImportCases";
}
/// The index snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "index.snapshot";

/// Case counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Active cases.
    pub active: u64,
    /// Retracted cases.
    pub retracted: u64,
}

/// Result of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The stored case.
    pub case: CaseRecord,
    /// False when the identical record was already stored.
    pub created: bool,
}

/// Result of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The case after the call.
    pub case: CaseRecord,
    /// False when the record equalled the stored one (no version added).
    pub changed: bool,
}

/// What an import does with a record whose id is stored with different content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangedPolicy {
    /// Keep the stored version.
    Skip,
    /// Store the record as a new version.
    Replace,
    /// Refuse the record.
    Reject,
}

/// The result of importing one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportResult {
    /// Stored as a new case (version 1).
    Created {
        /// The case.
        case_id: CaseId,
    },
    /// Stored as a new version.
    Replaced {
        /// The case.
        case_id: CaseId,
        /// The new version.
        version: u64,
    },
    /// Identical to the stored version.
    Unchanged {
        /// The case.
        case_id: CaseId,
        /// Its version.
        version: u64,
    },
    /// Different from the stored version, which was kept.
    Skipped {
        /// The case.
        case_id: CaseId,
        /// Its (unchanged) version.
        version: u64,
    },
    /// Refused.
    Rejected {
        /// The case it would have been.
        case_id: CaseId,
        /// Its current version.
        version: u64,
        /// Why.
        reason: String,
    },
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Cases in id order, without their records (a listing never reads records).
    pub cases: Vec<CaseSummary>,
    /// Token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matching cases in document order: envelopes only, or with records when asked.
    pub cases: Vec<CaseRecord>,
    /// Token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
    /// Number of matching cases in all pages.
    pub total: u64,
}

/// How the index changes with a committed write: the old posting out, the new one in.
struct IndexChange {
    old: Option<CaseRecord>,
    new: CaseRecord,
}

fn entry(case: &CaseRecord) -> Entry<'_> {
    Entry {
        doc: case.doc,
        id: case.id,
        center: &case.center,
        active: case.status == CaseStatus::Active,
        facts: &case.facts,
    }
}

/// The registry's durable state and its search indexes.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    current: Tree,
    history: Tree,
    meta: Tree,
    audit: Tree,
    index: Arc<RwLock<Index>>,
    /// Held for a write's transaction: writers take turns, and number new documents here.
    writer: Arc<Mutex<Writer>>,
    /// Held while a write's changes are applied to the index; taken before the writer lock
    /// is released, so changes are applied in commit order.
    publishing: Arc<Mutex<()>>,
    /// Where the index snapshot is kept (none for a temporary store).
    snapshot: Option<std::path::PathBuf>,
    /// Whether the index was loaded from a snapshot when the store opened.
    index_from_snapshot: bool,
}

/// What the writer lock guards.
#[derive(Debug)]
struct Writer {
    /// The document number of the next new case: one past the last committed one (the
    /// index may not have applied it yet).
    next_doc: u64,
}

impl Writer {
    /// The document number the `n`th new case of a write gets.
    fn doc_number(&self, n: u64) -> Result<u32> {
        let doc = self.next_doc + n;
        u32::try_from(doc).map_err(|_| {
            CoreError::FailedPrecondition(format!(
                "the registry holds {} cases, the most one data directory can index",
                u32::MAX
            ))
        })
    }
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<CoreError>>;

fn tx_error(e: TransactionError<CoreError>) -> CoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => CoreError::Storage(e),
    }
}

/// A case's current version as read inside a transaction: the case, record included, and
/// its stored bytes, which move to `history` as they are when a new version replaces it.
struct Current {
    case: CaseRecord,
    bytes: IVec,
}

/// A version being replaced: its number and stored bytes.
struct Superseded<'a> {
    version: u64,
    bytes: &'a IVec,
}

/// The current version of a case, inside a transaction.
fn read_case(current: &TransactionalTree, id: &CaseId) -> TxResult<Option<Current>> {
    let Some(bytes) = current.get(id.as_bytes())? else {
        return Ok(None);
    };
    let case = decode(&bytes, true).or_else(abort)?;
    Ok(Some(Current { case, bytes }))
}

fn add_count(meta: &TransactionalTree, key: &[u8], delta: i64) -> TxResult<()> {
    let current = match meta.get(key)? {
        Some(bytes) => read_u64(&bytes).or_else(abort)?,
        None => 0,
    };
    let next = current.checked_add_signed(delta).ok_or_else(|| {
        ConflictableTransactionError::Abort(CoreError::Corrupt(format!(
            "counter {} would leave the u64 range",
            String::from_utf8_lossy(key)
        )))
    })?;
    meta.insert(key, &next.to_be_bytes())?;
    Ok(())
}

/// Appends `entries` to the audit log inside a transaction, numbering them.
fn append_audit(
    meta: &TransactionalTree,
    audit: &TransactionalTree,
    entries: impl IntoIterator<Item = AuditEntry>,
) -> TxResult<()> {
    let mut seq = match meta.get(KEY_AUDIT_SEQ)? {
        Some(bytes) => read_u64(&bytes).or_else(abort)?,
        None => 0,
    };
    let first = seq;
    for mut entry in entries {
        seq += 1;
        entry.sequence = seq;
        audit.insert(&seq.to_be_bytes(), entry.encode_to_vec())?;
    }
    if seq != first {
        meta.insert(KEY_AUDIT_SEQ, &seq.to_be_bytes())?;
    }
    Ok(())
}

/// The current version of a case `actor` is about to change: a case that does not exist,
/// or belongs to another center, is refused.
fn read_for_change(current: &TransactionalTree, actor: &Actor, id: &CaseId) -> TxResult<Current> {
    let Some(stored) = read_case(current, id)? else {
        return abort(CoreError::NotFound {
            case_id: *id,
            detail: String::new(),
        });
    };
    check_owner(actor, &stored.case)?;
    Ok(stored)
}

/// Refuses a change to a case of another center.
fn check_owner(actor: &Actor, case: &CaseRecord) -> TxResult<()> {
    if actor.may_change(&case.center) {
        Ok(())
    } else {
        abort(CoreError::PermissionDenied(format!(
            "case {} belongs to center {:?}; {:?} writes only the cases of center {:?}",
            case.id,
            case.center.as_str(),
            actor.principal,
            actor.center.as_str()
        )))
    }
}

fn read_counter(meta: &Tree, key: &[u8]) -> Result<u64> {
    match meta.get(key)? {
        Some(bytes) => read_u64(&bytes),
        None => Ok(0),
    }
}

fn read_u64(bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| CoreError::Corrupt(format!("counter of {} bytes", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

/// Makes `case` its case's current version; the version it replaces, if any, moves to
/// `history` unchanged. A new case is one insert.
fn write_version(
    current: &TransactionalTree,
    history: &TransactionalTree,
    case: &CaseRecord,
    replaced: Option<Superseded<'_>>,
) -> TxResult<()> {
    if let Some(old) = replaced {
        history.insert(&version_key(&case.id, old.version), old.bytes.clone())?;
    }
    current.insert(case.id.as_bytes(), encode(case))?;
    Ok(())
}

impl Store {
    /// Opens (or creates) the store in `path` and builds its search indexes, reading
    /// phenotypes with `hpo`.
    pub fn open(path: &Path, hpo: Arc<Ontology>) -> Result<Self> {
        let db = sled::Config::new().path(path).open()?;
        Self::from_db(db, hpo, Some(path.join(SNAPSHOT_FILE)))
    }

    /// A store in a temporary directory that is deleted when dropped (tests, tools).
    pub fn temporary(hpo: Arc<Ontology>) -> Result<Self> {
        Self::from_db(sled::Config::new().temporary(true).open()?, hpo, None)
    }

    fn from_db(
        db: sled::Db,
        hpo: Arc<Ontology>,
        snapshot: Option<std::path::PathBuf>,
    ) -> Result<Self> {
        let meta = db.open_tree(TREE_META)?;
        match meta.get(KEY_FORMAT)? {
            Some(format) if format.as_ref() == FORMAT => drop_trees_of_format_3(&db)?,
            Some(format) if format.as_ref() == FORMAT_3 => migrate_from_format_3(&db, &meta)?,
            Some(other) => {
                return Err(CoreError::Corrupt(format!(
                    "data directory has format {:?}; this server reads {:?}",
                    String::from_utf8_lossy(&other),
                    String::from_utf8_lossy(FORMAT)
                )));
            }
            None => {
                meta.insert(KEY_FORMAT, FORMAT)?;
                db.flush()?;
            }
        }
        let current = db.open_tree(TREE_CURRENT)?;
        let started = Instant::now();
        let seq = read_counter(&meta, KEY_WRITE_SEQ)?;
        let loaded = snapshot
            .as_deref()
            .and_then(|path| load_snapshot(path, &hpo, seq));
        let index_from_snapshot = loaded.is_some();
        let (index, how) = match loaded {
            Some(index) => (index, "loaded from the snapshot"),
            None => (
                rebuild_index(&current, hpo, REBUILD_CHUNK)?,
                "rebuilt from the stored cases",
            ),
        };
        tracing::info!(
            cases = index.next_doc(),
            active = index.active_count(),
            millis = started.elapsed().as_millis() as u64,
            "search indexes {how}"
        );
        Ok(Self {
            current,
            history: db.open_tree(TREE_HISTORY)?,
            meta,
            audit: db.open_tree(TREE_AUDIT)?,
            db,
            writer: Arc::new(Mutex::new(Writer {
                next_doc: index.next_doc(),
            })),
            index: Arc::new(RwLock::new(index)),
            publishing: Arc::new(Mutex::new(())),
            snapshot,
            index_from_snapshot,
        })
    }

    /// Whether the search indexes were loaded from a snapshot (rather than rebuilt) when
    /// the store opened.
    pub fn index_from_snapshot(&self) -> bool {
        self.index_from_snapshot
    }

    /// Saves the search indexes beside the data so that the next start loads them instead
    /// of rebuilding (call when stopping). The snapshot is used once: the next open deletes
    /// it, and it is only used if no write happened after it was taken.
    pub fn save_index_snapshot(&self) -> std::io::Result<()> {
        let Some(path) = &self.snapshot else {
            return Ok(());
        };
        // Holding the writer lock and the publishing turn: no write can slip between the
        // sequence number read and the index written, and none is still being applied.
        let _writer = self.lock_writer();
        let _turn = self
            .publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.db.flush().map_err(std::io::Error::other)?;
        let seq = read_counter(&self.meta, KEY_WRITE_SEQ).map_err(std::io::Error::other)?;
        let partial = path.with_extension("partial");
        {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&partial)?);
            self.index().write_snapshot(&mut file, seq)?;
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&partial, path)?;
        Ok(())
    }

    /// Reads the search indexes (briefly: writers wait for the guard to drop).
    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a committed write's changes to the index and then makes the write durable.
    /// `created` new documents were numbered. The next writer may start its transaction as
    /// soon as this one's publishing turn is taken.
    fn publish(
        &self,
        mut writer: MutexGuard<'_, Writer>,
        created: u64,
        changes: &[IndexChange],
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        writer.next_doc += created;
        let turn = self
            .publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        drop(writer);
        {
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            index.apply(
                changes
                    .iter()
                    .map(|change| (change.old.as_ref().map(entry), entry(&change.new))),
            );
        }
        drop(turn);
        self.flush()
    }

    /// Makes every write so far durable against a process crash (`sled::Db::flush`).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Stores a new case for the actor's center. Idempotent: the identical record under the
    /// same id returns the stored case with `created == false`; a different record under a
    /// stored id is refused with [`CoreError::AlreadyExists`].
    pub fn create(&self, actor: &Actor, draft: CaseDraft, now: UnixMicros) -> Result<Created> {
        let center = &actor.center;
        let id = CaseId::derive(center, &draft.external_id);
        let writer = self.lock_writer();
        let doc = writer.doc_number(0)?;
        let result = (&self.current, &self.history, &self.meta, &self.audit)
            .transaction(|(current, history, meta, audit)| {
                if let Some(existing) = read_case(current, &id)? {
                    return existing_on_create(existing.case, &draft).or_else(abort);
                }
                let case = new_case(id, center, &draft, now, doc);
                write_version(current, history, &case, None)?;
                add_count(meta, KEY_ACTIVE, 1)?;
                add_count(meta, KEY_WRITE_SEQ, 1)?;
                let entry =
                    AuditEntry::of_write(actor, now, calls::CREATE, Outcome::Applied, "created")
                        .on_case(&id, case.version);
                append_audit(meta, audit, [entry])?;
                Ok(Created {
                    case,
                    created: true,
                })
            })
            .map_err(tx_error);
        let outcome = self.audit_failure(actor, now, calls::CREATE, &id, result)?;
        if outcome.created {
            let change = IndexChange {
                old: None,
                new: outcome.case.clone(),
            };
            self.publish(writer, 1, &[change])?;
        }
        Ok(outcome)
    }

    /// Imports a batch of records for the actor's center in one transaction and one flush
    /// (group commit). Each record gets its own result; none fails another. Records with the
    /// same id within a batch are applied in order. Each created or replaced case gets its
    /// audit entry in the same transaction.
    pub fn import_batch(
        &self,
        actor: &Actor,
        drafts: &[CaseDraft],
        policy: ChangedPolicy,
        now: UnixMicros,
    ) -> Result<Vec<ImportResult>> {
        self.import_batch_then(actor, drafts, policy, now, || {})
    }

    /// [`Self::import_batch`], calling `committed` once the batch's transaction has
    /// committed (a later write is then ordered after it), before the batch is made
    /// durable and before this returns. It is not called when the transaction fails.
    pub fn import_batch_then(
        &self,
        actor: &Actor,
        drafts: &[CaseDraft],
        policy: ChangedPolicy,
        now: UnixMicros,
        committed: impl FnOnce(),
    ) -> Result<Vec<ImportResult>> {
        let center = &actor.center;
        let writer = self.lock_writer();
        let first_doc = writer.doc_number(0)?;
        let (results, created, changes) = (&self.current, &self.history, &self.meta, &self.audit)
            .transaction(|(current, history, meta, audit)| {
                let mut results = Vec::with_capacity(drafts.len());
                let mut changes = Vec::with_capacity(drafts.len());
                let mut created = 0u32;
                for draft in drafts {
                    let id = CaseId::derive(center, &draft.external_id);
                    let result = match read_case(current, &id)? {
                        None => {
                            let doc = first_doc.checked_add(created).ok_or_else(|| {
                                ConflictableTransactionError::Abort(CoreError::FailedPrecondition(
                                    "document numbers exhausted".to_owned(),
                                ))
                            })?;
                            let case = new_case(id, center, draft, now, doc);
                            write_version(current, history, &case, None)?;
                            created += 1;
                            changes.push(IndexChange {
                                old: None,
                                new: case,
                            });
                            ImportResult::Created { case_id: id }
                        }
                        Some(existing) => import_over(
                            current,
                            history,
                            existing,
                            draft,
                            policy,
                            now,
                            &mut changes,
                        )?,
                    };
                    results.push(result);
                }
                if created > 0 {
                    add_count(meta, KEY_ACTIVE, i64::from(created))?;
                }
                let created = u64::from(created);
                if !changes.is_empty() {
                    add_count(meta, KEY_WRITE_SEQ, 1)?;
                }
                let entries = results.iter().filter_map(|result| {
                    let (id, version, detail) = match result {
                        ImportResult::Created { case_id } => (case_id, 1, "created"),
                        ImportResult::Replaced { case_id, version } => {
                            (case_id, *version, "replaced")
                        }
                        _ => return None,
                    };
                    let entry =
                        AuditEntry::of_write(actor, now, calls::IMPORT, Outcome::Applied, detail);
                    Some(entry.on_case(id, version))
                });
                append_audit(meta, audit, entries)?;
                Ok((results, created, changes))
            })
            .map_err(tx_error)?;
        committed();
        self.publish(writer, created, &changes)?;
        Ok(results)
    }

    /// Passes `result` on; when it is a refusal (not a storage failure), first records it in
    /// the audit log, so that refused writes are accounted for like applied ones.
    fn audit_failure<T>(
        &self,
        actor: &Actor,
        now: UnixMicros,
        call: &str,
        id: &CaseId,
        result: Result<T>,
    ) -> Result<T> {
        let outcome = match &result {
            Ok(_) | Err(CoreError::Storage(_) | CoreError::Corrupt(_)) => return result,
            Err(CoreError::PermissionDenied(_)) => Outcome::Denied,
            Err(_) => Outcome::Failed,
        };
        if let Err(e) = &result {
            let entry =
                AuditEntry::of_write(actor, now, call, outcome, e.to_string()).on_case(id, 0);
            if let Err(log_error) = self.append_audit(entry) {
                tracing::error!(error = %log_error, "cannot record a refused write in the audit log");
            }
        }
        result
    }

    /// Appends one entry to the audit log on its own (a refused request) and returns its
    /// sequence number. It becomes durable with the next flush: sled's background flush,
    /// within half a second, or the next write.
    pub fn append_audit(&self, entry: AuditEntry) -> Result<u64> {
        (&self.meta, &self.audit)
            .transaction(|(meta, audit)| {
                append_audit(meta, audit, [entry.clone()])?;
                match meta.get(KEY_AUDIT_SEQ)? {
                    Some(bytes) => read_u64(&bytes).or_else(abort),
                    None => abort(CoreError::Corrupt("audit sequence missing".to_owned())),
                }
            })
            .map_err(tx_error)
    }

    /// Up to `limit` audit entries with sequence numbers above `after`, oldest first.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let from = after.saturating_add(1).to_be_bytes();
        let mut entries = Vec::with_capacity(limit.min(1024));
        for item in self.audit.range(from..).take(limit) {
            let (_, bytes) = item?;
            entries.push(
                AuditEntry::decode(bytes.as_ref())
                    .map_err(|e| CoreError::Corrupt(format!("audit entry: {e}")))?,
            );
        }
        Ok(entries)
    }

    /// Every case in id order (retracted ones only when asked), read lazily.
    pub fn scan(&self, include_retracted: bool) -> impl Iterator<Item = Result<CaseRecord>> + '_ {
        self.current.iter().filter_map(move |entry| {
            let case = entry
                .map_err(CoreError::from)
                .and_then(|(_, bytes)| decode(&bytes, true));
            match case {
                Ok(case) if case.status == CaseStatus::Retracted && !include_retracted => None,
                other => Some(other),
            }
        })
    }

    /// Reads a case: the current version, or `version` when given. Retracted cases are
    /// [`CoreError::NotFound`] unless `include_retracted`.
    pub fn get(
        &self,
        id: &CaseId,
        version: Option<u64>,
        include_retracted: bool,
    ) -> Result<CaseRecord> {
        let Some(bytes) = self.current.get(id.as_bytes())? else {
            return Err(CoreError::NotFound {
                case_id: *id,
                detail: String::new(),
            });
        };
        let current = decode(&bytes, true)?;
        if current.status == CaseStatus::Retracted && !include_retracted {
            return Err(CoreError::NotFound {
                case_id: *id,
                detail: " (it is retracted; ask with include_retracted to read it)".to_owned(),
            });
        }
        match version {
            None => Ok(current),
            Some(v) if v == current.version => Ok(current),
            Some(v) => match self.history.get(version_key(id, v))? {
                Some(bytes) => decode(&bytes, true),
                None => Err(CoreError::NotFound {
                    case_id: *id,
                    detail: format!(" at version {v} (current version is {})", current.version),
                }),
            },
        }
    }

    /// Replaces the record of an active case, if `expected_version` is still current and the
    /// actor may change the case's center.
    pub fn update(
        &self,
        actor: &Actor,
        id: &CaseId,
        expected_version: u64,
        draft: CaseDraft,
        now: UnixMicros,
    ) -> Result<Updated> {
        let writer = self.lock_writer();
        let result = (&self.current, &self.history, &self.meta, &self.audit)
            .transaction(|(current_tree, history, meta, audit)| {
                let Current {
                    case: current,
                    bytes,
                } = read_for_change(current_tree, actor, id)?;
                if current.version != expected_version {
                    return abort(CoreError::VersionConflict {
                        case_id: *id,
                        expected: expected_version,
                        current: current.version,
                    });
                }
                if current.status == CaseStatus::Retracted {
                    return abort(CoreError::FailedPrecondition(format!(
                        "case {id} is retracted; a retracted case cannot be updated"
                    )));
                }
                if current.external_id != draft.external_id {
                    return abort(CoreError::Invalid(vec![FieldViolation::new(
                        "phenopacket.id",
                        format!(
                            "must stay {:?} (the id the case was created with), got {:?}",
                            current.external_id.as_str(),
                            draft.external_id.as_str()
                        ),
                    )]));
                }
                if current.record == draft.record {
                    let unchanged = Updated {
                        case: current,
                        changed: false,
                    };
                    return Ok((unchanged, None));
                }
                let old = without_record(&current);
                let replaced = Superseded {
                    version: current.version,
                    bytes: &bytes,
                };
                let case = CaseRecord {
                    version: current.version + 1,
                    updated: now,
                    record: draft.record.clone(),
                    digest: draft.digest.clone(),
                    facts: draft.facts.clone(),
                    ..current
                };
                write_version(current_tree, history, &case, Some(replaced))?;
                add_count(meta, KEY_WRITE_SEQ, 1)?;
                let entry =
                    AuditEntry::of_write(actor, now, calls::UPDATE, Outcome::Applied, "updated")
                        .on_case(id, case.version);
                append_audit(meta, audit, [entry])?;
                let updated = Updated {
                    case,
                    changed: true,
                };
                Ok((updated, Some(old)))
            })
            .map_err(tx_error);
        let (outcome, old) = self.audit_failure(actor, now, calls::UPDATE, id, result)?;
        if let Some(old) = old {
            let change = IndexChange {
                old: Some(old),
                new: without_record(&outcome.case),
            };
            self.publish(writer, 0, &[change])?;
        }
        Ok(outcome)
    }

    /// Retracts a case (adds a version with status retracted). Retracting a retracted case
    /// changes nothing. With `expected_version`, refuses unless it is current.
    pub fn retract(
        &self,
        actor: &Actor,
        id: &CaseId,
        expected_version: Option<u64>,
        reason: &str,
        now: UnixMicros,
    ) -> Result<CaseRecord> {
        if reason.len() > MAX_REASON_BYTES {
            return Err(CoreError::Invalid(vec![FieldViolation::new(
                "reason",
                format!(
                    "is {} bytes long; the limit is {MAX_REASON_BYTES} bytes",
                    reason.len()
                ),
            )]));
        }
        let writer = self.lock_writer();
        let result = (&self.current, &self.history, &self.meta, &self.audit)
            .transaction(|(current_tree, history, meta, audit)| {
                let Current {
                    case: current,
                    bytes,
                } = read_for_change(current_tree, actor, id)?;
                if let Some(expected) = expected_version
                    && expected != current.version
                {
                    return abort(CoreError::VersionConflict {
                        case_id: *id,
                        expected,
                        current: current.version,
                    });
                }
                if current.status == CaseStatus::Retracted {
                    return Ok((current, None));
                }
                let old = without_record(&current);
                let replaced = Superseded {
                    version: current.version,
                    bytes: &bytes,
                };
                let case = CaseRecord {
                    version: current.version + 1,
                    updated: now,
                    status: CaseStatus::Retracted,
                    retraction_reason: reason.to_owned(),
                    ..current
                };
                write_version(current_tree, history, &case, Some(replaced))?;
                add_count(meta, KEY_ACTIVE, -1)?;
                add_count(meta, KEY_RETRACTED, 1)?;
                add_count(meta, KEY_WRITE_SEQ, 1)?;
                let detail = if reason.is_empty() {
                    "retracted".to_owned()
                } else {
                    format!("retracted: {reason}")
                };
                let entry =
                    AuditEntry::of_write(actor, now, calls::DELETE, Outcome::Applied, detail)
                        .on_case(id, case.version);
                append_audit(meta, audit, [entry])?;
                Ok((case, Some(old)))
            })
            .map_err(tx_error);
        let (case, old) = self.audit_failure(actor, now, calls::DELETE, id, result)?;
        if let Some(old) = old {
            let change = IndexChange {
                old: Some(old),
                new: without_record(&case),
            };
            self.publish(writer, 0, &[change])?;
        }
        Ok(case)
    }

    /// One page of cases in id order, after the position `page_token` names.
    /// `page_size` 0 means [`DEFAULT_PAGE_SIZE`]; above [`MAX_PAGE_SIZE`] is an error.
    pub fn list(&self, page_size: u32, page_token: &str, include_retracted: bool) -> Result<Page> {
        let limit = checked_page_size(page_size)?;
        let start = if page_token.is_empty() {
            None
        } else {
            Some(decode_page_token(page_token)?)
        };
        let range = match &start {
            // Keys are fixed-length, so "after id" is "from id + 0x00".
            Some(after) => {
                let mut from = after.as_bytes().to_vec();
                from.push(0);
                self.current.range(from..)
            }
            None => self.current.range::<&[u8], _>(..),
        };
        let mut cases = Vec::with_capacity(limit);
        let mut more = false;
        for entry in range {
            let (_, bytes) = entry?;
            let case = decode(&bytes, false)?;
            if case.status == CaseStatus::Retracted && !include_retracted {
                continue;
            }
            if cases.len() == limit {
                more = true;
                break;
            }
            cases.push(CaseSummary::from(case));
        }
        let next_page_token = match cases.last() {
            Some(last) if more => Some(encode_page_token(&last.id)),
            _ => None,
        };
        Ok(Page {
            cases,
            next_page_token,
        })
    }

    /// One page of the active cases matching `query`, in document order (the order cases
    /// were first stored). Records are read only when `with_records`.
    pub fn search(
        &self,
        query: &Query,
        page_size: u32,
        page_token: &str,
        with_records: bool,
    ) -> Result<SearchPage> {
        let limit = checked_page_size(page_size)?;
        let after = match page_token {
            "" => None,
            token => Some(decode_search_token(token)?),
        };
        let (hits, total) = {
            let index = self.index();
            let mut matching = index.matching(query);
            let total = matching.len();
            if let Some(after) = after {
                matching.remove_range(..=after);
            }
            let hits: Vec<(u32, CaseId)> = matching
                .iter()
                .take(limit + 1)
                .filter_map(|doc| index.case_id(doc).map(|id| (doc, id)))
                .collect();
            (hits, total)
        };
        let more = hits.len() > limit;
        let mut cases = Vec::with_capacity(limit);
        for (_, id) in hits.iter().take(limit) {
            let Some(bytes) = self.current.get(id.as_bytes())? else {
                continue;
            };
            let case = decode(&bytes, with_records)?;
            if case.status != CaseStatus::Active {
                // Retracted after the index was read.
                continue;
            }
            cases.push(case);
        }
        let next_page_token = match hits.get(limit - 1) {
            Some((doc, _)) if more => Some(encode_token(SEARCH_TOKEN_PREFIX, &doc.to_string())),
            _ => None,
        };
        Ok(SearchPage {
            cases,
            next_page_token,
            total,
        })
    }

    /// Every active case matching `query`, in document order.
    pub fn matching_ids(&self, query: &Query) -> Vec<CaseId> {
        let index = self.index();
        index
            .matching(query)
            .iter()
            .filter_map(|doc| index.case_id(doc))
            .collect()
    }

    /// How many active cases match `query`.
    pub fn count(&self, query: &Query) -> u64 {
        self.index().count(query)
    }

    /// Case counts by status.
    pub fn counts(&self) -> Result<Counts> {
        let read = |key: &[u8]| -> Result<u64> {
            match self.meta.get(key)? {
                Some(bytes) => read_u64(&bytes),
                None => Ok(0),
            }
        };
        Ok(Counts {
            active: read(KEY_ACTIVE)?,
            retracted: read(KEY_RETRACTED)?,
        })
    }
}

/// A copy of a case's envelope and facts, without the record bytes (what the index needs).
fn without_record(case: &CaseRecord) -> CaseRecord {
    CaseRecord {
        id: case.id,
        center: case.center.clone(),
        version: case.version,
        created: case.created,
        updated: case.updated,
        status: case.status,
        retraction_reason: case.retraction_reason.clone(),
        external_id: case.external_id.clone(),
        record: Vec::new(),
        digest: case.digest.clone(),
        facts: case.facts.clone(),
        doc: case.doc,
    }
}

/// Version 1 of a case made from a draft.
fn new_case(
    id: CaseId,
    center: &CenterId,
    draft: &CaseDraft,
    now: UnixMicros,
    doc: u32,
) -> CaseRecord {
    CaseRecord {
        id,
        center: center.clone(),
        version: 1,
        created: now,
        updated: now,
        status: CaseStatus::Active,
        retraction_reason: String::new(),
        external_id: draft.external_id.clone(),
        record: draft.record.clone(),
        digest: draft.digest.clone(),
        facts: draft.facts.clone(),
        doc,
    }
}

/// An imported record whose case id is already stored.
fn import_over(
    current: &TransactionalTree,
    history: &TransactionalTree,
    stored: Current,
    draft: &CaseDraft,
    policy: ChangedPolicy,
    now: UnixMicros,
    changes: &mut Vec<IndexChange>,
) -> TxResult<ImportResult> {
    let rejected = |existing: &CaseRecord, reason: String| ImportResult::Rejected {
        case_id: existing.id,
        version: existing.version,
        reason,
    };
    let Current {
        case: existing,
        bytes,
    } = stored;
    if existing.external_id != draft.external_id {
        let reason = format!(
            "case id {} is taken by record {:?}; rename this record",
            existing.id,
            existing.external_id.as_str()
        );
        return Ok(rejected(&existing, reason));
    }
    if existing.record == draft.record {
        return Ok(ImportResult::Unchanged {
            case_id: existing.id,
            version: existing.version,
        });
    }
    if existing.status == CaseStatus::Retracted {
        let reason = format!(
            "case {} is retracted; retracted cases are not changed by imports",
            existing.id
        );
        return Ok(rejected(&existing, reason));
    }
    match policy {
        ChangedPolicy::Skip => Ok(ImportResult::Skipped {
            case_id: existing.id,
            version: existing.version,
        }),
        ChangedPolicy::Reject => {
            let reason = format!(
                "differs from stored case {} version {} (policy: reject changed records)",
                existing.id, existing.version
            );
            Ok(rejected(&existing, reason))
        }
        ChangedPolicy::Replace => {
            let old = without_record(&existing);
            let replaced = Superseded {
                version: existing.version,
                bytes: &bytes,
            };
            let case = CaseRecord {
                version: existing.version + 1,
                updated: now,
                record: draft.record.clone(),
                digest: draft.digest.clone(),
                facts: draft.facts.clone(),
                ..existing
            };
            write_version(current, history, &case, Some(replaced))?;
            let result = ImportResult::Replaced {
                case_id: case.id,
                version: case.version,
            };
            changes.push(IndexChange {
                old: Some(old),
                new: without_record(&case),
            });
            Ok(result)
        }
    }
}

fn existing_on_create(existing: CaseRecord, draft: &CaseDraft) -> Result<Created> {
    if existing.external_id != draft.external_id {
        // Two record ids hashing to the same 64-bit case id: refuse rather than overwrite.
        return Err(CoreError::AlreadyExists {
            case_id: existing.id,
            message: format!(
                "case id {} is taken by record {:?}; rename record {:?}",
                existing.id,
                existing.external_id.as_str(),
                draft.external_id.as_str()
            ),
        });
    }
    if existing.status == CaseStatus::Retracted {
        return Err(CoreError::AlreadyExists {
            case_id: existing.id,
            message: format!(
                "record {:?} was stored as case {} and retracted; retracted cases stay for audit and cannot be created again",
                draft.external_id.as_str(),
                existing.id
            ),
        });
    }
    if existing.record == draft.record {
        return Ok(Created {
            case: existing,
            created: false,
        });
    }
    Err(CoreError::AlreadyExists {
        case_id: existing.id,
        message: format!(
            "record {:?} is already stored as case {} (version {}) with different content; use UpdateCase with expected_version {}",
            draft.external_id.as_str(),
            existing.id,
            existing.version,
            existing.version
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{CaseDigest, CaseFacts, Coded};
    use crate::ids::{ExternalId, TermId};
    use crate::index::Expansion;
    use crate::limits::MAX_PAGE_SIZE;

    use super::envelope::StoredCase;
    use super::migration::{TREE_CASES_3, TREE_VERSIONS_3};
    use crate::limits::IMPORT_BATCH_RECORDS;

    /// Runs `open` on a data directory this process has just closed, again while it fails
    /// on the directory's lock (for up to five seconds): a dropped sled database's flusher
    /// thread can hold the lock a moment longer.
    fn retry_locked<T, E: std::fmt::Display>(
        open: impl Fn() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut tries = 0;
        loop {
            match open() {
                Err(e) if tries < 50 && e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn store_at(path: &Path) -> Store {
        retry_locked(|| Store::open(path, hpo())).unwrap()
    }

    fn sled_at(path: &Path) -> sled::Db {
        retry_locked(|| sled::Config::new().path(path).open()).unwrap()
    }

    fn draft(external: &str, record: &[u8]) -> CaseDraft {
        CaseDraft {
            external_id: ExternalId::parse(external).unwrap(),
            record: record.to_vec(),
            digest: CaseDigest::default(),
            facts: CaseFacts::default(),
        }
    }

    /// The embedded HPO release, loaded once for all tests.
    pub(crate) fn hpo() -> Arc<Ontology> {
        static HPO: std::sync::OnceLock<Arc<Ontology>> = std::sync::OnceLock::new();
        HPO.get_or_init(|| Arc::new(Ontology::embedded().unwrap()))
            .clone()
    }

    fn center() -> CenterId {
        CenterId::parse("center-a").unwrap()
    }

    fn actor() -> Actor {
        Actor {
            principal: "curator".to_owned(),
            center: center(),
            any_center: false,
        }
    }

    fn create(store: &Store, external: &str, record: &[u8]) -> CaseId {
        let created = store.create(&actor(), draft(external, record), UnixMicros(1));
        created.unwrap().case.id
    }

    #[test]
    fn another_centers_curator_changes_nothing_and_every_outcome_is_audited() {
        let store = Store::temporary(hpo()).unwrap();
        let id = create(&store, "p1", b"one");
        let other = Actor {
            principal: "bo".to_owned(),
            center: CenterId::parse("center-b").unwrap(),
            any_center: false,
        };
        let denied = store
            .update(&other, &id, 1, draft("p1", b"two"), UnixMicros(2))
            .unwrap_err();
        assert!(matches!(denied, CoreError::PermissionDenied(_)), "{denied}");
        assert!(matches!(
            store.retract(&other, &id, None, "", UnixMicros(3)),
            Err(CoreError::PermissionDenied(_))
        ));
        assert_eq!(store.get(&id, None, false).unwrap().version, 1);
        let stale = store.update(&actor(), &id, 7, draft("p1", b"two"), UnixMicros(4));
        assert!(matches!(stale, Err(CoreError::VersionConflict { .. })));
        let admin = Actor {
            any_center: true,
            ..other
        };
        store
            .retract(&admin, &id, Some(1), "dup", UnixMicros(5))
            .unwrap();
        let log = store.audit_entries(0, 100).unwrap();
        let seen: Vec<(u64, &str, &str, u64, Outcome)> = log
            .iter()
            .map(|e| {
                (
                    e.sequence,
                    e.principal.as_str(),
                    e.call.as_str(),
                    e.version,
                    e.outcome(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "curator", calls::CREATE, 1, Outcome::Applied),
                (2, "bo", calls::UPDATE, 0, Outcome::Denied),
                (3, "bo", calls::DELETE, 0, Outcome::Denied),
                (4, "curator", calls::UPDATE, 0, Outcome::Failed),
                (5, "bo", calls::DELETE, 2, Outcome::Applied),
            ]
        );
        assert!(log.iter().all(|e| e.case_id == id.as_str()));
        assert_eq!(store.audit_entries(3, 1).unwrap()[0].sequence, 4);
    }

    #[test]
    fn create_is_idempotent_and_refuses_changed_content() {
        let store = Store::temporary(hpo()).unwrap();
        let first = store
            .create(&actor(), draft("p1", b"one"), UnixMicros(1))
            .unwrap();
        assert!(first.created);
        assert_eq!(first.case.version, 1);
        let again = store
            .create(&actor(), draft("p1", b"one"), UnixMicros(2))
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.case, first.case);
        let err = store
            .create(&actor(), draft("p1", b"two"), UnixMicros(3))
            .unwrap_err();
        assert!(matches!(err, CoreError::AlreadyExists { .. }), "{err}");
        assert_eq!(
            store.get(&first.case.id, None, false).unwrap().record,
            b"one"
        );
        assert_eq!(
            store.counts().unwrap(),
            Counts {
                active: 1,
                retracted: 0
            }
        );
    }

    #[test]
    fn update_needs_the_current_version_and_keeps_history() {
        let store = Store::temporary(hpo()).unwrap();
        let id = create(&store, "p1", b"v1");
        let updated = store
            .update(&actor(), &id, 1, draft("p1", b"v2"), UnixMicros(2))
            .unwrap();
        assert!(updated.changed);
        assert_eq!(updated.case.version, 2);
        let stale = store
            .update(&actor(), &id, 1, draft("p1", b"v3"), UnixMicros(3))
            .unwrap_err();
        assert!(
            matches!(stale, CoreError::VersionConflict { current: 2, .. }),
            "{stale}"
        );
        let same = store
            .update(&actor(), &id, 2, draft("p1", b"v2"), UnixMicros(4))
            .unwrap();
        assert!(!same.changed);
        assert_eq!(store.get(&id, None, false).unwrap().record, b"v2");
        assert_eq!(store.get(&id, Some(1), false).unwrap().record, b"v1");
        let renamed = store
            .update(&actor(), &id, 2, draft("p2", b"v3"), UnixMicros(5))
            .unwrap_err();
        assert!(matches!(renamed, CoreError::Invalid(_)), "{renamed}");
    }

    #[test]
    fn retraction_hides_but_keeps_the_case() {
        let store = Store::temporary(hpo()).unwrap();
        let id = create(&store, "p1", b"v1");
        let stale = store
            .retract(&actor(), &id, Some(7), "", UnixMicros(2))
            .unwrap_err();
        assert!(matches!(stale, CoreError::VersionConflict { .. }));
        let retracted = store
            .retract(&actor(), &id, Some(1), "duplicate", UnixMicros(2))
            .unwrap();
        assert_eq!(retracted.status, CaseStatus::Retracted);
        assert_eq!(retracted.version, 2);
        assert!(matches!(
            store.get(&id, None, false),
            Err(CoreError::NotFound { .. })
        ));
        let kept = store.get(&id, None, true).unwrap();
        assert_eq!(
            (kept.record.as_slice(), kept.retraction_reason.as_str()),
            (&b"v1"[..], "duplicate")
        );
        assert_eq!(
            store
                .retract(&actor(), &id, None, "again", UnixMicros(3))
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            store.counts().unwrap(),
            Counts {
                active: 0,
                retracted: 1
            }
        );
        assert!(matches!(
            store.update(&actor(), &id, 2, draft("p1", b"v3"), UnixMicros(4)),
            Err(CoreError::FailedPrecondition(_))
        ));
        assert!(matches!(
            store.create(&actor(), draft("p1", b"v1"), UnixMicros(5)),
            Err(CoreError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn listing_pages_through_every_active_case_once() {
        let store = Store::temporary(hpo()).unwrap();
        let mut ids = Vec::new();
        for i in 0..23 {
            let created = store
                .create(&actor(), draft(&format!("p{i}"), b"x"), UnixMicros(1))
                .unwrap();
            ids.push(created.case.id);
        }
        store
            .retract(&actor(), &ids[5], None, "", UnixMicros(2))
            .unwrap();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = store.list(4, &token, false).unwrap();
            assert!(page.cases.len() <= 4);
            seen.extend(page.cases.iter().map(|c| c.id));
            match page.next_page_token {
                Some(next) => token = next,
                None => break,
            }
        }
        let mut expected: Vec<CaseId> = ids.iter().copied().filter(|id| *id != ids[5]).collect();
        expected.sort();
        assert_eq!(seen, expected);
        assert_eq!(store.list(0, "", true).unwrap().cases.len(), 23);
    }

    #[test]
    fn listing_limits_are_enforced() {
        let store = Store::temporary(hpo()).unwrap();
        assert!(store.list(MAX_PAGE_SIZE, "", false).is_ok());
        assert!(matches!(
            store.list(MAX_PAGE_SIZE + 1, "", false),
            Err(CoreError::Invalid(v)) if v[0].field == "page_size"
        ));
        assert!(matches!(
            store.list(10, "not-a-token", false),
            Err(CoreError::Invalid(v)) if v[0].field == "page_token"
        ));
    }

    #[test]
    fn the_index_rebuilt_in_chunks_equals_one_built_case_by_case_in_document_order() {
        const TERMS: &[u32] = &[118, 152, 951, 11_121, 25_520, 1250, 7359, 2069, 4322];
        let store = Store::temporary(hpo()).unwrap();
        let mut next = crate::index::tests::draws(5);
        let drafts: Vec<CaseDraft> = (0..300)
            .map(|i| {
                let mut case = draft(&format!("case-{i}"), format!("record {i}").as_bytes());
                let mut present: Vec<TermId> = (0..=next(4))
                    .map(|_| TermId(TERMS[next(TERMS.len() as u64) as usize]))
                    .collect();
                present.sort_unstable();
                present.dedup();
                case.facts.present = present;
                case.facts.excluded = vec![TermId(TERMS[next(TERMS.len() as u64) as usize])];
                let disease = 100_000 + next(7);
                case.facts.diseases = vec![Coded {
                    id: format!("OMIM:{disease}"),
                    label: format!("disease {disease}"),
                }];
                case.facts.sex = next(3) as i32;
                case
            })
            .collect();
        // Document numbers follow the import; the tree gives the cases in case-id order.
        store
            .import_batch(&actor(), &drafts, ChangedPolicy::Reject, UnixMicros(1))
            .unwrap();
        let retracted = CaseId::derive(&center(), &ExternalId::parse("case-17").unwrap());
        store
            .retract(
                &actor(),
                &retracted,
                Some(1),
                "entered twice",
                UnixMicros(2),
            )
            .unwrap();

        let mut cases: Vec<CaseRecord> = store.scan(true).map(Result::unwrap).collect();
        cases.sort_unstable_by_key(|case| case.doc);
        let mut one_by_one = Index::new(hpo(), Expansion::AncestorClosure);
        for case in &cases {
            one_by_one.insert(entry(case));
        }
        let snapshot = |index: &Index| {
            let mut bytes = Vec::new();
            index.write_snapshot(&mut bytes, 1).unwrap();
            bytes
        };
        let expected = snapshot(&one_by_one);
        for chunk in [1, 7, 64, 1000] {
            let rebuilt = rebuild_index(&store.current, hpo(), chunk).unwrap();
            assert!(snapshot(&rebuilt) == expected, "chunks of {chunk}");
        }
        assert_eq!(one_by_one.active_count(), 299);
    }

    #[test]
    fn import_batches_apply_each_record_and_the_policy() {
        let store = Store::temporary(hpo()).unwrap();
        let id = create(&store, "kept", b"v1");
        let batch = [
            draft("new", b"n1"),
            draft("kept", b"v1"),
            draft("kept", b"v2"),
            draft("new", b"n1"),
        ];
        let results = store
            .import_batch(&actor(), &batch, ChangedPolicy::Skip, UnixMicros(2))
            .unwrap();
        assert!(matches!(&results[0], ImportResult::Created { .. }));
        assert!(
            matches!(&results[1], ImportResult::Unchanged { case_id, version: 1 } if *case_id == id)
        );
        assert!(matches!(
            &results[2],
            ImportResult::Skipped { version: 1, .. }
        ));
        assert!(matches!(
            &results[3],
            ImportResult::Unchanged { version: 1, .. }
        ));
        let replaced = store
            .import_batch(
                &actor(),
                &batch[2..3],
                ChangedPolicy::Replace,
                UnixMicros(3),
            )
            .unwrap();
        assert!(matches!(
            &replaced[0],
            ImportResult::Replaced { version: 2, .. }
        ));
        let rejected = store
            .import_batch(
                &actor(),
                &[draft("kept", b"v3")],
                ChangedPolicy::Reject,
                UnixMicros(4),
            )
            .unwrap();
        assert!(matches!(
            &rejected[0],
            ImportResult::Rejected { version: 2, .. }
        ));
        assert_eq!(store.get(&id, None, false).unwrap().record, b"v2");
        assert_eq!(
            store.counts().unwrap(),
            Counts {
                active: 2,
                retracted: 0
            }
        );
        assert_eq!(store.scan(false).count(), 2);
    }

    #[test]
    fn concurrent_writers_number_documents_once_and_the_index_follows_commit_order() {
        let store = Store::temporary(hpo()).unwrap();
        std::thread::scope(|scope| {
            for writer in 0..3 {
                let store = &store;
                scope.spawn(move || {
                    for round in 0..20 {
                        let batch: Vec<CaseDraft> = (0..8)
                            .map(|i| draft(&format!("w{writer}-r{round}-{i}"), b"x"))
                            .collect();
                        store
                            .import_batch(&actor(), &batch, ChangedPolicy::Skip, UnixMicros(1))
                            .unwrap();
                    }
                });
            }
            let store = &store;
            scope.spawn(move || {
                for n in 0..40 {
                    let id = create(store, &format!("single-{n}"), b"y");
                    if n % 4 == 0 {
                        store
                            .retract(&actor(), &id, None, "", UnixMicros(2))
                            .unwrap();
                    }
                }
            });
        });
        let stored: Vec<CaseRecord> = store.scan(true).map(Result::unwrap).collect();
        assert_eq!(stored.len(), 3 * 20 * 8 + 40);
        let index = store.index();
        assert_eq!(index.next_doc(), stored.len() as u64);
        let mut docs: Vec<u32> = stored.iter().map(|case| case.doc).collect();
        docs.sort_unstable();
        docs.dedup();
        assert_eq!(
            docs.len(),
            stored.len(),
            "a document number was given twice"
        );
        for case in &stored {
            assert_eq!(index.case_id(case.doc), Some(case.id));
        }
        assert_eq!(index.active_count(), store.counts().unwrap().active);
        assert_eq!(index.active_count(), stored.len() as u64 - 10);
    }

    #[test]
    fn a_snapshot_is_used_once_and_only_if_nothing_was_written_after_it() {
        use crate::index::{CodeKind, Query};
        let dir = tempfile::tempdir().unwrap();
        let with_disease = |external: &str, disease: &str| {
            let mut d = draft(external, external.as_bytes());
            d.facts.diseases.push(crate::case::Coded {
                id: disease.to_owned(),
                label: String::new(),
            });
            d
        };
        let query = |disease: &str| Query::Code {
            kind: CodeKind::Disease,
            id: disease.to_owned(),
        };
        {
            let store = store_at(dir.path());
            assert!(!store.index_from_snapshot());
            store
                .create(&actor(), with_disease("p1", "OMIM:1"), UnixMicros(1))
                .unwrap();
            store.save_index_snapshot().unwrap();
        }
        {
            let store = store_at(dir.path());
            assert!(store.index_from_snapshot());
            assert!(!dir.path().join(SNAPSHOT_FILE).exists());
            assert_eq!(store.count(&query("OMIM:1")), 1);
            // A write after the snapshot makes it stale.
            store.save_index_snapshot().unwrap();
            store
                .create(&actor(), with_disease("p2", "OMIM:2"), UnixMicros(2))
                .unwrap();
        }
        {
            let store = store_at(dir.path());
            assert!(!store.index_from_snapshot());
            assert_eq!(store.count(&query("OMIM:2")), 1);
        }
        // A damaged snapshot is not used.
        {
            let store = store_at(dir.path());
            store.save_index_snapshot().unwrap();
        }
        let path = dir.path().join(SNAPSHOT_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let store = store_at(dir.path());
        assert!(!store.index_from_snapshot());
        assert_eq!(
            store.count(&query("OMIM:1")) + store.count(&query("OMIM:2")),
            2
        );
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = store_at(dir.path());
            create(&store, "p1", b"v1")
        };
        let store = store_at(dir.path());
        assert_eq!(store.get(&id, None, false).unwrap().record, b"v1");
        assert_eq!(store.counts().unwrap().active, 1);
    }

    /// Rewrites a data directory of this layout into the `casereg-store-3` one: envelopes in
    /// `cases`, every version as one message (record in field 9) in `versions`.
    fn write_format_3(path: &Path) {
        let db = sled_at(path);
        let envelopes = db.open_tree(TREE_CASES_3).unwrap();
        let versions = db.open_tree(TREE_VERSIONS_3).unwrap();
        let as_format_3 = |case: &CaseRecord| {
            let mut stored = StoredCase::from_record(case);
            stored.record = case.record.clone();
            stored.encode_to_vec()
        };
        for item in db.open_tree(TREE_CURRENT).unwrap().iter() {
            let case = decode(&item.unwrap().1, true).unwrap();
            envelopes
                .insert(
                    case.id.as_bytes(),
                    StoredCase::from_record(&case).encode_to_vec(),
                )
                .unwrap();
            versions
                .insert(version_key(&case.id, case.version), as_format_3(&case))
                .unwrap();
        }
        for item in db.open_tree(TREE_HISTORY).unwrap().iter() {
            let (key, bytes) = item.unwrap();
            versions
                .insert(key, as_format_3(&decode(&bytes, true).unwrap()))
                .unwrap();
        }
        db.drop_tree(TREE_CURRENT).unwrap();
        db.drop_tree(TREE_HISTORY).unwrap();
        db.open_tree(TREE_META)
            .unwrap()
            .insert(KEY_FORMAT, FORMAT_3)
            .unwrap();
        db.flush().unwrap();
    }

    /// Everything a store answers about its cases, for comparing two stores.
    fn contents(store: &Store) -> (Vec<CaseRecord>, Vec<CaseRecord>, Page, Counts, usize) {
        let current: Vec<CaseRecord> = store.scan(true).map(Result::unwrap).collect();
        let mut versions = Vec::new();
        for case in &current {
            for v in 1..=case.version {
                versions.push(store.get(&case.id, Some(v), true).unwrap());
            }
        }
        let page = store.list(0, "", true).unwrap();
        let audited = store.audit_entries(0, 1000).unwrap().len();
        (current, versions, page, store.counts().unwrap(), audited)
    }

    fn phenotype(term: u32) -> Query {
        Query::Phenotype {
            term: TermId(term),
            exact: false,
        }
    }

    #[test]
    fn a_format_3_data_directory_is_migrated_with_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let (before, terms) = {
            let store = store_at(dir.path());
            let mut with_facts = draft("p1", b"first");
            with_facts.facts.present = vec![TermId(1_939), TermId(4_322)];
            let id = store
                .create(&actor(), with_facts.clone(), UnixMicros(1))
                .unwrap()
                .case
                .id;
            with_facts.record = b"second".to_vec();
            store
                .update(&actor(), &id, 1, with_facts, UnixMicros(2))
                .unwrap();
            let gone = create(&store, "p2", b"retracted");
            store
                .retract(&actor(), &gone, None, "duplicate", UnixMicros(3))
                .unwrap();
            let drafts: Vec<CaseDraft> = (0..2_500)
                .map(|i| draft(&format!("bulk{i}"), format!("record {i}").as_bytes()))
                .collect();
            for batch in drafts.chunks(IMPORT_BATCH_RECORDS) {
                store
                    .import_batch(&actor(), batch, ChangedPolicy::Replace, UnixMicros(4))
                    .unwrap();
            }
            (contents(&store), store.count(&phenotype(4_322)))
        };
        assert_eq!(before.1.len(), 2 + 2 + 2_500);
        assert_eq!(terms, 1);
        write_format_3(dir.path());
        {
            // A migration interrupted before it changed the format marker left a partial
            // new tree: it is started over.
            let db = sled_at(dir.path());
            let partial = db.open_tree(TREE_CURRENT).unwrap();
            partial
                .insert(b"0000000000000000", b"partial".to_vec())
                .unwrap();
            db.flush().unwrap();
        }
        for _ in 0..2 {
            let store = store_at(dir.path());
            assert_eq!(contents(&store), before);
            assert_eq!(store.count(&phenotype(4_322)), terms);
        }
        let db = sled_at(dir.path());
        let names: Vec<IVec> = db.tree_names();
        for old in [TREE_CASES_3, TREE_VERSIONS_3] {
            assert!(
                !names.iter().any(|n| n.as_ref() == old.as_bytes()),
                "{old} kept"
            );
        }
    }

    #[test]
    fn a_format_3_directory_whose_versions_disagree_is_refused_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store_at(dir.path());
            create(&store, "p1", b"one");
        }
        write_format_3(dir.path());
        {
            let db = sled_at(dir.path());
            db.open_tree(TREE_VERSIONS_3).unwrap().clear().unwrap();
            db.flush().unwrap();
        }
        let err = retry_locked(|| Store::open(dir.path(), hpo())).unwrap_err();
        assert!(matches!(err, CoreError::Corrupt(_)), "{err:?}");
        let db = sled_at(dir.path());
        let format = db.open_tree(TREE_META).unwrap().get(KEY_FORMAT).unwrap();
        assert_eq!(format.as_deref(), Some(FORMAT_3));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]

            /// Paging through a listing yields exactly the cases a full scan keeps, in id
            /// order, and the counters agree with the cases stored.
            #[test]
            fn pages_equal_a_scan_and_counts_agree(
                retract in proptest::collection::vec(any::<bool>(), 1..40),
                page_size in 1u32..9,
                include_retracted in any::<bool>(),
            ) {
                let store = Store::temporary(hpo()).unwrap();
                let mut expected = Vec::new();
                for (i, gone) in retract.iter().enumerate() {
                    let id = store.create(&actor(), draft(&format!("p{i}"), b"r"), UnixMicros(1)).unwrap().case.id;
                    if *gone {
                        store.retract(&actor(), &id, None, "", UnixMicros(2)).unwrap();
                    }
                    if !*gone || include_retracted {
                        expected.push(id);
                    }
                }
                expected.sort();
                let mut seen = Vec::new();
                let mut token = String::new();
                loop {
                    let page = store.list(page_size, &token, include_retracted).unwrap();
                    prop_assert!(page.cases.len() <= page_size as usize);
                    seen.extend(page.cases.iter().map(|c| c.id));
                    match page.next_page_token {
                        Some(next) => token = next,
                        None => break,
                    }
                }
                prop_assert_eq!(seen, expected);
                let retracted = retract.iter().filter(|g| **g).count() as u64;
                prop_assert_eq!(
                    store.counts().unwrap(),
                    Counts { active: retract.len() as u64 - retracted, retracted }
                );
            }
        }
    }
}
