//! The `witness_config` target; its body and documentation are in `src/targets/witness_config.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::witness_config::run(data));
