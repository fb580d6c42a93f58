//! The state journal, evidence file and configuration formats: round trips,
//! torn tails after a crash, and the corruption they refuse.

use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::hash::Hash;
use modeltrail::tlog::note::{KeyType, Note, SignerKey, VerifierKey};
use modeltrail_witness::config::{Config, ConfigError};
use modeltrail_witness::journal::{
    EvidenceRecord, JournalError, StateRecord, parse_evidence, replay_state,
};

fn log_key(origin: &str) -> SignerKey {
    SignerKey::from_seed(origin, KeyType::Ed25519, &[1; 32]).unwrap()
}

fn record(origin: &str, size: u64, root: u8) -> StateRecord {
    let text = Checkpoint {
        origin: origin.into(),
        size,
        root: Hash([root; 32]),
        extensions: vec![],
    }
    .to_text();
    StateRecord::new(
        Note::sign(&text, &[&log_key(origin)]).unwrap(),
        1_700_000_000 + size,
    )
    .unwrap()
}

fn journal(records: &[StateRecord]) -> Vec<u8> {
    records.iter().flat_map(StateRecord::to_line).collect()
}

#[test]
fn replay_keeps_the_latest_record_per_origin() {
    let bytes = journal(&[record("a", 1, 1), record("b", 5, 2), record("a", 3, 3)]);
    let replay = replay_state(&bytes).unwrap();
    assert_eq!(replay.records, 3);
    assert_eq!(replay.valid_len, bytes.len());
    assert_eq!(replay.latest["a"], record("a", 3, 3));
    assert_eq!(replay.latest["b"].head().size, 5);
}

#[test]
fn a_torn_tail_is_ignored_and_reported() {
    let good = journal(&[record("a", 1, 1), record("a", 2, 2)]);
    let last = record("a", 3, 3).to_line();
    for cut in 0..last.len() {
        let mut bytes = good.clone();
        bytes.extend_from_slice(&last[..cut]);
        let replay = replay_state(&bytes).unwrap();
        assert_eq!(replay.valid_len, good.len(), "cut at {cut}");
        assert_eq!(replay.latest["a"].head().size, 2);
    }
}

#[test]
fn a_bad_complete_line_is_corruption() {
    let mut bytes = journal(&[record("a", 1, 1)]);
    bytes.extend_from_slice(b"{\"note\":\"x\",\"time\":1}\n");
    bytes.extend(journal(&[record("a", 2, 2)]));
    assert!(matches!(
        replay_state(&bytes),
        Err(JournalError::BadRecord { line: 2, .. })
    ));
    let unknown_field = b"{\"note\":\"x\",\"time\":1,\"extra\":0}\n";
    assert!(replay_state(unknown_field).is_err());
}

#[test]
fn a_journal_that_goes_back_is_refused() {
    for bytes in [
        journal(&[record("a", 5, 1), record("a", 4, 1)]),
        journal(&[record("a", 5, 1), record("a", 5, 2)]),
    ] {
        assert!(matches!(
            replay_state(&bytes),
            Err(JournalError::Backwards { line: 2, .. })
        ));
    }
    // Repeating the same checkpoint is fine.
    assert!(replay_state(&journal(&[record("a", 5, 1), record("a", 5, 1)])).is_ok());
}

#[test]
fn evidence_round_trips_and_checks_its_request() {
    let r = record("a", 4, 4);
    let request = modeltrail_witness::AddCheckpointRequest::new(
        0,
        vec![],
        Note::sign(r.note.text(), &[&log_key("a")]).unwrap(),
    )
    .unwrap();
    let e = EvidenceRecord {
        origin: "a".into(),
        kind: "fork".into(),
        received: "2026-11-27T12:00:00.000Z".into(),
        received_unix_ms: 1_795_780_800_000,
        status: 409,
        stored: None,
        checkpoint: String::from_utf8(request.note().to_bytes()).unwrap(),
        request: String::from_utf8(request.to_bytes()).unwrap(),
    };
    let mut bytes = e.to_line();
    bytes.extend_from_slice(b"{\"torn");
    let (records, valid) = parse_evidence(&bytes).unwrap();
    assert_eq!(records, std::slice::from_ref(&e));
    assert_eq!(valid, bytes.len() - 6);

    let wrong_kind = EvidenceRecord {
        kind: "mystery".into(),
        ..e.clone()
    };
    assert!(parse_evidence(&wrong_kind.to_line()).is_err());
    let wrong_origin = EvidenceRecord {
        origin: "b".into(),
        ..e.clone()
    };
    assert!(parse_evidence(&wrong_origin.to_line()).is_err());
    let bad_request = EvidenceRecord {
        request: "old 0\n".into(),
        ..e
    };
    assert!(parse_evidence(&bad_request.to_line()).is_err());
}

#[test]
fn config_round_trips_and_refuses_what_it_cannot_mean() {
    let k1 = log_key("example.com/log").verifier();
    let k2 = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[2; 32])
        .unwrap()
        .verifier();
    let mut config = Config::new("w.example/w1");
    config.add_log("example.com/log", k1.clone()).unwrap();
    config.add_log("example.com/log", k2).unwrap();
    config.add_log("other.example/log", k1.clone()).unwrap();
    assert_eq!(Config::parse(&config.to_bytes()).unwrap(), config);
    assert!(matches!(
        config.add_log("example.com/log", k1.clone()),
        Err(ConfigError::DuplicateKey { .. })
    ));
    let cosigner: VerifierKey = SignerKey::from_seed("w", KeyType::CosignatureV1, &[3; 32])
        .unwrap()
        .verifier();
    assert!(matches!(
        config.add_log("x", cosigner),
        Err(ConfigError::Key { .. })
    ));
    assert!(matches!(
        config.add_log("a\nb", k1.clone()),
        Err(ConfigError::Origin(_))
    ));

    let vkey = k1.to_string();
    for (bad, why) in [
        (r#"{"v":2,"name":"w","logs":[]}"#.to_string(), "version"),
        (
            r#"{"v":1,"name":"w","logs":[],"x":1}"#.to_string(),
            "unknown field",
        ),
        (
            r#"{"v":1,"name":"w","logs":[{"origin":"o","keys":[]}]}"#.to_string(),
            "no keys",
        ),
        (
            format!(
                r#"{{"v":1,"name":"w","logs":[{{"origin":"o","keys":["{vkey}"]}},{{"origin":"o","keys":["{vkey}"]}}]}}"#
            ),
            "origin twice",
        ),
        (
            r#"{"v":1,"name":"w","logs":[{"origin":"o","keys":["nope"]}]}"#.to_string(),
            "bad key",
        ),
    ] {
        assert!(Config::parse(bad.as_bytes()).is_err(), "{why}");
    }
}
