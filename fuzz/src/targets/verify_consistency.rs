//! Consistency proofs.
//!
//! 1. Arbitrary sizes, roots and proof (up to 70 hashes) into
//!    `verify_consistency`: never panics; a `WrongLength` error names the
//!    length that gets past the length check.
//! 2. Differential: in a real tree of up to 300 records, the proof from
//!    `prove_consistency` verifies between the naive RFC 6962 roots, and one
//!    fuzzer-chosen mutation (a bit flip in a proof hash or either root;
//!    another old or new size with that size's true root; swapped roots; a
//!    hash removed or added) makes it fail.

use crate::{MAX_TREE, tree};
use arbitrary::Arbitrary;
use modeltrail::tlog::hash::tree_hash;
use modeltrail::tlog::proof::{
    VerifyError, consistency_proof_len, prove_consistency, verify_consistency,
};
use modeltrail::tlog::{Hash, empty_tree_hash};

#[derive(Debug, Arbitrary)]
enum Mutation {
    FlipProof { hash: u8, bit: u8 },
    FlipOldRoot { bit: u8 },
    FlipNewRoot { bit: u8 },
    OldSize(u16),
    NewSize(u16),
    SwapRoots,
    Remove(u8),
    Insert { at: u8, hash: [u8; 32] },
}

#[derive(Debug, Arbitrary)]
struct Input {
    old: u64,
    new: u64,
    old_root: [u8; 32],
    new_root: [u8; 32],
    proof: Vec<[u8; 32]>,
    tree_old: u16,
    tree_new: u16,
    mutation: Mutation,
}

fn flip(h: &mut Hash, bit: u8) {
    h.0[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
}

/// The target: `fuzz_targets/verify_consistency.rs` calls this with the fuzzer's input,
/// decoded as libFuzzer's `fuzz_target!` decodes a typed input.
pub fn run(data: &[u8]) {
    if let Some(input) = crate::arbitrary_input::<Input>(data) {
        check(input);
    }
}

fn check(input: Input) {
    // 1. Arbitrary input never panics.
    let proof: Vec<Hash> = input.proof.iter().take(70).map(|h| Hash(*h)).collect();
    let (old_root, new_root) = (Hash(input.old_root), Hash(input.new_root));
    let (old, new) = (input.old, input.new);
    match verify_consistency(old, new, &old_root, &new_root, &proof) {
        Ok(()) => {
            assert!(old <= new);
            if old == 0 {
                assert!(proof.is_empty() && old_root == empty_tree_hash());
            } else if old == new {
                assert!(proof.is_empty() && old_root == new_root);
            }
        }
        Err(VerifyError::OldSizeTooLarge { .. }) => assert!(old > new),
        Err(VerifyError::BadEmptyTree) => assert_eq!(old, 0),
        Err(VerifyError::WrongLength { got, want }) => {
            assert_eq!(got, proof.len());
            assert_ne!(got, want);
            assert!(want <= 128);
            if 0 < old && old < new {
                assert_eq!(want, consistency_proof_len(old, new));
            } else {
                assert_eq!(want, 0);
            }
            let mut fitted = proof.clone();
            fitted.resize(want, Hash::default());
            let again = verify_consistency(old, new, &old_root, &new_root, &fitted);
            assert!(matches!(
                again,
                Ok(()) | Err(VerifyError::RootMismatch) | Err(VerifyError::BadEmptyTree)
            ));
        }
        Err(VerifyError::RootMismatch) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }

    // 2. Differential against a real tree.
    let t = tree();
    let a = u64::from(input.tree_old) % MAX_TREE + 1;
    let b = u64::from(input.tree_new) % MAX_TREE + 1;
    let (old, new) = (a.min(b), a.max(b));
    let old_root = tree_hash(old, &t.stored).unwrap();
    let new_root = tree_hash(new, &t.stored).unwrap();
    assert_eq!(old_root, t.roots[old as usize]);
    assert_eq!(new_root, t.roots[new as usize]);
    let proof = prove_consistency(old, new, &t.stored).unwrap();
    if old < new {
        assert_eq!(proof.len(), consistency_proof_len(old, new));
    } else {
        assert!(proof.is_empty());
    }
    assert_eq!(
        verify_consistency(old, new, &old_root, &new_root, &proof),
        Ok(())
    );
    // Every tree extends the empty tree.
    assert_eq!(
        verify_consistency(0, new, &empty_tree_hash(), &new_root, &[]),
        Ok(())
    );

    let (mut old2, mut new2, mut old_root2, mut new_root2, mut proof2) =
        (old, new, old_root, new_root, proof.clone());
    match input.mutation {
        Mutation::FlipProof { hash, bit } => {
            if proof2.is_empty() {
                return;
            }
            let i = usize::from(hash) % proof2.len();
            flip(&mut proof2[i], bit);
        }
        Mutation::FlipOldRoot { bit } => flip(&mut old_root2, bit),
        Mutation::FlipNewRoot { bit } => flip(&mut new_root2, bit),
        Mutation::OldSize(s) => {
            let s = u64::from(s) % (MAX_TREE + 1);
            // The empty tree is a legitimate prefix of every tree.
            if s == old || (s == 0 && proof2.is_empty()) {
                return;
            }
            old2 = s;
            old_root2 = t.roots[s as usize];
        }
        Mutation::NewSize(s) => {
            let s = u64::from(s) % MAX_TREE + 1;
            if s == new {
                return;
            }
            new2 = s;
            new_root2 = t.roots[s as usize];
        }
        Mutation::SwapRoots => {
            if old == new {
                return;
            }
            std::mem::swap(&mut old_root2, &mut new_root2);
        }
        Mutation::Remove(i) => {
            if proof2.is_empty() {
                return;
            }
            proof2.remove(usize::from(i) % proof2.len());
        }
        Mutation::Insert { at, hash } => {
            let at = usize::from(at) % (proof2.len() + 1);
            proof2.insert(at, Hash(hash));
        }
    }
    assert!(
        verify_consistency(old2, new2, &old_root2, &new_root2, &proof2).is_err(),
        "mutated proof verifies: old {old} new {new} mutation {:?}",
        input.mutation
    );
}
