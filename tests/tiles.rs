//! C2SP tlog-tiles: tiles built from an in-memory log must give back, through
//! the authenticating `TileHashReader`, exactly the hashes of that log; any
//! corrupted tile must be refused; `new_tiles` must be the difference of the
//! tile sets of two tree sizes; paths and bundles must round-trip.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

use modeltrail::tlog::hash::{
    Hash, HashReader, ReadError, stored_hash_count, stored_hash_index, stored_hashes, tree_hash,
};
use modeltrail::tlog::tile::{
    BundleError, TILE_WIDTH, Tile, TileError, TileHashReader, TileKind, TileReader, encode_bundle,
    hash_from_tile, new_entry_bundles, new_tiles, parse_bundle, partial_tile_width, read_tile_data,
    tile_for_index, tiles_to_fetch,
};
use proptest::prelude::*;

/// The stored hashes of a log of `n` records `"record i"`.
fn build_log(n: u64) -> Vec<Hash> {
    let mut stored = Vec::new();
    for i in 0..n {
        let hashes = stored_hashes(i, format!("record {i}").as_bytes(), &stored).unwrap();
        stored.extend(hashes);
    }
    stored
}

/// Every tile of a tree of `size` records, by brute force.
fn tile_set(size: u64) -> BTreeSet<Tile> {
    let mut set = BTreeSet::new();
    for level in 0..8u8 {
        let count = size >> (8 * u32::from(level));
        for n in 0..count / 256 {
            set.insert(Tile::hashes(level, n, 256).unwrap());
        }
        if !count.is_multiple_of(256) {
            set.insert(Tile::hashes(level, count / 256, (count % 256) as u16).unwrap());
        }
    }
    set
}

/// Tile data computed from stored hashes, memoized: a tile's data does not
/// depend on the tree size, only on its coordinates.
struct TileCache<'a> {
    stored: &'a [Hash],
    data: RefCell<HashMap<Tile, Vec<u8>>>,
}

impl<'a> TileCache<'a> {
    fn new(stored: &'a [Hash]) -> Self {
        TileCache {
            stored,
            data: RefCell::default(),
        }
    }

    fn get(&self, tile: &Tile) -> Vec<u8> {
        let mut data = self.data.borrow_mut();
        data.entry(*tile)
            .or_insert_with(|| read_tile_data(tile, &self.stored).unwrap())
            .clone()
    }
}

/// Serves the tiles of a tree of `size` records, refusing any tile that
/// tree does not publish, optionally corrupting one byte of one tile, and
/// recording what it served and what was saved.
struct MemoryTiles<'a> {
    cache: &'a TileCache<'a>,
    size: u64,
    corrupt: Cell<Option<(Tile, usize)>>,
    fetched: RefCell<Vec<Tile>>,
    saved: RefCell<Vec<Tile>>,
}

impl<'a> MemoryTiles<'a> {
    fn new(cache: &'a TileCache<'a>, size: u64) -> Self {
        MemoryTiles {
            cache,
            size,
            corrupt: Cell::new(None),
            fetched: RefCell::default(),
            saved: RefCell::default(),
        }
    }
}

impl TileReader for MemoryTiles<'_> {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        let mut all = Vec::with_capacity(tiles.len());
        for tile in tiles {
            let published = Tile::in_tree(tile.kind(), tile.index(), self.size);
            if published != Some(*tile) {
                return Err(ReadError::new(format!("{tile} is not published")));
            }
            self.fetched.borrow_mut().push(*tile);
            let mut data = self.cache.get(tile);
            if let Some((bad, byte)) = self.corrupt.get()
                && bad == *tile
            {
                data[byte] ^= 0x01;
            }
            all.push(data);
        }
        Ok(all)
    }

    fn save_tiles(&self, tiles: &[Tile], _data: &[Vec<u8>]) {
        self.saved.borrow_mut().extend_from_slice(tiles);
    }
}

/// Sizes around every tile boundary of the first three levels.
fn interesting_sizes() -> Vec<u64> {
    let mut sizes: Vec<u64> = (0..=20).collect();
    for edge in [255u64, 256, 511, 512, 768, 65536, 65536 + 256, 131072] {
        sizes.extend([edge - 1, edge, edge + 1]);
    }
    sizes.extend([1000, 4097, 65535 + 255, 70_000, 100_003]);
    sizes
}

#[test]
fn tile_hash_reader_agrees_with_memory() {
    let max = 131_073;
    let stored = build_log(max);
    let cache = TileCache::new(&stored);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    for size in interesting_sizes() {
        let root = tree_hash(size, &stored).unwrap();
        let tiles = MemoryTiles::new(&cache, size);
        let reader = TileHashReader::new(size, root, &tiles);
        assert_eq!(tree_hash(size, &reader).unwrap(), root, "size {size}");
        for smaller in [0, size / 2, size.saturating_sub(1), size] {
            let want = tree_hash(smaller, &stored).unwrap();
            assert_eq!(
                tree_hash(smaller, &reader).unwrap(),
                want,
                "{smaller} in {size}"
            );
        }
        let limit = stored_hash_index(0, size);
        let indexes: Vec<u64> = if limit <= 2000 {
            (0..limit).collect()
        } else {
            (0..300)
                .map(|_| next(limit))
                .chain([0, limit - 1])
                .collect()
        };
        let want: Vec<Hash> = indexes.iter().map(|&i| stored[i as usize]).collect();
        assert_eq!(reader.read_hashes(&indexes).unwrap(), want, "size {size}");
        for &i in indexes.iter().take(20) {
            assert_eq!(reader.read_hashes(&[i]).unwrap(), [stored[i as usize]]);
        }
        // The plan is what gets fetched, and what gets saved.
        tiles.fetched.borrow_mut().clear();
        tiles.saved.borrow_mut().clear();
        reader.read_hashes(&indexes).unwrap();
        let plan = tiles_to_fetch(size, &indexes).unwrap();
        assert_eq!(*tiles.fetched.borrow(), plan);
        assert_eq!(*tiles.saved.borrow(), plan);
        let unique: BTreeSet<&Tile> = plan.iter().collect();
        assert_eq!(unique.len(), plan.len(), "a tile is fetched twice");
        // Indexes outside the tree are refused.
        assert!(matches!(
            reader.read_verified(&[limit]),
            Err(TileError::IndexNotInTree { .. })
        ));
    }
}

#[test]
fn corrupted_tiles_are_refused() {
    let stored = build_log(65536 + 300);
    let cache = TileCache::new(&stored);
    for size in [
        1,
        2,
        3,
        255,
        256,
        257,
        300,
        511,
        512,
        513,
        700,
        65536,
        65536 + 300,
    ] {
        let root = tree_hash(size, &stored).unwrap();
        let all_tiles = tile_set(size);
        // For big trees, check the top of the tree and a few full tiles.
        let chosen: Vec<Tile> = all_tiles
            .iter()
            .filter(|t| {
                all_tiles.len() < 10
                    || t.is_partial()
                    || t.level() != Some(0)
                    || t.index() % 97 == 3
            })
            .copied()
            .collect();
        for tile in chosen {
            // The first hash of the tile makes the reader fetch it.
            let level = tile.level().unwrap() * 8;
            let index = stored_hash_index(level, tile.index() * 256);
            let len = usize::from(tile.width()) * 32;
            // One byte in every hash of partial tiles, every third hash of
            // full ones (the authentication of those is all or nothing).
            let stride = if tile.is_partial() { 32 } else { 96 };
            for byte in (0..len).step_by(stride).map(|b| b + (b / 32 * 7) % 32) {
                let tiles = MemoryTiles::new(&cache, size);
                tiles.corrupt.set(Some((tile, byte)));
                let reader = TileHashReader::new(size, root, &tiles);
                let err = reader.read_verified(&[index]).unwrap_err();
                assert!(
                    matches!(err, TileError::RootMismatch | TileError::ParentMismatch(_)),
                    "size {size} {tile} byte {byte}: {err}"
                );
                assert!(tiles.saved.borrow().is_empty(), "saved a corrupt tile");
            }
        }
        // A wrong root is refused too.
        let tiles = MemoryTiles::new(&cache, size);
        let wrong = tree_hash(size - 1, &stored).unwrap();
        let reader = TileHashReader::new(size, wrong, &tiles);
        assert!(matches!(
            reader.read_verified(&[0]),
            Err(TileError::RootMismatch)
        ));
    }
}

/// A tile reader that answers with the wrong shape.
struct Misshapen(fn(&[Tile]) -> Vec<Vec<u8>>);

impl TileReader for Misshapen {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        Ok((self.0)(tiles))
    }
}

#[test]
fn misshapen_answers_are_errors() {
    let stored = build_log(300);
    let root = tree_hash(300, &stored).unwrap();
    let too_few = TileHashReader::new(300, root, Misshapen(|_| Vec::new()));
    assert!(matches!(
        too_few.read_verified(&[0]),
        Err(TileError::TileCount { .. })
    ));
    let short = TileHashReader::new(300, root, Misshapen(|t| vec![vec![0; 31]; t.len()]));
    assert!(matches!(
        short.read_verified(&[0]),
        Err(TileError::DataLength { .. })
    ));
    let zeros = TileHashReader::new(
        300,
        root,
        Misshapen(|t| {
            t.iter()
                .map(|t| vec![0; usize::from(t.width()) * 32])
                .collect()
        }),
    );
    assert!(matches!(
        zeros.read_verified(&[0]),
        Err(TileError::RootMismatch)
    ));
    // Errors reach HashReader users as ReadError.
    assert!(zeros.read_hashes(&[0]).is_err());
    let empty = TileHashReader::new(0, root, Misshapen(|_| unreachable!()));
    assert!(empty.read_hashes(&[]).unwrap().is_empty());
    assert!(matches!(
        empty.read_verified(&[0]),
        Err(TileError::IndexNotInTree { .. })
    ));
    let huge = TileHashReader::new(u64::MAX, root, Misshapen(|_| unreachable!()));
    assert!(matches!(
        huge.read_verified(&[0]),
        Err(TileError::OutOfRange(_))
    ));
}

#[test]
fn tile_data_holds_the_stored_hashes() {
    let size = 70_000;
    let stored = build_log(size);
    for tile in new_tiles(0, size) {
        let data = read_tile_data(&tile, &stored).unwrap();
        assert_eq!(data.len(), usize::from(tile.width()) * 32);
        // Every stored hash of the tile's levels comes back out of it.
        let level = tile.level().unwrap() * 8;
        for (i, chunk) in data.chunks(32).enumerate() {
            let index = stored_hash_index(level, tile.index() * 256 + i as u64);
            assert_eq!(chunk, stored[index as usize].0);
            assert_eq!(
                hash_from_tile(&tile, &data, index).unwrap(),
                stored[index as usize]
            );
        }
    }
    let cache = TileCache::new(&stored);
    for index in 0..stored_hash_count(size) {
        let (narrow, _, _) = tile_for_index(index);
        let tile = Tile::in_tree(narrow.kind(), narrow.index(), size).unwrap();
        let data = cache.get(&tile);
        assert_eq!(
            hash_from_tile(&tile, &data, index).unwrap(),
            stored[index as usize]
        );
    }
}

/// `new_tiles(old, new)` must equal `tile_set(new) \ tile_set(old)`.
fn check_new_tiles(old: u64, new: u64, old_set: &BTreeSet<Tile>, new_set: &BTreeSet<Tile>) {
    let tiles = new_tiles(old, new);
    let set: BTreeSet<Tile> = tiles.iter().copied().collect();
    assert_eq!(set.len(), tiles.len(), "duplicates for {old}->{new}");
    let want: BTreeSet<Tile> = if new > old {
        new_set.difference(old_set).copied().collect()
    } else {
        BTreeSet::new()
    };
    assert_eq!(set, want, "{old} -> {new}");
}

#[test]
fn new_tiles_is_the_difference_of_tile_sets() {
    let sizes = interesting_sizes();
    let sets: Vec<BTreeSet<Tile>> = sizes.iter().map(|&s| tile_set(s)).collect();
    for (old, old_set) in sizes.iter().zip(&sets) {
        for (new, new_set) in sizes.iter().zip(&sets) {
            check_new_tiles(*old, *new, old_set, new_set);
        }
    }
    // Large trees: growth by small and large steps.
    let big = (1u64 << 24) + 65536 * 3 + 7;
    let big_set = tile_set(big);
    for old in [0, 1 << 24, big - 1, big - 300, big - 70_000] {
        check_new_tiles(old, big, &tile_set(old), &big_set);
    }
}

#[test]
fn growing_one_record_at_a_time_writes_every_tile() {
    // A log that checkpoints after every record writes exactly the tiles
    // (and bundles) of its final tree, plus the partial tiles of every size.
    let mut written: HashMap<Tile, u64> = HashMap::new();
    let mut bundles = BTreeSet::new();
    for size in 1..=70_000u64 {
        for tile in new_tiles(size - 1, size) {
            assert!(written.insert(tile, size).is_none(), "{tile} written twice");
        }
        bundles.extend(new_entry_bundles(size - 1, size));
    }
    for tile in tile_set(70_000) {
        assert!(written.contains_key(&tile), "{tile} never written");
    }
    let all: BTreeSet<Tile> = new_entry_bundles(0, 70_000).collect();
    assert!(all.is_subset(&bundles));
    assert_eq!(all.len(), 274);
    assert_eq!(partial_tile_width(0, 70_000), 112);
}

fn arb_tile() -> impl Strategy<Value = Tile> {
    let kind = prop_oneof![(0u8..=63).prop_map(TileKind::Hash), Just(TileKind::Entries)];
    let index = prop_oneof![0u64..2000, any::<u64>()];
    (kind, index, 1u16..=TILE_WIDTH).prop_map(|(k, n, w)| Tile::new(k, n, w).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn paths_round_trip(tile in arb_tile()) {
        let path = tile.path();
        prop_assert_eq!(Tile::parse_path(&path), Ok(tile));
    }

    #[test]
    fn parse_path_never_panics(path in "tile/(entries|[0-9x]{0,3})/[0-9x./p]{0,40}") {
        if let Ok(tile) = Tile::parse_path(&path) {
            prop_assert_eq!(tile.path(), path);
        }
    }

    #[test]
    fn mangled_paths_are_rejected(tile in arb_tile(), at in any::<prop::sample::Index>(), c in any::<char>()) {
        let path = tile.path();
        let i = at.index(path.len() + 1);
        let mut mangled = path.clone();
        mangled.insert(i, c);
        if let Ok(parsed) = Tile::parse_path(&mangled) {
            prop_assert_eq!(parsed.path(), mangled);
        }
    }

    #[test]
    fn bundles_round_trip(entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..=256)) {
        let data = encode_bundle(&entries).unwrap();
        let parsed = parse_bundle(&data).unwrap();
        prop_assert_eq!(parsed, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // Any strict prefix is truncated (or, cut at an entry boundary, shorter).
        for cut in [0, 1, data.len() / 2, data.len() - 1] {
            match parse_bundle(&data[..cut]) {
                Ok(fewer) => prop_assert!(fewer.len() < entries.len()),
                Err(e) => prop_assert!(matches!(e, BundleError::Empty | BundleError::Truncated(_))),
            }
        }
        let mut extra = data.clone();
        extra.push(0);
        prop_assert!(matches!(parse_bundle(&extra), Err(BundleError::Truncated(_)) | Err(BundleError::TooManyEntries)));
    }

    #[test]
    fn parse_bundle_never_panics(data in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(entries) = parse_bundle(&data) {
            prop_assert_eq!(encode_bundle(&entries).unwrap(), data);
        }
    }

    #[test]
    fn hash_from_tile_never_panics(tile in arb_tile(), index in any::<u64>(), len in 0usize..9000) {
        let _ = hash_from_tile(&tile, &vec![0; len], index);
        let full = vec![0; usize::from(tile.width()) * 32];
        let _ = hash_from_tile(&tile, &full, index);
    }

    #[test]
    fn random_sizes_read_through_tiles(size in 1u64..3000, picks in prop::collection::vec(any::<prop::sample::Index>(), 1..20)) {
        let stored = build_log(size);
        let root = tree_hash(size, &stored).unwrap();
        let cache = TileCache::new(&stored);
        let tiles = MemoryTiles::new(&cache, size);
        let reader = TileHashReader::new(size, root, &tiles);
        let limit = stored_hash_index(0, size) as usize;
        let indexes: Vec<u64> = picks.iter().map(|p| p.index(limit) as u64).collect();
        let want: Vec<Hash> = indexes.iter().map(|&i| stored[i as usize]).collect();
        prop_assert_eq!(reader.read_hashes(&indexes).unwrap(), want);
    }

    #[test]
    fn any_flipped_byte_is_refused(size in 1u64..1500, pick in any::<prop::sample::Index>(), byte in any::<prop::sample::Index>()) {
        let stored = build_log(size);
        let root = tree_hash(size, &stored).unwrap();
        let cache = TileCache::new(&stored);
        let all: Vec<Tile> = tile_set(size).into_iter().collect();
        let tile = *pick.get(&all);
        let byte = byte.index(usize::from(tile.width()) * 32);
        let tiles = MemoryTiles::new(&cache, size);
        tiles.corrupt.set(Some((tile, byte)));
        let reader = TileHashReader::new(size, root, &tiles);
        let index = stored_hash_index(tile.level().unwrap() * 8, tile.index() * 256);
        prop_assert!(reader.read_verified(&[index]).is_err());
        // Reading every hash of the tree touches every tile.
        let all_indexes: Vec<u64> = (0..stored_hash_index(0, size)).collect();
        prop_assert!(reader.read_verified(&all_indexes).is_err());
        tiles.corrupt.set(None);
        prop_assert_eq!(reader.read_hashes(&all_indexes).unwrap(), stored);
    }
}
