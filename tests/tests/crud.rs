//! Case CRUD over gRPC: records come back exactly as sent, versions, retraction, listing.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use casereg_e2e::{TestServer, create, sample_records, schema_fixtures, seed_case};
use casereg_proto::v1 as pb;

#[tokio::test]
async fn seed_case_round_trips_with_excluded_features_measurements_and_treatments() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let seed = seed_case();
    // The fixture must exercise what the registry promises to keep.
    assert!(seed.phenotypic_features.iter().any(|f| f.excluded));
    assert!(!seed.measurements.is_empty());
    assert!(
        seed.medical_actions
            .iter()
            .any(|a| matches!(a.action, Some(pb::medical_action::Action::Treatment(_))))
    );

    let created = client.create_case(seed.clone()).await.unwrap();
    assert!(created.created);
    assert!(created.warnings.is_empty(), "{:?}", created.warnings);
    let case = created.case.unwrap();
    assert_eq!(case.version, 1);
    assert_eq!(case.status, pb::CaseStatus::Active as i32);

    let read = client.get_case(&case.case_id, 0, false).await.unwrap();
    assert_eq!(read.phenopacket.as_ref(), Some(&seed));
    assert_eq!(read.center_id, "local");
}

#[tokio::test]
async fn schema_fixtures_and_real_records_round_trip() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut records: Vec<pb::Phenopacket> = schema_fixtures();
    records.extend(sample_records().into_iter().map(|(_, _, record)| record));
    assert!(records.len() > 250);
    let mut ids = Vec::new();
    for record in &records {
        let response = client
            .create_case(record.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", record.id));
        ids.push(response.case.unwrap().case_id);
    }
    for (record, id) in records.iter().zip(&ids) {
        let read = client.get_case(id, 0, false).await.unwrap();
        assert_eq!(read.phenopacket.as_ref(), Some(record), "{}", record.id);
    }
    let info = client.registry_info().await.unwrap();
    assert_eq!(info.active_cases, records.len() as u64);
}

#[tokio::test]
async fn create_is_idempotent_on_the_record_id() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let first = client.create_case(seed_case()).await.unwrap();
    let again = client.create_case(seed_case()).await.unwrap();
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(first.case, again.case);

    let mut changed = seed_case();
    changed.phenotypic_features.pop();
    let err = client.create_case(changed).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::AlreadyExists), "{err}");
    let info = client.registry_info().await.unwrap();
    assert_eq!(info.active_cases, 1);
}

#[tokio::test]
async fn update_adds_a_version_and_keeps_the_old_one() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let case = client.create_case(seed_case()).await.unwrap().case.unwrap();
    let mut corrected = seed_case();
    corrected.phenotypic_features[0].description = "corrected description".to_owned();
    let updated = client
        .update_case(&case.case_id, 1, corrected.clone())
        .await
        .unwrap();
    assert!(updated.changed);
    let updated_case = updated.case.unwrap();
    assert_eq!(updated_case.version, 2);
    assert_eq!(updated_case.created_at, case.created_at);

    assert_eq!(
        client
            .get_case(&case.case_id, 0, false)
            .await
            .unwrap()
            .phenopacket,
        Some(corrected.clone())
    );
    assert_eq!(
        client
            .get_case(&case.case_id, 1, false)
            .await
            .unwrap()
            .phenopacket,
        Some(seed_case())
    );

    let same = client
        .update_case(&case.case_id, 2, corrected)
        .await
        .unwrap();
    assert!(!same.changed);
    assert_eq!(same.case.unwrap().version, 2);
}

#[tokio::test]
async fn retraction_hides_the_case_but_keeps_it_for_audit() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let case = client.create_case(seed_case()).await.unwrap().case.unwrap();
    let retracted = client
        .delete_case(&case.case_id, 1, "entered twice")
        .await
        .unwrap();
    assert_eq!(retracted.status, pb::CaseStatus::Retracted as i32);
    assert_eq!(retracted.version, 2);

    let err = client.get_case(&case.case_id, 0, false).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    let kept = client.get_case(&case.case_id, 0, true).await.unwrap();
    assert_eq!(kept.retraction_reason, "entered twice");
    assert_eq!(kept.phenopacket, Some(seed_case()));
    assert!(
        client
            .list_cases(0, "", false)
            .await
            .unwrap()
            .cases
            .is_empty()
    );
    assert_eq!(client.list_cases(0, "", true).await.unwrap().cases.len(), 1);
    let info = client.registry_info().await.unwrap();
    assert_eq!((info.active_cases, info.retracted_cases), (0, 1));

    let err = client
        .update_case(&case.case_id, 2, seed_case())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition));
}

#[tokio::test]
async fn listing_pages_cover_every_case_once() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let records = sample_records();
    let mut expected: Vec<String> = Vec::new();
    for (_, _, record) in records.iter().take(37) {
        expected.push(create(&mut client, record.clone()).await);
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client.list_cases(10, &token, false).await.unwrap();
        pages += 1;
        seen.extend(page.cases.iter().map(|c| c.case_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn hpo_alt_obsolete_and_unknown_ids_are_kept_with_warnings() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut record = seed_case();
    // In HPO 2025-01-16: HP:0004715 is an alt id of HP:0000003; HP:0000057 is obsolete,
    // replaced by HP:0008665; HP:9999999 does not exist.
    let ids = ["HP:0004715", "HP:0000057", "HP:9999999"];
    for (feature, id) in record.phenotypic_features.iter_mut().zip(ids) {
        feature.r#type.as_mut().unwrap().id = id.to_owned();
    }
    let response = client.create_case(record.clone()).await.unwrap();
    let kinds: Vec<(String, i32, String)> = response
        .warnings
        .iter()
        .map(|w| (w.term_id.clone(), w.kind, w.replacement_id.clone()))
        .collect();
    use pb::term_warning::Kind;
    assert_eq!(
        kinds,
        vec![
            (
                "HP:0004715".to_owned(),
                Kind::AltId as i32,
                "HP:0000003".to_owned()
            ),
            (
                "HP:0000057".to_owned(),
                Kind::ObsoleteReplaced as i32,
                "HP:0008665".to_owned()
            ),
            (
                "HP:9999999".to_owned(),
                Kind::UnknownTerm as i32,
                String::new()
            ),
        ]
    );
    assert_eq!(
        response.warnings[0].field,
        "phenopacket.phenotypicFeatures[0].type.id"
    );
    // Stored exactly as submitted: the ids are not rewritten in the record.
    let read = client
        .get_case(&response.case.unwrap().case_id, 0, false)
        .await
        .unwrap();
    assert_eq!(read.phenopacket, Some(record));
}

#[tokio::test]
async fn strict_terms_mode_rejects_unknown_hpo_ids() {
    let server = TestServer::start_with(&["--strict-terms"]).await;
    let mut client = server.client().await;
    let mut record = seed_case();
    record.phenotypic_features[2].r#type.as_mut().unwrap().id = "HP:9999999".to_owned();
    let err = client.create_case(record).await.unwrap_err();
    let casereg_client::ClientError::InvalidArgument { violations, .. } = err else {
        panic!("expected INVALID_ARGUMENT, got {err}");
    };
    assert_eq!(
        violations[0].field,
        "phenopacket.phenotypicFeatures[2].type.id"
    );
    assert!(client.registry_info().await.unwrap().strict_terms);
    assert_eq!(client.registry_info().await.unwrap().active_cases, 0);
}

#[tokio::test]
async fn another_hpo_release_can_be_loaded_by_flag() {
    let dir = tempfile::tempdir().unwrap();
    let obo = dir.path().join("hp.obo");
    std::fs::write(
        &obo,
        "format-version: 1.2\ndata-version: hp/releases/2099-01-01\n\n\
         [Term]\nid: HP:0000001\nname: All\n\n\
         [Term]\nid: HP:0025520\nname: Calcinosis cutis\nis_a: HP:0000001\n",
    )
    .unwrap();
    let path = obo.display().to_string();
    let server = TestServer::start_with(&["--hpo", &path]).await;
    let mut client = server.client().await;
    let info = client.registry_info().await.unwrap();
    assert_eq!(info.ontologies[0].version, "2099-01-01");
    assert_eq!(info.ontologies[0].source, path);
    assert_eq!(info.ontologies[0].term_count, 2);
    // Terms of the seed case missing from this tiny release are kept, with warnings.
    let response = client.create_case(seed_case()).await.unwrap();
    assert!(response.created);
    assert!(
        response
            .warnings
            .iter()
            .all(|w| w.kind == pb::term_warning::Kind::UnknownTerm as i32)
    );
    assert!(!response.warnings.iter().any(|w| w.term_id == "HP:0025520"));
}
