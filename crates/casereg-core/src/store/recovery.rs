//! How the search index comes back when the store opens: the snapshot a clean stop wrote,
//! when it matches the store, or a rebuild from the stored envelopes.

use std::path::Path;
use std::sync::Arc;

use sled::Tree;

use crate::error::Result;
use crate::index::{Expansion, Index};
use crate::ontology::Ontology;

use super::entry;
use super::envelope::decode;

/// Cases read at a time while the index is rebuilt. At 200,000 cases the rebuild took
/// about 6 s with chunks of 4,096, 4 s with 16,384 and 3.8–4.6 s with 65,536, whose decoded
/// cases raised the peak memory by about 110 MiB (16,384: about 27 MiB).
pub(super) const REBUILD_CHUNK: usize = 16_384;

/// Builds the search indexes from the stored cases, `chunk_size` cases at a time. The cases
/// come in case-id order, their document numbers in no order; each chunk is applied in
/// document order, so that a phenotype's ancestor postings (most of them) are merged into
/// its bitmaps once per chunk rather than inserted one by one.
pub(super) fn rebuild_index(
    current: &Tree,
    hpo: Arc<Ontology>,
    chunk_size: usize,
) -> Result<Index> {
    let mut index = Index::new(hpo, Expansion::AncestorClosure);
    let mut chunk = Vec::with_capacity(chunk_size);
    let mut items = current.iter();
    loop {
        chunk.clear();
        for item in items.by_ref().take(chunk_size) {
            let (_, bytes) = item?;
            chunk.push(decode(&bytes, false)?);
        }
        if chunk.is_empty() {
            return Ok(index);
        }
        chunk.sort_unstable_by_key(|case| case.doc);
        index.apply(chunk.iter().map(|case| (None, entry(case))));
    }
}

/// The index in the snapshot file, if there is one that matches; the file is removed either
/// way, so that a snapshot is never read twice.
pub(super) fn load_snapshot(path: &Path, hpo: &Arc<Ontology>, seq: u64) -> Option<Index> {
    let file = std::fs::File::open(path).ok()?;
    let result = Index::read_snapshot(Arc::clone(hpo), &mut std::io::BufReader::new(file), seq);
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(error = %e, path = %path.display(), "cannot remove the index snapshot");
        return None;
    }
    match result {
        Ok(index) => Some(index),
        Err(e) => {
            tracing::info!(reason = %e, "index snapshot not used");
            None
        }
    }
}
