//! The `tlog_proof` target; its body and documentation are in `src/targets/tlog_proof.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::tlog_proof::run(data));
