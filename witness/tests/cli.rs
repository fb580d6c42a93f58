//! The `modeltrail-witness` command line: `init`, `add-log`, `status`,
//! `evidence`, and `serve`'s refusals, run as the real binary.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::*;
use modeltrail::tlog::note::{KeyType, SignerKey};

#[test]
fn init_creates_a_private_cosignature_key_and_prints_its_vkey() {
    let (data, vkey) = init("init", "witness.example/w1");
    assert_eq!(vkey.key_type(), KeyType::CosignatureV1);
    assert_eq!(vkey.name(), "witness.example/w1");
    let mode = std::fs::metadata(data.join("witness.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(data.join("witness.key")).unwrap();
    assert_eq!(SignerKey::parse(key.trim_end()).unwrap().verifier(), vkey);
    assert_eq!(
        std::fs::read_to_string(data.join("witness.vkey")).unwrap(),
        format!("{vkey}\n")
    );
    // Never overwritten.
    let err = run_fail(&["init", "--data", data.to_str().unwrap(), "--name", "other"]);
    assert!(err.contains("already initialised"), "{err}");
    assert_eq!(
        std::fs::read_to_string(data.join("witness.key")).unwrap(),
        key
    );
}

#[test]
fn init_refuses_an_invalid_name() {
    let data = scratch("bad-name").join("data");
    let err = run_fail(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--name",
        "has space",
    ]);
    assert!(err.contains("witness name"), "{err}");
}

#[test]
fn add_log_accepts_log_keys_only() {
    let (data, wkey) = init("add-log", "witness.example/w1");
    let d = data.to_str().unwrap();
    let log = TestLog::new("example.com/log", 1, 0);
    add_log(&data, &log);
    // A second key for the same origin (a rotation) is fine; the same key twice is not.
    let next = TestLog::new("example.com/log", 2, 0);
    add_log(&data, &next);
    // The same key twice; a cosignature key, which cannot stand in for a
    // log's signature; a string that is no key; an empty origin.
    let (log_vkey, wkey) = (log.key.verifier().to_string(), wkey.to_string());
    for (origin, key, why) in [
        ("example.com/log", log_vkey.as_str(), "twice"),
        ("x.example/log", wkey.as_str(), "Ed25519"),
        ("x.example/log", "nonsense", "nonsense"),
        ("", log_vkey.as_str(), "origin"),
    ] {
        let err = run_fail(&["add-log", "--data", d, "--origin", origin, "--key", key]);
        assert!(err.contains(why), "{err}");
    }
    let s = status(&data);
    assert_eq!(s["logs"].as_array().unwrap().len(), 1);
    assert_eq!(s["logs"][0]["keys"].as_array().unwrap().len(), 2);
    assert!(s["logs"][0]["latest"].is_null());
    assert_eq!(s["vkey"], wkey);
}

#[test]
fn commands_on_a_missing_directory_fail_with_one_line() {
    let data = scratch("missing").join("nope");
    let d = data.to_str().unwrap();
    for args in [
        vec!["status", "--data", d],
        vec!["serve", "--data", d, "--listen", "127.0.0.1:0"],
        vec!["add-log", "--data", d, "--origin", "o", "--key", "k"],
    ] {
        run_fail(&args);
    }
}

#[test]
fn status_text_and_evidence_json() {
    let (data, wkey) = init("status", "witness.example/w1");
    let mut log = TestLog::new("example.com/log", 1, 3);
    add_log(&data, &log);
    let w = Witness::start(&data, &[]);
    cosign(&w.client(), &log, 0, 3, &wkey);
    let fork = log.fork("evil", 1, 3);
    assert_eq!(w.client().add_checkpoint(&fork.request(3, 3)).status, 409);
    log.grow_to(4);
    let text = run_ok(&["status", "--data", data.to_str().unwrap()]);
    assert!(text.contains("example.com/log"), "{text}");
    assert!(
        text.contains(&format!("size 3, root {}", log.root(3).to_base64())),
        "{text}"
    );
    assert!(text.contains("1 evidence record"), "{text}");
    let e = evidence(&data);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["status"], 409);
    assert_eq!(e[0]["origin"], "example.com/log");
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let (data, _) = init("lock", "witness.example/w1");
    let _w = Witness::start(&data, &[]);
    let err = serve_fails(&data, &[]);
    assert!(err.contains("another modeltrail-witness"), "{err}");
}

#[test]
fn bench_drives_a_running_witness_and_checks_every_cosignature() {
    let (data, _) = init("bench", "witness.example/w1");
    let w = Witness::start(&data, &[]);
    let d = data.to_str().unwrap();
    let out = run_ok(&[
        "bench",
        "--url",
        &w.base,
        "--data",
        d,
        "--logs",
        "6",
        "--concurrency",
        "3",
        "--duration-secs",
        "1",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 0, "{report}");
    assert_eq!(
        report["statuses"]["200"].as_u64(),
        Some(requests),
        "{report}"
    );
    assert_eq!(report["verified"].as_u64(), Some(requests));
    // Each request and each log's warm-up was committed durably.
    assert!(report["store"]["commits"].as_u64().unwrap() >= requests);
    assert_eq!(status(&data)["logs"].as_array().unwrap().len(), 6);

    let out = run_ok(&["bench-disk", "--dir", d, "--count", "3"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("fdatasync: median "), "{out}");
}
