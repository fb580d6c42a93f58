//! A storage failure made real (the tile directory replaced by a plain
//! file, so every tile write fails with ENOTDIR, as root or not) against the
//! running `modeltrail serve`: `/healthz` answers 503 degraded with the
//! reason until a batch is stored again, the metrics count the refusals as
//! `storage_failure` (not `rejected`) with `modeltrail_degraded 1`, and a
//! batch in which every entry failed for storage answers 503. Then
//! `reindex` deletes the index it replaced.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Client, Server, metric, scratch};
use modeltrail::entry::{Kind, PolicyBody, SignedEntry};
use serde_json::{Value, json};

/// A policy entry signed by the admin: the initial policy with one more
/// criterion `id`, so each `id` gives a different, valid entry.
fn policy_entry(client: &Client, dir: &Path, id: &str) -> Vec<u8> {
    let admin = common::read_key(&dir.join("keys/admin.key"));
    let initial = SignedEntry::parse(&client.entry(0)).unwrap();
    let mut value = PolicyBody::parse(initial.body()).unwrap().to_value();
    value["criteria"]
        .as_array_mut()
        .unwrap()
        .push(json!({"description": "health test", "id": id}));
    SignedEntry::sign(Kind::Policy, value, &admin)
        .unwrap()
        .bytes()
        .to_vec()
}

#[test]
fn a_storage_failure_is_reported_until_storage_works_again() {
    let dir = scratch("storage_failure");
    common::init(&dir, &["--origin", "health.example.test/storage"]);
    let server = Server::start(&dir);
    let client = server.client();
    let healthy = client.get("/healthz");
    assert_eq!(healthy.status, 200);
    assert_eq!(healthy.json()["status"], "ok");

    let [a, b, c, d] = ["a", "b", "c", "d"].map(|id| policy_entry(&client, &dir, id));

    // Storage fails: the tiles directory becomes a file.
    let tiles = dir.join("tiles");
    let away = dir.join("tiles.away");
    std::fs::rename(&tiles, &away).unwrap();
    std::fs::write(&tiles, b"not a directory").unwrap();

    let refused = client.add(&a);
    assert_eq!(refused.status, 500, "{}", refused.text());
    assert_eq!(refused.code(), "storage_failure");
    let health = client.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text());
    let body: Value = health.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["reason"], "storage_failure");
    assert!(body["since"].as_str().unwrap().ends_with('Z'), "{body}");

    // A batch of which every entry failed for storage: 503, not 200.
    let answer = client.post(
        "/v1/entries",
        "application/json",
        &common::json_array(&[&b, &c]),
    );
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.header("retry-after"), Some("1"));
    let results = answer.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r["error"]["code"], "storage_failure", "{r}");
    }

    let metrics = client.get("/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "modeltrail_submissions_total{outcome=\"storage_failure\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &metrics,
            "modeltrail_submissions_total{outcome=\"rejected\"}"
        ),
        0.0
    );
    assert_eq!(metric(&metrics, "modeltrail_degraded"), 1.0);

    // Storage works again: the next batch is stored and health recovers.
    std::fs::remove_file(&tiles).unwrap();
    std::fs::rename(&away, &tiles).unwrap();
    let logged = client.add(&d);
    assert_eq!(logged.status, 200, "{}", logged.text());
    let health = client.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], "ok");
    let metrics = client.get("/metrics").text();
    assert_eq!(metric(&metrics, "modeltrail_degraded"), 0.0);
}

#[test]
fn reindex_deletes_the_index_it_replaced() {
    let dir = scratch("reindex_cleanup");
    common::init(&dir, &["--origin", "health.example.test/reindex"]);
    let mut server = Server::start(&dir);
    let client = server.client();
    assert_eq!(
        client.add(&policy_entry(&client, &dir, "a")).status,
        200,
        "logging an entry"
    );
    assert!(server.terminate().success());
    let out = common::run_ok(Command::new(BIN).arg("reindex").arg("--data").arg(&dir));
    assert_eq!(out, "reindexed 2 entries\n");
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("index."))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(dir.join("index").is_dir());
    // The rebuilt index answers.
    let server = Server::start(&dir);
    assert_eq!(server.client().get("/healthz").status, 200);
    assert_eq!(server.client().get("/v1/policy").status, 200);
}
