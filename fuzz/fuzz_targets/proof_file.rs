//! The `proof_file` target; its body and documentation are in `src/targets/proof_file.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::proof_file::run(data));
