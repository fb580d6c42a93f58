//! The `canonical_json` target; its body and documentation are in `src/targets/canonical_json.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::canonical_json::run(data));
