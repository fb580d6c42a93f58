//! Integration tests of the RFC 6962 / RFC 9162 Merkle core (`tlog::hash`,
//! `tlog::proof`):
//!
//! - every JSON vector under `tests/data/merkle/` (transparency-dev/merkle
//!   testdata, see `tests/data/README.md`), with `wantErr` matched exactly;
//! - the known answers of the 8-leaf reference tree (roots of sizes 0..=8);
//! - differential property tests against `rs_merkle` (roots and single-leaf
//!   inclusion proofs);
//! - exhaustive comparison with a brute-force reference written directly
//!   from RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (SUBPROOF);
//! - tamper tests: every single-bit change, every ±1 change of a size or
//!   index, every dropped, appended or duplicated hash.
//!
//! The reference and the rs_merkle hasher hash with `sha2` directly, never
//! with the code under test.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use modeltrail::tlog::hash::{
    Hash, empty_tree_hash, leaf_hash, node_hash, stored_hash_count, stored_hashes, tree_hash,
};
use modeltrail::tlog::proof::{
    prove_consistency, prove_inclusion, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Stored hashes of a tree whose records are `data`, appended one by one.
fn build(data: &[Vec<u8>]) -> Vec<Hash> {
    let mut stored = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let new = stored_hashes(i as u64, d, &stored).expect("append");
        stored.extend(new);
    }
    assert_eq!(stored.len() as u64, stored_hash_count(data.len() as u64));
    stored
}

/// Record `i` of the synthetic trees: its little-endian index.
fn record(i: u64) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

/// Stored hashes of the synthetic tree of `n` records.
fn build_n(n: u64) -> Vec<Hash> {
    build(&(0..n).map(record).collect::<Vec<_>>())
}

/// The synthetic tree of 4096 records, built once. The stored hashes of a
/// prefix of a log are a prefix of its stored hashes, so every smaller tree
/// is read from this one.
fn big_tree() -> &'static [Hash] {
    static TREE: OnceLock<Vec<Hash>> = OnceLock::new();
    TREE.get_or_init(|| build_n(4096))
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash(h.finalize().into())
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut out = *h;
    out.0[bit / 8] ^= 1 << (bit % 8);
    out
}

// ---------------------------------------------------------------------------
// Test vectors
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

/// Decodes a base64 field as a 32-byte hash, independently of the code under
/// test, and checks that `Hash::from_base64` agrees.
fn parse_hash(field: &str) -> Option<Hash> {
    let ours = Hash::from_base64(field).ok();
    let independent = BASE64
        .decode(field)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .map(Hash);
    assert_eq!(
        ours, independent,
        "Hash::from_base64 disagrees on {field:?}"
    );
    independent
}

fn parse_proof(proof: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    proof
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| parse_hash(s))
        .collect()
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// The 8-leaf reference tree of `tests/data/README.md`.
const REFERENCE_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const REFERENCE_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn reference_tree() -> Vec<Hash> {
    build(
        &REFERENCE_LEAVES
            .iter()
            .map(|h| unhex(h))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn json_vectors() {
    let mut files = Vec::new();
    json_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/merkle"),
        &mut files,
    );
    files.sort();
    assert!(files.len() >= 12, "found only {} vectors", files.len());

    let reference = reference_tree();
    let (mut inclusion, mut consistency, mut generated) = (0, 0, 0);
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read vector");
        let name = path.display();
        let kind = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .find(|c| c == "inclusion" || c == "consistency")
            .unwrap_or_else(|| panic!("{name}: neither inclusion nor consistency"));
        if kind == "inclusion" {
            inclusion += 1;
            let v: InclusionVector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let parsed = (
                parse_hash(&v.leaf_hash),
                parse_hash(&v.root),
                parse_proof(&v.proof),
            );
            let rejected = match &parsed {
                (Some(leaf), Some(root), Some(proof)) => {
                    verify_inclusion(leaf, v.leaf_idx, v.tree_size, proof, root).is_err()
                }
                _ => true,
            };
            assert_eq!(
                rejected, v.want_err,
                "{name} ({}): rejected={rejected}",
                v.desc
            );
            // A valid proof against the reference tree is exactly what we generate.
            if let (false, Some(root), Some(proof)) = (v.want_err, parsed.1, parsed.2)
                && v.tree_size <= 8
                && root == tree_hash(v.tree_size, &reference).unwrap()
            {
                let ours = prove_inclusion(v.tree_size, v.leaf_idx, &reference).unwrap();
                assert_eq!(ours, proof, "{name}: generated proof differs");
                generated += 1;
            }
        } else {
            consistency += 1;
            let v: ConsistencyVector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let parsed = (
                parse_hash(&v.root1),
                parse_hash(&v.root2),
                parse_proof(&v.proof),
            );
            let rejected = match &parsed {
                (Some(r1), Some(r2), Some(proof)) => {
                    verify_consistency(v.size1, v.size2, r1, r2, proof).is_err()
                }
                _ => true,
            };
            assert_eq!(
                rejected, v.want_err,
                "{name} ({}): rejected={rejected}",
                v.desc
            );
            if let (false, Some(r1), Some(r2), Some(proof)) =
                (v.want_err, parsed.0, parsed.1, parsed.2)
                && v.size1 > 0
                && v.size2 <= 8
                && r1 == tree_hash(v.size1, &reference).unwrap()
                && r2 == tree_hash(v.size2, &reference).unwrap()
            {
                let ours = prove_consistency(v.size1, v.size2, &reference).unwrap();
                assert_eq!(ours, proof, "{name}: generated proof differs");
                generated += 1;
            }
        }
    }
    assert!(inclusion > 0 && consistency > 0);
    assert!(generated >= 2, "happy paths were not regenerated");
}

// ---------------------------------------------------------------------------
// Known answers
// ---------------------------------------------------------------------------

#[test]
fn reference_tree_roots() {
    let stored = reference_tree();
    for (size, want) in REFERENCE_ROOTS.iter().enumerate() {
        let got = tree_hash(size as u64, &stored).unwrap();
        assert_eq!(got.to_hex(), *want, "root of size {size}");
        // And the same tree grown only to this size gives the same root.
        let prefix = build(
            &REFERENCE_LEAVES[..size]
                .iter()
                .map(|h| unhex(h))
                .collect::<Vec<_>>(),
        );
        assert_eq!(tree_hash(size as u64, &prefix).unwrap(), got);
        assert_eq!(prefix[..], stored[..prefix.len()], "stored prefix {size}");
    }
    assert_eq!(empty_tree_hash().to_hex(), REFERENCE_ROOTS[0]);
    assert_eq!(leaf_hash(b"").to_hex(), REFERENCE_ROOTS[1]);
    let (a, b) = (leaf_hash(b""), leaf_hash(&[0]));
    assert_eq!(node_hash(&a, &b).to_hex(), REFERENCE_ROOTS[2]);
}

// ---------------------------------------------------------------------------
// Brute-force reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1
// ---------------------------------------------------------------------------

/// The RFC's definitions over a list of leaf hashes, taken literally. MTH is
/// memoised only so that the exhaustive tests stay fast in debug builds.
struct Reference {
    /// MTH({d(i)}) = SHA-256(0x00 || d(i)).
    leaves: Vec<Hash>,
    memo: RefCell<HashMap<(usize, usize), Hash>>,
}

/// Which side of the path an inclusion-proof hash sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// How the RFC verifier uses each consistency-proof hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// The old root itself starts both folds (no proof hash).
    OldRootSeed,
    /// A proof hash starts both folds.
    Seed,
    /// A left sibling: part of both the old and the new root.
    LeftBoth,
    /// A right sibling: part of the new root only.
    RightNew,
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

impl Reference {
    fn new(n: u64) -> Reference {
        Reference {
            leaves: (0..n).map(|i| sha256(&[&[0x00], &record(i)])).collect(),
            memo: RefCell::default(),
        }
    }

    /// MTH(D[lo:hi]).
    fn mth(&self, lo: usize, hi: usize) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return sha256(&[]);
        }
        if n == 1 {
            return self.leaves[lo];
        }
        if let Some(h) = self.memo.borrow().get(&(lo, hi)) {
            return *h;
        }
        let k = split(n);
        let h = sha256(&[&[0x01], &self.mth(lo, lo + k).0, &self.mth(lo + k, hi).0]);
        self.memo.borrow_mut().insert((lo, hi), h);
        h
    }

    /// PATH(m, D[lo:hi]) (§2.1.3.1), with the side of each hash.
    fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<(Hash, Side)> {
        let n = hi - lo;
        assert!(m < n);
        if n == 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = self.path(m, lo, lo + k);
            p.push((self.mth(lo + k, hi), Side::Right));
            p
        } else {
            let mut p = self.path(m - k, lo + k, hi);
            p.push((self.mth(lo, lo + k), Side::Left));
            p
        }
    }

    /// SUBPROOF(m, D[lo:hi], b) (§2.1.4.1), with how the verifier uses each hash.
    fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<(Option<Hash>, Use)> {
        let n = hi - lo;
        assert!(0 < m && m <= n);
        if m == n {
            return if b {
                vec![(None, Use::OldRootSeed)]
            } else {
                vec![(Some(self.mth(lo, hi)), Use::Seed)]
            };
        }
        let k = split(n);
        if m <= k {
            let mut p = self.subproof(m, lo, lo + k, b);
            p.push((Some(self.mth(lo + k, hi)), Use::RightNew));
            p
        } else {
            let mut p = self.subproof(m - k, lo + k, hi, false);
            p.push((Some(self.mth(lo, lo + k)), Use::LeftBoth));
            p
        }
    }

    fn inclusion_proof(&self, m: u64, n: u64) -> Vec<Hash> {
        self.path(m as usize, 0, n as usize)
            .into_iter()
            .map(|(h, _)| h)
            .collect()
    }

    /// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
    fn consistency_proof(&self, m: u64, n: u64) -> Vec<Hash> {
        self.subproof(m as usize, 0, n as usize, true)
            .into_iter()
            .filter_map(|(h, _)| h)
            .collect()
    }
}

/// The shape of the computation an RFC 9162 inclusion verifier performs for
/// `(index, size)`: two parameter sets with the same shape verify the same
/// proofs against the same roots.
fn inclusion_shape(index: u64, size: u64) -> Vec<Side> {
    fn go(m: u64, n: u64, out: &mut Vec<Side>) {
        if n == 1 {
            return;
        }
        let k = split(n as usize) as u64;
        if m < k {
            go(m, k, out);
            out.push(Side::Right);
        } else {
            go(m - k, n - k, out);
            out.push(Side::Left);
        }
    }
    let mut out = Vec::new();
    go(index, size, &mut out);
    out
}

/// The shape of the computation an RFC 9162 consistency verifier performs
/// for `(old, new)` with `0 < old < new`.
fn consistency_shape(old: u64, new: u64) -> Vec<Use> {
    fn go(m: u64, n: u64, b: bool, out: &mut Vec<Use>) {
        if m == n {
            out.push(if b { Use::OldRootSeed } else { Use::Seed });
            return;
        }
        let k = split(n as usize) as u64;
        if m <= k {
            go(m, k, b, out);
            out.push(Use::RightNew);
        } else {
            go(m - k, n - k, false, out);
            out.push(Use::LeftBoth);
        }
    }
    let mut out = Vec::new();
    go(old, new, true, &mut out);
    out
}

/// Exhaustive bound for the reference comparisons.
const EXHAUSTIVE: u64 = 200;

#[test]
fn inclusion_proofs_equal_rfc_path_exhaustively() {
    let reference = Reference::new(EXHAUSTIVE);
    let stored = big_tree();
    let mut count = 0;
    for size in 1..=EXHAUSTIVE {
        let root = tree_hash(size, &stored).unwrap();
        assert_eq!(root, reference.mth(0, size as usize), "root of size {size}");
        for index in 0..size {
            let proof = prove_inclusion(size, index, &stored).unwrap();
            assert_eq!(
                proof,
                reference.inclusion_proof(index, size),
                "PATH({index}, D[{size}])"
            );
            verify_inclusion(
                &reference.leaves[index as usize],
                index,
                size,
                &proof,
                &root,
            )
            .unwrap_or_else(|e| panic!("({index}, {size}): {e}"));
            count += 1;
        }
    }
    assert_eq!(count, EXHAUSTIVE * (EXHAUSTIVE + 1) / 2);
}

#[test]
fn consistency_proofs_equal_rfc_subproof_exhaustively() {
    let reference = Reference::new(EXHAUSTIVE);
    let stored = big_tree();
    let roots: Vec<Hash> = (0..=EXHAUSTIVE)
        .map(|n| tree_hash(n, &stored).unwrap())
        .collect();
    let mut count = 0;
    for new in 1..=EXHAUSTIVE {
        for old in 1..=new {
            let proof = prove_consistency(old, new, &stored).unwrap();
            assert_eq!(
                proof,
                reference.consistency_proof(old, new),
                "PROOF({old}, D[{new}])"
            );
            verify_consistency(old, new, &roots[old as usize], &roots[new as usize], &proof)
                .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
            count += 1;
        }
    }
    assert_eq!(count, EXHAUSTIVE * (EXHAUSTIVE + 1) / 2);
}

// ---------------------------------------------------------------------------
// Differential tests against rs_merkle
// ---------------------------------------------------------------------------

/// rs_merkle with RFC 6962 node hashing. rs_merkle never hashes leaves
/// itself (`from_leaves` takes leaf hashes); `hash` is only called by the
/// default `concat_and_hash` on `left || right`, and an unpaired last node
/// is promoted unchanged, which is exactly RFC 6962's unbalanced split.
#[derive(Clone)]
struct Rfc6962Nodes;

impl rs_merkle::Hasher for Rfc6962Nodes {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        assert_eq!(
            data.len(),
            64,
            "rs_merkle hashed something other than a pair"
        );
        sha256(&[&[0x01], data]).0
    }
}

fn rs_tree(size: u64) -> rs_merkle::MerkleTree<Rfc6962Nodes> {
    let leaves: Vec<[u8; 32]> = (0..size)
        .map(|i| sha256(&[&[0x00], &record(i)]).0)
        .collect();
    rs_merkle::MerkleTree::from_leaves(&leaves)
}

fn check_against_rs_merkle(size: u64, indexes: &[u64]) -> Result<(), TestCaseError> {
    let stored = big_tree();
    let tree = rs_tree(size);
    let root = tree_hash(size, &stored).unwrap();
    prop_assert_eq!(Some(root.0), tree.root(), "root of size {}", size);
    for &index in indexes {
        let ours = prove_inclusion(size, index, &stored).unwrap();
        let theirs: Vec<Hash> = tree
            .proof(&[index as usize])
            .proof_hashes()
            .iter()
            .map(|h| Hash(*h))
            .collect();
        prop_assert_eq!(&ours, &theirs, "proof of {} in {}", index, size);
        let leaf = leaf_hash(&record(index));
        prop_assert!(verify_inclusion(&leaf, index, size, &ours, &root).is_ok());
        prop_assert!(verify_inclusion(&leaf, index, size, &theirs, &root).is_ok());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn roots_and_inclusion_proofs_agree_with_rs_merkle(
        size in 1u64..=4096,
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
    ) {
        let mut indexes: Vec<u64> = picks.iter().map(|p| p.index(size as usize) as u64).collect();
        indexes.extend([0, size - 1]);
        check_against_rs_merkle(size, &indexes)?;
    }
}

#[test]
fn rs_merkle_agrees_around_powers_of_two() {
    for level in 0..=12 {
        let p = 1u64 << level;
        for size in [p - 1, p, p + 1] {
            if size == 0 || size > 4096 {
                continue;
            }
            let indexes: Vec<u64> = [0, 1, size / 2, size.saturating_sub(2), size - 1]
                .into_iter()
                .filter(|&i| i < size)
                .collect();
            check_against_rs_merkle(size, &indexes).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Tamper tests
// ---------------------------------------------------------------------------

fn inclusion_cases() -> Vec<(u64, u64)> {
    let mut cases = Vec::new();
    for size in [
        1u64, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 64, 100, 127, 128, 129, 200,
    ] {
        for index in [0, 1, 2, size / 2, size.saturating_sub(2), size - 1] {
            if index < size && !cases.contains(&(index, size)) {
                cases.push((index, size));
            }
        }
    }
    cases
}

fn consistency_cases() -> Vec<(u64, u64)> {
    vec![
        (1, 1),
        (5, 5),
        (1, 2),
        (1, 8),
        (2, 3),
        (3, 7),
        (4, 8),
        (6, 8),
        (7, 8),
        (5, 17),
        (16, 17),
        (15, 16),
        (63, 64),
        (64, 65),
        (33, 97),
        (100, 200),
        (127, 129),
        (128, 200),
        (199, 200),
    ]
}

/// Every way of changing the length of a proof by one hash.
fn length_tampers(proof: &[Hash]) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        let mut dropped = proof.to_vec();
        dropped.remove(i);
        out.push(dropped);
        let mut duplicated = proof.to_vec();
        duplicated.insert(i, proof[i]);
        out.push(duplicated);
    }
    for extra in [Hash::default(), leaf_hash(b"extra"), empty_tree_hash()] {
        let mut appended = proof.to_vec();
        appended.push(extra);
        out.push(appended);
        let mut prepended = proof.to_vec();
        prepended.insert(0, extra);
        out.push(prepended);
    }
    out
}

#[test]
fn tampered_inclusion_proofs_fail() {
    let stored = big_tree();
    let mut checks = 0u64;
    for (index, size) in inclusion_cases() {
        let root = tree_hash(size, &stored).unwrap();
        let leaf = leaf_hash(&record(index));
        let proof = prove_inclusion(size, index, &stored).unwrap();
        let ok = |leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash| {
            verify_inclusion(leaf, index, size, proof, root).is_ok()
        };
        assert!(ok(&leaf, index, size, &proof, &root));
        let ctx = format!("index {index} size {size}");

        for bit in 0..256 {
            assert!(
                !ok(&flip(&leaf, bit), index, size, &proof, &root),
                "{ctx}: leaf bit {bit}"
            );
            assert!(
                !ok(&leaf, index, size, &proof, &flip(&root, bit)),
                "{ctx}: root bit {bit}"
            );
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], bit);
                assert!(
                    !ok(&leaf, index, size, &bad, &root),
                    "{ctx}: hash {i} bit {bit}"
                );
            }
            checks += 2 + proof.len() as u64;
        }
        for bad in length_tampers(&proof) {
            assert!(
                !ok(&leaf, index, size, &bad, &root),
                "{ctx}: {} hashes",
                bad.len()
            );
            checks += 1;
        }
        // Another index always fails: the side pattern of a path determines
        // the leaf. Another size fails unless its path has the same shape
        // (e.g. leaf 0 of sizes 3 and 4): RFC 9162 verification cannot tell
        // those apart, because the root does not commit to the size.
        for (i2, s2) in [
            (index.wrapping_sub(1), size),
            (index + 1, size),
            (index, size - 1),
            (index, size + 1),
        ] {
            let valid_params = i2 < s2;
            let same_shape =
                valid_params && inclusion_shape(i2, s2) == inclusion_shape(index, size);
            assert_eq!(
                ok(&leaf, i2, s2, &proof, &root),
                same_shape,
                "{ctx}: verified as index {i2} size {s2}"
            );
            if i2 != index {
                assert!(!same_shape, "{ctx}: index {i2} has the same shape");
            }
            checks += 1;
        }
    }
    assert!(checks > 100_000, "{checks}");
}

#[test]
fn tampered_consistency_proofs_fail() {
    let stored = big_tree();
    let mut checks = 0u64;
    for (old, new) in consistency_cases() {
        let old_root = tree_hash(old, &stored).unwrap();
        let new_root = tree_hash(new, &stored).unwrap();
        let proof = prove_consistency(old, new, &stored).unwrap();
        let ok = |old: u64, new: u64, r1: &Hash, r2: &Hash, proof: &[Hash]| {
            verify_consistency(old, new, r1, r2, proof).is_ok()
        };
        assert!(ok(old, new, &old_root, &new_root, &proof));
        let ctx = format!("{old} -> {new}");

        for bit in 0..256 {
            let (r1, r2) = (flip(&old_root, bit), flip(&new_root, bit));
            assert!(
                !ok(old, new, &r1, &new_root, &proof),
                "{ctx}: old root bit {bit}"
            );
            assert!(
                !ok(old, new, &old_root, &r2, &proof),
                "{ctx}: new root bit {bit}"
            );
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], bit);
                assert!(
                    !ok(old, new, &old_root, &new_root, &bad),
                    "{ctx}: hash {i} bit {bit}"
                );
            }
            checks += 2 + proof.len() as u64;
        }
        for bad in length_tampers(&proof) {
            assert!(
                !ok(old, new, &old_root, &new_root, &bad),
                "{ctx}: {} hashes",
                bad.len()
            );
            checks += 1;
        }
        // Roots swapped.
        if old != new {
            assert!(
                !ok(old, new, &new_root, &old_root, &proof),
                "{ctx}: swapped roots"
            );
        }
        // Sizes changed by one: fails unless the RFC verifier's computation
        // for the new sizes has exactly the same shape (only possible for a
        // changed new size, as with inclusion proofs).
        for (o2, n2) in [
            (old - 1, new),
            (old + 1, new),
            (old, new - 1),
            (old, new + 1),
        ] {
            let passes = ok(o2, n2, &old_root, &new_root, &proof);
            let same_shape = 0 < o2
                && o2 < n2
                && old < new
                && consistency_shape(o2, n2) == consistency_shape(old, new);
            assert_eq!(passes, same_shape, "{ctx}: verified as {o2} -> {n2}");
            if o2 != old {
                assert!(!same_shape, "{ctx}: {o2} -> {n2} has the same shape");
            }
            checks += 1;
        }
    }
    assert!(checks > 20_000, "{checks}");
}

#[test]
fn invalid_parameters_fail() {
    let stored = big_tree();
    let leaf = leaf_hash(&record(0));
    for size in [0u64, 1, 2, 8, 100] {
        let root = tree_hash(size, &stored).unwrap();
        // index >= size, with every plausible proof length.
        for index in [size, size + 1, u64::MAX] {
            for len in 0..4 {
                let proof = vec![leaf; len];
                assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_err());
            }
            assert!(prove_inclusion(size, index, &stored).is_err());
        }
    }

    let roots: Vec<Hash> = (0..=16).map(|n| tree_hash(n, &stored).unwrap()).collect();
    let some = vec![leaf_hash(b"x")];
    // old > new.
    for (old, new) in [(2u64, 1u64), (8, 7), (16, 0), (u64::MAX, 3)] {
        let r1 = roots[old.min(16) as usize];
        let r2 = roots[new as usize];
        assert!(verify_consistency(old, new, &r1, &r2, &[]).is_err());
        assert!(verify_consistency(old, new, &r1, &r2, &some).is_err());
        assert!(prove_consistency(old, new, &stored).is_err());
    }
    for n in 0..=16usize {
        // old == new: an empty proof and equal roots, nothing else.
        assert!(verify_consistency(n as u64, n as u64, &roots[n], &roots[n], &[]).is_ok());
        assert!(verify_consistency(n as u64, n as u64, &roots[n], &roots[n], &some).is_err());
        if n > 0 {
            let other = roots[n - 1];
            assert!(verify_consistency(n as u64, n as u64, &roots[n], &other, &[]).is_err());
            assert!(verify_consistency(n as u64, n as u64, &other, &roots[n], &[]).is_err());
        }
        // old == 0: the empty tree, an empty proof.
        assert!(verify_consistency(0, n as u64, &roots[0], &roots[n], &[]).is_ok());
        assert!(verify_consistency(0, n as u64, &roots[0], &roots[n], &some).is_err());
        assert!(verify_consistency(0, n as u64, &Hash::default(), &roots[n], &[]).is_err());
        // 0 < old < new: never an empty proof.
        for old in 1..n {
            assert!(verify_consistency(old as u64, n as u64, &roots[old], &roots[n], &[]).is_err());
        }
    }
    assert!(prove_consistency(0, 0, &stored).is_err());
    assert!(prove_consistency(0, 5, &stored).is_err());
}
