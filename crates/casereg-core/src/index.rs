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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use roaring::{MultiOps as _, RoaringBitmap};

use crate::age::{AgeUnit, days};
use crate::case::{AgeSpan, CaseFacts, Coded};
use crate::fast_hash::FastMap;
use crate::ids::{CaseId, CenterId, TermId};
use crate::limits::MAX_ROLLUP_DEPTH;
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
    names: FastMap<Box<str>, Box<str>>,
}

/// Ages at which an age column keeps running unions: where queries commonly draw the line
/// (birth, a week, months of infancy, years of childhood and adult life). A window's cases
/// then start from the union at the highest mark not above its bound and add only the ages
/// between the mark and the bound, instead of unioning every age below the bound.
const AGE_MARKS: [(u64, AgeUnit); 16] = [
    (0, AgeUnit::Days),
    (1, AgeUnit::Weeks),
    (1, AgeUnit::Months),
    (3, AgeUnit::Months),
    (6, AgeUnit::Months),
    (1, AgeUnit::Years),
    (2, AgeUnit::Years),
    (5, AgeUnit::Years),
    (10, AgeUnit::Years),
    (16, AgeUnit::Years),
    (18, AgeUnit::Years),
    (30, AgeUnit::Years),
    (40, AgeUnit::Years),
    (50, AgeUnit::Years),
    (60, AgeUnit::Years),
    (80, AgeUnit::Years),
];

/// The docs of an age column below one of [`AGE_MARKS`].
#[derive(Debug)]
struct AgeMark {
    /// The mark, in days.
    at: i32,
    /// Docs whose earliest possible age is below the mark.
    from_below: RoaringBitmap,
    /// Docs whose latest possible age is below the mark.
    to_below: RoaringBitmap,
}

/// Ages as two ordered maps of bitmaps, by the earliest and by the latest possible age, with
/// the running unions of both at [`AGE_MARKS`] and every doc with an age.
#[derive(Debug)]
struct AgeColumn {
    by_from: BTreeMap<i32, RoaringBitmap>,
    by_to: BTreeMap<i32, RoaringBitmap>,
    /// In ascending order of `at`.
    marks: Vec<AgeMark>,
    aged: RoaringBitmap,
}

impl Default for AgeColumn {
    fn default() -> Self {
        let marks = AGE_MARKS
            .iter()
            .map(|&(amount, unit)| AgeMark {
                at: i32::try_from(days(amount, unit)).unwrap_or(i32::MAX),
                from_below: RoaringBitmap::new(),
                to_below: RoaringBitmap::new(),
            })
            .collect();
        Self {
            by_from: BTreeMap::new(),
            by_to: BTreeMap::new(),
            marks,
            aged: RoaringBitmap::new(),
        }
    }
}

impl AgeColumn {
    /// A column holding `by_from` and `by_to` (as a snapshot keeps them), with its running
    /// unions computed in one pass over each.
    fn from_maps(
        by_from: BTreeMap<i32, RoaringBitmap>,
        by_to: BTreeMap<i32, RoaringBitmap>,
    ) -> Self {
        let mut column = Self {
            by_from,
            by_to,
            ..Self::default()
        };
        let mut froms = RunningBelow::new(&column.by_from);
        let mut tos = RunningBelow::new(&column.by_to);
        for mark in &mut column.marks {
            mark.from_below.clone_from(froms.up_to(mark.at));
            mark.to_below.clone_from(tos.up_to(mark.at));
        }
        column.aged = froms.all();
        column
    }

    fn post(&mut self, span: AgeSpan, doc: u32, add: bool) {
        post(&mut self.by_from, span.from, doc, add);
        post(&mut self.by_to, span.to, doc, add);
        for mark in &mut self.marks {
            if span.from < mark.at {
                set(&mut mark.from_below, doc, add);
            }
            if span.to < mark.at {
                set(&mut mark.to_below, doc, add);
            }
        }
        set(&mut self.aged, doc, add);
    }

    /// Docs whose span lies within `[from, until)`: those whose latest age is below `until`
    /// less those whose earliest age is below `from`.
    fn within(&self, from: Option<i32>, until: Option<i32>) -> RoaringBitmap {
        let earlier = from.map(|f| self.below(f, &self.by_from, |mark| &mark.from_below));
        let mut result = match until {
            Some(u) => self.below(u, &self.by_to, |mark| &mark.to_below),
            None => self.aged.clone(),
        };
        if let Some(earlier) = earlier {
            result -= earlier;
        }
        result
    }

    /// Docs whose key in `map` (one of the column's) is below `bound`: the running union at
    /// the highest mark not above `bound` and the keys from there up to it.
    fn below(
        &self,
        bound: i32,
        map: &BTreeMap<i32, RoaringBitmap>,
        at_mark: impl Fn(&AgeMark) -> &RoaringBitmap,
    ) -> RoaringBitmap {
        match self.marks.iter().rev().find(|mark| mark.at <= bound) {
            Some(mark) => std::iter::once(at_mark(mark))
                .chain(map.range(mark.at..bound).map(|(_, b)| b))
                .union(),
            None => map.range(..bound).map(|(_, b)| b).union(),
        }
    }

    /// For each pair of consecutive `bounds` (non-decreasing), the docs [`AgeColumn::within`]
    /// that range, in one pass over the column instead of one union per range; and every
    /// doc with an age.
    ///
    /// A doc has one span per field, so it sits in exactly one `by_from` and one `by_to`
    /// bitmap: the docs with `from >= lower` are those with an age less those with
    /// `from < lower`, and the docs with `to < upper` all have an age.
    fn bands(&self, bounds: &[i32]) -> (Vec<RoaringBitmap>, RoaringBitmap) {
        let mut froms = RunningBelow::new(&self.by_from);
        let mut tos = RunningBelow::new(&self.by_to);
        let bands = bounds
            .windows(2)
            .map(|pair| tos.up_to(pair[1]) - froms.up_to(pair[0]))
            .collect();
        (bands, self.aged.clone())
    }
}

/// A running union over one of an age column's maps, read in key order: the docs of every
/// key below the last bound given.
struct RunningBelow<'a> {
    keys: std::iter::Peekable<std::collections::btree_map::Iter<'a, i32, RoaringBitmap>>,
    docs: RoaringBitmap,
}

impl<'a> RunningBelow<'a> {
    fn new(map: &'a BTreeMap<i32, RoaringBitmap>) -> Self {
        Self {
            keys: map.iter().peekable(),
            docs: RoaringBitmap::new(),
        }
    }

    /// The docs below `bound`, which is never below the previous one.
    fn up_to(&mut self, bound: i32) -> &RoaringBitmap {
        // A step's bitmaps are unioned together first: many are small, and a union of many
        // at once avoids growing sorted arrays one at a time.
        let keys = &mut self.keys;
        self.docs |= std::iter::from_fn(|| keys.next_if(|(key, _)| **key < bound))
            .map(|(_, b)| b)
            .union();
        &self.docs
    }

    /// The docs of every key.
    fn all(mut self) -> RoaringBitmap {
        self.docs |= self.keys.map(|(_, b)| b).union();
        self.docs
    }
}

/// Adds `doc` to `bitmap`. New cases take the next document number, so the usual case is
/// an append, which skips the search an insert makes.
fn add_doc(bitmap: &mut RoaringBitmap, doc: u32) {
    if bitmap.try_push(doc).is_err() {
        bitmap.insert(doc);
    }
}

/// Adds `docs`, in increasing order, to `bitmap`. Appended when they all come after its
/// last document (a write of new cases); otherwise merged in one pass, as inserting them one
/// by one would move a container's tail for each (the index rebuilt in case-id order).
fn add_docs(bitmap: &mut RoaringBitmap, docs: impl Iterator<Item = u32> + Clone) {
    if docs
        .clone()
        .next()
        .is_none_or(|doc| bitmap.max().is_none_or(|max| max < doc))
    {
        for doc in docs {
            add_doc(bitmap, doc);
        }
    } else {
        let mut added = RoaringBitmap::new();
        for doc in docs {
            add_doc(&mut added, doc);
        }
        *bitmap |= added;
    }
}

/// Adds or removes `doc` in `bitmap`.
fn set(bitmap: &mut RoaringBitmap, doc: u32, add: bool) {
    if add {
        add_doc(bitmap, doc);
    } else {
        bitmap.remove(doc);
    }
}

/// The transpose of a term → documents index: each document's terms, as dense slot numbers,
/// so that the terms of a subset of documents are counted by reading the subset's own lists
/// (about 8 terms per case) instead of testing every posting (15,000 phenotype postings, 7.5
/// million entries at 1M cases).
///
/// The lists lie end to end in one vector; a list that grows moves to the end and leaves a
/// hole, and the vector is compacted when holes make up half of it. Each list is sorted and
/// holds a term at most once, as a bitmap holds a document.
#[derive(Debug, Default)]
struct TermsByDoc {
    /// The slot of each term ever posted. Slots are never reused, so a term whose posting
    /// became empty keeps its slot (and counts zero).
    slot_of: HashMap<TermId, u32>,
    /// The term of each slot.
    terms: Vec<TermId>,
    /// Where each document's list starts in `slots`.
    starts: Vec<usize>,
    /// How long each document's list is.
    lens: Vec<u32>,
    /// The lists, end to end.
    slots: Vec<u32>,
    /// Entries of `slots` in no document's list.
    holes: usize,
}

/// Documents per block when [`TermsByDoc::transpose`] reads postings: one roaring container
/// of each posting (smaller blocks cost more in seeking each posting than they save in
/// cache misses: measured at 1M cases).
const TRANSPOSE_BLOCK_DOCS: u32 = 1 << 16;

/// Reads `bitmaps` a block of [`TRANSPOSE_BLOCK_DOCS`] documents at a time, from the first:
/// calls `visit(first, pairs)` for each block with (document, bitmap number) pairs for
/// every document of every bitmap in the block, bitmap by bitmap, each in document order.
fn for_each_block(bitmaps: &[&RoaringBitmap], mut visit: impl FnMut(u32, &[(u32, u32)])) {
    let last = bitmaps.iter().filter_map(|b| b.max()).max().unwrap_or(0);
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut first: u32 = 0;
    loop {
        let end = first.saturating_add(TRANSPOSE_BLOCK_DOCS - 1);
        pairs.clear();
        for (i, bitmap) in (0u32..).zip(bitmaps) {
            pairs.extend(bitmap.range(first..=end).map(|doc| (doc, i)));
        }
        visit(first, &pairs);
        if end >= last {
            return;
        }
        first = end + 1;
    }
}

/// Holes in [`TermsByDoc`] are left alone below this many entries.
const TERMS_BY_DOC_MIN_COMPACTION: usize = 1 << 16;

impl TermsByDoc {
    /// Builds the transpose of `postings` in one pass over them, a block of documents at a
    /// time: the block's (document, slot) pairs are gathered posting by posting, then placed
    /// by a counting sort on the document, all within cache (placing each pair straight
    /// into the whole vector scatters writes over it: 1.2 s at 1M cases).
    fn transpose(postings: &BTreeMap<TermId, RoaringBitmap>) -> Self {
        let mut this = Self::default();
        // Slots in term order, so each document's pairs arrive in slot order.
        let slots_in_order: Vec<u32> = postings.keys().map(|t| this.slot(*t)).collect();
        let bitmaps: Vec<&RoaringBitmap> = postings.values().collect();
        let docs = bitmaps
            .iter()
            .filter_map(|b| b.max())
            .max()
            .map_or(0, |d| d as usize + 1);
        let total: u64 = bitmaps.iter().map(|b| b.len()).sum();
        this.starts.reserve_exact(docs);
        this.lens.reserve_exact(docs);
        this.slots
            .reserve_exact(usize::try_from(total).unwrap_or(usize::MAX));
        let mut lens = Vec::new();
        for_each_block(&bitmaps, |first, pairs| {
            // The block's documents, the last block cut at the last document.
            let width = docs
                .saturating_sub(first as usize)
                .min(TRANSPOSE_BLOCK_DOCS as usize);
            lens.clear();
            lens.resize(width, 0u32);
            for (doc, _) in pairs.iter() {
                lens[(doc - first) as usize] += 1;
            }
            // Where each document's list goes, from the block's start; then filled.
            let base = this.slots.len();
            let mut at = 0;
            for len in &mut lens {
                this.starts.push(base + at as usize);
                this.lens.push(*len);
                (*len, at) = (at, at + *len);
            }
            this.slots.resize(base + at as usize, 0);
            let block = &mut this.slots[base..];
            for &(doc, posting) in pairs {
                let place = &mut lens[(doc - first) as usize];
                block[*place as usize] = slots_in_order[posting as usize];
                *place += 1;
            }
        });
        this
    }

    fn slot(&mut self, term: TermId) -> u32 {
        let next = u32::try_from(self.terms.len()).unwrap_or(u32::MAX);
        let slot = *self.slot_of.entry(term).or_insert(next);
        if slot == next {
            self.terms.push(term);
        }
        slot
    }

    /// Adds `terms` to a document's list, or removes them, as posting them adds or removes
    /// the document in each term's bitmap.
    fn post(&mut self, doc: u32, terms: &[TermId], add: bool) {
        let doc = doc as usize;
        if self.starts.len() <= doc {
            if !add {
                return;
            }
            self.starts.resize(doc + 1, 0);
            self.lens.resize(doc + 1, 0);
        }
        let (start, len) = (self.starts[doc], self.lens[doc] as usize);
        let mut list: Vec<u32> = self.slots[start..start + len].to_vec();
        if add {
            for &term in terms {
                let slot = self.slot(term);
                list.push(slot);
            }
            list.sort_unstable();
            list.dedup();
        } else {
            let gone: Vec<u32> = terms
                .iter()
                .filter_map(|t| self.slot_of.get(t).copied())
                .collect();
            list.retain(|slot| !gone.contains(slot));
        }
        if list.len() <= len {
            self.slots[start..start + list.len()].copy_from_slice(&list);
            self.holes += len - list.len();
        } else {
            self.holes += len;
            self.starts[doc] = self.slots.len();
            self.slots.extend_from_slice(&list);
        }
        self.lens[doc] = u32::try_from(list.len()).unwrap_or(u32::MAX);
        if self.holes >= TERMS_BY_DOC_MIN_COMPACTION && self.holes * 2 >= self.slots.len() {
            self.compact();
        }
    }

    /// Rewrites the lists end to end in document order, without holes.
    fn compact(&mut self) {
        let mut slots = Vec::with_capacity(self.slots.len() - self.holes);
        for (start, len) in self.starts.iter_mut().zip(&self.lens) {
            let list = &self.slots[*start..*start + *len as usize];
            *start = slots.len();
            slots.extend_from_slice(list);
        }
        self.slots = slots;
        self.holes = 0;
    }

    /// The terms of the documents of `subset`, in term order, each with how many of them
    /// have it; terms no document of the subset has are left out.
    fn count(&self, subset: &RoaringBitmap) -> Vec<(TermId, u64)> {
        let mut counts = vec![0u32; self.terms.len()];
        for doc in subset {
            let doc = doc as usize;
            if let (Some(&start), Some(&len)) = (self.starts.get(doc), self.lens.get(doc)) {
                for &slot in &self.slots[start..start + len as usize] {
                    counts[slot as usize] += 1;
                }
            }
        }
        let mut counted: Vec<(TermId, u64)> = self
            .terms
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(term, n)| (*term, u64::from(n)))
            .collect();
        counted.sort_unstable_by_key(|(term, _)| *term);
        counted
    }

    /// Heap bytes held, for reports.
    fn heap_bytes(&self) -> u64 {
        let bytes = self.slots.capacity() * size_of::<u32>()
            + self.starts.capacity() * size_of::<usize>()
            + self.lens.capacity() * size_of::<u32>()
            + self.terms.capacity() * size_of::<TermId>()
            + self.slot_of.capacity() * (size_of::<TermId>() + size_of::<u32>());
        bytes as u64
    }
}

/// Adds or removes `doc` in the bitmap under `key`, dropping bitmaps that become empty.
fn post<K: Ord>(map: &mut BTreeMap<K, RoaringBitmap>, key: K, doc: u32, add: bool) {
    if add {
        add_doc(map.entry(key).or_default(), doc);
    } else if let Some(bitmap) = map.get_mut(&key) {
        bitmap.remove(doc);
        if bitmap.is_empty() {
            map.remove(&key);
        }
    }
}

/// The cases with any value of a kind of posting (a facet's cases with a value, whatever
/// the filter), each the union of thousands of postings: computed when first asked for
/// after a change, and dropped by every change.
#[derive(Debug, Default)]
struct Valued {
    codes: [OnceLock<RoaringBitmap>; CODE_KINDS],
    present: OnceLock<RoaringBitmap>,
    excluded: OnceLock<RoaringBitmap>,
    /// Observed phenotypes rolled up 1, 2, … levels below Phenotypic abnormality.
    rolled_up: [OnceLock<RoaringBitmap>; MAX_ROLLUP_DEPTH as usize],
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

/// Most deferred closure postings whose room the index keeps between writes (8 MiB; an
/// import batch of 512 cases needs about 50,000).
const MAX_CLOSURE_SCRATCH: usize = 1 << 20;

/// The search indexes of a registry.
#[derive(Debug)]
pub struct Index {
    hpo: Arc<Ontology>,
    expansion: Expansion,
    /// Ancestors-or-self of each term seen, computed once.
    lineage: HashMap<TermId, Box<[TermId]>>,
    present: BTreeMap<TermId, RoaringBitmap>,
    /// The transpose of `present`, each document's observed terms: built when co-occurrence
    /// first needs it (about 0.2 s and 42 MiB at 1M cases), then kept in step.
    present_by_doc: OnceLock<TermsByDoc>,
    present_closure: BTreeMap<TermId, RoaringBitmap>,
    excluded: BTreeMap<TermId, RoaringBitmap>,
    codes: [CodeIndex; CODE_KINDS],
    sex: BTreeMap<i32, RoaringBitmap>,
    onset: AgeColumn,
    last_encounter: AgeColumn,
    active: RoaringBitmap,
    valued: Valued,
    /// Case id of each document number ever assigned.
    docs: Vec<Option<CaseId>>,
    /// Room for a write's deferred closure postings (about a hundred per new case), kept
    /// between writes: allocated afresh for each import batch, it was fresh memory from the
    /// kernel every time, and zeroing it cost about 3% of an import's server CPU.
    closure_scratch: Vec<(TermId, u32)>,
}

impl Index {
    /// An empty index reading phenotypes with `hpo`.
    pub fn new(hpo: Arc<Ontology>, expansion: Expansion) -> Self {
        Self {
            hpo,
            expansion,
            lineage: HashMap::new(),
            present: BTreeMap::new(),
            present_by_doc: OnceLock::new(),
            present_closure: BTreeMap::new(),
            excluded: BTreeMap::new(),
            codes: Default::default(),
            sex: BTreeMap::new(),
            onset: AgeColumn::default(),
            last_encounter: AgeColumn::default(),
            active: RoaringBitmap::new(),
            valued: Valued::default(),
            docs: Vec::new(),
            closure_scratch: Vec::new(),
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
        self.apply([(None, entry)]);
    }

    /// Removes a case's postings, as they were inserted.
    pub fn remove(&mut self, entry: Entry<'_>) {
        if entry.active {
            self.post(entry, false, None);
        }
    }

    /// Applies a write's changes in their order: each `(old, new)` removes the old
    /// version's postings, if any, and adds the new one's. A write of many new cases posts
    /// each phenotype's ancestors (most of its postings) once per term rather than once
    /// per case and term.
    pub fn apply<'a>(&mut self, changes: impl IntoIterator<Item = (Option<Entry<'a>>, Entry<'a>)>) {
        let mut closure = std::mem::take(&mut self.closure_scratch);
        for (old, new) in changes {
            if let Some(old) = old {
                // A removal sees every earlier addition.
                self.post_closure(&mut closure);
                self.remove(old);
            }
            self.insert_deferring(new, &mut closure);
        }
        self.post_closure(&mut closure);
        if closure.capacity() <= MAX_CLOSURE_SCRATCH {
            self.closure_scratch = closure;
        }
    }

    /// Inserts `entry`, leaving its ancestor-closure postings in `closure` for
    /// [`Self::post_closure`].
    fn insert_deferring(&mut self, entry: Entry<'_>, closure: &mut Vec<(TermId, u32)>) {
        let slot = entry.doc as usize;
        if self.docs.len() <= slot {
            self.docs.resize(slot + 1, None);
        }
        self.docs[slot] = Some(entry.id);
        if entry.active {
            self.post(entry, true, Some(closure));
        }
    }

    /// Adds deferred `(term, doc)` closure postings, grouped by term, and empties `closure`.
    fn post_closure(&mut self, closure: &mut Vec<(TermId, u32)>) {
        closure.sort_unstable();
        for run in closure.chunk_by(|a, b| a.0 == b.0) {
            let bitmap = self.present_closure.entry(run[0].0).or_default();
            add_docs(bitmap, run.iter().map(|&(_, doc)| doc));
        }
        closure.clear();
    }

    /// Adds or removes a case's postings. Additions to the ancestor closure go to
    /// `deferred` when given.
    fn post(&mut self, entry: Entry<'_>, add: bool, deferred: Option<&mut Vec<(TermId, u32)>>) {
        let Entry {
            doc, center, facts, ..
        } = entry;
        self.valued = Valued::default();
        set(&mut self.active, doc, add);
        for &term in &facts.present {
            post(&mut self.present, term, doc, add);
        }
        if let Some(by_doc) = self.present_by_doc.get_mut() {
            by_doc.post(doc, &facts.present, add);
        }
        if self.expansion == Expansion::AncestorClosure {
            let mut closure: Vec<TermId> = Vec::new();
            for &term in &facts.present {
                closure.extend_from_slice(self.lineage(term));
            }
            closure.sort_unstable();
            closure.dedup();
            match deferred {
                Some(deferred) if add => deferred.extend(closure.into_iter().map(|t| (t, doc))),
                _ => {
                    for term in closure {
                        post(&mut self.present_closure, term, doc, add);
                    }
                }
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

    /// The observed phenotypes (as recorded) of the cases of `subset`, in term order, each
    /// with how many cases of the subset have it and its posting. Read from each case's own
    /// terms, so the cost follows the subset's size, not the size of every posting.
    pub(crate) fn present_counts(
        &self,
        subset: &RoaringBitmap,
    ) -> Vec<(TermId, u64, &RoaringBitmap)> {
        self.present_by_doc
            .get_or_init(|| TermsByDoc::transpose(&self.present))
            .count(subset)
            .into_iter()
            .filter_map(|(term, hits)| Some((term, hits, self.present.get(&term)?)))
            .collect()
    }

    /// Heap bytes of the per-case lists of observed phenotypes (the transpose of the
    /// `present` postings that co-occurrence counts from; 0 until it is first needed), for
    /// reports.
    pub fn present_by_doc_bytes(&self) -> u64 {
        self.present_by_doc.get().map_or(0, TermsByDoc::heap_bytes)
    }

    /// The cases with a phenotype or any descendant, as [`Query::Phenotype`] matches them;
    /// borrowed from the ancestor closure when there is one.
    pub(crate) fn phenotype_cases(&self, term: TermId) -> Cow<'_, RoaringBitmap> {
        self.phenotype(term, false)
    }

    /// The cases of a sex (Phenopacket enum number), if any.
    pub(crate) fn sex_cases(&self, sex: i32) -> Option<&RoaringBitmap> {
        self.sex.get(&sex)
    }

    /// For each pair of consecutive `bounds` (non-decreasing), the cases whose age lies
    /// within that range, as [`Query::Age`] with both bounds matches them; and every case
    /// with an age.
    pub(crate) fn age_bands(
        &self,
        field: AgeField,
        bounds: &[i32],
    ) -> (Vec<RoaringBitmap>, RoaringBitmap) {
        self.age_column(field).bands(bounds)
    }

    /// The cases with any code of a kind.
    pub(crate) fn cases_with_code(&self, kind: CodeKind) -> &RoaringBitmap {
        self.valued.codes[kind.slot()]
            .get_or_init(|| self.codes[kind.slot()].postings.values().union())
    }

    /// The cases with any observed phenotype.
    pub(crate) fn cases_with_present(&self) -> &RoaringBitmap {
        self.valued
            .present
            .get_or_init(|| self.present.values().union())
    }

    /// The cases with an observed phenotype under any term `depth` levels below Phenotypic
    /// abnormality (1: any organ system), from `union` of those terms' cases when first asked
    /// for after a change.
    pub(crate) fn cases_with_rolled_up(
        &self,
        depth: u32,
        union: impl FnOnce() -> RoaringBitmap,
    ) -> Cow<'_, RoaringBitmap> {
        match depth
            .checked_sub(1)
            .and_then(|slot| self.valued.rolled_up.get(slot as usize))
        {
            Some(cached) => Cow::Borrowed(cached.get_or_init(union)),
            None => Cow::Owned(union()),
        }
    }

    /// The cases with any excluded phenotype.
    pub(crate) fn cases_with_excluded(&self) -> &RoaringBitmap {
        self.valued
            .excluded
            .get_or_init(|| self.excluded.values().union())
    }

    fn age_column(&self, field: AgeField) -> &AgeColumn {
        match field {
            AgeField::Onset => &self.onset,
            AgeField::LastEncounter => &self.last_encounter,
        }
    }

    /// The smallest and largest finite age recorded for a field, in days.
    pub fn age_extent(&self, field: AgeField) -> Option<(i32, i32)> {
        let column = self.age_column(field);
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
        let mut result = self.evaluate(query).into_owned();
        result &= &self.active;
        result
    }

    /// How many active cases match `query`.
    pub fn count(&self, query: &Query) -> u64 {
        match query {
            // The common shape, positive operands under one AND, is counted without building
            // the last intersection. (Every posting holds active cases only.)
            Query::All(operands)
                if operands.len() >= 2 && !operands.iter().any(|q| matches!(q, Query::Not(_))) =>
            {
                let mut sets = self.sets_of(operands);
                let largest = sets.pop().unwrap_or_default();
                match sets.as_slice() {
                    [one] => one.intersection_len(&largest),
                    _ => sets
                        .iter()
                        .map(AsRef::as_ref)
                        .intersection()
                        .intersection_len(&largest),
                }
            }
            _ => self.matching(query).len(),
        }
    }

    /// A query's cases, borrowed from the index where one posting answers it.
    fn evaluate(&self, query: &Query) -> Cow<'_, RoaringBitmap> {
        match query {
            Query::All(operands) => Cow::Owned(self.all(operands)),
            Query::Any(operands) => {
                let sets: Vec<_> = operands.iter().map(|q| self.evaluate(q)).collect();
                Cow::Owned(sets.iter().map(AsRef::as_ref).union())
            }
            Query::Not(operand) => Cow::Owned(&self.active - self.evaluate(operand).as_ref()),
            Query::Phenotype { term, exact } => self.phenotype(*term, *exact),
            Query::Excluded { term, exact: true } => self.bitmap(&self.excluded, term),
            Query::Excluded { term, exact: false } => {
                let mut terms = self.hpo.ancestors(*term);
                terms.push(*term);
                Cow::Owned(terms.iter().filter_map(|t| self.excluded.get(t)).union())
            }
            Query::Code { kind, id } => self.bitmap(
                &self.codes[kind.slot()].postings,
                kind.normalize(id).as_str(),
            ),
            Query::Sex(sex) => self.bitmap(&self.sex, sex),
            Query::Age { field, from, until } => {
                Cow::Owned(self.age_column(*field).within(*from, *until))
            }
        }
    }

    /// The cases of each of `operands` that is not negated, smallest first.
    fn sets_of<'a>(&'a self, operands: &[Query]) -> Vec<Cow<'a, RoaringBitmap>> {
        let mut sets: Vec<_> = operands
            .iter()
            .filter(|q| !matches!(q, Query::Not(_)))
            .map(|q| self.evaluate(q))
            .collect();
        sets.sort_by_key(|set| set.len());
        sets
    }

    /// AND: intersect the positive operands smallest first, then subtract the negated ones.
    fn all(&self, operands: &[Query]) -> RoaringBitmap {
        let sets = self.sets_of(operands);
        let mut result = match sets.as_slice() {
            [] => self.active.clone(),
            [one] => one.as_ref().clone(),
            _ => sets.iter().map(AsRef::as_ref).intersection(),
        };
        for query in operands {
            if let Query::Not(inner) = query {
                if result.is_empty() {
                    break;
                }
                result -= self.evaluate(inner).as_ref();
            }
        }
        result
    }

    fn phenotype(&self, term: TermId, exact: bool) -> Cow<'_, RoaringBitmap> {
        if exact {
            return self.bitmap(&self.present, &term);
        }
        match self.expansion {
            Expansion::AncestorClosure => self.bitmap(&self.present_closure, &term),
            Expansion::DescendantUnion => {
                let mut terms = self.hpo.descendants(term);
                terms.push(term);
                Cow::Owned(terms.iter().filter_map(|t| self.present.get(t)).union())
            }
        }
    }

    fn bitmap<'a, K: Ord + std::borrow::Borrow<Q>, Q: Ord + ?Sized>(
        &'a self,
        map: &'a BTreeMap<K, RoaringBitmap>,
        key: &Q,
    ) -> Cow<'a, RoaringBitmap> {
        map.get(key)
            .map_or_else(|| Cow::Owned(RoaringBitmap::new()), Cow::Borrowed)
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
            // Hash maps, written in key order so that equal indexes give equal snapshots.
            let mut labels: Vec<_> = code.labels.iter().collect();
            labels.sort_unstable_by_key(|(label, _)| *label);
            wire::len_out(w, labels.len())?;
            for (label, ids) in labels {
                wire::str_out(w, label)?;
                wire::len_out(w, ids.len())?;
                for id in ids {
                    wire::str_out(w, id)?;
                }
            }
            let mut names: Vec<_> = code.names.iter().collect();
            names.sort_unstable_by_key(|(id, _)| *id);
            wire::len_out(w, names.len())?;
            for (id, label) in names {
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
            let by_from = map_in(r, i32_in)?;
            *column = AgeColumn::from_maps(by_from, map_in(r, i32_in)?);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic draws below a bound (a linear congruential generator from `seed`).
    pub(crate) fn draws(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut state = seed;
        move |bound| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound
        }
    }

    /// The per-document lists equal the set of terms posted, through adds, removals and
    /// the compactions that thousands of growing lists cause.
    #[test]
    fn terms_by_doc_follow_their_postings_through_compaction() {
        const DOCS: u32 = 3_000;
        let mut by_doc = TermsByDoc::default();
        let mut model: Vec<BTreeSet<TermId>> = vec![BTreeSet::new(); DOCS as usize];
        let mut next = draws(1);
        let mut compactions = 0;
        for round in 0..60_000 {
            let doc = next(u64::from(DOCS)) as u32;
            let terms: Vec<TermId> = (0..next(6)).map(|_| TermId(next(40) as u32 + 1)).collect();
            let add = next(3) != 0;
            let holes = by_doc.holes;
            by_doc.post(doc, &terms, add);
            if by_doc.holes < holes {
                compactions += 1;
            }
            let set = &mut model[doc as usize];
            for term in &terms {
                if add {
                    set.insert(*term);
                } else {
                    set.remove(term);
                }
            }
            if round % 10_000 == 0 || round == 59_999 {
                let subset: RoaringBitmap = (0..DOCS).filter(|d| d % 3 != 1).collect();
                let mut expected: BTreeMap<TermId, u64> = BTreeMap::new();
                for doc in &subset {
                    for term in &model[doc as usize] {
                        *expected.entry(*term).or_default() += 1;
                    }
                }
                let counted: BTreeMap<TermId, u64> = by_doc.count(&subset).into_iter().collect();
                assert_eq!(counted, expected, "round {round}");
            }
        }
        assert!(compactions > 0, "no compaction happened");
        let live: usize = model.iter().map(BTreeSet::len).sum();
        assert_eq!(by_doc.slots.len() - by_doc.holes, live);
        assert!(by_doc.slots.len() <= 2 * live + TERMS_BY_DOC_MIN_COMPACTION);
    }

    /// Age windows read through the running unions at the marks equal a filter over every
    /// doc's span, for bounds on, between and beyond the marks, through adds and removals,
    /// and again after the column is rebuilt from its maps (as a snapshot is read).
    #[test]
    fn age_windows_equal_a_filter_of_the_spans() {
        const DOCS: u32 = 4_000;
        let mut column = AgeColumn::default();
        let mut spans: Vec<Option<AgeSpan>> = vec![None; DOCS as usize];
        let mut next = draws(7);
        for _ in 0..12_000 {
            let doc = next(u64::from(DOCS)) as u32;
            if let Some(span) = spans[doc as usize].take() {
                column.post(span, doc, false);
            }
            if next(4) != 0 {
                let from = next(40_000) as i32 - 300;
                let to = match next(5) {
                    0 => i32::MAX,
                    _ => from + next(2_000) as i32,
                };
                let span = AgeSpan { from, to };
                column.post(span, doc, true);
                spans[doc as usize] = Some(span);
            }
        }
        let marks: Vec<i32> = column.marks.iter().map(|mark| mark.at).collect();
        let mut bounds = vec![None, Some(i32::MIN), Some(-1), Some(i32::MAX)];
        for at in &marks {
            bounds.extend([Some(at - 1), Some(*at), Some(at + 3)]);
        }
        bounds.extend((0..40).map(|_| Some(next(45_000) as i32 - 500)));
        let rebuilt = AgeColumn::from_maps(column.by_from.clone(), column.by_to.clone());
        for &from in &bounds {
            for &until in &bounds {
                let expected: RoaringBitmap = (0..DOCS)
                    .filter(|&doc| {
                        spans[doc as usize].is_some_and(|span| {
                            from.is_none_or(|f| span.from >= f) && until.is_none_or(|u| span.to < u)
                        })
                    })
                    .collect();
                assert_eq!(
                    column.within(from, until),
                    expected,
                    "[{from:?}, {until:?})"
                );
                assert_eq!(
                    rebuilt.within(from, until),
                    expected,
                    "rebuilt [{from:?}, {until:?})"
                );
            }
        }
        assert!(marks.contains(&365), "a year is a mark: {marks:?}");
    }

    /// A write's changes applied together leave the index as applying them one by one
    /// does, also when a change removes a version that the same write added.
    #[test]
    fn applying_a_write_at_once_equals_one_change_at_a_time() {
        const TERMS: &[u32] = &[118, 152, 951, 11_121, 25_520, 1250, 7359, 2069, 4322];
        let hpo = Arc::new(Ontology::embedded().unwrap());
        let center = CenterId::parse("center-a").unwrap();
        let mut next = draws(11);
        fn facts(next: &mut impl FnMut(u64) -> u64) -> CaseFacts {
            CaseFacts {
                present: (0..=next(4))
                    .map(|_| TermId(TERMS[next(TERMS.len() as u64) as usize]))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                sex: next(3) as i32,
                ..CaseFacts::default()
            }
        }
        // Three writes: new cases; new cases and a replacement of one of them; replacements
        // of earlier cases, one replaced twice.
        let mut versions: Vec<CaseFacts> = Vec::new();
        let mut writes: Vec<Vec<(Option<usize>, usize, u32)>> = Vec::new();
        let mut doc_of_version: Vec<u32> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        for (first, count) in [(0u32, 40u32), (40, 30)] {
            let mut write = Vec::new();
            for doc in first..first + count {
                versions.push(facts(&mut next));
                doc_of_version.push(doc);
                current.push(versions.len() - 1);
                write.push((None, versions.len() - 1, doc));
            }
            let doc = first + 3;
            versions.push(facts(&mut next));
            doc_of_version.push(doc);
            write.push((Some(current[doc as usize]), versions.len() - 1, doc));
            current[doc as usize] = versions.len() - 1;
            writes.push(write);
        }
        let mut write = Vec::new();
        for doc in [5u32, 50, 5, 69] {
            versions.push(facts(&mut next));
            doc_of_version.push(doc);
            write.push((Some(current[doc as usize]), versions.len() - 1, doc));
            current[doc as usize] = versions.len() - 1;
        }
        writes.push(write);
        let entry = |version: usize| Entry {
            doc: doc_of_version[version],
            id: CaseId::derive(
                &center,
                &crate::ids::ExternalId::parse(&format!("r{}", doc_of_version[version])).unwrap(),
            ),
            center: &center,
            active: true,
            facts: &versions[version],
        };
        let mut together = Index::new(Arc::clone(&hpo), Expansion::AncestorClosure);
        let mut one_by_one = Index::new(hpo, Expansion::AncestorClosure);
        for write in &writes {
            together.apply(
                write
                    .iter()
                    .map(|&(old, new, _)| (old.map(entry), entry(new))),
            );
            for &(old, new, _) in write {
                if let Some(old) = old {
                    one_by_one.remove(entry(old));
                }
                one_by_one.insert(entry(new));
            }
        }
        let snapshot = |index: &Index| {
            let mut bytes = Vec::new();
            index.write_snapshot(&mut bytes, 1).unwrap();
            bytes
        };
        assert_eq!(snapshot(&together), snapshot(&one_by_one));
        let term = TermId(118);
        let expected: RoaringBitmap = current
            .iter()
            .enumerate()
            .filter(|&(_, &version)| {
                versions[version]
                    .present
                    .iter()
                    .any(|&t| t == term || together.hpo.ancestors(t).contains(&term))
            })
            .map(|(doc, _)| doc as u32)
            .collect();
        assert_eq!(
            together
                .bitmap(&together.present_closure, &term)
                .into_owned(),
            expected
        );
    }

    /// The transpose of postings holds each document's terms in slot order.
    #[test]
    fn transpose_equals_posting_one_by_one() {
        let mut postings: BTreeMap<TermId, RoaringBitmap> = BTreeMap::new();
        for term in 1..50u32 {
            let docs: RoaringBitmap = (0..200_000u32)
                .filter(|d| (d * 7 + term * 13) % (term + 2) == 0)
                .collect();
            postings.insert(TermId(term), docs);
        }
        let transposed = TermsByDoc::transpose(&postings);
        let mut posted = TermsByDoc::default();
        for (term, docs) in &postings {
            for doc in docs {
                posted.post(doc, &[*term], true);
            }
        }
        for subset in [
            (0..200_000u32).collect::<RoaringBitmap>(),
            (0..200_000u32).filter(|d| d % 97 == 5).collect(),
            RoaringBitmap::new(),
        ] {
            assert_eq!(transposed.count(&subset), posted.count(&subset));
        }
        for doc in [0usize, 1, 65_535, 65_536, 131_071, 199_999] {
            let (start, len) = (transposed.starts[doc], transposed.lens[doc] as usize);
            let list = &transposed.slots[start..start + len];
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{doc}: {list:?}");
        }
    }
}
