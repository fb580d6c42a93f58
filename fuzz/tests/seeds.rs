//! Writes the seed corpora of the targets added for issue 18 (`batch`,
//! `log_config`, `audit_fast`, `witness_reply`, `fetch_answers`,
//! `proof_file`, `http_params`) into `seeds/<target>/`, from the fixed keys of `src/lib.rs`.
//! Run by hand when a format changes:
//!
//! ```text
//! cargo test --manifest-path fuzz/Cargo.toml --test seeds -- --ignored
//! ```
//!
//! The other targets' seeds come from `seedgen/`.

use std::path::Path;

use modeltrail::entry::{Kind, PolicyBody, SignedEntry};
use modeltrail::log::config::Config;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::note::{KeyType, Note, SignerKey};
use modeltrail::tlog::proof::{prove_consistency, prove_inclusion};
use modeltrail_fuzz::{LOG_NAME, checkpoint_note, entry_signer, log_signer, tree, witness_signer};
use serde_json::json;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn inference(request_id: &str) -> SignedEntry {
    let body = json!({
        "model": "fraud-detector",
        "version_hash": format!("b3:{}", "ab".repeat(32)),
        "request_id": request_id,
        "served_at": "2026-11-27T10:00:00.000Z",
        "input_commitment": format!("b3:{}", "01".repeat(32)),
        "output_commitment": format!("b3:{}", "02".repeat(32)),
    });
    SignedEntry::sign(Kind::Inference, body, entry_signer()).unwrap()
}

#[test]
#[ignore = "writes seeds/: run by hand"]
fn write_seeds() {
    // batch: a JSON array and NDJSON of real entries, and small shapes.
    let (a, b) = (inference("req-1"), inference("req-2"));
    let array = [&b"\x00["[..], a.bytes(), b",\n ", b.bytes(), b"]"].concat();
    write("batch", "array", &array);
    write(
        "batch",
        "ndjson",
        &[&b"\x01"[..], a.bytes(), b"\r\n", b.bytes(), b"\n\n"].concat(),
    );
    write("batch", "empty-array", b"\x00[ ]");
    write(
        "batch",
        "nested",
        b"\x00[{\"a\":[1,2,{\"b\":null}]},\"x\",1e5,true]",
    );

    // log_config: the default file, and one with every section changed.
    let config = Config::new(LOG_NAME);
    write("log_config", "default", config.to_toml().as_bytes());
    let edited = config
        .to_toml()
        .replace("memtable_entries = ", "memtable_entries = 3")
        .replace("timeout_ms = 5000", "timeout_ms = 20");
    write("log_config", "edited", edited.as_bytes());
    write(
        "log_config",
        "witness-policy",
        format!(
            "{}\n[witness]\npolicy = \"witnesses.policy\"\n",
            config.to_toml().split("[witness]").next().unwrap()
        )
        .as_bytes(),
    );

    // audit_fast: a signed inference (canonical), the same with its members
    // reordered (the fast reader takes it, the full reader refuses it), a
    // policy entry.
    let entry = inference("req-42");
    write("audit_fast", "inference", entry.bytes());
    let value: serde_json::Value = serde_json::from_slice(entry.bytes()).unwrap();
    let reordered = format!(
        "{{\"v\":1,\"signer\":{},\"sig\":{},\"kind\":\"inference\",\"body\":{}}}",
        value["signer"], value["sig"], value["body"]
    );
    write("audit_fast", "reordered", reordered.as_bytes());
    let admin = SignerKey::from_seed("admin", KeyType::Ed25519, &[8; 32]).unwrap();
    let policy = PolicyBody::initial(&admin.verifier()).unwrap().to_value();
    let policy = SignedEntry::sign(Kind::Policy, policy, &admin).unwrap();
    write("audit_fast", "policy", policy.bytes());

    // witness_reply: the real cosignature line, one by another key, sizes.
    let note = Note::parse(checkpoint_note()).unwrap();
    let real = cosignature::sign(witness_signer(), note.text(), 1_764_236_400).unwrap();
    write("witness_reply", "cosignature", real.to_line().as_bytes());
    let other =
        SignerKey::from_seed("witness.example/w2", KeyType::CosignatureV1, &[9; 32]).unwrap();
    let other = cosignature::sign(&other, note.text(), 1_764_236_400).unwrap();
    write(
        "witness_reply",
        "two-lines",
        format!("{}{}", other.to_line(), real.to_line()).as_bytes(),
    );
    write("witness_reply", "size", b"13\n");
    write("witness_reply", "size-zero", b"0\n");
    let _ = log_signer();

    // fetch_answers: each answer shape the CLI reads.
    let answers = [
        (
            "inference",
            json!({"index": 7, "version_hash": format!("b3:{}", "ab".repeat(32)), "model": "fraud-detector", "served_at": "2026-11-27T10:00:00.000Z"}),
        ),
        (
            "version",
            json!({"version": {"index": 3}, "card": {"index": 2}, "approvals": [{"index": 4}, {"index": 5}], "transitions": [{"index": 6}]}),
        ),
        (
            "model",
            json!({"model": "fraud-detector", "active": "b3:x", "history": [
            {"index": 6, "body": {"at": "2023-11-14T22:13:20.000Z", "to": "b3:one"}},
            {"index": 9, "body": {"at": "2023-11-14T22:13:19.000Z", "to": "b3:two"}},
            {"index": 11, "body": {"at": "2030-01-01T00:00:00.000Z", "to": "b3:three"}}]}),
        ),
        (
            "proof",
            json!({"index": 1, "size": 13, "root": "x", "proof": [
            tree().roots[1].to_base64(), tree().roots[2].to_base64()]}),
        ),
        ("policy", json!({"index": 0})),
    ];
    for (name, value) in answers {
        write("fetch_answers", name, value.to_string().as_bytes());
    }

    // proof_file: an inclusion and a consistency proof, an empty file.
    let stored = &tree().stored;
    let lines = |hashes: Vec<modeltrail::tlog::Hash>| -> String {
        hashes
            .iter()
            .map(|h| format!("{}\n", h.to_base64()))
            .collect()
    };
    write(
        "proof_file",
        "inclusion",
        lines(prove_inclusion(13, 5, stored).unwrap()).as_bytes(),
    );
    write(
        "proof_file",
        "consistency",
        lines(prove_consistency(5, 13, stored).unwrap()).as_bytes(),
    );
    write("proof_file", "empty", b"");

    // http_params: one request target per route (first byte: the method).
    let targets: [&[u8]; 16] = [
        b"\x00/checkpoint",
        b"\x00/checkpoint.unwitnessed",
        b"\x00/tile/0/000",
        b"\x00/tile/entries/000.p/1",
        b"\x00/v1/entries/0",
        b"\x00/v1/proof/inclusion?index=0&size=1",
        b"\x00/v1/proof/consistency?old=1&new=1",
        b"\x00/v1/tlog-proof/0",
        b"\x00/v1/artefacts/b3:0000000000000000000000000000000000000000000000000000000000000000",
        b"\x00/v1/policy",
        b"\x00/v1/models/fraud-detector",
        b"\x00/v1/models/fraud-detector/active?at=2026-11-27T10:00:00.000Z",
        b"\x00/v1/versions/b3:abababababababababababababababababababababababababababababababab",
        b"\x00/v1/inferences/req-42",
        b"\x00/healthz",
        b"\x02/v1/entries",
    ];
    for (i, t) in targets.iter().enumerate() {
        write("http_params", &format!("route-{i:02}"), t);
    }
}
