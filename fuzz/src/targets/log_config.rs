//! The log's `config.toml`: `log::config::Config::parse` on arbitrary
//! UTF-8.
//!
//! A configuration that parses serialises (`to_toml` never panics) and
//! parses back equal; its index options can be derived.

use modeltrail::log::config::Config;

/// The target: `fuzz_targets/log_config.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text) else {
        return;
    };
    let written = config.to_toml();
    assert_eq!(Config::parse(&written).as_ref(), Ok(&config), "{written}");
    let _ = config.index.options();
}
