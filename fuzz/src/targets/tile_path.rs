//! Tile paths and tile hashes.
//!
//! Input: a path, optionally followed by a NUL byte, an 8-byte little-endian
//! stored-hash index and tile data.
//!
//! 1. `Tile::parse_path`: on success `path()` (and `Display`) is the input
//!    byte for byte, the coordinates rebuild the same tile, and the index
//!    helpers never panic.
//! 2. `hash_from_tile` on the parsed tile with the fuzzer's index and data
//!    (or zero data of exactly the tile's size) never panics, and succeeds
//!    only for an index `tile_for_index` puts in that tile.
//! 3. Differential: for a stored hash of the 300-record tree, the published
//!    tile's data (from `read_tile_data`) gives back that stored hash.
//! 4. `ExpandedTile` (the server's cached form of a tile) answers exactly
//!    what `hash_from_tile` answers, success or error kind, in 2 and 3.

use modeltrail::tlog::hash::{HASH_SIZE, stored_hash_count};
use modeltrail::tlog::tile::{
    ExpandedTile, MAX_TILE_LEVEL, TILE_WIDTH, Tile, TileError, TileKind, hash_from_tile,
    read_tile_data, tile_for_index,
};

/// 4. The expanded tile's answer is `hash_from_tile`'s.
fn same_as_expanded(
    tile: &Tile,
    data: &[u8],
    index: u64,
    want: &Result<modeltrail::tlog::hash::Hash, TileError>,
) {
    let got = ExpandedTile::new(tile, data).and_then(|e| {
        assert_eq!(e.data(), data);
        e.hash(index)
    });
    match (want, &got) {
        (Ok(w), Ok(g)) => assert_eq!(w, g),
        (Err(w), Err(g)) => assert_eq!(std::mem::discriminant(w), std::mem::discriminant(g)),
        _ => panic!("hash_from_tile {want:?}, ExpandedTile {got:?}"),
    }
}
use crate::{MAX_TREE, tree};

/// The target: `fuzz_targets/tile_path.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let (path, rest) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let (index, tile_data) = match rest.split_first_chunk::<8>() {
        Some((index, tile_data)) => (u64::from_le_bytes(*index), tile_data),
        None => (0, rest),
    };

    // 3. Differential against the real tree (independent of the path).
    let t = tree();
    let stored_index = index % stored_hash_count(MAX_TREE);
    let (narrow, start, end) = tile_for_index(stored_index);
    assert!(start < end && end <= usize::from(narrow.width()) * HASH_SIZE);
    let published = Tile::in_tree(narrow.kind(), narrow.index(), MAX_TREE)
        .expect("the tile of a stored hash is in the tree");
    assert!(published.width() >= narrow.width());
    let published_data = read_tile_data(&published, &t.stored).unwrap();
    let want = hash_from_tile(&published, &published_data, stored_index);
    assert_eq!(*want.as_ref().unwrap(), t.stored[stored_index as usize]);
    same_as_expanded(&published, &published_data, stored_index, &want);
    if published.is_partial() {
        // A full-width claim needs full-width data.
        assert!(hash_from_tile(&published.full(), &published_data, stored_index).is_err());
    }

    // 1. Paths.
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let Ok(tile) = Tile::parse_path(path) else {
        return;
    };
    assert_eq!(tile.path(), path, "path() is not the parsed input");
    assert_eq!(tile.to_string(), path);
    assert_eq!(Tile::parse_path(&tile.path()), Ok(tile));
    assert_eq!(Tile::new(tile.kind(), tile.index(), tile.width()), Ok(tile));
    assert!((1..=TILE_WIDTH).contains(&tile.width()));
    assert_eq!(tile.is_partial(), path.contains(".p/"));
    assert_eq!(tile.full().width(), TILE_WIDTH);
    match tile.kind() {
        TileKind::Hash(level) => {
            assert!(level <= MAX_TILE_LEVEL);
            assert_eq!(tile.level(), Some(level));
        }
        TileKind::Entries => assert_eq!(tile.level(), None),
    }
    if let (Some(start), Some(end)) = (tile.start_index(), tile.end_index()) {
        assert!(start < end);
    }
    let _ = Tile::in_tree(tile.kind(), tile.index(), index);

    // 2. hash_from_tile on the parsed tile never panics.
    let exact = vec![0u8; usize::from(tile.width()) * HASH_SIZE];
    for d in [tile_data, &exact[..]] {
        let want = hash_from_tile(&tile, d, index);
        same_as_expanded(&tile, d, index, &want);
        match want {
            Ok(_) => {
                let (actual, _, _) = tile_for_index(index);
                assert_eq!(actual.kind(), tile.kind());
                assert_eq!(actual.index(), tile.index());
                assert!(actual.width() <= tile.width());
                assert_eq!(d.len(), usize::from(tile.width()) * HASH_SIZE);
            }
            Err(TileError::NotHashTile(_)) => assert_eq!(tile.kind(), TileKind::Entries),
            Err(_) => {}
        }
    }
}
