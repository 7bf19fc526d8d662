//! Rewriting a `casereg-store-3` data directory into the current layout.

use std::time::Instant;

use prost::Message as _;
use sled::Tree;

use crate::case::CaseRecord;
use crate::error::{CoreError, Result};

use super::envelope::{StoredCase, encode, version_key};
use super::{FORMAT, KEY_FORMAT, TREE_CURRENT, TREE_HISTORY};

/// The layout before [`FORMAT`], migrated when a data directory is opened: trees `cases`
/// (envelopes only) and `versions` (every version, as one protobuf message).
pub(super) const FORMAT_3: &[u8] = b"casereg-store-3";

pub(super) const TREE_CASES_3: &str = "cases";

pub(super) const TREE_VERSIONS_3: &str = "versions";

/// Records migrated per batch: bounds the memory a migration holds.
pub(super) const MIGRATION_BATCH: usize = 1024;

/// Rewrites a `casereg-store-3` data directory into this layout: each case's latest version
/// into `current`, the earlier ones into `history`, every one re-encoded. The new trees are
/// filled from empty and flushed before the format marker changes, so a migration that is
/// interrupted starts over at the next open; the old trees are dropped only after the
/// marker changed.
pub(super) fn migrate_from_format_3(db: &sled::Db, meta: &Tree) -> Result<()> {
    let started = Instant::now();
    tracing::info!(
        "migrating the data directory from {} to {}",
        String::from_utf8_lossy(FORMAT_3),
        String::from_utf8_lossy(FORMAT)
    );
    for name in [TREE_CURRENT, TREE_HISTORY] {
        db.drop_tree(name)?;
    }
    let envelopes = db.open_tree(TREE_CASES_3)?;
    let versions = db.open_tree(TREE_VERSIONS_3)?;
    let current = db.open_tree(TREE_CURRENT)?;
    let history = db.open_tree(TREE_HISTORY)?;
    let mut to_current = sled::Batch::default();
    let mut to_history = sled::Batch::default();
    let mut batched = 0;
    let mut cases = 0u64;
    // Versions are keyed by case id and then version: a case's latest version is the one
    // the next key does not continue.
    let mut items = versions.iter().peekable();
    while let Some(item) = items.next() {
        let (key, bytes) = item?;
        let case = StoredCase::decode(&*bytes)
            .map_err(|e| CoreError::Corrupt(format!("format 3 version: {e}")))?
            .into_record()?;
        if key.as_ref() != version_key(&case.id, case.version) {
            return Err(CoreError::Corrupt(format!(
                "format 3 version {} of case {} stored under another key",
                case.version, case.id
            )));
        }
        let latest = match items.peek() {
            Some(Ok((next, _))) => !next.starts_with(case.id.as_bytes()),
            _ => true,
        };
        if latest {
            check_latest_3(&envelopes, &case)?;
            to_current.insert(case.id.as_bytes(), encode(&case));
            cases += 1;
        } else {
            to_history.insert(&version_key(&case.id, case.version), encode(&case));
        }
        batched += 1;
        if batched == MIGRATION_BATCH {
            current.apply_batch(std::mem::take(&mut to_current))?;
            history.apply_batch(std::mem::take(&mut to_history))?;
            batched = 0;
        }
    }
    current.apply_batch(to_current)?;
    history.apply_batch(to_history)?;
    if cases != envelopes.len() as u64 {
        return Err(CoreError::Corrupt(format!(
            "format 3 data directory: {} cases but versions for {cases}",
            envelopes.len()
        )));
    }
    db.flush()?;
    meta.insert(KEY_FORMAT, FORMAT)?;
    db.flush()?;
    drop_trees_of_format_3(db)?;
    tracing::info!(
        cases,
        millis = started.elapsed().as_millis() as u64,
        "data directory migrated from {} to {}",
        String::from_utf8_lossy(FORMAT_3),
        String::from_utf8_lossy(FORMAT)
    );
    Ok(())
}

/// Refuses a migration whose latest version of a case is not the one its envelope names.
pub(super) fn check_latest_3(envelopes: &Tree, latest: &CaseRecord) -> Result<()> {
    let named = match envelopes.get(latest.id.as_bytes())? {
        Some(bytes) => {
            StoredCase::decode(&*bytes)
                .map_err(|e| CoreError::Corrupt(format!("format 3 envelope: {e}")))?
                .version
        }
        None => 0,
    };
    if named == latest.version {
        Ok(())
    } else {
        Err(CoreError::Corrupt(format!(
            "format 3 case {}: latest stored version {}, current version {named}",
            latest.id, latest.version
        )))
    }
}

/// Drops the trees only the `casereg-store-3` layout has (left when a migration was
/// interrupted after it had changed the format marker).
pub(super) fn drop_trees_of_format_3(db: &sled::Db) -> Result<()> {
    for name in [TREE_CASES_3, TREE_VERSIONS_3] {
        if db.drop_tree(name)? {
            db.flush()?;
        }
    }
    Ok(())
}
