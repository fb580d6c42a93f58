//! The tlog-tiles store on real directories: a `TreeWriter` appending in
//! batches must leave exactly the tiles and bundles an in-memory reference
//! log implies, resume from any committed (size, root), refuse a store that
//! does not match its checkpoint, overwrite leftovers of uncommitted appends,
//! and serve proofs that verify against the reference roots.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use modeltrail::store::{
    FsTileStore, StoreHashReader, StoreTileReader, TileCache, TileStore, TreeError, TreeWriter,
    read_bundle, read_entry,
};
use modeltrail::tlog::hash::{
    Hash, HashReader, empty_tree_hash, leaf_hash, stored_hash_count, stored_hashes, tree_hash,
};
use modeltrail::tlog::proof::{
    prove_consistency, prove_inclusion, verify_consistency, verify_inclusion,
};
use modeltrail::tlog::tile::{
    Tile, TileHashReader, TileKind, encode_bundle, new_entry_bundles, new_tiles, read_tile_data,
};

/// A fresh directory under Cargo's test temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("store-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// xorshift64*: deterministic test randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Entry `i` of a log with `seed`: varied lengths, including empty.
fn entry(seed: u64, i: u64) -> Vec<u8> {
    let len = ((i * 37 + seed) % 300) as usize;
    let mut e = format!("{seed}/{i}:").into_bytes();
    e.resize(e.len() + len, (i % 251) as u8);
    if i % 97 == 5 {
        e.clear();
    }
    e
}

/// The in-memory reference log, and every size committed so far.
#[derive(Default)]
struct Reference {
    seed: u64,
    entries: Vec<Vec<u8>>,
    stored: Vec<Hash>,
    roots: BTreeMap<u64, Hash>,
}

impl Reference {
    fn new(seed: u64) -> Reference {
        let mut r = Reference {
            seed,
            ..Reference::default()
        };
        r.roots.insert(0, empty_tree_hash());
        r
    }

    fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The next `n` entries, without adding them.
    fn next_batch(&self, n: u64) -> Vec<Vec<u8>> {
        (self.size()..self.size() + n)
            .map(|i| entry(self.seed, i))
            .collect()
    }

    /// Adds a batch and commits its size.
    fn add(&mut self, batch: &[Vec<u8>]) -> (u64, Hash) {
        for e in batch {
            let h = stored_hashes(self.size(), e, &self.stored).unwrap();
            self.stored.extend(h);
            self.entries.push(e.clone());
        }
        let root = tree_hash(self.size(), &self.stored).unwrap();
        self.roots.insert(self.size(), root);
        (self.size(), root)
    }

    fn root(&self) -> Hash {
        self.roots[&self.size()]
    }

    /// The data a tile or bundle of this log must have.
    fn tile_data(&self, tile: &Tile) -> Vec<u8> {
        match tile.kind() {
            TileKind::Hash(_) => read_tile_data(tile, &self.stored).unwrap(),
            TileKind::Entries => {
                let start = (tile.index() * 256) as usize;
                encode_bundle(&self.entries[start..start + usize::from(tile.width())]).unwrap()
            }
        }
    }

    /// Every tile a checkpoint so far refers to: the partial tiles of each
    /// committed size, and every tile of the current tree.
    fn referenced_tiles(&self) -> BTreeSet<Tile> {
        let mut set: BTreeSet<Tile> = new_tiles(0, self.size()).into_iter().collect();
        set.extend(new_entry_bundles(0, self.size()));
        for &s in self.roots.keys() {
            for level in 0..8 {
                if let Some(t) = Tile::in_tree(TileKind::Hash(level), (s >> (8 * level)) / 256, s) {
                    set.insert(t);
                }
            }
            if let Some(t) = Tile::in_tree(TileKind::Entries, s / 256, s) {
                set.insert(t);
            }
        }
        set
    }
}

/// Every file under `dir`, by store path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap();
                out.insert(rel.replace('\\', "/"), fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Checks the store against the reference at its current size; returns
/// the number of leftover files no checkpoint refers to.
fn check(store: &FsTileStore, r: &Reference) -> usize {
    let size = r.size();
    let root = r.root();
    let referenced = r.referenced_tiles();

    // Every referenced tile exists with the reference data; nothing else
    // but leftovers (tile paths) and the checkpoint.
    let on_disk = files(store.root());
    let mut leftovers = 0;
    for (path, data) in &on_disk {
        if path == "checkpoint" {
            continue;
        }
        let tile = Tile::parse_path(path).unwrap_or_else(|e| panic!("stray file {path}: {e}"));
        if referenced.contains(&tile) {
            assert!(*data == r.tile_data(&tile), "{path} differs at size {size}");
        } else {
            leftovers += 1;
        }
    }
    for tile in &referenced {
        assert!(on_disk.contains_key(&tile.path()), "{tile} missing");
    }

    // Entries read back, by bundle and one by one.
    for b in 0..size.div_ceil(256) {
        let got = read_bundle(store, b, size).unwrap();
        let start = (b * 256) as usize;
        assert_eq!(got, r.entries[start..start + got.len()], "bundle {b}");
    }
    let mut rng = Rng(size | 1);
    for _ in 0..5.min(size) {
        let i = rng.below(size);
        assert_eq!(read_entry(store, i, size).unwrap(), r.entries[i as usize]);
    }
    if size > 0 {
        assert_eq!(
            read_entry(store, size - 1, size).unwrap(),
            r.entries[size as usize - 1]
        );
    }
    assert!(matches!(
        read_entry(store, size, size),
        Err(TreeError::IndexOutOfRange { .. })
    ));

    // Proofs through the store verify against the reference roots, for the
    // current and every earlier committed size.
    let cache = TileCache::new(16);
    let reader = StoreHashReader::new(store, size).with_cache(&cache);
    assert_eq!(tree_hash(size, &reader).unwrap(), root);
    let mut indexes: Vec<u64> = (0..8).map(|_| rng.below(size.max(1))).collect();
    indexes.extend([0, size.saturating_sub(1)]);
    for &i in indexes.iter().filter(|&&i| i < size) {
        let proof = prove_inclusion(size, i, &reader).unwrap();
        verify_inclusion(&leaf_hash(&r.entries[i as usize]), i, size, &proof, &root).unwrap();
    }
    let earlier: Vec<(u64, Hash)> = r.roots.range(1..=size).map(|(&s, &h)| (s, h)).collect();
    for &(old, old_root) in earlier.iter().rev().take(12) {
        let proof = prove_consistency(old, size, &reader).unwrap();
        verify_consistency(old, size, &old_root, &root, &proof).unwrap();
        let old_reader = StoreHashReader::new(store, old).with_cache(&cache);
        let i = rng.below(old);
        let proof = prove_inclusion(old, i, &old_reader).unwrap();
        verify_inclusion(
            &leaf_hash(&r.entries[i as usize]),
            i,
            old,
            &proof,
            &old_root,
        )
        .unwrap();
    }

    // The authenticating reader accepts the store's tiles.
    let verified = TileHashReader::new(size, root, StoreTileReader::new(store));
    assert_eq!(tree_hash(size, &verified).unwrap(), root);
    let count = stored_hash_count(size);
    if count > 0 {
        let sample: Vec<u64> = (0..16).map(|_| rng.below(count)).collect();
        let want: Vec<Hash> = sample.iter().map(|&i| r.stored[i as usize]).collect();
        assert_eq!(verified.read_hashes(&sample).unwrap(), want);
        assert_eq!(reader.read_hashes(&sample).unwrap(), want);
    }
    leftovers
}

/// Appends the reference's next `n` entries through `w` and checks the result.
fn append(w: &mut TreeWriter<impl TileStore>, r: &mut Reference, n: u64) {
    let batch = r.next_batch(n);
    let got = w.append(&batch).unwrap();
    assert_eq!(got, r.add(&batch), "after {n} more");
    assert_eq!((w.size(), w.root()), got);
}

#[test]
fn batches_of_varying_sizes() {
    let tmp = TempDir::new("batches");
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap());
    let mut r = Reference::new(1);
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    let mut rng = Rng(7);
    let mut sizes = vec![1, 255, 256, 257, 1000, 0, 1, 1, 254, 2];
    sizes.extend((0..12).map(|_| rng.below(700)));
    for n in sizes {
        append(&mut w, &mut r, n);
        assert_eq!(check(&store, &r), 0, "leftovers at size {}", r.size());
        store
            .replace_checkpoint(format!("{}\n{}\n", r.size(), r.root()).as_bytes())
            .unwrap();
    }
}

#[test]
fn reopening_after_every_batch_matches_never_closing() {
    let (tmp_a, tmp_b) = (TempDir::new("never-closed"), TempDir::new("reopened"));
    let a = Arc::new(FsTileStore::new(&tmp_a.0).unwrap());
    let mut wa = TreeWriter::open(a.clone(), 0, empty_tree_hash()).unwrap();
    let mut r = Reference::new(2);
    let mut rng = Rng(11);
    for round in 0..40 {
        let n = match round % 4 {
            0 => rng.below(3),
            1 => 256 - r.size() % 256,
            _ => rng.below(600),
        };
        let batch = r.next_batch(n);
        let got_a = wa.append(&batch).unwrap();
        // A fresh store handle and writer each time: only (size, root) survives.
        let b = Arc::new(FsTileStore::new(&tmp_b.0).unwrap());
        let mut wb = TreeWriter::open(b.clone(), r.size(), r.root()).unwrap();
        let got_b = wb.append(&batch).unwrap();
        assert_eq!(got_a, r.add(&batch));
        assert_eq!(got_b, got_a);
    }
    check(&a, &r);
    assert_eq!(files(&tmp_a.0), files(&tmp_b.0));
}

#[test]
fn reopen_at_every_committed_size_and_continue() {
    let tmp = TempDir::new("every-size");
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap());
    let mut r = Reference::new(3);
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    // One record at a time: every size up to 600 is committed.
    for _ in 0..600 {
        append(&mut w, &mut r, 1);
    }
    assert_eq!(check(&store, &r), 0);
    let full: Vec<Vec<u8>> = r.entries.clone();
    for s in 0..=600u64 {
        let mut w = TreeWriter::open(store.clone(), s, r.roots[&s]).unwrap();
        assert_eq!((w.size(), w.root()), (s, r.roots[&s]));
        // Continuing with the same entries rewrites identical files.
        let k = (s * 7 % 300).min(600 - s) as usize;
        let (size, root) = w.append(&full[s as usize..s as usize + k]).unwrap();
        assert_eq!(root, r.roots[&size], "from {s} + {k}");
    }
    assert_eq!(check(&store, &r), 0);
}

#[test]
fn reopen_across_level_two() {
    let tmp = TempDir::new("level-two");
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap());
    let mut r = Reference::new(4);
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    // Cross 65,536 (the first level-2 hash) at awkward points.
    for n in [65_000, 535, 1, 1, 255, 256, 3_000, 1_463] {
        let batch = r.next_batch(n);
        w.append(&batch).unwrap();
        r.add(&batch);
        drop(w);
        w = TreeWriter::open(store.clone(), r.size(), r.root()).unwrap();
    }
    assert_eq!(r.size(), 70_511);
    append(&mut w, &mut r, 489);
    assert_eq!(check(&store, &r), 0);
}

#[test]
fn a_store_that_does_not_match_its_checkpoint_is_refused() {
    let tmp = TempDir::new("mismatch");
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap());
    let mut r = Reference::new(5);
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    append(&mut w, &mut r, 300);
    let root = r.root();
    let refused = |size: u64, root: Hash| match TreeWriter::open(store.clone(), size, root) {
        Err(TreeError::StoreMismatch { reason, .. }) => reason,
        other => panic!("opened at {size}: {other:?}"),
    };
    // Wrong roots.
    assert!(refused(300, r.roots[&0]).contains("root"));
    assert!(refused(300, leaf_hash(b"x")).contains("root"));
    assert!(refused(0, root).contains("root"));
    // Sizes never committed: their partial tiles do not exist.
    assert!(refused(299, root).contains("missing"));
    assert!(refused(301, root).contains("missing"));
    // A truncated partial tile.
    let edge = tmp.0.join("tile/0/001.p/44");
    let good = fs::read(&edge).unwrap();
    fs::write(&edge, &good[..40]).unwrap();
    assert!(refused(300, root).contains("bytes"));
    // A flipped bit in it.
    let mut bad = good.clone();
    bad[100] ^= 1;
    fs::write(&edge, &bad).unwrap();
    assert!(refused(300, root).contains("root"));
    fs::write(&edge, &good).unwrap();
    // A partial bundle whose entries do not match their leaf hashes.
    let bundle = tmp.0.join("tile/entries/001.p/44");
    let good_bundle = fs::read(&bundle).unwrap();
    let mut entries = r.entries[256..300].to_vec();
    entries[3].push(b'!');
    fs::write(&bundle, encode_bundle(&entries).unwrap()).unwrap();
    assert!(refused(300, root).contains("leaf hash"));
    fs::write(&bundle, &good_bundle[..good_bundle.len() - 1]).unwrap();
    assert!(refused(300, root).contains("001.p/44"));
    fs::write(&bundle, &good_bundle).unwrap();
    TreeWriter::open(store.clone(), 300, root).unwrap();
    assert!(matches!(
        TreeWriter::open(store.clone(), u64::MAX, root),
        Err(TreeError::TooLarge(_))
    ));
}

#[test]
fn leftovers_beyond_the_checkpoint_are_ignored_and_overwritten() {
    let tmp = TempDir::new("leftovers");
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap());
    let mut r = Reference::new(6);
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    append(&mut w, &mut r, 400);
    let (size, root) = (r.size(), r.root());
    // An append that was never committed, with other entries...
    let other: Vec<Vec<u8>> = (0..900).map(|i| entry(99, i)).collect();
    w.append(&other).unwrap();
    // ...and garbage at every path a bigger tree would have.
    let mut rng = Rng(3);
    for tile in new_tiles(size, size + 2_000)
        .into_iter()
        .chain(new_entry_bundles(size, size + 2_000))
    {
        let len = match tile.kind() {
            TileKind::Hash(_) => usize::from(tile.width()) * 32,
            TileKind::Entries => rng.below(500) as usize,
        };
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        store.put(&tile.path(), &junk).unwrap();
    }
    // Resume from the checkpoint: the leftovers are ignored...
    let mut w = TreeWriter::open(store.clone(), size, root).unwrap();
    assert_eq!(check(&store, &r), leftover_count(&store, &r));
    assert!(leftover_count(&store, &r) > 0);
    // ...and overwritten as the tree grows over them.
    for n in [1, 100, 555, 44, 300] {
        append(&mut w, &mut r, n);
        check(&store, &r);
    }
    assert!(
        check(&store, &r) > 0,
        "leftovers beyond the tree remain, ignored"
    );
}

/// Files no checkpoint refers to.
fn leftover_count(store: &FsTileStore, r: &Reference) -> usize {
    let referenced = r.referenced_tiles();
    files(store.root())
        .keys()
        .filter(|p| *p != "checkpoint")
        .filter(|p| !referenced.contains(&Tile::parse_path(p).unwrap()))
        .count()
}

/// A store whose `put` or `sync` fails on demand.
struct Flaky {
    inner: FsTileStore,
    fail_put_after: AtomicU64,
    fail_sync: std::sync::atomic::AtomicBool,
}

impl TileStore for Flaky {
    fn get(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(path)
    }
    fn put(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let left = self.fail_put_after.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::other(format!("injected failure writing {path}")));
        }
        self.fail_put_after.store(left - 1, Ordering::SeqCst);
        self.inner.put(path, data)
    }
    fn sync(&self) -> io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync()
    }
    fn replace_checkpoint(&self, data: &[u8]) -> io::Result<()> {
        self.inner.replace_checkpoint(data)
    }
    fn replace_witnessed_checkpoint(&self, data: &[u8]) -> io::Result<()> {
        self.inner.replace_witnessed_checkpoint(data)
    }
}

#[test]
fn a_failed_append_leaves_the_writer_at_its_last_state() {
    let tmp = TempDir::new("flaky");
    let flaky = Arc::new(Flaky {
        inner: FsTileStore::new(&tmp.0).unwrap(),
        fail_put_after: AtomicU64::new(u64::MAX),
        fail_sync: Default::default(),
    });
    let mut r = Reference::new(8);
    let mut w = TreeWriter::open(flaky.clone(), 0, empty_tree_hash()).unwrap();
    append(&mut w, &mut r, 500);
    for fail_after in [0, 1, 3, 5] {
        flaky.fail_put_after.store(fail_after, Ordering::SeqCst);
        let other: Vec<Vec<u8>> = (0..700).map(|i| entry(77, i)).collect();
        assert!(matches!(w.append(&other), Err(TreeError::Io(_))));
        assert_eq!((w.size(), w.root()), (r.size(), r.root()));
        flaky.fail_put_after.store(u64::MAX, Ordering::SeqCst);
    }
    flaky.fail_sync.store(true, Ordering::SeqCst);
    let batch = r.next_batch(10);
    assert!(w.append(&batch).is_err());
    assert_eq!(w.size(), r.size());
    flaky.fail_sync.store(false, Ordering::SeqCst);
    // The same writer carries on, overwriting what the failures left.
    append(&mut w, &mut r, 10);
    append(&mut w, &mut r, 900);
    check(&flaky.inner, &r);
    // And so does one reopened from the last commit.
    let mut w = TreeWriter::open(flaky.clone(), r.size(), r.root()).unwrap();
    append(&mut w, &mut r, 77);
    check(&flaky.inner, &r);
}

#[test]
fn oversized_entries_are_refused_before_anything_is_written() {
    let tmp = TempDir::new("oversized");
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap());
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    let batch = vec![b"ok".to_vec(), vec![0; 65_536]];
    match w.append(&batch) {
        Err(TreeError::EntryTooLarge { index, len }) => assert_eq!((index, len), (1, 65_536)),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.stats().puts, 0);
    assert_eq!(w.size(), 0);
    // Empty batches write nothing either.
    assert_eq!(w.append::<Vec<u8>>(&[]).unwrap(), (0, empty_tree_hash()));
    assert_eq!(store.stats().puts, 0);
    // The largest entry fits.
    let mut r = Reference::new(9);
    let batch = vec![vec![7; 65_535], Vec::new()];
    assert_eq!(w.append(&batch).unwrap(), r.add(&batch));
    assert_eq!(read_entry(&*store, 0, 2).unwrap().len(), 65_535);
    check(&store, &r);
}

#[test]
fn the_tile_cache_serves_hot_proofs() {
    let tmp = TempDir::new("cache");
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap());
    let mut r = Reference::new(10);
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    append(&mut w, &mut r, 5_000);
    let cache = TileCache::new(4);
    let reader = StoreHashReader::new(&*store, r.size()).with_cache(&cache);
    prove_inclusion(r.size(), 1_234, &reader).unwrap();
    let (_, misses) = cache.stats();
    for _ in 0..10 {
        prove_inclusion(r.size(), 1_234, &reader).unwrap();
    }
    assert_eq!(cache.stats().1, misses, "no more misses");
    assert!(cache.stats().0 >= 10);
    assert!(cache.len() <= 4);
    // Asking beyond the tree is an error, not a read of leftovers.
    assert!(reader.read_hashes(&[stored_hash_count(r.size())]).is_err());
}

/// `cargo test --release --test store -- --ignored --nocapture`
#[test]
#[ignore]
fn append_throughput() {
    let tmp = TempDir::new("throughput");
    // SYNC_THREADS=1 measures one fsync at a time.
    let threads = std::env::var("SYNC_THREADS").map_or(8, |t| t.parse().unwrap());
    let store = Arc::new(FsTileStore::new(&tmp.0).unwrap().with_sync_threads(threads));
    let mut w = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    let (batches, per_batch) = (1_000u64, 1_000u64);
    let start = Instant::now();
    for b in 0..batches {
        let batch: Vec<Vec<u8>> = (0..per_batch)
            .map(|i| format!("{{\"entry\":{}}}", b * per_batch + i).into_bytes())
            .collect();
        let (size, root) = w.append(&batch).unwrap();
        store
            .replace_checkpoint(format!("{size}\n{root}\n").as_bytes())
            .unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = store.stats();
    let n = batches * per_batch;
    println!(
        "{n} entries in {batches} batches, {threads} sync threads: {secs:.2} s, {:.0} entries/s, {:.1} ms/batch; \
         per batch (incl. checkpoint): {:.1} puts, {:.1} file + {:.1} dir fsyncs",
        n as f64 / secs,
        secs * 1e3 / batches as f64,
        stats.puts as f64 / batches as f64,
        stats.file_fsyncs as f64 / batches as f64,
        stats.dir_fsyncs as f64 / batches as f64,
    );
    let reader = StoreHashReader::new(&*store, n);
    let proof = prove_inclusion(n, 123_456, &reader).unwrap();
    verify_inclusion(
        &leaf_hash(b"{\"entry\":123456}"),
        123_456,
        n,
        &proof,
        &w.root(),
    )
    .unwrap();
}
