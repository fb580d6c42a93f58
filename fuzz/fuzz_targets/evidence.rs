//! The `evidence` target; its body and documentation are in `src/targets/evidence.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::evidence::run(data));
