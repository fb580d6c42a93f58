//! The `add-checkpoint` decision: every tlog-witness status, from requests
//! built with real keys, real trees and real consistency proofs.

use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::hash::{Hash, empty_tree_hash, stored_hashes, tree_hash};
use modeltrail::tlog::note::{KeyType, Note, NoteSignature, SignerKey};
use modeltrail::tlog::proof::prove_consistency;
use modeltrail_witness::{
    AddCheckpointRequest, Decision, EvidenceKind, KnownLog, Refusal, RequestError,
    SIZE_CONTENT_TYPE, TreeHead, add_checkpoint,
};

const ORIGIN: &str = "example.com/log";
const NOW: u64 = 1_764_236_400;

fn log_key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[1; 32]).unwrap()
}

fn witness_key() -> SignerKey {
    SignerKey::from_seed("witness.example/w1", KeyType::CosignatureV1, &[4; 32]).unwrap()
}

/// An in-memory tree of `n` records; `fork` changes every record's content.
struct Tree {
    stored: Vec<Hash>,
}

impl Tree {
    fn new(n: u64, fork: &str) -> Tree {
        let mut stored = Vec::new();
        for i in 0..n {
            let new = stored_hashes(i, format!("{fork}record {i}").as_bytes(), &stored).unwrap();
            stored.extend(new);
        }
        Tree { stored }
    }

    fn head(&self, size: u64) -> TreeHead {
        TreeHead {
            size,
            root: tree_hash(size, &self.stored).unwrap(),
        }
    }

    fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        prove_consistency(old, new, &self.stored).unwrap()
    }
}

/// A checkpoint note for `head`, signed by `keys`.
fn signed(head: TreeHead, keys: &[&SignerKey]) -> Note {
    let text = Checkpoint {
        origin: ORIGIN.into(),
        size: head.size,
        root: head.root,
        extensions: vec![],
    }
    .to_text();
    Note::sign(&text, keys).unwrap()
}

fn request(old: u64, proof: Vec<Hash>, note: Note) -> AddCheckpointRequest {
    AddCheckpointRequest::new(old, proof, note).unwrap()
}

fn known(latest: Option<TreeHead>) -> KnownLog {
    KnownLog {
        keys: vec![log_key().verifier()],
        latest,
    }
}

fn decide(latest: Option<TreeHead>, req: &AddCheckpointRequest) -> Decision {
    add_checkpoint(Some(&known(latest)), req, &witness_key(), NOW)
}

/// Asserts a cosignature that verifies under cosignature/v1, and returns the new state.
fn assert_cosigned(d: &Decision, req: &AddCheckpointRequest) -> TreeHead {
    let c = d.outcome.as_ref().expect("cosigned");
    assert!(d.evidence.is_none());
    let text = req.note().text();
    let w = witness_key().verifier();
    assert_eq!(cosignature::verify(&w, text, &c.signature), Ok(NOW));
    // The response body appended to the checkpoint is a note the log can verify.
    let body = c.response_body();
    assert!(body.starts_with("\u{2014} witness.example/w1 ") && body.ends_with('\n'));
    let with_cosig = [req.note().to_bytes(), body.into_bytes()].concat();
    let opened = Checkpoint::open(&with_cosig, &log_key().verifier(), &[w]).unwrap();
    assert_eq!(opened.verified.len(), 2);
    assert_eq!(opened.verified[1].timestamp, Some(NOW));
    c.new_state
}

/// Asserts a refusal with `status`, and returns it.
fn refused(d: &Decision, status: u16) -> &Refusal {
    let r = d.outcome.as_ref().expect_err("refused");
    assert_eq!(r.status(), status, "{r}");
    r
}

#[test]
fn first_checkpoint_is_cosigned_on_first_use() {
    let t = Tree::new(10, "");
    let req = request(0, vec![], signed(t.head(10), &[&log_key()]));
    let d = decide(None, &req);
    assert_eq!(assert_cosigned(&d, &req), t.head(10));
}

#[test]
fn empty_tree_is_cosigned() {
    let head = TreeHead {
        size: 0,
        root: empty_tree_hash(),
    };
    let req = request(0, vec![], signed(head, &[&log_key()]));
    assert_eq!(assert_cosigned(&decide(None, &req), &req), head);
    assert_eq!(assert_cosigned(&decide(Some(head), &req), &req), head);
}

#[test]
fn consistent_checkpoints_are_cosigned_in_sequence() {
    let t = Tree::new(40, "");
    let mut state = None;
    let mut old = 0;
    for size in [1, 2, 3, 7, 8, 9, 16, 17, 31, 32, 40] {
        let proof = if old == 0 { vec![] } else { t.proof(old, size) };
        let req = request(old, proof, signed(t.head(size), &[&log_key()]));
        let new = assert_cosigned(&decide(state, &req), &req);
        assert_eq!(new, t.head(size));
        state = Some(new);
        old = size;
    }
}

#[test]
fn the_same_checkpoint_is_cosigned_again() {
    let t = Tree::new(9, "");
    let req = request(9, vec![], signed(t.head(9), &[&log_key()]));
    assert_eq!(
        assert_cosigned(&decide(Some(t.head(9)), &req), &req),
        t.head(9)
    );
}

#[test]
fn signatures_by_unknown_keys_are_ignored() {
    let t = Tree::new(5, "");
    let other = SignerKey::from_seed("other.example/log", KeyType::Ed25519, &[2; 32]).unwrap();
    let req = request(0, vec![], signed(t.head(5), &[&other, &log_key()]));
    assert_cosigned(&decide(None, &req), &req);
}

#[test]
fn unknown_origin_is_404() {
    let t = Tree::new(5, "");
    let req = request(0, vec![], signed(t.head(5), &[&log_key()]));
    let d = add_checkpoint(None, &req, &witness_key(), NOW);
    let r = refused(&d, 404);
    assert_eq!(r, &Refusal::UnknownOrigin(ORIGIN.into()));
    assert!(d.evidence.is_none());
}

#[test]
fn no_valid_log_signature_is_403() {
    let t = Tree::new(5, "");
    let head = t.head(5);
    // Signed only by a key the witness does not know.
    let other = SignerKey::from_seed("other.example/log", KeyType::Ed25519, &[2; 32]).unwrap();
    // Same name as the log key but another key (so another key ID): unknown.
    let impostor = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[3; 32]).unwrap();
    // The log key's signature line, with one bit of the signature flipped.
    let good = signed(head, &[&log_key()]);
    let sig = &good.signatures()[0];
    let mut bytes = sig.signature().to_vec();
    bytes[10] ^= 1;
    let bad = NoteSignature::new(sig.name(), sig.key_id(), bytes).unwrap();
    let tampered = Note::new(good.text(), vec![bad]).unwrap();
    // A valid log signature alongside a failing one by the same key.
    let mixed = Note::new(
        good.text(),
        vec![
            good.signatures()[0].clone(),
            tampered.signatures()[0].clone(),
        ],
    )
    .unwrap();
    for note in [
        signed(head, &[&other]),
        signed(head, &[&impostor]),
        tampered,
        mixed,
    ] {
        let d = decide(None, &request(0, vec![], note));
        assert!(matches!(refused(&d, 403), Refusal::NotSignedByLog(_)));
        assert!(d.evidence.is_none());
    }
}

#[test]
fn a_cosigner_key_cannot_stand_in_for_the_log() {
    let t = Tree::new(5, "");
    let mut note = signed(
        t.head(5),
        &[&SignerKey::from_seed("x", KeyType::Ed25519, &[9; 32]).unwrap()],
    );
    cosignature::cosign(&mut note, &witness_key(), NOW).unwrap();
    let log = KnownLog {
        keys: vec![witness_key().verifier()],
        latest: None,
    };
    let d = add_checkpoint(Some(&log), &request(0, vec![], note), &witness_key(), NOW);
    refused(&d, 403);
}

#[test]
fn old_size_beyond_checkpoint_is_400() {
    let t = Tree::new(12, "");
    let req = request(12, vec![], signed(t.head(10), &[&log_key()]));
    let d = decide(Some(t.head(12)), &req);
    assert_eq!(
        refused(&d, 400),
        &Refusal::OldSizeTooLarge { old: 12, size: 10 }
    );
    assert!(d.evidence.is_none());
}

#[test]
fn malformed_body_is_400() {
    let r = Refusal::from(AddCheckpointRequest::parse(b"old 01\n\n").unwrap_err());
    assert!(matches!(r, Refusal::Malformed(RequestError::OldSize(_))));
    assert_eq!(r.status(), 400);
    assert_eq!(r.conflict_size(), None);
    assert!(r.content_type().starts_with("text/plain"));
}

#[test]
fn old_size_not_the_stored_size_is_409_with_the_stored_size() {
    let t = Tree::new(20, "");
    let cases = [
        (Some(t.head(8)), 4, 8),
        (Some(t.head(8)), 0, 8),
        (Some(t.head(8)), 9, 8),
        (None, 4, 0),
    ];
    for (latest, old, stored) in cases {
        let proof = if old == 0 { vec![] } else { t.proof(old, 20) };
        let req = request(old, proof, signed(t.head(20), &[&log_key()]));
        let d = decide(latest, &req);
        let r = refused(&d, 409);
        assert_eq!(r, &Refusal::SizeConflict { old, stored });
        assert_eq!(r.conflict_size(), Some(stored));
        assert_eq!(r.content_type(), SIZE_CONTENT_TYPE);
        assert_eq!(r.response_body(), format!("{stored}\n"));
        assert!(d.evidence.is_none());
    }
}

#[test]
fn bad_consistency_proofs_are_422_and_possible_evidence() {
    let t = Tree::new(20, "");
    let good = t.proof(8, 20);
    let mut flipped = good.clone();
    flipped[0].0[0] ^= 1;
    let mut longer = good.clone();
    longer.push(Hash([0; 32]));
    let wrong_sizes = t.proof(7, 20);
    for proof in [
        flipped,
        good[1..].to_vec(),
        longer,
        wrong_sizes,
        vec![],
        good.iter().rev().copied().collect(),
    ] {
        let req = request(8, proof, signed(t.head(20), &[&log_key()]));
        let d = decide(Some(t.head(8)), &req);
        assert!(matches!(refused(&d, 422), Refusal::BadProof(_)));
        let e = d.evidence.expect("evidence");
        assert_eq!(e.kind, EvidenceKind::InconsistentProof);
        assert_eq!(e.stored, Some(t.head(8)));
        assert_eq!(e.request, req);
    }
}

#[test]
fn non_empty_proof_from_old_size_zero_is_422() {
    let t = Tree::new(20, "");
    let req = request(0, t.proof(8, 20), signed(t.head(20), &[&log_key()]));
    let d = decide(None, &req);
    assert_eq!(
        refused(&d, 422),
        &Refusal::ProofFromEmpty(t.proof(8, 20).len())
    );
    assert!(d.evidence.is_none());
}

#[test]
fn non_empty_proof_between_equal_sizes_is_422() {
    let t = Tree::new(20, "");
    let req = request(8, vec![t.head(8).root], signed(t.head(8), &[&log_key()]));
    let d = decide(Some(t.head(8)), &req);
    assert!(matches!(refused(&d, 422), Refusal::BadProof(_)));
}

#[test]
fn bad_empty_tree_is_422_and_evidence() {
    let head = TreeHead {
        size: 0,
        root: Hash([0; 32]),
    };
    let req = request(0, vec![], signed(head, &[&log_key()]));
    for latest in [
        None,
        Some(TreeHead {
            size: 0,
            root: empty_tree_hash(),
        }),
    ] {
        let d = decide(latest, &req);
        assert_eq!(refused(&d, 422), &Refusal::BadEmptyTree(Hash([0; 32])));
        assert_eq!(d.evidence.unwrap().kind, EvidenceKind::BadEmptyTree);
    }
}

#[test]
fn same_size_different_root_is_409_and_a_fork() {
    let a = Tree::new(8, "");
    let b = Tree::new(8, "fork ");
    let req = request(8, vec![], signed(b.head(8), &[&log_key()]));
    let d = decide(Some(a.head(8)), &req);
    let r = refused(&d, 409);
    assert_eq!(r, &Refusal::RootConflict { size: 8 });
    assert_eq!(r.response_body(), "8\n");
    assert_eq!(r.content_type(), SIZE_CONTENT_TYPE);
    let e = d.evidence.unwrap();
    assert_eq!(e.kind, EvidenceKind::Fork);
    assert_eq!(e.stored, Some(a.head(8)));
    assert_eq!(e.request.checkpoint().root, b.head(8).root);
}

#[test]
fn a_fork_of_the_log_is_never_cosigned_and_always_reported() {
    // The log signs tree A up to 8, which the witness cosigns; then it signs
    // a different tree B with the same key.
    let a = Tree::new(8, "");
    let b = Tree::new(20, "fork ");
    let req_a = request(0, vec![], signed(a.head(8), &[&log_key()]));
    let stored = assert_cosigned(&decide(None, &req_a), &req_a);

    // B extends "8" with B's own proof: the proof fails against A's root.
    let req = request(8, b.proof(8, 20), signed(b.head(20), &[&log_key()]));
    let d = decide(Some(stored), &req);
    refused(&d, 422);
    assert_eq!(d.evidence.unwrap().kind, EvidenceKind::InconsistentProof);

    // B at the same size, whatever old size the log claims: 409, and a fork.
    for old in [0, 5, 8, 9] {
        let req = request(old, vec![], signed(b.head(8), &[&log_key()]));
        let d = decide(Some(stored), &req);
        refused(&d, if old > 8 { 400 } else { 409 });
        assert_eq!(d.evidence.unwrap().kind, EvidenceKind::Fork, "old {old}");
    }

    // The same fork signed by a key the witness does not trust is not evidence.
    let other = SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[3; 32]).unwrap();
    let req = request(8, vec![], signed(b.head(8), &[&other]));
    let d = decide(Some(stored), &req);
    refused(&d, 403);
    assert!(d.evidence.is_none());
}

#[test]
fn a_witness_key_that_cannot_cosign_is_500() {
    let t = Tree::new(5, "");
    let req = request(0, vec![], signed(t.head(5), &[&log_key()]));
    let d = add_checkpoint(Some(&known(None)), &req, &log_key(), NOW);
    assert!(matches!(refused(&d, 500), Refusal::Cosign(_)));
    let d = add_checkpoint(Some(&known(None)), &req, &witness_key(), u64::MAX);
    assert!(matches!(refused(&d, 500), Refusal::Cosign(_)));
}

#[test]
fn cosigned_requests_survive_the_wire() {
    // The log serialises the request, the witness parses and decides.
    let t = Tree::new(33, "");
    let req = request(17, t.proof(17, 33), signed(t.head(33), &[&log_key()]));
    let parsed = AddCheckpointRequest::parse(&req.to_bytes()).unwrap();
    assert_eq!(parsed, req);
    assert_eq!(
        assert_cosigned(&decide(Some(t.head(17)), &parsed), &parsed),
        t.head(33)
    );
}
