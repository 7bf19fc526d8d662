//! Search through the indexes equals a scan of the stored cases, for random cases and random
//! filters, through creates, updates, retractions and reopening the store.
//!
//! The reference reads each case's facts directly with the ontology and shares no code with
//! the index.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use casereg_core::audit::Actor;
use casereg_core::case::{
    AgeSpan, CaseDigest, CaseDraft, CaseFacts, CaseRecord, Coded, UnixMicros,
};
use casereg_core::ids::{CaseId, CenterId, ExternalId, TermId};
use casereg_core::index::{AgeField, CodeKind, Query};
use casereg_core::ontology::Ontology;
use casereg_core::store::Store;
use proptest::prelude::*;

fn hpo() -> Arc<Ontology> {
    static HPO: OnceLock<Arc<Ontology>> = OnceLock::new();
    HPO.get_or_init(|| Arc::new(Ontology::embedded().unwrap()))
        .clone()
}

/// Terms along a few lineages, so that ancestor and descendant queries both bite:
/// abnormality of the skin → calcinosis cutis → …; seizure → focal seizure …; plus roots.
const TERMS: &[u32] = &[
    118,    // Phenotypic abnormality
    152,    // Abnormality of head or neck
    951,    // Abnormality of the skin
    11_121, // Abnormal skin morphology
    25_520, // Calcinosis cutis
    1250,   // Seizure
    7359,   // Focal-onset seizure
    2069,   // Bilateral tonic-clonic seizure
    1263,   // Global developmental delay
    4322,   // Short stature
    2650,   // Scoliosis
];

const DISEASES: &[(&str, &str)] = &[
    ("OMIM:270150", "Sjogren syndrome"),
    ("ORPHA:289390", "Sjögren syndrome"),
    ("OMIM:154700", "Marfan syndrome"),
    ("MONDO:0007915", "lupus"),
];
const GENES: &[(&str, &str)] = &[("HGNC:3603", "FBN1"), ("HGNC:1100", "BRCA1")];
const AGENTS: &[&str] = &["DrugCentral:2275", "CHEBI:8382", "NCIT:C1234"];
const PUBLICATIONS: &[&str] = &["PMID:1", "PMID:2", "DOI:10.1/x"];
const CENTERS: &[&str] = &["center-a", "center-b"];

fn term() -> impl Strategy<Value = TermId> {
    proptest::sample::select(TERMS).prop_map(TermId)
}

fn coded(pairs: &'static [(&'static str, &'static str)]) -> impl Strategy<Value = Vec<Coded>> {
    proptest::collection::btree_set(0..pairs.len(), 0..3).prop_map(move |set| {
        set.into_iter()
            .map(|i| Coded {
                id: pairs[i].0.to_owned(),
                label: pairs[i].1.to_owned(),
            })
            .collect()
    })
}

fn strings(values: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set(proptest::sample::select(values), 0..3)
        .prop_map(|set| set.into_iter().map(str::to_owned).collect())
}

fn span() -> impl Strategy<Value = Option<AgeSpan>> {
    proptest::option::of((-300i32..20_000, 0i32..5_000, any::<bool>()).prop_map(
        |(from, width, open)| AgeSpan {
            from,
            to: if open { i32::MAX } else { from + width },
        },
    ))
}

fn distinct_terms() -> impl Strategy<Value = Vec<TermId>> {
    proptest::collection::btree_set(term(), 0..4).prop_map(|s| s.into_iter().collect())
}

fn facts() -> impl Strategy<Value = CaseFacts> {
    (
        distinct_terms(),
        distinct_terms(),
        coded(DISEASES),
        coded(GENES),
        strings(AGENTS),
        strings(PUBLICATIONS),
        0i32..4,
        span(),
        span(),
    )
        .prop_map(
            |(present, excluded, diseases, genes, agents, publications, sex, onset, last)| {
                CaseFacts {
                    present,
                    excluded,
                    diseases,
                    genes,
                    variant_classes: Vec::new(),
                    treatments: agents
                        .into_iter()
                        .map(|id| Coded {
                            id,
                            label: String::new(),
                        })
                        .collect(),
                    procedures: Vec::new(),
                    responses: Vec::new(),
                    treatment_responses: Vec::new(),
                    publications,
                    sex,
                    onset,
                    last_encounter: last,
                }
            },
        )
}

fn leaf() -> impl Strategy<Value = Query> {
    let bound = proptest::option::of(-300i32..20_000);
    prop_oneof![
        (term(), any::<bool>()).prop_map(|(term, exact)| Query::Phenotype { term, exact }),
        (term(), any::<bool>()).prop_map(|(term, exact)| Query::Excluded { term, exact }),
        proptest::sample::select(DISEASES).prop_map(|(id, _)| Query::Code {
            kind: CodeKind::Disease,
            id: id.to_owned(),
        }),
        proptest::sample::select(vec!["HGNC:3603", "fbn1", "BRCA1", "HGNC:9"]).prop_map(|id| {
            Query::Code {
                kind: CodeKind::Gene,
                id: id.to_owned(),
            }
        }),
        proptest::sample::select(AGENTS).prop_map(|id| Query::Code {
            kind: CodeKind::Treatment,
            id: id.to_owned(),
        }),
        proptest::sample::select(PUBLICATIONS).prop_map(|id| Query::Code {
            kind: CodeKind::Publication,
            id: id.to_owned(),
        }),
        proptest::sample::select(CENTERS).prop_map(|id| Query::Code {
            kind: CodeKind::Center,
            id: id.to_owned(),
        }),
        (0i32..4).prop_map(Query::Sex),
        (any::<bool>(), bound.clone(), bound).prop_map(|(onset, from, until)| Query::Age {
            field: if onset {
                AgeField::Onset
            } else {
                AgeField::LastEncounter
            },
            from,
            until,
        }),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Query::All),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Query::Any),
            inner.prop_map(|q| Query::Not(Box::new(q))),
        ]
    })
}

/// Whether a case matches, read from its facts alone.
fn reference(query: &Query, case: &CaseRecord, hpo: &Ontology) -> bool {
    let facts = &case.facts;
    let within = |span: Option<AgeSpan>, from: Option<i32>, until: Option<i32>| {
        span.is_some_and(|s| from.is_none_or(|f| s.from >= f) && until.is_none_or(|u| s.to < u))
    };
    match query {
        Query::All(qs) => qs.iter().all(|q| reference(q, case, hpo)),
        Query::Any(qs) => qs.iter().any(|q| reference(q, case, hpo)),
        Query::Not(q) => !reference(q, case, hpo),
        Query::Phenotype { term, exact } => facts
            .present
            .iter()
            .any(|p| p == term || (!*exact && hpo.ancestors(*p).contains(term))),
        Query::Excluded { term, exact } => facts
            .excluded
            .iter()
            .any(|e| e == term || (!*exact && hpo.ancestors(*term).contains(e))),
        Query::Code { kind, id } => match kind {
            CodeKind::Disease => facts.diseases.iter().any(|d| &d.id == id),
            CodeKind::Gene => facts
                .genes
                .iter()
                .any(|g| &g.id == id || g.label.eq_ignore_ascii_case(id)),
            CodeKind::Treatment => facts.treatments.iter().any(|t| &t.id == id),
            CodeKind::Procedure => facts.procedures.iter().any(|t| &t.id == id),
            CodeKind::Publication => facts.publications.contains(id),
            CodeKind::VariantClass => facts.variant_classes.contains(id),
            CodeKind::Response => facts.responses.iter().any(|r| &r.id == id),
            CodeKind::TreatmentResponse => facts
                .treatment_responses
                .iter()
                .any(|(a, r)| &casereg_core::index::pair_key(a, r) == id),
            CodeKind::Center => case.center.as_str() == id,
        },
        Query::Sex(sex) => facts.sex == *sex,
        Query::Age { field, from, until } => match field {
            AgeField::Onset => within(facts.onset, *from, *until),
            AgeField::LastEncounter => within(facts.last_encounter, *from, *until),
        },
    }
}

fn draft(n: usize, facts: CaseFacts) -> CaseDraft {
    CaseDraft {
        external_id: ExternalId::parse(&format!("case-{n}")).unwrap(),
        // The record changes with the facts, so an update is a real change.
        record: format!("{facts:?}").into_bytes(),
        digest: CaseDigest {
            sex: facts.sex,
            ..CaseDigest::default()
        },
        facts,
    }
}

/// Checks every query two ways: the index's answer and a scan with the reference.
fn check(store: &Store, queries: &[Query]) -> Result<(), TestCaseError> {
    let hpo = hpo();
    let cases: Vec<CaseRecord> = store.scan(false).map(Result::unwrap).collect();
    for query in queries {
        let expected: BTreeSet<CaseId> = cases
            .iter()
            .filter(|c| reference(query, c, &hpo))
            .map(|c| c.id)
            .collect();
        let mut found = BTreeSet::new();
        let mut token = String::new();
        loop {
            let page = store.search(query, 7, &token, false).unwrap();
            prop_assert_eq!(page.total, expected.len() as u64);
            found.extend(page.cases.iter().map(|c| c.id));
            match page.next_page_token {
                Some(next) => token = next,
                None => break,
            }
        }
        prop_assert_eq!(&found, &expected, "query {:?}", query);
        prop_assert_eq!(
            store.count(query),
            expected.len() as u64,
            "count {:?}",
            query
        );
    }
    Ok(())
}

/// A change made to the registry between checks.
#[derive(Debug, Clone)]
enum Change {
    Update(usize, Box<CaseFacts>),
    Retract(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (any::<usize>(), facts()).prop_map(|(i, f)| Change::Update(i, Box::new(f))),
        1 => any::<usize>().prop_map(Change::Retract),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn index_answers_equal_a_scan(
        initial in proptest::collection::vec((facts(), any::<bool>()), 1..30),
        changes in proptest::collection::vec(change(), 0..15),
        queries in proptest::collection::vec(query(), 1..12),
        snapshot in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        let admin = Actor {
            principal: "admin".to_owned(),
            center: CenterId::parse(CENTERS[0]).unwrap(),
            any_center: true,
        };
        {
            let store = Store::open(dir.path(), hpo()).unwrap();
            for (n, (facts, second_center)) in initial.into_iter().enumerate() {
                let center = CenterId::parse(CENTERS[usize::from(second_center)]).unwrap();
                let curator = Actor { principal: "curator".to_owned(), center, any_center: false };
                let created = store.create(&curator, draft(n, facts), UnixMicros(1)).unwrap();
                ids.push((n, created.case.id));
            }
            check(&store, &queries)?;
            for change in changes {
                match change {
                    Change::Update(i, facts) => {
                        let (n, id) = ids[i % ids.len()];
                        if let Ok(current) = store.get(&id, None, false) {
                            store.update(&admin, &id, current.version, draft(n, *facts), UnixMicros(2)).unwrap();
                        }
                    }
                    Change::Retract(i) => {
                        store.retract(&admin, &ids[i % ids.len()].1, None, "", UnixMicros(3)).unwrap();
                    }
                }
            }
            check(&store, &queries)?;
            if snapshot {
                store.save_index_snapshot().unwrap();
            }
        }
        // Reopened: the indexes are loaded from the snapshot, or rebuilt from what is
        // stored.
        let store = Store::open(dir.path(), hpo()).unwrap();
        prop_assert_eq!(store.index_from_snapshot(), snapshot);
        check(&store, &queries)?;
    }
}
