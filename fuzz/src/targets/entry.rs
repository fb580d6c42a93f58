//! Signed entries: `SignedEntry::parse` on arbitrary bytes, then the typed
//! body of the entry's kind.
//!
//! No fuzzer-made entry may carry a valid signature by the fixed key unless
//! the fuzzer copied a real one; on success the entry's bytes are the input
//! and its artefact ID is BLAKE3 of the input.

use modeltrail::entry::{ArtefactId, SignedEntry};

/// The target: `fuzz_targets/entry.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(entry) = SignedEntry::parse(data) else {
        return;
    };
    assert_eq!(entry.bytes(), data);
    assert_eq!(entry.id(), ArtefactId::of(data));
    assert_eq!(
        SignedEntry::parse(entry.bytes()).map(|e| e.id()).ok(),
        Some(entry.id())
    );
    let _ = entry.typed_body();
}
