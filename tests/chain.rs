//! The governance chain end to end: the real `modeltrail serve` (port 0, a
//! fresh data directory) driven by the real CLI (`--log`, `--key`, `--json`)
//! for every actor, checked through the query API with the library's own
//! verifiers (tlog-proofs against the log's key).
//!
//! 1. policy → card → version → approvals → activate → inferences → second
//!    version → approvals → activate → rollback, and "which version served
//!    request R?" answered from the log;
//! 2. every chain-rule violation refused with its code and HTTP status, and
//!    nothing written;
//! 3. inferences naming an inactive or unknown version logged and flagged;
//! 4. a reindex from scratch answers every query byte for byte the same;
//! 5. `modeltrail hash` is stable and sensitive to every byte, name and file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use modeltrail::entry::canonical::to_canonical;
use modeltrail::entry::{ArtefactId, ContentHash, Kind, MAX_ENTRY_SIZE, SignedEntry, Timestamp};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::note::{SignerKey, VerifierKey};
use modeltrail::tlog::policy::Policy;
use modeltrail::tlog::tlog_proof::TlogProof;
use serde_json::{Map, Value, json};

mod common;

use common::{BIN, Client, Reply, Server, now_ms, scratch, ts};

const MODEL: &str = "fraud-detector";

fn ms(t: &Value) -> u64 {
    Timestamp::parse(t.as_str().unwrap_or_else(|| panic!("not a time: {t}")))
        .unwrap()
        .unix_millis()
}

// ---------------------------------------------------------------------------
// A log with its actors, driven through the CLI
// ---------------------------------------------------------------------------

/// One actor's key: the file the CLI signs with, the key itself (for raw
/// entries) and its vkey.
struct Actor {
    file: PathBuf,
    key: SignerKey,
    vkey: String,
}

impl Actor {
    fn load(file: PathBuf) -> Actor {
        let key = common::read_key(&file);
        let vkey = key.verifier().to_string();
        Actor { file, key, vkey }
    }

    fn sign(&self, kind: Kind, body: Value) -> SignedEntry {
        SignedEntry::sign(kind, body, &self.key).unwrap()
    }
}

/// A failed CLI run.
struct Failure {
    stderr: String,
}

struct Chain {
    dir: PathBuf,
    data: PathBuf,
    server: Server,
    http: Client,
    log_vkey: VerifierKey,
    admin: Actor,
    registry: Actor,
    approver1: Actor,
    approver2: Actor,
    serving: Actor,
    /// A key in no policy.
    outsider: Actor,
}

impl Chain {
    /// `init`, `serve`, then the admin's policy through the CLI: registry,
    /// two approvers and serving; a second criterion; two approvals required.
    fn new(name: &str) -> Chain {
        let dir = scratch(name);
        let data = dir.join("data");
        let stdout = common::init(&data, &["--origin", &format!("chain.example.test/{name}")]);
        let log_vkey = common::init_vkey(&stdout, "log vkey:");
        let server = Server::start(&data);
        let http = Client::new(&server.base);
        let keygen = |who: &str| {
            let file = dir.join(format!("{who}.key"));
            let stdout = common::run_ok(
                Command::new(BIN)
                    .args(["keygen", "--name", &format!("{who}.chain.example.test")])
                    .arg("--out")
                    .arg(&file),
            );
            let actor = Actor::load(file);
            assert_eq!(stdout.trim(), actor.vkey);
            actor
        };
        let chain = Chain {
            admin: Actor::load(data.join("keys/admin.key")),
            registry: keygen("registry"),
            approver1: keygen("approver1"),
            approver2: keygen("approver2"),
            serving: keygen("serving"),
            outsider: keygen("outsider"),
            dir,
            data,
            server,
            http,
            log_vkey,
        };
        let mut index = 0;
        for (actor, role) in [
            (&chain.registry, "registry"),
            (&chain.approver1, "approver"),
            (&chain.approver2, "approver"),
            (&chain.serving, "serving"),
        ] {
            let out = chain.ok(
                &[
                    "policy",
                    "add-signer",
                    "--vkey",
                    &actor.vkey,
                    "--role",
                    role,
                ],
                &chain.admin,
            );
            index += 1;
            assert_eq!(out["index"], json!(index), "{out}");
        }
        let out = chain.ok(
            &[
                "policy",
                "add-criterion",
                "--id",
                "fairness-reviewed",
                "--description",
                "Outcomes were compared across protected groups.",
            ],
            &chain.admin,
        );
        assert_eq!(out["index"], json!(5));
        let out = chain.ok(
            &["policy", "set", "--approvals-required", "2"],
            &chain.admin,
        );
        assert_eq!(out["index"], json!(6));
        let shown = chain.read(&["policy", "show"]);
        assert_eq!(shown["index"], json!(6), "{shown}");
        assert_eq!(shown["policy"]["approvals_required"], json!(2));
        let criteria: Vec<&str> = shown["policy"]["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(criteria, ["evaluation-reviewed", "fairness-reviewed"]);
        assert_eq!(shown["policy"]["signers"].as_array().unwrap().len(), 5);
        chain
    }

    fn cli(&self, args: &[&str], key: &Actor) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--log", &self.server.base, "--json"])
            .arg("--key")
            .arg(&key.file)
            .env_remove("MODELTRAIL_LOG")
            .env_remove("MODELTRAIL_KEY")
            .current_dir(&self.dir)
            .output()
            .expect("run the CLI")
    }

    /// A read-only CLI command (`status`, `policy show`: no `--key`) that
    /// must succeed and print one JSON object.
    fn read(&self, args: &[&str]) -> Value {
        let out = Command::new(BIN)
            .args(args)
            .args(["--log", &self.server.base, "--json"])
            .env_remove("MODELTRAIL_LOG")
            .env_remove("MODELTRAIL_KEY")
            .output()
            .expect("run the CLI");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?} printed no single JSON object ({e}): {stdout}"))
    }

    /// A CLI command that must succeed and print one JSON object.
    fn ok(&self, args: &[&str], key: &Actor) -> Value {
        let out = self.cli(args, key);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?} printed no single JSON object ({e}): {stdout}"))
    }

    /// A CLI command that must fail, with `code` in its one-line reason.
    fn fails(&self, args: &[&str], key: &Actor, code: &str) -> Failure {
        let out = self.cli(args, key);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains(code),
            "{args:?}: want {code}, got: {stderr}"
        );
        Failure { stderr }
    }

    fn size(&self) -> u64 {
        let r = self.http.get("/checkpoint");
        assert_eq!(r.status, 200, "{}", r.text());
        Checkpoint::open(&r.body, &self.log_vkey, &[])
            .unwrap_or_else(|e| panic!("the checkpoint does not verify: {e}"))
            .checkpoint
            .size
    }

    fn tlog_policy(&self) -> Policy {
        Policy::parse(format!("log {}\nquorum none\n", self.log_vkey).as_bytes()).unwrap()
    }

    /// Checks one proven entry of a query answer: its tlog-proof verifies
    /// the entry's bytes at its index against the log's key, and its ID is
    /// the artefact ID of those bytes.
    fn check_proven(&self, p: &Value) {
        let index = p["index"]
            .as_u64()
            .unwrap_or_else(|| panic!("no index: {p}"));
        let bytes = self.http.entry(index);
        assert_eq!(p["id"], json!(ArtefactId::of(&bytes).to_string()), "{p}");
        let entry = SignedEntry::parse(&bytes).unwrap();
        assert_eq!(&p["body"], entry.body(), "{p}");
        // `leaf` is the exact logged bytes, so the proof can be checked
        // from the answer alone.
        assert_eq!(
            p["leaf"].as_str().map(str::as_bytes),
            Some(&bytes[..]),
            "{p}"
        );
        let proof = TlogProof::parse(p["tlog_proof"].as_str().unwrap().as_bytes())
            .unwrap_or_else(|e| panic!("entry {index}: bad tlog-proof: {e}"));
        assert_eq!(proof.index, index);
        proof
            .verify(&bytes, &self.tlog_policy())
            .unwrap_or_else(|e| panic!("entry {index}: the tlog-proof does not verify: {e}"));
    }

    fn policy_id(&self) -> String {
        self.http.get_json("/v1/policy")["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A card file for `model`, with an extra member (moved to extensions).
    fn card(&self, model: &str) -> PathBuf {
        let card = json!({
            "model": model,
            "training_data": "2025 card transactions, EU",
            "evaluation": [
                {"metric": "auc", "value": 0.93, "dataset": "holdout-2025q4"},
                {"metric": "recall@1%fpr", "value": 0.71, "dataset": "holdout-2025q4"}
            ],
            "intended_use": "flag card fraud for human review",
            "limitations": "not for credit decisions",
            "owner": "risk-team",
        });
        self.write(
            &format!("card-{}.json", model.replace('/', "_")),
            card.to_string().as_bytes(),
        )
    }

    /// A weights directory of a few files, distinct per `seed`.
    fn weights(&self, name: &str, seed: u8) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(dir.join("layers")).unwrap();
        let blob: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
            .collect();
        std::fs::write(dir.join("model.safetensors"), &blob).unwrap();
        std::fs::write(dir.join("config.json"), format!("{{\"seed\":{seed}}}")).unwrap();
        std::fs::write(dir.join("layers/0.bin"), [seed; 1000]).unwrap();
        dir
    }

    fn path_str(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn register(&self, model: &str, weights: &Path, card: &str) -> (String, u64) {
        let out = self.ok(
            &[
                "version",
                "register",
                "--model",
                model,
                "--weights",
                Chain::path_str(weights),
                "--card",
                card,
            ],
            &self.registry,
        );
        let hash = out["version_hash"].as_str().unwrap().to_owned();
        (hash, out["index"].as_u64().unwrap())
    }

    /// Both approvers approve `version` on every criterion of the policy.
    fn approve_by_both(&self, version: &str, criteria: &Path) -> Vec<u64> {
        [&self.approver1, &self.approver2]
            .iter()
            .map(|a| {
                let out = self.ok(
                    &[
                        "approve",
                        "--version",
                        version,
                        "--criteria",
                        Chain::path_str(criteria),
                    ],
                    a,
                );
                out["index"].as_u64().unwrap()
            })
            .collect()
    }

    fn status(&self) -> Value {
        self.read(&["status", "--model", MODEL])
    }
}

/// Approval criteria results covering the whole policy.
fn all_criteria() -> Value {
    json!({
        "evaluation-reviewed": {"met": true, "note": "AUC 0.93 on holdout"},
        "fairness-reviewed": {"met": true, "note": "parity within 2%"},
    })
}

// ---------------------------------------------------------------------------
// 1, 3, 4. The whole chain; flagged inferences; reindex
// ---------------------------------------------------------------------------

#[test]
fn the_whole_chain_end_to_end_and_after_reindex() {
    let mut chain = Chain::new("whole");
    let http = chain.http.clone();

    // Card.
    let card = chain.ok(
        &["card", "submit", Chain::path_str(&chain.card(MODEL))],
        &chain.registry,
    );
    let card_id = card["id"].as_str().unwrap().to_owned();
    assert_eq!(card["index"], json!(7));
    let logged_card = SignedEntry::parse(&http.entry(7)).unwrap();
    assert_eq!(logged_card.kind(), Kind::ModelCard);
    assert_eq!(
        logged_card.body()["extensions"]["owner"],
        json!("risk-team")
    );

    // Version 1: the hash the CLI registers is what `modeltrail hash` says.
    let w1 = chain.weights("weights-v1", 1);
    let (v1, v1_index) = chain.register(MODEL, &w1, &card_id);
    assert_eq!(v1, hash_cli(&w1)["version_hash"].as_str().unwrap());
    assert_eq!(v1_index, 8);

    // Approvals by both approvers, every criterion, then activation.
    let criteria = chain.write("criteria.json", all_criteria().to_string().as_bytes());
    let v1_approvals = chain.approve_by_both(&v1, &criteria);
    assert_eq!(v1_approvals, [9, 10]);
    let status = chain.status();
    assert_eq!(status["active"], Value::Null, "{status}");
    let act1 = chain.ok(
        &[
            "activate",
            "--model",
            MODEL,
            "--version",
            &v1,
            "--reason",
            "first release",
        ],
        &chain.approver1,
    );
    let act1_index = act1["index"].as_u64().unwrap();
    assert_eq!(chain.status()["active"], json!(v1));

    // Inferences: one, then a batch (files and commitments), all on the
    // active version: no warnings.
    let input = chain.write("io/in-1.json", br#"{"amount": 129.5}"#);
    let output = chain.write("io/out-1.json", br#"{"fraud": false}"#);
    let inf1 = chain.ok(
        &[
            "inference",
            "log",
            "--model",
            MODEL,
            "--version",
            &v1,
            "--request-id",
            "req-1",
            "--input",
            Chain::path_str(&input),
            "--output",
            Chain::path_str(&output),
        ],
        &chain.serving,
    );
    assert_eq!(inf1["warnings"], json!([]), "{inf1}");
    let inf1_index = inf1["index"].as_u64().unwrap();
    // Files get hiding commitments (`c1:`), their openings stored locally.
    let logged = SignedEntry::parse(&http.entry(inf1_index)).unwrap();
    for field in ["input_commitment", "output_commitment"] {
        let c = logged.body()[field].as_str().unwrap().to_owned();
        assert!(c.starts_with("c1:"), "{field}: {c}");
    }
    assert!(chain.dir.join("modeltrail-openings").is_dir());
    let mut batch = String::new();
    for i in 2..=4 {
        let input = chain.write(&format!("io/in-{i}.json"), format!("in {i}").as_bytes());
        let output = chain.write(&format!("io/out-{i}.json"), format!("out {i}").as_bytes());
        batch += &json!({
            "model": MODEL, "version": v1, "request_id": format!("req-{i}"),
            "input": input, "output": output,
        })
        .to_string();
        batch.push('\n');
    }
    let served_5 = now_ms() - 1000;
    batch += &json!({
        "model": MODEL, "version": v1, "request_id": "req-5",
        "input_commitment": ContentHash::of(b"in 5").to_string(),
        "output_commitment": ContentHash::of(b"out 5").to_string(),
        "served_at": ts(served_5),
    })
    .to_string();
    batch.push('\n');
    let batch_file = chain.write("batch.jsonl", batch.as_bytes());
    let out = chain.cli(
        &["inference", "log", "--batch", Chain::path_str(&batch_file)],
        &chain.serving,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 4);
    for r in &results {
        assert_eq!(r["warnings"], json!([]), "{r}");
        assert!(r["index"].as_u64().unwrap() > inf1_index, "{r}");
    }
    let logged = SignedEntry::parse(&http.entry(results[1]["index"].as_u64().unwrap())).unwrap();
    let c = logged.body()["input_commitment"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(c.starts_with("c1:"), "{c}");
    assert_ne!(c, ContentHash::of(b"in 3").to_string());
    assert_eq!(logged.body()["request_id"], json!("req-3"));
    let logged = SignedEntry::parse(&http.entry(results[3]["index"].as_u64().unwrap())).unwrap();
    assert_eq!(logged.body()["served_at"], json!(ts(served_5)));
    assert_eq!(
        logged.body()["output_commitment"],
        json!(ContentHash::of(b"out 5").to_string())
    );

    // Version 2, registered and approved but not yet active: an inference
    // naming it is logged and flagged (CLI and POST /v1/entries); so is one
    // naming a version nobody registered.
    let w2 = chain.weights("weights-v2", 2);
    let (v2, _) = chain.register(MODEL, &w2, &card_id);
    assert_ne!(v1, v2);
    let flagged = chain.ok(
        &[
            "inference",
            "log",
            "--model",
            MODEL,
            "--version",
            &v2,
            "--request-id",
            "req-shadow",
            "--input",
            Chain::path_str(&input),
            "--output",
            Chain::path_str(&output),
        ],
        &chain.serving,
    );
    assert!(flagged["index"].is_u64(), "{flagged}");
    let warnings = flagged["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("not the active version")),
        "{flagged}"
    );
    let unknown = format!("b3:{}", "cd".repeat(32));
    let raw = chain.serving.sign(
        Kind::Inference,
        json!({
            "model": MODEL, "version_hash": unknown, "request_id": "req-unknown",
            "served_at": ts(now_ms()),
            "input_commitment": ContentHash::of(b"x").to_string(),
            "output_commitment": ContentHash::of(b"y").to_string(),
        }),
    );
    let r = http.post("/v1/entries", "application/x-ndjson", raw.bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let result = &r.json()["results"][0];
    let unknown_index = result["index"]
        .as_u64()
        .unwrap_or_else(|| panic!("{result}"));
    assert_eq!(result["id"], json!(raw.id().to_string()));
    let warnings = result["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("not registered")),
        "{result}"
    );
    assert_eq!(http.entry(unknown_index), raw.bytes());
    // Through the CLI as well, and for a model with no active version.
    let unknown_cli = chain.ok(
        &[
            "inference",
            "log",
            "--model",
            "no-such-model",
            "--version",
            &unknown,
            "--request-id",
            "req-nomodel",
            "--input",
            Chain::path_str(&input),
            "--output",
            Chain::path_str(&output),
        ],
        &chain.serving,
    );
    assert!(unknown_cli["index"].is_u64());
    assert_eq!(
        unknown_cli["warnings"].as_array().map(Vec::len),
        Some(2),
        "unregistered version, no active version: {unknown_cli}"
    );

    // Version 2 approved and activated; then rolled back to version 1.
    let v2_approvals = chain.approve_by_both(&v2, &criteria);
    std::thread::sleep(Duration::from_millis(5));
    let act2 = chain.ok(
        &[
            "activate",
            "--model",
            MODEL,
            "--version",
            &v2,
            "--reason",
            "retrained on 2026q1",
        ],
        &chain.approver2,
    );
    let act2_index = act2["index"].as_u64().unwrap();
    assert_eq!(chain.status()["active"], json!(v2));
    let inf_v2 = chain.ok(
        &[
            "inference",
            "log",
            "--model",
            MODEL,
            "--version",
            &v2,
            "--request-id",
            "req-v2",
            "--input",
            Chain::path_str(&input),
            "--output",
            Chain::path_str(&output),
        ],
        &chain.serving,
    );
    assert_eq!(inf_v2["warnings"], json!([]), "{inf_v2}");
    std::thread::sleep(Duration::from_millis(5));
    let rb = chain.ok(
        &[
            "rollback",
            "--model",
            MODEL,
            "--to",
            &v1,
            "--reason",
            "drift on new merchants",
        ],
        &chain.approver1,
    );
    let rb_index = rb["index"].as_u64().unwrap();
    let inf_back = chain.ok(
        &[
            "inference",
            "log",
            "--model",
            MODEL,
            "--version",
            &v1,
            "--request-id",
            "req-after-rollback",
            "--input",
            Chain::path_str(&input),
            "--output",
            Chain::path_str(&output),
        ],
        &chain.serving,
    );
    assert_eq!(inf_back["warnings"], json!([]), "{inf_back}");
    // A rollback goes back to an earlier version only.
    let w3 = chain.weights("weights-v3", 3);
    let (v3, _) = chain.register(MODEL, &w3, &card_id);
    let size = chain.size();
    chain.fails(
        &[
            "rollback",
            "--model",
            MODEL,
            "--to",
            &v3,
            "--reason",
            "never active",
        ],
        &chain.approver1,
        "never active",
    );
    assert_eq!(chain.size(), size);

    // `status --json`: the active version and the history with from/to.
    let status = chain.status();
    assert_eq!(status["model"], json!(MODEL));
    assert_eq!(status["active"], json!(v1), "{status}");
    let history = status["history"].as_array().unwrap();
    let steps: Vec<(Value, Value, Value)> = history
        .iter()
        .map(|t| (t["index"].clone(), t["from"].clone(), t["to"].clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (json!(act1_index), Value::Null, json!(v1)),
            (json!(act2_index), json!(v1), json!(v2)),
            (json!(rb_index), json!(v2), json!(v1)),
        ]
    );
    assert_eq!(history[2]["reason"], json!("drift on new merchants"));
    assert_eq!(history[2]["signer"], json!(chain.approver1.vkey));
    let (t1, t2, t3) = (
        ms(&history[0]["at"]),
        ms(&history[1]["at"]),
        ms(&history[2]["at"]),
    );
    assert!(t1 < t2 && t2 < t3, "{t1} {t2} {t3}");

    // GET /v1/models/<m>: the same, with indexes and verifying tlog-proofs.
    let model = http.get_json(&format!("/v1/models/{MODEL}"));
    assert_eq!(model["active"], json!(v1));
    let history = model["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    for (h, (index, from, to)) in history.iter().zip(&steps) {
        assert_eq!(&h["index"], index);
        assert_eq!(h["kind"], json!("transition"));
        assert_eq!(&h["body"]["from"], from);
        assert_eq!(&h["body"]["to"], to);
        chain.check_proven(h);
    }
    let r = http.get("/v1/models/no-such-model");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["active"], Value::Null);
    assert_eq!(r.json()["history"], json!([]));

    // GET /v1/models/<m>/active?at=: before, at and between the transitions.
    let active_at = |at: Option<u64>| {
        let path = match at {
            Some(t) => format!("/v1/models/{MODEL}/active?at={}", ts(t)),
            None => format!("/v1/models/{MODEL}/active"),
        };
        let v = http.get_json(&path);
        if let Some(t) = v.get("transition").filter(|t| !t.is_null()) {
            chain.check_proven(t);
        }
        v["active"].clone()
    };
    assert_eq!(active_at(Some(t1 - 1)), Value::Null);
    assert_eq!(active_at(Some(0)), Value::Null);
    assert_eq!(active_at(Some(t1)), json!(v1));
    assert_eq!(active_at(Some((t1 + t2) / 2)), json!(v1));
    assert_eq!(active_at(Some(t2 - 1)), json!(v1));
    assert_eq!(active_at(Some(t2)), json!(v2));
    assert_eq!(active_at(Some(t3 - 1)), json!(v2));
    assert_eq!(active_at(Some(t3)), json!(v1));
    assert_eq!(active_at(Some(now_ms() + 3_600_000)), json!(v1));
    assert_eq!(active_at(None), json!(v1));
    let r = http.get(&format!("/v1/models/{MODEL}/active?at=yesterday"));
    assert_eq!((r.status, r.code().as_str()), (400, "bad_time"));

    // GET /v1/versions/<hash>: card, approvals, transitions, inference count.
    let version = |hash: &str| {
        let v = http.get_json(&format!("/v1/versions/{hash}"));
        chain.check_proven(&v["version"]);
        chain.check_proven(&v["card"]);
        for p in v["approvals"].as_array().unwrap() {
            chain.check_proven(p);
        }
        for p in v["transitions"].as_array().unwrap() {
            chain.check_proven(p);
        }
        v
    };
    let approval_set = |v: &Value| -> BTreeSet<(u64, String)> {
        v["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                assert_eq!(a["body"]["decision"], json!("approve"));
                (
                    a["index"].as_u64().unwrap(),
                    a["signer"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let indexes = |v: &Value, member: &str| -> Vec<u64> {
        v[member]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["index"].as_u64().unwrap())
            .collect()
    };
    let both = |idx: &[u64]| -> BTreeSet<(u64, String)> {
        BTreeSet::from([
            (idx[0], chain.approver1.vkey.clone()),
            (idx[1], chain.approver2.vkey.clone()),
        ])
    };
    let ver1 = version(&v1);
    assert_eq!(ver1["version_hash"], json!(v1));
    assert_eq!(ver1["model"], json!(MODEL));
    assert_eq!(ver1["version"]["index"], json!(v1_index));
    assert_eq!(ver1["card"]["id"], json!(card_id));
    assert_eq!(ver1["card"]["index"], json!(7));
    assert_eq!(approval_set(&ver1), both(&v1_approvals));
    assert_eq!(
        indexes(&ver1, "transitions"),
        [act1_index, act2_index, rb_index]
    );
    // req-1, req-2..5, req-after-rollback.
    assert_eq!(
        ver1["inference_count"],
        json!(6),
        "{}",
        ver1["inference_count"]
    );
    let ver2 = version(&v2);
    assert_eq!(ver2["card"]["id"], json!(card_id));
    assert_eq!(approval_set(&ver2), both(&v2_approvals));
    assert_eq!(indexes(&ver2, "transitions"), [act2_index, rb_index]);
    // req-shadow (flagged) and req-v2.
    assert_eq!(ver2["inference_count"], json!(2));
    let ver3 = version(&v3);
    assert_eq!(ver3["approvals"], json!([]));
    assert_eq!(ver3["transitions"], json!([]));
    assert_eq!(ver3["inference_count"], json!(0));
    let r = http.get(&format!("/v1/versions/{unknown}"));
    assert_eq!(r.status, 404, "{}", r.text());

    // Which version served request R? Answered from the log, and consistent
    // with what was active when it was served.
    let inference = |rid: &str| {
        let v = http.get_json(&format!("/v1/inferences/{rid}"));
        assert_eq!(v["request_id"], json!(rid));
        chain.check_proven(&v["entry"]);
        assert_eq!(v["index"], v["entry"]["index"]);
        v
    };
    for (rid, index, version) in [
        ("req-1", inf1_index, &v1),
        ("req-3", results[1]["index"].as_u64().unwrap(), &v1),
        ("req-shadow", flagged["index"].as_u64().unwrap(), &v2),
        ("req-v2", inf_v2["index"].as_u64().unwrap(), &v2),
        (
            "req-after-rollback",
            inf_back["index"].as_u64().unwrap(),
            &v1,
        ),
    ] {
        let v = inference(rid);
        assert_eq!(v["version_hash"], json!(version), "{rid}: {v}");
        assert_eq!(v["model"], json!(MODEL));
        assert_eq!(v["index"], json!(index));
        let served = ms(&v["served_at"]);
        let was_active = active_at(Some(served));
        if rid == "req-shadow" {
            assert_eq!(
                was_active,
                json!(v1),
                "req-shadow was served by an inactive version"
            );
        } else {
            assert_eq!(was_active, json!(version), "{rid}");
        }
    }
    assert_eq!(inference("req-5")["served_at"], json!(ts(served_5)));
    let r = http.get("/v1/inferences/req-never");
    assert_eq!(r.status, 404, "{}", r.text());

    // 4. Reindex from scratch: every answer is the same, byte for byte.
    let queries: Vec<String> = vec![
        format!("/v1/models/{MODEL}"),
        format!("/v1/models/{MODEL}/active?at={}", ts(t2)),
        format!("/v1/versions/{v1}"),
        format!("/v1/versions/{v2}"),
        format!("/v1/versions/{v3}"),
        "/v1/inferences/req-1".to_owned(),
        "/v1/inferences/req-3".to_owned(),
        "/v1/inferences/req-shadow".to_owned(),
        "/v1/inferences/req-unknown".to_owned(),
        "/v1/inferences/req-after-rollback".to_owned(),
        "/v1/policy".to_owned(),
        "/checkpoint".to_owned(),
    ];
    let answers = |http: &Client| -> Vec<(u16, String)> {
        queries
            .iter()
            .map(|q| {
                let r = http.get(q);
                (r.status, r.text())
            })
            .collect()
    };
    let before = answers(&http);
    let size = chain.size();
    assert_eq!(
        chain.server.terminate().code(),
        Some(0),
        "{}",
        chain.server.stderr()
    );
    std::fs::remove_dir_all(chain.data.join("index")).unwrap();
    chain.server = Server::start(&chain.data);
    let http = Client::new(&chain.server.base);
    chain.http = http.clone();
    assert_eq!(chain.size(), size);
    for (q, (b, a)) in queries.iter().zip(before.iter().zip(answers(&http))) {
        assert_eq!(b, &a, "GET {q} differs after the index was rebuilt");
    }
    // And with `modeltrail reindex` on the stopped log.
    assert_eq!(chain.server.terminate().code(), Some(0));
    let stdout = common::run_ok(
        Command::new(BIN)
            .arg("reindex")
            .arg("--data")
            .arg(&chain.data),
    );
    assert_eq!(stdout, format!("reindexed {size} entries\n"));
    chain.server = Server::start(&chain.data);
    let http = Client::new(&chain.server.base);
    chain.http = http.clone();
    for (q, (b, a)) in queries.iter().zip(before.iter().zip(answers(&http))) {
        assert_eq!(b, &a, "GET {q} differs after modeltrail reindex");
    }
    // The re-derived state enforces the chain: a stale `from` is still
    // refused, naming the active version; nothing is written.
    let stale = chain.approver1.sign(
        Kind::Transition,
        json!({"model": MODEL, "from": v2, "to": v1, "at": ts(now_ms()), "reason": "stale"}),
    );
    let r = http.add(stale.bytes());
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "stale_transition"),
        "{}",
        r.text()
    );
    assert_eq!(chain.size(), size);
    assert_eq!(chain.status()["active"], json!(v1));
}

// ---------------------------------------------------------------------------
// 2. Rule violations
// ---------------------------------------------------------------------------

/// An entry's envelope as a JSON object, to tamper with.
fn envelope(entry: &SignedEntry) -> Map<String, Value> {
    serde_json::from_slice(entry.bytes()).unwrap()
}

#[test]
fn every_rule_violation_is_refused_and_nothing_written() {
    let chain = Chain::new("rules");
    let http = chain.http.clone();
    let card = chain.ok(
        &["card", "submit", Chain::path_str(&chain.card(MODEL))],
        &chain.registry,
    );
    let card_id = card["id"].as_str().unwrap().to_owned();
    let w1 = chain.weights("weights-v1", 1);
    let (v1, _) = chain.register(MODEL, &w1, &card_id);
    let w2 = chain.weights("weights-v2", 2);
    let (v2, _) = chain.register(MODEL, &w2, &card_id);
    let criteria = chain.write("criteria.json", all_criteria().to_string().as_bytes());
    let partial = chain.write(
        "partial.json",
        json!({"evaluation-reviewed": {"met": true, "note": "ok"}})
            .to_string()
            .as_bytes(),
    );
    let extra = {
        let mut c = all_criteria();
        c["latency-reviewed"] = json!({"met": true});
        chain.write("extra.json", c.to_string().as_bytes())
    };
    let path = Chain::path_str;

    // Each case: the CLI (where it can produce it) or a raw entry POSTed to
    // /add; the code (and for raw entries the HTTP status) must match, and
    // the tree must not grow.
    let cli_refused = |what: &str, args: &[&str], key: &Actor, code: &str| -> Failure {
        let size = chain.size();
        let f = chain.fails(args, key, code);
        assert_eq!(chain.size(), size, "{what}: the tree grew");
        f
    };
    let raw_refused = |what: &str, bytes: &[u8], status: u16, code: &str| -> Reply {
        let size = chain.size();
        let r = http.add(bytes);
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{what}: POST /add answered {}",
            r.text()
        );
        assert_eq!(chain.size(), size, "{what}: the tree grew");
        r
    };

    // Activation without enough approvals: none, then one of two.
    let activate_v1 = [
        "activate",
        "--model",
        MODEL,
        "--version",
        &v1,
        "--reason",
        "go live",
    ];
    cli_refused(
        "no approvals",
        &activate_v1,
        &chain.approver1,
        "insufficient_approvals",
    );
    chain.ok(
        &["approve", "--version", &v1, "--criteria", path(&criteria)],
        &chain.approver1,
    );
    let f = cli_refused(
        "one approval",
        &activate_v1,
        &chain.approver1,
        "insufficient_approvals",
    );
    assert!(f.stderr.contains("409"), "{}", f.stderr);
    // A rejection by the second approver does not count either.
    chain.ok(
        &[
            "approve",
            "--version",
            &v1,
            "--criteria",
            path(&criteria),
            "--reject",
        ],
        &chain.approver2,
    );
    cli_refused(
        "one approval, one rejection",
        &activate_v1,
        &chain.approver1,
        "insufficient_approvals",
    );

    // Approval by a non-approver (serving is in the policy, not as approver).
    let f = cli_refused(
        "approval by serving",
        &["approve", "--version", &v2, "--criteria", path(&criteria)],
        &chain.serving,
        "signer_not_authorised",
    );
    assert!(f.stderr.contains("403"), "{}", f.stderr);
    // Signer not in the policy at all.
    let f = cli_refused(
        "approval by an outsider",
        &["approve", "--version", &v2, "--criteria", path(&criteria)],
        &chain.outsider,
        "unknown_signer",
    );
    assert!(f.stderr.contains("401"), "{}", f.stderr);
    // An approval missing a criterion; one with a criterion the policy lacks.
    let f = cli_refused(
        "approval missing a criterion",
        &["approve", "--version", &v2, "--criteria", path(&partial)],
        &chain.approver1,
        "criteria_incomplete",
    );
    assert!(f.stderr.contains("fairness-reviewed"), "{}", f.stderr);
    cli_refused(
        "approval with an extra criterion",
        &["approve", "--version", &v2, "--criteria", path(&extra)],
        &chain.approver1,
        "unknown_criterion",
    );
    // An approval of a version nobody registered.
    let unknown = format!("b3:{}", "ef".repeat(32));
    cli_refused(
        "approval of an unknown version",
        &[
            "approve",
            "--version",
            &unknown,
            "--criteria",
            path(&criteria),
        ],
        &chain.approver1,
        "unknown_version",
    );

    // Now the second approval, and activate v1.
    chain.ok(
        &["approve", "--version", &v1, "--criteria", path(&criteria)],
        &chain.approver2,
    );
    chain.ok(&activate_v1, &chain.approver1);
    // The version's approvals are every decision, in log order (the
    // approver's latest counts; evidence needs the earlier ones too).
    let ver1 = http.get_json(&format!("/v1/versions/{v1}"));
    let decisions: Vec<(String, String)> = ver1["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["signer"].as_str().unwrap().to_owned(),
                a["body"]["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        vec![
            (chain.approver1.vkey.clone(), "approve".to_owned()),
            (chain.approver2.vkey.clone(), "reject".to_owned()),
            (chain.approver2.vkey.clone(), "approve".to_owned()),
        ],
        "{ver1}"
    );

    // Approval naming the old policy after a policy update.
    let old_policy = chain.policy_id();
    let approval_body = |policy: &str| {
        json!({
            "version_hash": v2, "policy": policy, "criteria": all_criteria(),
            "decision": "approve", "comment": "",
        })
    };
    chain.ok(
        &[
            "policy",
            "add-signer",
            "--vkey",
            &chain.serving.vkey,
            "--role",
            "serving",
        ],
        &chain.admin,
    );
    let new_policy = chain.ok(
        &[
            "policy",
            "add-signer",
            "--vkey",
            &chain.registry.vkey,
            "--role",
            "registry",
            "--role",
            "serving",
        ],
        &chain.admin,
    );
    assert_ne!(chain.policy_id(), old_policy);
    assert_eq!(chain.policy_id(), new_policy["id"].as_str().unwrap());
    let stale = chain
        .approver1
        .sign(Kind::Approval, approval_body(&old_policy));
    let r = raw_refused(
        "approval naming an old policy",
        stale.bytes(),
        409,
        "stale_policy",
    );
    assert!(r.text().contains(&chain.policy_id()), "{}", r.text());
    // The same approval naming the policy in force is logged.
    let fresh = chain
        .approver1
        .sign(Kind::Approval, approval_body(&chain.policy_id()));
    assert_eq!(http.add(fresh.bytes()).status, 200);
    chain.ok(
        &["approve", "--version", &v2, "--criteria", path(&criteria)],
        &chain.approver2,
    );

    // Stale `from`: v1 is active, a transition claiming none is.
    let transition = |from: Value, to: &str| json!({"model": MODEL, "from": from, "to": to, "at": ts(now_ms()), "reason": "r"});
    let stale = chain
        .approver1
        .sign(Kind::Transition, transition(Value::Null, &v2));
    let r = raw_refused("stale from (null)", stale.bytes(), 409, "stale_transition");
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains(&v1),
        "{}",
        r.text()
    );
    let w3 = chain.weights("weights-v3", 3);
    let (v3, _) = chain.register(MODEL, &w3, &card_id);
    let stale = chain
        .approver1
        .sign(Kind::Transition, transition(json!(v3), &v2));
    let r = raw_refused(
        "stale from (another version)",
        stale.bytes(),
        409,
        "stale_transition",
    );
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains(&v1),
        "{}",
        r.text()
    );
    // A transition dated in the future.
    let mut future = transition(json!(v1), &v2);
    future["at"] = json!(ts(now_ms() + 3_600_000));
    let future = chain.approver1.sign(Kind::Transition, future);
    raw_refused(
        "transition in the future",
        future.bytes(),
        422,
        "transition_time",
    );
    // A transition dated before the model's previous one.
    let mut past = transition(json!(v1), &v2);
    past["at"] = json!(ts(now_ms() - 3_600_000));
    let past = chain.approver1.sign(Kind::Transition, past);
    raw_refused(
        "transition before the previous one",
        past.bytes(),
        422,
        "transition_time",
    );
    assert_eq!(chain.status()["active"], json!(v1));

    // Version without a card, with an unknown card, with the ID of an
    // entry that is not a card, with another model's card.
    let w4 = chain.weights("weights-v4", 4);
    let version_args = |card: &str| -> Vec<String> {
        [
            "version",
            "register",
            "--model",
            MODEL,
            "--weights",
            path(&w4),
            "--card",
            card,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run = |args: &[String], key: &Actor, code: &str, what: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli_refused(what, &args, key, code)
    };
    let no_card = format!("b3:{}", "12".repeat(32));
    run(
        &version_args(&no_card),
        &chain.registry,
        "unknown_card",
        "unknown card",
    );
    run(
        &version_args(&old_policy),
        &chain.registry,
        "unknown_card",
        "a policy as card",
    );
    let v4_hash = hash_cli(&w4)["version_hash"].as_str().unwrap().to_owned();
    let cardless = chain.registry.sign(
        Kind::ModelVersion,
        json!({"model": MODEL, "version_hash": v4_hash, "card": no_card}),
    );
    raw_refused(
        "version with an unknown card",
        cardless.bytes(),
        409,
        "unknown_card",
    );
    let missing = chain.registry.sign(
        Kind::ModelVersion,
        json!({"model": MODEL, "version_hash": v4_hash}),
    );
    raw_refused(
        "version without a card member",
        missing.bytes(),
        422,
        "invalid_body",
    );
    let other_card = chain.ok(
        &["card", "submit", path(&chain.card("other-model"))],
        &chain.registry,
    );
    let other_card = other_card["id"].as_str().unwrap().to_owned();
    run(
        &version_args(&other_card),
        &chain.registry,
        "card_model_mismatch",
        "another model's card",
    );

    // Version registered twice: the identical entry is deduplicated (same
    // index, nothing new); a different entry for the same hash is refused.
    let size = chain.size();
    let again = chain.ok(
        &[
            "version",
            "register",
            "--model",
            MODEL,
            "--weights",
            path(&w1),
            "--card",
            &card_id,
        ],
        &chain.registry,
    );
    assert_eq!(again["version_hash"], json!(v1));
    assert_eq!(
        chain.size(),
        size,
        "an identical re-registration is not logged twice"
    );
    cli_refused(
        "version registered twice",
        &[
            "version",
            "register",
            "--model",
            MODEL,
            "--weights",
            path(&w1),
            "--card",
            &card_id,
            "--registry-ref",
            "models:/fraud-detector/1",
        ],
        &chain.registry,
        "version_exists",
    );
    // ... also under another model.
    let other_v1 = chain.registry.sign(
        Kind::ModelVersion,
        json!({"model": "other-model", "version_hash": v1, "card": other_card}),
    );
    raw_refused(
        "version registered for two models",
        other_v1.bytes(),
        409,
        "version_exists",
    );

    // Transition `to` a version of another model (CLI and raw).
    let w5 = chain.weights("weights-other", 5);
    let (other_v, _) = chain.register("other-model", &w5, &other_card);
    cli_refused(
        "activate another model's version",
        &[
            "activate",
            "--model",
            MODEL,
            "--version",
            &other_v,
            "--reason",
            "oops",
        ],
        &chain.approver1,
        "version_model_mismatch",
    );
    let mismatch = chain
        .approver1
        .sign(Kind::Transition, transition(json!(v1), &other_v));
    raw_refused(
        "transition to another model's version",
        mismatch.bytes(),
        422,
        "version_model_mismatch",
    );

    // Signer not in the policy; a signer without the role.
    let inference_body = |served_at: u64, rid: &str| {
        json!({
            "model": MODEL, "version_hash": v1, "request_id": rid,
            "served_at": ts(served_at),
            "input_commitment": ContentHash::of(b"in").to_string(),
            "output_commitment": ContentHash::of(b"out").to_string(),
        })
    };
    let good = chain
        .serving
        .sign(Kind::Inference, inference_body(now_ms(), "req-good"));
    let by_outsider = chain
        .outsider
        .sign(Kind::Inference, inference_body(now_ms(), "req-o"));
    raw_refused(
        "signer not in policy",
        by_outsider.bytes(),
        401,
        "unknown_signer",
    );
    let by_approver = chain
        .approver1
        .sign(Kind::Inference, inference_body(now_ms(), "req-a"));
    raw_refused(
        "approver logs an inference",
        by_approver.bytes(),
        403,
        "signer_not_authorised",
    );
    let card_by_serving = chain.serving.sign(Kind::ModelCard, {
        let c: Value = serde_json::from_slice(&std::fs::read(chain.card(MODEL)).unwrap()).unwrap();
        let mut c = c;
        c.as_object_mut().unwrap().remove("owner");
        c
    });
    raw_refused(
        "serving submits a card",
        card_by_serving.bytes(),
        403,
        "signer_not_authorised",
    );
    cli_refused(
        "outsider submits a card",
        &["card", "submit", path(&chain.card(MODEL))],
        &chain.outsider,
        "unknown_signer",
    );

    // Tampered signature; tampered body under a valid signature.
    let mut bad_sig = envelope(&good);
    let sig = bad_sig["sig"].as_str().unwrap().to_owned();
    let flipped = if sig.starts_with('A') { "B" } else { "A" }.to_owned() + &sig[1..];
    bad_sig["sig"] = json!(flipped);
    raw_refused(
        "tampered signature",
        &to_canonical(&Value::Object(bad_sig)),
        401,
        "bad_signature",
    );
    let mut tampered = envelope(&good);
    tampered["body"]["version_hash"] = json!(v2);
    raw_refused(
        "tampered body",
        &to_canonical(&Value::Object(tampered)),
        401,
        "bad_signature",
    );

    // Non-canonical JSON: pretty-printed, and members out of order.
    let pretty = serde_json::to_vec_pretty(&Value::Object(envelope(&good))).unwrap();
    raw_refused("pretty-printed", &pretty, 400, "not_canonical_json");
    let text = String::from_utf8(good.bytes().to_vec()).unwrap();
    let without_v = text.strip_suffix(",\"v\":1}").unwrap();
    let unsorted = format!("{{\"v\":1,{}}}", &without_v[1..]);
    raw_refused(
        "members not sorted",
        unsorted.as_bytes(),
        400,
        "not_canonical_json",
    );

    // Oversize entry: one byte over the limit, and a card through the CLI.
    let mut big = inference_body(now_ms(), "req-big");
    big["extensions"] = json!({"pad": "x".repeat(MAX_ENTRY_SIZE)});
    let mut oversize = envelope(&good);
    oversize["body"] = big;
    let oversize = to_canonical(&Value::Object(oversize));
    assert!(oversize.len() > MAX_ENTRY_SIZE);
    raw_refused("oversize entry", &oversize, 413, "entry_too_large");
    let big_card = {
        let mut c: Value =
            serde_json::from_slice(&std::fs::read(chain.card(MODEL)).unwrap()).unwrap();
        c["appendix"] = json!("y".repeat(MAX_ENTRY_SIZE));
        chain.write("big-card.json", c.to_string().as_bytes())
    };
    let size = chain.size();
    let out = chain.cli(&["card", "submit", path(&big_card)], &chain.registry);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        // The CLI refuses it before sending anything.
        stderr.contains("larger than the limit of 65535 bytes"),
        "oversize card: {stderr}"
    );
    assert_eq!(chain.size(), size);

    // served_at far in the future or too old (CLI and raw).
    let future = now_ms() + 3_600_000;
    let old = now_ms() - 8 * 24 * 3_600_000;
    for (what, at) in [("future", future), ("old", old)] {
        let input = chain.write("in.txt", b"in");
        cli_refused(
            what,
            &[
                "inference",
                "log",
                "--model",
                MODEL,
                "--version",
                &v1,
                "--request-id",
                &format!("req-{what}"),
                "--input",
                path(&input),
                "--output",
                path(&input),
                "--served-at",
                &ts(at),
            ],
            &chain.serving,
            "served_at_out_of_range",
        );
        let e = chain.serving.sign(
            Kind::Inference,
            inference_body(at, &format!("req-raw-{what}")),
        );
        raw_refused(what, e.bytes(), 422, "served_at_out_of_range");
        // In a batch the entry's own result says so, in order.
        let size = chain.size();
        let r = http.post("/v1/entries", "application/x-ndjson", e.bytes());
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["results"][0]["error"]["code"],
            json!("served_at_out_of_range")
        );
        assert_eq!(chain.size(), size);
    }

    // After all that, the valid entry is logged, and the chain is as it was.
    let r = http.add(good.bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let status = chain.status();
    assert_eq!(status["active"], json!(v1));
    assert_eq!(status["history"].as_array().unwrap().len(), 1);
    // v2 has the two approvals (approver1's raw one, approver2's via CLI).
    let ver2 = http.get_json(&format!("/v1/versions/{v2}"));
    assert_eq!(ver2["approvals"].as_array().unwrap().len(), 2, "{ver2}");
    // And activating it now succeeds.
    chain.ok(
        &[
            "activate",
            "--model",
            MODEL,
            "--version",
            &v2,
            "--reason",
            "approved",
        ],
        &chain.approver2,
    );
    assert_eq!(chain.status()["active"], json!(v2));
}

// ---------------------------------------------------------------------------
// 5. The version hash
// ---------------------------------------------------------------------------

/// `modeltrail hash --json <path>`.
fn hash_cli(path: &Path) -> Value {
    let stdout = common::run_ok(Command::new(BIN).arg("hash").arg(path).arg("--json"));
    serde_json::from_str(&stdout).unwrap()
}

fn version_hash(path: &Path) -> String {
    hash_cli(path)["version_hash"].as_str().unwrap().to_owned()
}

#[test]
fn the_version_hash_is_stable_and_sensitive() {
    let dir = scratch("hash");
    let w = dir.join("weights");
    std::fs::create_dir_all(w.join("sub/deeper")).unwrap();
    std::fs::write(w.join("model.bin"), b"weights weights weights").unwrap();
    std::fs::write(w.join("config.json"), b"{\"layers\":2}").unwrap();
    std::fs::write(w.join("sub/deeper/tokenizer.txt"), b"a b c").unwrap();
    std::fs::write(w.join("sub/empty"), b"").unwrap();

    // Stable across runs, and the plain output is the same hash.
    let base = hash_cli(&w);
    let h = base["version_hash"].as_str().unwrap().to_owned();
    assert_eq!(hash_cli(&w), base);
    let plain = Command::new(BIN).arg("hash").arg(&w).output().unwrap();
    assert_eq!(String::from_utf8(plain.stdout).unwrap(), format!("{h}\n"));

    // The manifest: sorted relative POSIX paths, sizes, per-file BLAKE3;
    // the version hash is BLAKE3 of its canonical bytes, re-derived here.
    let manifest = &base["manifest"];
    let files = [
        ("config.json", &b"{\"layers\":2}"[..]),
        ("model.bin", b"weights weights weights"),
        ("sub/deeper/tokenizer.txt", b"a b c"),
        ("sub/empty", b""),
    ];
    let expected = json!({
        "files": files.iter().map(|(p, c)| json!({
            "blake3": ContentHash::of(c).to_string().strip_prefix("b3:").unwrap(),
            "path": p,
            "size": c.len(),
        })).collect::<Vec<_>>(),
        "v": 1,
    });
    assert_eq!(manifest, &expected);
    assert_eq!(h, ContentHash::of(&to_canonical(&expected)).to_string());
    // Golden: the same on every platform and in every release.
    assert_eq!(
        h, GOLDEN_VERSION_HASH,
        "the version hash of the golden tree changed"
    );

    // Where the tree lives does not matter; `.git` is ignored.
    let copy = dir.join("elsewhere/copy");
    copy_tree(&w, &copy);
    assert_eq!(version_hash(&copy), h);
    std::fs::create_dir_all(copy.join(".git/objects")).unwrap();
    std::fs::write(copy.join(".git/HEAD"), b"ref: refs/heads/main\n").unwrap();
    std::fs::write(copy.join(".git/objects/ab"), b"blob").unwrap();
    std::fs::create_dir_all(copy.join("sub/.git")).unwrap();
    std::fs::write(copy.join("sub/.git/config"), b"[core]").unwrap();
    assert_eq!(version_hash(&copy), h, ".git directories are not weights");

    // Any change changes it: one byte, a file's name, a file added or removed
    // (even an empty one), a file moved to another directory.
    let mut seen = BTreeSet::from([h.clone()]);
    let mut changed = |what: &str, change: &dyn Fn(&Path)| {
        let t = dir.join(format!("case-{}", seen.len()));
        copy_tree(&w, &t);
        change(&t);
        let h2 = version_hash(&t);
        assert!(
            seen.insert(h2.clone()),
            "{what}: the hash did not change ({h2})"
        );
    };
    changed("one byte", &|t| {
        std::fs::write(t.join("model.bin"), b"weights weights weightS").unwrap()
    });
    changed("one byte appended", &|t| {
        std::fs::write(t.join("model.bin"), b"weights weights weights\0").unwrap()
    });
    changed("renamed", &|t| {
        std::fs::rename(t.join("config.json"), t.join("config.jsonx")).unwrap()
    });
    changed("moved", &|t| {
        std::fs::rename(t.join("sub/empty"), t.join("sub/deeper/empty")).unwrap()
    });
    changed("added", &|t| {
        std::fs::write(t.join("extra.bin"), b"x").unwrap()
    });
    changed("empty file added", &|t| {
        std::fs::write(t.join("sub/empty2"), b"").unwrap()
    });
    changed("removed", &|t| {
        std::fs::remove_file(t.join("sub/empty")).unwrap()
    });
    changed("contents swapped", &|t| {
        std::fs::write(t.join("config.json"), b"weights weights weights").unwrap();
        std::fs::write(t.join("model.bin"), b"{\"layers\":2}").unwrap();
    });

    // A single file hashes as a manifest of one file named by its name.
    let single = hash_cli(&w.join("model.bin"));
    assert_eq!(
        single["manifest"]["files"],
        json!([{"blake3": ContentHash::of(b"weights weights weights").to_string()[3..],
                "path": "model.bin", "size": 23}])
    );
}

/// The version hash of the tree built in [`the_version_hash_is_stable_and_sensitive`].
const GOLDEN_VERSION_HASH: &str =
    "b3:749a7452d03ad210e998d9c9c3c22576c0715ce408db08f4d2a4004194c17614";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Issue 18: hardening
// ---------------------------------------------------------------------------

/// Registers a version of `model` under a fresh card, approves it by both
/// approvers and activates it: the version hash.
fn activate_new(chain: &Chain, model: &str, seed: u8) -> String {
    let card = chain.ok(
        &["card", "submit", Chain::path_str(&chain.card(model))],
        &chain.registry,
    );
    let weights = chain.weights(&format!("weights-{seed}"), seed);
    let (version, _) = chain.register(model, &weights, card["id"].as_str().unwrap());
    let criteria = chain.write("criteria.json", all_criteria().to_string().as_bytes());
    chain.approve_by_both(&version, &criteria);
    chain.ok(
        &[
            "activate",
            "--model",
            model,
            "--version",
            &version,
            "--reason",
            "release",
        ],
        &chain.approver1,
    );
    version
}

#[test]
fn a_model_name_with_a_slash_is_routed_exactly() {
    let chain = Chain::new("slash");
    let http = &chain.http;
    let v1 = activate_new(&chain, MODEL, 1);
    let tricky = format!("{MODEL}/active");
    let v2 = activate_new(&chain, &tricky, 2);

    let plain = http.get_json(&format!("/v1/models/{MODEL}"));
    assert_eq!(
        (&plain["model"], &plain["active"]),
        (&json!(MODEL), &json!(v1))
    );
    let encoded = http.get_json(&format!("/v1/models/{MODEL}%2Factive"));
    assert_eq!(
        (&encoded["model"], &encoded["active"]),
        (&json!(tricky), &json!(v2)),
        "{encoded}"
    );
    for h in encoded["history"].as_array().unwrap() {
        chain.check_proven(h);
    }
    let active = http.get_json(&format!("/v1/models/{MODEL}/active"));
    assert_eq!(
        (&active["model"], &active["active"]),
        (&json!(MODEL), &json!(v1))
    );
    let active = http.get_json(&format!("/v1/models/{MODEL}%2Factive/active"));
    assert_eq!(
        (&active["model"], &active["active"]),
        (&json!(tricky), &json!(v2)),
        "{active}"
    );
    for path in [
        format!("/v1/models/{MODEL}/active/active"),
        format!("/v1/models/{MODEL}/history"),
        format!("/v1/models/{MODEL}/active/x/y"),
    ] {
        let r = http.get(&path);
        assert_eq!(
            (r.status, r.code()),
            (404, "bad_model_path".into()),
            "{path}"
        );
    }

    // The CLI encodes the name.
    let status = chain.read(&["status", "--model", &tricky]);
    assert_eq!(
        (&status["model"], &status["active"]),
        (&json!(tricky), &json!(v2))
    );
    let status = chain.read(&["status", "--model", MODEL]);
    assert_eq!(status["active"], json!(v1));
}

/// An inference body on `model` with request ID `rid`, served now.
fn inference_now(model: &str, version: &str, rid: &str) -> Value {
    json!({
        "model": model, "version_hash": version, "request_id": rid,
        "served_at": ts(now_ms()),
        "input_commitment": ContentHash::of(b"in").to_string(),
        "output_commitment": ContentHash::of(b"out").to_string(),
    })
}

#[test]
fn look_alike_identifiers_and_weak_keys_are_refused() {
    let chain = Chain::new("identifiers");
    let http = &chain.http;
    let version = ContentHash::of(b"weights").to_string();
    let refused = |what: &str, entry: &SignedEntry, code: &str, needle: &str| {
        let size = chain.size();
        let r = http.add(entry.bytes());
        assert_eq!(
            (r.status, r.code()),
            (422, code.to_owned()),
            "{what}: {}",
            r.text()
        );
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{what}: {message}");
        assert_eq!(chain.size(), size, "{what}: the tree grew");
    };
    for (what, model, rid, needle) in [
        (
            "zero-width space in a model name",
            "fraud\u{200B}detector",
            "r1",
            "model holds U+200B",
        ),
        (
            "hyphen look-alike in a model name",
            "fraud\u{2010}detector",
            "r2",
            "model holds U+2010",
        ),
        (
            "right-to-left override in a request ID",
            MODEL,
            "req-\u{202E}24",
            "request_id holds U+202E",
        ),
        (
            "BOM in a request ID",
            MODEL,
            "\u{FEFF}r3",
            "request_id holds U+FEFF",
        ),
        (
            "no-break space in a model name",
            "fraud\u{00A0}detector",
            "r4",
            "model holds U+00A0",
        ),
    ] {
        let entry = chain
            .serving
            .sign(Kind::Inference, inference_now(model, &version, rid));
        refused(what, &entry, "invalid_identifier", needle);
    }
    // Through the CLI too, with the code in its one-line reason.
    let f = chain.fails(
        &[
            "card",
            "submit",
            Chain::path_str(&chain.card("fraud\u{200B}detector")),
        ],
        &chain.registry,
        "invalid_identifier",
    );
    assert!(f.stderr.contains("U+200B"), "{}", f.stderr);
    // Letters and digits of other scripts are names like any other.
    let entry = chain.serving.sign(
        Kind::Inference,
        inference_now("détecteur-модель-模型", &version, "r-ok"),
    );
    assert_eq!(http.add(entry.bytes()).status, 200);

    // A weak (small-order) key in the roster.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifierKey::new(
        "weak.chain.example.test",
        modeltrail::tlog::note::KeyType::Ed25519,
        &identity,
    )
    .unwrap()
    .to_string();
    let size = chain.size();
    let f = chain.fails(
        &[
            "policy",
            "add-signer",
            "--vkey",
            &weak,
            "--role",
            "approver",
        ],
        &chain.admin,
        "invalid_policy",
    );
    assert!(f.stderr.contains("weak"), "{}", f.stderr);
    assert_eq!(chain.size(), size);
    let mut policy = http.get_json("/v1/policy")["entry"]["body"].clone();
    policy["signers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"roles": ["approver"], "vkey": weak}));
    let entry = chain.admin.sign(Kind::Policy, policy);
    refused("weak key in a policy", &entry, "invalid_policy", "weak");
}

/// Every `Modeltrail-Warning` header of an answer, in order.
fn warning_headers(r: &Reply) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("modeltrail-warning"))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn warnings_reach_add_and_duplicates_carry_the_original_ones() {
    let chain = Chain::new("warnings");
    let http = &chain.http;
    let batch = |entry: &SignedEntry| -> Value {
        let r = http.post("/v1/entries", "application/x-ndjson", entry.bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["results"][0].clone()
    };
    let card = chain.ok(
        &["card", "submit", Chain::path_str(&chain.card(MODEL))],
        &chain.registry,
    );
    let weights = chain.weights("weights-w", 7);
    let (version, _) = chain.register(MODEL, &weights, card["id"].as_str().unwrap());

    // Before any activation: flagged (no active version).
    let first = chain
        .serving
        .sign(Kind::Inference, inference_now(MODEL, &version, "req-w1"));
    let answer = batch(&first);
    assert_eq!(answer["duplicate"], json!(false), "{answer}");
    let original = answer["warnings"].clone();
    let warnings = original.as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{answer}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("has no active version")
    );

    // POST /add: the same warnings, one header each.
    // (The same request ID with another output: not the same entry.)
    let mut body = inference_now(MODEL, &version, "req-w1");
    body["output_commitment"] = json!(ContentHash::of(b"other output").to_string());
    let second = chain.serving.sign(Kind::Inference, body);
    let r = http.add(second.bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let second_index: u64 = r.text().trim().parse().unwrap();
    let headers = warning_headers(&r);
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(headers[0].contains("has no active version"), "{headers:?}");
    assert!(
        headers[1].contains("request ID \"req-w1\" was already logged at index"),
        "{headers:?}"
    );

    // The version becomes active; resubmissions are duplicates and still
    // answer the warnings their originals were given at their index.
    let criteria = chain.write("criteria.json", all_criteria().to_string().as_bytes());
    chain.approve_by_both(&version, &criteria);
    chain.ok(
        &[
            "activate",
            "--model",
            MODEL,
            "--version",
            &version,
            "--reason",
            "go",
        ],
        &chain.approver1,
    );
    let again = batch(&first);
    assert_eq!(again["duplicate"], json!(true), "{again}");
    assert_eq!(again["warnings"], original, "{again}");
    let r = http.add(second.bytes());
    assert_eq!(r.text().trim(), second_index.to_string());
    assert_eq!(warning_headers(&r), headers);
    // `modeltrail submit` passes them on.
    let file = chain.write("second.entry", second.bytes());
    let out = chain.ok(&["submit", Chain::path_str(&file)], &chain.serving);
    assert_eq!(out["index"], json!(second_index));
    assert_eq!(out["warnings"], json!(headers));
    let again = batch(&second);
    assert_eq!(again["duplicate"], json!(true));
    let texts: Vec<String> = again["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, headers);

    // An inference on the now active version: no warnings, no header.
    let clean = chain
        .serving
        .sign(Kind::Inference, inference_now(MODEL, &version, "req-w2"));
    let r = http.add(clean.bytes());
    assert_eq!((r.status, warning_headers(&r).len()), (200, 0), "{r:?}");
    assert_eq!(batch(&clean)["warnings"], json!([]));
}

#[test]
fn card_submit_logs_exactly_the_numbers_in_the_card_file() {
    let chain = Chain::new("card-numbers");
    // Written by hand, not by serde_json: the numbers are the file's text.
    let card = chain.write(
        "card-numbers.json",
        br#"{"model": "fraud-detector", "training_data": "2025 card transactions",
            "evaluation": [
              {"metric": "auc", "value": 333333333.33333329, "dataset": "a"},
              {"metric": "fpr", "value": 1e-23, "dataset": "b"},
              {"metric": "drift", "value": 9.999999999999997e-7, "dataset": "c"},
              {"metric": "rows", "value": 9007199254740991.0, "dataset": "d"}],
            "intended_use": "flag card fraud for human review",
            "limitations": "not for credit decisions"}"#,
    );
    let out = chain.ok(&["card", "submit", Chain::path_str(&card)], &chain.registry);
    let leaf = String::from_utf8(chain.http.entry(out["index"].as_u64().unwrap())).unwrap();
    for want in [
        r#""value":333333333.3333333}"#,
        r#""value":1e-23}"#,
        r#""value":9.999999999999997e-7}"#,
        r#""value":9007199254740991}"#,
    ] {
        assert!(leaf.contains(want), "{want} not in {leaf}");
    }
    // A card file naming a member twice is refused, not read as the last.
    let twice = chain.write(
        "card-twice.json",
        br#"{"model": "fraud-detector", "model": "other"}"#,
    );
    let f = chain.fails(
        &["card", "submit", Chain::path_str(&twice)],
        &chain.registry,
        "duplicate object member name",
    );
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
}

#[test]
fn a_query_answer_checks_offline_with_the_cli() {
    let chain = Chain::new("offline");
    let version = ContentHash::of(b"weights").to_string();
    let entry = chain
        .serving
        .sign(Kind::Inference, inference_now(MODEL, &version, "req-42"));
    assert_eq!(chain.http.add(entry.bytes()).status, 200);
    let answer = chain.http.get_json("/v1/inferences/req-42");
    // What `jq -j .entry.leaf` and `jq -r .entry.tlog_proof` write.
    let leaf = chain.write(
        "req-42.entry",
        answer["entry"]["leaf"].as_str().unwrap().as_bytes(),
    );
    let proof = chain.write(
        "req-42.tlog-proof",
        format!("{}\n", answer["entry"]["tlog_proof"].as_str().unwrap()).as_bytes(),
    );
    let policy = chain.write(
        "policy.txt",
        format!("log {}\nquorum none\n", chain.log_vkey).as_bytes(),
    );
    let out = Command::new(BIN)
        .args(["tlog-proof", "verify"])
        .arg(&proof)
        .arg("--leaf")
        .arg(&leaf)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&leaf).unwrap(), entry.bytes());
}

/// Runs the CLI in the chain's directory with no key or log from the
/// environment.
fn run_in(chain: &Chain, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MODELTRAIL_LOG")
        .env_remove("MODELTRAIL_KEY")
        .current_dir(&chain.dir)
        .output()
        .expect("run the CLI")
}

/// A failed run: exit 1 and one line on stderr containing `what`.
fn fails_with(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(what), "want {what:?}: {stderr}");
}

#[test]
fn hiding_commitments_open_to_a_regulator_offline() {
    let chain = Chain::new("openings");
    let version = activate_new(&chain, MODEL, 7);
    let input = chain.write("in.json", br#"{"customer": "C-1", "amount": 120.5}"#);
    let output = chain.write("out.json", br#"{"fraud": false}"#);
    let log = |rid: &str| {
        let r = chain.ok(
            &[
                "inference",
                "log",
                "--model",
                MODEL,
                "--version",
                &version,
                "--request-id",
                rid,
                "--input",
                "in.json",
                "--output",
                "out.json",
            ],
            &chain.serving,
        );
        chain.http.entry(r["index"].as_u64().unwrap())
    };
    let (a, b) = (log("req-a"), log("req-b"));
    let (ea, eb) = (
        SignedEntry::parse(&a).unwrap(),
        SignedEntry::parse(&b).unwrap(),
    );
    // Identical outputs, unrelated commitments; the plain BLAKE3 of the
    // bytes appears nowhere in either entry.
    for field in ["input_commitment", "output_commitment"] {
        let (ca, cb) = (&ea.body()[field], &eb.body()[field]);
        assert_ne!(ca, cb, "{field}");
        assert!(ca.as_str().unwrap().starts_with("c1:"), "{ca}");
    }
    for raw in [&input, &output] {
        let plain = ContentHash::of(&std::fs::read(raw).unwrap()).to_string();
        for leaf in [&a, &b] {
            let leaf = String::from_utf8_lossy(leaf);
            assert!(!leaf.contains(&plain[3..]), "plain hash in {leaf}");
        }
    }
    let openings = chain.dir.join("modeltrail-openings");
    // The opening is stored before the entry is submitted: with the log
    // unreachable the record exists, and the retry commits under it.
    let unreachable = Command::new(BIN)
        .args(["inference", "log", "--model", MODEL, "--version", &version])
        .args(["--request-id", "req-retry", "--input", "in.json"])
        .args([
            "--output",
            "out.json",
            "--log",
            "http://127.0.0.1:1",
            "--key",
        ])
        .arg(&chain.serving.file)
        .env_remove("MODELTRAIL_LOG")
        .current_dir(&chain.dir)
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    let stored = std::fs::read_to_string(
        openings.join(format!("{}.json", blake3::hash(b"req-retry").to_hex())),
    )
    .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let retried = SignedEntry::parse(&log("req-retry")).unwrap();
    let opening = modeltrail::entry::Opening::parse(stored["output"].as_str().unwrap()).unwrap();
    let expected = modeltrail::entry::Commitment::hiding(
        &opening,
        modeltrail::entry::Side::Output,
        &std::fs::read(&output).unwrap(),
    );
    assert_eq!(
        retried.body()["output_commitment"],
        json!(expected.to_string())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&openings).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
    assert_eq!(std::fs::read_dir(&openings).unwrap().count(), 3);

    // Evidence with the opening; verify checks the raw files offline.
    let policy = chain.write(
        "log.policy",
        format!("log {}\nquorum none\n", chain.log_vkey).as_bytes(),
    );
    let base = chain.server.base.clone();
    let evidence = |rid: &str, out: &str, with_openings: bool| {
        let mut args = vec![
            "evidence",
            "--log",
            &base,
            "--request-id",
            rid,
            "--out",
            out,
        ];
        if with_openings {
            args.extend(["--openings", "modeltrail-openings"]);
        }
        let run = run_in(&chain, &args);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::fs::read_to_string(chain.dir.join(out)).unwrap()
    };
    let text = evidence("req-a", "a.evidence", true);
    assert!(
        text.contains("\nopening\n{\"v\":1,\"request_id\":\"req-a\""),
        "{text}"
    );
    let verify = |file: &str, extra: &[&str]| {
        let mut args = vec!["verify", file, "--policy", Chain::path_str(&policy)];
        args.extend_from_slice(extra);
        run_in(&chain, &args)
    };
    let both = ["--input", "in.json", "--output", "out.json"];
    let ok = verify("a.evidence", &both);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("The input in.json matches the inference's input commitment.")
            && stdout.contains("The output out.json matches the inference's output commitment."),
        "{stdout}"
    );

    // One flipped byte of a raw file fails, naming it.
    let mut flipped = std::fs::read(&output).unwrap();
    flipped[3] ^= 1;
    chain.write("out-flipped.json", &flipped);
    fails_with(
        &verify("a.evidence", &["--output", "out-flipped.json"]),
        "--output out-flipped.json: does not match the inference's output commitment",
    );
    // Input and output swapped: the role is part of the commitment.
    fails_with(
        &verify("a.evidence", &["--input", "out.json"]),
        "--input out.json: does not match",
    );
    // One flipped byte of an opening fails.
    let record = text.lines().last().unwrap().to_owned();
    let record_json: Value = serde_json::from_str(&record).unwrap();
    let opening = record_json["output"].as_str().unwrap();
    let flip = if opening.starts_with('0') { "1" } else { "0" };
    let tampered = text.replace(opening, &format!("{flip}{}", &opening[1..]));
    chain.write("tampered.evidence", tampered.as_bytes());
    fails_with(
        &verify("tampered.evidence", &["--output", "out.json"]),
        "--output out.json: does not match",
    );
    // Evidence without openings is as before and cannot open.
    let plain_text = evidence("req-a", "no-openings.evidence", false);
    assert!(!plain_text.contains("\nopening\n"), "{plain_text}");
    assert!(verify("no-openings.evidence", &[]).status.success());
    fails_with(
        &verify("no-openings.evidence", &["--input", "in.json"]),
        "the evidence file has no opening",
    );
    // An opening for another request is refused: in the evidence…
    let b_text = evidence("req-b", "b.evidence", true);
    let b_record = b_text.lines().last().unwrap();
    chain.write(
        "swapped.evidence",
        text.replace(&record, b_record).as_bytes(),
    );
    fails_with(
        &verify("swapped.evidence", &["--output", "out.json"]),
        "the evidence's opening is for request \"req-b\", not \"req-a\"",
    );
    // …and in the openings directory.
    let file_of =
        |rid: &str| openings.join(format!("{}.json", blake3::hash(rid.as_bytes()).to_hex()));
    std::fs::copy(file_of("req-b"), file_of("req-a")).unwrap();
    fails_with(
        &run_in(
            &chain,
            &[
                "evidence",
                "--log",
                &base,
                "--request-id",
                "req-a",
                "--openings",
                "modeltrail-openings",
                "--out",
                "x.evidence",
            ],
        ),
        "holds the openings of request \"req-b\", not \"req-a\"",
    );
    fails_with(
        &run_in(
            &chain,
            &[
                "evidence",
                "--log",
                &base,
                "--request-id",
                "req-c",
                "--openings",
                "modeltrail-openings",
                "--out",
                "x.evidence",
            ],
        ),
        "holds no openings for request \"req-c\"",
    );

    // A batch with --openings elsewhere: the same, from that directory.
    let line = json!({
        "model": MODEL, "version": version, "request_id": "req-batch",
        "input": "in.json", "output": "out.json",
    })
    .to_string();
    chain.write("files.jsonl", line.as_bytes());
    chain.ok(
        &[
            "inference",
            "log",
            "--batch",
            "files.jsonl",
            "--openings",
            "elsewhere/openings",
        ],
        &chain.serving,
    );
    let mut args = vec!["evidence", "--log", &base, "--request-id", "req-batch"];
    args.extend([
        "--openings",
        "elsewhere/openings",
        "--out",
        "batch.evidence",
    ]);
    assert!(run_in(&chain, &args).status.success());
    assert!(verify("batch.evidence", &both).status.success());

    // A plain commitment given directly is still accepted and verifies by
    // its hash; the audit warns about it without failing.
    let batch = json!({
        "model": MODEL, "version": version, "request_id": "req-plain",
        "input_commitment": ContentHash::of(&std::fs::read(&input).unwrap()).to_string(),
        "output_commitment": ContentHash::of(&std::fs::read(&output).unwrap()).to_string(),
    })
    .to_string();
    chain.write("plain.jsonl", batch.as_bytes());
    chain.ok(
        &["inference", "log", "--batch", "plain.jsonl"],
        &chain.serving,
    );
    evidence("req-plain", "plain.evidence", false);
    assert!(verify("plain.evidence", &both).status.success());
    let audit = run_in(
        &chain,
        &[
            "audit",
            "--log",
            &base,
            "--policy",
            Chain::path_str(&policy),
        ],
    );
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(
        stdout.contains("Warning: 1 inference(s) carry plain b3: commitments"),
        "{stdout}"
    );
}
