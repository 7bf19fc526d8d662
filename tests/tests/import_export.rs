//! Bulk import and export: per-record outcomes, idempotence, policies, bad lines, round trips.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use casereg_cli::CliError;
use casereg_client::Client;
use casereg_e2e::{TestServer, read_jsonl_gz, repo_root, sample_records, seed_case};
use casereg_proto::v1 as pb;
use pb::import_outcome::Kind;

async fn run(server: &TestServer, args: &[&str]) -> Result<String, CliError> {
    server.cli(args).await
}

fn read_report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sample_path() -> String {
    repo_root()
        .join("tests/data/phenopacket-store-sample.jsonl.gz")
        .display()
        .to_string()
}

/// Imports `records` through the client library in messages of `per_message`.
async fn import(
    client: &mut Client,
    records: Vec<pb::Phenopacket>,
    policy: pb::ChangedRecordPolicy,
) -> pb::ImportCasesResponse {
    let mut messages = Vec::new();
    let mut options = Some(pb::ImportOptions {
        on_changed: policy.into(),
        report_all: true,
    });
    for (i, chunk) in records.chunks(300).enumerate() {
        messages.push(pb::ImportCasesRequest {
            options: options.take(),
            records: chunk
                .iter()
                .enumerate()
                .map(|(j, r)| pb::ImportRecord {
                    source: format!("test:{}", i * 300 + j + 1),
                    phenopacket: Some(r.clone()),
                })
                .collect(),
        });
    }
    client
        .import_cases(tokio_stream::iter(messages))
        .await
        .unwrap()
}

/// Exports everything and parses it back.
async fn export_all(server: &TestServer, dir: &Path) -> Vec<pb::Phenopacket> {
    let path = dir.join("export.jsonl.gz");
    run(server, &["export", "-o", &path.display().to_string()])
        .await
        .unwrap();
    read_jsonl_gz(&path)
        .into_iter()
        .map(|(_, _, r)| r)
        .collect()
}

#[tokio::test]
async fn sample_imports_reimports_unchanged_and_exports_equal() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let import = [
        "import".to_owned(),
        sample_path(),
        "--report".to_owned(),
        report.display().to_string(),
    ];
    let out = server.cli(&import).await.unwrap();
    assert!(out.contains("created"), "{out}");
    let first: serde_json::Value = read_report(&report);
    assert_eq!(first["read"], 257);
    assert_eq!(first["created"], 257);
    assert_eq!(first["rejected"], 0);

    server.cli(&import).await.unwrap();
    let second: serde_json::Value = read_report(&report);
    assert_eq!(
        (second["created"].as_u64(), second["unchanged"].as_u64()),
        (Some(0), Some(257))
    );

    let mut expected: Vec<pb::Phenopacket> =
        sample_records().into_iter().map(|(_, _, r)| r).collect();
    let mut exported = export_all(&server, dir.path()).await;
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    exported.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(exported.len(), expected.len());
    assert!(
        exported == expected,
        "exported records differ from the imported ones"
    );
}

#[tokio::test]
async fn bad_lines_are_rejected_one_by_one_and_the_rest_are_stored() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let good: Vec<String> = sample_records()
        .into_iter()
        .take(3)
        .map(|(_, line, _)| line)
        .collect();
    let mut bad_curie = seed_case();
    bad_curie.id = "bad-curie".to_owned();
    bad_curie.phenotypic_features[0].r#type.as_mut().unwrap().id = "HP:25520".to_owned();
    let mut oversized = seed_case();
    oversized.id = "oversized".to_owned();
    oversized.phenotypic_features[1].description = "x".repeat(200_000);
    let lines = [
        good[0].clone(),
        "{\"id\": \"broken\", \"subject\": ".to_owned(),
        good[1].clone(),
        r#"{"id": "unknown-field", "metaData": {}, "favouriteColour": "blue"}"#.to_owned(),
        serde_json::to_string(&bad_curie).unwrap(),
        String::new(),
        serde_json::to_string(&oversized).unwrap(),
        good[2].clone(),
    ];
    let file = dir.path().join("mixed.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let report = dir.path().join("report.json");
    let err = run(
        &server,
        &[
            "import",
            &file.display().to_string(),
            "--report",
            &report.display().to_string(),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 3, "{}", err.report());

    let report: serde_json::Value = read_report(&report);
    assert_eq!(report["created"], 3);
    assert_eq!(report["rejected"], 4);
    let rejected: Vec<(String, String)> = report["rejectedRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap().to_owned(),
                r["errors"].to_string(),
            )
        })
        .collect();
    let name = file.display().to_string();
    let find = |line: usize| {
        rejected
            .iter()
            .find(|(source, _)| *source == format!("{name}:{line}"))
            .map(|(_, errors)| errors.clone())
            .unwrap_or_else(|| panic!("line {line} not reported in {rejected:#?}"))
    };
    assert!(
        find(2).contains("EOF") || find(2).contains("end of"),
        "{}",
        find(2)
    );
    assert!(find(4).contains("favouriteColour"), "{}", find(4));
    assert!(
        find(5).contains("phenopacket.phenotypicFeatures[0].type.id"),
        "{}",
        find(5)
    );
    assert!(
        find(7).contains("phenopacket.phenotypicFeatures[1].description"),
        "{}",
        find(7)
    );
    assert!(find(7).contains("limit is 131072 bytes"), "{}", find(7));

    let info = server.client().await.registry_info().await.unwrap();
    assert_eq!(info.active_cases, 3);
}

#[tokio::test]
async fn changed_records_follow_the_policy() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let original = seed_case();
    let mut changed = seed_case();
    changed.phenotypic_features.pop();
    let created = import(
        &mut client,
        vec![original.clone()],
        pb::ChangedRecordPolicy::Unspecified,
    )
    .await;
    assert_eq!(created.created, 1);

    let skipped = import(
        &mut client,
        vec![changed.clone()],
        pb::ChangedRecordPolicy::Unspecified,
    )
    .await;
    assert_eq!(
        (skipped.skipped, skipped.outcomes[0].kind),
        (1, Kind::Skipped as i32)
    );
    let rejected = import(
        &mut client,
        vec![changed.clone()],
        pb::ChangedRecordPolicy::Reject,
    )
    .await;
    assert_eq!(
        (rejected.rejected, rejected.outcomes[0].kind),
        (1, Kind::Rejected as i32)
    );
    let case_id = rejected.outcomes[0].case_id.clone();
    assert_eq!(
        client
            .get_case(&case_id, 0, false)
            .await
            .unwrap()
            .phenopacket,
        Some(original)
    );

    let replaced = import(
        &mut client,
        vec![changed.clone()],
        pb::ChangedRecordPolicy::Replace,
    )
    .await;
    assert_eq!((replaced.replaced, replaced.outcomes[0].version), (1, 2));
    assert_eq!(
        client
            .get_case(&case_id, 0, false)
            .await
            .unwrap()
            .phenopacket,
        Some(changed)
    );
    assert_eq!(replaced.outcomes[0].source, "test:1");
}

/// Batches are checked side by side but commit in stream order: a record sent twice, first
/// in a full batch and again in a short last one (checked long before the first), ends as
/// its later form.
#[tokio::test]
async fn a_record_sent_twice_ends_as_its_later_form() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let batch = casereg_core::limits::IMPORT_BATCH_RECORDS;
    let mut records: Vec<pb::Phenopacket> = (0..2 * batch + 20)
        .map(|i| {
            let mut record = seed_case();
            record.id = format!("filler-{i}");
            record
        })
        .collect();
    let earlier = seed_case();
    let mut later = seed_case();
    later.phenotypic_features.pop();
    records[3] = earlier;
    let last = records.len() - 1;
    records[last] = later.clone();
    let response = import(&mut client, records, pb::ChangedRecordPolicy::Replace).await;
    assert_eq!((response.created, response.replaced), (last as u64, 1));
    let kind_and_version = |index: usize| {
        let outcome = response
            .outcomes
            .iter()
            .find(|o| o.index == index as u64)
            .unwrap();
        (outcome.kind, outcome.version)
    };
    assert_eq!(kind_and_version(3), (Kind::Created as i32, 1));
    assert_eq!(kind_and_version(last), (Kind::Replaced as i32, 2));
    let case_id = &response.outcomes[last].case_id;
    assert_eq!(
        client
            .get_case(case_id, 0, false)
            .await
            .unwrap()
            .phenopacket,
        Some(later)
    );
}

#[tokio::test]
async fn directories_and_single_documents_are_read() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("nested");
    std::fs::create_dir(&nested).unwrap();
    std::fs::copy(
        repo_root().join("tests/fixtures/seed-calcinosis-cutis-sjogren.json"),
        dir.path().join("seed.json"),
    )
    .unwrap();
    std::fs::copy(
        repo_root().join("tests/fixtures/phenopacket-schema-covid19.json"),
        nested.join("covid.json"),
    )
    .unwrap();
    std::fs::write(nested.join("notes.txt"), "not a phenopacket").unwrap();
    let out = run(
        &server,
        &[
            "--format",
            "json",
            "import",
            &dir.path().display().to_string(),
        ],
    )
    .await
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["read"].as_u64(), report["created"].as_u64()),
        (Some(2), Some(2))
    );
    let err = run(
        &server,
        &["import", &nested.join("notes.txt").display().to_string()],
    )
    .await
    .unwrap_err();
    assert!(err.report().contains("notes.txt"), "{}", err.report());
}

#[tokio::test]
async fn stream_limits_are_enforced() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let record = pb::ImportRecord {
        source: String::new(),
        phenopacket: Some(seed_case()),
    };
    let too_many = pb::ImportCasesRequest {
        options: None,
        records: vec![record.clone(); 1001],
    };
    let err = client
        .import_cases(tokio_stream::iter(vec![too_many]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, casereg_client::ClientError::InvalidArgument { violations, .. } if violations[0].field == "records"),
        "{err}"
    );

    let late_options = vec![
        pb::ImportCasesRequest {
            options: None,
            records: vec![],
        },
        pb::ImportCasesRequest {
            options: Some(pb::ImportOptions::default()),
            records: vec![record],
        },
    ];
    let err = client
        .import_cases(tokio_stream::iter(late_options))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, casereg_client::ClientError::InvalidArgument { violations, .. } if violations[0].field == "options"),
        "{err}"
    );
    assert_eq!(client.registry_info().await.unwrap().active_cases, 0);
}

#[tokio::test]
async fn export_filters_by_id_and_status() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let records: Vec<pb::Phenopacket> = sample_records()
        .into_iter()
        .take(5)
        .map(|(_, _, r)| r)
        .collect();
    let response = import(
        &mut client,
        records.clone(),
        pb::ChangedRecordPolicy::Unspecified,
    )
    .await;
    let ids: Vec<String> = response
        .outcomes
        .iter()
        .map(|o| o.case_id.clone())
        .collect();
    client.delete_case(&ids[0], 0, "test").await.unwrap();

    let out = run(&server, &["export", "--id", &ids[2], "--id", &ids[1]])
        .await
        .unwrap();
    let exported: Vec<pb::Phenopacket> = out
        .lines()
        .map(|l| casereg_client::json::parse_phenopacket(l, "export").unwrap())
        .collect();
    assert_eq!(exported, vec![records[2].clone(), records[1].clone()]);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(export_all(&server, dir.path()).await.len(), 4);
    let all = run(&server, &["export", "--include-retracted"])
        .await
        .unwrap();
    assert_eq!(all.lines().count(), 5);
    let bad = run(&server, &["export", "--id", "nope"]).await.unwrap_err();
    assert!(bad.report().contains("case_ids[0]"), "{}", bad.report());
}

/// A record's map fields (a file's attributes) come back from JSON in a fresh order each
/// time they are read; the stored encoding must not depend on it, or an unchanged record
/// would read as changed.
#[tokio::test]
async fn records_with_map_fields_reimport_unchanged() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let attributes: serde_json::Map<String, serde_json::Value> = (0..16)
        .map(|i| (format!("attribute{i}"), format!("value {i}").into()))
        .collect();
    let read = || {
        let mut record = serde_json::to_value(seed_case()).unwrap();
        record["files"] = serde_json::json!([{
            "uri": "file:///data/case1.vcf.gz",
            "individualToFileIdentifiers": {"patient-1": "P1", "patient-2": "P2", "sample-3": "S3"},
            "fileAttributes": attributes,
        }]);
        serde_json::from_value::<pb::Phenopacket>(record).unwrap()
    };
    let first = import(&mut client, vec![read()], pb::ChangedRecordPolicy::Reject).await;
    assert_eq!(first.created, 1, "{first:?}");
    for _ in 0..3 {
        let again = import(&mut client, vec![read()], pb::ChangedRecordPolicy::Reject).await;
        assert_eq!(again.unchanged, 1, "{again:?}");
    }
}

/// Sends `records` as one `ImportCases` message with each phenopacket's bytes as given
/// (`None`: the field not set), as a client with another protobuf library might.
async fn import_encoded(
    server: &TestServer,
    records: Vec<Option<Vec<u8>>>,
    policy: pb::ChangedRecordPolicy,
) -> pb::ImportCasesResponse {
    use casereg_proto::zero_copy;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let request = zero_copy::ImportCasesRequest {
        options: Some(pb::ImportOptions {
            on_changed: policy.into(),
            report_all: true,
        }),
        records: records
            .into_iter()
            .enumerate()
            .map(|(i, phenopacket)| zero_copy::ImportRecord {
                source: format!("raw:{}", i + 1),
                phenopacket: phenopacket.map(Into::into),
            })
            .collect(),
    };
    let codec =
        tonic_prost::ProstCodec::<zero_copy::ImportCasesRequest, pb::ImportCasesResponse>::default(
        );
    grpc.client_streaming(
        tonic::Request::new(tokio_stream::iter([request])),
        tonic::codegen::http::uri::PathAndQuery::from_static(
            "/casereg.v1.CaseRegistry/ImportCases",
        ),
        codec,
    )
    .await
    .unwrap()
    .into_inner()
}

/// A record in an encoding other than the one prost writes (fields out of order, a field
/// the contract does not have) is stored as prost writes it: the same record in either
/// encoding is then unchanged.
#[tokio::test]
async fn records_in_another_encoding_are_stored_in_the_canonical_one() {
    use prost::Message as _;
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let record = seed_case();
    let meta_only = pb::Phenopacket {
        meta_data: record.meta_data.clone(),
        ..Default::default()
    };
    let rest = pb::Phenopacket {
        meta_data: None,
        ..record.clone()
    };
    // Messages concatenated merge: `metaData` (field 11) first, then the rest, then an
    // unknown field 99.
    let other = [
        meta_only.encode_to_vec(),
        rest.encode_to_vec(),
        vec![0x98, 0x06, 0x01],
    ]
    .concat();
    assert_eq!(pb::Phenopacket::decode(other.as_slice()).unwrap(), record);
    assert_ne!(other, record.encode_to_vec());

    let first = import_encoded(
        &server,
        vec![Some(other.clone())],
        pb::ChangedRecordPolicy::Reject,
    )
    .await;
    assert_eq!(first.created, 1, "{first:?}");
    let again = import(
        &mut client,
        vec![record.clone()],
        pb::ChangedRecordPolicy::Reject,
    )
    .await;
    assert_eq!(again.unchanged, 1, "{again:?}");
    let other_again =
        import_encoded(&server, vec![Some(other)], pb::ChangedRecordPolicy::Reject).await;
    assert_eq!(other_again.unchanged, 1, "{other_again:?}");
    let case_id = &first.outcomes[0].case_id;
    let stored = client.get_case(case_id, 0, false).await.unwrap();
    assert_eq!(stored.phenopacket, Some(record));
}

/// Bytes that are not a phenopacket at all fail their own record only, with its id when
/// it can be read.
#[tokio::test]
async fn unreadable_record_bytes_are_rejected_one_by_one() {
    use prost::Message as _;
    let server = TestServer::start().await;
    let mut second = seed_case();
    second.id = "second".to_owned();
    // The id (field 1) and then a string whose length runs past the end.
    let truncated = [
        &pb::Phenopacket {
            id: "broken".to_owned(),
            ..Default::default()
        }
        .encode_to_vec()[..],
        &[0x3a, 0x7f, b'x'],
    ]
    .concat();
    let response = import_encoded(
        &server,
        vec![
            Some(seed_case().encode_to_vec()),
            Some(truncated),
            None,
            Some(second.encode_to_vec()),
        ],
        pb::ChangedRecordPolicy::Reject,
    )
    .await;
    assert_eq!(
        (response.created, response.rejected),
        (2, 2),
        "{response:?}"
    );
    let outcome = |i: usize| &response.outcomes[i];
    assert_eq!(outcome(1).kind, Kind::Rejected as i32);
    assert_eq!(outcome(1).errors[0].field, "phenopacket");
    assert!(
        outcome(1).errors[0]
            .description
            .starts_with("is not a readable casereg.v1.Phenopacket encoding"),
        "{:?}",
        outcome(1).errors
    );
    assert_eq!(outcome(2).errors[0].field, "phenopacket");
    assert_eq!(outcome(2).errors[0].description, "is required");
    assert_eq!(outcome(3).kind, Kind::Created as i32);
    assert_eq!(outcome(3).phenopacket_id, "second");
}
