//! The `witness_reply` target; its body and documentation are in `src/targets/witness_reply.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::witness_reply::run(data));
