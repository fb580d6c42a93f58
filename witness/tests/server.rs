//! Conformance of the real `modeltrail-witness serve` with
//! c2sp.org/tlog-witness: every status code from crafted requests,
//! cosignatures that verify under cosignature/v1, state that survives a
//! restart and a crash, the per-origin compare-and-swap, the monitoring
//! endpoint, limits, and `add-log` on a running witness.

mod common;

use common::*;
use modeltrail::tlog::hash::{Hash, empty_tree_hash};
use modeltrail::tlog::note::Note;
use modeltrail_witness::MAX_REQUEST_SIZE;
use modeltrail_witness::config::origin_hash_hex;

const WITNESS: &str = "witness.example/w1";

/// A witness for one log of `size` records.
fn setup(
    dir: &str,
    size: u64,
) -> (
    std::path::PathBuf,
    modeltrail::tlog::note::VerifierKey,
    TestLog,
) {
    let (data, vkey) = init(dir, WITNESS);
    let log = TestLog::new("example.com/log", 1, size);
    add_log(&data, &log);
    (data, vkey, log)
}

#[test]
fn every_status_code_from_crafted_requests() {
    let (data, wkey, mut log) = setup("statuses", 5);
    let w = Witness::start(&data, &[]);
    let c = w.client();

    // 404: an origin the witness does not know.
    let stranger = TestLog::new("stranger.example/log", 2, 3);
    let r = c.add_checkpoint(&stranger.request(0, 3));
    assert!(assert_refused(&r, 404).contains("stranger.example/log"));

    // 403: the right origin signed by another key (ignored: no signature
    // verifies), and the log's own key with a corrupted signature.
    let impostor = TestLog::new("example.com/log", 9, 5);
    assert_refused(&c.add_checkpoint(&impostor.request(0, 5)), 403);
    let mut body = log.request(0, 5);
    let at = body.len() - 6;
    body[at] = if body[at] == b'A' { b'B' } else { b'A' };
    assert_refused(&c.add_checkpoint(&body), 403);

    // 400: malformed bodies, and an old size beyond the checkpoint's.
    for bad in [
        &b""[..],
        b"old 01\n\n",
        b"old 0\nnot base64\n\n",
        b"old 0\n",
    ] {
        assert_refused(&c.add_checkpoint(bad), 400);
    }
    assert!(
        assert_refused(
            &c.add_checkpoint(&log.request(0, 5).replacen("old 0", "old 6")),
            400
        )
        .contains("larger than the checkpoint size")
    );

    // 422: a proof from old size 0.
    let mut with_proof = b"old 0\n".to_vec();
    with_proof.extend(format!("{}\n", Hash([7; 32]).to_base64()).as_bytes());
    with_proof.extend(log.request(0, 5).split_off(6));
    assert_refused(&c.add_checkpoint(&with_proof), 422);

    // 200: first use, cosigned; the cosignature verifies under cosignature/v1.
    cosign(&c, &log, 0, 5, &wkey);

    // 409: old size not the stored one; body "<size>\n", text/x.tlog.size.
    log.grow_to(9);
    for old in [0, 3] {
        let r = c.add_checkpoint(&log.request(old, 9));
        assert_eq!(assert_refused(&r, 409), "5\n");
        assert_eq!(r.content_type, "text/x.tlog.size");
    }

    // 422: a consistency proof that does not verify (one hash flipped).
    let mut proof = log.proof(5, 9);
    proof[0].0[0] ^= 1;
    let req = modeltrail_witness::AddCheckpointRequest::new(5, proof, log.note(9)).unwrap();
    assert_refused(&c.add_checkpoint(&req.to_bytes()), 422);

    // 409: same size, different root (tlog-witness: "409 Conflict").
    let fork = log.fork("fork", 2, 5);
    let r = c.add_checkpoint(&fork.request(5, 5));
    assert_eq!(assert_refused(&r, 409), "5\n");

    // 200: the real extension, then the same checkpoint again.
    cosign(&c, &log, 5, 9, &wkey);
    cosign(&c, &log, 9, 9, &wkey);

    // 422: bad empty tree, on a second log that never had a checkpoint.
    let empty = TestLog::new("example.com/empty", 3, 0);
    add_log(&data, &empty);
    let bad_empty = {
        let text = format!("example.com/empty\n0\n{}\n", Hash([1; 32]).to_base64());
        let note = Note::sign(&text, &[&empty.key]).unwrap();
        modeltrail_witness::AddCheckpointRequest::new(0, vec![], note)
            .unwrap()
            .to_bytes()
    };
    let r = add_checkpoint_once_known(&c, &bad_empty);
    assert!(assert_refused(&r, 422).contains("bad empty tree"));
    // The true empty tree is cosigned.
    assert_eq!(empty.root(0), empty_tree_hash());
    cosign(&c, &empty, 0, 0, &wkey);

    // Evidence: the fork at size 5 and the bad empty tree, not the rest.
    let kinds: Vec<String> = evidence(&data)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["inconsistent_proof", "fork", "bad_empty_tree"]);
}

/// `Vec<u8>::replacen` for request bodies.
trait Replace {
    fn replacen(&self, from: &str, to: &str) -> Vec<u8>;
}

impl Replace for Vec<u8> {
    fn replacen(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self.clone())
            .unwrap()
            .replacen(from, to, 1)
            .into_bytes()
    }
}

#[test]
fn wrong_paths_methods_and_oversized_bodies_are_refused_clearly() {
    let (data, _, _) = setup("http", 1);
    let w = Witness::start(&data, &[]);
    let c = w.client();
    let r = c.get("/add-checkpoint");
    assert_eq!((r.status, r.code().as_str()), (405, "method_not_allowed"));
    let r = c.get("/nothing/here");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = c.post(
        &format!("/{}/checkpoint", origin_hash_hex("example.com/log")),
        b"",
    );
    assert_eq!(r.status, 405);
    let r = c.add_checkpoint(&vec![b'x'; MAX_REQUEST_SIZE + 1]);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("larger than"));
    // 64 proof lines: one more than the spec allows.
    let mut body = b"old 1\n".to_vec();
    for _ in 0..64 {
        body.extend(format!("{}\n", Hash([1; 32]).to_base64()).as_bytes());
    }
    body.extend(b"\nexample.com/log\n1\n");
    let r = c.add_checkpoint(&body);
    assert!(assert_refused(&r, 400).contains("more than 63"));
}

#[test]
fn monitoring_endpoint_serves_the_latest_cosigned_checkpoint() {
    let (data, wkey, mut log) = setup("monitor", 4);
    let w = Witness::start(&data, &["--monitoring-prefix", "/monitor"]);
    let c = w.client();
    let path = format!("/monitor/{}/checkpoint", origin_hash_hex(log.origin()));
    assert_eq!(c.get(&path).code(), "no_checkpoint");
    assert_eq!(c.get("/monitor/00/checkpoint").code(), "unknown_log");
    cosign(&c, &log, 0, 4, &wkey);
    log.grow_to(6);
    let expected = cosign(&c, &log, 4, 6, &wkey);
    let r = c.get(&path);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_bytes(), expected);
}

#[test]
fn state_survives_restart_and_kill9() {
    let (data, wkey, mut log) = setup("restart", 7);
    let mut w = Witness::start(&data, &[]);
    cosign(&w.client(), &log, 0, 7, &wkey);
    assert!(w.terminate().success());

    let mut w = Witness::start(&data, &[]);
    let r = w.client().add_checkpoint(&log.request(0, 7));
    assert_eq!(assert_refused(&r, 409), "7\n");
    log.grow_to(12);
    cosign(&w.client(), &log, 7, 12, &wkey);
    w.kill9();

    let w = Witness::start(&data, &[]);
    let r = w.client().add_checkpoint(&log.request(7, 12));
    assert_eq!(assert_refused(&r, 409), "12\n");
    let s = status(&data);
    assert_eq!(s["logs"][0]["latest"]["size"], 12);
    assert_eq!(s["logs"][0]["latest"]["root"], log.root(12).to_base64());
}

#[test]
fn concurrent_requests_for_one_log_never_roll_back() {
    let (data, wkey, mut log) = setup("race", 10);
    let w = Witness::start(&data, &[]);
    let c = w.client();
    cosign(&c, &log, 0, 10, &wkey);
    log.grow_to(40);
    // 30 requests, all from old size 10, to sizes 11..=40, at once: the
    // first decided wins; every other finds the stored size moved on.
    let handles: Vec<_> = (11..=40)
        .map(|size| {
            let (c, body) = (c.clone(), log.request(10, size));
            std::thread::spawn(move || (size, c.add_checkpoint(&body)))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let won: Vec<u64> = results
        .iter()
        .filter(|(_, r)| r.status == 200)
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(won.len(), 1, "exactly one request from old size 10 may win");
    for (_, r) in results.iter().filter(|(_, r)| r.status != 200) {
        assert_eq!(assert_refused(r, 409), format!("{}\n", won[0]));
    }
    let r = c.add_checkpoint(&log.request(0, 40));
    assert_eq!(assert_refused(&r, 409), format!("{}\n", won[0]));
}

#[test]
fn add_log_reaches_a_running_witness() {
    let (data, wkey) = init("add-log-live", WITNESS);
    let w = Witness::start(&data, &[]);
    let log = TestLog::new("late.example/log", 5, 3);
    assert_refused(&w.client().add_checkpoint(&log.request(0, 3)), 404);
    add_log(&data, &log);
    let r = add_checkpoint_once_known(&w.client(), &log.request(0, 3));
    assert_cosigned(&r, &log, 3, &wkey);
}

#[test]
fn a_torn_journal_tail_is_cut_off_at_start() {
    let (data, wkey, mut log) = setup("torn", 3);
    let mut w = Witness::start(&data, &[]);
    cosign(&w.client(), &log, 0, 3, &wkey);
    w.kill9();
    // A crash in the middle of appending the next record leaves half a line.
    let journal = data.join("state.jsonl");
    let good = std::fs::read(&journal).unwrap();
    std::fs::write(&journal, [&good[..], b"{\"note\":\"exam"].concat()).unwrap();
    let w = Witness::start(&data, &[]);
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        good,
        "the torn tail is removed"
    );
    log.grow_to(5);
    cosign(&w.client(), &log, 3, 5, &wkey);
    assert_eq!(status(&data)["logs"][0]["latest"]["size"], 5);
}

#[test]
fn a_corrupt_journal_stops_the_witness_from_starting() {
    let (data, _, _) = setup("corrupt", 3);
    std::fs::write(data.join("state.jsonl"), b"not json\n").unwrap();
    let err = serve_fails(&data, &[]);
    assert!(
        err.contains("state.jsonl") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn compaction_keeps_one_record_per_log_and_the_state() {
    let (data, wkey, mut log) = setup("compact", 1);
    let w = Witness::start(&data, &["--compact-bytes", "4000"]);
    let c = w.client();
    cosign(&c, &log, 0, 1, &wkey);
    for size in 2..=40 {
        log.grow_to(size);
        cosign(&c, &log, size - 1, size, &wkey);
    }
    let metrics = c.get("/metrics").body;
    assert!(
        !metrics.contains("witness_store_compactions_total 0\n"),
        "{metrics}"
    );
    let journal = std::fs::read_to_string(data.join("state.jsonl")).unwrap();
    assert!(journal.len() < 4000, "{}", journal.len());
    assert_eq!(status(&data)["logs"][0]["latest"]["size"], 40);
    drop(w);
    let w = Witness::start(&data, &[]);
    assert_eq!(
        assert_refused(&w.client().add_checkpoint(&log.request(0, 40)), 409),
        "40\n"
    );
}

#[test]
fn a_request_slower_than_the_timeout_is_answered_408() {
    use std::io::{Read as _, Write as _};
    let (data, _, _) = setup("timeout", 1);
    let w = Witness::start(&data, &["--request-timeout-ms", "300"]);
    let addr = w.base.strip_prefix("http://").unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    // Headers announce 100 bytes; only 10 arrive.
    tcp.write_all(
        b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 100\r\n\r\nold 0\n\nex",
    )
    .unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[test]
fn a_bad_monitoring_prefix_is_refused() {
    let (data, _, _) = setup("prefix", 1);
    for bad in ["monitor", "/a//b", "/{x}"] {
        let err = serve_fails(&data, &["--monitoring-prefix", bad]);
        assert!(err.contains("monitoring prefix"), "{err}");
    }
}
