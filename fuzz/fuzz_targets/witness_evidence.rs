//! The `witness_evidence` target; its body and documentation are in `src/targets/witness_evidence.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::witness_evidence::run(data));
