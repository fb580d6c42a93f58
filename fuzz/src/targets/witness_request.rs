//! tlog-witness `add-checkpoint` request bodies:
//! `AddCheckpointRequest::parse` on arbitrary bytes.
//!
//! On success the request serialises back to the input byte for byte.

use modeltrail_witness::AddCheckpointRequest;

/// The target: `fuzz_targets/witness_request.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    if let Ok(request) = AddCheckpointRequest::parse(data) {
        assert_eq!(request.to_bytes(), data);
    }
}
