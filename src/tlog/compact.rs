//! The RFC 6962 §2.1 Merkle tree hash of a stream of leaves in O(log n)
//! memory: the hashes of the perfect subtrees the leaves so far decompose
//! into (a "compact range" from 0), largest first.
//!
//! An auditor reading a whole log folds every entry's leaf hash in and
//! compares [`TreeHasher::root`] with the checkpoint's root: this
//! authenticates every entry without reading any hash tile.

use super::hash::{Hash, empty_tree_hash, leaf_hash, node_hash};

/// Accumulates leaf hashes and answers the tree hash of those seen so far.
#[derive(Debug, Clone, Default)]
pub struct TreeHasher {
    /// The perfect subtrees' roots, largest (leftmost) first; subtree `i`
    /// has `2^k` leaves, where `k` is the position of the `i`-th set bit of
    /// `size` from the top.
    stack: Vec<Hash>,
    size: u64,
}

impl TreeHasher {
    /// An empty tree.
    pub fn new() -> TreeHasher {
        TreeHasher::default()
    }

    /// The number of leaves added.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the leaf with data `entry`.
    pub fn push_entry(&mut self, entry: &[u8]) {
        self.push(leaf_hash(entry));
    }

    /// Adds a leaf by its hash (`SHA-256(0x00 || entry)`).
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        // Each trailing one bit of the old size is a subtree of the same
        // height as the running hash: merge them, right to left.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.stack.pop().expect("tlog: bad math in TreeHasher");
            h = node_hash(&left, &h);
            size >>= 1;
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// The tree hash of the leaves added so far: the subtree roots folded
    /// right to left (RFC 6962 §2.1 splits at the largest power of two).
    pub fn root(&self) -> Hash {
        let Some((last, rest)) = self.stack.split_last() else {
            return empty_tree_hash();
        };
        rest.iter().rev().fold(*last, |h, left| node_hash(left, &h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::hash::{stored_hashes, tree_hash};

    #[test]
    fn matches_the_stored_hash_tree_hash() {
        let mut stored = Vec::new();
        let mut hasher = TreeHasher::new();
        assert_eq!(hasher.root(), empty_tree_hash());
        for i in 0..300u64 {
            let entry = format!("entry {i}").into_bytes();
            stored.extend(stored_hashes(i, &entry, &stored).unwrap());
            hasher.push_entry(&entry);
            assert_eq!(hasher.size(), i + 1);
            assert_eq!(
                hasher.root(),
                tree_hash(i + 1, &stored).unwrap(),
                "size {}",
                i + 1
            );
        }
    }

    #[test]
    fn order_matters() {
        let mut a = TreeHasher::new();
        let mut b = TreeHasher::new();
        a.push_entry(b"x");
        a.push_entry(b"y");
        b.push_entry(b"y");
        b.push_entry(b"x");
        assert_ne!(a.root(), b.root());
    }
}
