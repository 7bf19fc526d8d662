//! Counts of matching cases grouped by one or two dimensions, from the search indexes.
//!
//! A case counts once per group it belongs to: a case with two diseases is in both disease
//! groups, so the cells of a dimension may sum to more than the total. Exact counts only:
//! disclosure control is applied by the server on the way out.

use roaring::{MultiOps as _, RoaringBitmap};

use crate::ids::TermId;
use crate::index::{AgeField, CodeKind, Index, Query};

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

impl Index {
    /// The non-empty groups of `dimension` among `within`, with their cases.
    pub fn groups(
        &self,
        dimension: Dimension,
        within: &RoaringBitmap,
    ) -> Result<Vec<(GroupKey, RoaringBitmap)>, AggregateError> {
        let keep = |key: GroupKey, bitmap: &RoaringBitmap| {
            let cases = bitmap & within;
            (!cases.is_empty()).then_some((key, cases))
        };
        Ok(match dimension {
            Dimension::Code(kind) => self
                .code_postings(kind)
                .filter_map(|(id, b)| keep(GroupKey::Code(id.to_owned()), b))
                .collect(),
            Dimension::Phenotype { rollup_depth: 0 } => self
                .present_postings()
                .filter_map(|(t, b)| keep(GroupKey::Term(t), b))
                .collect(),
            Dimension::Phenotype { rollup_depth } => self
                .terms_at_depth(rollup_depth)
                .into_iter()
                .filter_map(|t| {
                    let bitmap = self.matching(&Query::Phenotype {
                        term: t,
                        exact: false,
                    });
                    keep(GroupKey::Term(t), &bitmap)
                })
                .collect(),
            Dimension::Excluded => self
                .excluded_postings()
                .filter_map(|(t, b)| keep(GroupKey::Term(t), b))
                .collect(),
            Dimension::Sex => (0..4)
                .filter_map(|s| keep(GroupKey::Sex(s), &self.matching(&Query::Sex(s))))
                .collect(),
            Dimension::Age { field, bucket_days } => self.age_groups(field, bucket_days, within)?,
        })
    }

    fn age_groups(
        &self,
        field: AgeField,
        bucket_days: u32,
        within: &RoaringBitmap,
    ) -> Result<Vec<(GroupKey, RoaringBitmap)>, AggregateError> {
        let width = i64::from(bucket_days);
        if width == 0 {
            return Err(AggregateError(
                "bucket width must be at least 1 day".to_owned(),
            ));
        }
        let age = |from, until| Query::Age { field, from, until };
        let valued = self.matching(&age(None, None)) & within;
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
        let mut groups = Vec::new();
        let mut placed = RoaringBitmap::new();
        for i in 0..buckets {
            let from = clamp(first + i * width);
            let until = clamp(first + (i + 1) * width);
            let cases = self.matching(&age(Some(from), Some(until))) & within;
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
        let first_groups = self.groups(first, &matching)?;
        let valued: RoaringBitmap = first_groups.iter().map(|(_, b)| b).union();
        let mut cells: Vec<(Vec<GroupKey>, RoaringBitmap)> = match second {
            None => first_groups
                .into_iter()
                .map(|(key, cases)| (vec![key], cases))
                .collect(),
            Some(second) => self.pivot(first, second, first_groups, &matching)?,
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
        &self,
        first: Dimension,
        second: Dimension,
        first_groups: Vec<(GroupKey, RoaringBitmap)>,
        matching: &RoaringBitmap,
    ) -> Result<Vec<(Vec<GroupKey>, RoaringBitmap)>, AggregateError> {
        use CodeKind::{Response, Treatment};
        // A response belongs to its own treatment: pair them from the same medical action.
        let paired = match (first, second) {
            (Dimension::Code(Treatment), Dimension::Code(Response)) => Some(false),
            (Dimension::Code(Response), Dimension::Code(Treatment)) => Some(true),
            _ => None,
        };
        if let Some(reversed) = paired {
            let pairs = self.groups(Dimension::Code(CodeKind::TreatmentResponse), matching)?;
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
            for (inner, both) in self.groups(second, &cases)? {
                cells.push((vec![key.clone(), inner], both));
            }
        }
        Ok(cells)
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
    /// Every posting of a dimension co-occurrence can report, with its cases.
    fn postings_of(
        &self,
        dimension: Dimension,
    ) -> Result<Box<dyn Iterator<Item = (GroupKey, &RoaringBitmap)> + '_>, AggregateError> {
        Ok(match dimension {
            Dimension::Code(kind) => Box::new(
                self.code_postings(kind)
                    .map(|(id, b)| (GroupKey::Code(id.to_owned()), b)),
            ),
            Dimension::Phenotype { rollup_depth: 0 } => {
                Box::new(self.present_postings().map(|(t, b)| (GroupKey::Term(t), b)))
            }
            Dimension::Excluded => Box::new(
                self.excluded_postings()
                    .map(|(t, b)| (GroupKey::Term(t), b)),
            ),
            _ => {
                return Err(AggregateError(
                    "co-occurrence is reported for phenotypes as recorded, excluded phenotypes \
                     and coded values (disease, gene, treatment, response, procedure, center, \
                     publication)"
                        .to_owned(),
                ));
            }
        })
    }

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
        let counter = SubsetCounter::new(&subset, self.next_doc());
        let mut values: Vec<CoValue> = self
            .postings_of(dimension)?
            .filter_map(|(key, cases)| {
                let hits = counter.count(cases);
                (hits > 0).then(|| CoValue {
                    key,
                    subset: hits,
                    registry: cases.len(),
                    p_value: 1.0,
                    q_value: 1.0,
                })
            })
            .collect();
        for value in &mut values {
            value.p_value =
                crate::stats::fisher_greater(value.subset, subset.len(), value.registry, registry);
        }
        let p: Vec<f64> = values.iter().map(|v| v.p_value).collect();
        for (value, q) in values.iter_mut().zip(crate::stats::benjamini_hochberg(&p)) {
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

/// Counts how many cases of a posting fall in a subset, for thousands of postings in a row.
///
/// `RoaringBitmap::intersection_len` merges sorted arrays when both sides are sparse, which
/// costs the subset's size per posting: with a subset of a few thousand cases per 65,536
/// documents and 15,000 phenotype postings that was 0.4 s over 1M cases. Such a subset is
/// turned into a plain bitset once, and each posting is then counted by testing its own
/// cases, which costs the posting's size.
enum SubsetCounter<'a> {
    Sparse(&'a RoaringBitmap),
    Dense(Vec<u64>),
}

/// Above this many cases per 65,536 documents roaring keeps a bitmap container, which
/// `intersection_len` already tests element by element; below, it keeps a sorted array.
const DENSE_SUBSET: u64 = 4_096;

impl<'a> SubsetCounter<'a> {
    fn new(subset: &'a RoaringBitmap, documents: u64) -> Self {
        let containers = documents.div_ceil(1 << 16).max(1);
        let arrays = subset.len() < DENSE_SUBSET * containers;
        if subset.len() <= DENSE_SUBSET || !arrays {
            return Self::Sparse(subset);
        }
        let mut bits = vec![0u64; documents.div_ceil(64) as usize + 1];
        for doc in subset {
            bits[(doc / 64) as usize] |= 1 << (doc % 64);
        }
        Self::Dense(bits)
    }

    fn count(&self, cases: &RoaringBitmap) -> u64 {
        match self {
            Self::Sparse(subset) => subset.intersection_len(cases),
            Self::Dense(bits) => cases
                .iter()
                .filter(|doc| {
                    bits.get((doc / 64) as usize)
                        .is_some_and(|word| word & (1 << (doc % 64)) != 0)
                })
                .count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_subset_counts_agree_with_intersection() {
        // 200,000 documents in 4 containers: a subset of 4,097 to 16,383 cases is counted as
        // a bitset; one dense enough for bitmap containers is not.
        let subset: RoaringBitmap = (0..200_000u32).filter(|d| d % 31 == 0).collect();
        let dense = SubsetCounter::new(&subset, 200_000);
        let crowded: RoaringBitmap = (0..200_000u32).filter(|d| d % 7 == 0).collect();
        assert!(matches!(
            SubsetCounter::new(&crowded, 200_000),
            SubsetCounter::Sparse(_)
        ));
        assert!(matches!(dense, SubsetCounter::Dense(_)));
        let small: RoaringBitmap = (0..1_000u32).map(|d| d * 13).collect();
        let sparse = SubsetCounter::new(&small, 200_000);
        for posting in [
            (0..200_000u32)
                .filter(|d| d % 3 == 0)
                .collect::<RoaringBitmap>(),
            (0..50u32).map(|d| d * 4_001).collect(),
            RoaringBitmap::new(),
            (199_990..200_000u32).collect(),
        ] {
            assert_eq!(dense.count(&posting), subset.intersection_len(&posting));
            assert_eq!(sparse.count(&posting), small.intersection_len(&posting));
        }
    }
}
