//! The index's ID map files: `idmap::parse_manifest` and
//! `idmap::parse_run_meta` on arbitrary bytes.
//!
//! A manifest that parses is canonical: written back, it is the input byte
//! for byte. Run metadata that parses has one fence per block of pairs.

use modeltrail::store::idmap::{BLOCK_PAIRS, parse_manifest, parse_run_meta};

/// The target: `fuzz_targets/idmap.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    if let Ok(manifest) = parse_manifest(data) {
        assert_eq!(manifest.to_text().as_bytes(), data);
    }
    if let Some((pairs, meta)) = data.split_first_chunk::<8>() {
        let pairs = u64::from_le_bytes(*pairs) % (1 << 40);
        if let Ok(meta) = parse_run_meta(meta, pairs) {
            assert_eq!(meta.blocks() as u64, pairs.div_ceil(BLOCK_PAIRS as u64));
        }
    }
}
