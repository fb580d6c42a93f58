//! `modeltrail bench` against a real `modeltrail serve`: bounded runs in
//! batched and single-entry modes, with readers verifying inclusion proofs.

#![cfg(feature = "server")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_modeltrail");

/// A running server, killed (and its directory removed) on drop.
struct Server {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Initialises a log in a fresh directory and serves it on a free port;
/// returns the server and the log's vkey.
fn start(name: &str) -> (Server, String) {
    let dir = std::env::temp_dir().join(format!("modeltrail-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let init = Command::new(BIN)
        .args(["init", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let stdout = String::from_utf8(init.stdout).unwrap();
    let vkey = stdout
        .lines()
        .find_map(|l| l.strip_prefix("log vkey:"))
        .expect("init prints the log vkey")
        .trim()
        .to_owned();
    let mut child = Command::new(BIN)
        .args(["serve", "--data", data.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some((_, a)) = line.split_once(" on http://")
            && line.contains("modeltrail: serving")
        {
            addr = Some(a.trim().to_owned());
            break;
        }
        line.clear();
    }
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let server = Server {
        child,
        addr: addr.expect("the server announces its address"),
        dir,
    };
    (server, vkey)
}

/// Runs `modeltrail bench --json` with `args` and returns the report.
fn bench(server: &Server, args: &[&str]) -> serde_json::Value {
    let url = format!("http://{}", server.addr);
    let out = Command::new(BIN)
        .args(["bench", "--url", &url, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "bench {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The size of the log's current checkpoint.
fn checkpoint_size(addr: &str) -> u64 {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /checkpoint HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.lines().nth(1).unwrap().parse().unwrap()
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
    let (server, vkey) = start("bench-cli");
    let admin = server.dir.join("data/keys/admin.key");
    let serving = server.dir.join("serving.key");
    let pid = server.child.id().to_string();

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
    assert!(checkpoint_size(&server.addr) >= 2 + 500 + 100);

    // Readers only, over the whole log.
    let report = bench(
        &server,
        &["--writers", "0", "--readers", "2", "--duration", "0.5"],
    );
    assert!(report["verified"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(report["checkpoint_signature_verified"], false);
}
