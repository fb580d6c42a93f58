//! C2SP signed-note, tlog-checkpoint and cosignature/v1 vectors from
//! `tests/data/note/generated.json` (made by an independent implementation,
//! see tests/data/README.md) and the signed-note spec's own example.

use modeltrail::tlog::Hash;
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::note::{KeyType, Note, NoteError, SignerKey, VerifierKey};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let data: Value = serde_json::from_str(include_str!("data/note/generated.json"))
        .expect("generated.json is JSON");
    data["cases"].as_array().expect("cases array").clone()
}

fn str_field<'a>(case: &'a Value, field: &str) -> Option<&'a str> {
    case.get(field).and_then(Value::as_str)
}

/// The keys a case's verifier knows: the log key and the witness key, if any.
fn known_keys(case: &Value) -> Vec<VerifierKey> {
    ["log_vkey", "witness_vkey"]
        .iter()
        .filter_map(|f| str_field(case, f))
        .map(|s| VerifierKey::parse(s).expect("vector vkey parses"))
        .collect()
}

#[test]
fn every_case_matches_its_valid_flag() {
    let cases = cases();
    assert_eq!(cases.len(), 5);
    for case in &cases {
        let what = str_field(case, "what").unwrap();
        let note_text = str_field(case, "note").unwrap();
        let valid = case["valid"].as_bool().unwrap();
        let note =
            Note::parse(note_text.as_bytes()).unwrap_or_else(|e| panic!("{what}: parse: {e}"));
        assert_eq!(note.to_string(), note_text, "{what}: round trip");

        let keys = known_keys(case);
        let log_key = keys[0].clone();
        let witnesses = &keys[1..];
        let result = note.verify(&keys);
        assert_eq!(result.is_ok(), valid, "{what}: {result:?}");
        let opened = Checkpoint::open(note_text.as_bytes(), &log_key, witnesses);
        assert_eq!(opened.is_ok(), valid, "{what}: {opened:?}");
        let Ok(verified) = result else { continue };

        assert_eq!(verified[0].key, log_key, "{what}");
        assert_eq!(verified[0].timestamp, None, "{what}");
        if let Some(ts) = case.get("timestamp").and_then(Value::as_u64) {
            assert_eq!(verified.len(), 2, "{what}");
            assert_eq!(verified[1].key.key_type(), KeyType::CosignatureV1);
            assert_eq!(verified[1].timestamp, Some(ts), "{what}");
            let sig = &note.signatures()[1];
            assert_eq!(
                cosignature::verify(&verified[1].key, note.text(), sig).unwrap(),
                ts
            );
        }

        let cp = opened.unwrap().checkpoint;
        assert_eq!(cp.to_text(), note.text(), "{what}: checkpoint round trip");
        if let Some(origin) = str_field(case, "origin") {
            assert_eq!(cp.origin, origin);
            assert_eq!(cp.size, case["size"].as_u64().unwrap());
            assert_eq!(
                cp.root,
                Hash::from_base64(str_field(case, "root").unwrap()).unwrap()
            );
        }
    }
}

#[test]
fn invalid_cases_fail_for_the_right_reason() {
    for case in cases() {
        let note = Note::parse(str_field(&case, "note").unwrap().as_bytes()).unwrap();
        let err = note.verify(&known_keys(&case)).err();
        match str_field(&case, "what").unwrap() {
            "tree size altered after signing" => {
                assert!(
                    matches!(err, Some(NoteError::InvalidSignature { .. })),
                    "{err:?}"
                )
            }
            "signed only by a key the verifier does not know" => {
                assert_eq!(err, Some(NoteError::NoKnownSignature))
            }
            _ => assert_eq!(err, None),
        }
    }
}

#[test]
fn vector_private_key_reproduces_the_signed_checkpoint() {
    let case = &cases()[0];
    let skey = SignerKey::parse(str_field(case, "log_skey").unwrap()).unwrap();
    assert_eq!(
        skey.to_private_string(),
        str_field(case, "log_skey").unwrap()
    );
    assert_eq!(
        skey.verifier().to_string(),
        str_field(case, "log_vkey").unwrap()
    );
    let note_text = str_field(case, "note").unwrap();
    let parsed = Note::parse(note_text.as_bytes()).unwrap();
    // Ed25519 is deterministic: re-signing gives the same note, byte for byte.
    let signed = Note::sign(parsed.text(), &[&skey]).unwrap();
    assert_eq!(signed.to_string(), note_text);
}

#[test]
fn vector_vkeys_round_trip() {
    for case in cases() {
        for field in ["log_vkey", "witness_vkey"] {
            if let Some(s) = str_field(&case, field) {
                assert_eq!(VerifierKey::parse(s).unwrap().to_string(), s);
            }
        }
    }
}

#[test]
fn signed_note_spec_example() {
    let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    let key = VerifierKey::parse(vkey).unwrap();
    assert_eq!(key.to_string(), vkey);
    assert_eq!(key.key_type(), KeyType::Ed25519);
    let parsed = Note::parse(note.as_bytes()).unwrap();
    assert_eq!(parsed.text(), "This is an example message.\n");
    assert_eq!(parsed.to_string(), note);
    let verified = parsed.verify(std::slice::from_ref(&key)).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].key, key);

    let tampered = note.replace("example message", "exAmple message");
    let err = Note::parse(tampered.as_bytes())
        .unwrap()
        .verify(&[key])
        .unwrap_err();
    assert!(matches!(err, NoteError::InvalidSignature { .. }));
}
