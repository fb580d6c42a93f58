//! The `body` target; its body and documentation are in `src/targets/body.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::body::run(data));
