//! C2SP tlog-cosignature (<https://c2sp.org/tlog-cosignature>), the Ed25519
//! `cosignature/v1` type: a witness's timestamped statement that a checkpoint
//! is the largest consistent tree head it has observed for the log.
//!
//! A cosignature is a note signature (signature type `0x04`) on a checkpoint.
//! Its signature bytes are a `timestamped_signature` (tlog-cosignature §Format):
//!
//! ```text
//! u64 timestamp (big-endian POSIX seconds, at most 2^63 - 1) || 64-byte Ed25519 signature
//! ```
//!
//! and the Ed25519 signature is over (§Ed25519 signed message)
//!
//! ```text
//! cosignature/v1
//! time <timestamp, ASCII decimal, no leading zeroes>
//! <the whole checkpoint note text, extension lines and final newline included>
//! ```
//!
//! A `0x04` [`VerifierKey`] verifies these lines inside
//! [`Note::verify`](super::note::Note::verify), which returns the timestamp.

use ed25519_dalek::VerifyingKey;

use super::checkpoint::{Checkpoint, CheckpointError};
use super::note::{
    KeyType, Note, NoteError, NoteSignature, SignerKey, VerifierKey, verify_ed25519,
};

/// The header line of the signed message, providing domain separation.
pub const HEADER: &str = "cosignature/v1\n";

/// The largest timestamp a cosignature may carry, `2^63 - 1`.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Length of a `timestamped_signature` with an Ed25519 signature.
const TIMESTAMPED_SIG_LEN: usize = 8 + 64;

/// Why a cosignature could not be made or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The signature bytes are not an 8-byte timestamp and a 64-byte signature.
    #[error("cosignature has {0} bytes, want 72 (8-byte timestamp and 64-byte Ed25519 signature)")]
    Length(usize),
    /// The timestamp is larger than 2^63 - 1.
    #[error("cosignature timestamp {0} exceeds 2^63 - 1")]
    TimestampTooLarge(u64),
    /// The Ed25519 signature does not verify.
    #[error("cosignature/v1 Ed25519 signature is invalid")]
    BadSignature,
    /// The key is not a cosignature/v1 (0x04) key.
    #[error("key {name} is a {key_type} key, not a cosignature/v1 (0x04) key")]
    WrongKeyType {
        /// Key name.
        name: String,
        /// Its type.
        key_type: KeyType,
    },
    /// The text to cosign is not a checkpoint.
    #[error("refusing to cosign: {0}")]
    NotACheckpoint(#[from] CheckpointError),
    /// The note layer refused the signature (wrong key, limits, invalid signature).
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// The message an Ed25519 cosignature/v1 signs:
/// `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint text.
pub fn signed_message(timestamp: u64, checkpoint_text: &str) -> Vec<u8> {
    format!("{HEADER}time {timestamp}\n{checkpoint_text}").into_bytes()
}

/// Cosigns a checkpoint text (the note text, final newline included) at
/// `timestamp` (POSIX seconds) with a [`KeyType::CosignatureV1`] key, and
/// returns the signature line to append to the checkpoint note. Refuses
/// texts that are not checkpoints.
pub fn sign(
    key: &SignerKey,
    checkpoint_text: &str,
    timestamp: u64,
) -> Result<NoteSignature, CosignatureError> {
    if key.key_type() != KeyType::CosignatureV1 {
        return Err(CosignatureError::WrongKeyType {
            name: key.name().to_owned(),
            key_type: key.key_type(),
        });
    }
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampTooLarge(timestamp));
    }
    Checkpoint::parse(checkpoint_text)?;
    let sig = key.sign_raw(&signed_message(timestamp, checkpoint_text));
    let mut bytes = Vec::with_capacity(TIMESTAMPED_SIG_LEN);
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(&sig);
    Ok(NoteSignature::from_parts(
        key.name().to_owned(),
        key.key_id(),
        bytes,
    ))
}

/// Cosigns a checkpoint note in place: appends the cosignature line.
pub fn cosign(note: &mut Note, key: &SignerKey, timestamp: u64) -> Result<(), CosignatureError> {
    let sig = sign(key, note.text(), timestamp)?;
    note.add_signature(sig)?;
    Ok(())
}

/// Verifies a cosignature line by `key` over `checkpoint_text` and returns
/// its timestamp. `key` must be a [`KeyType::CosignatureV1`] key.
pub fn verify(
    key: &VerifierKey,
    checkpoint_text: &str,
    sig: &NoteSignature,
) -> Result<u64, CosignatureError> {
    if key.key_type() != KeyType::CosignatureV1 {
        return Err(CosignatureError::WrongKeyType {
            name: key.name().to_owned(),
            key_type: key.key_type(),
        });
    }
    // A 0x04 key always yields a timestamp; `None` cannot happen.
    key.verify_signature(checkpoint_text, sig)?
        .ok_or(CosignatureError::BadSignature)
}

/// Verifies `timestamp || signature` bytes under an Ed25519 public key and
/// returns the timestamp. The note layer calls this for `0x04` keys.
pub(crate) fn verify_bytes(
    public: &VerifyingKey,
    text: &str,
    sig: &[u8],
) -> Result<u64, CosignatureError> {
    if sig.len() != TIMESTAMPED_SIG_LEN {
        return Err(CosignatureError::Length(sig.len()));
    }
    let (ts, ed) = sig.split_at(8);
    let mut ts_bytes = [0u8; 8];
    ts_bytes.copy_from_slice(ts);
    let timestamp = u64::from_be_bytes(ts_bytes);
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampTooLarge(timestamp));
    }
    verify_ed25519(public, &signed_message(timestamp, text), ed)
        .map_err(|_| CosignatureError::BadSignature)?;
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKPOINT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn witness() -> SignerKey {
        SignerKey::from_seed("witness.example.com/w1", KeyType::CosignatureV1, &[4; 32]).unwrap()
    }

    #[test]
    fn signed_message_matches_the_spec_example() {
        let want = "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(signed_message(1679315147, CHECKPOINT), want.as_bytes());
        assert!(signed_message(0, CHECKPOINT).starts_with(b"cosignature/v1\ntime 0\n"));
    }

    #[test]
    fn sign_then_verify_returns_the_timestamp() {
        let w = witness();
        for ts in [0, 1, 1_764_236_400, MAX_TIMESTAMP] {
            let sig = sign(&w, CHECKPOINT, ts).unwrap();
            assert_eq!(sig.name(), w.name());
            assert_eq!(sig.key_id(), w.key_id());
            assert_eq!(sig.signature().len(), 72);
            assert_eq!(&sig.signature()[..8], &ts.to_be_bytes());
            assert_eq!(verify(&w.verifier(), CHECKPOINT, &sig), Ok(ts));
        }
    }

    #[test]
    fn signature_is_over_the_cosignature_message() {
        let w = witness();
        let sig = sign(&w, CHECKPOINT, 5).unwrap();
        let ed = ed25519_dalek::Signature::from_slice(&sig.signature()[8..]).unwrap();
        let vk = w.verifier();
        assert!(
            vk.public_key()
                .verify_strict(&signed_message(5, CHECKPOINT), &ed)
                .is_ok()
        );
        assert!(
            vk.public_key()
                .verify_strict(CHECKPOINT.as_bytes(), &ed)
                .is_err()
        );
    }

    #[test]
    fn tampering_fails() {
        let w = witness();
        let sig = sign(&w, CHECKPOINT, 1000).unwrap();
        let other = CHECKPOINT.replace("20852163", "20852164");
        assert_eq!(
            verify(&w.verifier(), &other, &sig),
            Err(CosignatureError::Note(NoteError::InvalidSignature {
                name: w.name().into(),
                key_id: w.key_id(),
                reason: CosignatureError::BadSignature.to_string(),
            }))
        );
        let mut bytes = sig.signature().to_vec();
        bytes[7] ^= 1; // another timestamp
        let forged = NoteSignature::new(sig.name(), sig.key_id(), bytes).unwrap();
        assert!(verify(&w.verifier(), CHECKPOINT, &forged).is_err());
    }

    #[test]
    fn raw_checks() {
        let w = witness().verifier();
        let pk = w.public_key();
        assert_eq!(
            verify_bytes(pk, CHECKPOINT, &[0; 71]),
            Err(CosignatureError::Length(71))
        );
        assert_eq!(
            verify_bytes(pk, CHECKPOINT, &[0; 73]),
            Err(CosignatureError::Length(73))
        );
        let mut big = [0u8; 72];
        big[0] = 0x80;
        assert_eq!(
            verify_bytes(pk, CHECKPOINT, &big),
            Err(CosignatureError::TimestampTooLarge(1 << 63))
        );
        assert_eq!(
            verify_bytes(pk, CHECKPOINT, &[0; 72]),
            Err(CosignatureError::BadSignature)
        );
    }

    #[test]
    fn signing_refuses_bad_input() {
        let w = witness();
        assert_eq!(
            sign(&w, CHECKPOINT, MAX_TIMESTAMP + 1),
            Err(CosignatureError::TimestampTooLarge(MAX_TIMESTAMP + 1))
        );
        assert!(matches!(
            sign(&w, "hello\n", 1),
            Err(CosignatureError::NotACheckpoint(_))
        ));
        let log = SignerKey::from_seed("example.com/behind-the-sofa", KeyType::Ed25519, &[1; 32])
            .unwrap();
        assert!(matches!(
            sign(&log, CHECKPOINT, 1),
            Err(CosignatureError::WrongKeyType { .. })
        ));
        let sig = log.sign(CHECKPOINT).unwrap();
        assert!(matches!(
            verify(&log.verifier(), CHECKPOINT, &sig),
            Err(CosignatureError::WrongKeyType { .. })
        ));
        // A cosignature from another witness is another key's.
        let w2 = SignerKey::from_seed("witness.example.com/w2", KeyType::CosignatureV1, &[5; 32])
            .unwrap();
        let sig2 = sign(&w2, CHECKPOINT, 1).unwrap();
        assert!(matches!(
            verify(&w.verifier(), CHECKPOINT, &sig2),
            Err(CosignatureError::Note(NoteError::KeyMismatch { .. }))
        ));
    }

    #[test]
    fn cosign_appends_to_the_note() {
        let log = SignerKey::from_seed("example.com/behind-the-sofa", KeyType::Ed25519, &[1; 32])
            .unwrap();
        let w = witness();
        let mut note = Note::sign(CHECKPOINT, &[&log]).unwrap();
        cosign(&mut note, &w, 42).unwrap();
        assert_eq!(note.signatures().len(), 2);
        let s = note.to_string();
        assert!(s.starts_with(CHECKPOINT));
        assert!(s.ends_with(&note.signatures()[1].to_line()));
        let verified = Note::parse(s.as_bytes())
            .unwrap()
            .verify(&[w.verifier()])
            .unwrap();
        assert_eq!(verified[0].timestamp, Some(42));
    }
}
