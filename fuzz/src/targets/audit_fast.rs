//! The `audit --fast` reader: `audit::scan::parse` on arbitrary bytes,
//! with and without full verification, under one known signer.
//!
//! The fast path may skip work, never change the answer: whatever the full
//! reader accepts (signature and canonical form checked), the fast reader
//! accepts too and reads to the same body, signer and ID. An entry read by
//! `bulk_inference` is an inference by a known signer.

use std::collections::HashMap;

use modeltrail::audit::scan::{bulk_inference, parse};
use modeltrail::entry::Body;

use crate::entry_signer;

/// The target: `fuzz_targets/audit_fast.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let vkey = entry_signer().verifier();
    let keys = HashMap::from([(vkey.to_string(), vkey.clone())]);
    let (full, full_verified) = parse(data, &keys, true);
    let (fast, _) = parse(data, &keys, false);
    if let Ok(full) = &full {
        assert!(full_verified);
        let fast = fast
            .as_ref()
            .expect("--fast accepts what the full reader accepts");
        assert_eq!(fast.body, full.body);
        assert_eq!(fast.signer, full.signer);
        assert_eq!(fast.id, full.id);
    }
    if let Some(bulk) = bulk_inference(data, &keys) {
        assert!(matches!(bulk.body, Body::Inference(_)));
        assert_eq!(bulk.signer, vkey);
        assert!(bulk.id.is_none());
    }
}
