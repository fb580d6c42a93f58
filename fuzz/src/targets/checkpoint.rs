//! Checkpoints: `Checkpoint::parse` on arbitrary UTF-8.
//!
//! On success `to_text` (and `Display`) is the input byte for byte and
//! re-parses to an equal checkpoint; signing it with the fixed log key and
//! opening the signed note gives the same checkpoint back.

use crate::{log_signer, log_vkey, witness_signer, witness_vkey};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::note::{MAX_NOTE_SIZE, Note};

/// The target: `fuzz_targets/checkpoint.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(checkpoint) = Checkpoint::parse(text) else {
        return;
    };

    assert!(!checkpoint.origin.is_empty());
    assert!(!checkpoint.origin.contains('\n'));
    assert!(
        checkpoint
            .extensions
            .iter()
            .all(|e| !e.is_empty() && !e.contains('\n'))
    );

    let written = checkpoint.to_text();
    assert_eq!(written, text, "to_text is not the parsed input");
    assert_eq!(checkpoint.to_string(), text);
    assert_eq!(Checkpoint::parse(&written).as_ref(), Ok(&checkpoint));

    // Sign, cosign, serialise, open: the same checkpoint comes back (for
    // texts that leave room for the signature lines under the note limit).
    if text.len() > MAX_NOTE_SIZE - 1024 {
        return;
    }
    let mut note = checkpoint
        .sign(log_signer())
        .expect("a parsed checkpoint signs");
    assert_eq!(note.text(), text);
    cosignature::cosign(&mut note, witness_signer(), 1_700_000_000).expect("cosigns");
    let bytes = note.to_bytes();
    assert_eq!(Note::parse(&bytes).as_ref(), Ok(&note));
    let opened = Checkpoint::open(&bytes, &log_vkey(), &[witness_vkey()]).expect("opens");
    assert_eq!(opened.checkpoint, checkpoint);
    assert_eq!(opened.note, note);
    assert_eq!(opened.verified.len(), 2);
    assert_eq!(opened.verified[1].timestamp, Some(1_700_000_000));
    assert_eq!(Checkpoint::from_note(&note).as_ref(), Ok(&checkpoint));
}
