//! What the CLI reads from users: JSON bodies and cards (read exactly as the
//! log reads them), proof files (every line accounted for) and the error
//! lines it prints (each cause once).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli_input")
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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh Ed25519 signing key file made by `keygen`.
fn key(dir: &Path) -> PathBuf {
    let file = dir.join("signer.key");
    let out = modeltrail(&[
        "keygen",
        "--name",
        "signer",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    file
}

/// RFC 8785 Appendix B and §3.2.2.3 values, written in shortest or
/// near-shortest form, with the canonical text of the double each denotes
/// (within the log's number range, ±(2^53 − 1)). serde_json's default float
/// parser is off by an ulp on the first three.
const NUMBERS: [(&str, &str); 12] = [
    ("333333333.33333329", "333333333.3333333"),
    ("1e-23", "1e-23"),
    ("9.999999999999997e-7", "9.999999999999997e-7"),
    ("9007199254740991.0", "9007199254740991"),
    ("1E-7", "1e-7"),
    ("4.50", "4.5"),
    ("2e-3", "0.002"),
    ("0.000000000000000000000000001", "1e-27"),
    ("5e-324", "5e-324"),
    ("-1.5e-10", "-1.5e-10"),
    ("-0", "0"),
    ("0.000001", "0.000001"),
];

#[test]
fn entry_sign_signs_exactly_the_numbers_it_was_given() {
    let dir = scratch("numbers");
    let key = key(&dir);
    for (given, canonical) in NUMBERS {
        let body = dir.join("body.json");
        std::fs::write(&body, format!("{{\"n\": {given}}}")).unwrap();
        let out = modeltrail(&[
            "entry",
            "sign",
            "--kind",
            "inference",
            "--body",
            body.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{given}: {}", stderr(&out));
        let entry = String::from_utf8(out.stdout).unwrap();
        assert!(
            entry.starts_with(&format!("{{\"body\":{{\"n\":{canonical}}},")),
            "{given} should be signed as {canonical}: {entry}"
        );
    }
}

#[test]
fn entry_sign_refuses_duplicate_member_names() {
    let dir = scratch("duplicates");
    let key = key(&dir);
    let body = dir.join("body.json");
    std::fs::write(&body, r#"{"model": "a", "model": "b"}"#).unwrap();
    let out = modeltrail(&[
        "entry",
        "sign",
        "--kind",
        "inference",
        "--body",
        body.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("duplicate object member name \"model\""),
        "{err}"
    );
}

/// A tlog-proof of entry 2 of a 4-entry log, its entry and a tlog-policy
/// trusting the log alone, written to `dir`: (proof, entry, policy) paths.
fn tlog_proof_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use modeltrail::tlog::Hash;
    use modeltrail::tlog::hash::{stored_hashes, tree_hash};
    use modeltrail::tlog::note::{KeyType, Note, SignerKey};
    use modeltrail::tlog::proof::prove_inclusion;
    use modeltrail::tlog::tlog_proof::TlogProof;

    let log = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[3; 32]).unwrap();
    let entries: Vec<Vec<u8>> = (0..4)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let mut stored: Vec<Hash> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        stored.extend(stored_hashes(i as u64, e, &stored).unwrap());
    }
    let root = tree_hash(4, &stored).unwrap();
    let note = Note::sign(&format!("example.com/log\n4\n{root}\n"), &[&log]).unwrap();
    let proof = TlogProof {
        extra: None,
        index: 2,
        proof: prove_inclusion(4, 2, &stored).unwrap(),
        checkpoint: note.to_bytes(),
    };
    let (p, e, pol) = (dir.join("p"), dir.join("e"), dir.join("policy"));
    std::fs::write(&p, proof.to_bytes()).unwrap();
    std::fs::write(&e, &entries[2]).unwrap();
    std::fs::write(&pol, format!("log {}\nquorum none\n", log.verifier())).unwrap();
    (p, e, pol)
}

fn tlog_proof_verify(proof: &Path, entry: &Path, policy: &Path) -> Output {
    modeltrail(&[
        "tlog-proof",
        "verify",
        proof.to_str().unwrap(),
        "--leaf",
        entry.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ])
}

#[test]
fn tlog_proof_verify_tolerates_the_newline_jq_adds() {
    let dir = scratch("tlog-proof-newline");
    let (proof, entry, policy) = tlog_proof_files(&dir);
    let out = tlog_proof_verify(&proof, &entry, &policy);
    assert!(out.status.success(), "{}", stderr(&out));
    // `jq -r .tlog_proof` appends a newline; a shell heredoc may add more.
    let text = std::fs::read(&proof).unwrap();
    for extra in ["\n", "\n\n", "\r\n"] {
        let mut with = text.clone();
        with.extend_from_slice(extra.as_bytes());
        std::fs::write(&proof, &with).unwrap();
        let out = tlog_proof_verify(&proof, &entry, &policy);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    }
}

#[test]
fn error_lines_name_each_cause_once() {
    let dir = scratch("tlog-proof-unsigned");
    let (proof, entry, policy) = tlog_proof_files(&dir);
    // Cut the checkpoint's signature line: the note has none left.
    let text = String::from_utf8(std::fs::read(&proof).unwrap()).unwrap();
    let cut = text.rfind("\u{2014} ").unwrap();
    std::fs::write(&proof, &text[..cut]).unwrap();
    let out = tlog_proof_verify(&proof, &entry, &policy);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    for (i, a) in parts.iter().enumerate() {
        for b in &parts[i + 1..] {
            assert!(!a.contains(b), "{b:?} repeats {a:?} in {err}");
        }
    }
}

#[test]
fn only_an_empty_proof_file_is_an_empty_proof() {
    use modeltrail::tlog::hash::leaf_hash;
    let dir = scratch("proof-file");
    // A one-leaf tree: its root is the leaf hash and its inclusion proof is
    // empty, so a file read as "no hashes" verifies.
    let leaf = leaf_hash(b"entry").to_string();
    let proof = dir.join("proof");
    let verify = |content: &str| {
        std::fs::write(&proof, content).unwrap();
        modeltrail(&[
            "proof",
            "verify-inclusion",
            "--leaf-hash",
            &leaf,
            "--index",
            "0",
            "--size",
            "1",
            "--root",
            &leaf,
            "--proof",
            proof.to_str().unwrap(),
        ])
    };
    let out = verify("");
    assert!(out.status.success(), "{}", stderr(&out));
    for (content, line) in [
        ("\n", 1),
        ("\n\n", 1),
        (" \n", 1),
        ("\r\n", 1),
        ("AAAA\n", 1),
        (&format!("{leaf}\n\n"), 2),
        (&format!("{leaf}\n\n{leaf}\n"), 2),
        (&format!("{leaf}\nnot base64\n"), 2),
    ] {
        let out = verify(content);
        assert_eq!(out.status.code(), Some(1), "{content:?} was accepted");
        let err = stderr(&out);
        assert!(err.contains(&format!(" line {line}")), "{content:?}: {err}");
    }
}
