//! The `witness_state` target; its body and documentation are in `src/targets/witness_state.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::witness_state::run(data));
