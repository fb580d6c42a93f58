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
