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
}

const CODE_KINDS: usize = 7;

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
            self.codes[kind.slot()]
                .labels
                .entry(value.label.to_lowercase().into())
                .or_default()
                .insert(value.id.as_str().into());
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
