//! The index's ID maps (`store::idmap`) against the redb B-tree they
//! replaced, at 2 M keys: a lookup of an absent key (every new entry's dedup
//! check), of a present key, and adding a batch of 1,000 pairs (one
//! sequencer batch) — with redb, 1,000 inserts at random keys in one
//! non-durable transaction.
//!
//! Run with `cargo bench --bench idmap`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use modeltrail::store::idmap::{DEFAULT_FLUSH_PAIRS, IdMap};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

const KEYS: u64 = 2_000_000;
const BATCH: u64 = 1_000;
const TABLE: TableDefinition<u64, u64> = TableDefinition::new("ids");

/// A uniform 64-bit key for `i` (splitmix64), as hashes are.
fn key(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An ID map of `KEYS` pairs, written out and merged as the log would.
fn filled_map() -> (IdMap, u64) {
    let map = IdMap::open(&scratch("idmap"), DEFAULT_FLUSH_PAIRS).unwrap();
    for first in (0..KEYS).step_by(BATCH as usize) {
        let pairs: Vec<(u64, u64)> = (first..first + BATCH).map(|i| (key(i), i)).collect();
        map.insert(&pairs, first + BATCH).unwrap();
    }
    map.wait_for_merges();
    (map, KEYS)
}

/// A redb table of `KEYS` pairs, inserted in batches as the index did.
fn filled_redb() -> Database {
    let dir = scratch("redb");
    std::fs::create_dir_all(&dir).unwrap();
    let db = Database::builder()
        .set_cache_size(32 << 20)
        .create(dir.join("ids.redb"))
        .unwrap();
    for first in (0..KEYS).step_by(100 * BATCH as usize) {
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(Durability::None).unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            for i in first..first + 100 * BATCH {
                table.insert(key(i), i).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    db
}

fn bench_idmap(c: &mut Criterion) {
    let (map, mut next) = filled_map();
    println!("id map: {KEYS} pairs in {} runs", map.runs());
    let mut probe = KEYS;
    c.bench_function("idmap_lookup_absent", |b| {
        b.iter(|| {
            probe += 1;
            black_box(map.candidates(key(probe)).unwrap())
        })
    });
    let mut probe = 0;
    c.bench_function("idmap_lookup_present", |b| {
        b.iter(|| {
            probe = (probe + 7_919) % KEYS;
            black_box(map.candidates(key(probe)).unwrap())
        })
    });
    c.bench_function("idmap_insert_1000", |b| {
        b.iter_batched(
            || {
                let pairs: Vec<(u64, u64)> = (next..next + BATCH).map(|i| (key(i), i)).collect();
                next += BATCH;
                pairs
            },
            |pairs| map.insert(&pairs, pairs[pairs.len() - 1].1 + 1).unwrap(),
            BatchSize::SmallInput,
        )
    });
    drop(map);

    let db = filled_redb();
    let mut probe = KEYS;
    c.bench_function("redb_lookup_absent", |b| {
        b.iter(|| {
            probe += 1;
            let table = db.begin_read().unwrap().open_table(TABLE).unwrap();
            black_box(table.get(key(probe)).unwrap().map(|v| v.value()))
        })
    });
    let mut next = KEYS;
    c.bench_function("redb_insert_1000", |b| {
        b.iter(|| {
            let mut txn = db.begin_write().unwrap();
            txn.set_durability(Durability::None).unwrap();
            {
                let mut table = txn.open_table(TABLE).unwrap();
                for i in next..next + BATCH {
                    table.insert(key(i), i).unwrap();
                }
            }
            txn.commit().unwrap();
            next += BATCH;
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(30);
    targets = bench_idmap
}
criterion_main!(benches);
