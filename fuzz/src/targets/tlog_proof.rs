//! tlog-proof: `TlogProof::parse` on arbitrary bytes.
//!
//! The format is canonical, so on success `to_bytes` is the input byte for
//! byte and re-parses to an equal proof. Every parsed proof is then verified
//! under the fixed policy for the entry `entry <index>` (what the seed
//! corpus proves); when that succeeds, the inclusion proof must check
//! against the returned checkpoint and no other entry may verify.

use crate::{entry, policy};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::hash::leaf_hash;
use modeltrail::tlog::note::Note;
use modeltrail::tlog::proof::verify_inclusion;
use modeltrail::tlog::tlog_proof::{MAX_PROOF_BYTES, TlogProof};

/// The target: `fuzz_targets/tlog_proof.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(proof) = TlogProof::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_PROOF_BYTES);
    assert!(proof.proof.len() <= 64);
    assert!(!proof.checkpoint.is_empty());

    let bytes = proof.to_bytes();
    assert_eq!(bytes, data, "to_bytes is not the parsed input");
    assert_eq!(TlogProof::parse(&bytes).as_ref(), Ok(&proof));

    let entry = entry(proof.index);
    let result = proof.verify(&entry, policy());
    let by_hash = proof.verify_leaf_hash(&leaf_hash(&entry), policy());
    assert_eq!(result.is_ok(), by_hash.is_ok());
    let Ok(checkpoint) = result else {
        return;
    };
    assert_eq!(by_hash.unwrap(), checkpoint);

    // What verified is a checkpoint of a policy log, and the proof holds.
    let note = Note::parse(&proof.checkpoint).expect("verified checkpoint note parses");
    assert_eq!(Checkpoint::from_note(&note).as_ref(), Ok(&checkpoint));
    assert!(
        policy()
            .logs
            .iter()
            .any(|l| l.key.name() == checkpoint.origin)
    );
    assert!(proof.index < checkpoint.size);
    assert_eq!(
        verify_inclusion(
            &leaf_hash(&entry),
            proof.index,
            checkpoint.size,
            &proof.proof,
            &checkpoint.root
        ),
        Ok(())
    );

    // No other entry verifies with the same proof.
    let mut other = entry.clone();
    other.push(b'!');
    assert!(proof.verify(&other, policy()).is_err());
    assert!(proof.verify(b"", policy()).is_err());
}
