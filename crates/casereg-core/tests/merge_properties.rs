//! Merging is associative and commutative, and merging what several centers answer equals
//! (or, with small counts withheld, bounds) the answer over the union of their cases.
//!
//! Each center is its own index over its share of random cases; the reference is one index
//! over all of them. Each center's answer is protected by core's `disclosure`, as the server
//! protects it, and read back as a coordinator reads it.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use casereg_core::aggregate::{Aggregate, CoOccurrence, Cut, Dimension, GroupKey};
use casereg_core::case::{AgeSpan, CaseFacts, Coded};
use casereg_core::disclosure::{self, Reported};
use casereg_core::ids::{CaseId, CenterId, TermId};
use casereg_core::index::{AgeField, CodeKind, Entry, Expansion, Index, Query};
use casereg_core::merge::{
    Bounds, CoPart, CoPartValue, Key, Part, PartCell, Precision, cut, enrich, merge_aggregates,
    merge_and_cut, merge_cooccurrence,
};
use casereg_core::ontology::Ontology;
use proptest::prelude::*;
use roaring::RoaringBitmap;

// ---- Random parts -------------------------------------------------------------------

const IDS: &[&str] = &["A", "B", "C", "D"];
const LABELS: &[&str] = &["", "x", "y"];

/// Small bounds, a fifth of them unbounded above.
fn bounds() -> impl Strategy<Value = Bounds> {
    (0u64..20, proptest::option::weighted(0.8, 0u64..10)).prop_map(|(low, width)| Bounds {
        low,
        high: width.map(|w| low + w),
    })
}

fn key(id: &str, label: &str) -> Key {
    Key {
        id: id.into(),
        label: label.into(),
    }
}

fn keys(arity: usize) -> impl Strategy<Value = Vec<(usize, &'static str)>> {
    proptest::collection::vec((0..IDS.len(), proptest::sample::select(LABELS)), arity)
}

/// A part with cells of `arity` keys, each cell listed once.
fn part(arity: usize) -> impl Strategy<Value = Part> {
    (
        proptest::collection::vec((keys(arity), bounds()), 0..6),
        (bounds(), bounds(), bounds()),
        prop_oneof![Just(0u64), 0u64..8],
    )
        .prop_map(|(cells, (total, other, none), listed_from)| {
            let mut seen = std::collections::BTreeSet::new();
            let cells = cells
                .into_iter()
                .filter(|(keys, _)| seen.insert(keys.iter().map(|k| k.0).collect::<Vec<_>>()))
                .map(|(keys, count)| PartCell {
                    keys: keys.iter().map(|&(i, label)| key(IDS[i], label)).collect(),
                    count,
                })
                .collect();
            Part {
                cells,
                total,
                other,
                none,
                listed_from,
            }
        })
}

fn co_part() -> impl Strategy<Value = CoPart> {
    (
        proptest::collection::btree_map(
            0..IDS.len(),
            (proptest::sample::select(LABELS), bounds(), bounds()),
            0..4,
        ),
        bounds(),
        bounds(),
        prop_oneof![Just(0u64), 0u64..8],
    )
        .prop_map(|(values, subset, registry, listed_from)| CoPart {
            values: values
                .into_iter()
                .map(|(i, (label, subset, registry))| CoPartValue {
                    key: key(IDS[i], label),
                    subset,
                    registry,
                })
                .collect(),
            subset,
            registry,
            listed_from,
        })
}

fn valid(b: &Bounds) -> bool {
    b.high.is_none_or(|h| b.low <= h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn aggregate_merge_is_associative_and_commutative(
        (a, b, c) in (1usize..=2).prop_flat_map(|arity| (part(arity), part(arity), part(arity))),
    ) {
        let ab = merge_aggregates(&[a.clone(), b.clone()]);
        prop_assert_eq!(&ab, &merge_aggregates(&[b.clone(), a.clone()]));
        let bc = merge_aggregates(&[b.clone(), c.clone()]);
        let left = merge_aggregates(&[ab, c.clone()]);
        let right = merge_aggregates(&[a.clone(), bc]);
        prop_assert_eq!(&left, &right);
        prop_assert_eq!(&left, &merge_aggregates(&[c, a, b]));
        let mut ids: Vec<Vec<&str>> = left
            .cells
            .iter()
            .map(|c| c.keys.iter().map(|k| k.id.as_str()).collect())
            .collect();
        let listed = ids.clone();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(listed, ids, "sorted by key ids, each once");
        prop_assert!(left.cells.iter().all(|c| valid(&c.count)));
        prop_assert!([left.total, left.other, left.none].iter().all(valid));
    }

    #[test]
    fn one_part_merges_as_it_would_with_an_empty_one(
        p in (1usize..=2).prop_flat_map(part),
    ) {
        // A part listing nothing, of no cases, adds nothing to a merge; with it the merge
        // takes the general path, alone it may take the single-part one.
        let empty = Part {
            cells: Vec::new(),
            total: Bounds::ZERO,
            other: Bounds::ZERO,
            none: Bounds::ZERO,
            listed_from: 0,
        };
        prop_assert_eq!(merge_aggregates([p.clone()]), merge_aggregates([p, empty]));
    }

    #[test]
    fn a_cut_lists_the_first_cells_of_the_merge_by_count(
        (p, top, min_count) in ((1usize..=2).prop_flat_map(part), 0usize..7, 0u64..12),
    ) {
        let merged = merge_aggregates([p]);
        let ids = |cell: &PartCell| cell.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
        let mut sorted = merged.cells.clone();
        sorted.sort_by(|a, b| b.count.low.cmp(&a.count.low).then_with(|| ids(a).cmp(&ids(b))));
        let expected: Vec<PartCell> = sorted
            .into_iter()
            .filter(|cell| cell.count.low >= min_count)
            .take(top)
            .collect();
        prop_assert_eq!(cut(merged, top, min_count).cells, expected);
    }

    #[test]
    fn merging_and_cutting_at_once_is_cutting_the_merge(
        (parts, top, min_count) in (
            (1usize..=2).prop_flat_map(|arity| proptest::collection::vec(part(arity), 1..4)),
            0usize..7,
            0u64..12,
        ),
    ) {
        let apart = cut(merge_aggregates(parts.clone()), top, min_count);
        prop_assert_eq!(merge_and_cut(parts, top, min_count), apart);
    }

    #[test]
    fn cooccurrence_merge_is_associative_and_commutative(
        a in co_part(), b in co_part(), c in co_part(),
    ) {
        let ab = merge_cooccurrence(&[a.clone(), b.clone()]);
        prop_assert_eq!(&ab, &merge_cooccurrence(&[b.clone(), a.clone()]));
        let bc = merge_cooccurrence(&[b.clone(), c.clone()]);
        let left = merge_cooccurrence(&[ab, c.clone()]);
        prop_assert_eq!(&left, &merge_cooccurrence(&[a.clone(), bc]));
        prop_assert_eq!(&left, &merge_cooccurrence(&[c, b, a]));
        prop_assert!(left.values.iter().all(|v| valid(&v.subset) && valid(&v.registry)));
    }

    #[test]
    fn reported_bounds_read_back_contain_them(b in bounds(), k in 0u64..8) {
        let (value, precision) = b.reported(k);
        let read = Bounds::from_reported(value, precision, k).unwrap();
        prop_assert!(read.low <= b.low);
        prop_assert!(read.high.is_none() || read.high >= b.high && b.high.is_some());
        if precision == Precision::Exact {
            prop_assert_eq!(b.high, Some(value));
        }
    }
}

// ---- Centers against the union --------------------------------------------------------

fn hpo() -> Arc<Ontology> {
    static HPO: OnceLock<Arc<Ontology>> = OnceLock::new();
    HPO.get_or_init(|| Arc::new(Ontology::embedded().unwrap()))
        .clone()
}

/// Terms along a few lineages, so that roll-ups group several of them.
const TERMS: &[u32] = &[
    951,    // Abnormality of the skin
    11_121, // Abnormal skin morphology
    25_520, // Calcinosis cutis
    1250,   // Seizure
    7359,   // Focal-onset seizure
    1263,   // Global developmental delay
    4322,   // Short stature
];
const DISEASES: &[&str] = &["OMIM:270150", "OMIM:154700", "MONDO:0007915"];
const GENES: &[&str] = &["HGNC:3603", "HGNC:1100"];
const AGENTS: &[&str] = &["CHEBI:8382", "NCIT:C1234"];
const RESPONSES: &[&str] = &["NCIT:C123", "NCIT:C456"];
const PUBLICATIONS: &[&str] = &["PMID:1", "PMID:2"];

fn terms() -> impl Strategy<Value = Vec<TermId>> {
    proptest::collection::btree_set(proptest::sample::select(TERMS), 0..4)
        .prop_map(|s| s.into_iter().map(TermId).collect())
}

fn codes(ids: &'static [&'static str]) -> impl Strategy<Value = Vec<Coded>> {
    proptest::collection::btree_set(proptest::sample::select(ids), 0..3).prop_map(|s| {
        s.into_iter()
            .map(|id| Coded {
                id: id.to_owned(),
                label: String::new(),
            })
            .collect()
    })
}

fn span() -> impl Strategy<Value = Option<AgeSpan>> {
    proptest::option::of((-300i32..20_000, 0i32..5_000, any::<bool>()).prop_map(
        |(from, width, open)| AgeSpan {
            from,
            to: if open { i32::MAX } else { from + width },
        },
    ))
}

fn facts() -> impl Strategy<Value = CaseFacts> {
    let treated = proptest::collection::btree_map(
        proptest::sample::select(AGENTS),
        proptest::option::of(proptest::sample::select(RESPONSES)),
        0..3,
    );
    (
        (terms(), terms(), codes(DISEASES), codes(GENES)),
        treated,
        codes(PUBLICATIONS),
        0i32..4,
        (span(), span()),
    )
        .prop_map(
            |((present, excluded, diseases, genes), treated, publications, sex, (onset, last))| {
                let pairs: Vec<(String, String)> = treated
                    .iter()
                    .filter_map(|(a, r)| Some(((*a).to_owned(), (*r)?.to_owned())))
                    .collect();
                let mut responses: Vec<&str> = treated.values().flatten().copied().collect();
                responses.sort_unstable();
                responses.dedup();
                let coded = |id: &str| Coded {
                    id: id.to_owned(),
                    label: String::new(),
                };
                CaseFacts {
                    present,
                    excluded,
                    diseases,
                    genes,
                    variant_classes: Vec::new(),
                    treatments: treated.keys().map(|a| coded(a)).collect(),
                    procedures: Vec::new(),
                    responses: responses.into_iter().map(coded).collect(),
                    treatment_responses: pairs,
                    publications: publications.into_iter().map(|p| p.id).collect(),
                    sex,
                    onset,
                    last_encounter: last,
                }
            },
        )
}

const DIMENSIONS: &[Dimension] = &[
    Dimension::Code(CodeKind::Disease),
    Dimension::Code(CodeKind::Gene),
    Dimension::Code(CodeKind::Treatment),
    Dimension::Code(CodeKind::Response),
    Dimension::Code(CodeKind::Publication),
    Dimension::Code(CodeKind::Center),
    Dimension::Phenotype { rollup_depth: 0 },
    Dimension::Phenotype { rollup_depth: 2 },
    Dimension::Excluded,
    Dimension::Sex,
    Dimension::Age {
        field: AgeField::Onset,
        bucket_days: 10_000_000,
    },
];

/// The dimensions co-occurrence reports on.
const CO_DIMENSIONS: &[Dimension] = &[
    Dimension::Code(CodeKind::Disease),
    Dimension::Code(CodeKind::Gene),
    Dimension::Code(CodeKind::Treatment),
    Dimension::Phenotype { rollup_depth: 0 },
    Dimension::Excluded,
];

fn dimensions() -> impl Strategy<Value = Vec<Dimension>> {
    proptest::collection::vec(proptest::sample::select(DIMENSIONS), 1..=2)
}

fn query() -> impl Strategy<Value = Query> {
    let leaf = prop_oneof![
        (0i32..4).prop_map(Query::Sex),
        proptest::sample::select(DISEASES).prop_map(|id| Query::Code {
            kind: CodeKind::Disease,
            id: id.to_owned(),
        }),
        proptest::sample::select(TERMS).prop_map(|t| Query::Phenotype {
            term: TermId(t),
            exact: false,
        }),
    ];
    prop_oneof![
        2 => Just(Query::All(Vec::new())),
        2 => leaf.clone(),
        1 => leaf.prop_map(|q| Query::Not(Box::new(q))),
    ]
}

/// Random cases, each with the center (of `centers`) that holds it.
fn registry() -> impl Strategy<Value = (usize, Vec<(CaseFacts, usize)>)> {
    (2usize..=4).prop_flat_map(|centers| {
        (
            Just(centers),
            proptest::collection::vec((facts(), 0..centers), 0..40),
        )
    })
}

fn center_id(center: usize) -> CenterId {
    CenterId::parse(&format!("center-{center}")).unwrap()
}

fn index<'a>(cases: impl Iterator<Item = &'a (CaseFacts, usize)>) -> Index {
    let mut index = Index::new(hpo(), Expansion::AncestorClosure);
    for (doc, (facts, center)) in cases.enumerate() {
        let doc = u32::try_from(doc).unwrap();
        index.insert(Entry {
            doc,
            id: CaseId::parse(&format!("{doc:016x}")).unwrap(),
            center: &center_id(*center),
            active: true,
            facts,
        });
    }
    index
}

/// The union index, then one index per center.
fn indexes(centers: usize, cases: &[(CaseFacts, usize)]) -> (Index, Vec<Index>) {
    let per_center = (0..centers)
        .map(|c| index(cases.iter().filter(|(_, center)| *center == c)))
        .collect();
    (index(cases.iter()), per_center)
}

const EVERYTHING: Cut = Cut {
    top: usize::MAX,
    min_count: 0,
};

fn key_id(key: &GroupKey) -> String {
    format!("{key:?}")
}

fn ids(keys: &[GroupKey]) -> Vec<String> {
    keys.iter().map(key_id).collect()
}

fn merged_ids(cell: &PartCell) -> Vec<String> {
    cell.keys.iter().map(|k| k.id.to_string()).collect()
}

/// One center's aggregate as it answers a caller at threshold `k`, every cell listed: the
/// server's own protection, read back as the coordinator reads it.
fn protected(aggregate: &Aggregate, k: u64) -> Part {
    let shown = disclosure::protect(aggregate, k);
    let read = |reported: Reported| reported.bounds(k).unwrap();
    Part {
        cells: aggregate
            .cells
            .iter()
            .zip(shown.cells)
            .map(|(c, reported)| PartCell {
                keys: c.keys.iter().map(|g| key(&key_id(g), "")).collect(),
                count: read(reported),
            })
            .collect(),
        total: read(shown.total),
        other: read(shown.other),
        none: read(shown.none),
        listed_from: 0,
    }
}

/// Merges what each center answers at its threshold.
fn merged_aggregate(
    centers: &[Index],
    thresholds: &[u64],
    query: &Query,
    dimensions: &[Dimension],
) -> Part {
    let parts: Vec<Part> = centers
        .iter()
        .zip(thresholds)
        .map(|(index, &k)| {
            let aggregate = index.aggregate(query, dimensions, EVERYTHING).unwrap();
            protected(&aggregate, k)
        })
        .collect();
    merge_aggregates(parts)
}

/// Checks the merge against the union's counts: inside the bounds, equal where exact.
fn check_aggregate(merged: &Part, union: &Aggregate, k_out: u64) -> Result<(), TestCaseError> {
    let truth: BTreeMap<Vec<String>, u64> = union
        .cells
        .iter()
        .map(|c| (ids(&c.keys), c.count))
        .collect();
    let found: Vec<Vec<String>> = merged.cells.iter().map(merged_ids).collect();
    prop_assert_eq!(found, truth.keys().cloned().collect::<Vec<_>>());
    let pairs = merged
        .cells
        .iter()
        .map(|c| (c.count, truth[&merged_ids(c)]))
        .chain([
            (merged.total, union.total),
            (merged.other, union.other),
            (merged.none, union.none),
        ]);
    for (bounds, value) in pairs {
        prop_assert!(
            bounds.contains(value),
            "{:?} does not hold {}",
            bounds,
            value
        );
        if let (shown, Precision::Exact) = bounds.reported(k_out) {
            prop_assert_eq!(shown, value);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_exact_centers_equals_aggregating_the_union(
        (centers, cases) in registry(),
        dimensions in dimensions(),
        query in query(),
    ) {
        let (union, per_center) = indexes(centers, &cases);
        let expected = union.aggregate(&query, &dimensions, EVERYTHING).unwrap();
        let merged = merged_aggregate(&per_center, &vec![0; centers], &query, &dimensions);
        let exact = |b: Bounds| b.exact_value();
        let found: BTreeMap<Vec<String>, Option<u64>> =
            merged.cells.iter().map(|c| (merged_ids(c), exact(c.count))).collect();
        let truth: BTreeMap<Vec<String>, Option<u64>> =
            expected.cells.iter().map(|c| (ids(&c.keys), Some(c.count))).collect();
        prop_assert_eq!(found, truth);
        prop_assert_eq!(exact(merged.total), Some(expected.total));
        prop_assert_eq!(exact(merged.other), Some(expected.other));
        prop_assert_eq!(exact(merged.none), Some(expected.none));
        check_aggregate(&merged, &expected, 0)?;
    }

    #[test]
    fn merging_protected_centers_bounds_the_union(
        (centers, cases) in registry(),
        thresholds in proptest::collection::vec(prop_oneof![Just(0u64), 1u64..7], 4),
        dimensions in dimensions(),
        query in query(),
        k_out in 0u64..7,
    ) {
        let (union, per_center) = indexes(centers, &cases);
        let expected = union.aggregate(&query, &dimensions, EVERYTHING).unwrap();
        let merged = merged_aggregate(&per_center, &thresholds[..centers], &query, &dimensions);
        check_aggregate(&merged, &expected, k_out)?;
    }

    /// After a cut, `other` holds the cases in no kept cell and every dropped cell has fewer
    /// cases than `listed_from` (one dimension, where the groups are easy to rebuild).
    #[test]
    fn a_cut_of_the_merge_bounds_what_it_leaves_out(
        (centers, cases) in registry(),
        thresholds in proptest::collection::vec(prop_oneof![Just(0u64), 1u64..7], 4),
        dimension in proptest::sample::select(DIMENSIONS),
        query in query(),
        top in 0usize..5,
        min_count in 0u64..5,
    ) {
        let (union, per_center) = indexes(centers, &cases);
        let merged = merged_aggregate(&per_center, &thresholds[..centers], &query, &[dimension]);
        let kept = cut(merged.clone(), top, min_count);
        prop_assert!(kept.cells.len() <= top);
        prop_assert!(kept.cells.iter().all(|c| c.count.low >= min_count));
        prop_assert!(kept.cells.windows(2).all(|w| w[0].count.low >= w[1].count.low));
        let groups = union.groups(dimension, &union.matching(&query)).unwrap();
        let mut valued = RoaringBitmap::new();
        let mut listed = RoaringBitmap::new();
        for (key, cases) in &groups {
            valued |= cases;
            let id = vec![key_id(key)];
            if kept.cells.iter().any(|c| merged_ids(c) == id) {
                listed |= cases;
            } else {
                prop_assert!(cases.len() < kept.listed_from, "{:?}: {}", key, cases.len());
            }
        }
        let other = (valued - listed).len();
        prop_assert!(kept.other.contains(other), "{:?} does not hold {}", kept.other, other);
    }
}

// ---- Co-occurrence --------------------------------------------------------------------

/// One center's co-occurrence as it answers a caller at threshold `k`: values in fewer than
/// k cases of the subset are not listed, and none at all when the subset itself is small.
fn co_protected(index: &Index, query: &Query, dimension: Dimension, k: u64) -> CoPart {
    let cut = Cut {
        top: usize::MAX,
        min_count: k,
    };
    let answer = index.cooccurrence(query, dimension, cut).unwrap();
    let small = |value| disclosure::count(value, k).bounds(k).unwrap();
    let values = if disclosure::withheld(answer.subset, k) {
        Vec::new()
    } else {
        answer
            .values
            .iter()
            .map(|v| CoPartValue {
                key: key(&key_id(&v.key), ""),
                subset: small(v.subset),
                registry: small(v.registry),
            })
            .collect()
    };
    CoPart {
        values,
        subset: small(answer.subset),
        registry: small(answer.registry),
        listed_from: k,
    }
}

fn check_cooccurrence(
    merged: &CoPart,
    union: &CoOccurrence,
    exact: bool,
) -> Result<(), TestCaseError> {
    prop_assert!(merged.subset.contains(union.subset));
    prop_assert!(merged.registry.contains(union.registry));
    let truth: BTreeMap<String, (u64, u64)> = union
        .values
        .iter()
        .map(|v| (key_id(&v.key), (v.subset, v.registry)))
        .collect();
    for value in &merged.values {
        let (subset, registry) = truth.get(value.key.id.as_str()).copied().unwrap_or((0, 0));
        prop_assert!(value.subset.contains(subset), "{:?} vs {}", value, subset);
        // A value absent from the union's subset may be anywhere in its registry.
        if truth.contains_key(value.key.id.as_str()) {
            prop_assert!(
                value.registry.contains(registry),
                "{:?} vs {}",
                value,
                registry
            );
        }
        if exact {
            prop_assert_eq!(value.subset.exact_value(), Some(subset));
        }
    }
    let listed: Vec<&str> = merged.values.iter().map(|v| v.key.id.as_str()).collect();
    for (id, (subset, _)) in &truth {
        if !listed.contains(&id.as_str()) {
            prop_assert!(
                *subset < merged.listed_from,
                "{} with {} not listed",
                id,
                subset
            );
        }
    }
    // Where the merge can test, it finds the union's p-value; its q-value is no smaller.
    let enriched = enrich(merged, usize::MAX, 0);
    let union_tests: BTreeMap<String, (f64, f64)> = union
        .values
        .iter()
        .map(|v| (key_id(&v.key), (v.p_value, v.q_value)))
        .collect();
    let all_known = enriched.values.iter().all(|v| v.p_value.is_some());
    for value in &enriched.values {
        let Some((p, q)) = union_tests.get(value.key.id.as_str()).copied() else {
            continue;
        };
        if let Some(merged_p) = value.p_value {
            prop_assert!((merged_p - p).abs() <= 1e-12, "{:?}: {}", value, p);
        }
        if let Some(merged_q) = value.q_value {
            prop_assert!(merged_q >= q - 1e-12, "{:?}: {}", value, q);
            if all_known {
                prop_assert!((merged_q - q).abs() <= 1e-12, "{:?}: {}", value, q);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_exact_centers_equals_the_union_cooccurrence(
        (centers, cases) in registry(),
        dimension in proptest::sample::select(CO_DIMENSIONS),
        query in query(),
    ) {
        let (union, per_center) = indexes(centers, &cases);
        let expected = union.cooccurrence(&query, dimension, EVERYTHING).unwrap();
        let parts: Vec<CoPart> = per_center
            .iter()
            .map(|index| co_protected(index, &query, dimension, 0))
            .collect();
        let merged = merge_cooccurrence(&parts);
        prop_assert_eq!(merged.values.len(), expected.values.len());
        prop_assert_eq!(merged.subset.exact_value(), Some(expected.subset));
        prop_assert_eq!(merged.registry.exact_value(), Some(expected.registry));
        prop_assert_eq!(merged.listed_from, 0);
        prop_assert_eq!(enrich(&merged, usize::MAX, 0).tested, expected.tested);
        check_cooccurrence(&merged, &expected, true)?;
    }

    #[test]
    fn merging_protected_centers_bounds_the_union_cooccurrence(
        (centers, cases) in registry(),
        thresholds in proptest::collection::vec(prop_oneof![Just(0u64), 1u64..7], 4),
        dimension in proptest::sample::select(CO_DIMENSIONS),
        query in query(),
    ) {
        let (union, per_center) = indexes(centers, &cases);
        let expected = union.cooccurrence(&query, dimension, EVERYTHING).unwrap();
        let parts: Vec<CoPart> = per_center
            .iter()
            .zip(&thresholds)
            .map(|(index, &k)| co_protected(index, &query, dimension, k))
            .collect();
        check_cooccurrence(&merge_cooccurrence(&parts), &expected, false)?;
    }
}
