//! The `cosignature` target; its body and documentation are in `src/targets/cosignature.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::cosignature::run(data));
