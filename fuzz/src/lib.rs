//! Fixed keys, policy and tree shared by the fuzz targets.
//!
//! The keys are deterministic (fixed seeds) so that the committed seed
//! corpora in `seeds/` (made by `seedgen/`) carry signatures these keys
//! verify. Keep the names and seeds in sync with `seedgen/src/main.rs`.
//!
//! Every target's body is `targets::<name>::run(data)`, a plain function:
//! the libFuzzer binaries in `fuzz_targets/` call it, and so does
//! `tests/replay.rs`, which replays the seed corpora on stable Rust
//! without libFuzzer (CI runs it).

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};

use modeltrail::tlog::Hash;
use modeltrail::tlog::hash::{leaf_hash, node_hash, stored_hashes};
use modeltrail::tlog::note::{KeyType, SignerKey, VerifierKey};
use modeltrail::tlog::policy::Policy;

pub mod targets;

/// Decodes a structured input exactly as libFuzzer's `fuzz_target!` does
/// for a typed closure argument: inputs shorter than the type's minimum
/// size are skipped, the rest is `arbitrary_take_rest`.
pub fn arbitrary_input<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// Name (and checkpoint origin) of the fixed log key.
pub const LOG_NAME: &str = "example.com/log";
/// Seed of the fixed log key (Ed25519).
pub const LOG_SEED: [u8; 32] = [1; 32];
/// Name of the fixed witness key.
pub const WITNESS_NAME: &str = "witness.example/w1";
/// Seed of the fixed witness key (cosignature/v1).
pub const WITNESS_SEED: [u8; 32] = [4; 32];

/// The fixed log signer (Ed25519).
pub fn log_signer() -> &'static SignerKey {
    static KEY: OnceLock<SignerKey> = OnceLock::new();
    KEY.get_or_init(|| SignerKey::from_seed(LOG_NAME, KeyType::Ed25519, &LOG_SEED).unwrap())
}

/// The fixed witness signer (cosignature/v1).
pub fn witness_signer() -> &'static SignerKey {
    static KEY: OnceLock<SignerKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SignerKey::from_seed(WITNESS_NAME, KeyType::CosignatureV1, &WITNESS_SEED).unwrap()
    })
}

/// Seed of the fixed entry signer (Ed25519), which signs the entries of
/// the `audit_fast` seeds.
pub const ENTRY_SEED: [u8; 32] = [7; 32];

/// The fixed entry signer.
pub fn entry_signer() -> &'static SignerKey {
    static KEY: OnceLock<SignerKey> = OnceLock::new();
    KEY.get_or_init(|| SignerKey::from_seed("serving", KeyType::Ed25519, &ENTRY_SEED).unwrap())
}

/// The fixed log's signed checkpoint of the first 13 records `entry(i)`
/// (the checkpoint the `witness_reply` seeds cosign).
pub fn checkpoint_note() -> &'static [u8] {
    static NOTE: OnceLock<Vec<u8>> = OnceLock::new();
    NOTE.get_or_init(|| {
        let checkpoint = modeltrail::tlog::checkpoint::Checkpoint {
            origin: LOG_NAME.to_owned(),
            size: 13,
            root: tree().roots[13],
            extensions: Vec::new(),
        };
        checkpoint.sign(log_signer()).unwrap().to_bytes()
    })
}

/// The fixed log verifier key.
pub fn log_vkey() -> VerifierKey {
    log_signer().verifier()
}

/// The fixed witness verifier key.
pub fn witness_vkey() -> VerifierKey {
    witness_signer().verifier()
}

/// The fixed policy: the log, the witness, and a quorum of that one witness.
pub fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let text = format!(
            "log {}\nwitness w1 {}\nquorum w1\n",
            log_vkey(),
            witness_vkey()
        );
        Policy::parse(text.as_bytes()).unwrap()
    })
}

/// The record stored at leaf `i` of the fixed tree and of the seed tlog-proofs.
pub fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

/// Largest tree the Merkle differential checks build.
pub const MAX_TREE: u64 = 300;

/// A tree of [`MAX_TREE`] records `entry(i)`, for the Merkle differential checks.
pub struct Tree {
    /// Stored hashes of the full tree, built with `stored_hashes`; the stored
    /// hashes of any smaller tree are a prefix of these.
    pub stored: Vec<Hash>,
    /// `roots[n]`: the RFC 6962 root of the first `n` records, computed
    /// naively from the definition (independent of the stored-hash code).
    pub roots: Vec<Hash>,
}

/// The RFC 6962 Merkle tree hash, straight from the definition.
pub fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => modeltrail::tlog::empty_tree_hash(),
        1 => leaves[0],
        n => {
            // The largest power of two strictly less than n.
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

/// The shared tree (built once per process).
pub fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut stored = Vec::new();
        for i in 0..MAX_TREE {
            let new = stored_hashes(i, &entry(i), &stored).unwrap();
            stored.extend(new);
        }
        let leaves: Vec<Hash> = (0..MAX_TREE).map(|i| leaf_hash(&entry(i))).collect();
        let roots = (0..=MAX_TREE as usize)
            .map(|n| naive_root(&leaves[..n]))
            .collect();
        Tree { stored, roots }
    })
}
