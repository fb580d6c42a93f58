//! The JSON that `modeltrail evidence` and `review` read from a log's query
//! API (`cli::answers`), on arbitrary bytes parsed as the CLI parses an
//! answer (`serde_json::from_slice` into a `Value`).
//!
//! Nothing may panic, and each reader answers what the JSON says: the
//! inference's fields, the version's entries (without transitions a prefix
//! of those with), the transition in effect at a time (at or before it,
//! and no later one is), the proof's hashes one per element.

use modeltrail::cli::answers;
use modeltrail::entry::Timestamp;
use serde_json::Value;

/// The target: `fuzz_targets/fetch_answers.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(inference) = answers::inference(&v) {
        assert_eq!(Some(inference.index), v["index"].as_u64());
        assert_eq!(Some(inference.model.as_str()), v["model"].as_str());
        assert_eq!(
            Some(inference.version_hash.as_str()),
            v["version_hash"].as_str()
        );
    }
    match (answers::version(&v, true), answers::version(&v, false)) {
        (Ok(with), Ok(without)) => assert!(with.starts_with(&without)),
        (Ok(_), Err(e)) => panic!("the version reads with transitions only: {e}"),
        _ => {}
    }
    let at = Timestamp::from_unix_millis(1_700_000_000_000).unwrap();
    if let Ok(Some(in_effect)) = answers::transitions_at(&v, at) {
        let history = v["history"].as_array().expect("a history was read");
        let p = in_effect.position;
        assert!(answers::when(&history[p]).is_some_and(|w| w <= at));
        assert!(
            history[p + 1..]
                .iter()
                .all(|t| answers::when(t).is_none_or(|w| w > at))
        );
        assert_eq!(Some(in_effect.index), history[p]["index"].as_u64());
        assert_eq!(
            in_effect.next,
            history.get(p + 1).and_then(|t| t["index"].as_u64())
        );
        assert_eq!(
            Some(in_effect.to.as_str()),
            history[p]["body"]["to"].as_str()
        );
    }
    if let Ok(hashes) = answers::proof_hashes(&v, "inclusion") {
        assert_eq!(Some(hashes.len()), v["proof"].as_array().map(Vec::len));
    }
    assert_eq!(answers::registered(&v), v["version"]["index"].as_u64());
}
