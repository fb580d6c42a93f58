//! The `tile_path` target; its body and documentation are in `src/targets/tile_path.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::tile_path::run(data));
