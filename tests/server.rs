//! End-to-end tests of the log server: the real `modeltrail` binary, started
//! on 127.0.0.1 (port 0) with a fresh data directory, driven over HTTP, and
//! checked with the library's own verifiers (checkpoint signatures, tiles,
//! inclusion and consistency proofs, tlog-proofs).
//!
//! The crash test runs with the others (and so in CI) with 5 `kill -9`
//! cycles; `MODELTRAIL_CRASH_CYCLES` sets the number. The long run by hand:
//!
//! ```text
//! MODELTRAIL_CRASH_CYCLES=100 cargo test --release --test server -- crash --nocapture
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use modeltrail::entry::canonical::to_canonical;
use modeltrail::entry::{
    ArtefactId, EntryError, Kind, MAX_ENTRY_SIZE, PolicyBody, SignedEntry, authorise,
};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::hash::{Hash, ReadError, leaf_hash, node_hash};
use modeltrail::tlog::note::{KeyType, SignerKey, VerifierKey};
use modeltrail::tlog::policy::Policy;
use modeltrail::tlog::proof::{prove_inclusion, verify_consistency, verify_inclusion};
use modeltrail::tlog::tile::{
    Tile, TileHashReader, TileKind, TileReader, entry_bundle_for, parse_bundle_for,
};
use modeltrail::tlog::tlog_proof::TlogProof;
use serde_json::{Map, Value, json};

mod common;

use common::{BIN, Client, Reply, Server, metric, scratch};

// ---------------------------------------------------------------------------
// HTTP helpers specific to these tests
// ---------------------------------------------------------------------------

impl Reply {
    /// The decimal index a `POST /add` answers with.
    fn index(&self) -> u64 {
        assert_eq!(self.status, 200, "{}", self.text());
        let text = self.text();
        text.strip_suffix('\n')
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("POST /add answered {text:?}, not an index line"))
    }
}

impl Client {
    /// `POST /v1/entries` as a JSON array of the raw texts.
    fn add_array(&self, entries: &[&[u8]]) -> Reply {
        self.post(
            "/v1/entries",
            "application/json",
            &common::json_array(entries),
        )
    }

    /// `POST /v1/entries` as NDJSON.
    fn add_ndjson(&self, entries: &[&[u8]]) -> Reply {
        let mut body = Vec::new();
        for e in entries {
            body.extend_from_slice(e);
            body.push(b'\n');
        }
        self.post("/v1/entries", "application/x-ndjson", &body)
    }

    /// The published checkpoint, verified with the log's key.
    fn checkpoint(&self, log_vkey: &VerifierKey) -> (Checkpoint, Vec<u8>) {
        let r = self.get("/checkpoint");
        assert_eq!(r.status, 200, "{}", r.text());
        let signed = Checkpoint::open(&r.body, log_vkey, &[])
            .unwrap_or_else(|e| panic!("the checkpoint does not verify: {e}\n{}", r.text()));
        (signed.checkpoint, r.body)
    }

    fn size(&self, log_vkey: &VerifierKey) -> u64 {
        self.checkpoint(log_vkey).0.size
    }

    /// One tile by path; a partial tile that is gone is answered by the
    /// prefix of its full tile (as `TileReader` allows).
    fn tile(&self, tile: &Tile) -> Result<Vec<u8>, String> {
        let r = self
            .try_get(&format!("/{}", tile.path()))
            .map_err(|e| e.to_string())?;
        if r.status == 200 {
            return Ok(r.body);
        }
        if r.status == 404 && tile.is_partial() {
            let full = self
                .try_get(&format!("/{}", tile.full().path()))
                .map_err(|e| e.to_string())?;
            if full.status == 200 {
                return Ok(match tile.kind() {
                    TileKind::Entries => {
                        let entries = parse_bundle_for(&tile.full(), &full.body)
                            .map_err(|e| e.to_string())?;
                        let mut out = Vec::new();
                        for e in &entries[..usize::from(tile.width())] {
                            out.extend_from_slice(&(e.len() as u16).to_be_bytes());
                            out.extend_from_slice(e);
                        }
                        out
                    }
                    _ => full.body[..usize::from(tile.width()) * 32].to_vec(),
                });
            }
        }
        Err(format!("GET /{}: {} {}", tile.path(), r.status, r.text()))
    }

    /// The entries of the tree of `size`, read from the entry bundles.
    fn all_entries(&self, size: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(size as usize);
        let mut next = 0;
        while next < size {
            let (tile, _) = entry_bundle_for(next, size).expect("index below size");
            let data = self.tile(&tile).unwrap();
            let entries = parse_bundle_for(&tile, &data).unwrap();
            out.extend(entries.iter().map(|e| e.to_vec()));
            next = out.len() as u64;
        }
        assert_eq!(out.len() as u64, size);
        out
    }
}

/// Hash tiles over HTTP, for [`TileHashReader`].
struct HttpTiles<'a>(&'a Client);

impl TileReader for HttpTiles<'_> {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        tiles
            .iter()
            .map(|t| self.0.tile(t).map_err(ReadError::new))
            .collect()
    }
}

fn parse_hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .expect("a proof is an array")
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

/// The RFC 6962 root of `leaves` (leaf hashes), computed independently of
/// the server's tiles.
fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => modeltrail::tlog::empty_tree_hash(),
        1 => leaves[0],
        n => {
            // The largest power of two smaller than n (RFC 6962 §2.1).
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// Verifies, client-side, the server's consistency proof from (`old`,
/// `old_root`) to the checkpoint `new`.
fn check_consistency(client: &Client, old: u64, old_root: &Hash, new: &Checkpoint) {
    if old == new.size {
        assert_eq!(*old_root, new.root, "two roots for size {old}");
        return;
    }
    let r = client.get(&format!("/v1/proof/consistency?old={old}&new={}", new.size));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["old"], json!(old));
    assert_eq!(v["new"], json!(new.size));
    assert_eq!(v["root"], json!(new.root.to_base64()));
    let proof = parse_hashes(&v["proof"]);
    verify_consistency(old, new.size, old_root, &new.root, &proof)
        .unwrap_or_else(|e| panic!("consistency {old} -> {} does not verify: {e}", new.size));
}

// ---------------------------------------------------------------------------
// A log with keys and enrolled signers
// ---------------------------------------------------------------------------

struct Fixture {
    dir: PathBuf,
    origin: String,
    log_vkey: VerifierKey,
    admin: SignerKey,
    /// Enrolled with the serving role (inference entries).
    serving: SignerKey,
    serving_seed: [u8; 32],
    /// Enrolled with the registry role (model cards and versions).
    registry: SignerKey,
}

impl Fixture {
    /// `modeltrail init` in a fresh directory; `config` (TOML tables, such
    /// as `[sequencer]`) is appended to the config's origin line.
    fn init(name: &str, config: Option<&str>) -> Fixture {
        let dir = scratch(name);
        let origin = format!("e2e.example.test/{name}");
        let stdout = common::init(&dir, &["--origin", &origin]);
        let log_vkey = common::init_vkey(&stdout, "log vkey:");
        let admin_vkey = common::init_vkey(&stdout, "admin vkey:");
        let admin = common::read_key(&dir.join("keys/admin.key"));
        assert_eq!(admin.verifier(), admin_vkey);
        let log_key = common::read_key(&dir.join("keys/log.key"));
        assert_eq!(log_key.verifier(), log_vkey);
        assert_eq!(log_vkey.name(), origin);
        if let Some(config) = config {
            let config = format!("origin = {origin:?}\n\n{config}\n");
            std::fs::write(dir.join("config.toml"), config).unwrap();
        }
        let mut serving_seed = [0u8; 32];
        getrandom::fill(&mut serving_seed).unwrap();
        Fixture {
            dir,
            origin,
            log_vkey,
            admin,
            serving: SignerKey::from_seed(
                "serving.e2e.example.test",
                KeyType::Ed25519,
                &serving_seed,
            )
            .unwrap(),
            serving_seed,
            registry: SignerKey::generate("registry.e2e.example.test", KeyType::Ed25519).unwrap(),
        }
    }

    /// The policy that adds the serving and registry signers to the initial
    /// one (read back from leaf 0), signed by the admin.
    fn enrolment(&self, client: &Client) -> SignedEntry {
        let initial = SignedEntry::parse(&client.entry(0)).expect("leaf 0 is a valid entry");
        assert_eq!(initial.kind(), Kind::Policy);
        assert_eq!(initial.signer(), &self.admin.verifier());
        let policy = PolicyBody::parse(initial.body()).expect("leaf 0 is a valid policy");
        assert_eq!(policy.signers().len(), 1);
        let mut value = policy.to_value();
        let signers = value["signers"].as_array_mut().unwrap();
        signers.push(json!({"roles": ["serving"], "vkey": self.serving.verifier().to_string()}));
        signers.push(json!({"roles": ["registry"], "vkey": self.registry.verifier().to_string()}));
        let next = PolicyBody::parse(&value).expect("the extended policy is valid");
        SignedEntry::sign(Kind::Policy, next.to_value(), &self.admin).unwrap()
    }

    /// Like [`Fixture::enrolment`], but extending the policy at `index`
    /// (which must already enrol the signers) with a new criterion, so it is
    /// a different entry.
    fn enrolment_from(&self, client: &Client, index: u64) -> SignedEntry {
        let current = SignedEntry::parse(&client.entry(index)).unwrap();
        let mut value = PolicyBody::parse(current.body()).unwrap().to_value();
        value["criteria"]
            .as_array_mut()
            .unwrap()
            .push(json!({"description": "added in a batch", "id": "batch-criterion"}));
        SignedEntry::sign(Kind::Policy, value, &self.admin).unwrap()
    }

    /// Logs [`Fixture::enrolment`] (it must land at index 1).
    fn enrol(&self, client: &Client) -> SignedEntry {
        let entry = self.enrolment(client);
        assert_eq!(client.add(entry.bytes()).index(), 1);
        entry
    }

    /// An inference entry signed by the serving key.
    fn inference(&self, request_id: &str) -> SignedEntry {
        inference_by(&self.serving, request_id)
    }

    /// The tlog-policy trusting only the log's key.
    fn tlog_policy(&self) -> Policy {
        Policy::parse(format!("log {}\nquorum none\n", self.log_vkey).as_bytes()).unwrap()
    }
}

fn inference_by(key: &SignerKey, request_id: &str) -> SignedEntry {
    SignedEntry::sign(Kind::Inference, inference_body(request_id), key).unwrap()
}

/// A valid inference body (an unregistered version: logged and flagged),
/// served when this test process started, so the same request ID always
/// signs to the same bytes.
fn inference_body(request_id: &str) -> Value {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let now = *STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    });
    let served_at = modeltrail::entry::Timestamp::from_unix_millis(now).unwrap();
    json!({
        "model": "fraud-detector",
        "version_hash": format!("b3:{}", "ab".repeat(32)),
        "request_id": request_id,
        "served_at": served_at.to_string(),
        "input_commitment": format!("b3:{}", "01".repeat(32)),
        "output_commitment": format!("b3:{}", "02".repeat(32)),
    })
}

/// A valid model card body.
fn card_body() -> Value {
    json!({
        "model": "fraud-detector",
        "training_data": "2025 transactions",
        "evaluation": [{"metric": "auc", "value": 0.93, "dataset": "holdout"}],
        "intended_use": "flag fraud for review",
        "limitations": "not for credit decisions",
    })
}

/// The envelope of an entry as a JSON object, to tamper with.
fn envelope(entry: &SignedEntry) -> Map<String, Value> {
    serde_json::from_slice(entry.bytes()).unwrap()
}

fn canonical(m: Map<String, Value>) -> Vec<u8> {
    to_canonical(&Value::Object(m))
}

/// One per-entry outcome of `POST /v1/entries`.
#[derive(Debug, PartialEq)]
enum Outcome {
    Logged { index: u64, duplicate: bool },
    Refused(String),
}

/// Logged as new at `index`.
fn new_at(index: u64) -> Outcome {
    Outcome::Logged {
        index,
        duplicate: false,
    }
}

/// Already logged, at `index`.
fn dup_at(index: u64) -> Outcome {
    Outcome::Logged {
        index,
        duplicate: true,
    }
}

/// The outcomes of a batch in which every entry failed for the log's
/// storage: answered 503, with every outcome listed.
fn outcomes_unstored(r: &Reply) -> Vec<Outcome> {
    assert_eq!(r.status, 503, "{}", r.text());
    outcomes(&Reply {
        status: 200,
        headers: r.headers.clone(),
        body: r.body.clone(),
    })
}

fn outcomes(r: &Reply) -> Vec<Outcome> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results array: {}", r.text()))
        .iter()
        .map(|o| {
            if let Some(code) = o["error"]["code"].as_str() {
                assert!(o["error"]["message"].as_str().is_some());
                Outcome::Refused(code.to_owned())
            } else {
                let index = o["index"].as_u64().unwrap_or_else(|| panic!("{o}"));
                Outcome::Logged {
                    index,
                    duplicate: o["duplicate"].as_bool().unwrap(),
                }
            }
        })
        .collect()
}

/// A small non-cryptographic PRNG (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng((nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

// ---------------------------------------------------------------------------
// 1. Submit, read back, verify
// ---------------------------------------------------------------------------

#[test]
fn submit_read_back_and_verify_everything() {
    let fx = Fixture::init("submit", None);
    let server = Server::start(&fx.dir);
    assert_eq!(server.start_size, 1, "a fresh log holds the initial policy");
    let client = server.client();
    let (first, _) = client.checkpoint(&fx.log_vkey);
    assert_eq!((first.origin.as_str(), first.size), (fx.origin.as_str(), 1));
    fx.enrol(&client);

    let entry = fx.inference("req-1");
    let r = client.add(entry.bytes());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{r:?}"
    );
    assert_eq!(r.index(), 2);

    // The checkpoint: signed by the log key, origin and size as expected.
    let (cp, note) = client.checkpoint(&fx.log_vkey);
    assert_eq!(cp.origin, fx.origin);
    assert_eq!(cp.size, 3);
    let other = SignerKey::generate(&fx.origin, KeyType::Ed25519).unwrap();
    assert!(
        Checkpoint::open(&note, &other.verifier(), &[]).is_err(),
        "a checkpoint must not verify with another key of the same name"
    );

    // The entry through its entry bundle.
    let (bundle, offset) = entry_bundle_for(2, cp.size).unwrap();
    let data = client.tile(&bundle).unwrap();
    let leaves = parse_bundle_for(&bundle, &data).unwrap();
    assert_eq!(leaves.len(), 3);
    assert_eq!(leaves[offset], entry.bytes());
    // All three leaves hash to the checkpoint's root.
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    assert_eq!(merkle_root(&hashes), cp.root);

    // Inclusion from hash tiles fetched over HTTP, authenticated against the root.
    let tiles = TileHashReader::new(cp.size, cp.root, HttpTiles(&client));
    let proof = prove_inclusion(cp.size, 2, &tiles).expect("proof from authenticated tiles");
    verify_inclusion(&leaf_hash(entry.bytes()), 2, cp.size, &proof, &cp.root).unwrap();
    // The same tiles do not authenticate against another root.
    let wrong = TileHashReader::new(cp.size, leaf_hash(b"not the root"), HttpTiles(&client));
    assert!(prove_inclusion(cp.size, 2, &wrong).is_err());

    // GET /v1/proof/inclusion, with and without an explicit size.
    for query in ["index=2&size=3", "index=2"] {
        let r = client.get(&format!("/v1/proof/inclusion?{query}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(
            (v["index"].as_u64(), v["size"].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(v["root"], json!(cp.root.to_base64()));
        let proof = parse_hashes(&v["proof"]);
        verify_inclusion(&leaf_hash(entry.bytes()), 2, 3, &proof, &cp.root).unwrap();
        assert!(verify_inclusion(&leaf_hash(b"other"), 2, 3, &proof, &cp.root).is_err());
    }
    // An inclusion proof in an older tree verifies against that tree's root.
    let r = client.get("/v1/proof/inclusion?index=0&size=1");
    let v = r.json();
    assert_eq!(v["root"], json!(first.root.to_base64()));
    verify_inclusion(
        &leaf_hash(&client.entry(0)),
        0,
        1,
        &parse_hashes(&v["proof"]),
        &first.root,
    )
    .unwrap();
    for bad in ["index=3", "index=0&size=4", "index=2&size=2"] {
        let r = client.get(&format!("/v1/proof/inclusion?{bad}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "bad_proof_request"),
            "{bad}"
        );
    }

    // GET /v1/tlog-proof/<i>.
    let r = client.get("/v1/tlog-proof/2");
    assert_eq!(r.status, 200, "{}", r.text());
    let tlog_proof = TlogProof::parse(&r.body).unwrap();
    assert_eq!(tlog_proof.index, 2);
    let proven = tlog_proof.verify(entry.bytes(), &fx.tlog_policy()).unwrap();
    assert_eq!((proven.size, proven.root), (cp.size, cp.root));
    assert!(
        tlog_proof
            .verify(b"another entry", &fx.tlog_policy())
            .is_err()
    );
    let stranger = SignerKey::generate(&fx.origin, KeyType::Ed25519).unwrap();
    let wrong_policy =
        Policy::parse(format!("log {}\nquorum none\n", stranger.verifier()).as_bytes()).unwrap();
    assert!(tlog_proof.verify(entry.bytes(), &wrong_policy).is_err());
    let r = client.get("/v1/tlog-proof/3");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));

    // GET /v1/artefacts/<id>: the same entry, its index, and a tlog-proof.
    let r = client.get(&format!("/v1/artefacts/{}", entry.id()));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["id"], json!(entry.id().to_string()));
    assert_eq!(v["index"], json!(2));
    assert_eq!(to_canonical(&v["entry"]), entry.bytes());
    let artefact_proof = TlogProof::parse(v["tlog_proof"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(artefact_proof.index, 2);
    artefact_proof
        .verify(entry.bytes(), &fx.tlog_policy())
        .unwrap();
    let unknown = ArtefactId::of(b"never logged");
    let r = client.get(&format!("/v1/artefacts/{unknown}"));
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = client.get("/v1/artefacts/not-an-id");
    assert_eq!((r.status, r.code().as_str()), (400, "bad_artefact_id"));

    // GET /v1/entries/<i>: byte-identical; beyond the tree, 404.
    let r = client.get("/v1/entries/2");
    assert_eq!(r.body, entry.bytes());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = client.get("/v1/entries/3");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));

    // Tiles beyond the published tree are not served.
    let r = client.get("/tile/entries/000.p/4");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = client.get("/no/such/endpoint");
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    // Malformed paths and queries get the JSON error shape too.
    for (path, code) in [
        ("/v1/entries/abc", "bad_index"),
        ("/v1/entries/-1", "bad_index"),
        ("/v1/tlog-proof/two", "bad_index"),
        ("/v1/proof/inclusion?index=abc", "bad_proof_request"),
        ("/v1/proof/inclusion", "bad_proof_request"),
        ("/v1/proof/consistency", "bad_proof_request"),
        ("/v1/proof/consistency?old=0", "bad_proof_request"),
        ("/v1/proof/consistency?old=2&new=4", "bad_proof_request"),
    ] {
        let r = client.get(path);
        assert_eq!((r.status, r.code().as_str()), (400, code), "GET {path}");
    }
    let health = client.get("/healthz").json();
    assert_eq!(health["size"], json!(3));
}

// ---------------------------------------------------------------------------
// 2. Batches: per-entry results, in order
// ---------------------------------------------------------------------------

#[test]
fn batches_answer_every_entry_in_order() {
    let fx = Fixture::init("batch", None);
    let server = Server::start(&fx.dir);
    let client = server.client();
    fx.enrol(&client);

    let a = fx.inference("batch-a");
    let b = fx.inference("batch-b");
    let mut tampered = envelope(&b);
    tampered["body"]["request_id"] = json!("batch-b-forged");
    let tampered = canonical(tampered);
    let stranger = inference_by(
        &SignerKey::generate("stranger.example", KeyType::Ed25519).unwrap(),
        "batch-stranger",
    );
    let unauthorised = SignedEntry::sign(Kind::ModelCard, card_body(), &fx.serving).unwrap();
    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(b.bytes()).unwrap()).unwrap();
    let card = SignedEntry::sign(Kind::ModelCard, card_body(), &fx.registry).unwrap();

    let before = client.size(&fx.log_vkey);
    assert_eq!(before, 2);
    let r = client.add_array(&[
        a.bytes(),
        &tampered,
        stranger.bytes(),
        b.bytes(),
        unauthorised.bytes(),
        &pretty,
        card.bytes(),
        b"{}",
    ]);
    let got = outcomes(&r);
    assert_eq!(
        got,
        vec![
            new_at(2),
            Outcome::Refused("bad_signature".into()),
            Outcome::Refused("unknown_signer".into()),
            new_at(3),
            Outcome::Refused("signer_not_authorised".into()),
            Outcome::Refused("not_canonical_json".into()),
            new_at(4),
            Outcome::Refused("bad_envelope".into()),
        ],
        "{}",
        r.text()
    );
    // The ids of logged entries are reported.
    let results = r.json()["results"].clone();
    assert_eq!(results[0]["id"], json!(a.id().to_string()));
    assert_eq!(results[6]["id"], json!(card.id().to_string()));
    assert_eq!(client.size(&fx.log_vkey), 5);
    assert_eq!(client.entry(2), a.bytes());
    assert_eq!(client.entry(3), b.bytes());
    assert_eq!(client.entry(4), card.bytes());

    // NDJSON: the same, one entry per line; already logged ones are duplicates.
    let c = fx.inference("batch-c");
    let r = client.add_ndjson(&[c.bytes(), b"not json", a.bytes(), &tampered]);
    assert_eq!(
        outcomes(&r),
        vec![
            new_at(5),
            Outcome::Refused("bad_json".into()),
            dup_at(2),
            Outcome::Refused("bad_signature".into()),
        ],
        "{}",
        r.text()
    );
    assert_eq!(client.entry(5), c.bytes());
    assert_eq!(client.size(&fx.log_vkey), 6);

    // A batch with nothing valid logs nothing.
    let r = client.add_array(&[&tampered, stranger.bytes()]);
    assert_eq!(
        outcomes(&r),
        vec![
            Outcome::Refused("bad_signature".into()),
            Outcome::Refused("unknown_signer".into()),
        ]
    );
    assert_eq!(client.size(&fx.log_vkey), 6);

    // A body that is not an array at all is one error.
    let r = client.post("/v1/entries", "application/json", a.bytes());
    assert_eq!((r.status, r.code().as_str()), (400, "bad_batch"));
    let r = client.post("/v1/entries", "application/json", b"[");
    assert_eq!((r.status, r.code().as_str()), (400, "bad_batch"));
    assert_eq!(client.size(&fx.log_vkey), 6);

    // NDJSON with CRLF line ends (NDJSON allows them): the CR is no part of
    // the entry, and a blank CRLF line is no entry.
    let d = fx.inference("batch-d");
    let body = [d.bytes(), b"\r\n\r\n", a.bytes(), b"\r\n"].concat();
    let r = client.post("/v1/entries", "application/x-ndjson", &body);
    assert_eq!(outcomes(&r), vec![new_at(6), dup_at(2),], "{}", r.text());
    assert_eq!(client.entry(6), d.bytes());

    // The metrics count what was logged, and every batch that appended
    // was timed through each sequencer stage.
    let text = client.get("/metrics").text();
    let accepted = metric(&text, "modeltrail_submissions_total{outcome=\"accepted\"}");
    assert_eq!(accepted, 6.0, "{text}");
    assert_eq!(metric(&text, "modeltrail_batch_size_sum"), 6.0, "{text}");
    let batches = metric(&text, "modeltrail_batch_size_count");
    assert!(batches >= 1.0, "{text}");
    assert_eq!(
        metric(&text, "modeltrail_batch_store_seconds_count"),
        batches
    );
    assert_eq!(
        metric(&text, "modeltrail_batch_index_seconds_count"),
        batches
    );
    assert!(metric(&text, "modeltrail_batch_judge_seconds_count") >= batches);
    assert!(metric(&text, "modeltrail_batch_store_seconds_sum") > 0.0);
}

// ---------------------------------------------------------------------------
// 3. Bad inputs
// ---------------------------------------------------------------------------

#[test]
fn bad_inputs_are_refused_with_their_codes() {
    let fx = Fixture::init("bad-inputs", None);
    let server = Server::start(&fx.dir);
    let client = server.client();
    fx.enrol(&client);
    let good = fx.inference("good");
    let size = client.size(&fx.log_vkey);
    let policy = {
        let leaf = SignedEntry::parse(&client.entry(1)).unwrap();
        PolicyBody::parse(leaf.body()).unwrap()
    };

    // (what, bytes, expected status, expected code)
    let mut cases: Vec<(&str, Vec<u8>, u16, &str)> = Vec::new();
    cases.push(("not JSON", b"hello".to_vec(), 400, "bad_json"));
    cases.push(("empty body", Vec::new(), 400, "bad_json"));
    cases.push((
        "trailing data",
        [good.bytes(), b" "].concat(),
        400,
        "not_canonical_json",
    ));
    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(good.bytes()).unwrap()).unwrap();
    cases.push(("non-canonical JSON", pretty, 400, "not_canonical_json"));
    let mut unsorted = good.bytes().to_vec();
    // Swap the order of two members textually: `"v":1` moved to the front.
    let text = String::from_utf8(unsorted.clone()).unwrap();
    let without_v = text.strip_suffix(",\"v\":1}").unwrap();
    unsorted = format!("{{\"v\":1,{}}}", &without_v[1..]).into_bytes();
    cases.push(("members not sorted", unsorted, 400, "not_canonical_json"));

    // Size: exactly 65,535 bytes is fine (checked below); one more is not.
    let largest = entry_of_size(&fx.serving, MAX_ENTRY_SIZE);
    let mut oversize = envelope(&largest);
    let pad = oversize["body"]["extensions"]["pad"]
        .as_str()
        .unwrap()
        .to_owned()
        + "x";
    oversize["body"]["extensions"]["pad"] = json!(pad);
    let oversize = canonical(oversize);
    assert_eq!(oversize.len(), MAX_ENTRY_SIZE + 1);
    cases.push(("65,536 bytes", oversize, 413, "entry_too_large"));
    cases.push(("1 MB", vec![b' '; 1 << 20], 413, "entry_too_large"));

    let mut unknown_kind = envelope(&good);
    unknown_kind["kind"] = json!("widget");
    cases.push(("unknown kind", canonical(unknown_kind), 422, "unknown_kind"));

    let mut bad_sig = envelope(&good);
    let sig = bad_sig["sig"].as_str().unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" }.to_owned() + &sig[1..];
    bad_sig["sig"] = json!(flipped);
    cases.push(("bad signature", canonical(bad_sig), 401, "bad_signature"));

    let mut tampered = envelope(&good);
    tampered["body"]["output"] = json!("tampered");
    cases.push(("tampered body", canonical(tampered), 401, "bad_signature"));

    let mut other_kind = envelope(&good);
    other_kind["kind"] = json!("approval");
    cases.push(("kind changed", canonical(other_kind), 401, "bad_signature"));

    let mut bad_signer = envelope(&good);
    bad_signer["signer"] = json!("not a vkey");
    cases.push(("malformed signer", canonical(bad_signer), 401, "bad_signer"));

    let stranger = SignerKey::generate("stranger.example", KeyType::Ed25519).unwrap();
    cases.push((
        "unknown signer",
        inference_by(&stranger, "x").into_bytes(),
        401,
        "unknown_signer",
    ));
    // The serving signer's key pair under another name: not the rostered vkey.
    let renamed =
        SignerKey::from_seed("renamed.example.test", KeyType::Ed25519, &fx.serving_seed).unwrap();
    assert_eq!(
        renamed.verifier().public_key(),
        fx.serving.verifier().public_key()
    );
    cases.push((
        "rostered key under another name",
        inference_by(&renamed, "x").into_bytes(),
        401,
        "unknown_signer",
    ));
    cases.push((
        "serving key signs a model card",
        SignedEntry::sign(Kind::ModelCard, card_body(), &fx.serving)
            .unwrap()
            .into_bytes(),
        403,
        "signer_not_authorised",
    ));
    cases.push((
        "admin signs an inference",
        inference_by(&fx.admin, "x").into_bytes(),
        403,
        "signer_not_authorised",
    ));
    cases.push((
        "registry key signs a policy",
        SignedEntry::sign(Kind::Policy, policy.to_value(), &fx.registry)
            .unwrap()
            .into_bytes(),
        403,
        "signer_not_authorised",
    ));

    let mut extra = envelope(&good);
    extra.insert("extra".into(), json!(1));
    cases.push(("extra member", canonical(extra), 422, "bad_envelope"));
    let mut missing = envelope(&good);
    missing.remove("sig");
    cases.push(("missing sig", canonical(missing), 422, "bad_envelope"));
    let mut missing = envelope(&good);
    missing.remove("body");
    cases.push(("missing body", canonical(missing), 422, "bad_envelope"));
    let mut body_array = envelope(&good);
    body_array["body"] = json!([1]);
    cases.push((
        "body not an object",
        canonical(body_array),
        422,
        "bad_envelope",
    ));
    let mut short_sig = envelope(&good);
    short_sig["sig"] = json!("AAAA");
    cases.push(("short sig", canonical(short_sig), 422, "bad_envelope"));
    let mut v2 = envelope(&good);
    v2["v"] = json!(2);
    cases.push(("v 2", canonical(v2), 422, "unsupported_entry_version"));
    cases.push(("an array", b"[1,2]".to_vec(), 422, "bad_envelope"));
    cases.push(("a string", b"\"entry\"".to_vec(), 422, "bad_envelope"));

    for (what, bytes, status, code) in &cases {
        // The entry layer's own verdict must be what the case expects...
        let local: EntryError = match SignedEntry::parse(bytes) {
            Err(e) => e,
            Ok(entry) => authorise(&entry, &policy).expect_err(what),
        };
        assert_eq!(
            (local.http_status(), local.code()),
            (*status, *code),
            "{what}: the entry layer says {local}"
        );
        // ...and the server must answer exactly that.
        let r = client.add(bytes);
        assert_eq!(
            (r.status, r.code().as_str()),
            (*status, *code),
            "{what}: POST /add answered {}",
            r.text()
        );
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{what}: {r:?}"
        );
        assert_eq!(client.size(&fx.log_vkey), size, "{what}: the tree grew");
    }

    // A policy entry by the admin whose body is not a valid policy: the
    // handler parses the typed body of every kind and refuses it before it
    // reaches the sequencer.
    let bad_policy = SignedEntry::sign(Kind::Policy, json!({"nonsense": true}), &fx.admin).unwrap();
    let r = client.add(bad_policy.bytes());
    assert_eq!(
        (r.status, r.code().as_str()),
        (422, "invalid_body"),
        "{}",
        r.text()
    );
    assert_eq!(client.size(&fx.log_vkey), size);

    // The largest entry is accepted.
    assert_eq!(largest.bytes().len(), MAX_ENTRY_SIZE);
    assert_eq!(client.add(largest.bytes()).index(), size);
    assert_eq!(client.entry(size), largest.bytes());
    assert_eq!(client.size(&fx.log_vkey), size + 1);
}

/// An inference entry signed by `key` whose bytes are exactly `len` long.
fn entry_of_size(key: &SignerKey, len: usize) -> SignedEntry {
    let make = |pad: usize| {
        SignedEntry::sign(
            Kind::Inference,
            {
                let mut body = inference_body("largest");
                body["extensions"] = json!({"pad": "x".repeat(pad)});
                body
            },
            key,
        )
        .unwrap()
    };
    let base = make(0).bytes().len();
    let entry = make(len - base);
    assert_eq!(entry.bytes().len(), len);
    entry
}

// ---------------------------------------------------------------------------
// 4. Deduplication
// ---------------------------------------------------------------------------

#[test]
fn identical_entries_are_logged_once() {
    let fx = Fixture::init("dedup", None);
    let server = Server::start(&fx.dir);
    let client = server.client();
    let enrolment = fx.enrol(&client);

    let e = fx.inference("dup-1");
    assert_eq!(client.add(e.bytes()).index(), 2);
    let (cp, _) = client.checkpoint(&fx.log_vkey);
    assert_eq!(cp.size, 3);
    for _ in 0..3 {
        assert_eq!(client.add(e.bytes()).index(), 2);
    }
    // The policy entry too (deduplicated before the rules see it).
    assert_eq!(client.add(enrolment.bytes()).index(), 1);
    let (again, _) = client.checkpoint(&fx.log_vkey);
    assert_eq!((again.size, again.root), (cp.size, cp.root));

    // Within one batch: the first is logged, the copies point at it.
    let f = fx.inference("dup-2");
    let r = client.add_array(&[f.bytes(), f.bytes(), e.bytes(), f.bytes()]);
    assert_eq!(
        outcomes(&r),
        vec![new_at(3), dup_at(3), dup_at(2), dup_at(3),],
        "{}",
        r.text()
    );
    assert_eq!(client.size(&fx.log_vkey), 4);

    // Concurrent identical submissions: one index, one leaf.
    let g = fx.inference("dup-3");
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            let barrier = barrier.clone();
            let bytes = g.bytes().to_vec();
            std::thread::spawn(move || {
                barrier.wait();
                client.add(&bytes).index()
            })
        })
        .collect();
    let indexes: HashSet<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(indexes, HashSet::from([4]));
    assert_eq!(client.size(&fx.log_vkey), 5);
    let all = client.all_entries(5);
    let distinct: HashSet<&Vec<u8>> = all.iter().collect();
    assert_eq!(distinct.len(), 5, "a leaf is logged twice");
}

// ---------------------------------------------------------------------------
// 5. Restart, index rebuild, reindex
// ---------------------------------------------------------------------------

#[test]
fn a_batch_the_store_cannot_write_leaves_no_trace_in_the_index() {
    let fx = Fixture::init("storage-failure", None);
    let server = Server::start(&fx.dir);
    let client = server.client();
    fx.enrol(&client);
    let a = fx.inference("storage-a");
    assert_eq!(client.add(a.bytes()).index(), 2);

    // A directory where the next batch's partial entry bundle must go: the
    // batch cannot be stored (nothing durable is touched).
    let partial = fx.dir.join("tiles/tile/entries/000.p/4");
    std::fs::create_dir(&partial).unwrap();
    let b = fx.inference("storage-b");
    let r = client.add_array(&[b.bytes()]);
    assert_eq!(
        outcomes_unstored(&r),
        vec![Outcome::Refused("storage_failure".into())]
    );
    let id = b.id().to_string();
    assert_eq!(client.get(&format!("/v1/artefacts/{id}")).status, 404);

    // Once the store works again, b is logged as new (its failed claim was
    // dropped with the batch's index transaction), and found by its ID.
    std::fs::remove_dir(&partial).unwrap();
    let r = client.add_array(&[b.bytes(), a.bytes()]);
    assert_eq!(outcomes(&r), vec![new_at(3), dup_at(2),]);
    assert_eq!(
        client.get_json(&format!("/v1/artefacts/{id}"))["index"],
        json!(3)
    );
    let found = client.get_json("/v1/inferences/storage-b");
    assert_eq!(found["index"], json!(3), "{found}");
    assert_eq!(client.entry(3), b.bytes());

    // A fault that also keeps the tree from reopening (its right edge
    // unreadable): batches are refused, the log does not stop, and it
    // resumes once the fault is gone.
    let entries = fx.dir.join("tiles/tile/entries");
    std::fs::create_dir(entries.join("000.p/5")).unwrap();
    std::fs::rename(entries.join("000.p/4"), entries.join("000.p.4.away")).unwrap();
    let c = fx.inference("storage-c");
    for _ in 0..2 {
        let r = client.add_array(&[c.bytes()]);
        assert_eq!(
            outcomes_unstored(&r),
            vec![Outcome::Refused("storage_failure".into())]
        );
    }
    std::fs::remove_dir(entries.join("000.p/5")).unwrap();
    std::fs::rename(entries.join("000.p.4.away"), entries.join("000.p/4")).unwrap();
    assert_eq!(client.add(c.bytes()).index(), 4);
    assert_eq!(client.entry(4), c.bytes());
}

#[test]
fn an_index_that_points_an_id_at_another_entry_is_not_trusted() {
    let fx = Fixture::init("misdirected-id", None);
    let mut server = Server::start(&fx.dir);
    let client = server.client();
    fx.enrol(&client);
    let a = fx.inference("misdirected-a");
    let b = fx.inference("misdirected-b");
    assert_eq!(client.add(a.bytes()).index(), 2);
    assert_eq!(client.add(b.bytes()).index(), 3);
    let logged = [client.entry(0), client.entry(1)];
    assert_eq!(server.terminate().code(), Some(0));

    // Damage the stopped log's index: rebuilt with a's ID naming b's leaf
    // (and a's own pair lost).
    {
        use modeltrail::store::{FsTileStore, TileStore, index::Index};
        let store: Arc<dyn TileStore> = Arc::new(FsTileStore::new(fx.dir.join("tiles")).unwrap());
        let index = Index::fresh(&fx.dir.join("index"), store, Default::default()).unwrap();
        index.record(0, &logged[..2]).unwrap();
        let txn = index.begin().unwrap();
        let mut update = txn.update().unwrap();
        update.add_id(&a.id(), 3);
        update.add_id(&b.id(), 3);
        update.record_fields(2, a.bytes()).unwrap();
        update.record_fields(3, b.bytes()).unwrap();
        update.finish(4).unwrap();
        index.commit(txn).unwrap();
        index.flush().unwrap();
    }

    let server = Server::start(&fx.dir);
    let client = server.client();
    let id = a.id().to_string();
    assert_eq!(
        client.get(&format!("/v1/artefacts/{id}")).status,
        404,
        "a lookup is checked against the entry it points to"
    );
    // Resubmitted, a is not answered with b's index: it is logged again,
    // and its ID then finds the new copy.
    let r = client.add_array(&[a.bytes()]);
    assert_eq!(outcomes(&r), vec![new_at(4)]);
    let found = client.get_json(&format!("/v1/artefacts/{id}"));
    assert_eq!(found["index"], json!(4), "{found}");
    assert_eq!(client.entry(4), a.bytes());
}

#[test]
fn restart_keeps_the_log_and_rebuilds_the_index() {
    let fx = Fixture::init("restart", None);
    let mut server = Server::start(&fx.dir);
    let client = server.client();
    let mut logged: Vec<Vec<u8>> = vec![client.entry(0)];
    logged.push(fx.enrol(&client).into_bytes());
    let a = fx.inference("restart-a");
    assert_eq!(client.add(a.bytes()).index(), 2);
    logged.push(a.bytes().to_vec());
    let batch: Vec<SignedEntry> = (0..5)
        .map(|i| fx.inference(&format!("restart-b{i}")))
        .collect();
    let r = client.add_array(&batch.iter().map(SignedEntry::bytes).collect::<Vec<_>>());
    for (i, o) in outcomes(&r).into_iter().enumerate() {
        assert_eq!(o, new_at(3 + i as u64));
    }
    logged.extend(batch.iter().map(|e| e.bytes().to_vec()));
    let (before, _) = client.checkpoint(&fx.log_vkey);
    assert_eq!(before.size, 8);

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(
        server.child.try_wait().unwrap().is_some(),
        "the process ended"
    );
    assert!(
        client.try_get("/checkpoint").is_err(),
        "nothing listens any more"
    );

    // Restart on the same directory: the same tree, then more entries.
    let mut server = Server::start(&fx.dir);
    assert_eq!(server.start_size, 8);
    let client = server.client();
    let (after, _) = client.checkpoint(&fx.log_vkey);
    assert_eq!((after.size, after.root), (before.size, before.root));
    for (i, bytes) in logged.iter().enumerate() {
        assert_eq!(&client.entry(i as u64), bytes, "entry {i} changed");
    }
    let c = fx.inference("restart-c");
    assert_eq!(client.add(c.bytes()).index(), 8);
    logged.push(c.bytes().to_vec());
    let r = client.add_ndjson(&[fx.inference("restart-d").bytes(), a.bytes()]);
    assert_eq!(outcomes(&r), vec![new_at(9), dup_at(2),]);
    logged.push(fx.inference("restart-d").into_bytes());
    let (grown, _) = client.checkpoint(&fx.log_vkey);
    assert_eq!(grown.size, 10);
    check_consistency(&client, before.size, &before.root, &grown);
    check_consistency(&client, 1, &leaf_hash(&logged[0]), &grown);
    let leaves: Vec<Hash> = client
        .all_entries(10)
        .iter()
        .map(|l| leaf_hash(l))
        .collect();
    assert_eq!(merkle_root(&leaves), grown.root);
    assert_eq!(server.terminate().code(), Some(0));

    // Delete the index while stopped: the restart rebuilds it.
    std::fs::remove_dir_all(fx.dir.join("index")).unwrap();
    let mut server = Server::start(&fx.dir);
    let client = server.client();
    for (i, bytes) in logged.iter().enumerate() {
        let id = ArtefactId::of(bytes);
        let r = client.get(&format!("/v1/artefacts/{id}"));
        assert_eq!(
            r.status,
            200,
            "artefact {i} after the rebuild: {}",
            r.text()
        );
        assert_eq!(r.json()["index"], json!(i));
    }
    // Deduplication and the policy in force come from the rebuilt index.
    assert_eq!(client.add(&logged[3]).index(), 3);
    let e = fx.inference("after-rebuild");
    assert_eq!(client.add(e.bytes()).index(), 10);
    logged.push(e.into_bytes());
    assert_eq!(server.terminate().code(), Some(0));

    // `modeltrail reindex` on the stopped log.
    let stdout = common::run_ok(Command::new(BIN).arg("reindex").arg("--data").arg(&fx.dir));
    assert_eq!(stdout, "reindexed 11 entries\n");
    let server = Server::start(&fx.dir);
    let client = server.client();
    let (last, _) = client.checkpoint(&fx.log_vkey);
    assert_eq!(last.size, 11);
    check_consistency(&client, grown.size, &grown.root, &last);
    for (i, bytes) in logged.iter().enumerate() {
        assert_eq!(&client.entry(i as u64), bytes);
        let r = client.get(&format!("/v1/artefacts/{}", ArtefactId::of(bytes)));
        assert_eq!(r.json()["index"], json!(i), "{}", r.text());
    }
    assert_eq!(client.add(&logged[10]).index(), 10);
}

// ---------------------------------------------------------------------------
// 6. Pushback
// ---------------------------------------------------------------------------

#[test]
fn a_full_queue_pushes_back() {
    let fx = Fixture::init(
        "pushback",
        Some("[sequencer]\nqueue_capacity = 1\nmax_batch_age_ms = 500\nmax_batch_entries = 1"),
    );
    let server = Server::start(&fx.dir);
    let client = server.client();
    fx.enrol(&client);

    const N: usize = 50;
    let barrier = Arc::new(Barrier::new(N));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let client = Client::new(&server.base);
            let barrier = barrier.clone();
            let entry = fx.inference(&format!("push-{i}"));
            std::thread::spawn(move || {
                barrier.wait();
                (entry.clone(), client.add(entry.bytes()))
            })
        })
        .collect();
    let answers: Vec<(SignedEntry, Reply)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut acked = BTreeMap::new();
    let mut pushed_back = 0;
    for (entry, r) in &answers {
        match r.status {
            200 => {
                let index = r.index();
                assert!(
                    acked.insert(index, entry.bytes().to_vec()).is_none(),
                    "index {index} twice"
                );
            }
            503 => {
                assert_eq!(r.code(), "queue_full", "{}", r.text());
                let retry = r.header("retry-after").expect("503 without Retry-After");
                assert!(
                    retry.parse::<u64>().is_ok_and(|s| s >= 1),
                    "Retry-After {retry:?}"
                );
                pushed_back += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    eprintln!(
        "pushback: {} accepted, {pushed_back} pushed back",
        acked.len()
    );
    assert!(pushed_back >= 1, "no 503 among {N} concurrent submissions");
    assert!(!acked.is_empty(), "nothing accepted");
    for (index, bytes) in &acked {
        assert_eq!(&client.entry(*index), bytes, "entry {index}");
    }
    assert_eq!(client.size(&fx.log_vkey), 2 + acked.len() as u64);
    // Pushed-back entries were not logged; resubmitted one at a time, they are.
    for (entry, r) in &answers {
        if r.status == 503 {
            let index = client.add(entry.bytes()).index();
            assert_eq!(client.entry(index), entry.bytes());
        }
    }
    assert_eq!(client.size(&fx.log_vkey), 2 + N as u64);
}

// ---------------------------------------------------------------------------
// 7. Graceful shutdown under load
// ---------------------------------------------------------------------------

/// What the writers of a run saw.
#[derive(Default)]
struct Acks {
    /// index -> the entry acknowledged there.
    acked: BTreeMap<u64, Vec<u8>>,
    /// Answers that are neither success nor an expected refusal.
    unexpected: Vec<String>,
    /// 503 answers (queue full or shutting down).
    unavailable: usize,
}

impl Acks {
    fn ack(&mut self, index: u64, bytes: &[u8]) {
        if let Some(previous) = self.acked.insert(index, bytes.to_vec())
            && previous != bytes
        {
            self.unexpected.push(format!(
                "index {index} acknowledged for two different entries"
            ));
        }
    }
}

#[test]
fn graceful_shutdown_keeps_every_acknowledged_entry() {
    let fx = Fixture::init("graceful", None);
    let mut server = Server::start(&fx.dir);
    let client = server.client();
    fx.enrol(&client);

    let acks = Arc::new(Mutex::new(Acks::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..20)
        .map(|t| {
            let client = Client::new(&server.base);
            let acks = acks.clone();
            let stop = stop.clone();
            let serving = fx.serving.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let e = inference_by(&serving, &format!("graceful-{t}-{i}"));
                    let Ok(r) = client.try_post("/add", "application/json", e.bytes()) else {
                        break; // the server is gone
                    };
                    let mut acks = acks.lock().unwrap();
                    match r.status {
                        200 => acks.ack(r.index(), e.bytes()),
                        503 => acks.unavailable += 1,
                        s => acks.unexpected.push(format!("{s}: {}", r.text())),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let status = server.terminate();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    let acks = Arc::try_unwrap(acks).ok().unwrap().into_inner().unwrap();
    assert!(acks.unexpected.is_empty(), "{:?}", acks.unexpected);
    assert!(
        acks.acked.len() > 20,
        "too few acknowledged: {}",
        acks.acked.len()
    );
    let max = *acks.acked.keys().last().unwrap();
    eprintln!(
        "graceful: {} acknowledged (max index {max}), {} answered 503",
        acks.acked.len(),
        acks.unavailable
    );

    let server = Server::start(&fx.dir);
    let client = server.client();
    let (cp, _) = client.checkpoint(&fx.log_vkey);
    assert!(
        cp.size > max,
        "final checkpoint size {} <= max acknowledged {max}",
        cp.size
    );
    assert_eq!(server.start_size, cp.size);
    let all = client.all_entries(cp.size);
    for (index, bytes) in &acks.acked {
        assert_eq!(&all[*index as usize], bytes, "entry {index}");
        assert_eq!(&client.entry(*index), bytes, "entry {index}");
    }
    let leaves: Vec<Hash> = all.iter().map(|l| leaf_hash(l)).collect();
    assert_eq!(merkle_root(&leaves), cp.root);
}

// ---------------------------------------------------------------------------
// 8. Crash test (kill -9)
// ---------------------------------------------------------------------------

#[test]
fn crash_kill9_cycles() {
    let cycles: usize = std::env::var("MODELTRAIL_CRASH_CYCLES")
        .ok()
        .map(|v| v.parse().expect("MODELTRAIL_CRASH_CYCLES is a number"))
        .unwrap_or(5);
    // Small ID map memtables: runs are written and merged all the time,
    // so kills land in flushes and merges too.
    let fx = Fixture::init("crash", Some("[index]\nmemtable_entries = 300"));
    let mut rng = Rng::seeded();
    println!("crash: seed {:#x}, {cycles} cycles", rng.0);

    {
        let server = Server::start(&fx.dir);
        fx.enrol(&server.client());
    }
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    // Every checkpoint seen so far: size -> root.
    let mut seen: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut total_acked = 0usize;
    let mut total_batches = 0usize;
    let mut last_acked_this_cycle: Vec<(u64, Vec<u8>)> = Vec::new();
    let started = Instant::now();

    for cycle in 0..cycles {
        let mut server = Server::start(&fx.dir);
        let client = server.client();

        // After the restart: a signed checkpoint consistent with all before.
        let (cp, _) = client.checkpoint(&fx.log_vkey);
        assert_eq!(server.start_size, cp.size);
        for (&size, root) in &seen {
            assert!(
                size <= cp.size,
                "cycle {cycle}: the tree shrank from {size} to {}",
                cp.size
            );
            check_consistency(&client, size, root, &cp);
        }
        if let Some((&max, _)) = acked.iter().next_back() {
            assert!(
                cp.size > max,
                "cycle {cycle}: size {} lost acknowledged index {max}",
                cp.size
            );
        }
        // The acknowledged entries of the last cycle, one by one...
        for (index, bytes) in &last_acked_this_cycle {
            assert_eq!(&client.entry(*index), bytes, "cycle {cycle}: entry {index}");
        }
        // ...and every one ever acknowledged, through the bundles, whose
        // leaves must also hash to the checkpoint's root, with no repeats.
        let all = client.all_entries(cp.size);
        for (index, bytes) in &acked {
            assert_eq!(&all[*index as usize], bytes, "cycle {cycle}: entry {index}");
        }
        let leaves: Vec<Hash> = all.iter().map(|l| leaf_hash(l)).collect();
        assert_eq!(
            merkle_root(&leaves),
            cp.root,
            "cycle {cycle}: bundles vs root"
        );
        assert_eq!(
            leaves.iter().collect::<HashSet<_>>().len(),
            leaves.len(),
            "cycle {cycle}: an entry is logged twice"
        );
        // Resubmitting acknowledged entries answers their index, and their
        // request IDs find them: the index caught up after the crash, for
        // the last cycle's entries and for older ones in the ID maps' runs.
        let picks = if acked.is_empty() { 0 } else { 5 };
        let older: Vec<u64> = (0..picks)
            .map(|_| rng.range(0, acked.len() as u64 - 1) as usize)
            .map(|nth| *acked.keys().nth(nth).expect("within acked"))
            .collect();
        let older = older.iter().map(|i| (*i, acked[i].clone()));
        for (index, bytes) in last_acked_this_cycle.iter().take(5).cloned().chain(older) {
            assert_eq!(
                client.add(&bytes).index(),
                index,
                "cycle {cycle}: dedup after restart"
            );
            let entry: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let rid = entry["body"]["request_id"].as_str().unwrap();
            let found = client.get_json(&format!("/v1/inferences/{rid}"));
            assert_eq!(found["index"], json!(index), "cycle {cycle}: request {rid}");
        }
        seen.insert(cp.size, cp.root);

        // Load, then kill -9 at a random moment.
        let acks = Arc::new(Mutex::new(Acks::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for t in 0..8 {
            let client = Client::new(&server.base);
            let acks = acks.clone();
            let stop = stop.clone();
            let serving = fx.serving.clone();
            let mut rng = Rng(rng.next() | 1);
            handles.push(std::thread::spawn(move || {
                let mut batches = 0usize;
                let mut i = 0u64;
                let next = |i: &mut u64| {
                    *i += 1;
                    inference_by(&serving, &format!("crash-{cycle}-{t}-{i}"))
                };
                while !stop.load(Ordering::Relaxed) {
                    if rng.range(0, 3) == 0 {
                        let entries: Vec<SignedEntry> =
                            (0..rng.range(2, 8)).map(|_| next(&mut i)).collect();
                        let bytes: Vec<&[u8]> = entries.iter().map(SignedEntry::bytes).collect();
                        let Ok(r) = client.try_post(
                            "/v1/entries",
                            "application/json",
                            &common::json_array(&bytes),
                        ) else {
                            break;
                        };
                        let mut acks = acks.lock().unwrap();
                        if r.status != 200 {
                            acks.unexpected
                                .push(format!("batch {}: {}", r.status, r.text()));
                            continue;
                        }
                        batches += 1;
                        for (o, e) in outcomes(&r).into_iter().zip(&entries) {
                            match o {
                                Outcome::Logged {
                                    index,
                                    duplicate: false,
                                } => acks.ack(index, e.bytes()),
                                other => acks.unexpected.push(format!("batch entry: {other:?}")),
                            }
                        }
                    } else {
                        let e = next(&mut i);
                        let Ok(r) = client.try_post("/add", "application/json", e.bytes()) else {
                            break;
                        };
                        let mut acks = acks.lock().unwrap();
                        match r.status {
                            200 => acks.ack(r.index(), e.bytes()),
                            s => acks.unexpected.push(format!("{s}: {}", r.text())),
                        }
                    }
                }
                batches
            }));
        }
        // A reader recording the checkpoints published meanwhile.
        let reader = {
            let client = Client::new(&server.base);
            let stop = stop.clone();
            let vkey = fx.log_vkey.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok(r) = client.try_get("/checkpoint") else {
                        break;
                    };
                    if r.status == 200 {
                        let cp = Checkpoint::open(&r.body, &vkey, &[])
                            .expect("a served checkpoint verifies")
                            .checkpoint;
                        seen.push((cp.size, cp.root));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                seen
            })
        };
        std::thread::sleep(Duration::from_millis(rng.range(50, 500)));
        let status = server.kill9();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            total_batches += h.join().unwrap();
        }
        let published = reader.join().unwrap();
        assert!(!status.success(), "a SIGKILLed server exits with failure");
        let acks = Arc::try_unwrap(acks).ok().unwrap().into_inner().unwrap();
        assert!(
            acks.unexpected.is_empty(),
            "cycle {cycle}: {:?}",
            acks.unexpected
        );
        for (size, root) in published {
            if let Some(prev) = seen.insert(size, root) {
                assert_eq!(prev, root, "cycle {cycle}: two roots for size {size}");
            }
        }
        last_acked_this_cycle = acks.acked.iter().map(|(i, b)| (*i, b.clone())).collect();
        total_acked += acks.acked.len();
        for (index, bytes) in acks.acked {
            if let Some(prev) = acked.insert(index, bytes.clone()) {
                assert_eq!(
                    prev, bytes,
                    "cycle {cycle}: index {index} acknowledged twice"
                );
            }
        }
        let id_map_files = std::fs::read_dir(fx.dir.join("index/ids"))
            .map(|dir| dir.count())
            .unwrap_or(0);
        println!(
            "crash: cycle {cycle}: {} acknowledged, tree size before the kill >= {}, \
             {id_map_files} files in the ID map after the kill",
            last_acked_this_cycle.len(),
            seen.keys().last().copied().unwrap_or(0)
        );
    }

    // A final restart checks the last cycle.
    let server = Server::start(&fx.dir);
    let client = server.client();
    let (cp, _) = client.checkpoint(&fx.log_vkey);
    for (&size, root) in &seen {
        check_consistency(&client, size, root, &cp);
    }
    for (index, bytes) in &last_acked_this_cycle {
        assert_eq!(&client.entry(*index), bytes, "final: entry {index}");
    }
    let all = client.all_entries(cp.size);
    for (index, bytes) in &acked {
        assert_eq!(&all[*index as usize], bytes, "final: entry {index}");
    }
    let leaves: Vec<Hash> = all.iter().map(|l| leaf_hash(l)).collect();
    assert_eq!(merkle_root(&leaves), cp.root);
    println!(
        "crash: {cycles} cycles in {:.1?}: {total_acked} entries acknowledged ({total_batches} batch requests), \
         final tree size {}, {} checkpoints checked for consistency, {} logged but unacknowledged",
        started.elapsed(),
        cp.size,
        seen.len(),
        cp.size as usize - 2 - acked.len(),
    );
}

// ---------------------------------------------------------------------------
// Policy and entries that rely on it in one request; the data-directory lock;
// wrong methods

#[test]
fn a_batch_can_enrol_a_signer_and_use_it() {
    let fx = Fixture::init("same-batch-policy", None);
    let mut server = Server::start(&fx.dir);
    let client = server.client();
    let enrolment = fx.enrolment(&client);
    let inference = fx.inference("same-batch");
    // The same inference alone, before the enrolment, is refused.
    assert_eq!(client.add(inference.bytes()).code(), "unknown_signer");
    let r = client.add_array(&[enrolment.bytes(), inference.bytes()]);
    assert_eq!(outcomes(&r), vec![new_at(1), new_at(2),]);
    // The sequencer still judges the roster: a stranger after a policy entry
    // in the same request is refused by it, and nothing of it is logged.
    let stranger = inference_by(
        &SignerKey::generate("stranger.example", KeyType::Ed25519).unwrap(),
        "same-batch-stranger",
    );
    let card = SignedEntry::sign(Kind::ModelCard, card_body(), &fx.registry).unwrap();
    let policy_again = fx.enrolment_from(&client, 1);
    let r = client.add_array(&[policy_again.bytes(), stranger.bytes(), card.bytes()]);
    let got = outcomes(&r);
    assert_eq!(got[1], Outcome::Refused("unknown_signer".into()), "{got:?}");
    assert!(matches!(got[2], Outcome::Logged { .. }), "{got:?}");
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn one_process_at_a_time_uses_a_data_directory() {
    let fx = Fixture::init("lock", None);
    let mut server = Server::start(&fx.dir);
    let out = Command::new(BIN)
        .args(["reindex", "--data"])
        .arg(&fx.dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "reindex ran beside a live log");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another modeltrail process"), "{stderr}");
    assert!(fx.dir.join("index").exists(), "the live index was moved");
    assert!(
        std::fs::read_dir(&fx.dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("broken")),
        "an index was moved aside"
    );
    let second = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&fx.dir)
        .output()
        .unwrap();
    assert!(!second.status.success(), "a second server started");
    assert_eq!(server.terminate().code(), Some(0));
    common::run_ok(Command::new(BIN).args(["reindex", "--data"]).arg(&fx.dir));
}

#[test]
fn a_wrong_method_gets_a_json_405() {
    let fx = Fixture::init("method", None);
    let server = Server::start(&fx.dir);
    let client = server.client();
    let r = client.get("/add");
    assert_eq!((r.status, r.code().as_str()), (405, "method_not_allowed"));
}

// ---------------------------------------------------------------------------
// 9. Malformed path and query parameters (found by the `http_params` fuzz target)
// ---------------------------------------------------------------------------

/// A path or query parameter that does not decode (percent-encoding of a
/// byte that is not UTF-8) is answered with the JSON error shape, as every
/// other error, not axum's plain-text rejection.
#[test]
fn malformed_path_and_query_parameters_are_json_errors() {
    let fx = Fixture::init("bad-params", None);
    let server = Server::start(&fx.dir);
    let client = server.client();
    for path in [
        "/v1/versions/b3:ab%ab",
        "/v1/artefacts/b3:%ff",
        "/v1/inferences/req-%c3",
        "/v1/models/fraud%ff-detector",
        "/tile/0/%ff",
    ] {
        let r = client.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.code(), "bad_path", "{path}");
    }
    let r = client.get("/v1/models/fraud-detector/active?at=1&at=2");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), "bad_query");
}
