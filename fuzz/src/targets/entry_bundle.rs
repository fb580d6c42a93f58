//! Entry bundles.
//!
//! 1. `parse_bundle` on arbitrary bytes: on success there are 1 to 256
//!    entries, `encode_bundle` of them is the input byte for byte, and
//!    `parse_bundle_for` agrees for a tile of that width only.
//! 2. The other way: the input cut into entries (chunk size from the first
//!    byte) encodes and parses back to the same entries.
//! 3. The leaf hashes of a parsed bundle, as level-0 tile data, give back
//!    each entry's leaf hash through `hash_from_tile`.

use modeltrail::tlog::hash::{leaf_hash, stored_hash_index};
use modeltrail::tlog::tile::{
    BundleError, MAX_ENTRY_SIZE, TILE_WIDTH, Tile, encode_bundle, hash_from_tile, parse_bundle,
    parse_bundle_for,
};

/// The target: `fuzz_targets/entry_bundle.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    // 1. Parse, then encode.
    if let Ok(entries) = parse_bundle(data) {
        assert!(!entries.is_empty() && entries.len() <= usize::from(TILE_WIDTH));
        assert!(entries.iter().all(|e| e.len() <= MAX_ENTRY_SIZE));
        assert_eq!(
            entries.iter().map(|e| 2 + e.len()).sum::<usize>(),
            data.len()
        );
        let encoded = encode_bundle(&entries).expect("parsed entries encode");
        assert_eq!(encoded, data, "encode_bundle is not the parsed input");

        let width = entries.len() as u16;
        let tile = Tile::entries(7, width).unwrap();
        assert_eq!(parse_bundle_for(&tile, data).as_ref(), Ok(&entries));
        if width < TILE_WIDTH {
            let wider = Tile::entries(7, width + 1).unwrap();
            assert!(matches!(
                parse_bundle_for(&wider, data),
                Err(BundleError::Count { .. })
            ));
        }
        let hash_tile = Tile::hashes(0, 7, width).unwrap();
        assert!(matches!(
            parse_bundle_for(&hash_tile, data),
            Err(BundleError::NotEntryBundle(_))
        ));

        // 3. Leaf hashes as the matching level-0 tile.
        let tile = Tile::hashes(0, 7, width).unwrap();
        let leaves: Vec<u8> = entries.iter().flat_map(|e| leaf_hash(e).0).collect();
        for (i, e) in entries.iter().enumerate() {
            let index = stored_hash_index(0, 7 * u64::from(TILE_WIDTH) + i as u64);
            assert_eq!(hash_from_tile(&tile, &leaves, index).unwrap(), leaf_hash(e));
        }
    }

    // 2. Encode, then parse.
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let entries: Vec<&[u8]> = if rest.is_empty() {
        vec![rest]
    } else {
        rest.chunks(chunk).collect()
    };
    match encode_bundle(&entries) {
        Ok(encoded) => {
            assert!(entries.len() <= usize::from(TILE_WIDTH));
            assert_eq!(parse_bundle(&encoded).as_ref(), Ok(&entries));
        }
        Err(BundleError::TooManyEntries) => assert!(entries.len() > usize::from(TILE_WIDTH)),
        Err(e) => panic!("encode_bundle refused {} entries: {e}", entries.len()),
    }
}
