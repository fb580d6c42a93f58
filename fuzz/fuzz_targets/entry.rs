//! The `entry` target; its body and documentation are in `src/targets/entry.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::entry::run(data));
