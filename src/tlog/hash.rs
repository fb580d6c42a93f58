//! RFC 6962 §2.1 / RFC 9162 §2.1.1 Merkle tree hashing with SHA-256, and the
//! "stored hash" layout of Go's `golang.org/x/mod/sumdb/tlog`.
//!
//! The tree over records `d[0..n)` is
//!
//! ```text
//! MTH({})      = SHA-256()                     (the empty tree; NOT all zeros as in Go)
//! MTH({d0})    = SHA-256(0x00 || d0)           (a leaf)
//! MTH(D[0:n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
//!                where k is the largest power of two smaller than n.
//! ```
//!
//! A log never holds the tree in memory. It stores, for every complete
//! subtree, its hash once, in a single append-only sequence: when record `n`
//! is appended, its leaf hash is stored, followed by the hash of every
//! complete subtree that record completes. The hash of the complete subtree at
//! level `L` covering records `[n·2^L, (n+1)·2^L)` lives at
//! [`stored_hash_index`]`(L, n)`. Every other hash (the root of any tree
//! size, the nodes of any proof) is computed from O(log n) stored hashes read
//! through a [`HashReader`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// Size in bytes of a [`struct@Hash`].
pub const HASH_SIZE: usize = 32;

/// A SHA-256 Merkle tree hash: a leaf hash, an interior node hash or a root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

/// Why a string or byte slice is not a [`struct@Hash`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// The text is not standard (padded) base64.
    #[error("hash is not valid base64")]
    Base64,
    /// The decoded value is not exactly 32 bytes.
    #[error("hash has {0} bytes, want 32")]
    Length(usize),
}

impl Hash {
    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashParseError> {
        <[u8; HASH_SIZE]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashParseError::Length(bytes.len()))
    }

    /// Parses the standard, padded base64 form used by checkpoints and proofs.
    pub fn from_base64(text: &str) -> Result<Hash, HashParseError> {
        // 32 bytes encode to 44 characters; refuse anything longer before decoding.
        if text.len() != 44 {
            return match BASE64.decode(text) {
                Ok(bytes) => Err(HashParseError::Length(bytes.len())),
                Err(_) => Err(HashParseError::Base64),
            };
        }
        let bytes = BASE64.decode(text).map_err(|_| HashParseError::Base64)?;
        Hash::from_slice(&bytes)
    }

    /// The standard, padded base64 form.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Lowercase hexadecimal, for logs and error messages.
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The hash of the empty tree, `SHA-256()` (RFC 6962 §2.1, C2SP tlog-checkpoint).
pub fn empty_tree_hash() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The leaf hash of a record: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    Hash(h.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous buffer and one digest call: measurably faster than
    // three `update`s on this hot path (every proof step is a node hash).
    let mut input = [0u8; 1 + 2 * HASH_SIZE];
    input[0] = 0x01;
    input[1..1 + HASH_SIZE].copy_from_slice(&left.0);
    input[1 + HASH_SIZE..].copy_from_slice(&right.0);
    Hash(Sha256::digest(input).into())
}

/// A failure to read stored hashes: the storage's own error, kept opaque so
/// that the pure core does not depend on any storage backend.
#[derive(Debug, thiserror::Error)]
#[error("reading stored hashes: {0}")]
pub struct ReadError(pub Box<dyn std::error::Error + Send + Sync>);

impl ReadError {
    /// Wraps any error (or message) as a read failure.
    pub fn new(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ReadError {
        ReadError(err.into())
    }
}

/// Read access to the stored hashes of a tree.
///
/// Callers ask for all the hashes one operation needs in a single call (the
/// "two passes" of Go's tlog: compute indexes, read once, then do the math),
/// so a backend can batch its I/O.
pub trait HashReader {
    /// Returns the hashes at the given stored-hash indexes, in the same order.
    /// An implementation must return exactly `indexes.len()` hashes or an error.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError>;
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        (**self).read_hashes(indexes)
    }
}

/// A whole sequence of stored hashes in memory: for tests, benchmarks and
/// small tools. A log never holds this; it reads tiles instead.
impl HashReader for [Hash] {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.get(i).copied())
                    .ok_or_else(|| ReadError::new(format!("stored hash {i} is not in memory")))
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        self.as_slice().read_hashes(indexes)
    }
}

/// Reads `indexes` and checks that the reader honoured the trait's contract.
pub(crate) fn read_exact(r: &impl HashReader, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
    let hashes = r.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(ReadError::new(format!(
            "hash reader returned {} hashes for {} indexes",
            hashes.len(),
            indexes.len()
        )));
    }
    Ok(hashes)
}

/// The index in the stored-hash sequence of the hash of the complete subtree
/// at `level` whose leftmost record is `n << level`.
///
/// Level `L`'s `n`th hash is stored right after level `L-1`'s `(2n+1)`th
/// hash, and level 0's `n`th hash is stored at `n + n/2 + n/4 + …` (each
/// earlier record `i` contributed itself plus one hash per trailing one bit
/// of `i+1`).
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut index = 0;
    while n > 0 {
        index += n;
        n >>= 1;
    }
    index + u64::from(level)
}

/// The inverse of [`stored_hash_index`]: which `(level, n)` is stored at `index`.
pub fn split_stored_hash_index(index: u64) -> (u8, u64) {
    // stored_hash_index(0, n) lies in [n, 2n), so the record whose hashes
    // include `index` is in [index/2, index/2 + log2(index)].
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    assert!(
        index_n <= index,
        "tlog: bad math in split_stored_hash_index"
    );
    loop {
        // Record n contributes 1 + trailing_zeros(n+1) hashes.
        let next = index_n + 1 + u64::from((n + 1).trailing_zeros());
        if next > index {
            break;
        }
        n += 1;
        index_n = next;
    }
    let level = (index - index_n) as u8;
    (level, n >> level)
}

/// How many hashes a tree of `n` records stores.
pub fn stored_hash_count(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Up to and including the last leaf hash, then one hash for every
    // subtree that the last record completes.
    stored_hash_index(0, n - 1) + 1 + u64::from((n - 1).trailing_ones())
}

/// The hashes to append to storage when record `n` (0-based) with `data` is
/// added to a tree of `n` records: its leaf hash, then the hash of every
/// subtree it completes. Reads O(log n) stored hashes; ~2 hashes per append
/// amortised.
pub fn stored_hashes(n: u64, data: &[u8], r: &impl HashReader) -> Result<Vec<Hash>, ReadError> {
    stored_hashes_for_record_hash(n, leaf_hash(data), r)
}

/// Like [`stored_hashes`] for a record whose leaf hash is already known.
pub fn stored_hashes_for_record_hash(
    n: u64,
    leaf: Hash,
    r: &impl HashReader,
) -> Result<Vec<Hash>, ReadError> {
    // Each trailing one bit of n completes a subtree whose left sibling is
    // already stored; read those siblings, nearest (lowest level) last.
    let completed = (n + 1).trailing_zeros() as u8;
    let indexes: Vec<u64> = (0..completed)
        .rev()
        .map(|level| stored_hash_index(level, (n >> level) - 1))
        .collect();
    let siblings = read_exact(r, &indexes)?;
    let mut hashes = Vec::with_capacity(usize::from(completed) + 1);
    let mut h = leaf;
    hashes.push(h);
    for sibling in siblings.iter().rev() {
        h = node_hash(sibling, &h);
        hashes.push(h);
    }
    Ok(hashes)
}

/// `(k, log2 k)` for the largest power of two `k` strictly less than `n` (n ≥ 2).
pub(crate) fn max_pow2_below(n: u64) -> (u64, u8) {
    debug_assert!(n >= 2);
    let level = (63 - (n - 1).leading_zeros()) as u8;
    (1 << level, level)
}

/// Appends to `need` the stored-hash indexes of the complete subtrees that
/// make up records `[lo, hi)`, largest (leftmost) first. `lo` must be aligned
/// to the first subtree's size, which holds wherever this is used: `[lo, hi)`
/// is always a right fringe of an RFC 6962 split.
pub(crate) fn sub_tree_index(mut lo: u64, hi: u64, need: &mut Vec<u64>) {
    while lo < hi {
        let (k, level) = max_pow2_below(hi - lo + 1);
        assert!(lo & (k - 1) == 0, "tlog: bad math in sub_tree_index");
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// Consumes from `hashes` the subtree hashes [`sub_tree_index`] asked for
/// `[lo, hi)` and folds them into that range's Merkle tree hash.
pub(crate) fn sub_tree_hash(mut lo: u64, hi: u64, hashes: &[Hash]) -> (Hash, &[Hash]) {
    let mut count = 0;
    while lo < hi {
        let (k, _) = max_pow2_below(hi - lo + 1);
        lo += k;
        count += 1;
    }
    assert!(
        count > 0 && hashes.len() >= count,
        "tlog: bad index math in sub_tree_hash"
    );
    let (mine, rest) = hashes.split_at(count);
    let mut h = mine[count - 1];
    for left in mine[..count - 1].iter().rev() {
        h = node_hash(left, &h);
    }
    (h, rest)
}

/// The Merkle tree hash of the first `n` records, from O(log n) stored hashes.
pub fn tree_hash(n: u64, r: &impl HashReader) -> Result<Hash, ReadError> {
    if n == 0 {
        return Ok(empty_tree_hash());
    }
    let mut indexes = Vec::with_capacity(64);
    sub_tree_index(0, n, &mut indexes);
    let hashes = read_exact(r, &indexes)?;
    let (h, rest) = sub_tree_hash(0, n, &hashes);
    assert!(rest.is_empty(), "tlog: bad index math in tree_hash");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hash_index_round_trips() {
        for index in 0..10_000 {
            let (level, n) = split_stored_hash_index(index);
            assert_eq!(stored_hash_index(level, n), index, "index {index}");
        }
    }

    #[test]
    fn stored_hash_count_matches_appends() {
        let mut count = 0;
        for n in 0..2_000u64 {
            assert_eq!(stored_hash_count(n), count, "n={n}");
            count += 1 + u64::from((n + 1).trailing_zeros());
        }
    }

    #[test]
    fn max_pow2_below_is_strict() {
        assert_eq!(max_pow2_below(2), (1, 0));
        assert_eq!(max_pow2_below(3), (2, 1));
        assert_eq!(max_pow2_below(4), (2, 1));
        assert_eq!(max_pow2_below(5), (4, 2));
        assert_eq!(max_pow2_below(u64::MAX), (1 << 63, 63));
    }

    #[test]
    fn base64_parsing_rejects_wrong_lengths() {
        assert_eq!(Hash::from_base64(""), Err(HashParseError::Length(0)));
        assert_eq!(
            Hash::from_base64("V3JvbmdMZWFm"),
            Err(HashParseError::Length(9))
        );
        assert_eq!(Hash::from_base64("!!!"), Err(HashParseError::Base64));
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
    }
}
