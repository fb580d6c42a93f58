//! The `witness_request` target; its body and documentation are in `src/targets/witness_request.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::witness_request::run(data));
