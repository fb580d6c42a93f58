//! `modeltrail-witness status | head -1` (issue 18, item 11): a command whose
//! reader went away ends quietly instead of panicking. Standard output is a
//! real pipe whose read end is closed before the command starts, so the
//! first write fails with EPIPE every time.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;

fn into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap()
}

#[test]
fn status_and_evidence_end_quietly_on_a_broken_pipe() {
    let (data, _) = init("epipe", "witness.example/w1");
    let d = data.to_str().unwrap();
    for args in [
        vec!["status", "--data", d],
        vec!["status", "--data", d, "--json"],
        vec!["evidence", "--data", d],
    ] {
        let out = into_closed_pipe(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{args:?} wrote on stderr: {err}");
        // The status a shell shows for a process SIGPIPE ended; not a panic's 101.
        assert_eq!(out.status.code(), Some(141), "{args:?}: {:?}", out.status);
    }
}
