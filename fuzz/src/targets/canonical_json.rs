//! RFC 8785 canonical JSON: `parse_canonical` on arbitrary bytes.
//!
//! On success the input is exactly `to_canonical` of what it parsed to;
//! `parse_strict` agrees on the value; and the canonical form of any
//! strictly parsed value is itself canonical.

use modeltrail::entry::canonical::{parse_canonical, parse_strict, to_canonical};

/// The target: `fuzz_targets/canonical_json.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    if let Ok(value) = parse_canonical(data) {
        assert_eq!(to_canonical(&value), data, "accepted a non-canonical input");
        assert_eq!(parse_strict(data).as_ref(), Ok(&value));
    }
    if let Ok(value) = parse_strict(data) {
        let canonical = to_canonical(&value);
        let reparsed = parse_canonical(&canonical).expect("canonical output parses canonically");
        assert_eq!(to_canonical(&reparsed), canonical);
    }
}
