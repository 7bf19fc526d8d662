//! Counts of matching cases grouped by one or two dimensions, from the search indexes.
//!
//! A case counts once per group it belongs to: a case with two diseases is in both disease
//! groups, so the cells of a dimension may sum to more than the total. Exact counts only:
//! disclosure control is applied by the server on the way out.

use std::borrow::Cow;
use std::collections::BTreeMap;

use roaring::{MultiOps as _, RoaringBitmap};

use crate::ids::TermId;
use crate::index::{AgeField, CodeKind, Index, Query};
use crate::stats::{Enrichment, benjamini_hochberg};

/// The HPO root every phenotype roll-up is measured from (Phenotypic abnormality).
pub const PHENOTYPIC_ABNORMALITY: TermId = TermId(118);

/// What cases are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// A coded value (disease, gene, treatment, response, procedure, center, publication).
    Code(CodeKind),
    /// Observed phenotypes: as recorded (`rollup_depth` 0) or rolled up to their ancestors
    /// `rollup_depth` levels below Phenotypic abnormality (1: organ systems).
    Phenotype {
        /// Levels below the root; 0 for the terms as recorded.
        rollup_depth: u32,
    },
    /// Excluded phenotypes, as recorded.
    Excluded,
    /// Subject sex.
    Sex,
    /// An age in buckets of `bucket_days`, starting at multiples of it.
    Age {
        /// Onset or last encounter.
        field: AgeField,
        /// Bucket width in days (at least 1).
        bucket_days: u32,
    },
}

/// The value a group stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupKey {
    /// A code id.
    Code(String),
    /// An HPO term.
    Term(TermId),
    /// A sex (Phenopacket enum number).
    Sex(i32),
    /// Ages in `[from, until)` days.
    Bucket {
        /// Inclusive.
        from: i32,
        /// Exclusive.
        until: i32,
    },
    /// An age known only to a range wider than one bucket.
    SeveralBuckets,
}

/// How to cut the list of cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Most cells returned, largest first.
    pub top: usize,
    /// Cells with fewer cases are left out.
    pub min_count: u64,
}

/// One cell: the keys along each dimension and the number of cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// One key per dimension.
    pub keys: Vec<GroupKey>,
    /// Matching cases in the cell.
    pub count: u64,
}

/// Exact counts of an aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Cells, largest first, then by key.
    pub cells: Vec<Cell>,
    /// Cases matching the filter.
    pub total: u64,
    /// Matching cases with a value of the first dimension that are in no listed cell.
    pub other: u64,
    /// Matching cases without any value of the first dimension.
    pub none: u64,
}

/// Why an aggregation cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AggregateError(pub String);

pub use crate::limits::MAX_AGE_BUCKETS;

/// A value of a dimension before its key is built: a code's key is a new string, made only
/// for values that some matching case has.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Code(&'a str),
    Term(TermId),
    Sex(i32),
    Bucket { from: i32, until: i32 },
    SeveralBuckets,
}

impl Value<'_> {
    fn key(self) -> GroupKey {
        match self {
            Self::Code(id) => GroupKey::Code(id.to_owned()),
            Self::Term(term) => GroupKey::Term(term),
            Self::Sex(sex) => GroupKey::Sex(sex),
            Self::Bucket { from, until } => GroupKey::Bucket { from, until },
            Self::SeveralBuckets => GroupKey::SeveralBuckets,
        }
    }
}

/// Every value of a dimension with all the (active) cases that have it; a group is one of
/// these bitmaps intersected with the matching cases. Postings are borrowed from the index
/// where it keeps them; computed ones (age buckets, phenotypes without an ancestor closure)
/// are owned.
type Postings<'a> = Vec<(Value<'a>, Cow<'a, RoaringBitmap>)>;

/// Keeps the first `top` items in `order`, sorted: the same items and order as sorting all
/// of them and truncating, without sorting those that are cut (`order` is total).
fn sort_top<T>(items: &mut Vec<T>, top: usize, order: impl Fn(&T, &T) -> std::cmp::Ordering) {
    select_top(items, top, order);
    items.truncate(top);
}

/// Puts the first `top` items by `order` at the front, sorted; the others follow, in no
/// particular order. Only the kept items are sorted.
pub(crate) fn select_top<T>(
    items: &mut [T],
    top: usize,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    if items.len() > top {
        items.select_nth_unstable_by(top, &order);
    }
    let kept = top.min(items.len());
    items[..kept].sort_unstable_by(order);
}

impl Index {
    /// The non-empty groups of `dimension` among `within`, with their cases.
    pub fn groups(
        &self,
        dimension: Dimension,
        within: &RoaringBitmap,
    ) -> Result<Vec<(GroupKey, RoaringBitmap)>, AggregateError> {
        Ok(self
            .value_postings(dimension)?
            .into_iter()
            .filter_map(|(value, cases)| {
                let cases = cases.as_ref() & within;
                (!cases.is_empty()).then(|| (value.key(), cases))
            })
            .collect())
    }

    /// Every value of `dimension` with its cases, whatever the filter.
    fn value_postings(&self, dimension: Dimension) -> Result<Postings<'_>, AggregateError> {
        Ok(match dimension {
            Dimension::Code(kind) => self
                .code_postings(kind)
                .map(|(id, b)| (Value::Code(id), Cow::Borrowed(b)))
                .collect(),
            Dimension::Phenotype { rollup_depth: 0 } => self
                .present_postings()
                .map(|(t, b)| (Value::Term(t), Cow::Borrowed(b)))
                .collect(),
            Dimension::Phenotype { rollup_depth } => self
                .terms_at_depth(rollup_depth)
                .into_iter()
                .map(|t| (Value::Term(t), self.phenotype_cases(t)))
                .collect(),
            Dimension::Excluded => self
                .excluded_postings()
                .map(|(t, b)| (Value::Term(t), Cow::Borrowed(b)))
                .collect(),
            Dimension::Sex => (0..4)
                .filter_map(|s| Some((Value::Sex(s), Cow::Borrowed(self.sex_cases(s)?))))
                .collect(),
            Dimension::Age { field, bucket_days } => self.age_postings(field, bucket_days)?,
        })
    }

    /// Age buckets: a case is in the bucket that holds its whole age span, or in
    /// `SeveralBuckets` when its span crosses buckets.
    fn age_postings(
        &self,
        field: AgeField,
        bucket_days: u32,
    ) -> Result<Postings<'_>, AggregateError> {
        let width = i64::from(bucket_days);
        if width == 0 {
            return Err(AggregateError(
                "bucket width must be at least 1 day".to_owned(),
            ));
        }
        let Some((low, high)) = self.age_extent(field) else {
            return Ok(Vec::new());
        };
        let first = i64::from(low).div_euclid(width) * width;
        let buckets = (i64::from(high) - first) / width + 1;
        if buckets > MAX_AGE_BUCKETS as i64 {
            return Err(AggregateError(format!(
                "buckets of {bucket_days} days make {buckets} buckets over the recorded ages; \
                 the limit is {MAX_AGE_BUCKETS}: use wider buckets"
            )));
        }
        let bounds: Vec<i32> = (0..=buckets).map(|i| clamp(first + i * width)).collect();
        let (bands, aged) = self.age_bands(field, &bounds);
        let placed: RoaringBitmap = bands.iter().union();
        let mut postings: Postings<'_> = bounds
            .windows(2)
            .zip(bands)
            .map(|(pair, band)| {
                let (from, until) = (pair[0], pair[1]);
                (Value::Bucket { from, until }, Cow::Owned(band))
            })
            .collect();
        postings.push((Value::SeveralBuckets, Cow::Owned(aged - placed)));
        Ok(postings)
    }

    /// Exact counts for `query` grouped by one or two dimensions.
    pub fn aggregate(
        &self,
        query: &Query,
        dimensions: &[Dimension],
        cut: Cut,
    ) -> Result<Aggregate, AggregateError> {
        let matching = self.matching(query);
        let (first, second) = match dimensions {
            [first] => (*first, None),
            [first, second] => (*first, Some(*second)),
            _ => return Err(AggregateError("group by one or two dimensions".to_owned())),
        };
        let first_postings = self.value_postings(first)?;
        let (cells, valued, listed) = match second {
            None => self.facet(first, &first_postings, &matching, cut),
            Some(second) => self.pivot(first, second, &first_postings, &matching, cut)?,
        };
        Ok(Aggregate {
            total: matching.len(),
            other: valued - listed,
            none: matching.len() - valued,
            cells,
        })
    }

    /// Every case with a value of `dimension`: the union of its postings, kept by the index
    /// for the dimensions with thousands of them.
    fn valued_cases<'a>(
        &'a self,
        dimension: Dimension,
        postings: &Postings<'a>,
    ) -> Cow<'a, RoaringBitmap> {
        match dimension {
            Dimension::Code(kind) => Cow::Borrowed(self.cases_with_code(kind)),
            Dimension::Phenotype { rollup_depth: 0 } => Cow::Borrowed(self.cases_with_present()),
            Dimension::Excluded => Cow::Borrowed(self.cases_with_excluded()),
            Dimension::Phenotype { rollup_depth } => self
                .cases_with_rolled_up(rollup_depth, || {
                    postings.iter().map(|(_, b)| b.as_ref()).union()
                }),
            Dimension::Sex | Dimension::Age { .. } => {
                Cow::Owned(postings.iter().map(|(_, b)| b.as_ref()).union())
            }
        }
    }

    /// The cells of one dimension, with how many matching cases have a value and how many
    /// of those are in a listed cell. Each value's cases are counted without building the
    /// group; only the listed groups are unioned.
    fn facet(
        &self,
        dimension: Dimension,
        postings: &Postings<'_>,
        matching: &RoaringBitmap,
        cut: Cut,
    ) -> (Vec<Cell>, u64, u64) {
        let least = cut.min_count.max(1);
        let mut below_least = false;
        let counter = SubsetCounter::new(matching, self.next_doc());
        let mut counted: Vec<((GroupKey, &RoaringBitmap), u64)> = postings
            .iter()
            .filter_map(|(value, cases)| {
                let n = counter.count(cases);
                below_least |= n > 0 && n < least;
                (n >= least).then(|| ((value.key(), cases.as_ref()), n))
            })
            .collect();
        // When every value some matching case has is listed, the listed cases are the
        // valued ones, and the union of every posting (the costly part of a full
        // distribution) is not needed.
        let all_listed = !below_least && counted.len() <= cut.top;
        sort_top(&mut counted, cut.top, |a, b| {
            b.1.cmp(&a.1).then_with(|| a.0.0.cmp(&b.0.0))
        });
        let valued = self
            .valued_cases(dimension, postings)
            .intersection_len(matching);
        let listed = if all_listed {
            valued
        } else {
            counted
                .iter()
                .map(|((_, b), _)| *b)
                .union()
                .intersection_len(matching)
        };
        let cells = counted
            .into_iter()
            .map(|((key, _), count)| Cell {
                keys: vec![key],
                count,
            })
            .collect();
        (cells, valued, listed)
    }

    /// The cells of two dimensions, with how many matching cases have a value of the first
    /// and how many of those are in a listed cell.
    fn pivot(
        &self,
        first: Dimension,
        second: Dimension,
        first_postings: &Postings<'_>,
        matching: &RoaringBitmap,
        cut: Cut,
    ) -> Result<(Vec<Cell>, u64, u64), AggregateError> {
        use CodeKind::{Response, Treatment};
        let valued = self.valued_cases(first, first_postings);
        // A response belongs to its own treatment: pair them from the same medical action.
        let paired = match (first, second) {
            (Dimension::Code(Treatment), Dimension::Code(Response)) => Some(false),
            (Dimension::Code(Response), Dimension::Code(Treatment)) => Some(true),
            _ => None,
        };
        if let Some(reversed) = paired {
            let valued = valued.as_ref() & matching;
            let pairs = self.groups(Dimension::Code(CodeKind::TreatmentResponse), matching)?;
            let mut cells: Vec<(Vec<GroupKey>, RoaringBitmap)> = pairs
                .into_iter()
                .filter_map(|(key, cases)| {
                    let GroupKey::Code(key) = key else {
                        return None;
                    };
                    let (agent, response) = key.split_once('\t')?;
                    let (a, b) = (
                        GroupKey::Code(agent.to_owned()),
                        GroupKey::Code(response.to_owned()),
                    );
                    Some((if reversed { vec![b, a] } else { vec![a, b] }, cases))
                })
                .filter(|(_, cases)| cases.len() >= cut.min_count.max(1))
                .collect();
            sort_top(&mut cells, cut.top, |(ka, a), (kb, b)| {
                b.len().cmp(&a.len()).then_with(|| ka.cmp(kb))
            });
            // A pair need not be within its treatment's group: count the set difference.
            let listed: RoaringBitmap = cells.iter().map(|(_, b)| b).union();
            let cells = cells
                .into_iter()
                .map(|(keys, cases)| Cell {
                    keys,
                    count: cases.len(),
                })
                .collect();
            return Ok((
                cells,
                valued.len(),
                valued.len() - (&valued - &listed).len(),
            ));
        }
        let valued = valued.intersection_len(matching);
        if valued == 0 {
            // No group of the first dimension: the second is never grouped (nor checked).
            return Ok((Vec::new(), 0, 0));
        }
        let second_postings = self.value_postings(second)?;
        // Every cell is |first ∩ second ∩ matching|: the dimension with fewer values is
        // intersected with the matching cases, and the other's postings are counted in
        // those groups without building the cells; only the listed cells are built.
        let outer_is_first = first_postings.len() <= second_postings.len();
        let (outer, inner) = if outer_is_first {
            (first_postings, &second_postings)
        } else {
            (&second_postings, first_postings)
        };
        let least = cut.min_count.max(1);
        // (first value, second value, count), by position in the postings.
        let mut counted: Vec<(usize, usize, u64)> = Vec::new();
        let mut groups: Vec<Option<RoaringBitmap>> = Vec::with_capacity(outer.len());
        for (o, (_, cases)) in outer.iter().enumerate() {
            let group = cases.as_ref() & matching;
            if !group.is_empty() {
                let counter = SubsetCounter::new(&group, self.next_doc());
                for (i, (_, other)) in inner.iter().enumerate() {
                    let n = counter.count(other);
                    if n >= least {
                        counted.push(if outer_is_first { (o, i, n) } else { (i, o, n) });
                    }
                }
            }
            groups.push((!group.is_empty()).then_some(group));
        }
        let mut first_keys: Vec<Option<GroupKey>> = vec![None; first_postings.len()];
        let mut second_keys: Vec<Option<GroupKey>> = vec![None; second_postings.len()];
        for &(f, s, _) in &counted {
            first_keys[f].get_or_insert_with(|| first_postings[f].0.key());
            second_keys[s].get_or_insert_with(|| second_postings[s].0.key());
        }
        let keys = |f: usize, s: usize| (&first_keys[f], &second_keys[s]);
        sort_top(&mut counted, cut.top, |a, b| {
            b.2.cmp(&a.2)
                .then_with(|| keys(a.0, a.1).cmp(&keys(b.0, b.1)))
        });
        // The listed cases: in each group, those with any of its listed values of the other
        // dimension (one intersection per group rather than one per cell).
        let mut listed_in: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &(f, s, _) in &counted {
            let (o, i) = if outer_is_first { (f, s) } else { (s, f) };
            listed_in.entry(o).or_default().push(i);
        }
        let listed: RoaringBitmap = listed_in
            .into_iter()
            .filter_map(|(o, values)| {
                let with: RoaringBitmap = values.iter().map(|i| inner[*i].1.as_ref()).union();
                Some(groups[o].as_ref()? & with)
            })
            .union();
        let cells = counted
            .into_iter()
            .filter_map(|(f, s, count)| {
                Some(Cell {
                    keys: vec![first_keys[f].clone()?, second_keys[s].clone()?],
                    count,
                })
            })
            .collect();
        // Every cell lies within a group of the first dimension: listed cases are valued.
        Ok((cells, valued, listed.len()))
    }

    /// Terms exactly `depth` `is_a` steps below Phenotypic abnormality.
    fn terms_at_depth(&self, depth: u32) -> Vec<TermId> {
        let hpo = self.ontology();
        let mut level = vec![PHENOTYPIC_ABNORMALITY];
        for _ in 0..depth {
            let mut next: Vec<TermId> = level
                .iter()
                .flat_map(|t| hpo.children(*t).iter().copied())
                .collect();
            next.sort_unstable();
            next.dedup();
            level = next;
        }
        level
    }
}

fn clamp(days: i64) -> i32 {
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

/// One value that co-occurs in a subset of cases.
#[derive(Debug, Clone, PartialEq)]
pub struct CoValue {
    /// The value.
    pub key: GroupKey,
    /// Cases of the subset with it.
    pub subset: u64,
    /// Active cases of the registry with it.
    pub registry: u64,
    /// One-sided Fisher exact test of enrichment in the subset.
    pub p_value: f64,
    /// Benjamini–Hochberg adjusted over every value tested.
    pub q_value: f64,
}

/// Values of a dimension among the cases matching a filter, against the whole registry.
#[derive(Debug, Clone, PartialEq)]
pub struct CoOccurrence {
    /// Most frequent in the subset first.
    pub values: Vec<CoValue>,
    /// Cases matching the filter.
    pub subset: u64,
    /// Active cases in the registry.
    pub registry: u64,
    /// How many values were tested (every value present in the subset).
    pub tested: usize,
}

impl Index {
    /// The values of `dimension` among the cases matching `query`, each with its frequency
    /// in that subset and in the registry and a test of enrichment.
    pub fn cooccurrence(
        &self,
        query: &Query,
        dimension: Dimension,
        cut: Cut,
    ) -> Result<CoOccurrence, AggregateError> {
        let subset = self.matching(query);
        let registry = self.active_count();
        // (value, cases of the subset with it, cases of the registry with it)
        let counted: Vec<(GroupKey, u64, u64)> = match dimension {
            // Read from the subset's own phenotypes: its size, not 15,000 postings.
            Dimension::Phenotype { rollup_depth: 0 } => self
                .present_counts(&subset)
                .into_iter()
                .map(|(term, hits, cases)| (GroupKey::Term(term), hits, cases.len()))
                .collect(),
            Dimension::Code(_) | Dimension::Excluded => {
                let counter = SubsetCounter::new(&subset, self.next_doc());
                self.value_postings(dimension)?
                    .iter()
                    .filter_map(|(value, cases)| {
                        let hits = counter.count(cases);
                        (hits > 0).then(|| (value.key(), hits, cases.len()))
                    })
                    .collect()
            }
            Dimension::Phenotype { .. } | Dimension::Sex | Dimension::Age { .. } => {
                return Err(AggregateError(
                    "co-occurrence is reported for phenotypes as recorded, excluded phenotypes \
                     and coded values (disease, gene, treatment, response, procedure, center, \
                     publication)"
                        .to_owned(),
                ));
            }
        };
        let test = Enrichment::new(subset.len(), registry);
        let mut values: Vec<CoValue> = counted
            .into_iter()
            .map(|(key, hits, with_value)| CoValue {
                key,
                subset: hits,
                registry: with_value,
                p_value: test.p_value(hits, with_value),
                q_value: 1.0,
            })
            .collect();
        let p: Vec<f64> = values.iter().map(|v| v.p_value).collect();
        for (value, q) in values.iter_mut().zip(benjamini_hochberg(&p)) {
            value.q_value = q;
        }
        let tested = values.len();
        values.retain(|v| v.subset >= cut.min_count);
        sort_top(&mut values, cut.top, |a, b| {
            b.subset
                .cmp(&a.subset)
                .then(a.p_value.total_cmp(&b.p_value))
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(CoOccurrence {
            values,
            subset: subset.len(),
            registry,
            tested,
        })
    }
}

/// Counts how many cases of a posting fall in a subset, for hundreds or thousands of postings
/// in a row (facets, pivots; co-occurrence of coded values and excluded phenotypes; observed
/// phenotypes are counted from each case's own terms instead, which costs the subset's size,
/// not the postings').
///
/// `RoaringBitmap::intersection_len` merges sorted arrays when both sides are sparse, which
/// costs the subset's size per posting: with a subset of a few thousand cases per 65,536
/// documents and 15,000 phenotype postings that was 0.4 s over 1M cases, and a disease facet
/// of 2,850 cases among 10,000 took 5 ms. Such a subset is turned into a plain bitset once,
/// and a posting is then counted by testing its own cases, which costs the posting's size.
/// Except a posting both larger than the subset and dense enough for bitmap containers (an
/// organ system's closure holds most cases): `intersection_len` tests the subset's cases
/// against those containers, which costs the subset's size, not the posting's.
struct SubsetCounter<'a> {
    subset: &'a RoaringBitmap,
    bits: Option<Vec<u64>>,
    /// Postings with fewer cases are held as arrays (about [`DENSE_SUBSET`] per container).
    sparse_below: u64,
}

/// Above this many cases per 65,536 documents roaring keeps a bitmap container, which
/// `intersection_len` already tests element by element; below, it keeps a sorted array.
const DENSE_SUBSET: u64 = 4_096;

/// Up to this many cases, merging the subset's array with each posting costs less than
/// setting up a bitset over every document.
const TINY_SUBSET: u64 = 64;

impl<'a> SubsetCounter<'a> {
    fn new(subset: &'a RoaringBitmap, documents: u64) -> Self {
        let containers = documents.div_ceil(1 << 16).max(1);
        let arrays = subset.len() < DENSE_SUBSET * containers;
        let bits = (subset.len() > TINY_SUBSET && arrays).then(|| {
            let mut bits = vec![0u64; documents.div_ceil(64) as usize + 1];
            for doc in subset {
                bits[(doc / 64) as usize] |= 1 << (doc % 64);
            }
            bits
        });
        Self {
            subset,
            bits,
            sparse_below: DENSE_SUBSET * containers,
        }
    }

    fn count(&self, cases: &RoaringBitmap) -> u64 {
        match &self.bits {
            Some(bits) if cases.len() <= self.subset.len() || cases.len() < self.sparse_below => {
                cases
                    .iter()
                    .filter(|doc| {
                        bits.get((doc / 64) as usize)
                            .is_some_and(|word| word & (1 << (doc % 64)) != 0)
                    })
                    .count() as u64
            }
            _ => self.subset.intersection_len(cases),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, OnceLock};

    use proptest::prelude::*;

    use crate::case::{AgeSpan, CaseFacts, Coded};
    use crate::ids::{CaseId, CenterId, ExternalId};
    use crate::index::{Entry, Expansion};
    use crate::ontology::Ontology;

    /// The aggregation as it was first written, every group built from query bitmaps: the
    /// reference the counting paths must equal to the last bit.
    mod reference {
        use super::*;

        fn groups(
            index: &Index,
            dimension: Dimension,
            within: &RoaringBitmap,
        ) -> Result<Vec<(GroupKey, RoaringBitmap)>, AggregateError> {
            let keep = |key: GroupKey, bitmap: &RoaringBitmap| {
                let cases = bitmap & within;
                (!cases.is_empty()).then_some((key, cases))
            };
            Ok(match dimension {
                Dimension::Code(kind) => index
                    .code_postings(kind)
                    .filter_map(|(id, b)| keep(GroupKey::Code(id.to_owned()), b))
                    .collect(),
                Dimension::Phenotype { rollup_depth: 0 } => index
                    .present_postings()
                    .filter_map(|(t, b)| keep(GroupKey::Term(t), b))
                    .collect(),
                Dimension::Phenotype { rollup_depth } => index
                    .terms_at_depth(rollup_depth)
                    .into_iter()
                    .filter_map(|t| {
                        let bitmap = index.matching(&Query::Phenotype {
                            term: t,
                            exact: false,
                        });
                        keep(GroupKey::Term(t), &bitmap)
                    })
                    .collect(),
                Dimension::Excluded => index
                    .excluded_postings()
                    .filter_map(|(t, b)| keep(GroupKey::Term(t), b))
                    .collect(),
                Dimension::Sex => (0..4)
                    .filter_map(|s| keep(GroupKey::Sex(s), &index.matching(&Query::Sex(s))))
                    .collect(),
                Dimension::Age { field, bucket_days } => {
                    age_groups(index, field, bucket_days, within)?
                }
            })
        }

        fn age_groups(
            index: &Index,
            field: AgeField,
            bucket_days: u32,
            within: &RoaringBitmap,
        ) -> Result<Vec<(GroupKey, RoaringBitmap)>, AggregateError> {
            let width = i64::from(bucket_days);
            if width == 0 {
                return Err(AggregateError("zero".to_owned()));
            }
            let age = |from, until| Query::Age { field, from, until };
            let valued = index.matching(&age(None, None)) & within;
            let Some((low, high)) = index.age_extent(field) else {
                return Ok(Vec::new());
            };
            let first = i64::from(low).div_euclid(width) * width;
            let buckets = (i64::from(high) - first) / width + 1;
            if buckets > MAX_AGE_BUCKETS as i64 {
                return Err(AggregateError("too many".to_owned()));
            }
            let mut groups = Vec::new();
            let mut placed = RoaringBitmap::new();
            for i in 0..buckets {
                let from = clamp(first + i * width);
                let until = clamp(first + (i + 1) * width);
                let cases = index.matching(&age(Some(from), Some(until))) & within;
                if !cases.is_empty() {
                    placed |= &cases;
                    groups.push((GroupKey::Bucket { from, until }, cases));
                }
            }
            let spread = valued - placed;
            if !spread.is_empty() {
                groups.push((GroupKey::SeveralBuckets, spread));
            }
            Ok(groups)
        }

        pub fn aggregate(
            index: &Index,
            query: &Query,
            dimensions: &[Dimension],
            cut: Cut,
        ) -> Result<Aggregate, AggregateError> {
            let matching = index.matching(query);
            let (first, second) = match dimensions {
                [first] => (*first, None),
                [first, second] => (*first, Some(*second)),
                _ => return Err(AggregateError("dimensions".to_owned())),
            };
            let first_groups = groups(index, first, &matching)?;
            let valued: RoaringBitmap = first_groups.iter().map(|(_, b)| b).union();
            let mut cells: Vec<(Vec<GroupKey>, RoaringBitmap)> = match second {
                None => first_groups
                    .into_iter()
                    .map(|(key, cases)| (vec![key], cases))
                    .collect(),
                Some(second) => pivot(index, first, second, first_groups, &matching)?,
            };
            cells.retain(|(_, cases)| cases.len() >= cut.min_count.max(1));
            cells.sort_by(|(ka, a), (kb, b)| b.len().cmp(&a.len()).then_with(|| ka.cmp(kb)));
            cells.truncate(cut.top);
            let listed: RoaringBitmap = cells.iter().map(|(_, b)| b).union();
            Ok(Aggregate {
                total: matching.len(),
                other: (&valued - &listed).len(),
                none: (&matching - &valued).len(),
                cells: cells
                    .into_iter()
                    .map(|(keys, cases)| Cell {
                        keys,
                        count: cases.len(),
                    })
                    .collect(),
            })
        }

        fn pivot(
            index: &Index,
            first: Dimension,
            second: Dimension,
            first_groups: Vec<(GroupKey, RoaringBitmap)>,
            matching: &RoaringBitmap,
        ) -> Result<Vec<(Vec<GroupKey>, RoaringBitmap)>, AggregateError> {
            use CodeKind::{Response, Treatment};
            let paired = match (first, second) {
                (Dimension::Code(Treatment), Dimension::Code(Response)) => Some(false),
                (Dimension::Code(Response), Dimension::Code(Treatment)) => Some(true),
                _ => None,
            };
            if let Some(reversed) = paired {
                let pairs = groups(
                    index,
                    Dimension::Code(CodeKind::TreatmentResponse),
                    matching,
                )?;
                return Ok(pairs
                    .into_iter()
                    .filter_map(|(key, cases)| {
                        let GroupKey::Code(key) = key else {
                            return None;
                        };
                        let (agent, response) = key.split_once('\t')?;
                        let (a, b) = (
                            GroupKey::Code(agent.to_owned()),
                            GroupKey::Code(response.to_owned()),
                        );
                        Some((if reversed { vec![b, a] } else { vec![a, b] }, cases))
                    })
                    .collect());
            }
            let mut cells = Vec::new();
            for (key, cases) in first_groups {
                for (inner, both) in groups(index, second, &cases)? {
                    cells.push((vec![key.clone(), inner], both));
                }
            }
            Ok(cells)
        }

        pub fn cooccurrence(
            index: &Index,
            query: &Query,
            dimension: Dimension,
            cut: Cut,
        ) -> Result<CoOccurrence, AggregateError> {
            let subset = index.matching(query);
            let registry = index.active_count();
            let postings: Vec<(GroupKey, &RoaringBitmap)> = match dimension {
                Dimension::Code(kind) => index
                    .code_postings(kind)
                    .map(|(id, b)| (GroupKey::Code(id.to_owned()), b))
                    .collect(),
                Dimension::Phenotype { rollup_depth: 0 } => index
                    .present_postings()
                    .map(|(t, b)| (GroupKey::Term(t), b))
                    .collect(),
                Dimension::Excluded => index
                    .excluded_postings()
                    .map(|(t, b)| (GroupKey::Term(t), b))
                    .collect(),
                _ => return Err(AggregateError("dimension".to_owned())),
            };
            let mut values: Vec<CoValue> = postings
                .into_iter()
                .filter_map(|(key, cases)| {
                    let hits = subset.intersection_len(cases);
                    (hits > 0).then(|| CoValue {
                        key,
                        subset: hits,
                        registry: cases.len(),
                        p_value: crate::stats::fisher_greater(
                            hits,
                            subset.len(),
                            cases.len(),
                            registry,
                        ),
                        q_value: 1.0,
                    })
                })
                .collect();
            let p: Vec<f64> = values.iter().map(|v| v.p_value).collect();
            for (value, q) in values.iter_mut().zip(benjamini_hochberg(&p)) {
                value.q_value = q;
            }
            let tested = values.len();
            values.retain(|v| v.subset >= cut.min_count);
            values.sort_by(|a, b| {
                b.subset
                    .cmp(&a.subset)
                    .then(a.p_value.total_cmp(&b.p_value))
                    .then_with(|| a.key.cmp(&b.key))
            });
            values.truncate(cut.top);
            Ok(CoOccurrence {
                values,
                subset: subset.len(),
                registry,
                tested,
            })
        }
    }

    fn hpo() -> Arc<Ontology> {
        static HPO: OnceLock<Arc<Ontology>> = OnceLock::new();
        HPO.get_or_init(|| Arc::new(Ontology::embedded().unwrap()))
            .clone()
    }

    /// Terms along a few lineages, so that roll-ups one and two levels down both bite.
    const TERMS: &[u32] = &[
        118, 152, 951, 11_121, 25_520, 1250, 7359, 2069, 1263, 4322, 2650, 707,
    ];
    const DISEASES: &[&str] = &["OMIM:1", "OMIM:2", "ORPHA:3", "MONDO:4"];
    const AGENTS: &[&str] = &["CHEBI:1", "CHEBI:2", "NCIT:3"];
    const RESPONSES: &[&str] = &["NCIT:R1", "NCIT:R2"];

    fn coded(ids: &'static [&'static str]) -> impl Strategy<Value = Vec<Coded>> {
        proptest::collection::btree_set(proptest::sample::select(ids), 0..3).prop_map(|set| {
            set.into_iter()
                .map(|id| Coded {
                    id: id.to_owned(),
                    label: format!("label of {id}"),
                })
                .collect()
        })
    }

    /// Ages on and beside bucket boundaries as well as anywhere, some open-ended and some
    /// (from bad records) ending before they start.
    fn span() -> impl Strategy<Value = Option<AgeSpan>> {
        let days = || {
            prop_oneof![
                proptest::sample::select(vec![
                    -366, -365, -30, -1, 0, 1, 29, 30, 31, 364, 365, 366, 1_825, 1_826, 3_652,
                ]),
                -400i32..9_000,
            ]
        };
        let width = prop_oneof![
            proptest::sample::select(vec![-30, -1, 0, 1, 29, 30, 365, 1_826]),
            -100i32..4_000,
        ];
        proptest::option::of(
            (days(), width, 0u8..8).prop_map(|(from, width, kind)| AgeSpan {
                from,
                to: if kind == 0 { i32::MAX } else { from + width },
            }),
        )
    }

    fn facts() -> impl Strategy<Value = CaseFacts> {
        let terms = || {
            proptest::collection::btree_set(proptest::sample::select(TERMS), 0..5)
                .prop_map(|s| s.into_iter().map(TermId).collect::<Vec<_>>())
        };
        let pairs = proptest::collection::btree_set(
            (
                proptest::sample::select(AGENTS),
                proptest::sample::select(RESPONSES),
            ),
            0..3,
        );
        (
            (terms(), terms(), coded(DISEASES), coded(AGENTS)),
            (pairs, 0i32..5, span(), span()),
        )
            .prop_map(
                |((present, excluded, diseases, treatments), (pairs, sex, onset, last))| {
                    CaseFacts {
                        present,
                        excluded,
                        diseases,
                        treatments,
                        responses: pairs
                            .iter()
                            .map(|(_, r)| Coded {
                                id: (*r).to_owned(),
                                label: String::new(),
                            })
                            .collect(),
                        treatment_responses: pairs
                            .iter()
                            .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
                            .collect(),
                        sex,
                        onset,
                        last_encounter: last,
                        ..CaseFacts::default()
                    }
                },
            )
    }

    fn dimension() -> impl Strategy<Value = Dimension> {
        use CodeKind::{Disease, Response, Treatment};
        prop_oneof![
            proptest::sample::select(vec![Disease, Treatment, Response]).prop_map(Dimension::Code),
            (0u32..3).prop_map(|rollup_depth| Dimension::Phenotype { rollup_depth }),
            Just(Dimension::Excluded),
            Just(Dimension::Sex),
            (
                proptest::sample::select(vec![AgeField::Onset, AgeField::LastEncounter]),
                proptest::sample::select(vec![0u32, 1, 30, 365, 1_826, 20_000]),
            )
                .prop_map(|(field, bucket_days)| Dimension::Age { field, bucket_days }),
        ]
    }

    fn queries() -> Vec<Query> {
        let phenotype = |t| Query::Phenotype {
            term: TermId(t),
            exact: false,
        };
        vec![
            Query::All(Vec::new()),
            phenotype(1250),
            phenotype(118),
            Query::Sex(1),
            Query::Not(Box::new(phenotype(951))),
            Query::Code {
                kind: CodeKind::Disease,
                id: "OMIM:1".to_owned(),
            },
            Query::Age {
                field: AgeField::Onset,
                from: None,
                until: Some(365),
            },
            Query::Any(Vec::new()),
        ]
    }

    fn entry<'a>(doc: u32, center: &'a CenterId, facts: &'a CaseFacts) -> Entry<'a> {
        let external = ExternalId::parse(&format!("case-{doc}")).unwrap();
        Entry {
            doc,
            id: CaseId::derive(center, &external),
            center,
            active: true,
            facts,
        }
    }

    /// Every answer of `index` equals the reference's, to the last bit.
    fn check(index: &Index, dimensions: &[(Dimension, Dimension)], cut: Cut) {
        for query in queries() {
            for &(first, second) in dimensions {
                for dims in [vec![first], vec![first, second]] {
                    let fast = index.aggregate(&query, &dims, cut);
                    let slow = reference::aggregate(index, &query, &dims, cut);
                    assert_eq!(fast.is_ok(), slow.is_ok(), "{query:?} {dims:?}");
                    if let (Ok(fast), Ok(slow)) = (fast, slow) {
                        assert_eq!(fast, slow, "{query:?} {dims:?} {cut:?}");
                    }
                }
            }
            let every = [
                Dimension::Phenotype { rollup_depth: 0 },
                Dimension::Excluded,
                Dimension::Code(CodeKind::Disease),
            ];
            for dimension in every.into_iter().chain(dimensions.iter().map(|d| d.0)) {
                let fast = index.cooccurrence(&query, dimension, cut);
                let slow = reference::cooccurrence(index, &query, dimension, cut);
                assert_eq!(fast.is_ok(), slow.is_ok(), "{query:?} {dimension:?}");
                if let (Ok(fast), Ok(slow)) = (fast, slow) {
                    let (fast, slow) = (format!("{fast:?}"), format!("{slow:?}"));
                    assert_eq!(fast, slow, "{query:?} {dimension:?}");
                }
            }
        }
    }

    proptest! {
        // The descendant union reads thousands of bitmaps per roll-up group: a few cases of
        // it are enough to cover its owned postings.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Facets, pivots and co-occurrence equal the reference through inserts, updates
        /// and retractions (the per-case phenotype lists kept in step once built) and
        /// after a snapshot round trip (the lists rebuilt from the postings).
        #[test]
        fn aggregates_equal_the_reference(
            cases in proptest::collection::vec(facts(), 1..40),
            changes in proptest::collection::vec((0usize..40, proptest::option::of(facts())), 0..12),
            dimensions in proptest::collection::vec((dimension(), dimension()), 1..4),
            top in prop_oneof![0usize..4, Just(usize::MAX)],
            min_count in 0u64..3,
            closure in proptest::bool::weighted(0.8),
        ) {
            let cut = Cut { top, min_count };
            let expansion = if closure {
                Expansion::AncestorClosure
            } else {
                Expansion::DescendantUnion
            };
            let center = CenterId::parse("center").unwrap();
            let mut index = Index::new(hpo(), expansion);
            let mut current: Vec<Option<CaseFacts>> = Vec::new();
            for (doc, facts) in (0u32..).zip(&cases) {
                index.insert(entry(doc, &center, facts));
                current.push(Some(facts.clone()));
            }
            check(&index, &dimensions, cut);
            for (which, new) in changes {
                let doc = which % current.len();
                let number = u32::try_from(doc).unwrap();
                if let Some(old) = current[doc].take() {
                    index.remove(entry(number, &center, &old));
                }
                if let Some(new) = &new {
                    index.insert(entry(number, &center, new));
                }
                current[doc] = new;
            }
            check(&index, &dimensions, cut);
            let mut snapshot = Vec::new();
            index.write_snapshot(&mut snapshot, 7).unwrap();
            let reread = Index::read_snapshot(hpo(), &mut snapshot.as_slice(), 7).unwrap();
            check(&reread, &dimensions, cut);
        }
    }

    #[test]
    fn dense_and_sparse_subset_counts_agree_with_intersection() {
        // 200,000 documents in 4 containers: a subset of 65 to 16,383 cases is counted as a
        // bitset; one dense enough for bitmap containers is not, nor a tiny one.
        let subset: RoaringBitmap = (0..200_000u32).filter(|d| d % 31 == 0).collect();
        let dense = SubsetCounter::new(&subset, 200_000);
        let crowded: RoaringBitmap = (0..200_000u32).filter(|d| d % 7 == 0).collect();
        assert!(SubsetCounter::new(&crowded, 200_000).bits.is_none());
        assert!(dense.bits.is_some());
        let small: RoaringBitmap = (0..64u32).map(|d| d * 13).collect();
        let sparse = SubsetCounter::new(&small, 200_000);
        assert!(sparse.bits.is_none());
        let few: RoaringBitmap = (0..1_000u32).map(|d| d * 13).collect();
        assert!(SubsetCounter::new(&few, 200_000).bits.is_some());
        // Postings smaller and larger than the subset (6,452 cases), sparse and dense.
        for posting in [
            (0..200_000u32)
                .filter(|d| d % 3 == 0)
                .collect::<RoaringBitmap>(),
            (0..50u32).map(|d| d * 4_001).collect(),
            RoaringBitmap::new(),
            (199_990..200_000u32).collect(),
            (0..200_000u32).filter(|d| d % 40 == 1).collect(),
            (0..200_000u32).filter(|d| d % 20 == 0).collect(),
        ] {
            assert_eq!(dense.count(&posting), subset.intersection_len(&posting));
            assert_eq!(sparse.count(&posting), small.intersection_len(&posting));
        }
    }
}
