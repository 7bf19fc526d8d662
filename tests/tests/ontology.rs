//! The Ontology service and `casereg term`: look-up by id, search, ancestors, descendants.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use casereg_client::ClientError;
use casereg_e2e::TestServer;
use tonic::Code;

#[tokio::test]
async fn terms_by_id_follow_alt_ids_and_report_obsolescence() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let term = client.get_term("HP:0025520").await.unwrap();
    let calcinosis = term.term.unwrap();
    assert_eq!(calcinosis.name, "Calcinosis cutis");
    assert!(term.requested_id.is_empty());
    assert_eq!(term.release, "2025-01-16");
    assert!(!calcinosis.parents.is_empty());

    // HP:0004715 is an alternative id of HP:0000003 in this release.
    let alt = client.get_term("HP:0004715").await.unwrap();
    assert_eq!(
        (alt.term.unwrap().id.as_str(), alt.requested_id.as_str()),
        ("HP:0000003", "HP:0004715")
    );
    // HP:0000057 is obsolete, replaced by HP:0008665.
    let obsolete = client.get_term("HP:0000057").await.unwrap().term.unwrap();
    assert!(obsolete.obsolete);
    assert_eq!(obsolete.replaced_by, "HP:0008665");

    assert_eq!(
        client.get_term("HP:9999999").await.unwrap_err().code(),
        Some(Code::NotFound)
    );
    let err = client.get_term("HP:12").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::InvalidArgument { violations, .. } if violations[0].field == "id"),
        "{err}"
    );
}

#[tokio::test]
async fn search_ranks_the_exact_name_first_and_checks_its_limits() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let found = client
        .search_terms("calcinosis cutis", 5, false)
        .await
        .unwrap();
    assert_eq!(found.matches[0].term.as_ref().unwrap().id, "HP:0025520");
    assert!(found.total >= 1);
    let all = client.search_terms("calcinosis", 100, false).await.unwrap();
    assert!(
        all.matches
            .iter()
            .all(|m| m.matched.to_lowercase().contains("calcinosis"))
    );
    assert!(all.matches.len() <= 100);

    for (query, limit, field) in [
        ("", 5, "query"),
        (&"x".repeat(201)[..], 5, "query"),
        ("skin", 101, "limit"),
    ] {
        let err = client.search_terms(query, limit, false).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::InvalidArgument { violations, .. } if violations[0].field == field),
            "{err}"
        );
    }
}

#[tokio::test]
async fn ancestors_and_descendants_agree() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let up = client.term_relatives("HP:0025520", true).await.unwrap();
    let ids: Vec<&str> = up.relatives.iter().map(|t| t.id.as_str()).collect();
    assert!(ids.contains(&"HP:0000118"), "{ids:?}");
    assert!(!ids.contains(&"HP:0025520"));
    for ancestor in &ids {
        let down = client.term_relatives(ancestor, false).await.unwrap();
        assert!(
            down.relatives.iter().any(|t| t.id == "HP:0025520"),
            "{ancestor}"
        );
    }
}

#[tokio::test]
async fn the_cli_finds_terms_by_words_and_by_id() {
    let server = TestServer::start().await;
    let run = |args: &'static [&'static str]| {
        let server = &server;
        async move { server.cli(args).await.unwrap() }
    };
    let search = run(&["term", "calcinosis"]).await;
    assert!(
        search.contains("HP:0025520") && search.contains("Calcinosis cutis"),
        "{search}"
    );
    let by_id = run(&["term", "HP:0025520"]).await;
    assert!(by_id.starts_with("HP:0025520  Calcinosis cutis"), "{by_id}");
    assert!(by_id.contains("is a"), "{by_id}");
    let ancestors = run(&["term", "HP:0025520", "--ancestors"]).await;
    assert!(
        ancestors.contains("HP:0000118  Phenotypic abnormality"),
        "{ancestors}"
    );
}
