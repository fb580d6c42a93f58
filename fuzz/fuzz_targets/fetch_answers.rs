//! The `fetch_answers` target; its body and documentation are in `src/targets/fetch_answers.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::fetch_answers::run(data));
