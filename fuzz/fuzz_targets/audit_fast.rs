//! The `audit_fast` target; its body and documentation are in `src/targets/audit_fast.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::audit_fast::run(data));
