//! Typed bodies of every kind: `Body::parse_json` on arbitrary bytes (the
//! first byte picks the kind).
//!
//! On success the body's JSON form parses back to an equal body.

use modeltrail::entry::{Body, Kind};

/// The target: `fuzz_targets/body.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Some((&pick, json)) = data.split_first() else {
        return;
    };
    let kind = Kind::ALL[usize::from(pick) % Kind::ALL.len()];
    let Ok(body) = Body::parse_json(kind, json) else {
        return;
    };
    assert_eq!(body.kind(), kind);
    let again = Body::parse(kind, &body.to_value()).expect("a body's own JSON parses");
    assert_eq!(again, body);
}
