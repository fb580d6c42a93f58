//! The `token_file` target; its body and documentation are in `src/targets/token_file.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::token_file::run(data));
