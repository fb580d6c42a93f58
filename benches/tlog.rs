//! Benchmarks of the Merkle core (`tlog::hash`, `tlog::proof`) over
//! in-memory stored hashes of trees of 10^3 … 10^7 records.
//!
//! Run with `cargo bench --bench tlog`. The stored hashes of the 10^7-record
//! tree (~20M hashes, ~640 MB) are built once; the smaller trees are
//! prefixes of it (the stored hashes of a prefix of a log are a prefix of its
//! stored hashes). Record `i` is its little-endian index.
//!
//! Targets: proof generation ≤ 5 µs at 10^7 records, verification of a
//! 24-hash proof ≤ 3 µs, append ≤ 1 µs amortised.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use modeltrail::tlog::hash::{
    Hash, HashReader, ReadError, leaf_hash, node_hash, stored_hash_count, stored_hashes, tree_hash,
};
use modeltrail::tlog::proof::{
    prove_consistency, prove_inclusion, verify_consistency, verify_inclusion,
};

const SIZES: [u64; 5] = [1_000, 10_000, 100_000, 1_000_000, 10_000_000];
const LARGEST: u64 = 10_000_000;

/// The stored hashes of the first `size` records, in memory.
#[derive(Clone, Copy)]
struct MemReader<'a> {
    hashes: &'a [Hash],
}

impl HashReader for MemReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        indexes
            .iter()
            .map(|&i| {
                self.hashes
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| ReadError::new(format!("stored hash {i} not in memory")))
            })
            .collect()
    }
}

/// A small deterministic generator (SplitMix64): benchmarks need no `rand`.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hash(&mut self) -> Hash {
        let mut h = [0u8; 32];
        for chunk in h.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        Hash(h)
    }
}

/// Builds the stored hashes of the largest tree by appending every record.
fn build_largest() -> Vec<Hash> {
    let start = Instant::now();
    let mut stored = Vec::with_capacity(stored_hash_count(LARGEST) as usize);
    for n in 0..LARGEST {
        let new =
            stored_hashes(n, &n.to_le_bytes(), &MemReader { hashes: &stored }).expect("append");
        stored.extend_from_slice(&new);
    }
    let elapsed = start.elapsed();
    eprintln!(
        "built {LARGEST} records ({} stored hashes) in {elapsed:.2?}: {:.0} ns per append",
        stored.len(),
        elapsed.as_nanos() as f64 / LARGEST as f64
    );
    stored
}

fn reader(stored: &[Hash], size: u64) -> MemReader<'_> {
    MemReader {
        hashes: &stored[..stored_hash_count(size) as usize],
    }
}

fn bench_tlog(c: &mut Criterion) {
    // The unit of all the hash math: SHA-256 of 65 bytes (two blocks).
    let (left, right) = (leaf_hash(b"left"), leaf_hash(b"right"));
    c.bench_function("node_hash", |b| {
        b.iter(|| node_hash(black_box(&left), black_box(&right)))
    });

    let stored = build_largest();

    let mut g = c.benchmark_group("tree_hash");
    for size in SIZES {
        let r = reader(&stored, size);
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| tree_hash(black_box(size), &r).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("prove_inclusion");
    for size in SIZES {
        let r = reader(&stored, size);
        let mut rng = SplitMix(size);
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| prove_inclusion(size, rng.below(size), &r).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("prove_consistency");
    for size in SIZES {
        let r = reader(&stored, size);
        let mut rng = SplitMix(size);
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| prove_consistency(1 + rng.below(size - 1), size, &r).unwrap())
        });
    }
    g.finish();

    // The hashes one append computes, cycling over the last 2^16 records of
    // the tree (or all of them) so that every number of completed subtrees
    // is weighted as in a real log: the amortised cost of an append.
    let mut g = c.benchmark_group("stored_hashes");
    for size in SIZES {
        let r = reader(&stored, size);
        let window = size.min(1 << 16);
        let mut k = 0;
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| {
                let n = size - window + k;
                k = (k + 1) % window;
                stored_hashes(n, &n.to_le_bytes(), &r).unwrap()
            })
        });
    }
    g.finish();

    // Appending to a growing in-memory log, storage writes included.
    c.bench_function("append_from_empty", |b| {
        b.iter_custom(|iters| {
            let mut log = Vec::with_capacity(stored_hash_count(iters) as usize);
            let start = Instant::now();
            for n in 0..iters {
                let new = stored_hashes(n, &n.to_le_bytes(), &MemReader { hashes: &log }).unwrap();
                log.extend_from_slice(&new);
            }
            let elapsed = start.elapsed();
            black_box(&log);
            elapsed
        })
    });

    // A 24-hash inclusion proof in a tree of 2^24 records, made without
    // storing the tree: random siblings, and the root folded from them.
    let size = 1u64 << 24;
    let mut rng = SplitMix(24);
    let cases: Vec<(Hash, u64, Vec<Hash>, Hash)> = (0..64)
        .map(|_| {
            let index = rng.below(size);
            let leaf = leaf_hash(&index.to_le_bytes());
            let proof: Vec<Hash> = (0..24).map(|_| rng.hash()).collect();
            let root = proof.iter().enumerate().fold(leaf, |h, (level, p)| {
                if (index >> level) & 1 == 1 {
                    node_hash(p, &h)
                } else {
                    node_hash(&h, p)
                }
            });
            verify_inclusion(&leaf, index, size, &proof, &root).expect("constructed proof");
            (leaf, index, proof, root)
        })
        .collect();
    let mut g = c.benchmark_group("verify_inclusion");
    let mut k = 0;
    g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
        b.iter(|| {
            let (leaf, index, proof, root) = &cases[k];
            k = (k + 1) % cases.len();
            verify_inclusion(leaf, *index, size, proof, root).unwrap()
        })
    });
    g.finish();

    // Consistency proofs from random old sizes to the largest tree.
    let r = reader(&stored, LARGEST);
    let new_root = tree_hash(LARGEST, &r).unwrap();
    let mut rng = SplitMix(7);
    let cases: Vec<(u64, Hash, Vec<Hash>)> = (0..64)
        .map(|_| {
            let old = 1 + rng.below(LARGEST - 1);
            let proof = prove_consistency(old, LARGEST, &r).unwrap();
            (old, tree_hash(old, &r).unwrap(), proof)
        })
        .collect();
    let mean_len = cases.iter().map(|c| c.2.len()).sum::<usize>() as f64 / cases.len() as f64;
    eprintln!("verify_consistency: mean proof length {mean_len:.1} hashes");
    let mut g = c.benchmark_group("verify_consistency");
    let mut k = 0;
    g.bench_with_input(BenchmarkId::from_parameter(LARGEST), &LARGEST, |b, &new| {
        b.iter(|| {
            let (old, old_root, proof) = &cases[k];
            k = (k + 1) % cases.len();
            verify_consistency(*old, new, old_root, &new_root, proof).unwrap()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_tlog
}
criterion_main!(benches);
