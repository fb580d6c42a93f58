//! The auditor CLI, run as a real process: every shared Merkle vector through
//! `proof verify-*`, the note vectors through `note verify`, `keygen`, and
//! `tlog-proof verify` on a proof built by the library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use modeltrail::tlog::cosignature::cosign;
use modeltrail::tlog::hash::{Hash, leaf_hash, stored_hashes, tree_hash};
use modeltrail::tlog::note::{KeyType, Note, SignerKey, VerifierKey};
use modeltrail::tlog::proof::prove_inclusion;
use modeltrail::tlog::tlog_proof::TlogProof;
use serde_json::Value;

/// A fresh directory under the target directory, removed by the next run.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn modeltrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modeltrail"))
        .args(args)
        .output()
        .expect("run modeltrail")
}

/// Asserts a failure carries exactly one line of reason on stderr.
fn assert_one_line_failure(out: &Output, context: &str) {
    assert!(!out.status.success(), "{context}: unexpectedly succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) {
        assert!(stderr.starts_with("modeltrail: "), "{context}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{context}: {stderr}");
    }
}

fn vectors(kind: &str) -> Vec<(PathBuf, Value)> {
    let mut found = Vec::new();
    let mut dirs = vec![
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/merkle")
            .join(kind),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                found.push((path, value));
            }
        }
    }
    found
}

/// Writes a proof file: one hash per line, exactly as the vector lists them
/// (so an empty string becomes an empty line).
fn write_proof(dir: &Path, proof: &Value) -> PathBuf {
    let path = dir.join("proof.txt");
    let text: String = proof
        .as_array()
        .map(|hashes| {
            hashes
                .iter()
                .map(|h| format!("{}\n", h.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_inclusion_vector_through_the_cli() {
    let dir = scratch("inclusion");
    let cases = vectors("inclusion");
    assert!(cases.len() >= 8, "found {} inclusion vectors", cases.len());
    for (path, v) in cases {
        let proof = write_proof(&dir, &v["proof"]);
        let out = modeltrail(&[
            "proof",
            "verify-inclusion",
            "--leaf-hash",
            v["leafHash"].as_str().unwrap(),
            "--index",
            &v["leafIdx"].to_string(),
            "--size",
            &v["treeSize"].to_string(),
            "--root",
            v["root"].as_str().unwrap(),
            "--proof",
            proof.to_str().unwrap(),
        ]);
        let context = path.display().to_string();
        match v["wantErr"].as_bool().unwrap() {
            true => assert_one_line_failure(&out, &context),
            false => assert!(out.status.success(), "{context}: {out:?}"),
        }
    }
}

#[test]
fn every_consistency_vector_through_the_cli() {
    let dir = scratch("consistency");
    let cases = vectors("consistency");
    assert!(
        cases.len() >= 4,
        "found {} consistency vectors",
        cases.len()
    );
    for (path, v) in cases {
        let proof = write_proof(&dir, &v["proof"]);
        let out = modeltrail(&[
            "proof",
            "verify-consistency",
            "--old-size",
            &v["size1"].to_string(),
            "--new-size",
            &v["size2"].to_string(),
            "--old-root",
            v["root1"].as_str().unwrap(),
            "--new-root",
            v["root2"].as_str().unwrap(),
            "--proof",
            proof.to_str().unwrap(),
        ]);
        let context = path.display().to_string();
        match v["wantErr"].as_bool().unwrap() {
            true => assert_one_line_failure(&out, &context),
            false => assert!(out.status.success(), "{context}: {out:?}"),
        }
    }
}

#[test]
fn note_vectors_through_the_cli() {
    let dir = scratch("notes");
    let data: Value =
        serde_json::from_str(include_str!("data/note/generated.json")).expect("vectors are JSON");
    for case in data["cases"].as_array().unwrap() {
        let what = case["what"].as_str().unwrap();
        let file = dir.join("note");
        std::fs::write(&file, case["note"].as_str().unwrap()).unwrap();
        let mut args = vec!["note", "verify"];
        for field in ["log_vkey", "witness_vkey"] {
            if let Some(key) = case[field].as_str() {
                args.extend(["--key", key]);
            }
        }
        args.push(file.to_str().unwrap());
        let out = modeltrail(&args);
        match case["valid"].as_bool().unwrap() {
            true => assert!(out.status.success(), "{what}: {out:?}"),
            false => assert_one_line_failure(&out, what),
        }
    }
}

#[test]
fn the_signed_note_spec_example_verifies_from_stdin() {
    use std::io::Write as _;
    let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_modeltrail"))
        .args([
            "note",
            "verify",
            "--key",
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(note.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("example.com/foo"));
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read() {
    let dir = scratch("keygen");
    for (name, flag, key_type) in [
        ("log.example/log", None, KeyType::Ed25519),
        (
            "witness.example",
            Some("--cosigner"),
            KeyType::CosignatureV1,
        ),
    ] {
        let file = dir.join(name.replace('/', "_"));
        let mut args = vec!["keygen", "--name", name, "--out", file.to_str().unwrap()];
        args.extend(flag);
        let out = modeltrail(&args);
        assert!(out.status.success(), "{out:?}");
        let vkey = VerifierKey::parse(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        assert_eq!((vkey.name(), vkey.key_type()), (name, key_type));

        let private = std::fs::read_to_string(&file).unwrap();
        let signer = SignerKey::parse(private.trim_end()).unwrap();
        assert_eq!(signer.verifier(), vkey);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // An existing key is never overwritten.
        let again = modeltrail(&args);
        assert_one_line_failure(&again, "keygen over an existing file");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), private);
    }
}

#[test]
fn a_key_generated_by_the_cli_verifies_what_it_signs() {
    let dir = scratch("keygen-sign");
    let file = dir.join("log.key");
    let out = modeltrail(&[
        "keygen",
        "--name",
        "a.example/log",
        "--out",
        file.to_str().unwrap(),
    ]);
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let signer = SignerKey::parse(std::fs::read_to_string(&file).unwrap().trim_end()).unwrap();
    let note = Note::sign("hello\n", &[&signer]).unwrap();
    let note_file = dir.join("note");
    std::fs::write(&note_file, note.to_bytes()).unwrap();
    let ok = modeltrail(&[
        "note",
        "verify",
        "--key",
        &vkey,
        note_file.to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "{ok:?}");

    // The same note under a different key with the same name is refused.
    let other = SignerKey::from_seed("a.example/log", KeyType::Ed25519, &[9; 32]).unwrap();
    let other_vkey = other.verifier().to_string();
    let bad = modeltrail(&[
        "note",
        "verify",
        "--key",
        &other_vkey,
        note_file.to_str().unwrap(),
    ]);
    assert_one_line_failure(&bad, "unknown signer only");
}

#[test]
fn tlog_proof_verify_checks_quorum_and_inclusion() {
    let dir = scratch("tlog-proof");
    let log = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[3; 32]).unwrap();
    let w1 = SignerKey::from_seed("w1.example", KeyType::CosignatureV1, &[4; 32]).unwrap();
    let w2 = SignerKey::from_seed("w2.example", KeyType::CosignatureV1, &[5; 32]).unwrap();
    let entries: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let mut stored: Vec<Hash> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        stored.extend(stored_hashes(i as u64, e, &stored).unwrap());
    }
    let root = tree_hash(10, &stored).unwrap();
    let mut note = Note::sign(&format!("example.com/log\n10\n{root}\n"), &[&log]).unwrap();
    cosign(&mut note, &w1, 1_764_236_400).unwrap();
    let proof = TlogProof {
        extra: None,
        index: 7,
        proof: prove_inclusion(10, 7, &stored).unwrap(),
        checkpoint: note.to_bytes(),
    };
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let proof_file = write("entry.tlog-proof", &proof.to_bytes());
    let entry_file = write("entry", &entries[7]);
    let wrong_entry = write("wrong", &entries[6]);
    let policy_1 = write(
        "policy-1",
        format!(
            "log {}\nwitness A {}\nwitness B {}\ngroup G any A B\nquorum G\n",
            log.verifier(),
            w1.verifier(),
            w2.verifier()
        )
        .as_bytes(),
    );
    let policy_2 = write(
        "policy-2",
        format!(
            "log {}\nwitness A {}\nwitness B {}\ngroup G all A B\nquorum G\n",
            log.verifier(),
            w1.verifier(),
            w2.verifier()
        )
        .as_bytes(),
    );
    let verify = |proof: &str, leaf: &str, policy: &str| {
        modeltrail(&[
            "tlog-proof",
            "verify",
            proof,
            "--leaf",
            leaf,
            "--policy",
            policy,
        ])
    };

    let ok = verify(&proof_file, &entry_file, &policy_1);
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("entry 7 is in example.com/log at size 10")
    );

    let out = verify(&proof_file, &wrong_entry, &policy_1);
    assert_one_line_failure(&out, "wrong entry");
    assert!(String::from_utf8_lossy(&out.stderr).contains("inclusion proof"));

    let out = verify(
        &proof_file,
        &entry_leaf_hash_is_not_the_entry(&dir, &entries[7]),
        &policy_1,
    );
    assert_one_line_failure(&out, "leaf hash instead of entry");

    let out = verify(&proof_file, &entry_file, &policy_2);
    assert_one_line_failure(&out, "quorum 2 of 2 with one cosignature");
    assert!(String::from_utf8_lossy(&out.stderr).contains("quorum"));
}

/// Writes the entry's leaf hash in place of the entry: the CLI hashes what it
/// is given, so this must not verify.
fn entry_leaf_hash_is_not_the_entry(dir: &Path, entry: &[u8]) -> String {
    let path = dir.join("leaf-hash");
    std::fs::write(&path, leaf_hash(entry).0).unwrap();
    path.to_str().unwrap().to_owned()
}
