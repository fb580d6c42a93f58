//! cosignature/v1: notes built from arbitrary text and arbitrary signature
//! lines, verified under the fixed witness key.
//!
//! No fuzzer-made signature may ever verify, through
//! `cosignature::verify` or `Note::verify`, and nothing may panic. As a
//! control, a real cosignature over the same text (when it is a checkpoint)
//! verifies and returns its timestamp, and stops verifying when the fuzzer
//! flips any one of its bits.

use crate::{log_vkey, witness_signer, witness_vkey};
use arbitrary::Arbitrary;
use modeltrail::tlog::Hash;
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature::{self, CosignatureError, MAX_TIMESTAMP};
use modeltrail::tlog::note::{Note, NoteError, NoteSignature};

#[derive(Debug, Arbitrary)]
enum Text {
    /// Any text (control characters replaced, newline appended if missing).
    Raw(String),
    /// A well-formed checkpoint.
    Checkpoint {
        origin: String,
        size: u64,
        root: [u8; 32],
        extensions: Vec<String>,
    },
}

#[derive(Debug, Arbitrary)]
enum SigBytes {
    /// `timestamp || 64 bytes`, the cosignature/v1 shape.
    Timestamped {
        timestamp: u64,
        signature: [u8; 32],
        signature2: [u8; 32],
    },
    /// Anything at all.
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Sig {
    /// Claim to be by the witness key's name...
    witness_name: bool,
    /// ... and/or its key ID.
    witness_id: bool,
    name: String,
    key_id: u32,
    bytes: SigBytes,
}

#[derive(Debug, Arbitrary)]
struct Input {
    text: Text,
    sigs: Vec<Sig>,
    timestamp: u64,
    /// Which bit of the real cosignature to flip.
    flip: u16,
}

fn clean_line(s: &str) -> String {
    s.chars()
        .map(|c| if (c as u32) < 0x20 { ' ' } else { c })
        .collect()
}

fn text(t: &Text) -> String {
    match t {
        Text::Raw(s) => {
            let mut s: String = s
                .chars()
                .map(|c| {
                    if (c as u32) < 0x20 && c != '\n' {
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        Text::Checkpoint {
            origin,
            size,
            root,
            extensions,
        } => {
            let mut origin = clean_line(origin);
            if origin.is_empty() {
                origin.push('o');
            }
            let checkpoint = Checkpoint {
                origin,
                size: *size,
                root: Hash(*root),
                extensions: extensions
                    .iter()
                    .map(|e| clean_line(e))
                    .filter(|e| !e.is_empty())
                    .collect(),
            };
            checkpoint.to_text()
        }
    }
}

/// The target: `fuzz_targets/cosignature.rs` calls this with the fuzzer's input,
/// decoded as libFuzzer's `fuzz_target!` decodes a typed input.
pub fn run(data: &[u8]) {
    if let Some(input) = crate::arbitrary_input::<Input>(data) {
        check(input);
    }
}

fn check(input: Input) {
    let witness = witness_vkey();
    let text = text(&input.text);

    // Fuzzer-made signature lines never verify.
    let mut sigs = Vec::new();
    let mut claims_witness = false;
    for s in input.sigs.iter().take(20) {
        let name = if s.witness_name {
            witness.name()
        } else {
            &s.name
        };
        let key_id = if s.witness_id {
            witness.key_id()
        } else {
            s.key_id
        };
        let bytes = match &s.bytes {
            SigBytes::Timestamped {
                timestamp,
                signature,
                signature2,
            } => [&timestamp.to_be_bytes()[..], signature, signature2].concat(),
            SigBytes::Raw(b) => b.clone(),
        };
        let Ok(sig) = NoteSignature::new(name, key_id, bytes) else {
            continue;
        };
        assert!(cosignature::verify(&witness, &text, &sig).is_err());
        assert!(matches!(
            cosignature::verify(&log_vkey(), &text, &sig),
            Err(CosignatureError::WrongKeyType { .. })
        ));
        claims_witness |= witness.matches(&sig);
        sigs.push(sig);
    }
    let note = if sigs.is_empty() {
        None
    } else {
        let note = Note::new(&text, sigs.clone()).ok();
        if let Some(note) = &note {
            assert!(note.verify(&[witness.clone()]).is_err());
            assert!(note.verify(&[witness.clone(), log_vkey()]).is_err());
            assert_eq!(Note::parse(&note.to_bytes()).as_ref(), Ok(note));
        }
        note
    };

    // Control: a real cosignature verifies, and any bit flip breaks it.
    let real = cosignature::sign(witness_signer(), &text, input.timestamp);
    let is_checkpoint = Checkpoint::parse(&text).is_ok();
    let Ok(real) = real else {
        assert!(!is_checkpoint || input.timestamp > MAX_TIMESTAMP);
        return;
    };
    assert!(is_checkpoint && input.timestamp <= MAX_TIMESTAMP);
    assert_eq!(
        cosignature::verify(&witness, &text, &real),
        Ok(input.timestamp)
    );

    if let Some(mut note) = note {
        if note.add_signature(real.clone()).is_ok() {
            let verified = note.verify(&[witness.clone()]);
            if claims_witness {
                // A failing line by a known key rejects the whole note.
                assert!(matches!(verified, Err(NoteError::InvalidSignature { .. })));
            } else {
                let verified = verified.expect("real cosignature verifies in a note");
                assert_eq!(verified.len(), 1);
                assert_eq!(verified[0].key, witness);
                assert_eq!(verified[0].timestamp, Some(input.timestamp));
            }
        }
    }

    let mut bytes = real.signature().to_vec();
    let bit = usize::from(input.flip) % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    let flipped = NoteSignature::new(real.name(), real.key_id(), bytes).unwrap();
    assert!(cosignature::verify(&witness, &text, &flipped).is_err());
}
