//! tlog-witness `add-checkpoint` request bodies:
//! `AddCheckpointRequest::parse` on arbitrary bytes.
//!
//! On success the request serialises back to the input byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modeltrail_witness::AddCheckpointRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AddCheckpointRequest::parse(data) {
        assert_eq!(request.to_bytes(), data);
    }
});
