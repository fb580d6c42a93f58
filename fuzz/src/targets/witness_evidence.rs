//! The witness's evidence file: `journal::parse_evidence` on arbitrary bytes.
//!
//! On success every record serialises to a line that parses back equal,
//! and the valid prefix ends at a newline.

use modeltrail_witness::journal::{EvidenceRecord, parse_evidence};

/// The target: `fuzz_targets/witness_evidence.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    if let Ok((records, valid_len)) = parse_evidence(data) {
        assert!(valid_len == 0 || data[valid_len - 1] == b'\n');
        for record in records {
            let line = record.to_line();
            let back = EvidenceRecord::parse_line(&line[..line.len() - 1]).expect("round trip");
            assert_eq!(back, record);
        }
    }
}
