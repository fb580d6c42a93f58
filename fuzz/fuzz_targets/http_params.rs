//! The `http_params` target; its body and documentation are in `src/targets/http_params.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::http_params::run(data));
