//! Aggregates end to end: facets and pivots against an independent count over the decoded
//! records, the treatment × response pivot, small-count protection, bad requests.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use casereg_client::Client;
use casereg_client::query::parse_query;
use casereg_core::ids::{Curie, TermId};
use casereg_core::ontology::Ontology;
use casereg_e2e::access::TestPrincipals;
use casereg_e2e::{TestServer, sample_records, schema_fixtures, seed_case};
use casereg_proto::v1 as pb;

fn group(dimension: pb::Dimension) -> pb::GroupBy {
    pb::GroupBy {
        dimension: dimension.into(),
        ..pb::GroupBy::default()
    }
}

fn request(query: Option<&str>, group_by: Vec<pb::GroupBy>) -> pb::AggregateRequest {
    pb::AggregateRequest {
        filter: query.map(|q| parse_query(q).unwrap()),
        group_by,
        top_n: 1_000,
        min_count: 0,
    }
}

/// Cells as (key ids, exact count).
fn cells(response: &pb::AggregateResponse) -> BTreeMap<Vec<String>, u64> {
    response
        .cells
        .iter()
        .map(|c| {
            let count = c.count.unwrap();
            assert_eq!(count.precision, pb::Precision::Exact as i32);
            (c.keys.iter().map(|k| k.id.clone()).collect(), count.value)
        })
        .collect()
}

fn resolve(hpo: &Ontology, id: &str) -> Option<TermId> {
    let term = Curie::check_term(id).ok().flatten()?;
    Some(hpo.resolve(term).effective())
}

/// The values of one dimension in one record, computed from the record alone.
fn values(p: &pb::Phenopacket, g: &pb::GroupBy, hpo: &Ontology) -> BTreeSet<String> {
    use pb::Dimension as D;
    let features = |excluded: bool| {
        p.phenotypic_features
            .iter()
            .filter(move |f| f.excluded == excluded)
            .filter_map(|f| resolve(hpo, &f.r#type.as_ref()?.id))
    };
    match D::try_from(g.dimension).unwrap() {
        D::Disease => p
            .diseases
            .iter()
            .filter(|d| !d.excluded)
            .filter_map(|d| d.term.as_ref())
            .chain(
                p.interpretations
                    .iter()
                    .filter_map(|i| i.diagnosis.as_ref()?.disease.as_ref()),
            )
            .map(|c| c.id.clone())
            .collect(),
        D::Sex => [pb::Sex::try_from(p.subject.as_ref().map_or(0, |s| s.sex))
            .unwrap()
            .as_str_name()
            .to_owned()]
        .into(),
        D::Phenotype if g.rollup_depth == 0 => features(false).map(|t| t.to_string()).collect(),
        D::Phenotype => {
            // Terms `rollup_depth` levels below Phenotypic abnormality (1: organ systems)
            // above a recorded term.
            let mut systems: BTreeSet<TermId> = [TermId(118)].into();
            for _ in 0..g.rollup_depth {
                systems = systems
                    .iter()
                    .flat_map(|t| hpo.children(*t).iter().copied())
                    .collect();
            }
            features(false)
                .flat_map(|t| {
                    let mut above = hpo.ancestors(t);
                    above.push(t);
                    above
                })
                .filter(|t| systems.contains(t))
                .map(|t| t.to_string())
                .collect()
        }
        D::ExcludedPhenotype => features(true).map(|t| t.to_string()).collect(),
        D::Gene => p
            .interpretations
            .iter()
            .filter_map(|i| i.diagnosis.as_ref())
            .flat_map(|d| &d.genomic_interpretations)
            .filter_map(|g| match &g.call {
                Some(pb::genomic_interpretation::Call::Gene(gene)) => Some(gene),
                Some(pb::genomic_interpretation::Call::VariantInterpretation(v)) => {
                    v.variation_descriptor.as_ref()?.gene_context.as_ref()
                }
                None => None,
            })
            .flat_map(|g| [g.value_id.clone(), g.symbol.to_uppercase()])
            .filter(|id| !id.is_empty())
            .collect(),
        D::Onset | D::Age => {
            let span = if D::try_from(g.dimension).unwrap() == D::Age {
                casereg_e2e::reference_last_encounter(p)
            } else {
                casereg_e2e::reference_onset(p)
            };
            let width = i64::from(g.bucket_days);
            span.map(|s| {
                let start = i64::from(s.from).div_euclid(width) * width;
                if i64::from(s.to) < start + width {
                    format!("[{start},{})", start + width)
                } else {
                    "several".to_owned()
                }
            })
            .into_iter()
            .collect()
        }
        D::Publication => p
            .meta_data
            .iter()
            .flat_map(|m| &m.external_references)
            .map(|r| r.id.clone())
            .collect(),
        other => panic!("no reference for {other:?}"),
    }
}

fn bucketed(dimension: pb::Dimension, bucket_days: u32) -> pb::GroupBy {
    pb::GroupBy {
        bucket_days,
        ..group(dimension)
    }
}

/// The fixed list of requests: one and two dimensions, with and without filters, age
/// buckets and phenotype roll-ups.
fn requests() -> Vec<(Option<&'static str>, Vec<pb::GroupBy>)> {
    let rollup = |rollup_depth| pb::GroupBy {
        rollup_depth,
        ..group(pb::Dimension::Phenotype)
    };
    let year = 1461 / 4;
    vec![
        (None, vec![group(pb::Dimension::Disease)]),
        (None, vec![group(pb::Dimension::Sex)]),
        (None, vec![group(pb::Dimension::Phenotype)]),
        (None, vec![rollup(1)]),
        (
            Some("phenotype:HP:0001250"),
            vec![group(pb::Dimension::ExcludedPhenotype)],
        ),
        (None, vec![group(pb::Dimension::Publication)]),
        (None, vec![group(pb::Dimension::Gene)]),
        (Some("sex:female"), vec![group(pb::Dimension::Disease)]),
        (Some("phenotype:HP:0001250"), vec![rollup(1)]),
        (Some("disease:OMIM:612164"), vec![rollup(2)]),
        (
            // Disease first: cells are cut at 1,000 and ties broken by key, which the
            // reference compares as text (sex keys sort by enum number in the server).
            Some("onset<1y or age>=18y"),
            vec![group(pb::Dimension::Disease), group(pb::Dimension::Sex)],
        ),
        (
            Some("phenotype:HP:0000707"),
            vec![rollup(1), group(pb::Dimension::Sex)],
        ),
        (None, vec![bucketed(pb::Dimension::Onset, 10 * year)]),
        (
            Some("sex:male"),
            vec![bucketed(pb::Dimension::Age, 5 * year)],
        ),
        (
            None,
            vec![
                bucketed(pb::Dimension::Onset, year),
                group(pb::Dimension::Sex),
            ],
        ),
        (
            Some("phenotype:HP:0001250"),
            vec![group(pb::Dimension::Gene)],
        ),
    ]
}

/// Imports `path` into an exact-count server and checks every request of [`requests`]
/// against counts made from `records` alone.
async fn check_requests(path: &std::path::Path, records: &[pb::Phenopacket]) {
    let server = TestServer::start().await;
    server
        .cli(&["import", &path.display().to_string()])
        .await
        .unwrap();
    let hpo = Ontology::embedded().unwrap();
    let mut client = server.client().await;
    for (query, group_by) in requests() {
        let response = client
            .aggregate(request(query, group_by.clone()))
            .await
            .unwrap();
        // The reference: the records the search returns, counted by their own values.
        let matching: BTreeSet<String> = match query {
            None => records.iter().map(|r| r.id.clone()).collect(),
            Some(q) => {
                let mut ids = BTreeSet::new();
                let mut token = String::new();
                loop {
                    let page = client
                        .search_cases(Some(parse_query(q).unwrap()), 1_000, &token, false)
                        .await
                        .unwrap();
                    ids.extend(
                        page.hits
                            .into_iter()
                            .map(|h| h.summary.unwrap().phenopacket_id),
                    );
                    if page.next_page_token.is_empty() {
                        break ids;
                    }
                    token = page.next_page_token;
                }
            }
        };
        let mut expected: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
        let mut valued = BTreeSet::new();
        let mut none = 0;
        for record in records.iter().filter(|r| matching.contains(&r.id)) {
            let first = values(record, &group_by[0], &hpo);
            if first.is_empty() {
                none += 1;
            } else {
                valued.insert(record.id.clone());
            }
            for a in &first {
                let seconds = match group_by.get(1) {
                    None => vec![vec![a.clone()]],
                    Some(second) => values(record, second, &hpo)
                        .into_iter()
                        .map(|b| vec![a.clone(), b])
                        .collect(),
                };
                for keys in seconds {
                    expected.entry(keys).or_default().insert(record.id.clone());
                }
            }
        }
        // Largest first, then by key; the first 1,000 are listed.
        let mut ranked: Vec<(Vec<String>, BTreeSet<String>)> = expected.into_iter().collect();
        ranked.sort_by(|(ka, a), (kb, b)| b.len().cmp(&a.len()).then_with(|| ka.cmp(kb)));
        ranked.truncate(1_000);
        let listed: BTreeSet<&String> = ranked.iter().flat_map(|(_, ids)| ids).collect();
        let expected: BTreeMap<Vec<String>, u64> = ranked
            .iter()
            .map(|(k, ids)| (k.clone(), ids.len() as u64))
            .collect();
        assert_eq!(cells(&response), expected, "{query:?} {group_by:?}");
        assert_eq!(
            response.total.unwrap().value,
            matching.len() as u64,
            "{query:?}"
        );
        assert_eq!(response.none.unwrap().value, none, "{query:?}");
        assert_eq!(
            response.other.unwrap().value,
            valued.iter().filter(|id| !listed.contains(id)).count() as u64,
            "{query:?} {group_by:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_and_pivots_equal_a_count_over_the_sample() {
    let path = casereg_e2e::repo_root().join("tests/data/phenopacket-store-sample.jsonl.gz");
    let records: Vec<pb::Phenopacket> = sample_records().into_iter().map(|(_, _, r)| r).collect();
    check_requests(&path, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_and_pivots_equal_a_count_over_the_shared_corpus() {
    let Some(path) =
        casereg_e2e::shared_corpus("facets_and_pivots_equal_a_count_over_the_shared_corpus")
    else {
        return;
    };
    let records: Vec<pb::Phenopacket> = casereg_e2e::read_jsonl_gz(&path)
        .into_iter()
        .map(|(_, _, r)| r)
        .collect();
    check_requests(&path, &records).await;
}

/// A copy of the seed case under another id and sex.
fn variant(n: usize, sex: pb::Sex) -> pb::Phenopacket {
    let mut record = seed_case();
    record.id = format!("seed-copy-{n}");
    record.subject.as_mut().unwrap().sex = sex.into();
    record
}

async fn load(client: &mut Client, females: usize, males: usize) {
    for n in 0..females + males {
        let sex = if n < females {
            pb::Sex::Female
        } else {
            pb::Sex::Male
        };
        casereg_e2e::create(client, variant(n, sex)).await;
    }
}

#[tokio::test]
async fn a_cell_of_three_is_never_visible_below_k_and_visible_at_record_level() {
    let by_sex = || request(None, vec![group(pb::Dimension::Sex)]);
    let values = |r: &pb::AggregateResponse| -> Vec<u64> {
        r.cells
            .iter()
            .filter_map(|c| c.count.as_ref())
            .chain([&r.total, &r.other, &r.none].into_iter().flatten())
            .map(|c| c.value)
            .collect()
    };
    // Default k = 5: 3 women among 10 cases, seen by a count-level reader.
    let principals = TestPrincipals::standard();
    let server = TestServer::start_secured(&principals, &[]).await;
    load(
        &mut server.client_as(principals.token("curator-a")).await,
        3,
        7,
    )
    .await;
    let mut client = server.client_as(principals.token("reader-count")).await;
    let protected = client.aggregate(by_sex()).await.unwrap();
    assert_eq!(protected.min_cell_count, 5);
    assert!(!values(&protected).contains(&3), "{protected:?}");
    let women = &protected
        .cells
        .iter()
        .find(|c| c.keys[0].id == "FEMALE")
        .unwrap();
    assert_eq!(
        women.count,
        Some(pb::Count {
            value: 5,
            precision: pb::Precision::FewerThan.into()
        })
    );
    // 10 cases = 7 + 3: the total must not be exact, or 10 − 7 would give the 3 away.
    assert_ne!(
        protected.total.unwrap().precision,
        pb::Precision::Exact as i32
    );
    let reader = principals.token("reader-count");
    let text = server
        .cli_as(reader, &["--format", "json", "stats", "--by", "sex"])
        .await
        .unwrap();
    assert!(!text.contains("\"3\""), "{text}");
    let table = server
        .cli_as(reader, &["stats", "--by", "sex"])
        .await
        .unwrap();
    assert!(table.contains("<5"), "{table}");
    // Record-level access sees 3.
    let mut client = server.client_as(principals.token("reader-record")).await;
    let exact = client.aggregate(by_sex()).await.unwrap();
    assert_eq!(exact.min_cell_count, 0);
    assert!(values(&exact).contains(&3), "{exact:?}");
    server.stop().await;

    // k is configurable: at k = 3 a count-level reader sees 3 too.
    {
        let server = TestServer::start_secured(&principals, &["--min-cell-count", "3"]).await;
        load(&mut server.client_as(principals.token("admin")).await, 3, 7).await;
        let mut client = server.client_as(principals.token("reader-count")).await;
        let response = client.aggregate(by_sex()).await.unwrap();
        assert_eq!(
            cells(&response),
            BTreeMap::from([(vec!["FEMALE".to_owned()], 3), (vec!["MALE".to_owned()], 7)])
        );
        assert_eq!(response.total.unwrap().value, 10);
        server.stop().await;
    }
}

#[tokio::test]
async fn treatment_by_response_pairs_each_response_with_its_treatment() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    casereg_e2e::create(&mut client, seed_case()).await;
    for fixture in schema_fixtures() {
        casereg_e2e::create(&mut client, fixture).await;
    }
    let response = client
        .aggregate(request(
            None,
            vec![
                group(pb::Dimension::Treatment),
                group(pb::Dimension::Response),
            ],
        ))
        .await
        .unwrap();
    let table = cells(&response);
    // The seed case: hydroxychloroquine worked, retinoic acid and sodium thiosulfate did not.
    assert_eq!(
        table.get(&vec!["CHEBI:5801".to_owned(), "NCIT:C102560".to_owned()]),
        Some(&1)
    );
    assert_eq!(
        table.get(&vec!["CHEBI:132112".to_owned(), "NCIT:C102561".to_owned()]),
        Some(&1)
    );
    assert_eq!(
        table.get(&vec!["CHEBI:5801".to_owned(), "NCIT:C102561".to_owned()]),
        None,
        "a response must be paired with its own treatment"
    );
    assert!(
        response
            .cells
            .iter()
            .any(|c| c.keys[0].label == "hydroxychloroquine"),
        "{response:?}"
    );
    // The covid19 example records treatments without a response: it has a treatment, so it
    // is not in `none`, but in no treatment × response cell, so it is in `other`.
    assert_eq!(response.other.unwrap().value, 1);
    let treatments = client
        .aggregate(request(None, vec![group(pb::Dimension::Treatment)]))
        .await
        .unwrap();
    let treated = cells(&treatments);
    assert_eq!(treated.get(&vec!["NCIT:C722".to_owned()]), Some(&1));
    assert_eq!(treated.get(&vec!["CHEBI:5801".to_owned()]), Some(&1));
    let csv = server
        .cli(&[
            "stats",
            "--by",
            "treatment",
            "--by",
            "response",
            "--where",
            "phenotype:\"calcinosis cutis\"",
            "--csv",
        ])
        .await
        .unwrap();
    assert!(csv.starts_with("id1,label1,id2,label2,count"), "{csv}");
    assert!(
        csv.contains("CHEBI:132112,sodium thiosulfate,NCIT:C102561,Unfavorable,1"),
        "{csv}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_aggregate_requests_name_the_field() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let field = |e: casereg_client::ClientError| match e {
        casereg_client::ClientError::InvalidArgument { violations, .. } => {
            violations[0].field.clone()
        }
        other => panic!("expected INVALID_ARGUMENT, got {other}"),
    };
    let unknown = pb::GroupBy {
        dimension: 99,
        ..pb::GroupBy::default()
    };
    let zero_width = group(pb::Dimension::Onset);
    let mut too_many = request(None, vec![group(pb::Dimension::Sex)]);
    too_many.top_n = 1_001;
    for (req, expected) in [
        (request(None, vec![unknown]), "group_by[0].dimension"),
        (request(None, vec![zero_width]), "group_by[0].bucket_days"),
        (too_many, "top_n"),
        (request(None, vec![]), "group_by"),
    ] {
        assert_eq!(field(client.aggregate(req).await.unwrap_err()), expected);
    }
    server.stop().await;
}

/// C(n, k) as a float, by multiplication (exact enough for a few hundred cases).
fn choose(n: u64, k: u64) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooccurring_phenotypes_equal_a_count_over_the_records_with_their_tests() {
    let server = TestServer::start().await;
    let path = casereg_e2e::repo_root().join("tests/data/phenopacket-store-sample.jsonl.gz");
    server
        .cli(&["import", &path.display().to_string()])
        .await
        .unwrap();
    let records: Vec<pb::Phenopacket> = sample_records().into_iter().map(|(_, _, r)| r).collect();
    let hpo = Ontology::embedded().unwrap();
    let mut client = server.client().await;
    let query = "phenotype:HP:0001250";
    let response = client
        .cooccurrence(pb::CoOccurrenceRequest {
            filter: Some(parse_query(query).unwrap()),
            dimension: pb::Dimension::Phenotype.into(),
            top_n: 1_000,
            min_count: 0,
        })
        .await
        .unwrap();
    let page = client
        .search_cases(Some(parse_query(query).unwrap()), 1_000, "", false)
        .await
        .unwrap();
    let subset: BTreeSet<String> = page
        .hits
        .into_iter()
        .map(|h| h.summary.unwrap().phenopacket_id)
        .collect();
    let observed = group(pb::Dimension::Phenotype);
    let mut in_subset: BTreeMap<String, u64> = BTreeMap::new();
    let mut in_registry: BTreeMap<String, u64> = BTreeMap::new();
    for record in &records {
        for term in values(record, &observed, &hpo) {
            *in_registry.entry(term.clone()).or_default() += 1;
            if subset.contains(&record.id) {
                *in_subset.entry(term).or_default() += 1;
            }
        }
    }
    let (n, population) = (subset.len() as u64, records.len() as u64);
    assert_eq!(response.subset_cases.unwrap().value, n);
    assert_eq!(response.tested, in_subset.len() as u64);
    assert_eq!(response.values.len(), in_subset.len());
    for value in &response.values {
        let id = &value.key.as_ref().unwrap().id;
        let (hits, with_value) = (in_subset[id], in_registry[id]);
        assert_eq!(value.cases.unwrap().value, hits, "{id}");
        assert_eq!(value.registry_cases.unwrap().value, with_value, "{id}");
        // The hypergeometric upper tail, summed here independently.
        let p: f64 = (hits..=n.min(with_value))
            .map(|i| {
                choose(with_value, i) * choose(population - with_value, n - i)
                    / choose(population, n)
            })
            .sum();
        assert!(
            (value.p_value - p.min(1.0)).abs() < 1e-9 * p.max(1e-300).max(1e-12),
            "{id}: {} vs {p}",
            value.p_value
        );
        assert!(
            value.q_value >= value.p_value && value.q_value <= 1.0,
            "{id}: p {} q {}",
            value.p_value,
            value.q_value
        );
    }
    // Seizure itself is in every case of the subset and strongly enriched.
    let seizure = response
        .values
        .iter()
        .find(|v| v.key.as_ref().unwrap().id == "HP:0001250")
        .unwrap();
    assert!(seizure.ratio > 1.0 && seizure.q_value < 1e-6, "{seizure:?}");
    server.stop().await;

    // Below record level, values in fewer than k cases are not listed.
    let principals = TestPrincipals::standard();
    let server = TestServer::start_secured(&principals, &[]).await;
    server
        .cli_as(
            principals.token("curator-a"),
            &["import", &path.display().to_string()],
        )
        .await
        .unwrap();
    let mut client = server.client_as(principals.token("reader-count")).await;
    let protected = client
        .cooccurrence(pb::CoOccurrenceRequest {
            filter: Some(parse_query(query).unwrap()),
            dimension: pb::Dimension::ExcludedPhenotype.into(),
            top_n: 1_000,
            min_count: 0,
        })
        .await
        .unwrap();
    assert!(!protected.values.is_empty());
    assert!(protected.values.iter().all(|v| v.cases.unwrap().value >= 5));
    let text = server
        .cli_as(principals.token("reader-count"), &["cooccur", query])
        .await
        .unwrap();
    assert!(text.contains("excluded phenotypes"), "{text}");
    assert!(text.contains("Seizure"), "{text}");
    server.stop().await;
}
