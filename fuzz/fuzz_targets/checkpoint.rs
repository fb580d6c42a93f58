//! The `checkpoint` target; its body and documentation are in `src/targets/checkpoint.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::checkpoint::run(data));
