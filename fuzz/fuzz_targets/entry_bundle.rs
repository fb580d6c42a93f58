//! The `entry_bundle` target; its body and documentation are in `src/targets/entry_bundle.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::entry_bundle::run(data));
