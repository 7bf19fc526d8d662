//! Bad input: the right code, the field path, and no change to stored data.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use casereg_client::{Client, ClientError};
use casereg_core::limits::{MAX_ID_BYTES, MAX_PAGE_SIZE, MAX_TEXT_BYTES};
use casereg_e2e::{TestServer, create, seed_case};
use casereg_proto::v1 as pb;
use tonic::Code;

/// Everything a client can see of the store: every case (retracted too) at every version.
async fn snapshot(client: &mut Client) -> Vec<pb::Case> {
    let mut cases = Vec::new();
    let listing = client.list_cases(MAX_PAGE_SIZE, "", true).await.unwrap();
    for summary in listing.cases {
        for version in 1..=summary.version {
            cases.push(
                client
                    .get_case(&summary.case_id, version, true)
                    .await
                    .unwrap(),
            );
        }
    }
    cases
}

/// A server holding the seed case (version 2 after one correction).
async fn server_with_seed() -> (TestServer, Client, String) {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let id = create(&mut client, seed_case()).await;
    let mut corrected = seed_case();
    corrected.phenotypic_features[0]
        .description
        .push_str(" (corrected)");
    client.update_case(&id, 1, corrected).await.unwrap();
    (server, client, id)
}

fn violations(err: ClientError) -> Vec<(String, String)> {
    match err {
        ClientError::InvalidArgument { violations, .. } => violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect(),
        other => panic!("expected INVALID_ARGUMENT, got {other}"),
    }
}

fn assert_field(violations: &[(String, String)], field: &str, words: &str) {
    assert!(
        violations
            .iter()
            .any(|(f, d)| f == field && d.contains(words)),
        "no violation of {field} mentioning {words:?} in {violations:#?}"
    );
}

#[tokio::test]
async fn malformed_curie_names_its_path_on_create_and_update() {
    let (_server, mut client, id) = server_with_seed().await;
    let before = snapshot(&mut client).await;
    let mut record = seed_case();
    record.id = "another-record".to_owned();
    record.phenotypic_features[3].r#type.as_mut().unwrap().id = "HP0000217".to_owned();
    record.diseases[0].term.as_mut().unwrap().id = "OMIM 270150".to_owned();
    let found = violations(client.create_case(record.clone()).await.unwrap_err());
    assert_field(
        &found,
        "phenopacket.phenotypicFeatures[3].type.id",
        "not a CURIE",
    );
    assert_field(&found, "phenopacket.diseases[0].term.id", "not a CURIE");

    let mut update = seed_case();
    update.phenotypic_features[0].r#type.as_mut().unwrap().id = "HP:12".to_owned();
    let found = violations(client.update_case(&id, 2, update).await.unwrap_err());
    assert_field(
        &found,
        "phenopacket.phenotypicFeatures[0].type.id",
        "7 digits",
    );
    assert_eq!(snapshot(&mut client).await, before);
}

#[tokio::test]
async fn missing_required_fields_are_named() {
    let (_server, mut client, _id) = server_with_seed().await;
    let before = snapshot(&mut client).await;
    let mut record = seed_case();
    record.id = String::new();
    record.meta_data = None;
    record.phenotypic_features[1].r#type = None;
    record.measurements[0].assay = None;
    if let Some(pb::medical_action::Action::Treatment(t)) = &mut record.medical_actions[0].action {
        t.agent = None;
    }
    let found = violations(client.create_case(record).await.unwrap_err());
    assert_field(&found, "phenopacket.id", "required");
    assert_field(&found, "phenopacket.metaData", "required");
    assert_field(&found, "phenopacket.phenotypicFeatures[1].type", "required");
    assert_field(&found, "phenopacket.measurements[0].assay", "required");
    assert_field(
        &found,
        "phenopacket.medicalActions[0].treatment.agent",
        "required",
    );

    let mut no_class_id = seed_case();
    no_class_id.id = "x".to_owned();
    no_class_id.diseases[0].term.as_mut().unwrap().id = String::new();
    let found = violations(client.create_case(no_class_id).await.unwrap_err());
    assert_field(&found, "phenopacket.diseases[0].term.id", "required");

    let found = violations(
        client
            .update_case(&_id, 2, pb::Phenopacket::default())
            .await
            .unwrap_err(),
    );
    assert_field(&found, "phenopacket.id", "required");
    assert_eq!(snapshot(&mut client).await, before);
}

#[tokio::test]
async fn oversized_strings_are_rejected_at_and_past_the_limit() {
    let (_server, mut client, _id) = server_with_seed().await;
    let before = snapshot(&mut client).await;

    let mut record = seed_case();
    record.id = "long-description".to_owned();
    record.phenotypic_features[4].description = "x".repeat(MAX_TEXT_BYTES + 1);
    let found = violations(client.create_case(record.clone()).await.unwrap_err());
    assert_field(
        &found,
        "phenopacket.phenotypicFeatures[4].description",
        &format!("limit is {MAX_TEXT_BYTES} bytes"),
    );

    let mut id_record = seed_case();
    id_record.id = "i".repeat(MAX_ID_BYTES + 1);
    let found = violations(client.create_case(id_record).await.unwrap_err());
    assert_field(
        &found,
        "phenopacket.id",
        &format!("limit is {MAX_ID_BYTES} bytes"),
    );
    assert_eq!(snapshot(&mut client).await, before);

    // Exactly at the limit is fine.
    record.phenotypic_features[4].description = "x".repeat(MAX_TEXT_BYTES);
    assert!(client.create_case(record).await.unwrap().created);
}

#[tokio::test]
async fn page_size_past_its_limit_and_foreign_tokens_are_rejected() {
    let (_server, mut client, _id) = server_with_seed().await;
    assert_eq!(
        client
            .list_cases(MAX_PAGE_SIZE, "", false)
            .await
            .unwrap()
            .cases
            .len(),
        1
    );
    let found = violations(
        client
            .list_cases(MAX_PAGE_SIZE + 1, "", false)
            .await
            .unwrap_err(),
    );
    assert_field(&found, "page_size", &format!("limit is {MAX_PAGE_SIZE}"));
    let found = violations(
        client
            .list_cases(10, "bm90LWEtdG9rZW4", false)
            .await
            .unwrap_err(),
    );
    assert_field(&found, "page_token", "not a token");
}

#[tokio::test]
async fn stale_version_is_aborted_and_changes_nothing() {
    let (_server, mut client, id) = server_with_seed().await;
    let before = snapshot(&mut client).await;
    let mut change = seed_case();
    change.phenotypic_features.clear();
    let err = client
        .update_case(&id, 1, change.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Aborted), "{err}");
    assert!(err.to_string().contains("version 2"), "{err}");
    let err = client.delete_case(&id, 1, "").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Aborted), "{err}");
    let found = violations(client.update_case(&id, 0, change).await.unwrap_err());
    assert_field(&found, "expected_version", "required");
    assert_eq!(snapshot(&mut client).await, before);
}

#[tokio::test]
async fn missing_ids_are_not_found_and_bad_ids_are_invalid() {
    let (_server, mut client, _id) = server_with_seed().await;
    let before = snapshot(&mut client).await;
    let absent = "0123456789abcdef";
    assert_eq!(
        client.get_case(absent, 0, false).await.unwrap_err().code(),
        Some(Code::NotFound)
    );
    assert_eq!(
        client
            .update_case(absent, 1, seed_case())
            .await
            .unwrap_err()
            .code(),
        Some(Code::NotFound)
    );
    assert_eq!(
        client.delete_case(absent, 0, "").await.unwrap_err().code(),
        Some(Code::NotFound)
    );
    assert_eq!(
        client.get_case(&_id, 9, false).await.unwrap_err().code(),
        Some(Code::NotFound)
    );
    let found = violations(
        client
            .get_case("../etc/passwd", 0, false)
            .await
            .unwrap_err(),
    );
    assert_field(&found, "case_id", "16 lowercase hex digits");
    let found = violations(
        client
            .delete_case(&_id, 0, &"r".repeat(5000))
            .await
            .unwrap_err(),
    );
    assert_field(&found, "reason", "limit is 4096 bytes");
    assert_eq!(snapshot(&mut client).await, before);
}

#[tokio::test]
async fn a_missing_record_is_invalid() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut raw =
        casereg_proto::v1::case_registry_client::CaseRegistryClient::connect(server.url())
            .await
            .unwrap();
    let status = raw
        .create_case(pb::CreateCaseRequest { phenopacket: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let found = violations(ClientError::from(status));
    assert_field(&found, "phenopacket", "required");
    assert_eq!(client.registry_info().await.unwrap().active_cases, 0);
}

#[tokio::test]
async fn enum_numbers_the_contract_lacks_are_refused_in_binary_as_in_json() {
    let (server, mut client, id) = server_with_seed().await;
    let before = snapshot(&mut client).await;
    let mut record = seed_case();
    record.id = "unknown-sex".to_owned();
    record.subject.as_mut().unwrap().sex = 99;
    let found = violations(client.create_case(record.clone()).await.unwrap_err());
    assert_field(
        &found,
        "phenopacket.subject.sex",
        "is 99, which is not a Sex value",
    );
    let mut update = seed_case();
    update.subject.as_mut().unwrap().sex = 99;
    let found = violations(client.update_case(&id, 2, update).await.unwrap_err());
    assert_field(&found, "phenopacket.subject.sex", "not a Sex value");

    let request = pb::ImportCasesRequest {
        options: None,
        records: vec![pb::ImportRecord {
            source: "pipeline:7".to_owned(),
            phenopacket: Some(record.clone()),
        }],
    };
    let report = client
        .import_cases(tokio_stream::iter([request]))
        .await
        .unwrap();
    assert_eq!((report.created, report.rejected), (0, 1), "{report:?}");
    let outcome = &report.outcomes[0];
    assert_eq!(outcome.source, "pipeline:7");
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.field.ends_with("subject.sex") && e.description.contains("not a Sex value")),
        "{outcome:?}"
    );
    assert_eq!(snapshot(&mut client).await, before);

    // The JSON path refuses the same record, and the backup path writes every case.
    let json = serde_json::to_string(&seed_case())
        .unwrap()
        .replace("\"sex\":\"FEMALE\"", "\"sex\":99");
    assert!(json.contains("\"sex\":99"));
    assert!(casereg_client::json::parse_phenopacket(&json, "case.json").is_err());
    let exported = server.cli(&["export"]).await.unwrap();
    assert_eq!(exported.lines().count(), 1, "{exported}");
}
