//! The `log_config` target; its body and documentation are in `src/targets/log_config.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modeltrail_fuzz::targets::log_config::run(data));
