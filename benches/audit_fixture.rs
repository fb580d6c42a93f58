//! Writes a valid governance log of N entries as a tlog-tiles directory,
//! for benchmarking `modeltrail audit` from a local directory.
//!
//! ```sh
//! cargo bench --bench audit_fixture -- <dir> <entries>
//! modeltrail audit --log <dir> --policy <dir>/audit.policy [--fast]
//! ```
//!
//! The log: a policy (admin, registry, two approvers, serving; two
//! approvals), a card, a version, two approvals, an activation, then
//! inferences on the active version, each signed by the serving key — a
//! clean chain, so the audit does all its work and reports nothing. Entries
//! are signed in parallel and appended with the core's `TreeWriter` in
//! batches of 65,536 (fsynced); the checkpoint is signed by a fixed log key
//! and `audit.policy` names it with `quorum none`.
//!
//! Without arguments (as `cargo bench` runs every bench) it does nothing.

use std::path::PathBuf;

use modeltrail::entry::{ArtefactId, ContentHash, Kind, SignedEntry, Timestamp};
use modeltrail::store::{FsTileStore, TileStore, TreeWriter};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::empty_tree_hash;
use modeltrail::tlog::note::{KeyType, SignerKey};
use rayon::prelude::*;
use serde_json::{Value, json};

const MODEL: &str = "bench-scorer";
const BATCH: u64 = 65_536;

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, KeyType::Ed25519, &[seed; 32]).unwrap()
}

fn sign(kind: Kind, body: Value, k: &SignerKey) -> Vec<u8> {
    SignedEntry::sign(kind, body, k).unwrap().into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [dir, entries] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench audit_fixture -- <dir> <entries>");
        return;
    };
    let dir = PathBuf::from(dir);
    let total: u64 = entries.parse().expect("entries: a number");
    let log_key = key("bench.audit.test/log", 1);
    let admin = key("admin.bench", 2);
    let registry = key("registry.bench", 3);
    let approvers = [key("alice.bench", 4), key("bob.bench", 5)];
    let serving = key("serving.bench", 6);
    let roster =
        |k: &SignerKey, role: &str| json!({"roles": [role], "vkey": k.verifier().to_string()});
    let policy = sign(
        Kind::Policy,
        json!({
            "approvals_required": 2,
            "criteria": [{"description": "Evaluation reviewed", "id": "eval"}],
            "signers": [
                roster(&admin, "admin"), roster(&registry, "registry"),
                roster(&approvers[0], "approver"), roster(&approvers[1], "approver"),
                roster(&serving, "serving"),
            ],
        }),
        &admin,
    );
    let policy_id = ArtefactId::of(&policy).to_string();
    let card = sign(
        Kind::ModelCard,
        json!({"model": MODEL, "training_data": "synthetic",
               "evaluation": [{"metric": "auc", "value": 0.9, "dataset": "synthetic"}],
               "intended_use": "benchmarks", "limitations": "none"}),
        &registry,
    );
    let version = ContentHash::of(b"bench weights").to_string();
    let mut head = vec![
        policy,
        sign(
            Kind::ModelVersion,
            json!({"model": MODEL, "version_hash": version, "card": ArtefactId::of(&card).to_string()}),
            &registry,
        ),
    ];
    head.insert(1, card);
    for a in &approvers {
        head.push(sign(
            Kind::Approval,
            json!({"version_hash": version, "policy": policy_id, "decision": "approve",
                   "criteria": {"eval": {"met": true}}, "comment": ""}),
            a,
        ));
    }
    let start = 1_790_000_000_000u64;
    head.push(sign(
        Kind::Transition,
        json!({"model": MODEL, "from": null, "to": version,
               "at": Timestamp::from_unix_millis(start).unwrap().to_string(), "reason": "bench"}),
        &approvers[0],
    ));

    std::fs::create_dir_all(&dir).unwrap();
    let store = FsTileStore::new(&dir).unwrap();
    let mut writer = TreeWriter::open(store, 0, empty_tree_hash()).unwrap();
    writer.append(&head).unwrap();
    let mut next = writer.size();
    while next < total {
        let end = total.min(next + BATCH);
        let batch: Vec<Vec<u8>> = (next..end)
            .into_par_iter()
            .map(|i| {
                let h = |s: String| ContentHash::of(s.as_bytes()).to_string();
                sign(
                    Kind::Inference,
                    json!({"model": MODEL, "version_hash": version,
                           "request_id": format!("req-{i:09}"),
                           "served_at": Timestamp::from_unix_millis(start + i).unwrap().to_string(),
                           "input_commitment": h(format!("in {i}")),
                           "output_commitment": h(format!("out {i}"))}),
                    &serving,
                )
            })
            .collect();
        writer.append(&batch).unwrap();
        next = end;
        eprint!("\r{next}/{total}");
    }
    let checkpoint = Checkpoint {
        origin: log_key.name().to_owned(),
        size: writer.size(),
        root: writer.root(),
        extensions: vec![],
    };
    writer
        .store()
        .replace_checkpoint(&checkpoint.sign(&log_key).unwrap().to_bytes())
        .unwrap();
    std::fs::write(
        dir.join("audit.policy"),
        format!("log {}\nquorum none\n", log_key.verifier()),
    )
    .unwrap();
    eprintln!("\nwrote {} entries to {}", writer.size(), dir.display());
}
