//! The auditor's tools end to end: the real `modeltrail serve` with a full
//! governance chain (two versions, activation, rollback, inferences), and
//! the real CLI for `evidence`, `verify`, `audit` and `review`.
//!
//! 1. Evidence round trip for each question (request, version, model at a
//!    time) and every tamper class failing with its reason: entry bytes,
//!    proof hash, checkpoint line, cosignature, policy file, evidence swapped
//!    from another request, missing piece, unmet quorum — and any flipped
//!    byte anywhere.
//! 2. The chain audit: the real log reported clean (from its directory and
//!    its URL), then breaks the log accepts (inferences on an unknown and an
//!    inactive version) found; a tiles directory written with the core
//!    holding entries the log would refuse, each break found at its index;
//!    altered tiles refused.
//! 3. The committee review across a rollback, the new checkpoint saved, and
//!    a rewritten history refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use modeltrail::audit::evidence::{Evidence, Role};
use modeltrail::audit::verify::verify;
use modeltrail::entry::{ContentHash, Kind, SignedEntry};
use modeltrail::store::{FsTileStore, TileStore, TreeWriter};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature::cosign;
use modeltrail::tlog::empty_tree_hash;
use modeltrail::tlog::note::{KeyType, Note, SignerKey};
use modeltrail::tlog::policy::Policy;
use modeltrail::tlog::tlog_proof::TlogProof;
use serde_json::{Value, json};

mod common;

use common::{BIN, Client, Server, Witness, now_ms, scratch, ts};

const MODEL: &str = "credit-scorer";

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, KeyType::Ed25519, &[seed; 32]).unwrap()
}

fn hash_of(text: &str) -> String {
    ContentHash::of(text.as_bytes()).to_string()
}

/// The actors of a governance chain, signing entries in-process.
struct Actors {
    admin: SignerKey,
    registry: SignerKey,
    approver1: SignerKey,
    approver2: SignerKey,
    serving: SignerKey,
    outsider: SignerKey,
}

impl Actors {
    fn new(admin: SignerKey) -> Actors {
        Actors {
            admin,
            registry: key("registry.audit.test", 11),
            approver1: key("alice.audit.test", 12),
            approver2: key("bob.audit.test", 13),
            serving: key("serving.audit.test", 14),
            outsider: key("mallory.audit.test", 15),
        }
    }

    /// The policy giving every actor but the outsider its role; two
    /// approvals on two criteria.
    fn policy(&self) -> Value {
        let signer =
            |k: &SignerKey, role: &str| json!({"roles": [role], "vkey": k.verifier().to_string()});
        json!({
            "approvals_required": 2,
            "criteria": [
                {"description": "Evaluation reviewed", "id": "evaluation-reviewed"},
                {"description": "Fairness reviewed", "id": "fairness-reviewed"},
            ],
            "signers": [
                signer(&self.admin, "admin"),
                signer(&self.registry, "registry"),
                signer(&self.approver1, "approver"),
                signer(&self.approver2, "approver"),
                signer(&self.serving, "serving"),
            ],
        })
    }
}

fn card(model: &str) -> Value {
    json!({
        "model": model,
        "training_data": "2025 loan applications",
        "evaluation": [{"metric": "auc", "value": 0.91, "dataset": "holdout"}],
        "intended_use": "rank applications for human review",
        "limitations": "not for automated refusal",
    })
}

fn version(model: &str, hash: &str, card: &str) -> Value {
    json!({"model": model, "version_hash": hash, "card": card})
}

fn approval(hash: &str, policy: &str, criteria: &[&str]) -> Value {
    let results: serde_json::Map<String, Value> = criteria
        .iter()
        .map(|c| ((*c).to_owned(), json!({"met": true, "note": "checked"})))
        .collect();
    json!({
        "version_hash": hash,
        "policy": policy,
        "criteria": results,
        "decision": "approve",
        "comment": "meets the bar",
    })
}

fn transition(model: &str, from: Option<&str>, to: &str, at: u64, reason: &str) -> Value {
    json!({"model": model, "from": from, "to": to, "at": ts(at), "reason": reason})
}

fn inference(model: &str, hash: &str, rid: &str, at: u64) -> Value {
    json!({
        "model": model,
        "version_hash": hash,
        "request_id": rid,
        "served_at": ts(at),
        "input_commitment": hash_of(&format!("in {rid}")),
        "output_commitment": hash_of(&format!("out {rid}")),
    })
}

const CRITERIA: [&str; 2] = ["evaluation-reviewed", "fairness-reviewed"];

/// A running log holding a whole chain: v1 activated, r1 served by v1, v2
/// activated, r2 served by v2, rollback to v1, r3 served by v1.
struct Log {
    dir: PathBuf,
    data: PathBuf,
    server: Server,
    http: Client,
    log_key: SignerKey,
    actors: Actors,
    policy_id: String,
    v1: String,
    v2: String,
    /// The checkpoint note once v1 was active (before v2 was registered).
    after_v1: Vec<u8>,
    /// When each inference was served (ms).
    served: [u64; 3],
}

impl Log {
    fn new(name: &str) -> Log {
        let dir = scratch(name);
        let data = dir.join("data");
        common::init(&data, &["--origin", &format!("audit.example.test/{name}")]);
        let server = Server::start(&data);
        Log::with_server(dir, data, server)
    }

    /// A log whose `/checkpoint` needs the cosignatures of every one of
    /// `count` real witnesses (started here; returned to keep them running).
    fn witnessed(name: &str, count: usize) -> (Log, Vec<Witness>) {
        let dir = scratch(name);
        let data = dir.join("data");
        let out = common::init(&data, &["--origin", &format!("audit.example.test/{name}")]);
        let log_vkey = common::init_vkey(&out, "log vkey:");
        let mut witnesses: Vec<Witness> = (1..=count)
            .map(|i| Witness::init(&dir, &format!("w{i}"), &log_vkey))
            .collect();
        witnesses.iter_mut().for_each(Witness::start);
        let refs: Vec<&Witness> = witnesses.iter().collect();
        let policy = dir.join("witnesses.policy");
        std::fs::write(&policy, common::witness_policy(&log_vkey, &refs, count)).unwrap();
        let server = Server::start_with(&data, &["--witness-policy", policy.to_str().unwrap()]);
        (Log::with_server(dir, data, server), witnesses)
    }

    /// Builds the chain on a started log.
    fn with_server(dir: PathBuf, data: PathBuf, server: Server) -> Log {
        let http = Client::new(&server.base);
        let actors = Actors::new(common::read_key(&data.join("keys/admin.key")));
        let log_key = common::read_key(&data.join("keys/log.key"));
        let mut log = Log {
            dir,
            data,
            server,
            http,
            log_key,
            actors,
            policy_id: String::new(),
            v1: hash_of("weights v1"),
            v2: hash_of("weights v2"),
            after_v1: Vec::new(),
            served: [0; 3],
        };
        log.build();
        log
    }

    /// Signs and logs an entry, which the log must accept; its artefact ID.
    fn post(&self, kind: Kind, body: Value, key: &SignerKey) -> String {
        let entry = SignedEntry::sign(kind, body, key).unwrap();
        let reply = self.http.add(entry.bytes());
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text());
        entry.id().to_string()
    }

    /// Both approvers approve `version` on every criterion.
    fn approve_by_both(&self, version: &str, policy_id: &str) {
        let a = &self.actors;
        for approver in [&a.approver1, &a.approver2] {
            let body = approval(version, policy_id, &CRITERIA);
            self.post(Kind::Approval, body, approver);
        }
    }

    fn build(&mut self) {
        let a = &self.actors;
        let start = now_ms() - 600_000;
        let policy_id = self.post(Kind::Policy, a.policy(), &a.admin);
        let card_id = self.post(Kind::ModelCard, card(MODEL), &a.registry);
        let (v1, v2) = (&self.v1, &self.v2);
        let served = [start + 60_000, start + 180_000, start + 300_000];
        self.post(
            Kind::ModelVersion,
            version(MODEL, v1, &card_id),
            &a.registry,
        );
        self.approve_by_both(v1, &policy_id);
        self.activate(None, v1, start, "first release", &a.approver1);
        let after_v1 = self.http.get("/checkpoint").body;
        self.serve(v1, "req-1", served[0]);
        self.post(
            Kind::ModelVersion,
            version(MODEL, v2, &card_id),
            &a.registry,
        );
        self.approve_by_both(v2, &policy_id);
        self.activate(Some(v1), v2, start + 120_000, "better recall", &a.approver2);
        self.serve(v2, "req 2", served[1]);
        let reason = "v2 drifted on new data";
        self.activate(Some(v2), v1, start + 240_000, reason, &a.approver1);
        self.serve(v1, "req-3", served[2]);
        self.after_v1 = after_v1;
        self.served = served;
        self.policy_id = policy_id;
    }

    fn activate(&self, from: Option<&str>, to: &str, at: u64, reason: &str, who: &SignerKey) {
        self.post(
            Kind::Transition,
            transition(MODEL, from, to, at, reason),
            who,
        );
    }

    fn serve(&self, version: &str, rid: &str, at: u64) {
        let body = inference(MODEL, version, rid, at);
        self.post(Kind::Inference, body, &self.actors.serving);
    }

    /// The auditor's tlog-policy file: the log's key, `quorum none`.
    fn policy_file(&self) -> PathBuf {
        let path = self.dir.join("log.policy");
        std::fs::write(
            &path,
            format!("log {}\nquorum none\n", self.log_key.verifier()),
        )
        .unwrap();
        path
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env_remove("MODELTRAIL_LOG")
            .env_remove("MODELTRAIL_KEY")
            .current_dir(&self.dir)
            .output()
            .expect("run the CLI")
    }

    /// `modeltrail evidence --log <url> <question> --out <file>`; the file's bytes.
    fn evidence(&self, name: &str, question: &[&str]) -> Vec<u8> {
        let out = self.dir.join(name);
        let mut args = vec!["evidence", "--log", &self.server.base];
        args.extend_from_slice(question);
        let out_str = out.to_str().unwrap();
        args.extend_from_slice(&["--out", out_str]);
        ok(&self.cli(&args));
        std::fs::read(&out).unwrap()
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Runs `modeltrail verify <evidence> --policy <policy>`.
fn verify_cli(dir: &Path, evidence: &[u8], policy: &Path) -> Output {
    let file = dir.join("candidate.evidence");
    std::fs::write(&file, evidence).unwrap();
    Command::new(BIN)
        .arg("verify")
        .arg(&file)
        .arg("--policy")
        .arg(policy)
        .output()
        .unwrap()
}

/// `verify` must fail with exit 1 and `reason` in its one line on stderr.
fn refused(dir: &Path, evidence: &[u8], policy: &Path, reason: &str) {
    let out = verify_cli(dir, evidence, policy);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains(reason), "want {reason:?}, got: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The evidence with `f` applied to its parsed form.
fn edited(bytes: &[u8], f: impl FnOnce(&mut Evidence)) -> Vec<u8> {
    let mut e = Evidence::parse(bytes).unwrap();
    f(&mut e);
    e.to_bytes()
}

/// Replaces the checkpoint everywhere in the evidence (top and every proof).
fn with_checkpoint(bytes: &[u8], note: &[u8]) -> Vec<u8> {
    edited(bytes, |e| {
        e.checkpoint = note.to_vec();
        for item in &mut e.items {
            let mut p = TlogProof::parse(&item.proof).unwrap();
            p.checkpoint = note.to_vec();
            item.proof = p.to_bytes();
        }
    })
}

#[test]
fn evidence_answers_each_question_and_every_tamper_fails_with_its_reason() {
    let log = Log::new("evidence");
    let policy = log.policy_file();
    let dir = &log.dir;

    // Request 1: served by v1, replaced later by v2.
    let r1 = log.evidence("r1.evidence", &["--request-id", "req-1"]);
    let out = ok(&verify_cli(dir, &r1, &policy));
    assert!(
        out.contains(&format!(
            "Request \"req-1\" at {} was served by model \"{MODEL}\" version {}",
            ts(log.served[0]),
            log.v1
        )),
        "{out}"
    );
    assert!(out.contains("Approved by alice.audit.test"), "{out}");
    assert!(out.contains("Approved by bob.audit.test"), "{out}");
    assert!(
        out.contains("evaluation-reviewed, fairness-reviewed"),
        "{out}"
    );
    assert!(out.contains("reason: \"first release\""), "{out}");
    assert!(out.contains(&format!("Replaced by {}", log.v2)), "{out}");
    let parsed = Evidence::parse(&r1).unwrap();
    let roles: Vec<Role> = parsed.items.iter().map(|i| i.role).collect();
    for role in Role::ALL {
        assert!(roles.contains(&role), "no {role} in {roles:?}");
    }
    // One checkpoint: every proof is against the evidence's own.
    for item in &parsed.items {
        assert_eq!(
            TlogProof::parse(&item.proof).unwrap().checkpoint,
            parsed.checkpoint
        );
    }

    // Request 2 (with a space in its ID): served by v2, then rolled back.
    let r2 = log.evidence("r2.evidence", &["--request-id", "req 2"]);
    let out = ok(&verify_cli(dir, &r2, &policy));
    assert!(out.contains(&format!("version {}", log.v2)), "{out}");
    assert!(out.contains("reason: \"v2 drifted on new data\""), "{out}");
    // Request 3: after the rollback, v1 again, still active.
    let r3 = log.evidence("r3.evidence", &["--request-id", "req-3"]);
    let out = ok(&verify_cli(dir, &r3, &policy));
    assert!(
        out.contains(&format!("version {}", log.v1)) && out.contains("still active"),
        "{out}"
    );
    // The model at a time, and a version.
    let at = ts(log.served[1]);
    let m = log.evidence("m.evidence", &["--model", MODEL, "--at", &at]);
    let out = ok(&verify_cli(dir, &m, &policy));
    assert!(
        out.contains(&format!(
            "At {at} model \"{MODEL}\" was running version {}",
            log.v2
        )),
        "{out}"
    );
    let v = log.evidence("v.evidence", &["--version", &log.v2]);
    let out = ok(&verify_cli(dir, &v, &policy));
    assert!(
        out.contains(&format!("Version {} of model", log.v2)) && out.contains("activated at"),
        "{out}"
    );

    // Tamper: entry bytes (one character of the inference's JSON).
    let tampered = edited(&r1, |e| {
        let item = e
            .items
            .iter_mut()
            .find(|i| i.role == Role::Inference)
            .unwrap();
        let at = item.entry.iter().position(|&b| b == b'1').unwrap();
        item.entry[at] = b'2';
    });
    refused(dir, &tampered, &policy, "(inference): inclusion proof");
    // Tamper: a proof hash (of an approval).
    let tampered = edited(&r1, |e| {
        let item = e
            .items
            .iter_mut()
            .find(|i| i.role == Role::Approval)
            .unwrap();
        let mut p = TlogProof::parse(&item.proof).unwrap();
        p.proof[0] = empty_tree_hash();
        item.proof = p.to_bytes();
    });
    refused(dir, &tampered, &policy, "(approval): inclusion proof");
    // Tamper: a checkpoint line (the size), everywhere so it stays one checkpoint.
    let note = text(&parsed.checkpoint);
    let lines: Vec<&str> = note.lines().collect();
    let bigger = (lines[1].parse::<u64>().unwrap() + 1).to_string();
    let forged = note.replacen(&format!("\n{}\n", lines[1]), &format!("\n{bigger}\n"), 1);
    refused(
        dir,
        &with_checkpoint(&r1, forged.as_bytes()),
        &policy,
        "checkpoint:",
    );
    // Tamper: the policy file (another log key).
    let other = dir.join("other.policy");
    std::fs::write(
        &other,
        format!(
            "log {}\nquorum none\n",
            key(log.log_key.name(), 99).verifier()
        ),
    )
    .unwrap();
    refused(dir, &r1, &other, "checkpoint: ");
    std::fs::write(&other, "log not-a-key\nquorum none\n").unwrap();
    refused(dir, &r1, &other, "policy file");
    // Tamper: evidence swapped from another request (r2's inference and proof).
    let r2_inference = Evidence::parse(&r2)
        .unwrap()
        .items
        .into_iter()
        .find(|i| i.role == Role::Inference)
        .unwrap();
    let swapped = edited(&r1, |e| {
        let item = e
            .items
            .iter_mut()
            .find(|i| i.role == Role::Inference)
            .unwrap();
        *item = r2_inference.clone();
    });
    refused(
        dir,
        &swapped,
        &policy,
        "is for request \"req 2\", not \"req-1\"",
    );
    // A whole evidence file for another request under this request's name.
    let renamed = text(&r2).replacen("query inference req 2", "query inference req-1", 1);
    refused(dir, renamed.as_bytes(), &policy, "not \"req-1\"");
    // Missing pieces: the card; the policy the approvals name.
    let no_card = edited(&r1, |e| e.items.retain(|i| i.role != Role::Card));
    refused(dir, &no_card, &policy, "missing piece: no card entry");
    let no_policy = edited(&r1, |e| e.items.retain(|i| i.role != Role::Policy));
    refused(
        dir,
        &no_policy,
        &policy,
        "missing piece: no policy entry logged before entry 2 (card)",
    );
    // Only the log's first policy: the registry is not in its roster.
    let first_policy = edited(&r1, |e| {
        e.items.retain(|i| i.role != Role::Policy || i.index == 0)
    });
    refused(
        dir,
        &first_policy,
        &policy,
        "entry 2 (card): under the policy in force (entry 0): signer",
    );
    // One approval fewer than the policy requires.
    let one_approval = edited(&r1, |e| {
        let first = e
            .items
            .iter()
            .position(|i| i.role == Role::Approval)
            .unwrap();
        e.items.remove(first);
    });
    refused(
        dir,
        &one_approval,
        &policy,
        "has 1 of the 2 approvals the policy requires",
    );

    // Witnesses: a policy with a quorum of one witness.
    let (witness, quorum) = quorum_policy(dir, &log.log_key);
    // Unmet quorum: the log-signed checkpoint alone.
    refused(dir, &r1, &quorum, "witness quorum not met: 0 of 1");
    // Cosigned: verifies.
    let mut cosigned = Note::parse(&parsed.checkpoint).unwrap();
    cosign(&mut cosigned, &witness, 1_795_000_000).unwrap();
    let cosigned = cosigned.to_bytes();
    let witnessed = with_checkpoint(&r1, &cosigned);
    ok(&verify_cli(dir, &witnessed, &quorum));
    // Tamper: one byte of the cosignature.
    let mut bad_cosig = cosigned.clone();
    let last = bad_cosig.len() - 3;
    bad_cosig[last] ^= 0x01;
    refused(
        dir,
        &with_checkpoint(&r1, &bad_cosig),
        &quorum,
        "checkpoint:",
    );
    // A proof against another checkpoint than the evidence's.
    let mixed = edited(&witnessed, |e| {
        let item = e.items.iter_mut().find(|i| i.role == Role::Card).unwrap();
        let mut p = TlogProof::parse(&item.proof).unwrap();
        p.checkpoint = parsed.checkpoint.clone();
        item.proof = p.to_bytes();
    });
    refused(
        dir,
        &mixed,
        &quorum,
        "(card): its tlog-proof is against another checkpoint",
    );

    // One byte anywhere: every flipped byte is refused (in-process: the
    // same verifier the command runs).
    let tlog_policy = Policy::parse(&std::fs::read(&policy).unwrap()).unwrap();
    let good = Evidence::parse(&r1).unwrap();
    verify(&good, &tlog_policy).unwrap();
    for at in 0..r1.len() {
        let mut flipped = r1.clone();
        flipped[at] ^= 0x01;
        let verdict = Evidence::parse(&flipped).map(|e| verify(&e, &tlog_policy));
        assert!(
            !matches!(verdict, Ok(Ok(_))),
            "byte {at} flipped and accepted"
        );
    }
}

#[test]
fn audit_reports_a_clean_log_clean_and_finds_every_break() {
    let log = Log::new("audit");
    let policy = log.policy_file();
    let data = log.data.to_str().unwrap();
    let policy_str = policy.to_str().unwrap();
    // Clean, from the data directory (its tiles/) and from the URL.
    let out = ok(&log.cli(&["audit", "--log", data, "--policy", policy_str]));
    assert!(out.contains("The chain is unbroken."), "{out}");
    assert!(
        out.contains("Signatures verified: 15 (every entry)"),
        "{out}"
    );
    let out = ok(&log.cli(&[
        "audit",
        "--log",
        &log.server.base,
        "--policy",
        policy_str,
        "--json",
    ]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["findings_total"], json!(0), "{report}");
    assert_eq!(report["entries"]["inference"], json!(3), "{report}");
    assert_eq!(report["entries"]["transition"], json!(3), "{report}");
    // --fast skips only the inferences' signatures.
    let out = ok(&log.cli(&[
        "audit", "--log", data, "--policy", policy_str, "--fast", "--json",
    ]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["signatures_verified"], json!(12), "{report}");
    assert_eq!(report["signatures"], json!("governance"));

    // Breaks the log accepts (with warnings): an inference on an unknown
    // version and one on the inactive v2.
    let a = &log.actors;
    let unknown = hash_of("weights never registered");
    let size = 15;
    log.post(
        Kind::Inference,
        inference(MODEL, &unknown, "req-4", now_ms() - 1000),
        &a.serving,
    );
    log.post(
        Kind::Inference,
        inference(MODEL, &log.v2, "req-5", now_ms() - 500),
        &a.serving,
    );
    let out = log.cli(&["audit", "--log", data, "--policy", policy_str, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = findings(&report);
    assert_eq!(
        found,
        [
            (size, "unknown_version".to_owned()),
            (size, "inactive_version".to_owned()),
            (size + 1, "inactive_version".to_owned()),
        ],
        "{report}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("the chain is broken: 3 finding(s)"));
    // Evidence for the inference on the inactive v2 does not verify, and says why.
    let e = log.evidence("r5.evidence", &["--request-id", "req-5"]);
    refused(
        &log.dir,
        &e,
        &policy,
        &format!("does not make version {} of \"{MODEL}\" active by", log.v2),
    );

    // A checkpoint that does not meet the policy is refused before reading.
    let (_, quorum) = quorum_policy(&log.dir, &log.log_key);
    let out = log.cli(&["audit", "--log", data, "--policy", quorum.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("witness quorum not met"));
}

/// A witness key and a tlog-policy file in `dir` requiring its cosignature
/// on checkpoints of `log`.
fn quorum_policy(dir: &Path, log: &SignerKey) -> (SignerKey, PathBuf) {
    let witness =
        SignerKey::from_seed("witness.audit.test", KeyType::CosignatureV1, &[21; 32]).unwrap();
    let file = dir.join("quorum.policy");
    let text = format!(
        "log {}\nwitness w {}\nquorum w\n",
        log.verifier(),
        witness.verifier()
    );
    std::fs::write(&file, text).unwrap();
    (witness, file)
}

/// (index, code) of every finding of a JSON report.
fn findings(report: &Value) -> Vec<(u64, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["index"].as_u64().unwrap(),
                f["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A tiles directory written with the core's `TreeWriter`, holding
/// whatever entries a test puts in it — including ones the log would refuse.
struct Crafted {
    dir: PathBuf,
    tiles: PathBuf,
    log_key: SignerKey,
    entries: Vec<Vec<u8>>,
}

impl Crafted {
    fn new(name: &str) -> Crafted {
        let dir = scratch(name);
        Crafted {
            tiles: dir.join("tiles"),
            log_key: key(&format!("{name}.audit.test/log"), 1),
            entries: Vec::new(),
            dir,
        }
    }

    /// Appends an entry; its index and artefact ID.
    fn add(&mut self, bytes: Vec<u8>) -> (u64, String) {
        let id = modeltrail::entry::ArtefactId::of(&bytes).to_string();
        self.entries.push(bytes);
        (self.entries.len() as u64 - 1, id)
    }

    /// Signs and appends an entry; its index and artefact ID.
    fn sign(&mut self, kind: Kind, body: Value, key: &SignerKey) -> (u64, String) {
        self.add(SignedEntry::sign(kind, body, key).unwrap().into_bytes())
    }

    /// Writes the entries, checkpointing after each of `cuts` (entry
    /// counts) and at the end; the tiles keep the last checkpoint, the
    /// earlier ones are returned as signed notes.
    fn write(&self, cuts: &[usize]) -> Vec<Vec<u8>> {
        let store = FsTileStore::new(&self.tiles).unwrap();
        let mut writer = TreeWriter::open(store, 0, empty_tree_hash()).unwrap();
        let mut notes = Vec::new();
        let mut done = 0;
        for &cut in cuts.iter().chain([&self.entries.len()]) {
            let (size, root) = writer.append(&self.entries[done..cut]).unwrap();
            let cp = Checkpoint {
                origin: self.log_key.name().to_owned(),
                size,
                root,
                extensions: vec![],
            };
            notes.push(cp.sign(&self.log_key).unwrap().to_bytes());
            done = cut;
        }
        writer
            .store()
            .replace_checkpoint(notes.last().unwrap())
            .unwrap();
        notes
    }

    /// `modeltrail audit --log <tiles> --policy <the log's key, quorum none>`.
    fn audit(&self, args: &[&str]) -> Output {
        let policy = self.dir.join("log.policy");
        let text = format!("log {}\nquorum none\n", self.log_key.verifier());
        std::fs::write(&policy, text).unwrap();
        Command::new(BIN)
            .arg("audit")
            .arg("--log")
            .arg(&self.tiles)
            .arg("--policy")
            .arg(&policy)
            .args(args)
            .output()
            .unwrap()
    }
}

#[test]
fn audit_finds_each_break_the_log_would_have_refused() {
    // A tiles directory written with the core, holding what the log refuses.
    let mut c = Crafted::new("crafted");
    let a = Actors::new(key("admin.audit.test", 2));
    let (_, policy) = c.sign(Kind::Policy, a.policy(), &a.admin);
    let (_, card_id) = c.sign(Kind::ModelCard, card(MODEL), &a.registry);
    let (v1, v2, v3) = (hash_of("w1"), hash_of("w2"), hash_of("w3"));
    c.sign(
        Kind::ModelVersion,
        version(MODEL, &v1, &card_id),
        &a.registry,
    );
    // 3: a version whose card is not logged.
    let (no_card, _) = c.sign(
        Kind::ModelVersion,
        version(MODEL, &v2, &hash_of("no card")),
        &a.registry,
    );
    // 4: an approval by a registry key (not an approver).
    let (not_approver, _) = c.sign(
        Kind::Approval,
        approval(&v1, &policy, &CRITERIA),
        &a.registry,
    );
    // 5: an approval missing a criterion.
    let (incomplete, _) = c.sign(
        Kind::Approval,
        approval(&v1, &policy, &CRITERIA[..1]),
        &a.approver1,
    );
    // 6: one valid approval; 7: activation with 1 of 2 approvals.
    c.sign(
        Kind::Approval,
        approval(&v1, &policy, &CRITERIA),
        &a.approver2,
    );
    let t0 = now_ms() - 100_000;
    let (unapproved, _) = c.sign(
        Kind::Transition,
        transition(MODEL, None, &v1, t0, "rushed"),
        &a.approver1,
    );
    // 8: a transition with a wrong from.
    let (stale, _) = c.sign(
        Kind::Transition,
        transition(MODEL, Some(&v3), &v1, t0 + 1, "stale"),
        &a.approver1,
    );
    // 9: a signer outside the roster.
    let (outsider, _) = c.sign(
        Kind::Inference,
        inference(MODEL, &v1, "r-out", t0 + 2),
        &a.outsider,
    );
    // 10: an inference on the unapproved, never activated v2.
    let (inactive, _) = c.sign(
        Kind::Inference,
        inference(MODEL, &v2, "r-v2", t0 + 3),
        &a.serving,
    );
    // 11: a bad signature (the body changed after signing).
    let signed = SignedEntry::sign(
        Kind::Inference,
        inference(MODEL, &v1, "r-ok", t0 + 4),
        &a.serving,
    );
    let mut forged: Value = serde_json::from_slice(signed.unwrap().bytes()).unwrap();
    forged["body"]["request_id"] = json!("r-forged");
    let (bad_sig, _) = c.add(modeltrail::entry::canonical::to_canonical(&forged));
    // 12: a policy signed by the outsider (ignored: the roster stays).
    let (forged_policy, _) = c.sign(
        Kind::Policy,
        Actors::new(key("mallory-admin", 15)).policy(),
        &a.outsider,
    );
    // 13: a clean inference on v1.
    c.sign(
        Kind::Inference,
        inference(MODEL, &v1, "r-fine", t0 + 5),
        &a.serving,
    );

    c.write(&[]);
    let size = c.entries.len();
    let run = |args: &[&str]| c.audit(args);
    let out = run(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<(u64, &str)> = vec![
        (no_card, "unknown_card"),
        (not_approver, "signer_not_authorised"),
        (incomplete, "criteria_incomplete"),
        (unapproved, "insufficient_approvals"),
        (stale, "stale_transition"),
        (stale, "insufficient_approvals"),
        (outsider, "unknown_signer"),
        (inactive, "inactive_version"),
        (bad_sig, "bad_signature"),
        (forged_policy, "unknown_signer"),
    ];
    let want: Vec<(u64, String)> = want.into_iter().map(|(i, c)| (i, c.to_owned())).collect();
    assert_eq!(findings(&report), want, "{report}");
    // --fast finds the same breaks but the forged inference's signature,
    // which it does not check (the log did, at admission).
    let out = run(&["--json", "--fast"]);
    let fast: Value = serde_json::from_slice(&out.stdout).unwrap();
    let without_sig: Vec<(u64, String)> = want
        .iter()
        .filter(|(i, _)| *i != bad_sig)
        .cloned()
        .collect();
    assert_eq!(findings(&fast), without_sig, "{fast}");
    // The human summary names each break.
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "entry {unapproved} (transition): insufficient_approvals"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("The chain is broken: 10 finding(s)."),
        "{stdout}"
    );
    // --max-findings bounds the list, not the count.
    let out = run(&["--json", "--max-findings", "2"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 2);
    assert_eq!(report["findings_total"], json!(10));

    // An altered entry bundle: the tree no longer hashes to the checkpoint.
    let bundle = c.tiles.join("tile/entries/000.p").join(size.to_string());
    let mut data = std::fs::read(&bundle).unwrap();
    let at = data.len() - 10;
    data[at] ^= 0x20;
    std::fs::write(&bundle, &data).unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the tiles were altered"), "{stderr}");
    // A missing bundle.
    std::fs::remove_file(&bundle).unwrap();
    let stderr = String::from_utf8_lossy(&run(&[]).stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "entry bundle tile/entries/000.p/{size} is missing"
        )),
        "{stderr}"
    );
}

#[test]
fn review_lists_the_changes_across_a_rollback_and_saves_the_checkpoint() {
    let log = Log::new("review");
    let policy = log.policy_file();
    let since = log.dir.join("committee.checkpoint");
    std::fs::write(&since, &log.after_v1).unwrap();
    let run = |since: &Path| {
        log.cli(&[
            "review",
            "--log",
            &log.server.base,
            "--since",
            since.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ])
    };
    let md = ok(&run(&since));
    let current = log.http.get("/checkpoint").body;
    let old_size = Checkpoint::from_note(&Note::parse(&log.after_v1).unwrap())
        .unwrap()
        .size;
    assert!(
        md.starts_with("# Governance review of `audit.example.test/review`"),
        "{md}"
    );
    assert!(md.contains(&format!("Entries {old_size} to 14")), "{md}");
    assert!(
        md.contains(&format!("**{MODEL}** version `{}`", log.v2)),
        "{md}"
    );
    assert!(
        md.contains(&format!("**approved** `{}` by alice.audit.test", log.v2)),
        "{md}"
    );
    assert!(
        md.contains(&format!("**approved** `{}` by bob.audit.test", log.v2)),
        "{md}"
    );
    assert!(
        md.contains(&format!("transition of **{MODEL}**")) && md.contains("better recall"),
        "{md}"
    );
    assert!(
        md.contains(&format!("**rollback** of **{MODEL}**"))
            && md.contains(&format!(
                "`{}` → `{}` by alice.audit.test; reason: v2 drifted on new data",
                log.v2, log.v1
            )),
        "{md}"
    );
    assert!(
        md.contains(&format!("| {MODEL} | `{}` | 2 |", log.v1)),
        "{md}"
    );
    assert!(
        !md.contains("first release"),
        "entries before the saved checkpoint: {md}"
    );
    // The new checkpoint was saved over --since.
    assert_eq!(std::fs::read(&since).unwrap(), current);
    // Nothing new: every section says so. --save leaves --since alone.
    let saved = log.dir.join("saved.checkpoint");
    let md = ok(&log.cli(&[
        "review",
        "--log",
        &log.server.base,
        "--since",
        since.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--save",
        saved.to_str().unwrap(),
    ]));
    assert!(md.contains("## Transitions\n\nNone."), "{md}");
    assert_eq!(std::fs::read(&saved).unwrap(), current);

    // A rewritten history: a checkpoint of the same size with another root,
    // validly signed by the log's key, is not consistent with the log's.
    let cp = Checkpoint::from_note(&Note::parse(&current).unwrap()).unwrap();
    let forked = Checkpoint {
        root: empty_tree_hash(),
        ..cp.clone()
    };
    let fork = log.dir.join("fork.checkpoint");
    std::fs::write(&fork, forked.sign(&log.log_key).unwrap().to_bytes()).unwrap();
    let out = run(&fork);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("its history was rewritten"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The saved file is left alone when the review fails.
    assert_eq!(
        std::fs::read(&fork).unwrap(),
        forked.sign(&log.log_key).unwrap().to_bytes()
    );
}

#[test]
fn audit_streams_many_bundles_and_reads_a_deleted_partial_bundle_from_its_full_one() {
    // More than one group of 64 bundles, appended in two batches so that
    // the first checkpoint's partial bundle is later full.
    let mut c = Crafted::new("streaming");
    let a = Actors::new(key("admin.audit.test", 2));
    let (_, policy) = c.sign(Kind::Policy, a.policy(), &a.admin);
    let (_, card_id) = c.sign(Kind::ModelCard, card(MODEL), &a.registry);
    let v1 = hash_of("w1");
    let t0 = now_ms() - 1_000_000;
    c.sign(
        Kind::ModelVersion,
        version(MODEL, &v1, &card_id),
        &a.registry,
    );
    for approver in [&a.approver1, &a.approver2] {
        c.sign(Kind::Approval, approval(&v1, &policy, &CRITERIA), approver);
    }
    c.sign(
        Kind::Transition,
        transition(MODEL, None, &v1, t0, "go"),
        &a.approver1,
    );
    let total = 64 * 256 + 300;
    while c.entries.len() < total {
        let i = c.entries.len() as u64;
        let body = inference(MODEL, &v1, &format!("r{i}"), t0 + i);
        c.sign(Kind::Inference, body, &a.serving);
    }
    let notes = c.write(&[300]);
    let first = c.dir.join("first.checkpoint");
    std::fs::write(&first, &notes[0]).unwrap();

    let audit = |args: &[&str]| {
        let out = c.audit(&[&["--json"], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    for args in [&[][..], &["--fast"][..]] {
        let report = audit(args);
        assert_eq!(report["size"], json!(total), "{report}");
        assert_eq!(report["findings_total"], json!(0), "{report}");
        assert_eq!(report["entries"]["inference"], json!(total - 6), "{report}");
    }
    // The first checkpoint's partial bundle (entries 256..300) is gone;
    // the audit reads it as the prefix of the full bundle.
    std::fs::remove_file(c.tiles.join("tile/entries/001.p/44")).unwrap();
    let report = audit(&["--checkpoint", first.to_str().unwrap()]);
    assert_eq!(report["size"], json!(300), "{report}");
    assert_eq!(report["findings_total"], json!(0), "{report}");
}

/// The round trip through real processes: a log whose checkpoints two
/// witnesses cosign; evidence taken from it verifies under the auditor's
/// 2-of-2 policy, names both witnesses' checkpoint, and fails under a policy
/// the cosignatures do not meet.
#[test]
fn evidence_from_a_witnessed_log_verifies_under_the_witness_quorum() {
    let (log, witnesses) = Log::witnessed("witnessed", 2);
    let dir = &log.dir;
    // The chain is logged; wait for the quorum to cosign all of it.
    let size = log.http.get_json("/healthz")["size"].as_u64().unwrap();
    let log_vkey = log.log_key.verifier();
    let refs: Vec<&Witness> = witnesses.iter().collect();
    let two_of_two = common::witness_policy(&log_vkey, &refs, 2);
    let quorum = Policy::parse(two_of_two.as_bytes()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = log.http.get("/checkpoint");
        if r.status == 200 && quorum.verify_checkpoint(&r.body).unwrap().size == size {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not witnessed: {}",
            r.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let policy = dir.join("auditor.policy");
    std::fs::write(&policy, &two_of_two).unwrap();

    let r3 = log.evidence("r3.evidence", &["--request-id", "req-3"]);
    let out = ok(&verify_cli(dir, &r3, &policy));
    assert!(out.contains(&format!("version {}", log.v1)), "{out}");
    // The one checkpoint carries both cosignatures.
    let evidence = Evidence::parse(&r3).unwrap();
    let signed = Checkpoint::open(
        &evidence.checkpoint,
        &log_vkey,
        &[witnesses[0].vkey.clone(), witnesses[1].vkey.clone()],
    )
    .unwrap();
    assert_eq!(signed.checkpoint.size, size);
    assert_eq!(signed.verified.len(), 3, "log + two witnesses");

    // A policy demanding a third witness that never cosigned is not met.
    let third = SignerKey::generate("w3.audit.test", KeyType::CosignatureV1).unwrap();
    let three = format!(
        "log {log_vkey}\nwitness w1 {}\nwitness w2 {}\nwitness w3 {}\ngroup q 3 w1 w2 w3\nquorum q\n",
        witnesses[0].vkey,
        witnesses[1].vkey,
        third.verifier()
    );
    let unmet = dir.join("three.policy");
    std::fs::write(&unmet, three).unwrap();
    refused(dir, &r3, &unmet, "quorum");
    // Stripping one witness's cosignature breaks the 2-of-2 quorum.
    let mut note = Note::parse(&evidence.checkpoint).unwrap();
    let kept: Vec<_> = note
        .signatures()
        .iter()
        .filter(|s| !witnesses[1].vkey.matches(s))
        .cloned()
        .collect();
    note = Note::new(note.text(), kept).unwrap();
    refused(
        dir,
        &with_checkpoint(&r3, &note.to_bytes()),
        &policy,
        "quorum",
    );
}

/// An approver who approved a version before its activation and rejects it
/// afterwards: evidence for a request the activation covered still
/// verifies (the decisions before the transition count), and lists both.
#[test]
fn a_later_rejection_does_not_undo_the_approvals_an_activation_relied_on() {
    let log = Log::new("reversal");
    let policy = log.policy_file();
    let mut reject = approval(&log.v1, &log.policy_id, &CRITERIA);
    reject["decision"] = json!("reject");
    reject["comment"] = json!("drift found after release");
    log.post(Kind::Approval, reject, &log.actors.approver2);

    let r1 = log.evidence("r1.evidence", &["--request-id", "req-1"]);
    let out = ok(&verify_cli(&log.dir, &r1, &policy));
    assert!(out.contains(&format!("version {}", log.v1)), "{out}");
    assert!(out.contains("Rejected by bob.audit.test"), "{out}");
    let approvals = Evidence::parse(&r1)
        .unwrap()
        .items
        .iter()
        .filter(|i| i.role == Role::Approval)
        .count();
    assert_eq!(approvals, 3, "both approvals and the later rejection");
}

/// An Ed25519 public key of small order: the identity point.
fn weak_vkey(name: &str) -> String {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    modeltrail::tlog::note::VerifierKey::new(name, KeyType::Ed25519, &identity)
        .unwrap()
        .to_string()
}

#[test]
fn audit_reports_weak_keys_and_invisible_identifiers_already_logged() {
    let mut c = Crafted::new("weak-and-invisible");
    let a = Actors::new(key("admin.audit.test", 2));
    c.sign(Kind::Policy, a.policy(), &a.admin);
    // 1: a policy adding a weak key as an approver.
    let mut weak = a.policy();
    weak["signers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"roles": ["approver"], "vkey": weak_vkey("weak.audit.test")}));
    let (weak_policy, _) = c.sign(Kind::Policy, weak, &a.admin);
    // 2: a card for a model whose name holds a zero-width space.
    let (zwsp, _) = c.sign(Kind::ModelCard, card("credit\u{200B}scorer"), &a.registry);
    // 3: an inference whose request ID holds a right-to-left override.
    let t0 = now_ms() - 100_000;
    let (rlo, _) = c.sign(
        Kind::Inference,
        inference(MODEL, &hash_of("w"), "req-\u{202E}24", t0),
        &a.serving,
    );
    c.write(&[]);
    let want: Vec<(u64, String)> = [
        (weak_policy, "weak_key"),
        (zwsp, "invalid_identifier"),
        (rlo, "invalid_identifier"),
        (rlo, "unknown_version"),
        (rlo, "no_active_version"),
    ]
    .into_iter()
    .map(|(i, code)| (i, code.to_owned()))
    .collect();
    for args in [&["--json"][..], &["--json", "--fast"]] {
        let out = c.audit(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(findings(&report), want, "{args:?}: {report}");
        let messages = report["findings"].to_string();
        assert!(
            messages.contains("U+200B") && messages.contains("U+202E"),
            "{messages}"
        );
    }
}
