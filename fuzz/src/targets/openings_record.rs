//! openings_record: `OpeningsRecord::parse` (a record of the local openings
//! store, and the `opening` block of an evidence file) on arbitrary bytes.
//!
//! On success the record's own line parses back equal, and its openings
//! open the hiding commitments they make and not another role's.

use modeltrail::entry::{Commitment, OpeningsRecord, Side};

/// The target: `fuzz_targets/openings_record.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(record) = OpeningsRecord::parse(data) else {
        return;
    };
    let line = record.to_line();
    assert_eq!(OpeningsRecord::parse(line.as_bytes()).as_ref(), Ok(&record));
    let c = Commitment::hiding(record.opening(Side::Output), Side::Output, data);
    assert!(c.is_hiding());
    assert!(c.opens(Some(record.opening(Side::Output)), Side::Output, data));
    assert!(!c.opens(Some(record.opening(Side::Output)), Side::Input, data));
    assert_eq!(Commitment::parse(&c.to_string()), Ok(c));
}
