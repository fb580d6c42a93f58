//! The witness's state journal: `journal::replay_state` on arbitrary bytes.
//!
//! On success the valid prefix ends at a newline (or is empty) and nothing
//! after it is a newline; writing the latest records back as a journal and
//! replaying it gives the same latest records.

use modeltrail_witness::journal::{StateRecord, replay_state};

/// The target: `fuzz_targets/witness_state.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    if let Ok(replay) = replay_state(data) {
        assert!(replay.valid_len <= data.len());
        assert!(replay.valid_len == 0 || data[replay.valid_len - 1] == b'\n');
        assert!(!data[replay.valid_len..].contains(&b'\n'));
        assert!(replay.latest.len() <= replay.records);
        let compacted: Vec<u8> = replay
            .latest
            .values()
            .flat_map(StateRecord::to_line)
            .collect();
        let again = replay_state(&compacted).expect("compacted journal replays");
        assert_eq!(again.latest, replay.latest);
        assert_eq!(again.valid_len, compacted.len());
    }
}
