//! The `batch` target; its body and documentation are in `src/targets/batch.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::batch::run(data));
