//! The `casereg` CLI against a real server: add, get, list, update, delete, info, health.

// Helpers here are test code too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use casereg_cli::CliError;
use casereg_e2e::{TestServer, repo_root, seed_case};

async fn run(server: &TestServer, args: &[&str]) -> Result<String, CliError> {
    server.cli(args).await
}

fn seed_path() -> String {
    repo_root()
        .join("tests/fixtures/seed-calcinosis-cutis-sjogren.json")
        .display()
        .to_string()
}

#[tokio::test]
async fn add_get_list_update_delete_through_the_cli() {
    let server = TestServer::start().await;
    let out = run(&server, &["add", &seed_path()]).await.unwrap();
    assert!(out.starts_with("created: case "), "{out}");
    let id = out.split_whitespace().nth(2).unwrap().to_owned();

    let again = run(&server, &["add", &seed_path()]).await.unwrap();
    assert!(again.contains("already stored"), "{again}");

    // `get --record` prints Phenopacket JSON equal (as a message) to the file added.
    let json = run(&server, &["get", &id, "--record"]).await.unwrap();
    let back = casereg_client::json::parse_phenopacket(&json, "get output").unwrap();
    assert_eq!(back, seed_case());

    let human = run(&server, &["get", &id]).await.unwrap();
    assert!(human.contains("Calcinosis cutis (HP:0025520)"), "{human}");
    assert!(human.contains("- Telangiectasia (HP:0001009)"), "{human}");
    assert!(human.contains("hydroxychloroquine"), "{human}");

    let as_json: serde_json::Value = serde_json::from_str(
        &run(&server, &["--format", "json", "get", &id])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(as_json["caseId"], id.as_str());
    assert_eq!(as_json["version"], "1");

    let listing = run(&server, &["list"]).await.unwrap();
    assert!(
        listing.contains(&id) && listing.contains("Sjogren syndrome"),
        "{listing}"
    );

    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("changed.json");
    let mut record = seed_case();
    record.phenotypic_features.pop();
    std::fs::write(&changed, serde_json::to_string(&record).unwrap()).unwrap();
    let changed = changed.display().to_string();
    let stale = run(&server, &["update", &id, &changed, "--version", "7"])
        .await
        .unwrap_err();
    assert_eq!(stale.exit_code(), 1);
    assert!(stale.report().contains("conflict"), "{}", stale.report());
    let updated = run(&server, &["update", &id, &changed, "--version", "1"])
        .await
        .unwrap();
    assert!(updated.contains("now version 2"), "{updated}");

    let deleted = run(&server, &["delete", &id, "--reason", "duplicate"])
        .await
        .unwrap();
    assert!(deleted.contains("retracted"), "{deleted}");
    let gone = run(&server, &["get", &id]).await.unwrap_err();
    assert!(gone.report().contains("not found"), "{}", gone.report());

    let info = run(&server, &["info"]).await.unwrap();
    assert!(info.contains("0 active, 1 retracted"), "{info}");
    assert!(
        info.contains("Human Phenotype Ontology (version 2025-01-16)"),
        "{info}"
    );
    // Every limit the server enforces, with its value.
    for limit in casereg_proto::limits::ALL
        .iter()
        .filter(|l| l.side == casereg_proto::limits::Side::Server)
    {
        assert!(
            info.lines().any(|line| line.contains(limit.name)
                && line.contains(&format!(" {} ", limit.value))
                && line.contains(limit.unit)),
            "{} missing from {info}",
            limit.name
        );
    }
    assert_eq!(run(&server, &["health"]).await.unwrap().trim(), "SERVING");
}

#[tokio::test]
async fn cli_reports_bad_files_and_field_violations() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown-field.json");
    std::fs::write(
        &unknown,
        r#"{"id": "x", "metaData": {}, "favouriteColour": "blue"}"#,
    )
    .unwrap();
    let err = run(&server, &["add", &unknown.display().to_string()])
        .await
        .unwrap_err();
    assert!(err.report().contains("favouriteColour"), "{}", err.report());

    let bad_curie = dir.path().join("bad-curie.json");
    std::fs::write(
        &bad_curie,
        r#"{"id": "x", "metaData": {}, "phenotypicFeatures": [{"type": {"id": "HP0001250"}}]}"#,
    )
    .unwrap();
    let err = run(&server, &["add", &bad_curie.display().to_string()])
        .await
        .unwrap_err();
    assert!(
        err.report()
            .contains("\n  phenopacket.phenotypicFeatures[0].type.id: "),
        "{}",
        err.report()
    );

    let missing = run(&server, &["add", "/nonexistent/case.json"])
        .await
        .unwrap_err();
    assert!(
        missing.report().contains("/nonexistent/case.json"),
        "{}",
        missing.report()
    );
}

#[tokio::test]
async fn cli_accepts_snake_case_keys_and_enum_numbers() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snake.json");
    std::fs::write(
        &path,
        r#"{"id": "snake-1", "subject": {"id": "s1", "sex": 1},
            "phenotypic_features": [{"type": {"id": "HP:0025520", "label": "Calcinosis cutis"}}],
            "meta_data": {"created_by": "test", "phenopacket_schema_version": "2.0.2"}}"#,
    )
    .unwrap();
    let out = run(&server, &["add", &path.display().to_string()])
        .await
        .unwrap();
    let id = out.split_whitespace().nth(2).unwrap().to_owned();
    let human = run(&server, &["get", &id]).await.unwrap();
    assert!(human.contains("s1, female"), "{human}");
}

#[tokio::test]
async fn stats_as_csv_by_format_or_flag_and_csv_refused_elsewhere() {
    let server = TestServer::start().await;
    run(&server, &["add", &seed_path()]).await.unwrap();
    let by_format = run(
        &server,
        &[
            "--format",
            "csv",
            "stats",
            "--by",
            "treatment",
            "--by",
            "response",
        ],
    )
    .await
    .unwrap();
    let by_flag = run(
        &server,
        &["stats", "--by", "treatment", "--by", "response", "--csv"],
    )
    .await
    .unwrap();
    assert_eq!(by_format, by_flag);
    assert!(by_format.lines().count() > 1, "{by_format}");
    let error = run(&server, &["--format", "csv", "info"])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("csv is for `casereg stats`"),
        "{error}"
    );
    server.stop().await;
}
