//! Search end to end: text queries parsed by the client, answered by the server's indexes,
//! compared with an independent scan of the records.
//!
//! The reference evaluates the wire filter on each decoded phenopacket with the ontology's
//! ancestor lists; it shares nothing with the index or the server's filter reading. It
//! borrows one piece of the server, the reading of a single `TimeElement` as days
//! (`facts::span`, unit-tested on its own), so that age queries test which ages count and
//! how they combine rather than restating the calendar.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use casereg_client::Client;
use casereg_client::query::parse_query;
use casereg_core::case::AgeSpan;
use casereg_core::ids::{Curie, TermId};
use casereg_core::ontology::Ontology;
use casereg_e2e::{TestServer, sample_records, seed_case, shared_corpus};
use casereg_proto::v1 as pb;

/// The fixed query list: high and low terms, exact and with descendants, excluded terms,
/// boolean combinations, ages, diseases, genes, publications, labels.
const QUERIES: &[&str] = &[
    "phenotype:HP:0000118",
    "phenotype:HP:0000707",
    "phenotype:HP:0001250",
    "phenotype:=HP:0001250",
    "phenotype:HP:0007359",
    "phenotype:\"Seizure\"",
    "excluded:HP:0001250",
    "excluded:=HP:0001250",
    "excluded:HP:0007359",
    "phenotype:HP:0001263 and sex:female",
    "phenotype:HP:0001250 or phenotype:HP:0001263",
    "phenotype:HP:0001250 and not phenotype:HP:0001263",
    "(phenotype:HP:0000707 or phenotype:HP:0000152) and not sex:male",
    "phenotype:HP:0000707 and excluded:HP:0001250",
    "not excluded:HP:0001250",
    "onset>=40y",
    "onset<1y",
    "onset<0d",
    "age>=18y and sex:male",
    "age=10y",
    "age>2y and age<=5y and phenotype:HP:0001263",
    "disease:OMIM:612164",
    "disease:OMIM:162200 and phenotype:HP:0000957",
    "gene:NF1 or gene:HGNC:11444",
    "gene:stxbp1 and onset<=1y",
    "publication:PMID:35190816",
    "variant:pathogenic and sex:unknown",
    "sex:female and not (onset<16y or age<16y)",
];

/// A case as the reference sees it.
struct Case {
    center: String,
    record: pb::Phenopacket,
}

/// The ontology with each term's ancestors computed once (the reference asks millions of
/// times on the full corpus).
struct Lineage<'a> {
    hpo: &'a Ontology,
    ancestors: std::cell::RefCell<std::collections::HashMap<TermId, std::rc::Rc<Vec<TermId>>>>,
    labels: std::cell::RefCell<std::collections::HashMap<String, TermId>>,
}

impl<'a> Lineage<'a> {
    fn new(hpo: &'a Ontology) -> Self {
        Self {
            hpo,
            ancestors: Default::default(),
            labels: Default::default(),
        }
    }

    /// The term whose name is `label`, found by the ontology's text search.
    fn named(&self, label: &str) -> TermId {
        *self
            .labels
            .borrow_mut()
            .entry(label.to_owned())
            .or_insert_with(|| {
                let (hits, _) = self.hpo.search(label, 1, false);
                let hit = hits.first().expect("a term");
                assert!(hit.term.name.eq_ignore_ascii_case(label));
                hit.term.id
            })
    }

    fn ancestors(&self, term: TermId) -> std::rc::Rc<Vec<TermId>> {
        self.ancestors
            .borrow_mut()
            .entry(term)
            .or_insert_with(|| std::rc::Rc::new(self.hpo.ancestors(term)))
            .clone()
    }
}

fn resolve(hpo: &Ontology, id: &str) -> Option<TermId> {
    let term = Curie::check_term(id).ok().flatten()?;
    Some(hpo.resolve(term).effective())
}

fn reference(filter: &pb::Filter, case: &Case, lineage: &Lineage<'_>) -> bool {
    use pb::filter::Node;
    let hpo = lineage.hpo;
    let p = &case.record;
    let Some(node) = &filter.node else {
        panic!("empty filter node");
    };
    match node {
        Node::All(list) => list.filters.iter().all(|f| reference(f, case, lineage)),
        Node::Any(list) => list.filters.iter().any(|f| reference(f, case, lineage)),
        Node::Not(inner) => !reference(inner, case, lineage),
        Node::Phenotype(m) => {
            let wanted = phenotype_term(m, lineage);
            p.phenotypic_features
                .iter()
                .filter(|f| !f.excluded)
                .filter_map(|f| resolve(hpo, &f.r#type.as_ref()?.id))
                .any(|t| t == wanted || (!m.exact && lineage.ancestors(t).contains(&wanted)))
        }
        Node::Excluded(m) => {
            let wanted = phenotype_term(m, lineage);
            let more_general = lineage.ancestors(wanted);
            p.phenotypic_features
                .iter()
                .filter(|f| f.excluded)
                .filter_map(|f| resolve(hpo, &f.r#type.as_ref()?.id))
                .any(|t| t == wanted || (!m.exact && more_general.contains(&t)))
        }
        Node::Disease(m) => {
            let wanted = code_id(m);
            let recorded = p
                .diseases
                .iter()
                .filter(|d| !d.excluded)
                .filter_map(|d| d.term.as_ref());
            let diagnosed = p
                .interpretations
                .iter()
                .filter_map(|i| i.diagnosis.as_ref()?.disease.as_ref());
            recorded.chain(diagnosed).any(|c| c.id == wanted)
        }
        Node::Gene(m) => {
            let wanted = code_id(m);
            genes(p).any(|g| g.value_id == wanted || g.symbol.eq_ignore_ascii_case(&wanted))
        }
        Node::Sex(sex) => p.subject.as_ref().map_or(0, |s| s.sex) == *sex,
        Node::Onset(window) => within(casereg_e2e::reference_onset(p), window),
        Node::Age(window) => within(casereg_e2e::reference_last_encounter(p), window),
        Node::Center(center) => &case.center == center,
        Node::Publication(id) => p
            .meta_data
            .iter()
            .flat_map(|m| &m.external_references)
            .any(|r| &r.id == id),
        Node::VariantClass(name) => variants(p).any(|v| {
            pb::AcmgPathogenicityClassification::try_from(v.acmg_pathogenicity_classification)
                .is_ok_and(|c| c.as_str_name() == name)
        }),
        Node::Treatment(_) | Node::Procedure(_) => {
            panic!("the corpus records no medical actions; add a reference before querying them")
        }
    }
}

fn within(span: Option<AgeSpan>, window: &pb::AgeWindow) -> bool {
    span.is_some_and(|s| {
        window.from_days.is_none_or(|f| s.from >= f) && window.until_days.is_none_or(|u| s.to < u)
    })
}

fn phenotype_term(m: &pb::PhenotypeMatch, lineage: &Lineage<'_>) -> TermId {
    match m.term.as_ref().expect("term") {
        pb::phenotype_match::Term::Id(id) => resolve(lineage.hpo, id).expect("an HPO id"),
        pb::phenotype_match::Term::Label(label) => lineage.named(label),
    }
}

fn code_id(m: &pb::CodeMatch) -> String {
    match m.code.as_ref().expect("code") {
        pb::code_match::Code::Id(id) | pb::code_match::Code::Label(id) => id.clone(),
    }
}

fn genomic(p: &pb::Phenopacket) -> impl Iterator<Item = &pb::GenomicInterpretation> {
    p.interpretations
        .iter()
        .filter_map(|i| i.diagnosis.as_ref())
        .flat_map(|d| &d.genomic_interpretations)
}

fn variants(p: &pb::Phenopacket) -> impl Iterator<Item = &pb::VariantInterpretation> {
    genomic(p).filter_map(|g| match &g.call {
        Some(pb::genomic_interpretation::Call::VariantInterpretation(v)) => Some(v),
        _ => None,
    })
}

fn genes(p: &pb::Phenopacket) -> impl Iterator<Item = &pb::GeneDescriptor> {
    genomic(p).filter_map(|g| match &g.call {
        Some(pb::genomic_interpretation::Call::Gene(gene)) => Some(gene),
        Some(pb::genomic_interpretation::Call::VariantInterpretation(v)) => {
            v.variation_descriptor.as_ref()?.gene_context.as_ref()
        }
        None => None,
    })
}

/// Every phenopacket id a search returns, following pages.
async fn search_ids(client: &mut Client, filter: &pb::Filter) -> (BTreeSet<String>, u64) {
    let mut ids = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = client
            .search_cases(Some(filter.clone()), 1_000, &token, false)
            .await
            .unwrap();
        for hit in page.hits {
            assert!(
                ids.insert(hit.summary.unwrap().phenopacket_id),
                "duplicate hit"
            );
        }
        if page.next_page_token.is_empty() {
            return (ids, page.total);
        }
        token = page.next_page_token;
    }
}

/// Imports `records`, then checks every query of the list against the reference; returns
/// how many queries matched at least one case.
async fn check_queries(server: &TestServer, path: &Path, records: &[pb::Phenopacket]) -> usize {
    server
        .cli(&["import", &path.display().to_string()])
        .await
        .unwrap();
    let hpo = Ontology::embedded().unwrap();
    let lineage = Lineage::new(&hpo);
    let mut client = server.client().await;
    let info = client.registry_info().await.unwrap();
    let cases: Vec<Case> = records
        .iter()
        .map(|r| Case {
            center: info.center_id.clone(),
            record: r.clone(),
        })
        .collect();
    assert_eq!(info.active_cases, cases.len() as u64);
    let mut non_empty = 0;
    let started = std::time::Instant::now();
    for text in QUERIES {
        let filter = parse_query(text).unwrap_or_else(|e| panic!("{e}"));
        let expected: BTreeSet<String> = cases
            .iter()
            .filter(|c| reference(&filter, c, &lineage))
            .map(|c| c.record.id.clone())
            .collect();
        let (found, total) = search_ids(&mut client, &filter).await;
        assert_eq!(found, expected, "{text}");
        assert_eq!(total, expected.len() as u64, "{text}");
        assert_eq!(
            client.exact_count(Some(filter)).await.unwrap(),
            expected.len() as u64,
            "{text}"
        );
        if !expected.is_empty() {
            non_empty += 1;
        }
        eprintln!(
            "{:>6}  {text}  ({:?} since start)",
            expected.len(),
            started.elapsed()
        );
    }
    non_empty
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_list_matches_a_scan_of_the_sample() {
    let server = TestServer::start().await;
    let records: Vec<pb::Phenopacket> = sample_records().into_iter().map(|(_, _, r)| r).collect();
    let path = casereg_e2e::repo_root().join("tests/data/phenopacket-store-sample.jsonl.gz");
    let non_empty = check_queries(&server, &path, &records).await;
    assert!(non_empty >= 20, "only {non_empty} queries match anything");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_list_matches_a_scan_of_the_shared_corpus() {
    let Some(path) = shared_corpus("the_query_list_matches_a_scan_of_the_shared_corpus") else {
        return;
    };
    let server = TestServer::start().await;
    let records: Vec<pb::Phenopacket> = casereg_e2e::read_jsonl_gz(&path)
        .into_iter()
        .map(|(_, _, r)| r)
        .collect();
    let non_empty = check_queries(&server, &path, &records).await;
    assert!(non_empty >= 24, "only {non_empty} queries match anything");
    server.stop().await;
}

#[tokio::test]
async fn the_seed_case_is_found_by_its_phenotype_disease_and_ancestors_but_not_by_an_excluded_one()
{
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let id = casereg_e2e::create(&mut client, seed_case()).await;
    for fixture in casereg_e2e::schema_fixtures() {
        casereg_e2e::create(&mut client, fixture).await;
    }
    let hits = |query: &str| {
        let server = &server;
        let query = query.to_owned();
        async move {
            let out = server
                .cli(&["--format", "json", "search", &query])
                .await
                .unwrap();
            let response: serde_json::Value = serde_json::from_str(&out).unwrap();
            response["hits"]
                .as_array()
                .map(|hits| {
                    hits.iter()
                        .map(|h| h["summary"]["caseId"].as_str().unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    // Calcinosis cutis by label, with the Sjögren syndrome id.
    assert_eq!(
        hits("phenotype:\"calcinosis cutis\" and disease:OMIM:270150").await,
        vec![id.clone()]
    );
    // An ancestor: Abnormal skin morphology (HP:0011121) is above calcinosis cutis.
    assert_eq!(hits("phenotype:HP:0011121").await, vec![id.clone()]);
    assert_eq!(hits("phenotype:=HP:0011121").await, Vec::<String>::new());
    // Skin ulcer was looked for and found absent: not a present phenotype…
    assert_eq!(hits("phenotype:HP:0200042").await, Vec::<String>::new());
    // …but found as an excluded one, also through a more specific term below it.
    assert_eq!(hits("excluded:HP:0200042").await, vec![id.clone()]);
    // The treatments and the age at last encounter (56 years) and onset (36 years).
    assert_eq!(
        hits("treatment:CHEBI:132112 and age=56y and onset>=36y and onset<37y").await,
        vec![id.clone()]
    );
    assert_eq!(
        hits("treatment:\"sodium thiosulfate\"").await,
        vec![id.clone()]
    );
    assert_eq!(
        hits("publication:DOI:10.7326/aimcc.2023.1411").await,
        vec![id]
    );
    // Export takes the same filter.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skin.jsonl");
    server
        .cli(&[
            "export",
            "--where",
            "phenotype:HP:0011121",
            "-o",
            &file.display().to_string(),
        ])
        .await
        .unwrap();
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 1);
    assert!(exported.contains(&seed_case().id));
    let human = server
        .cli(&["search", "phenotype:\"calcinosis cutis\""])
        .await
        .unwrap();
    assert!(human.contains("Calcinosis cutis"), "{human}");
    assert!(human.contains("1 of 1 matching cases shown"), "{human}");
    assert_eq!(
        server.cli(&["count", "sex:female"]).await.unwrap().trim(),
        "2"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_filters_name_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    casereg_e2e::create(&mut client, seed_case()).await;
    let phenotype = |id: &str| pb::Filter {
        node: Some(pb::filter::Node::Phenotype(pb::PhenotypeMatch {
            term: Some(pb::phenotype_match::Term::Id(id.to_owned())),
            exact: false,
        })),
    };
    let all = |filters: Vec<pb::Filter>| pb::Filter {
        node: Some(pb::filter::Node::All(pb::FilterList { filters })),
    };
    let field_of = |error: casereg_client::ClientError| match error {
        casereg_client::ClientError::InvalidArgument { violations, .. } => {
            violations.into_iter().map(|v| v.field).collect::<Vec<_>>()
        }
        other => panic!("expected INVALID_ARGUMENT, got {other}"),
    };

    let malformed = all(vec![phenotype("HP:0025520"), phenotype("HP:12")]);
    let error = client.count_cases(Some(malformed)).await.unwrap_err();
    assert_eq!(field_of(error), ["filter.all.filters[1].phenotype.id"]);

    let unknown = client
        .count_cases(Some(phenotype("HP:9999999")))
        .await
        .unwrap_err();
    assert_eq!(field_of(unknown), ["filter.phenotype.id"]);

    let mut deep = phenotype("HP:0025520");
    for _ in 0..casereg_core::limits::MAX_FILTER_DEPTH {
        deep = pb::Filter {
            node: Some(pb::filter::Node::Not(Box::new(deep))),
        };
    }
    let error = client.count_cases(Some(deep)).await.unwrap_err();
    assert!(field_of(error)[0].starts_with("filter.not.not"));

    let wide = all(vec![
        phenotype("HP:0025520");
        casereg_core::limits::MAX_FILTER_NODES
    ]);
    let error = client.count_cases(Some(wide)).await.unwrap_err();
    assert_eq!(field_of(error).len(), 1);

    let empty_age = pb::Filter {
        node: Some(pb::filter::Node::Onset(pb::AgeWindow::default())),
    };
    let error = client
        .search_cases(Some(empty_age), 10, "", false)
        .await
        .unwrap_err();
    assert_eq!(field_of(error), ["filter.onset"]);

    let error = client
        .search_cases(None, 10, "not-a-token", false)
        .await
        .unwrap_err();
    assert_eq!(field_of(error), ["page_token"]);

    // Text queries fail in the client, pointing at the column.
    for (query, column) in [
        ("phenotyp:HP:0025520", 1),
        ("(phenotype:HP:0025520 or sex:male", 1),
        ("phenotype:HP:0025520 and onset>=40", 35),
    ] {
        let error = server.cli(&["count", query]).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("column {column}")),
            "{query}: {text}"
        );
    }
    let ambiguous = server
        .cli(&["count", "phenotype:\"no such phenotype at all\""])
        .await
        .unwrap_err();
    assert!(
        ambiguous.report().contains("filter.phenotype.label"),
        "{}",
        ambiguous.report()
    );

    assert_eq!(client.exact_count(None).await.unwrap(), 1);
    server.stop().await;
}
