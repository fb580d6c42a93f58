//! The witness's `config.json`: `Config::parse` on arbitrary bytes.
//!
//! On success `to_bytes` parses back to an equal configuration, and every
//! log has between 1 and `MAX_KEYS_PER_LOG` Ed25519 keys.

use modeltrail::tlog::note::KeyType;
use modeltrail_witness::config::{Config, MAX_KEYS_PER_LOG};

/// The target: `fuzz_targets/witness_config.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    if let Ok(config) = Config::parse(data) {
        assert_eq!(Config::parse(&config.to_bytes()).as_ref(), Ok(&config));
        for log in &config.logs {
            assert!((1..=MAX_KEYS_PER_LOG).contains(&log.keys.len()));
            assert!(log.keys.iter().all(|k| k.key_type() == KeyType::Ed25519));
        }
    }
}
