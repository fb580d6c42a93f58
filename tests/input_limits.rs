//! The size limits on untrusted files (issue 18, item 14): a tlog-policy
//! ([`MAX_POLICY_BYTES`]), an evidence file ([`MAX_EVIDENCE_BYTES`]) and a
//! tlog-proof ([`MAX_PROOF_BYTES`]). The parsers refuse one byte over the
//! limit with their `TooLarge` error, and accept a valid file at exactly
//! the limit; the CLI reads at most the limit plus one byte, so a huge file
//! is refused at once with a one-line message naming the file and the limit
//! (not read whole into memory first). HTTP body limits are in
//! `tests/http_limits.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use modeltrail::audit::evidence::{Evidence, EvidenceParseError, MAX_EVIDENCE_BYTES};
use modeltrail::tlog::note::{KeyType, SignerKey};
use modeltrail::tlog::policy::{MAX_POLICY_BYTES, Policy, PolicyParseError};
use modeltrail::tlog::tlog_proof::{MAX_PROOF_BYTES, TlogProof, TlogProofParseError};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("input_limits")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn modeltrail(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_modeltrail"))
        .args(args)
        .output()
        .expect("run modeltrail");
    (out, started.elapsed())
}

/// A valid policy padded with a comment to exactly `len` bytes.
fn policy_of_len(len: usize) -> Vec<u8> {
    let log = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[3; 32]).unwrap();
    let head = format!("log {}\nquorum none\n", log.verifier());
    let pad = len - head.len() - 2;
    let mut text = head.into_bytes();
    text.push(b'#');
    text.extend(std::iter::repeat_n(b'x', pad));
    text.push(b'\n');
    assert_eq!(text.len(), len);
    text
}

/// A file that claims `len` bytes without using the disk (sparse).
fn sparse(path: &Path, len: u64) -> String {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A failure in one `modeltrail: ` line that names `file` and `limit`,
/// within a few seconds.
fn assert_refused_for_size(out: &(Output, Duration), file: &str, limit: usize) {
    let (out, took) = out;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("modeltrail: "), "{stderr}");
    assert!(
        stderr.contains(file)
            && stderr.contains(&format!("larger than the limit of {limit} bytes")),
        "{stderr}"
    );
    assert!(*took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn the_parsers_refuse_one_byte_over_their_limit() {
    // The policy: valid at the limit, refused one byte over.
    let at = policy_of_len(MAX_POLICY_BYTES);
    Policy::parse(&at).expect("a valid policy at the limit parses");
    assert!(matches!(
        Policy::parse(&policy_of_len(MAX_POLICY_BYTES + 1)),
        Err(PolicyParseError::TooLarge)
    ));

    // A tlog-proof and an evidence file one byte over: refused for their
    // size, not for what the parser would find first.
    let mut proof = b"c2sp.org/tlog-proof@v1\nindex 0\n".to_vec();
    proof.resize(MAX_PROOF_BYTES + 1, b'A');
    assert!(matches!(
        TlogProof::parse(&proof),
        Err(TlogProofParseError::TooLarge)
    ));
    proof.truncate(MAX_PROOF_BYTES);
    assert!(!matches!(
        TlogProof::parse(&proof),
        Err(TlogProofParseError::TooLarge)
    ));

    let mut evidence = b"modeltrail/evidence/v1\n".to_vec();
    evidence.resize(MAX_EVIDENCE_BYTES + 1, b'A');
    assert!(matches!(
        Evidence::parse(&evidence),
        Err(EvidenceParseError::TooLarge)
    ));
    evidence.truncate(MAX_EVIDENCE_BYTES);
    assert!(!matches!(
        Evidence::parse(&evidence),
        Err(EvidenceParseError::TooLarge)
    ));
}

#[test]
fn the_cli_refuses_oversized_files_without_reading_them() {
    let dir = scratch("cli");
    let policy = dir.join("policy");
    std::fs::write(&policy, policy_of_len(MAX_POLICY_BYTES)).unwrap();
    let policy = policy.to_str().unwrap();
    let leaf = dir.join("leaf");
    std::fs::write(&leaf, b"entry").unwrap();
    let leaf = leaf.to_str().unwrap();
    // 64 GiB each: reading one whole would exhaust memory.
    let huge = 1u64 << 36;

    // A policy at the limit is read; one over, or huge, is refused.
    let small_proof = dir.join("small.tlog-proof");
    std::fs::write(&small_proof, b"not a proof\n").unwrap();
    let small_proof = small_proof.to_str().unwrap();
    let (out, _) = modeltrail(&[
        "tlog-proof",
        "verify",
        small_proof,
        "--leaf",
        leaf,
        "--policy",
        policy,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("does not start with") && !stderr.contains("larger than"),
        "{stderr}"
    );

    let over = dir.join("over.policy");
    std::fs::write(&over, policy_of_len(MAX_POLICY_BYTES + 1)).unwrap();
    let over = over.to_str().unwrap();
    let out = modeltrail(&[
        "tlog-proof",
        "verify",
        small_proof,
        "--leaf",
        leaf,
        "--policy",
        over,
    ]);
    assert_refused_for_size(&out, over, MAX_POLICY_BYTES);
    let huge_policy = sparse(&dir.join("huge.policy"), huge);
    for args in [
        &[
            "tlog-proof",
            "verify",
            small_proof,
            "--leaf",
            leaf,
            "--policy",
            &huge_policy,
        ][..],
        &["verify", small_proof, "--policy", &huge_policy],
    ] {
        assert_refused_for_size(&modeltrail(args), &huge_policy, MAX_POLICY_BYTES);
    }

    // The tlog-proof and the evidence file.
    let huge_proof = sparse(&dir.join("huge.tlog-proof"), huge);
    let out = modeltrail(&[
        "tlog-proof",
        "verify",
        &huge_proof,
        "--leaf",
        leaf,
        "--policy",
        policy,
    ]);
    assert_refused_for_size(&out, &huge_proof, MAX_PROOF_BYTES);
    let huge_evidence = sparse(&dir.join("huge.evidence"), huge);
    let out = modeltrail(&["verify", &huge_evidence, "--policy", policy]);
    assert_refused_for_size(&out, &huge_evidence, MAX_EVIDENCE_BYTES);

    // One byte over through standard input is refused too.
    let mut proof = b"c2sp.org/tlog-proof@v1\n".to_vec();
    proof.resize(MAX_PROOF_BYTES + 1, b'A');
    let over_proof = dir.join("over.tlog-proof");
    std::fs::write(&over_proof, &proof).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_modeltrail"))
        .args([
            "tlog-proof",
            "verify",
            "-",
            "--leaf",
            leaf,
            "--policy",
            policy,
        ])
        .stdin(std::fs::File::open(&over_proof).unwrap())
        .output()
        .unwrap();
    assert_refused_for_size(&(out, started.elapsed()), "-", MAX_PROOF_BYTES);
}
