//! Split view: a log with one key shows two histories. Witnesses that saw
//! the honest one refuse the fork (at the same size and at a larger size)
//! and keep the evidence; a client that demands a quorum of witnesses, via
//! `modeltrail::tlog::policy`, accepts the honest checkpoint and rejects
//! the forked one, even when a witness the log partitioned cosigned it.

mod common;

use std::path::PathBuf;

use common::*;
use modeltrail::tlog::note::VerifierKey;
use modeltrail::tlog::policy::{Policy, PolicyError};

struct W {
    data: PathBuf,
    vkey: VerifierKey,
    server: Witness,
}

fn witness(dir: &str, name: &str, log: &TestLog) -> W {
    let (data, vkey) = init(dir, name);
    add_log(&data, log);
    let server = Witness::start(&data, &[]);
    W { data, vkey, server }
}

/// `log`'s checkpoint at `size`, from `old`, cosigned by each of
/// `witnesses`: the note with all their cosignatures.
fn cosigned_by(witnesses: &[&W], log: &TestLog, old: u64, size: u64) -> Vec<u8> {
    let mut note = log.note(size).to_bytes();
    for w in witnesses {
        let r = w.server.client().add_checkpoint(&log.request(old, size));
        assert_cosigned(&r, log, size, &w.vkey);
        note.extend(r.body.as_bytes());
    }
    note
}

#[test]
fn witnesses_refuse_a_fork_keep_evidence_and_a_quorum_client_rejects_it() {
    let mut honest = TestLog::new("example.com/log", 1, 8);
    let w1 = witness("split-w1", "w1.example/witness", &honest);
    let w2 = witness("split-w2", "w2.example/witness", &honest);
    // w3 is a witness the log manages to partition: it never sees the
    // honest history.
    let w3 = witness("split-w3", "w3.example/witness", &honest);

    let policy = Policy::parse(
        format!(
            "log {}\nwitness w1 {}\nwitness w2 {}\nwitness w3 {}\ngroup g 2 w1 w2 w3\nquorum g\n",
            honest.key.verifier(),
            w1.vkey,
            w2.vkey,
            w3.vkey
        )
        .as_bytes(),
    )
    .unwrap();

    // The honest history at 8, cosigned by w1 and w2: accepted.
    let honest_8 = cosigned_by(&[&w1, &w2], &honest, 0, 8);
    assert_eq!(
        policy.verify_checkpoint(&honest_8).unwrap().root,
        honest.root(8)
    );

    // The fork: same key, different records from index 3.
    let fork = honest.fork("rewritten", 3, 12);
    assert_ne!(fork.root(8), honest.root(8));

    // Same size, different root: 409 and evidence of a fork.
    for w in [&w1, &w2] {
        let r = w.server.client().add_checkpoint(&fork.request(8, 8));
        assert_eq!(assert_refused(&r, 409), "8\n");
    }
    // A larger fork, with the fork's own consistency proof from 8: it does
    // not verify against the honest root at 8: 422, evidence.
    for w in [&w1, &w2] {
        let r = w.server.client().add_checkpoint(&fork.request(8, 12));
        assert_refused(&r, 422);
    }
    // The partitioned witness cosigns the fork: it has nothing to contradict.
    let forked_12 = cosigned_by(&[&w3], &fork, 0, 12);

    // The quorum client rejects the forked checkpoint (1 of 3, needs 2)...
    match policy.verify_checkpoint(&forked_12) {
        Err(PolicyError::QuorumNotMet { cosigned: 1, .. }) => {}
        other => panic!("the forked checkpoint must fail the quorum: {other:?}"),
    }
    // ...and the log's signature alone is not enough either.
    assert!(policy.verify_checkpoint(&fork.note(12).to_bytes()).is_err());

    // The honest log goes on and is witnessed: 8 -> 12 with a real proof.
    honest.grow_to(12);
    let honest_12 = cosigned_by(&[&w1, &w2], &honest, 8, 12);
    assert_eq!(policy.verify_checkpoint(&honest_12).unwrap().size, 12);

    // Each honest witness kept both pieces of evidence, with the stored
    // checkpoint (cosigned by that witness) and the conflicting one.
    for w in [&w1, &w2] {
        let e = evidence(&w.data);
        assert_eq!(e.len(), 2, "{e:?}");
        let kinds: Vec<&str> = e.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["fork", "inconsistent_proof"]);
        for (record, (size, status)) in e.iter().zip([(8, 409), (12, 422)]) {
            assert_eq!(record["origin"], "example.com/log");
            assert_eq!(record["status"], status);
            assert_eq!(
                record["checkpoint"],
                String::from_utf8(fork.note(size).to_bytes()).unwrap()
            );
            assert_eq!(
                record["request"],
                String::from_utf8(fork.request(8, size)).unwrap()
            );
            let stored = record["stored"].as_str().unwrap();
            assert!(stored.starts_with(&honest.text(8)), "{stored}");
            let stored_checkpoint = modeltrail::tlog::checkpoint::Checkpoint::open(
                stored.as_bytes(),
                &honest.key.verifier(),
                std::slice::from_ref(&w.vkey),
            )
            .unwrap();
            assert_eq!(
                stored_checkpoint.verified.len(),
                2,
                "log signature and cosignature"
            );
            assert!(record["received"].as_str().unwrap().ends_with('Z'));
        }
    }
    // The partitioned witness saw nothing wrong.
    assert!(evidence(&w3.data).is_empty());
}
