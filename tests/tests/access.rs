//! Access control end to end: every role against every call (allowed calls work, refused
//! ones fail with the right code and change nothing), what a count-level reader can learn,
//! the audit log, and the secure defaults.

use casereg_client::{Client, ClientError};
use casereg_e2e::access::{STANDARD, TestPrincipals};
use casereg_e2e::{TestServer, seed_case};
use casereg_proto::v1 as pb;
use tokio_stream::StreamExt as _;
use tonic::Code;

/// Every call a client can make, each made once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Create,
    Update,
    Delete,
    Import,
    Get,
    List,
    Search,
    Export,
    Count,
    Aggregate,
    CoOccurrence,
    Info,
    Term,
    Audit,
}

const CALLS: &[Call] = &[
    Call::Create,
    Call::Update,
    Call::Delete,
    Call::Import,
    Call::Get,
    Call::List,
    Call::Search,
    Call::Export,
    Call::Count,
    Call::Aggregate,
    Call::CoOccurrence,
    Call::Info,
    Call::Term,
    Call::Audit,
];

impl Call {
    fn writes(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Delete | Self::Import
        )
    }
}

/// The code `principal` gets for `call` on a case of center-a; `None` when allowed.
fn expected(principal: &str, call: Call) -> Option<Code> {
    let denied = Some(Code::PermissionDenied);
    let level = match principal {
        "admin" | "curator-a" | "curator-b" | "reader-record" => 3,
        "reader-count" | "peer" => 2,
        "reader-boolean" => 1,
        other => panic!("unknown principal {other}"),
    };
    let writer = matches!(principal, "admin" | "curator-a" | "curator-b");
    match call {
        Call::Create | Call::Import if writer => None,
        // curator-b may write, but not center-a's case: the store refuses it.
        Call::Update | Call::Delete if principal == "admin" || principal == "curator-a" => None,
        Call::Create | Call::Import | Call::Update | Call::Delete => denied,
        Call::Get | Call::List | Call::Search | Call::Export if level >= 3 => None,
        Call::Aggregate | Call::CoOccurrence if level >= 2 => None,
        Call::Count | Call::Info | Call::Term => None,
        Call::Audit if principal == "admin" => None,
        _ => denied,
    }
}

fn record(id: &str) -> pb::Phenopacket {
    let mut record = seed_case();
    record.id = id.to_owned();
    record
}

fn female() -> pb::Filter {
    casereg_client::query::parse_query("sex:female").expect("query")
}

/// A case to act on: an active case of center-a at version 1, and its record.
struct Victim {
    id: String,
    record: pb::Phenopacket,
}

/// Makes `call` as `client` on `victim`; `fresh` is a phenopacket id no record has yet.
async fn make(
    client: &mut Client,
    call: Call,
    victim: &Victim,
    fresh: &str,
) -> Result<(), ClientError> {
    let victim_id = victim.id.as_str();
    match call {
        Call::Create => client.create_case(record(fresh)).await.map(drop),
        Call::Update => {
            let mut changed = victim.record.clone();
            changed.subject.as_mut().expect("subject").id = "someone else".to_owned();
            client.update_case(victim_id, 1, changed).await.map(drop)
        }
        Call::Delete => client.delete_case(victim_id, 1, "test").await.map(drop),
        Call::Import => {
            let request = pb::ImportCasesRequest {
                options: None,
                records: vec![pb::ImportRecord {
                    source: "test:1".to_owned(),
                    phenopacket: Some(record(fresh)),
                }],
            };
            let response = client.import_cases(tokio_stream::iter([request])).await?;
            assert_eq!(response.created, 1, "{response:?}");
            Ok(())
        }
        Call::Get => client.get_case(victim_id, 0, false).await.map(drop),
        Call::List => client.list_cases(10, "", false).await.map(drop),
        Call::Search => client.search_cases(None, 10, "", false).await.map(drop),
        Call::Export => {
            let mut stream = client
                .export_cases(pb::ExportCasesRequest::default())
                .await?;
            while let Some(message) = stream.next().await {
                message?;
            }
            Ok(())
        }
        Call::Count => client.count_cases(Some(female())).await.map(drop),
        Call::Aggregate => client
            .aggregate(pb::AggregateRequest {
                filter: None,
                group_by: vec![pb::GroupBy {
                    dimension: pb::Dimension::Sex.into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .map(drop),
        Call::CoOccurrence => client
            .cooccurrence(pb::CoOccurrenceRequest {
                filter: Some(female()),
                dimension: pb::Dimension::Phenotype.into(),
                top_n: 5,
                min_count: 0,
            })
            .await
            .map(drop),
        Call::Info => client.registry_info().await.map(drop),
        Call::Term => client.get_term("HP:0001250").await.map(drop),
        Call::Audit => client.audit_entries(0, 10).await.map(drop),
    }
}

/// A fresh active case of center-a.
async fn new_victim(curator: &mut Client, n: usize) -> Victim {
    let record = record(&format!("victim-{n}"));
    let case = curator
        .create_case(record.clone())
        .await
        .expect("victim")
        .case
        .expect("case");
    Victim {
        id: case.case_id,
        record,
    }
}

/// What the store holds, read by the administrator: the case count and the victim's
/// version and status.
async fn state(admin: &mut Client, victim: &str) -> (u64, u64, i32) {
    let count = admin.exact_count(None).await.expect("count");
    let case = admin.get_case(victim, 0, true).await.expect("victim");
    (count, case.version, case.status)
}

#[tokio::test]
async fn every_role_against_every_call() {
    let principals = TestPrincipals::standard();
    let server = TestServer::start_secured(&principals, &[]).await;
    let mut admin = server.client_as(principals.token("admin")).await;
    let mut curator_a = server.client_as(principals.token("curator-a")).await;
    let mut n = 0;
    for &(name, ..) in STANDARD {
        let mut client = server.client_as(principals.token(name)).await;
        for &call in CALLS {
            n += 1;
            let victim = new_victim(&mut curator_a, n).await;
            let before = state(&mut admin, &victim.id).await;
            let result = make(&mut client, call, &victim, &format!("fresh-{n}")).await;
            let after = state(&mut admin, &victim.id).await;
            match (expected(name, call), result) {
                (None, Ok(())) => {
                    if call.writes() {
                        assert_ne!(before, after, "{name} {call:?} changed nothing");
                    }
                }
                (Some(code), Err(e)) => {
                    assert_eq!(e.code(), Some(code), "{name} {call:?}: {e}");
                    assert_eq!(
                        before, after,
                        "{name} {call:?} was refused but changed the store"
                    );
                }
                (None, Err(e)) => panic!("{name} {call:?} should be allowed: {e}"),
                (Some(code), Ok(())) => panic!("{name} {call:?} should fail with {code:?}"),
            }
        }
    }

    // Without a token, or with a wrong one, nothing but the health check answers.
    let mut anonymous = server.client().await;
    let mut forged = server.client_as("crg_not-a-token-of-this-server").await;
    for client in [&mut anonymous, &mut forged] {
        assert_eq!(
            client.health().await.expect("health"),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
        for &call in CALLS {
            n += 1;
            let victim = new_victim(&mut curator_a, n).await;
            let before = state(&mut admin, &victim.id).await;
            let error = make(client, call, &victim, &format!("fresh-{n}"))
                .await
                .expect_err("no credentials");
            assert_eq!(
                error.code(),
                Some(Code::Unauthenticated),
                "{call:?}: {error}"
            );
            assert_eq!(before, state(&mut admin, &victim.id).await);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn curators_write_only_their_own_centers_cases() {
    let principals = TestPrincipals::standard();
    let server = TestServer::start_secured(&principals, &[]).await;
    let mut a = server.client_as(principals.token("curator-a")).await;
    let mut b = server.client_as(principals.token("curator-b")).await;
    // The same record from two centers is two cases, each owned by its center.
    let case_a = a.create_case(seed_case()).await.unwrap().case.unwrap();
    let case_b = b.create_case(seed_case()).await.unwrap().case.unwrap();
    assert_ne!(case_a.case_id, case_b.case_id);
    assert_eq!(
        (case_a.center_id.as_str(), case_b.center_id.as_str()),
        ("center-a", "center-b")
    );
    let error = b
        .delete_case(&case_a.case_id, 0, "not mine")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::PermissionDenied), "{error}");
    assert!(error.to_string().contains("center-a"), "{error}");
    assert_eq!(
        a.get_case(&case_a.case_id, 0, false).await.unwrap().version,
        1
    );
    // The administrator may correct any center's case.
    let mut admin = server.client_as(principals.token("admin")).await;
    admin
        .delete_case(&case_b.case_id, 1, "entered twice")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_count_level_reader_learns_no_record_no_case_id_and_no_small_count() {
    let principals = TestPrincipals::standard();
    let server = TestServer::start_secured(&principals, &[]).await;
    let mut curator = server.client_as(principals.token("curator-a")).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(casereg_e2e::create(&mut curator, record(&format!("p{n}"))).await);
    }
    let victim = Victim {
        id: ids[0].clone(),
        record: record("p0"),
    };
    let mut reader = server.client_as(principals.token("reader-count")).await;

    // Every call that returns records or case ids is refused before it runs, whatever the id.
    for id in [ids[0].as_str(), "0000000000000000"] {
        let error = reader.get_case(id, 0, false).await.unwrap_err();
        assert_eq!(error.code(), Some(Code::PermissionDenied), "{error}");
    }
    let mut answers: Vec<String> = Vec::new();
    for call in [
        Call::List,
        Call::Search,
        Call::Export,
        Call::Create,
        Call::Import,
        Call::Audit,
    ] {
        let error = make(&mut reader, call, &victim, "x").await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(Code::PermissionDenied),
            "{call:?}: {error}"
        );
        answers.push(error.to_string());
    }

    // Counts: 3 matching cases read as "fewer than 5", never 3.
    let withheld = pb::Count {
        value: 5,
        precision: pb::Precision::FewerThan.into(),
    };
    let count = reader.count_cases(None).await.unwrap();
    assert_eq!(count.count, Some(withheld));
    assert!(count.exists);
    let info = reader.registry_info().await.unwrap();
    assert_eq!((info.active_cases, info.retracted_cases), (0, 0));
    assert_eq!(info.cases, Some(withheld));
    assert_eq!(
        info.caller.as_ref().unwrap().level,
        pb::AccessLevel::Count as i32
    );
    let facet = reader
        .aggregate(pb::AggregateRequest {
            group_by: vec![pb::GroupBy {
                dimension: pb::Dimension::Phenotype.into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let cooccur = reader
        .cooccurrence(pb::CoOccurrenceRequest {
            filter: None,
            dimension: pb::Dimension::Phenotype.into(),
            top_n: 100,
            min_count: 0,
        })
        .await
        .unwrap();
    assert!(cooccur.values.is_empty(), "{cooccur:?}");
    answers.extend([
        format!("{count:?}"),
        format!("{info:?}"),
        format!("{facet:?}"),
        format!("{cooccur:?}"),
    ]);
    for cell in &facet.cells {
        assert_ne!(
            cell.count.unwrap().precision,
            pb::Precision::Exact as i32,
            "{cell:?}"
        );
    }
    for answer in &answers {
        for id in &ids {
            assert!(!answer.contains(id.as_str()), "case id {id} in {answer}");
        }
        assert!(!answer.contains("value: 3,"), "an exact 3 in {answer}");
    }

    // A boolean-level reader learns whether anything matches, and nothing else.
    let mut boolean = server.client_as(principals.token("reader-boolean")).await;
    let count = boolean.count_cases(None).await.unwrap();
    assert_eq!((count.count, count.exists), (None, true));
    let info = boolean.registry_info().await.unwrap();
    assert_eq!((info.active_cases, info.cases), (0, None));
    let error = make(&mut boolean, Call::Aggregate, &victim, "x")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::PermissionDenied));
    let text = server
        .cli_as(principals.token("reader-boolean"), &["count", "sex:female"])
        .await
        .unwrap();
    assert_eq!(text.trim(), "yes");
    server.stop().await;
}

#[tokio::test]
async fn the_audit_log_records_writes_and_refusals_and_survives_a_restart() {
    let principals = TestPrincipals::standard();
    let dir = tempfile::tempdir().unwrap();
    let flags = principals.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = TestServer::start_in(dir.path(), &flags).await;
    let mut a = server.client_as(principals.token("curator-a")).await;
    let mut b = server.client_as(principals.token("curator-b")).await;
    let mut reader = server.client_as(principals.token("reader-count")).await;
    let created = a.create_case(seed_case()).await.unwrap().case.unwrap();
    let id = created.case_id.clone();
    let mut changed = seed_case();
    changed.subject.as_mut().unwrap().id = "patient 2".to_owned();
    a.update_case(&id, 1, changed).await.unwrap();
    b.delete_case(&id, 0, "not mine").await.unwrap_err();
    reader.create_case(record("r1")).await.unwrap_err();
    server.client().await.count_cases(None).await.unwrap_err();
    a.delete_case(&id, 2, "entered twice").await.unwrap();

    let mut admin = server.client_as(principals.token("admin")).await;
    let log = admin.audit_entries(0, 1000).await.unwrap().entries;
    let summary: Vec<(u64, &str, &str, &str, u64, i32)> = log
        .iter()
        .map(|e| {
            (
                e.sequence,
                e.principal.as_str(),
                e.call.rsplit('/').next().unwrap(),
                e.case_id.as_str(),
                e.version,
                e.outcome,
            )
        })
        .collect();
    let applied = pb::AuditOutcome::Applied as i32;
    let denied = pb::AuditOutcome::Denied as i32;
    assert_eq!(
        summary,
        vec![
            (1, "curator-a", "CreateCase", id.as_str(), 1, applied),
            (2, "curator-a", "UpdateCase", id.as_str(), 2, applied),
            (3, "curator-b", "DeleteCase", id.as_str(), 0, denied),
            (4, "reader-count", "CreateCase", "", 0, denied),
            (5, "", "CountCases", "", 0, denied),
            (6, "curator-a", "DeleteCase", id.as_str(), 3, applied),
        ]
    );
    assert_eq!(log[5].detail, "retracted: entered twice");
    assert!(log.iter().all(|e| e.time.is_some()));
    // Tokens never reach the log.
    for (name, ..) in STANDARD {
        let token = principals.token(name);
        assert!(!format!("{log:?}").contains(token));
    }
    // Only administrators read it.
    assert_eq!(
        a.audit_entries(0, 10).await.unwrap_err().code(),
        Some(Code::PermissionDenied)
    );
    let text = server
        .cli_as(principals.token("admin"), &["audit"])
        .await
        .unwrap();
    assert!(
        text.contains("retracted: entered twice") && text.contains("denied"),
        "{text}"
    );
    server.stop().await;

    // After a restart the same entries are there (plus the refusal just made).
    let server = TestServer::start_in(dir.path(), &flags).await;
    let mut admin = server.client_as(principals.token("admin")).await;
    let again = admin.audit_entries(0, 1000).await.unwrap().entries;
    assert_eq!(&again[..log.len()], &log[..]);
    assert_eq!(again.len(), log.len() + 1);
    server.stop().await;
}

#[tokio::test]
async fn without_principals_the_server_is_loopback_only() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["casereg-server"];
        argv.extend_from_slice(args);
        <casereg_server::Config as clap::Parser>::parse_from(argv)
    };
    let refused = |config| {
        casereg_server::check_listen_address(&config)
            .unwrap_err()
            .to_string()
    };
    let message = refused(parse(&["--listen", "0.0.0.0:50051"]));
    assert!(message.contains("without principals"), "{message}");
    let message = refused(parse(&["--listen", "0.0.0.0:50051", "--insecure"]));
    assert!(message.contains("without principals"), "{message}");
    let message = refused(parse(&[
        "--listen",
        "0.0.0.0:50051",
        "--principals",
        "p.toml",
    ]));
    assert!(message.contains("without TLS"), "{message}");
    casereg_server::check_listen_address(&parse(&[
        "--listen",
        "0.0.0.0:50051",
        "--principals",
        "p.toml",
        "--insecure",
    ]))
    .unwrap();
    casereg_server::check_listen_address(&parse(&["--listen", "127.0.0.1:50051"])).unwrap();
    casereg_server::check_listen_address(&parse(&["--listen", "[::1]:50051"])).unwrap();

    // On loopback without principals, every caller is the local administrator.
    let server = TestServer::start().await;
    let info = server.client().await.registry_info().await.unwrap();
    let caller = info.caller.unwrap();
    assert_eq!(
        (caller.principal.as_str(), caller.role.as_str()),
        ("local", "admin")
    );
    assert_eq!(caller.level, pb::AccessLevel::Record as i32);
    server.stop().await;
}
