//! The `note` target; its body and documentation are in `src/targets/note.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::note::run(data));
