//! `modeltrail bench` against a real `modeltrail serve`: bounded runs in
//! batched and single-entry modes, with readers verifying inclusion proofs.

#![cfg(feature = "server")]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{BIN, Server, scratch};

/// Initialises a log in a fresh directory (the log in `data` below it) and
/// serves it on a free port; returns the server, the directory and the
/// log's vkey.
fn start(name: &str) -> (Server, PathBuf, String) {
    let dir = scratch(name);
    let data = dir.join("data");
    let stdout = common::init(&data, &[]);
    let vkey = common::init_line(&stdout, "log vkey:").to_owned();
    (Server::start(&data), dir, vkey)
}

/// Runs `modeltrail bench --json` with `args` and returns the report.
fn bench(server: &Server, args: &[&str]) -> serde_json::Value {
    let stdout = common::run_ok(
        Command::new(BIN)
            .args(["bench", "--url", &server.base, "--json"])
            .args(args),
    );
    serde_json::from_str(&stdout).unwrap()
}

/// The size of the log's current checkpoint.
fn checkpoint_size(server: &Server) -> u64 {
    let r = server.client().get("/checkpoint");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().lines().nth(1).unwrap().parse().unwrap()
}

fn assert_run(report: &serde_json::Value, entries: u64) {
    assert_eq!(report["acked"], entries, "{report:#}");
    assert!(report["verified"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(
        report["verify_failures"],
        serde_json::json!({}),
        "{report:#}"
    );
    assert_eq!(report["index_collisions"], 0, "{report:#}");
    assert_eq!(report["checkpoint_signature_verified"], true);
}

#[test]
fn bench_batched_then_single_entry_against_a_real_server() {
    let (server, dir, vkey) = start("bench-cli");
    let admin = dir.join("data/keys/admin.key");
    let serving = dir.join("serving.key");
    let pid = server.pid().to_string();

    // Bootstraps a serving key with the admin key, then batches of 50.
    let report = bench(
        &server,
        &[
            "--admin-key",
            admin.to_str().unwrap(),
            "--save-key",
            serving.to_str().unwrap(),
            "--entries",
            "500",
            "--batch",
            "50",
            "--writers",
            "4",
            "--readers",
            "2",
            "--log-vkey",
            &vkey,
            "--server-pid",
            &pid,
        ],
    );
    assert_run(&report, 500);
    assert!(Path::new(&serving).exists());

    // Single entries with the saved key.
    let report = bench(
        &server,
        &[
            "--key",
            serving.to_str().unwrap(),
            "--entries",
            "100",
            "--batch",
            "1",
            "--writers",
            "8",
            "--readers",
            "2",
            "--log-vkey",
            &vkey,
        ],
    );
    assert_run(&report, 100);

    // Leaf 0 is the initial policy, then the bench's policy update.
    assert!(checkpoint_size(&server) >= 2 + 500 + 100);

    // Readers only, over the whole log.
    let report = bench(
        &server,
        &["--writers", "0", "--readers", "2", "--duration", "0.5"],
    );
    assert!(report["verified"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(report["checkpoint_signature_verified"], false);
}
