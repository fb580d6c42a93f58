//! Inclusion proofs.
//!
//! 1. Arbitrary leaf, index, size, root and proof (up to 70 hashes) into
//!    `verify_inclusion`: never panics; a `WrongLength` error names the
//!    length that gets past the length check.
//! 2. Differential: in a real tree of up to 300 records (stored hashes built
//!    with `stored_hashes`), `tree_hash` equals the naive RFC 6962 root, the
//!    proof from `prove_inclusion` verifies, and one fuzzer-chosen mutation
//!    (a bit flip in a proof hash, the leaf or the root; another index;
//!    another size with that size's true root; a hash removed or added)
//!    makes it fail.

use crate::{MAX_TREE, entry, tree};
use arbitrary::Arbitrary;
use modeltrail::tlog::Hash;
use modeltrail::tlog::hash::{leaf_hash, tree_hash};
use modeltrail::tlog::proof::{
    VerifyError, inclusion_proof_len, prove_inclusion, verify_inclusion,
};

#[derive(Debug, Arbitrary)]
enum Mutation {
    FlipProof { hash: u8, bit: u8 },
    FlipLeaf { bit: u8 },
    FlipRoot { bit: u8 },
    Index(u64),
    Size(u16),
    Remove(u8),
    Insert { at: u8, hash: [u8; 32] },
}

#[derive(Debug, Arbitrary)]
struct Input {
    leaf: [u8; 32],
    index: u64,
    size: u64,
    root: [u8; 32],
    proof: Vec<[u8; 32]>,
    tree_size: u16,
    tree_index: u16,
    mutation: Mutation,
}

fn flip(h: &mut Hash, bit: u8) {
    h.0[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
}

/// The target: `fuzz_targets/verify_inclusion.rs` calls this with the fuzzer's input,
/// decoded as libFuzzer's `fuzz_target!` decodes a typed input.
pub fn run(data: &[u8]) {
    if let Some(input) = crate::arbitrary_input::<Input>(data) {
        check(input);
    }
}

fn check(input: Input) {
    // 1. Arbitrary input never panics.
    let proof: Vec<Hash> = input.proof.iter().take(70).map(|h| Hash(*h)).collect();
    let (leaf, root) = (Hash(input.leaf), Hash(input.root));
    match verify_inclusion(&leaf, input.index, input.size, &proof, &root) {
        Ok(()) => assert!(input.index < input.size),
        Err(VerifyError::IndexOutOfRange { index, size }) => {
            assert!(index >= size);
            assert_eq!((index, size), (input.index, input.size));
        }
        Err(VerifyError::WrongLength { got, want }) => {
            assert_eq!(got, proof.len());
            assert_ne!(got, want);
            assert_eq!(want, inclusion_proof_len(input.index, input.size));
            assert!(want <= 64);
            let mut fitted = proof.clone();
            fitted.resize(want, Hash::default());
            let again = verify_inclusion(&leaf, input.index, input.size, &fitted, &root);
            assert!(matches!(again, Ok(()) | Err(VerifyError::RootMismatch)));
        }
        Err(VerifyError::RootMismatch) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }

    // 2. Differential against a real tree.
    let t = tree();
    let size = u64::from(input.tree_size) % MAX_TREE + 1;
    let index = u64::from(input.tree_index) % size;
    let root = tree_hash(size, &t.stored).unwrap();
    assert_eq!(
        root, t.roots[size as usize],
        "tree_hash differs from the naive root"
    );
    let leaf = leaf_hash(&entry(index));
    let proof = prove_inclusion(size, index, &t.stored).unwrap();
    assert_eq!(proof.len(), inclusion_proof_len(index, size));
    assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

    let (mut leaf2, mut index2, mut size2, mut root2, mut proof2) =
        (leaf, index, size, root, proof.clone());
    match input.mutation {
        Mutation::FlipProof { hash, bit } => {
            if proof2.is_empty() {
                return;
            }
            let i = usize::from(hash) % proof2.len();
            flip(&mut proof2[i], bit);
        }
        Mutation::FlipLeaf { bit } => flip(&mut leaf2, bit),
        Mutation::FlipRoot { bit } => flip(&mut root2, bit),
        Mutation::Index(i) => {
            if i == index {
                return;
            }
            index2 = i;
        }
        Mutation::Size(s) => {
            let s = u64::from(s) % MAX_TREE + 1;
            if s == size {
                return;
            }
            size2 = s;
            root2 = t.roots[s as usize];
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
        verify_inclusion(&leaf2, index2, size2, &proof2, &root2).is_err(),
        "mutated proof verifies: index {index} size {size} mutation {:?}",
        input.mutation
    );
}
