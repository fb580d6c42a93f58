//! The `verify_inclusion` target; its body and documentation are in `src/targets/verify_inclusion.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::verify_inclusion::run(data));
