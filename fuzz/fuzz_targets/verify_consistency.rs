//! The `verify_consistency` target; its body and documentation are in `src/targets/verify_consistency.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::verify_consistency::run(data));
