//! Inclusion and consistency proofs: generation from stored hashes (after
//! Go's `sumdb/tlog` `ProveRecord`/`ProveTree`), and verification exactly as
//! RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).
//!
//! Generation makes two passes: the first computes the stored-hash indexes
//! the proof needs, a single [`HashReader::read_hashes`] call fetches them
//! (O(log n) hashes), and the second folds them into the proof. Nothing
//! proportional to the tree size is ever read or held.
//!
//! Verification takes the proof as a slice of 32-byte hashes (so empty or
//! wrong-length hashes are refused when parsing) and refuses every proof that
//! is not exactly the RFC's: missing hashes, extra trailing hashes, an index
//! outside the tree, an old size beyond the new one.

use super::hash::{
    Hash, HashReader, ReadError, max_pow2_below, node_hash, read_exact, sub_tree_hash,
    sub_tree_index,
};

/// Why a proof could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The request names a leaf or tree size the tree does not have.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size the proof was asked against.
        size: u64,
    },
    /// A consistency proof was asked between sizes that are not `0 < old <= new`.
    #[error("no consistency proof from size {old} to size {new}: need 0 < old <= new")]
    InvalidSizes {
        /// The older tree size.
        old: u64,
        /// The newer tree size.
        new: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why a proof failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old size {old} is larger than new size {new}")]
    OldSizeTooLarge {
        /// The older tree size.
        old: u64,
        /// The newer tree size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes and index.
    #[error("proof has {got} hashes, want {want}")]
    WrongLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes a proof for these parameters must have.
        want: usize,
    },
    /// The proof is well formed but leads to a different root: either the
    /// leaf is not in the tree, or the proof or roots were altered.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    /// A consistency proof was checked against an empty old tree whose root
    /// is not the empty-tree hash.
    #[error("old root of the empty tree is not SHA-256 of the empty string")]
    BadEmptyTree,
}

/// Proves that the leaf at `index` is in the tree of the first `size` records.
///
/// The proof lists sibling hashes from the leaf up to the root (RFC 9162
/// §2.1.3.1); it is empty for a tree of one record.
pub fn prove_inclusion(
    size: u64,
    index: u64,
    r: &impl HashReader,
) -> Result<Vec<Hash>, ProveError> {
    if index >= size {
        return Err(ProveError::IndexOutOfRange { index, size });
    }
    let mut indexes = Vec::with_capacity(64);
    inclusion_index(0, size, index, &mut indexes);
    let hashes = read_exact(r, &indexes)?;
    let mut proof = Vec::with_capacity(64);
    let rest = inclusion(0, size, index, &hashes, &mut proof);
    assert!(rest.is_empty(), "tlog: bad index math in prove_inclusion");
    Ok(proof)
}

/// The stored-hash indexes [`inclusion`] consumes, in the order it consumes them.
fn inclusion_index(lo: u64, hi: u64, n: u64, need: &mut Vec<u64>) {
    assert!(lo <= n && n < hi, "tlog: bad math in inclusion_index");
    if lo + 1 == hi {
        return;
    }
    let (k, _) = max_pow2_below(hi - lo);
    if n < lo + k {
        inclusion_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need);
    } else {
        sub_tree_index(lo, lo + k, need);
        inclusion_index(lo + k, hi, n, need);
    }
}

/// Walks from the root of `[lo, hi)` down to leaf `n`, pushing the hash of
/// each path not taken, so that `proof` ends up ordered leaf to root.
fn inclusion<'a>(
    lo: u64,
    hi: u64,
    n: u64,
    hashes: &'a [Hash],
    proof: &mut Vec<Hash>,
) -> &'a [Hash] {
    assert!(lo <= n && n < hi, "tlog: bad math in inclusion");
    if lo + 1 == hi {
        // The verifier knows the leaf hash itself.
        return hashes;
    }
    let (k, _) = max_pow2_below(hi - lo);
    if n < lo + k {
        let hashes = inclusion(lo, lo + k, n, hashes, proof);
        let (right, hashes) = sub_tree_hash(lo + k, hi, hashes);
        proof.push(right);
        hashes
    } else {
        let (left, hashes) = sub_tree_hash(lo, lo + k, hashes);
        let hashes = inclusion(lo + k, hi, n, hashes, proof);
        proof.push(left);
        hashes
    }
}

/// Proves that the tree of the first `old_size` records is a prefix of the
/// tree of the first `new_size` records (RFC 9162 §2.1.4.1).
///
/// Requires `0 < old_size <= new_size`; the proof is empty when they are equal.
pub fn prove_consistency(
    old_size: u64,
    new_size: u64,
    r: &impl HashReader,
) -> Result<Vec<Hash>, ProveError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProveError::InvalidSizes {
            old: old_size,
            new: new_size,
        });
    }
    let mut indexes = Vec::with_capacity(64);
    consistency_index(0, new_size, old_size, &mut indexes);
    let hashes = read_exact(r, &indexes)?;
    let mut proof = Vec::with_capacity(64);
    let rest = consistency(0, new_size, old_size, &hashes, &mut proof);
    assert!(rest.is_empty(), "tlog: bad index math in prove_consistency");
    Ok(proof)
}

/// The stored-hash indexes [`consistency`] consumes, in the order it consumes them.
fn consistency_index(lo: u64, hi: u64, n: u64, need: &mut Vec<u64>) {
    assert!(lo < n && n <= hi, "tlog: bad math in consistency_index");
    if n == hi {
        if lo != 0 {
            sub_tree_index(lo, hi, need);
        }
        return;
    }
    let (k, _) = max_pow2_below(hi - lo);
    if n <= lo + k {
        consistency_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need);
    } else {
        sub_tree_index(lo, lo + k, need);
        consistency_index(lo + k, hi, n, need);
    }
}

/// RFC 9162 SUBPROOF(m, D[lo:hi], lo == 0), with `n` the old size: walks down
/// towards the old tree's right edge, pushing the hashes the verifier lacks.
fn consistency<'a>(
    lo: u64,
    hi: u64,
    n: u64,
    hashes: &'a [Hash],
    proof: &mut Vec<Hash>,
) -> &'a [Hash] {
    assert!(lo < n && n <= hi, "tlog: bad math in consistency");
    if n == hi {
        if lo == 0 {
            // This subtree is the whole old tree, whose root the verifier has.
            return hashes;
        }
        let (h, hashes) = sub_tree_hash(lo, hi, hashes);
        proof.push(h);
        return hashes;
    }
    let (k, _) = max_pow2_below(hi - lo);
    if n <= lo + k {
        let hashes = consistency(lo, lo + k, n, hashes, proof);
        let (right, hashes) = sub_tree_hash(lo + k, hi, hashes);
        proof.push(right);
        hashes
    } else {
        let (left, hashes) = sub_tree_hash(lo, lo + k, hashes);
        let hashes = consistency(lo + k, hi, n, hashes, proof);
        proof.push(left);
        hashes
    }
}

/// The number of hashes in an inclusion proof for leaf `index` of a tree of
/// `size` leaves (`index < size`): the depth of the leaf in the tree.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    // Levels below the point where the paths to `index` and to the last
    // leaf split are full; above it, only the ones where index is a left
    // child with a right sibling count — RFC 9162's "inner" and "border" parts.
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    // `inner` is 64 when the paths split at the top bit (size > 2^63).
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size`
/// leaves whose root is `root`, by RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let want = inclusion_proof_len(index, size);
    if proof.len() != want {
        return Err(VerifyError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    match root_from_inclusion(leaf, index, size, proof) {
        Some(computed) if computed == *root => Ok(()),
        _ => Err(VerifyError::RootMismatch),
    }
}

/// The root an inclusion proof leads to, or `None` if the proof does not fit
/// the tree shape (RFC 9162 §2.1.3.2 steps 2–5; `index < size` is checked by
/// the caller).
fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`, by RFC 9162
/// §2.1.4.2.
///
/// Equal sizes need an empty proof and equal roots. An old size of zero
/// needs an empty proof and the empty-tree hash as old root: every tree
/// extends the empty tree.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::OldSizeTooLarge {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(VerifyError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        if old_size == 0 {
            return match *old_root == super::hash::empty_tree_hash() {
                true => Ok(()),
                false => Err(VerifyError::BadEmptyTree),
            };
        }
        return match old_root == new_root {
            true => Ok(()),
            false => Err(VerifyError::RootMismatch),
        };
    }
    let want = consistency_proof_len(old_size, new_size);
    if proof.len() != want {
        return Err(VerifyError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    match roots_from_consistency(old_size, new_size, old_root, proof) {
        Some((old, new)) if old == *old_root && new == *new_root => Ok(()),
        _ => Err(VerifyError::RootMismatch),
    }
}

/// The number of hashes in a consistency proof from `old` to `new` leaves
/// (`0 < old < new`).
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    debug_assert!(0 < old && old < new);
    // The old tree's last leaf, walked up past the levels where it is the
    // right child of a complete subtree (those hashes the verifier derives
    // from the old root), then an inclusion-style path to the new root; plus
    // the old root's own starting hash unless the old tree is a perfect subtree.
    let shift = old.trailing_zeros();
    let start = if old.is_power_of_two() { 0 } else { 1 };
    let inner = u64::BITS - (((old - 1) >> shift) ^ ((new - 1) >> shift)).leading_zeros();
    // `inner` is 64 when the paths split at the top bit (new > 2^63).
    let border = ((old - 1) >> shift)
        .checked_shr(inner)
        .unwrap_or(0)
        .count_ones();
    (start + inner + border) as usize
}

/// The old and new roots a consistency proof leads to, or `None` if it does
/// not fit the tree shape (RFC 9162 §2.1.4.2 steps 2–7; `0 < old < new`).
fn roots_from_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    proof: &[Hash],
) -> Option<(Hash, Hash)> {
    let (first, rest) = if old.is_power_of_two() {
        (old_root, proof)
    } else {
        proof.split_first()?
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some((fr, sr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::hash::{leaf_hash, stored_hashes, tree_hash};

    /// Stored hashes of a tree whose records are the little-endian indexes.
    fn build(n: u64) -> Vec<Hash> {
        let mut stored = Vec::new();
        for i in 0..n {
            let new = stored_hashes(i, &i.to_le_bytes(), &stored).unwrap();
            stored.extend(new);
        }
        stored
    }

    #[test]
    fn every_inclusion_proof_verifies_and_has_the_predicted_length() {
        let stored = build(70);
        for size in 1..=70 {
            let root = tree_hash(size, &stored).unwrap();
            for index in 0..size {
                let proof = prove_inclusion(size, index, &stored).unwrap();
                assert_eq!(proof.len(), inclusion_proof_len(index, size));
                let leaf = leaf_hash(&index.to_le_bytes());
                verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_has_the_predicted_length() {
        let stored = build(70);
        for new in 1..=70 {
            let new_root = tree_hash(new, &stored).unwrap();
            for old in 1..=new {
                let old_root = tree_hash(old, &stored).unwrap();
                let proof = prove_consistency(old, new, &stored).unwrap();
                if old < new {
                    assert_eq!(proof.len(), consistency_proof_len(old, new), "{old}->{new}");
                }
                verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
            }
        }
    }

    #[test]
    fn extra_trailing_hash_is_rejected() {
        let stored = build(8);
        let root = tree_hash(8, &stored).unwrap();
        let mut proof = prove_inclusion(8, 3, &stored).unwrap();
        proof.push(Hash::default());
        let leaf = leaf_hash(&3u64.to_le_bytes());
        assert!(matches!(
            verify_inclusion(&leaf, 3, 8, &proof, &root),
            Err(VerifyError::WrongLength { got: 4, want: 3 })
        ));
    }

    #[test]
    fn invalid_requests_are_errors() {
        let stored = build(4);
        assert!(matches!(
            prove_inclusion(4, 4, &stored),
            Err(ProveError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            prove_consistency(0, 4, &stored),
            Err(ProveError::InvalidSizes { .. })
        ));
        assert!(matches!(
            prove_consistency(5, 4, &stored),
            Err(ProveError::InvalidSizes { .. })
        ));
        // Asking beyond what storage holds is a read error, not a panic.
        assert!(matches!(
            prove_inclusion(9, 0, &stored),
            Err(ProveError::Read(_))
        ));
    }
}
