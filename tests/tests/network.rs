//! Federation end to end: centers and a coordinator on loopback. Network answers equal the
//! answer of one registry holding the union; failing centers are named and the answer is
//! marked partial within the deadline; a count-level peer gives away no small count on the
//! wire; a loop in the peer graph ends with a clear outcome.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use casereg_client::Client;
use casereg_client::query::parse_query;
use casereg_e2e::access::TestPrincipals;
use casereg_e2e::{TestServer, sample_records, seed_case, shared_corpus};
use casereg_proto::v1 as pb;
use casereg_proto::v1::network_server::{Network, NetworkServer};
use casereg_server::principals::{Level, Role};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Principals every center of these tests shares: the coordinator's peer principal at
/// `level`, a curator, and the coordinator's own administrator.
fn principals(level: Level) -> TestPrincipals {
    TestPrincipals::new(&[
        ("coordinator", "coord", Role::Peer, Some(level)),
        ("curator", "hospital", Role::Curator, None),
        ("admin", "coord", Role::Admin, None),
    ])
}

async fn import(client: &mut Client, records: Vec<pb::Phenopacket>) {
    let requests: Vec<pb::ImportCasesRequest> = records
        .chunks(500)
        .enumerate()
        .map(|(i, chunk)| pb::ImportCasesRequest {
            options: None,
            records: chunk
                .iter()
                .enumerate()
                .map(|(j, record)| pb::ImportRecord {
                    source: format!("record {}", i * 500 + j),
                    phenopacket: Some(record.clone()),
                })
                .collect(),
        })
        .collect();
    let expected = records.len() as u64;
    let response = client
        .import_cases(tokio_stream::iter(requests))
        .await
        .expect("import");
    assert_eq!(response.created, expected, "{response:?}");
}

/// `--peer NAME=URL --peer-token NAME=TOKEN` for each center.
fn peer_flags(peers: &[(&str, String)], token: &str) -> Vec<String> {
    peers
        .iter()
        .flat_map(|(name, url)| {
            [
                "--peer".to_owned(),
                format!("{name}={url}"),
                "--peer-token".to_owned(),
                format!("{name}={token}"),
            ]
        })
        .collect()
}

fn as_strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

fn exact(value: u64) -> Option<pb::Count> {
    Some(pb::Count {
        value,
        precision: pb::Precision::Exact.into(),
    })
}

fn cells(response: &pb::AggregateResponse) -> BTreeMap<Vec<String>, Option<pb::Count>> {
    response
        .cells
        .iter()
        .map(|c| (c.keys.iter().map(|k| k.id.clone()).collect(), c.count))
        .collect()
}

fn facet(dimension: pb::Dimension, rollup_depth: u32, bucket_days: u32) -> pb::GroupBy {
    pb::GroupBy {
        dimension: dimension.into(),
        rollup_depth,
        bucket_days,
    }
}

#[tokio::test]
async fn network_counts_and_facets_equal_one_registry_holding_the_union() {
    let records: Vec<pb::Phenopacket> = match shared_corpus("network_counts_and_facets") {
        Some(path) => casereg_e2e::read_jsonl_gz(&path),
        None => sample_records(),
    }
    .into_iter()
    .map(|(_, _, record)| record)
    .collect();
    let principals = principals(Level::Record);
    let flags = principals.flags();
    let flags = as_strs(&flags);
    let union = TestServer::start_with(&flags).await;
    import(
        &mut union.client_as(principals.token("curator")).await,
        records.clone(),
    )
    .await;
    let mut centers = Vec::new();
    for (n, name) in ["a", "b", "c"].into_iter().enumerate() {
        let center_flags = [flags.clone(), vec!["--center", name]].concat();
        let server = TestServer::start_with(&center_flags).await;
        let part = records.iter().skip(n).step_by(3).cloned().collect();
        import(
            &mut server.client_as(principals.token("curator")).await,
            part,
        )
        .await;
        centers.push((name, server));
    }
    let peers: Vec<(&str, String)> = centers.iter().map(|(n, s)| (*n, s.url())).collect();
    let peer_flags = peer_flags(&peers, principals.token("coordinator"));
    let coordinator_flags = [
        flags.clone(),
        vec!["--center", "coord"],
        as_strs(&peer_flags),
    ]
    .concat();
    let coordinator = TestServer::start_with(&coordinator_flags).await;
    let mut network = coordinator.client_as(principals.token("admin")).await;
    let mut single = union.client_as(principals.token("admin")).await;

    for query in [
        None,
        Some("phenotype:HP:0001250"),
        Some("sex:female and onset<1y"),
        Some("phenotype:HP:0000707 and not phenotype:HP:0001263"),
    ] {
        let filter = query.map(|q| parse_query(q).unwrap());
        let expected = single.exact_count(filter.clone()).await.unwrap();
        let answer = network
            .network_count(
                pb::NetworkCountRequest {
                    filter,
                    route: None,
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(answer.count, exact(expected), "{query:?}");
        assert!(!answer.partial, "{answer:?}");
        let statuses: Vec<(String, i32)> = answer
            .centers
            .iter()
            .map(|c| (c.center.clone(), c.status))
            .collect();
        let answered = pb::CenterStatus::Answered as i32;
        assert_eq!(
            statuses,
            [
                ("coord", answered),
                ("a", answered),
                ("b", answered),
                ("c", answered)
            ]
            .map(|(c, s)| (c.to_owned(), s))
        );
    }

    let seizures = parse_query("phenotype:HP:0001250").unwrap();
    for (group_by, filter, top_n) in [
        (vec![facet(pb::Dimension::Sex, 0, 0)], None, 20),
        (
            vec![facet(pb::Dimension::Phenotype, 1, 0)],
            Some(seizures.clone()),
            1000,
        ),
        (vec![facet(pb::Dimension::Onset, 0, 3653)], None, 1000),
        (
            vec![
                facet(pb::Dimension::Phenotype, 1, 0),
                facet(pb::Dimension::Sex, 0, 0),
            ],
            Some(seizures.clone()),
            1000,
        ),
        (
            vec![facet(pb::Dimension::Disease, 0, 0)],
            Some(seizures.clone()),
            1000,
        ),
    ] {
        let request = pb::AggregateRequest {
            filter,
            group_by,
            top_n,
            min_count: 0,
        };
        let expected = single.aggregate(request.clone()).await.unwrap();
        let answer = network
            .network_aggregate(
                pb::NetworkAggregateRequest {
                    request: Some(request.clone()),
                    route: None,
                },
                None,
            )
            .await
            .unwrap();
        assert!(!answer.partial);
        let merged = answer.merged.unwrap();
        assert_eq!(cells(&merged), cells(&expected), "{request:?}");
        assert_eq!(merged.total, expected.total, "{request:?}");
        assert_eq!(merged.none, expected.none, "{request:?}");
    }

    // Co-occurrence: the merged counts, and the tests recomputed on them, equal the union's.
    for dimension in [pb::Dimension::Disease, pb::Dimension::Gene] {
        let request = pb::CoOccurrenceRequest {
            filter: Some(seizures.clone()),
            dimension: dimension.into(),
            top_n: 1000,
            min_count: 0,
        };
        let expected = single.cooccurrence(request.clone()).await.unwrap();
        let answer = network
            .network_co_occurrence(
                pb::NetworkCoOccurrenceRequest {
                    request: Some(request),
                    route: None,
                },
                None,
            )
            .await
            .unwrap();
        let merged = answer.merged.unwrap();
        // Subset counts are exact. A value's registry count is exact where every center
        // listed the value (each lists only values seen in its subset); elsewhere it is a
        // lower bound, and the p-value is left unknown (NaN) rather than guessed.
        let by_id: BTreeMap<String, &pb::CoOccurringValue> = expected
            .values
            .iter()
            .map(|v| (v.key.as_ref().unwrap().id.clone(), v))
            .collect();
        assert_eq!(merged.values.len(), by_id.len(), "{dimension:?}");
        let mut exact_p = 0;
        for value in &merged.values {
            let id = &value.key.as_ref().unwrap().id;
            let truth = by_id[id];
            assert_eq!(value.cases, truth.cases, "{id}");
            let registry = value.registry_cases.unwrap();
            let true_registry = truth.registry_cases.unwrap().value;
            if registry.precision == pb::Precision::Exact as i32 {
                assert_eq!(registry.value, true_registry, "{id}");
                assert_eq!(value.p_value, truth.p_value, "{id}");
                exact_p += 1;
            } else {
                assert_eq!(registry.precision, pb::Precision::AtLeast as i32, "{id}");
                assert!(registry.value <= true_registry, "{id}");
                assert!(value.p_value.is_nan(), "{id}");
            }
        }
        assert!(exact_p > 0, "{dimension:?}: no value with an exact p-value");
        assert_eq!(merged.subset_cases, expected.subset_cases);
        assert_eq!(merged.registry_cases, expected.registry_cases);
        assert_eq!(merged.tested, expected.tested);
    }

    // Search: every center's count, and a few summaries from each.
    let expected = single.exact_count(Some(seizures.clone())).await.unwrap();
    let answer = network
        .network_search(
            pb::NetworkSearchRequest {
                filter: Some(seizures.clone()),
                per_center: 4,
                route: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.total, exact(expected));
    assert_eq!(answer.hits.len(), 12, "4 from each of three centers");
    let parts: u64 = answer
        .centers
        .iter()
        .map(|c| c.count.as_ref().unwrap().value)
        .sum();
    assert_eq!(parts, expected);
    coordinator.stop().await;
    for (_, server) in centers {
        server.stop().await;
    }
    union.stop().await;
}

/// A peer that answers late, or with an error.
#[derive(Clone)]
struct Faulty {
    delay: Duration,
    error: Option<&'static str>,
}

impl Faulty {
    async fn answer<T: Default>(&self) -> Result<Response<T>, Status> {
        tokio::time::sleep(self.delay).await;
        match self.error {
            Some(message) => Err(Status::internal(message)),
            None => Ok(Response::new(T::default())),
        }
    }
}

#[tonic::async_trait]
impl Network for Faulty {
    async fn network_count(
        &self,
        _request: Request<pb::NetworkCountRequest>,
    ) -> Result<Response<pb::NetworkCountResponse>, Status> {
        self.answer().await
    }

    async fn network_aggregate(
        &self,
        _request: Request<pb::NetworkAggregateRequest>,
    ) -> Result<Response<pb::NetworkAggregateResponse>, Status> {
        self.answer().await
    }

    async fn network_co_occurrence(
        &self,
        _request: Request<pb::NetworkCoOccurrenceRequest>,
    ) -> Result<Response<pb::NetworkCoOccurrenceResponse>, Status> {
        self.answer().await
    }

    async fn network_search(
        &self,
        _request: Request<pb::NetworkSearchRequest>,
    ) -> Result<Response<pb::NetworkSearchResponse>, Status> {
        self.answer().await
    }
}

async fn start_faulty(faulty: Faulty) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(NetworkServer::new(faulty))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

#[tokio::test]
async fn stopped_slow_and_failing_centers_are_named_and_the_answer_is_partial() {
    let principals = principals(Level::Record);
    let flags = principals.flags();
    let flags = as_strs(&flags);
    let healthy = TestServer::start_with(&[flags.clone(), vec!["--center", "a"]].concat()).await;
    import(
        &mut healthy.client_as(principals.token("curator")).await,
        vec![seed_case()],
    )
    .await;
    let stopped = TestServer::start_with(&flags).await;
    let stopped_url = stopped.url();
    stopped.stop().await;
    let slow = start_faulty(Faulty {
        delay: Duration::from_secs(30),
        error: None,
    })
    .await;
    let failing = start_faulty(Faulty {
        delay: Duration::ZERO,
        error: Some("disk on fire"),
    })
    .await;
    let peers = [
        ("a", healthy.url()),
        ("stopped", stopped_url),
        ("slow", slow),
        ("failing", failing),
    ];
    let peer_flags = peer_flags(&peers, principals.token("coordinator"));
    let coordinator_flags = [
        flags.clone(),
        vec!["--center", "coord", "--peer-timeout", "1s"],
        as_strs(&peer_flags),
    ]
    .concat();
    let coordinator = TestServer::start_with(&coordinator_flags).await;
    let mut client = coordinator.client_as(principals.token("admin")).await;
    let started = Instant::now();
    let answer = client
        .network_count(
            pb::NetworkCountRequest::default(),
            Some(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(answer.partial);
    // The healthy center's case is counted; the others' parts are missing, not guessed: the
    // count is a lower bound.
    let at_least_one = Some(pb::Count {
        value: 1,
        precision: pb::Precision::AtLeast.into(),
    });
    assert_eq!(answer.count, at_least_one);
    let fates: BTreeMap<&str, (i32, &str)> = answer
        .centers
        .iter()
        .map(|c| (c.peer.as_str(), (c.status, c.message.as_str())))
        .collect();
    let status = |peer: &str| fates[peer].0;
    assert_eq!(status(""), pb::CenterStatus::Answered as i32, "{fates:?}");
    assert_eq!(status("a"), pb::CenterStatus::Answered as i32, "{fates:?}");
    assert_eq!(
        status("stopped"),
        pb::CenterStatus::Unavailable as i32,
        "{fates:?}"
    );
    assert_eq!(
        status("slow"),
        pb::CenterStatus::TimedOut as i32,
        "{fates:?}"
    );
    assert_eq!(
        status("failing"),
        pb::CenterStatus::Error as i32,
        "{fates:?}"
    );
    assert!(fates["failing"].1.contains("disk on fire"), "{fates:?}");

    // The caller's deadline wins over the peer timeout.
    let started = Instant::now();
    let answer = client
        .network_aggregate(
            pb::NetworkAggregateRequest {
                request: Some(pb::AggregateRequest {
                    group_by: vec![facet(pb::Dimension::Sex, 0, 0)],
                    ..Default::default()
                }),
                route: None,
            },
            Some(Duration::from_millis(600)),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.partial);
    let merged = answer.merged.unwrap();
    assert!(!merged.cells.is_empty());
    for count in merged.cells.iter().map(|c| c.count).chain([merged.total]) {
        assert_eq!(
            count.unwrap().precision,
            pb::Precision::AtLeast as i32,
            "{merged:?}"
        );
    }
    let text = coordinator
        .cli_as(principals.token("admin"), &["count", "--network"])
        .await
        .unwrap();
    assert!(
        text.starts_with("≥1\n") && text.contains("timed out") && text.contains("partial"),
        "{text}"
    );
    let search = client
        .network_search(
            pb::NetworkSearchRequest::default(),
            Some(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert!(search.partial);
    assert_eq!(search.total, at_least_one);
    let cooccur = client
        .network_co_occurrence(
            pb::NetworkCoOccurrenceRequest {
                request: Some(pb::CoOccurrenceRequest {
                    dimension: pb::Dimension::Phenotype.into(),
                    ..Default::default()
                }),
                route: None,
            },
            Some(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert!(cooccur.partial);
    let merged = cooccur.merged.unwrap();
    assert_eq!(merged.subset_cases, at_least_one);
    assert!(!merged.values.is_empty());
    for value in &merged.values {
        assert_eq!(
            value.cases.unwrap().precision,
            pb::Precision::AtLeast as i32
        );
    }
    coordinator.stop().await;
    healthy.stop().await;
}

#[tokio::test]
async fn a_count_level_peer_gives_no_small_exact_count_on_the_wire() {
    let principals = principals(Level::Count);
    let flags = principals.flags();
    let flags = as_strs(&flags);
    let center = TestServer::start_with(&[flags.clone(), vec!["--center", "a"]].concat()).await;
    let records = (0..3)
        .map(|n| {
            let mut record = seed_case();
            record.id = format!("p{n}");
            record
        })
        .collect();
    import(
        &mut center.client_as(principals.token("curator")).await,
        records,
    )
    .await;

    // What the coordinator receives, asked as the coordinator does.
    let mut wire = center.client_as(principals.token("coordinator")).await;
    let withheld = Some(pb::Count {
        value: 5,
        precision: pb::Precision::FewerThan.into(),
    });
    let count = wire
        .network_count(pb::NetworkCountRequest::default(), None)
        .await
        .unwrap();
    assert_eq!(count.count, withheld);
    assert_eq!(count.centers[0].count, withheld);
    let sex = pb::AggregateRequest {
        group_by: vec![facet(pb::Dimension::Sex, 0, 0)],
        top_n: 1000,
        ..Default::default()
    };
    let aggregate = wire
        .network_aggregate(
            pb::NetworkAggregateRequest {
                request: Some(sex.clone()),
                route: None,
            },
            None,
        )
        .await
        .unwrap()
        .merged
        .unwrap();
    assert_eq!(aggregate.min_cell_count, 5);
    for count in aggregate
        .cells
        .iter()
        .map(|c| c.count)
        .chain([aggregate.total])
    {
        assert_ne!(count, exact(3), "{aggregate:?}");
    }
    assert!(!format!("{aggregate:?}{count:?}").contains("value: 3,"));
    // Records and case ids are not the coordinator's to read.
    let error = wire.list_cases(10, "", false).await.unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::PermissionDenied));
    let search = wire
        .network_search(pb::NetworkSearchRequest::default(), None)
        .await
        .unwrap();
    assert!(search.hits.is_empty(), "{search:?}");
    assert_eq!(search.total, withheld);
    let cooccur = wire
        .network_co_occurrence(
            pb::NetworkCoOccurrenceRequest {
                request: Some(pb::CoOccurrenceRequest {
                    dimension: pb::Dimension::Phenotype.into(),
                    top_n: 1000,
                    ..Default::default()
                }),
                route: None,
            },
            None,
        )
        .await
        .unwrap()
        .merged
        .unwrap();
    assert!(cooccur.values.is_empty(), "{cooccur:?}");

    // Through a coordinator, even its administrator sees no exact 3.
    let peer_flags = peer_flags(&[("a", center.url())], principals.token("coordinator"));
    let coordinator_flags = [
        flags.clone(),
        vec!["--center", "coord"],
        as_strs(&peer_flags),
    ]
    .concat();
    let coordinator = TestServer::start_with(&coordinator_flags).await;
    let mut admin = coordinator.client_as(principals.token("admin")).await;
    let merged = admin
        .network_aggregate(
            pb::NetworkAggregateRequest {
                request: Some(sex),
                route: None,
            },
            None,
        )
        .await
        .unwrap()
        .merged
        .unwrap();
    assert!(!format!("{merged:?}").contains("value: 3,"), "{merged:?}");
    let count = admin
        .network_count(pb::NetworkCountRequest::default(), None)
        .await
        .unwrap();
    assert_ne!(count.count, exact(3));
    coordinator.stop().await;
    center.stop().await;
}

#[tokio::test]
async fn a_loop_in_the_peer_graph_ends_with_a_clear_outcome() {
    let x_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let y_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let x_url = format!("http://{}", x_listener.local_addr().unwrap());
    let y_url = format!("http://{}", y_listener.local_addr().unwrap());
    let x_peer = format!("y={y_url}");
    let y_peer = format!("x={x_url}");
    let x = TestServer::start_listening(
        x_listener,
        &["--center", "x", "--peer", &x_peer, "--max-hops", "3"],
    )
    .await;
    let y = TestServer::start_listening(
        y_listener,
        &["--center", "y", "--peer", &y_peer, "--max-hops", "3"],
    )
    .await;
    let mut client = x.client().await;
    let answer = client
        .network_count(pb::NetworkCountRequest::default(), None)
        .await
        .unwrap();
    let fates: Vec<(&str, &str, i32)> = answer
        .centers
        .iter()
        .map(|c| (c.center.as_str(), c.peer.as_str(), c.status))
        .collect();
    assert_eq!(
        fates,
        [
            ("x", "", pb::CenterStatus::Answered as i32),
            ("y", "y", pb::CenterStatus::Answered as i32),
            ("x", "y/x", pb::CenterStatus::Loop as i32),
        ]
    );
    assert!(answer.centers[2].message.contains("x → y"), "{answer:?}");
    // A request that claims to have passed through x already is refused by x.
    let error = client
        .network_count(
            pb::NetworkCountRequest {
                filter: None,
                route: Some(pb::Route {
                    visited: vec!["y".to_owned(), "x".to_owned()],
                    hops_left: 2,
                }),
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(tonic::Code::FailedPrecondition));
    assert!(error.to_string().contains("loop"), "{error}");
    x.stop().await;
    y.stop().await;
}

/// Every count of every center outcome, as text.
fn outcome_counts(
    centers: &[pb::CenterOutcome],
) -> Vec<(String, Option<pb::Count>, Option<pb::Count>)> {
    centers
        .iter()
        .map(|c| (c.peer.clone(), c.cases, c.count))
        .collect()
}

#[tokio::test]
async fn network_outcomes_show_no_count_to_a_boolean_reader_and_no_small_one_to_a_count_reader() {
    // The center grants the coordinator record access, so its parts arrive exact; what the
    // coordinator's own callers see of them is set by their levels, not the peer's.
    let principals = TestPrincipals::new(&[
        ("coordinator", "coord", Role::Peer, Some(Level::Record)),
        ("curator", "hospital", Role::Curator, None),
        ("boolean", "uni", Role::Reader, Some(Level::Boolean)),
        ("counter", "uni", Role::Reader, Some(Level::Count)),
    ]);
    let flags = principals.flags();
    let flags = as_strs(&flags);
    let center = TestServer::start_with(&[flags.clone(), vec!["--center", "a"]].concat()).await;
    let records = (0..3)
        .map(|n| {
            let mut record = seed_case();
            record.id = format!("p{n}");
            record
        })
        .collect();
    import(
        &mut center.client_as(principals.token("curator")).await,
        records,
    )
    .await;
    let peer_flags = peer_flags(&[("a", center.url())], principals.token("coordinator"));
    let coordinator_flags = [
        flags.clone(),
        vec!["--center", "coord"],
        as_strs(&peer_flags),
    ]
    .concat();
    let coordinator = TestServer::start_with(&coordinator_flags).await;
    let female = parse_query("sex:female").unwrap();

    // A boolean-level reader, on a center alone and through the coordinator: fates and
    // whether anything matched, never a count.
    for server in [&center, &coordinator] {
        let mut boolean = server.client_as(principals.token("boolean")).await;
        let count = boolean
            .network_count(
                pb::NetworkCountRequest {
                    filter: Some(female.clone()),
                    route: None,
                },
                None,
            )
            .await
            .unwrap();
        assert!(count.exists && count.count.is_none(), "{count:?}");
        let search = boolean
            .network_search(
                pb::NetworkSearchRequest {
                    filter: Some(female.clone()),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        assert!(search.exists && search.total.is_none() && search.hits.is_empty());
        for centers in [&count.centers, &search.centers] {
            assert!(!centers.is_empty());
            for (peer, cases, part) in outcome_counts(centers) {
                assert_eq!((cases, part), (None, None), "center {peer:?}");
            }
        }
        let text = server
            .cli_as(
                principals.token("boolean"),
                &["count", "--network", "sex:female"],
            )
            .await
            .unwrap();
        assert!(text.starts_with("yes") && !text.contains(" 3 "), "{text}");
    }

    // A count-level reader through the coordinator: the peer's exact 3 is withheld.
    let mut counter = coordinator.client_as(principals.token("counter")).await;
    let count = counter
        .network_count(pb::NetworkCountRequest::default(), None)
        .await
        .unwrap();
    let search = counter
        .network_search(pb::NetworkSearchRequest::default(), None)
        .await
        .unwrap();
    for centers in [&count.centers, &search.centers] {
        let peer = centers.iter().find(|c| c.peer == "a").unwrap();
        let withheld = Some(pb::Count {
            value: 5,
            precision: pb::Precision::FewerThan.into(),
        });
        assert_eq!((peer.cases, peer.count), (withheld, withheld), "{peer:?}");
    }
    coordinator.stop().await;
    center.stop().await;
}
