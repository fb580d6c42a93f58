//! The small things that tell a user whether a tool is finished (issue 18,
//! items 9 and 11): `vkey` prints an existing key's vkey, `keygen` names
//! the way out when its `--out` exists, every command exits quietly when
//! its reader goes away (EPIPE), the server writes no colour codes into a
//! file, and each command accepts only the flags it uses.
//!
//! The broken pipe is real: the command's standard output is a pipe whose
//! read end is closed before the command starts, so its first write fails
//! with EPIPE every time (what `… | head -1` does once `head` has exited).

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Output, Stdio};

use common::{BIN, init, init_line, scratch};

fn modeltrail(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MODELTRAIL_LOG")
        .env_remove("MODELTRAIL_KEY")
        .output()
        .unwrap()
}

#[test]
fn vkey_prints_the_vkey_keygen_printed_and_keygen_points_to_it() {
    let dir = scratch("vkey");
    let key = dir.join("serving.key");
    let key = key.to_str().unwrap();
    let made = modeltrail(&["keygen", "--name", "serving.example/s", "--out", key]);
    assert!(made.status.success(), "{made:?}");
    let shown = modeltrail(&["vkey", key]);
    assert!(shown.status.success(), "{shown:?}");
    assert_eq!(shown.stdout, made.stdout);

    // keygen over an existing file refuses, changes nothing, and says how to
    // get the vkey instead.
    let before = std::fs::read(key).unwrap();
    let again = modeltrail(&["keygen", "--name", "other.example/o", "--out", key]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already exists") && err.contains("modeltrail vkey"),
        "{err}"
    );
    assert_eq!(std::fs::read(key).unwrap(), before);

    // Not a key file: a one-line reason.
    let card = dir.join("card.json");
    std::fs::write(&card, "{}").unwrap();
    let bad = modeltrail(&["vkey", card.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("modeltrail: key file") && err.lines().count() == 1,
        "{err}"
    );
}

/// Runs `modeltrail args` with standard output a pipe nobody reads.
fn into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

fn assert_quiet_on_epipe(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "{what} wrote on stderr: {err}");
    assert_ne!(out.status.code(), Some(101), "{what} panicked: {err}");
    // Ended by SIGPIPE, as `cat` or `grep` would be.
    assert_eq!(
        out.status.signal(),
        Some(SIGPIPE),
        "{what}: {:?}",
        out.status
    );
}

/// SIGPIPE's number on every Unix this runs on (Linux, macOS, the BSDs).
const SIGPIPE: i32 = 13;

#[test]
fn commands_exit_quietly_on_a_broken_pipe() {
    let dir = scratch("epipe");
    let key = dir.join("k.key");
    let out = modeltrail(&[
        "keygen",
        "--name",
        "k.example/k",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_quiet_on_epipe(&into_closed_pipe(&["vkey", key.to_str().unwrap()]), "vkey");
    assert_quiet_on_epipe(&into_closed_pipe(&["hash", key.to_str().unwrap()]), "hash");

    // `audit … | head -1` on a real log directory.
    let data = dir.join("data");
    let stdout = init(&data, &["--origin", "epipe.example/log"]);
    let policy = dir.join("policy.txt");
    std::fs::write(
        &policy,
        format!("log {}\nquorum none\n", init_line(&stdout, "log vkey:")),
    )
    .unwrap();
    let tiles = data.join("tiles");
    let args = [
        "audit",
        "--log",
        tiles.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ];
    let ok = modeltrail(&args);
    assert!(ok.status.success() && !ok.stdout.is_empty(), "{ok:?}");
    assert_quiet_on_epipe(&into_closed_pipe(&args), "audit");

    // Through a shell pipeline, as a user types it.
    let line = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{BIN} audit --log '{}' --policy '{}' | head -c 0",
            tiles.display(),
            policy.display()
        ))
        .output()
        .unwrap();
    assert!(
        line.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&line.stderr)
    );
}

#[test]
fn server_logs_carry_no_colour_codes_when_stderr_is_a_file() {
    let dir = scratch("colour");
    let data = dir.join("data");
    init(&data, &["--origin", "colour.example/log"]);
    let mut server = common::Server::start(&data);
    server.client().get("/healthz");
    assert!(server.terminate().success());
    let stderr = server.stderr();
    // An info line from tracing (not only the eprintln! start-up lines).
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape in a non-terminal log: {stderr:?}"
    );
}

#[test]
fn each_command_takes_only_the_flags_it_uses() {
    let help = modeltrail(&["entry", "sign", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--key"), "{text}");
    assert!(
        !text.contains("--log") && !text.contains("--json"),
        "{text}"
    );
    let refused = modeltrail(&["entry", "sign", "--kind", "inference", "--log", "http://x"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");

    let help = modeltrail(&["status", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--log") && text.contains("--json"), "{text}");
    assert!(!text.contains("--key"), "{text}");
    let refused = modeltrail(&["status", "--model", "m", "--key", "k"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");

    let help = modeltrail(&["policy", "show", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--log") && !text.contains("--key"), "{text}");
    let help = modeltrail(&["policy", "set", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--log") && text.contains("--key"), "{text}");
    let refused = modeltrail(&["policy", "show", "--key", "k"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
}
