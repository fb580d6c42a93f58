//! The `tlog_policy` target; its body and documentation are in `src/targets/tlog_policy.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::tlog_policy::run(data));
