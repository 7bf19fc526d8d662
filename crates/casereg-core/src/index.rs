//! In-memory search indexes: one roaring bitmap of document numbers per indexed value.
//!
//! Every case has a dense document number (`CaseRecord::doc`), fixed when it is created and
//! stored in its envelope. The indexes live in memory only: [`crate::store::Store`] rebuilds
//! them from the envelopes when it opens and keeps them in step with every write, so there is
//! never one sled key per posting (measured: 22× the disk and out of memory).
//!
//! A query for a phenotype finds its descendants through the *ancestor closure*: a case is
//! posted under each of its observed terms and every ancestor of them, so the query reads one
//! bitmap. ARCHITECTURE.md "Search" has the measurement that chose this over a union of
//! descendant bitmaps at query time. Excluded phenotypes are posted as recorded and a query
//! unions the bitmaps of the term and its (few) ancestors. Only active cases are posted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use roaring::{MultiOps as _, RoaringBitmap};

use crate::case::{AgeSpan, CaseFacts, Coded};
use crate::ids::{CaseId, CenterId, TermId};
use crate::ontology::Ontology;

/// A kind of coded value a case can be searched by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeKind {
    /// Disease id (OMIM, ORPHA, MONDO…).
    Disease,
    /// HGNC id or gene symbol.
    Gene,
    /// Treatment agent id.
    Treatment,
    /// Procedure code.
    Procedure,
    /// Owning center.
    Center,
    /// Publication id (PMID, DOI…).
    Publication,
    /// ACMG class name of an interpreted variant.
    VariantClass,
    /// Response to a medical action.
    Response,
    /// A treatment agent and the response recorded with it, keyed `agent\tresponse`.
    TreatmentResponse,
}

const CODE_KINDS: usize = 9;

/// The key of a treatment × response pair.
pub fn pair_key(agent: &str, response: &str) -> String {
    format!("{agent}\t{response}")
}

impl CodeKind {
    fn slot(self) -> usize {
        self as usize
    }

    /// The key a value is posted and looked up under: gene symbols and class names match
    /// regardless of case; ids are exact.
    pub fn normalize(self, value: &str) -> String {
        match self {
            Self::Gene if !value.contains(':') => value.to_uppercase(),
            Self::VariantClass => value.to_uppercase(),
            _ => value.to_owned(),
        }
    }
}

/// Which age of a case a range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeField {
    /// Age at onset.
    Onset,
    /// Age at last encounter.
    LastEncounter,
}

/// A filter over the indexed facts of a case, with every id already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Every operand holds; an empty list holds for every active case.
    All(Vec<Query>),
    /// At least one operand holds; an empty list holds for none.
    Any(Vec<Query>),
    /// The operand does not hold.
    Not(Box<Query>),
    /// An observed phenotype: the term or (unless `exact`) any descendant.
    Phenotype {
        /// The HPO term.
        term: TermId,
        /// Only the term itself.
        exact: bool,
    },
    /// An excluded phenotype: the term or (unless `exact`) any ancestor recorded as absent.
    Excluded {
        /// The HPO term.
        term: TermId,
        /// Only the term itself.
        exact: bool,
    },
    /// A coded value.
    Code {
        /// Which kind.
        kind: CodeKind,
        /// The id as given ([`CodeKind::normalize`] is applied when matching).
        id: String,
    },
    /// The subject's sex (Phenopacket enum number).
    Sex(i32),
    /// An age known to lie within `[from, until)` days.
    Age {
        /// Which age.
        field: AgeField,
        /// Inclusive lower bound.
        from: Option<i32>,
        /// Exclusive upper bound.
        until: Option<i32>,
    },
}

/// The facts of one case as the index needs them.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Document number.
    pub doc: u32,
    /// Registry id.
    pub id: CaseId,
    /// Owning center.
    pub center: &'a CenterId,
    /// Whether the case is active (retracted cases are not posted).
    pub active: bool,
    /// The facts.
    pub facts: &'a CaseFacts,
}

#[derive(Debug, Default)]
struct CodeIndex {
    postings: BTreeMap<Box<str>, RoaringBitmap>,
    /// Lower-cased label → ids recorded with it (kept when postings empty; a stale label
    /// resolves to an id that matches nothing).
    labels: HashMap<Box<str>, BTreeSet<Box<str>>>,
    /// Id → the first label recorded with it, for showing results.
    names: HashMap<Box<str>, Box<str>>,
}

/// Ages as two ordered maps of bitmaps: by the earliest and by the latest possible age.
#[derive(Debug, Default)]
struct AgeColumn {
    by_from: BTreeMap<i32, RoaringBitmap>,
    by_to: BTreeMap<i32, RoaringBitmap>,
}

impl AgeColumn {
    fn post(&mut self, span: AgeSpan, doc: u32, add: bool) {
        post(&mut self.by_from, span.from, doc, add);
        post(&mut self.by_to, span.to, doc, add);
    }

    /// Docs whose span lies within `[from, until)`.
    fn within(&self, from: Option<i32>, until: Option<i32>) -> RoaringBitmap {
        let lower = from.map(|f| self.by_from.range(f..).map(|(_, b)| b).union());
        let upper = until.map(|u| self.by_to.range(..u).map(|(_, b)| b).union());
        match (lower, upper) {
            (Some(lower), Some(upper)) => lower & upper,
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => self.by_from.values().union(),
        }
    }
}

/// Adds or removes `doc` in the bitmap under `key`, dropping bitmaps that become empty.
fn post<K: Ord>(map: &mut BTreeMap<K, RoaringBitmap>, key: K, doc: u32, add: bool) {
    if add {
        map.entry(key).or_default().insert(doc);
    } else if let Some(bitmap) = map.get_mut(&key) {
        bitmap.remove(doc);
        if bitmap.is_empty() {
            map.remove(&key);
        }
    }
}

/// How a phenotype query reaches the descendants of its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// Cases are posted under every ancestor of their terms when written (the default).
    AncestorClosure,
    /// Cases are posted under their own terms only; a query unions the bitmaps of the
    /// term's descendants. Kept to measure against.
    DescendantUnion,
}

/// The search indexes of a registry.
#[derive(Debug)]
pub struct Index {
    hpo: Arc<Ontology>,
    expansion: Expansion,
    /// Ancestors-or-self of each term seen, computed once.
    lineage: HashMap<TermId, Box<[TermId]>>,
    present: BTreeMap<TermId, RoaringBitmap>,
    present_closure: BTreeMap<TermId, RoaringBitmap>,
    excluded: BTreeMap<TermId, RoaringBitmap>,
    codes: [CodeIndex; CODE_KINDS],
    sex: BTreeMap<i32, RoaringBitmap>,
    onset: AgeColumn,
    last_encounter: AgeColumn,
    active: RoaringBitmap,
    /// Case id of each document number ever assigned.
    docs: Vec<Option<CaseId>>,
}

impl Index {
    /// An empty index reading phenotypes with `hpo`.
    pub fn new(hpo: Arc<Ontology>, expansion: Expansion) -> Self {
        Self {
            hpo,
            expansion,
            lineage: HashMap::new(),
            present: BTreeMap::new(),
            present_closure: BTreeMap::new(),
            excluded: BTreeMap::new(),
            codes: Default::default(),
            sex: BTreeMap::new(),
            onset: AgeColumn::default(),
            last_encounter: AgeColumn::default(),
            active: RoaringBitmap::new(),
            docs: Vec::new(),
        }
    }

    /// The ontology phenotype queries are read with.
    pub fn ontology(&self) -> &Arc<Ontology> {
        &self.hpo
    }

    /// The document number the next new case gets.
    pub fn next_doc(&self) -> u64 {
        self.docs.len() as u64
    }

    /// Number of active cases.
    pub fn active_count(&self) -> u64 {
        self.active.len()
    }

    /// The case a document number belongs to.
    pub fn case_id(&self, doc: u32) -> Option<CaseId> {
        self.docs.get(doc as usize).copied().flatten()
    }

    /// Posts a case (a no-op for a retracted one, apart from remembering its id).
    pub fn insert(&mut self, entry: Entry<'_>) {
        let slot = entry.doc as usize;
        if self.docs.len() <= slot {
            self.docs.resize(slot + 1, None);
        }
        self.docs[slot] = Some(entry.id);
        if entry.active {
            self.post(entry, true);
        }
    }

    /// Removes a case's postings, as they were inserted.
    pub fn remove(&mut self, entry: Entry<'_>) {
        if entry.active {
            self.post(entry, false);
        }
    }

    fn post(&mut self, entry: Entry<'_>, add: bool) {
        let Entry {
            doc, center, facts, ..
        } = entry;
        if add {
            self.active.insert(doc);
        } else {
            self.active.remove(doc);
        }
        for &term in &facts.present {
            post(&mut self.present, term, doc, add);
        }
        if self.expansion == Expansion::AncestorClosure {
            let mut closure: Vec<TermId> = Vec::new();
            for &term in &facts.present {
                closure.extend_from_slice(self.lineage(term));
            }
            closure.sort_unstable();
            closure.dedup();
            for term in closure {
                post(&mut self.present_closure, term, doc, add);
            }
        }
        for &term in &facts.excluded {
            post(&mut self.excluded, term, doc, add);
        }
        let coded = [
            (CodeKind::Disease, &facts.diseases),
            (CodeKind::Gene, &facts.genes),
            (CodeKind::Treatment, &facts.treatments),
            (CodeKind::Procedure, &facts.procedures),
            (CodeKind::Response, &facts.responses),
        ];
        for (kind, values) in coded {
            for value in values {
                self.post_code(kind, value, doc, add);
            }
        }
        let plain = [
            (CodeKind::Publication, &facts.publications),
            (CodeKind::VariantClass, &facts.variant_classes),
        ];
        for (kind, values) in plain {
            for id in values {
                self.post_key(kind, id, doc, add);
            }
        }
        for (agent, response) in &facts.treatment_responses {
            self.post_key(
                CodeKind::TreatmentResponse,
                &pair_key(agent, response),
                doc,
                add,
            );
        }
        self.post_key(CodeKind::Center, center.as_str(), doc, add);
        post(&mut self.sex, facts.sex, doc, add);
        if let Some(span) = facts.onset {
            self.onset.post(span, doc, add);
        }
        if let Some(span) = facts.last_encounter {
            self.last_encounter.post(span, doc, add);
        }
    }

    fn post_code(&mut self, kind: CodeKind, value: &Coded, doc: u32, add: bool) {
        self.post_key(kind, &value.id, doc, add);
        if kind == CodeKind::Gene && !value.label.is_empty() {
            // A gene is found by its symbol as well as its id.
            self.post_key(kind, &value.label, doc, add);
        } else if add && !value.label.is_empty() {
            let code = &mut self.codes[kind.slot()];
            code.labels
                .entry(value.label.to_lowercase().into())
                .or_default()
                .insert(value.id.as_str().into());
            if !code.names.contains_key(value.id.as_str()) {
                code.names
                    .insert(value.id.as_str().into(), value.label.as_str().into());
            }
        }
    }

    fn post_key(&mut self, kind: CodeKind, id: &str, doc: u32, add: bool) {
        let key: Box<str> = kind.normalize(id).into();
        post(&mut self.codes[kind.slot()].postings, key, doc, add);
    }

    fn lineage(&mut self, term: TermId) -> &[TermId] {
        let hpo = &self.hpo;
        self.lineage.entry(term).or_insert_with(|| {
            let mut terms = hpo.ancestors(term);
            terms.push(term);
            terms.into_boxed_slice()
        })
    }

    /// The ids recorded with `label` (case-insensitive) for a kind of code.
    pub fn ids_for_label(&self, kind: CodeKind, label: &str) -> Vec<String> {
        self.codes[kind.slot()]
            .labels
            .get(label.to_lowercase().as_str())
            .map(|ids| ids.iter().map(|id| id.to_string()).collect())
            .unwrap_or_default()
    }

    /// Every code of a kind with its cases.
    pub fn code_postings(&self, kind: CodeKind) -> impl Iterator<Item = (&str, &RoaringBitmap)> {
        self.codes[kind.slot()]
            .postings
            .iter()
            .map(|(k, b)| (&**k, b))
    }

    /// Every observed phenotype as recorded, with its cases.
    pub fn present_postings(&self) -> impl Iterator<Item = (TermId, &RoaringBitmap)> {
        self.present.iter().map(|(t, b)| (*t, b))
    }

    /// Every excluded phenotype as recorded, with its cases.
    pub fn excluded_postings(&self) -> impl Iterator<Item = (TermId, &RoaringBitmap)> {
        self.excluded.iter().map(|(t, b)| (*t, b))
    }

    /// The smallest and largest finite age recorded for a field, in days.
    pub fn age_extent(&self, field: AgeField) -> Option<(i32, i32)> {
        let column = match field {
            AgeField::Onset => &self.onset,
            AgeField::LastEncounter => &self.last_encounter,
        };
        let low = *column.by_from.keys().next()?;
        let high_to = column.by_to.keys().rev().find(|t| **t != i32::MAX).copied();
        let high_from = column.by_from.keys().next_back().copied();
        Some((low, high_to.max(high_from).unwrap_or(low)))
    }

    /// The label first recorded with a code id, if any.
    pub fn label_of(&self, kind: CodeKind, id: &str) -> Option<&str> {
        self.codes[kind.slot()].names.get(id).map(|l| &**l)
    }

    /// Whether some active case is posted under a code (after normalisation).
    pub fn has_code(&self, kind: CodeKind, id: &str) -> bool {
        self.codes[kind.slot()]
            .postings
            .contains_key(kind.normalize(id).as_str())
    }

    /// The active cases matching `query`, as document numbers.
    pub fn matching(&self, query: &Query) -> RoaringBitmap {
        let mut result = self.evaluate(query);
        result &= &self.active;
        result
    }

    /// How many active cases match `query`.
    pub fn count(&self, query: &Query) -> u64 {
        match query {
            // The common shape, two positive operands under one AND, is counted without
            // building the intersection. (Every posting holds active cases only.)
            Query::All(operands)
                if operands.len() == 2 && !operands.iter().any(|q| matches!(q, Query::Not(_))) =>
            {
                self.evaluate(&operands[0])
                    .intersection_len(&self.evaluate(&operands[1]))
            }
            _ => self.matching(query).len(),
        }
    }

    fn evaluate(&self, query: &Query) -> RoaringBitmap {
        match query {
            Query::All(operands) => self.all(operands),
            Query::Any(operands) => operands.iter().map(|q| self.evaluate(q)).union(),
            Query::Not(operand) => &self.active - self.evaluate(operand),
            Query::Phenotype { term, exact } => self.phenotype(*term, *exact),
            Query::Excluded { term, exact: true } => self.bitmap(&self.excluded, term),
            Query::Excluded { term, exact: false } => {
                let mut terms = self.hpo.ancestors(*term);
                terms.push(*term);
                terms.iter().filter_map(|t| self.excluded.get(t)).union()
            }
            Query::Code { kind, id } => self.codes[kind.slot()]
                .postings
                .get(kind.normalize(id).as_str())
                .cloned()
                .unwrap_or_default(),
            Query::Sex(sex) => self.bitmap(&self.sex, sex),
            Query::Age { field, from, until } => match field {
                AgeField::Onset => self.onset.within(*from, *until),
                AgeField::LastEncounter => self.last_encounter.within(*from, *until),
            },
        }
    }

    /// AND: intersect the positive operands smallest first, then subtract the negated ones.
    fn all(&self, operands: &[Query]) -> RoaringBitmap {
        let (negated, positive): (Vec<&Query>, Vec<&Query>) =
            operands.iter().partition(|q| matches!(q, Query::Not(_)));
        let mut sets: Vec<RoaringBitmap> = positive.iter().map(|q| self.evaluate(q)).collect();
        sets.sort_by_key(RoaringBitmap::len);
        let mut result = match sets.len() {
            0 => self.active.clone(),
            _ => sets.iter().intersection(),
        };
        for query in negated {
            if let Query::Not(inner) = query {
                if result.is_empty() {
                    break;
                }
                result -= self.evaluate(inner);
            }
        }
        result
    }

    fn phenotype(&self, term: TermId, exact: bool) -> RoaringBitmap {
        if exact {
            return self.bitmap(&self.present, &term);
        }
        match self.expansion {
            Expansion::AncestorClosure => self.bitmap(&self.present_closure, &term),
            Expansion::DescendantUnion => {
                let mut terms = self.hpo.descendants(term);
                terms.push(term);
                terms.iter().filter_map(|t| self.present.get(t)).union()
            }
        }
    }

    fn bitmap<K: Ord>(&self, map: &BTreeMap<K, RoaringBitmap>, key: &K) -> RoaringBitmap {
        map.get(key).cloned().unwrap_or_default()
    }

    /// Approximate heap bytes of the bitmaps (serialized size), for reports.
    pub fn bitmap_bytes(&self) -> u64 {
        let maps = [&self.present, &self.present_closure, &self.excluded];
        let terms: usize = maps
            .iter()
            .flat_map(|m| m.values())
            .map(RoaringBitmap::serialized_size)
            .sum();
        let codes: usize = self
            .codes
            .iter()
            .flat_map(|c| c.postings.values())
            .map(RoaringBitmap::serialized_size)
            .sum();
        (terms + codes) as u64
    }
}

/// Identifies a snapshot file and its layout.
const SNAPSHOT_MAGIC: &[u8; 16] = b"casereg-index-02";
/// Last bytes of a complete snapshot (a truncated file is refused).
const SNAPSHOT_END: &[u8; 8] = b"index-ok";

/// A snapshot that cannot be used: the caller rebuilds from the store.
#[derive(Debug, thiserror::Error)]
#[error("index snapshot: {0}")]
pub struct SnapshotError(String);

impl From<std::io::Error> for SnapshotError {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

/// Writes and reads the plain values of a snapshot.
mod wire {
    use std::io::{Read, Write};

    use roaring::RoaringBitmap;

    use super::SnapshotError;

    pub fn u32_out<W: Write + ?Sized>(w: &mut W, v: u32) -> std::io::Result<()> {
        w.write_all(&v.to_le_bytes())
    }
    pub fn u64_out<W: Write + ?Sized>(w: &mut W, v: u64) -> std::io::Result<()> {
        w.write_all(&v.to_le_bytes())
    }
    pub fn len_out<W: Write + ?Sized>(w: &mut W, n: usize) -> std::io::Result<()> {
        u64_out(w, n as u64)
    }
    pub fn str_out<W: Write + ?Sized>(w: &mut W, s: &str) -> std::io::Result<()> {
        len_out(w, s.len())?;
        w.write_all(s.as_bytes())
    }
    pub fn bitmap_out<W: Write + ?Sized>(w: &mut W, b: &RoaringBitmap) -> std::io::Result<()> {
        len_out(w, b.serialized_size())?;
        b.serialize_into(w)
    }

    pub fn u32_in(r: &mut impl Read) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    pub fn u64_in(r: &mut impl Read) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// A length, refused beyond `limit` (a corrupt length must not allocate gigabytes).
    pub fn len_in(r: &mut impl Read, limit: u64) -> Result<usize, SnapshotError> {
        let n = u64_in(r)?;
        if n > limit {
            return Err(SnapshotError(format!("length {n} exceeds {limit}")));
        }
        usize::try_from(n).map_err(|_| SnapshotError(format!("length {n}")))
    }
    pub fn str_in(r: &mut impl Read) -> Result<Box<str>, SnapshotError> {
        let n = len_in(r, 1 << 20)?;
        let mut bytes = vec![0u8; n];
        r.read_exact(&mut bytes)?;
        String::from_utf8(bytes)
            .map(String::into_boxed_str)
            .map_err(|e| SnapshotError(e.to_string()))
    }
    pub fn bitmap_in(r: &mut impl Read) -> Result<RoaringBitmap, SnapshotError> {
        let n = len_in(r, 1 << 32)?;
        RoaringBitmap::deserialize_from(r.take(n as u64)).map_err(SnapshotError::from)
    }
}

/// Most entries any one snapshot map may claim.
const SNAPSHOT_MAX_ENTRIES: u64 = 1 << 32;

fn map_out<K>(
    w: &mut impl std::io::Write,
    map: &BTreeMap<K, RoaringBitmap>,
    key_out: impl Fn(&mut dyn std::io::Write, &K) -> std::io::Result<()>,
) -> std::io::Result<()> {
    wire::len_out(w, map.len())?;
    for (key, bitmap) in map {
        key_out(w, key)?;
        wire::bitmap_out(w, bitmap)?;
    }
    Ok(())
}

fn map_in<K: Ord, R: std::io::Read>(
    r: &mut R,
    key_in: impl Fn(&mut R) -> Result<K, SnapshotError>,
) -> Result<BTreeMap<K, RoaringBitmap>, SnapshotError> {
    let n = wire::len_in(r, SNAPSHOT_MAX_ENTRIES)?;
    let mut map = BTreeMap::new();
    for _ in 0..n {
        let key = key_in(r)?;
        map.insert(key, wire::bitmap_in(r)?);
    }
    Ok(map)
}

fn term_out(w: &mut dyn std::io::Write, t: &TermId) -> std::io::Result<()> {
    wire::u32_out(w, t.0)
}

fn i32_out(w: &mut dyn std::io::Write, v: &i32) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn i32_in(r: &mut impl std::io::Read) -> Result<i32, SnapshotError> {
    Ok(wire::u32_in(r)?.cast_signed())
}

impl Index {
    /// Writes the whole index, tagged with the ontology release and `seq` (the store's
    /// write sequence number it reflects).
    pub fn write_snapshot(&self, w: &mut impl std::io::Write, seq: u64) -> std::io::Result<()> {
        w.write_all(SNAPSHOT_MAGIC)?;
        wire::str_out(w, self.hpo.version())?;
        wire::u64_out(w, seq)?;
        w.write_all(&[u8::from(self.expansion == Expansion::AncestorClosure)])?;
        wire::len_out(w, self.docs.len())?;
        for doc in &self.docs {
            match doc {
                Some(id) => {
                    w.write_all(&[1])?;
                    w.write_all(id.as_bytes())?;
                }
                None => w.write_all(&[0])?,
            }
        }
        for map in [&self.present, &self.present_closure, &self.excluded] {
            map_out(w, map, term_out)?;
        }
        for code in &self.codes {
            map_out(w, &code.postings, |w, k| wire::str_out(w, k))?;
            wire::len_out(w, code.labels.len())?;
            for (label, ids) in &code.labels {
                wire::str_out(w, label)?;
                wire::len_out(w, ids.len())?;
                for id in ids {
                    wire::str_out(w, id)?;
                }
            }
            wire::len_out(w, code.names.len())?;
            for (id, label) in &code.names {
                wire::str_out(w, id)?;
                wire::str_out(w, label)?;
            }
        }
        map_out(w, &self.sex, i32_out)?;
        for column in [&self.onset, &self.last_encounter] {
            map_out(w, &column.by_from, i32_out)?;
            map_out(w, &column.by_to, i32_out)?;
        }
        wire::bitmap_out(w, &self.active)?;
        w.write_all(SNAPSHOT_END)
    }

    /// Reads a snapshot written by [`Index::write_snapshot`], if it was made with the same
    /// ontology release and at write sequence `seq`; otherwise says why not.
    pub fn read_snapshot(
        hpo: Arc<Ontology>,
        r: &mut impl std::io::Read,
        seq: u64,
    ) -> Result<Self, SnapshotError> {
        let mut magic = [0u8; 16];
        r.read_exact(&mut magic)?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(SnapshotError("not a snapshot of this version".to_owned()));
        }
        let release = wire::str_in(r)?;
        if &*release != hpo.version() {
            return Err(SnapshotError(format!(
                "made with HPO {release}, the server loaded {}",
                hpo.version()
            )));
        }
        let written_at = wire::u64_in(r)?;
        if written_at != seq {
            return Err(SnapshotError(format!(
                "reflects write {written_at}, the store is at write {seq}"
            )));
        }
        let mut flag = [0u8; 1];
        r.read_exact(&mut flag)?;
        let expansion = if flag[0] == 1 {
            Expansion::AncestorClosure
        } else {
            Expansion::DescendantUnion
        };
        let mut index = Self::new(hpo, expansion);
        let docs = wire::len_in(r, SNAPSHOT_MAX_ENTRIES)?;
        index.docs.reserve(docs);
        for _ in 0..docs {
            r.read_exact(&mut flag)?;
            index.docs.push(if flag[0] == 1 {
                let mut id = [0u8; CaseId::LEN];
                r.read_exact(&mut id)?;
                let text = std::str::from_utf8(&id).map_err(|e| SnapshotError(e.to_string()))?;
                Some(CaseId::parse(text).map_err(|e| SnapshotError(e.0))?)
            } else {
                None
            });
        }
        let term_in = |r: &mut _| wire::u32_in(r).map(TermId);
        index.present = map_in(r, term_in)?;
        index.present_closure = map_in(r, term_in)?;
        index.excluded = map_in(r, term_in)?;
        for code in &mut index.codes {
            code.postings = map_in(r, wire::str_in)?;
            let labels = wire::len_in(r, SNAPSHOT_MAX_ENTRIES)?;
            for _ in 0..labels {
                let label = wire::str_in(r)?;
                let n = wire::len_in(r, SNAPSHOT_MAX_ENTRIES)?;
                let ids = (0..n)
                    .map(|_| wire::str_in(r))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                code.labels.insert(label, ids);
            }
            let names = wire::len_in(r, SNAPSHOT_MAX_ENTRIES)?;
            for _ in 0..names {
                let id = wire::str_in(r)?;
                code.names.insert(id, wire::str_in(r)?);
            }
        }
        index.sex = map_in(r, i32_in)?;
        for column in [&mut index.onset, &mut index.last_encounter] {
            column.by_from = map_in(r, i32_in)?;
            column.by_to = map_in(r, i32_in)?;
        }
        index.active = wire::bitmap_in(r)?;
        let mut end = [0u8; 8];
        r.read_exact(&mut end)?;
        if &end != SNAPSHOT_END {
            return Err(SnapshotError("incomplete".to_owned()));
        }
        Ok(index)
    }
}
