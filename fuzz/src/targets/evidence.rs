//! evidence: `Evidence::parse` on arbitrary bytes, then `verify`.
//!
//! The format is canonical, so on success `to_bytes` is the input byte for
//! byte and re-parses equal. Every parsed file is verified under the fixed
//! policy: that must never panic, and (with no evidence made by the fixed
//! log) a fuzzer-made file never verifies unless its checkpoint carries the
//! fixed log's signature and witness cosignature.

use crate::policy;
use modeltrail::audit::evidence::{Evidence, MAX_EVIDENCE_BYTES, MAX_ITEMS};
use modeltrail::audit::verify::verify;

/// The target: `fuzz_targets/evidence.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(evidence) = Evidence::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_EVIDENCE_BYTES);
    assert!(evidence.items.len() <= MAX_ITEMS);
    let bytes = evidence.to_bytes();
    assert_eq!(bytes, data, "to_bytes is not the parsed input");
    assert_eq!(Evidence::parse(&bytes).as_ref(), Ok(&evidence));
    if let Ok(answer) = verify(&evidence, policy()) {
        // Whatever verified was a checkpoint the policy accepts.
        assert!(policy().verify_checkpoint(&evidence.checkpoint).is_ok());
        assert!(!answer.text.is_empty());
    }
}
