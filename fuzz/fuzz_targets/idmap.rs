//! The `idmap` target; its body and documentation are in `src/targets/idmap.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::idmap::run(data));
