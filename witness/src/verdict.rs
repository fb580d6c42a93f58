//! The witness's decision on an `add-checkpoint` request
//! (c2sp.org/tlog-witness §add-checkpoint), as a pure function of the state
//! it stored for the log, the request, its cosigner key and the time.
//!
//! # Order of checks
//!
//! [`add_checkpoint`] applies the spec's rules in the spec's order; the first
//! that fails decides the answer:
//!
//! 1. (malformed body: [`RequestError`], 400 — refused
//!    by the parser before this function runs; see [`Refusal::Malformed`]);
//! 2. the checkpoint origin is not a known log: 404;
//! 3. no signature verifies under one of the log's keys, or a signature by
//!    one of them fails: 403 (signatures by other keys are ignored);
//! 4. the old size is larger than the checkpoint size: 400;
//! 5. the old size is not the size of the latest cosigned checkpoint (zero if
//!    none): 409, with that size as the body;
//! 6. the consistency proof does not verify: 422. From old size zero the
//!    proof must be empty (and an empty checkpoint must have the empty-tree
//!    root, "bad empty tree"); between equal sizes it must be empty;
//! 7. equal sizes with different root hashes: 409.
//!
//! Otherwise the witness cosigns, and must persist the new state before
//! answering, atomically with check 5.
//!
//! # Evidence
//!
//! Once the log's signature verified (check 3), a checkpoint that contradicts
//! the stored state is reported as [`Evidence`] whatever the answer: a
//! different root at the stored size (a fork, even if the request is refused
//! earlier with 400 or 409), a size-zero checkpoint whose root is not the
//! empty tree's, or a consistency proof that fails against the stored root
//! (possible misbehaviour, or a broken client). The spec allows logging these
//! "as it might be proof of log misbehavior"; the witness never cosigns them.

use modeltrail::tlog::cosignature::{self, CosignatureError};
use modeltrail::tlog::note::{KeyType, NoteError, NoteSignature, SignerKey, VerifierKey};
use modeltrail::tlog::proof::{VerifyError, verify_consistency};
use modeltrail::tlog::{Hash, empty_tree_hash};

use crate::request::{AddCheckpointRequest, RequestError};

pub use modeltrail::tlog::add_checkpoint::SIZE_CONTENT_TYPE;

/// The `Content-Type` of every other refusal, whose body is the error message.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A tree size and root: the latest checkpoint a witness cosigned for a log,
/// which is all the state the spec requires it to keep per log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// The tree size.
    pub size: u64,
    /// The root hash at that size.
    pub root: Hash,
}

/// A log the witness is configured for, as found by the checkpoint's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLog {
    /// The log's public keys. Only Ed25519 (`0x01`) keys count: a
    /// cosignature key can never stand in for the log's own signature.
    pub keys: Vec<VerifierKey>,
    /// The latest checkpoint cosigned for the log, `None` if never.
    pub latest: Option<TreeHead>,
}

/// A successful request: the cosignature to return and the state to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The cosignature/v1 signature line on the checkpoint.
    pub signature: NoteSignature,
    /// The new latest cosigned checkpoint (equal to the stored one when the
    /// request repeats it). Persist it before answering, and only if the
    /// stored size is still the request's old size (tlog-witness: check and
    /// update atomically, or a racing request can roll the log back).
    pub new_state: TreeHead,
}

impl Cosigned {
    /// The "200 Success" body: the cosignature line, newline-terminated.
    pub fn response_body(&self) -> String {
        self.signature.to_line()
    }
}

/// Why the witness refuses to cosign, each mapped to its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body is not a well-formed request: 400.
    #[error("malformed request: {0}")]
    Malformed(#[from] RequestError),
    /// The checkpoint origin is not a known log: 404.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// No signature by the log's keys verifies, or one fails: 403.
    #[error("checkpoint is not validly signed by the log: {0}")]
    NotSignedByLog(NoteError),
    /// The old size is larger than the checkpoint size: 400.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The old size is not the latest cosigned size: 409.
    #[error("old size {old} does not match the latest cosigned size {stored}")]
    SizeConflict {
        /// The request's old size.
        old: u64,
        /// The size of the latest cosigned checkpoint (0 if none).
        stored: u64,
    },
    /// From old size zero, the proof is not empty: 422.
    #[error("consistency proof from old size 0 must be empty, has {0} hashes")]
    ProofFromEmpty(usize),
    /// A size-zero checkpoint whose root is not the empty tree's: 422.
    #[error("bad empty tree: checkpoint of size 0 has root {0:?}")]
    BadEmptyTree(Hash),
    /// The consistency proof does not verify: 422.
    #[error("consistency proof does not verify: {0}")]
    BadProof(VerifyError),
    /// Same size as the latest cosigned checkpoint, different root: 409.
    #[error("checkpoint of size {size} has a different root than the one cosigned")]
    RootConflict {
        /// The shared size, also the latest cosigned size.
        size: u64,
    },
    /// The witness's own key or timestamp cannot cosign (misconfiguration): 500.
    #[error("witness cannot cosign: {0}")]
    Cosign(CosignatureError),
}

impl Refusal {
    /// The HTTP status code tlog-witness assigns to this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::NotSignedByLog(_) => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::SizeConflict { .. } | Refusal::RootConflict { .. } => 409,
            Refusal::ProofFromEmpty(_) | Refusal::BadEmptyTree(_) | Refusal::BadProof(_) => 422,
            Refusal::Cosign(_) => 500,
        }
    }

    /// For a 409, the latest cosigned size, to be sent as `<size>\n`.
    pub fn conflict_size(&self) -> Option<u64> {
        match *self {
            Refusal::SizeConflict { stored, .. } => Some(stored),
            Refusal::RootConflict { size } => Some(size),
            _ => None,
        }
    }

    /// The response `Content-Type`: [`SIZE_CONTENT_TYPE`] for a 409,
    /// [`TEXT_CONTENT_TYPE`] otherwise.
    pub fn content_type(&self) -> &'static str {
        match self.conflict_size() {
            Some(_) => SIZE_CONTENT_TYPE,
            None => TEXT_CONTENT_TYPE,
        }
    }

    /// The response body: `<size>\n` for a 409, the message otherwise.
    pub fn response_body(&self) -> String {
        match self.conflict_size() {
            Some(size) => format!("{size}\n"),
            None => format!("{self}\n"),
        }
    }
}

/// How a validly log-signed checkpoint contradicts the witness's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// Same size as the latest cosigned checkpoint, different root: a fork.
    Fork,
    /// A size-zero checkpoint whose root is not the empty-tree hash.
    BadEmptyTree,
    /// The consistency proof from the stored checkpoint does not verify:
    /// possibly a fork, possibly a broken proof.
    InconsistentProof,
}

/// A validly log-signed request that contradicts the stored state: what a
/// witness keeps as possible proof of log misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// What the contradiction is.
    pub kind: EvidenceKind,
    /// The latest cosigned checkpoint it contradicts (`None`: never cosigned).
    pub stored: Option<TreeHead>,
    /// The request, with the log-signed checkpoint and the proof.
    pub request: AddCheckpointRequest,
}

/// The witness's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The cosignature and new state, or the refusal.
    pub outcome: Result<Cosigned, Refusal>,
    /// Evidence of log misbehaviour to record, if any (never with a cosignature).
    pub evidence: Option<Evidence>,
}

/// Decides an `add-checkpoint` request (see the module docs for the order of
/// checks). `log` is the configuration and state found for the checkpoint's
/// origin (`None`: unknown origin); `witness` is a cosignature/v1 key;
/// `timestamp` is the current POSIX time in seconds.
pub fn add_checkpoint(
    log: Option<&KnownLog>,
    request: &AddCheckpointRequest,
    witness: &SignerKey,
    timestamp: u64,
) -> Decision {
    let refuse = |refusal| Decision {
        outcome: Err(refusal),
        evidence: None,
    };
    let Some(log) = log else {
        return refuse(Refusal::UnknownOrigin(request.checkpoint().origin.clone()));
    };
    if let Err(err) = verify_log_signature(log, request) {
        return refuse(Refusal::NotSignedByLog(err));
    }
    let outcome = check_consistency(log.latest, request)
        .and_then(|new_state| cosign(request, witness, timestamp, new_state));
    let evidence = evidence_kind(log.latest, request, &outcome).map(|kind| Evidence {
        kind,
        stored: log.latest,
        request: request.clone(),
    });
    Decision { outcome, evidence }
}

/// Checks the note against the log's Ed25519 keys (tlog-witness: verify
/// against the trusted keys, ignore unknown keys).
fn verify_log_signature(log: &KnownLog, request: &AddCheckpointRequest) -> Result<(), NoteError> {
    let keys: Vec<VerifierKey> = log
        .keys
        .iter()
        .filter(|k| k.key_type() == KeyType::Ed25519)
        .cloned()
        .collect();
    request.note().verify(&keys).map(|_| ())
}

/// Checks 4 to 7 of the module docs; returns the state to persist.
fn check_consistency(
    latest: Option<TreeHead>,
    request: &AddCheckpointRequest,
) -> Result<TreeHead, Refusal> {
    let (old, proof) = (request.old_size(), request.proof());
    let new = TreeHead {
        size: request.checkpoint().size,
        root: request.checkpoint().root,
    };
    if old > new.size {
        return Err(Refusal::OldSizeTooLarge {
            old,
            size: new.size,
        });
    }
    let stored = latest.map_or(0, |t| t.size);
    if old != stored {
        return Err(Refusal::SizeConflict { old, stored });
    }
    if old == 0 {
        return check_from_empty(proof, new);
    }
    // old == stored > 0, so `latest` is present.
    let stored_root = latest.map_or_else(empty_tree_hash, |t| t.root);
    if old == new.size {
        return check_same_size(proof, stored_root, new);
    }
    verify_consistency(old, new.size, &stored_root, &new.root, proof).map_err(Refusal::BadProof)?;
    Ok(new)
}

/// From old size zero: the proof must be empty, and an empty checkpoint must
/// have the empty-tree root. Any non-empty tree extends the empty tree.
fn check_from_empty(proof: &[Hash], new: TreeHead) -> Result<TreeHead, Refusal> {
    if !proof.is_empty() {
        return Err(Refusal::ProofFromEmpty(proof.len()));
    }
    if new.size == 0 && new.root != empty_tree_hash() {
        return Err(Refusal::BadEmptyTree(new.root));
    }
    Ok(new)
}

/// Equal sizes: the proof must be empty (422), the roots equal (409).
fn check_same_size(proof: &[Hash], stored_root: Hash, new: TreeHead) -> Result<TreeHead, Refusal> {
    if !proof.is_empty() {
        return Err(Refusal::BadProof(VerifyError::WrongLength {
            got: proof.len(),
            want: 0,
        }));
    }
    if new.root != stored_root {
        return Err(Refusal::RootConflict { size: new.size });
    }
    Ok(new)
}

/// Makes the cosignature/v1 line on the checkpoint.
fn cosign(
    request: &AddCheckpointRequest,
    witness: &SignerKey,
    timestamp: u64,
    new_state: TreeHead,
) -> Result<Cosigned, Refusal> {
    let signature =
        cosignature::sign(witness, request.note().text(), timestamp).map_err(Refusal::Cosign)?;
    Ok(Cosigned {
        signature,
        new_state,
    })
}

/// Whether a log-signed request contradicts the stored state (module docs).
fn evidence_kind(
    latest: Option<TreeHead>,
    request: &AddCheckpointRequest,
    outcome: &Result<Cosigned, Refusal>,
) -> Option<EvidenceKind> {
    let cp = request.checkpoint();
    if cp.size == 0 && cp.root != empty_tree_hash() {
        return Some(EvidenceKind::BadEmptyTree);
    }
    if latest.is_some_and(|t| t.size == cp.size && t.root != cp.root) {
        return Some(EvidenceKind::Fork);
    }
    match outcome {
        Err(Refusal::BadProof(_)) => Some(EvidenceKind::InconsistentProof),
        _ => None,
    }
}
