//! The `keys` target; its body and documentation are in `src/targets/keys.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::keys::run(data));
