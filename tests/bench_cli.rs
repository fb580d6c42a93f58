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

/// A short flat-out run pre-signs what it could send, not 500,000 entries
/// (which took 27 s whatever the run length), and warns that its made-up
/// versions will show in `audit` as `unknown_version`.
#[test]
fn a_short_flat_out_run_presigns_only_what_it_can_send() {
    let (server, dir, _) = start("bench-presign");
    let admin = dir.join("data/keys/admin.key");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--url",
            &server.base,
            "--json",
            "--duration",
            "0.1",
        ])
        .args(["--writers", "2", "--admin-key", admin.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let presigned = report["presigned"].as_u64().unwrap();
    assert!(presigned <= 4_000 + 2, "{report:#}");
    assert!(report["acked"].as_u64().unwrap() > 0, "{report:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown_version"), "{stderr}");
}

/// A log that is down is waited for, not burnt through: the writers retry the
/// same entries with backoff, count the refused connections as
/// `unreachable`, and every entry is logged once the log is back (on the
/// same port).
#[test]
fn bench_waits_for_a_log_that_is_down_and_loses_no_entry() {
    let (mut server, dir, _) = start("bench-down");
    let data = dir.join("data");
    let admin = data.join("keys/admin.key");
    let serving = dir.join("serving.key");
    bench(
        &server,
        &[
            "--admin-key",
            admin.to_str().unwrap(),
            "--save-key",
            serving.to_str().unwrap(),
            "--entries",
            "1",
        ],
    );
    // Enrolling again into the same file is refused before anything is
    // logged (it used to log the policy update, then fail to save the key).
    let size = checkpoint_size(&server);
    let again = Command::new(BIN)
        .args(["bench", "--url", &server.base, "--entries", "1"])
        .args(["--admin-key", admin.to_str().unwrap()])
        .args(["--save-key", serving.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(checkpoint_size(&server), size);
    assert!(server.terminate().success());

    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let bench = Command::new(BIN)
        .args(["bench", "--url", &url, "--json", "--entries", "20"])
        .args(["--writers", "2", "--key", serving.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut log = Command::new(BIN)
        .args(["serve", "--data", data.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = bench.wait_with_output().unwrap();
    let term = Command::new("kill")
        .args(["-TERM", &log.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success() && log.wait().unwrap().success());
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["acked"], 20, "{report:#}");
    assert_eq!(report["write_errors"], serde_json::json!({}), "{report:#}");
    assert!(report["unreachable"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(report["abandoned"], 0, "{report:#}");
}
