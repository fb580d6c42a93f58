//! Signed notes: `Note::parse` on arbitrary bytes.
//!
//! On success: serialising gives back the input byte for byte, re-parses to
//! an equal note, `Note::new` accepts the same parts, and verifying against
//! the fixed log and witness keys never panics and only reports keys that
//! actually signed a line.

use crate::{log_vkey, witness_vkey};
use modeltrail::tlog::note::{MAX_NOTE_SIZE, MAX_SIGNATURES, Note, NoteError, VerifierKey};

/// The target: `fuzz_targets/note.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let note = match Note::parse(data) {
        Ok(note) => note,
        Err(NoteError::TooLarge { size, .. }) => {
            assert!(size > MAX_NOTE_SIZE);
            return;
        }
        Err(_) => return,
    };

    // Structure.
    assert!(data.len() <= MAX_NOTE_SIZE);
    assert!(note.text().ends_with('\n'));
    assert!(!note.signatures().is_empty());
    assert!(note.signatures().len() <= MAX_SIGNATURES);

    // Round trips: the wire form is canonical.
    let bytes = note.to_bytes();
    assert_eq!(bytes, data, "to_bytes is not the parsed input");
    assert_eq!(note.to_string().as_bytes(), data);
    assert_eq!(Note::parse(&bytes).as_ref(), Ok(&note));
    let rebuilt = Note::new(note.text(), note.signatures().to_vec());
    assert_eq!(
        rebuilt.as_ref(),
        Ok(&note),
        "Note::new refuses a parsed note"
    );

    // Signature lines round trip one by one.
    let mut lines = String::new();
    for sig in note.signatures() {
        let line = sig.to_line();
        assert!(line.ends_with('\n'));
        lines.push_str(&line);
    }
    assert_eq!(format!("{}\n{}", note.text(), lines).as_bytes(), data);

    // Verification never panics, and only known keys that have a line verify.
    let keys: [VerifierKey; 2] = [log_vkey(), witness_vkey()];
    for known in [&keys[..1], &keys[1..], &keys[..]] {
        match note.verify(known) {
            Ok(verified) => {
                assert!(!verified.is_empty());
                for v in &verified {
                    assert!(known.contains(&v.key));
                    assert!(note.signatures().iter().any(|s| v.key.matches(s)));
                    assert_eq!(
                        v.timestamp.is_some(),
                        v.key.key_type() == modeltrail::tlog::note::KeyType::CosignatureV1
                    );
                }
            }
            Err(NoteError::NoKnownSignature) => {
                assert!(
                    !note
                        .signatures()
                        .iter()
                        .any(|s| known.iter().any(|k| k.matches(s))),
                    "a known key's line neither verified nor failed"
                );
            }
            Err(_) => {}
        }
    }
}
