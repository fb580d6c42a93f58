//! The `openings_record` target; its body and documentation are in `src/targets/openings_record.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::openings_record::run(data));
