//! C2SP tlog-checkpoint (<https://c2sp.org/tlog-checkpoint>): the signed
//! note text that states a log's tree head.
//!
//! The note text (tlog-checkpoint §Note text) is at least three non-empty,
//! newline-terminated lines:
//!
//! ```text
//! <origin>                      the log's identity, non-empty
//! <tree size>                   ASCII decimal, no leading zeroes ("0" for the empty tree)
//! <root hash>                   standard base64 of the 32-byte RFC 6962 root
//! [<extension line>]...         optional, opaque, non-empty
//! ```
//!
//! [`Checkpoint::parse`] and [`Checkpoint::to_text`] are exact inverses on
//! valid texts. [`Checkpoint::open`] parses a signed checkpoint note and
//! verifies it against the log's key (and optionally witness keys).

use std::fmt;

use super::hash::{Hash, HashParseError};
use super::note::{Note, NoteError, SignerKey, VerifiedSignature, VerifierKey};

/// Why a text is not a checkpoint, or a signed checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text does not end in a newline.
    #[error("checkpoint text must end in a newline")]
    MissingNewline,
    /// The text has an ASCII control character other than newline.
    #[error("checkpoint contains control character 0x{byte:02x} at byte {offset}")]
    ControlCharacter {
        /// The byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// Fewer than three lines.
    #[error("checkpoint has {0} lines, want at least 3 (origin, tree size, root hash)")]
    TooFewLines(usize),
    /// The origin line is empty.
    #[error("checkpoint origin (line 1) is empty")]
    EmptyOrigin,
    /// The tree size line is not canonical ASCII decimal.
    #[error("checkpoint tree size (line 2) {0:?} is not a decimal number without leading zeroes")]
    Size(String),
    /// The root hash line is not base64 of 32 bytes.
    #[error("checkpoint root hash (line 3) is invalid: {0}")]
    Root(#[from] HashParseError),
    /// An extension line is empty.
    #[error("checkpoint extension line {0} is empty")]
    EmptyExtension(usize),
    /// The signed note does not parse or verify.
    #[error("signed checkpoint: {0}")]
    Note(#[from] NoteError),
    /// The fields do not serialise to a checkpoint that parses back to them.
    #[error("checkpoint fields contain line breaks and cannot be written as a checkpoint")]
    Fields,
    /// The note verified, but not with the log's key.
    #[error("checkpoint is not signed by the log key {0}")]
    NotSignedByLog(String),
}

/// A transparency log checkpoint: the tree head at one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (first line). Should match the log's key name.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root hash of the tree at `size`.
    pub root: Hash,
    /// Opaque extension lines, each non-empty and without newline.
    pub extensions: Vec<String>,
}

/// A checkpoint whose note verified, with the note and the keys that verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The note it came from, all signature lines kept (for re-publishing).
    pub note: Note,
    /// The known keys that verified: the log key and any known witnesses.
    pub verified: Vec<VerifiedSignature>,
}

impl Checkpoint {
    /// Parses a checkpoint note text (final newline included). Never panics;
    /// this is a fuzzing entry point.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingNewline)?;
        if let Some(offset) = text.bytes().position(|b| b < 0x20 && b != b'\n') {
            let byte = text.as_bytes()[offset];
            return Err(CheckpointError::ControlCharacter { byte, offset });
        }
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines(lines.len()));
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(size)?;
        let root = Hash::from_base64(root)?;
        if let Some(i) = extensions.iter().position(|l| l.is_empty()) {
            return Err(CheckpointError::EmptyExtension(i + 1));
        }
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size,
            root,
            extensions: extensions.iter().map(|l| (*l).to_owned()).collect(),
        })
    }

    /// The note text of this checkpoint. For a checkpoint that
    /// [`Checkpoint::parse`] accepted, this is the parsed text, byte for byte.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for ext in &self.extensions {
            s.push_str(ext);
            s.push('\n');
        }
        s
    }

    /// Checks the fields (by parsing [`Checkpoint::to_text`] back) and signs
    /// the checkpoint with the log's Ed25519 key. Its name should equal the
    /// origin (tlog-checkpoint §Signatures).
    pub fn sign(&self, log_key: &SignerKey) -> Result<Note, CheckpointError> {
        let text = self.to_text();
        if Checkpoint::parse(&text)? != *self {
            // Only reachable through fields that hide line breaks, e.g. an
            // extension containing '\n'; parse then splits differently.
            return Err(CheckpointError::Fields);
        }
        Ok(Note::sign(&text, &[log_key])?)
    }

    /// Parses the text of an already verified note.
    pub fn from_note(note: &Note) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::parse(note.text())
    }

    /// Parses a signed checkpoint note and verifies it: the log's key must
    /// have signed it, and every signature by `log_key` or one of
    /// `witness_keys` must verify (signatures by other keys are ignored).
    /// Witness quorum is left to the caller, which gets the verified keys.
    pub fn open(
        note: &[u8],
        log_key: &VerifierKey,
        witness_keys: &[VerifierKey],
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let note = Note::parse(note)?;
        let mut keys = Vec::with_capacity(1 + witness_keys.len());
        keys.push(log_key.clone());
        keys.extend_from_slice(witness_keys);
        let verified = note.verify(&keys)?;
        if !verified.iter().any(|v| v.key == *log_key) {
            return Err(CheckpointError::NotSignedByLog(log_key.to_string()));
        }
        let checkpoint = Checkpoint::from_note(&note)?;
        Ok(SignedCheckpoint {
            checkpoint,
            note,
            verified,
        })
    }
}

impl fmt::Display for Checkpoint {
    /// Writes [`Checkpoint::to_text`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Parses a tree size: ASCII digits only, no sign, no leading zero (except "0").
fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    let err = || CheckpointError::Size(s.to_owned());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(err());
    }
    s.parse().map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::cosignature;
    use crate::tlog::hash::empty_tree_hash;
    use crate::tlog::note::{KeyType, SignerKey};
    use proptest::prelude::*;

    const ROOT: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

    fn text(size: &str, root: &str, ext: &str) -> String {
        format!("example.com/behind-the-sofa\n{size}\n{root}\n{ext}")
    }

    #[test]
    fn spec_example_round_trips() {
        let t = text("20852163", ROOT, "");
        let cp = Checkpoint::parse(&t).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(cp.root.to_base64(), ROOT);
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.to_text(), t);
        assert_eq!(cp.to_string(), t);
    }

    #[test]
    fn extensions_round_trip() {
        let t = text("1", ROOT, "ext one\n— ext two\n");
        let cp = Checkpoint::parse(&t).unwrap();
        assert_eq!(cp.extensions, vec!["ext one", "— ext two"]);
        assert_eq!(cp.to_text(), t);
    }

    #[test]
    fn size_bounds() {
        let empty = empty_tree_hash().to_base64();
        assert_eq!(Checkpoint::parse(&text("0", &empty, "")).unwrap().size, 0);
        let max = u64::MAX.to_string();
        assert_eq!(
            Checkpoint::parse(&text(&max, ROOT, "")).unwrap().size,
            u64::MAX
        );
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1.0",
            "0x1",
            "18446744073709551616",
            "١",
        ] {
            assert_eq!(
                Checkpoint::parse(&text(bad, ROOT, "")),
                Err(CheckpointError::Size(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        use CheckpointError as E;
        let cases: Vec<(String, CheckpointError)> = vec![
            (text("1", ROOT, "").trim_end().to_owned(), E::MissingNewline),
            (String::new(), E::MissingNewline),
            ("\n".into(), E::TooFewLines(1)),
            ("origin\n1\n".into(), E::TooFewLines(2)),
            (format!("\n1\n{ROOT}\n"), E::EmptyOrigin),
            (text("1", "AAAA", ""), E::Root(HashParseError::Length(3))),
            (
                text("1", "not base64!", ""),
                E::Root(HashParseError::Base64),
            ),
            (text("1", &ROOT[..43], ""), E::Root(HashParseError::Base64)),
            (text("1", "", ""), E::Root(HashParseError::Length(0))),
            (text("1", ROOT, "\n"), E::EmptyExtension(1)),
            (text("1", ROOT, "a\n\nb\n"), E::EmptyExtension(2)),
            (
                text("1", ROOT, "a\r\n"),
                E::ControlCharacter {
                    byte: b'\r',
                    offset: 76,
                },
            ),
        ];
        for (t, want) in cases {
            assert_eq!(Checkpoint::parse(&t), Err(want), "{t:?}");
        }
    }

    #[test]
    fn non_canonical_root_base64_is_rejected() {
        // Same 32 bytes, but the last character's unused low bits are set.
        let noncanonical = ROOT.replace("q2I=", "q2J=");
        assert!(Checkpoint::parse(&text("1", &noncanonical, "")).is_err());
    }

    #[test]
    fn open_requires_the_log_signature() {
        let log = SignerKey::from_seed("example.com/behind-the-sofa", KeyType::Ed25519, &[1; 32])
            .unwrap();
        let other = SignerKey::from_seed("example.com/other", KeyType::Ed25519, &[2; 32]).unwrap();
        let w = SignerKey::from_seed("w.example", KeyType::CosignatureV1, &[3; 32]).unwrap();
        let t = text("5", ROOT, "");

        let mut note = Note::sign(&t, &[&log]).unwrap();
        cosignature::cosign(&mut note, &w, 99).unwrap();
        let opened = Checkpoint::open(&note.to_bytes(), &log.verifier(), &[w.verifier()]).unwrap();
        assert_eq!(opened.checkpoint, Checkpoint::parse(&t).unwrap());
        assert_eq!(opened.verified.len(), 2);
        assert_eq!(opened.verified[1].timestamp, Some(99));
        assert_eq!(opened.note, note);

        // Signed only by a witness the caller knows: not good enough.
        let mut witness_only = Note::sign(&t, &[&other]).unwrap();
        cosignature::cosign(&mut witness_only, &w, 99).unwrap();
        assert_eq!(
            Checkpoint::open(&witness_only.to_bytes(), &log.verifier(), &[w.verifier()]),
            Err(CheckpointError::NotSignedByLog(log.verifier().to_string()))
        );
        assert!(matches!(
            Checkpoint::open(&witness_only.to_bytes(), &log.verifier(), &[]),
            Err(CheckpointError::Note(NoteError::NoKnownSignature))
        ));

        // A validly signed note whose text is not a checkpoint.
        let not_cp = Note::sign("hello\n", &[&log]).unwrap();
        assert_eq!(
            Checkpoint::open(&not_cp.to_bytes(), &log.verifier(), &[]),
            Err(CheckpointError::TooFewLines(1))
        );
    }

    #[test]
    fn sign_checks_fields() {
        let log = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[1; 32]).unwrap();
        let mut cp = Checkpoint::parse(&text("3", ROOT, "ext\n")).unwrap();
        let note = cp.sign(&log).unwrap();
        let opened = Checkpoint::open(&note.to_bytes(), &log.verifier(), &[]).unwrap();
        assert_eq!(opened.checkpoint, cp);
        cp.extensions.push("a\nb".into());
        assert_eq!(cp.sign(&log), Err(CheckpointError::Fields));
        cp.extensions = vec![String::new()];
        assert_eq!(cp.sign(&log), Err(CheckpointError::EmptyExtension(1)));
        cp.extensions.clear();
        cp.origin = "a\u{1}".into();
        assert!(matches!(
            cp.sign(&log),
            Err(CheckpointError::ControlCharacter { .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,20}\n[0-9+-]{0,22}\n[A-Za-z0-9+/=]{0,48}\n(\\PC{0,10}\n){0,3}") {
            if let Ok(cp) = Checkpoint::parse(&s) {
                prop_assert_eq!(cp.to_text(), s);
            }
        }

        #[test]
        fn round_trips(origin in "[!-~]{1,30}", size in any::<u64>(), root in any::<[u8; 32]>(),
                       extensions in proptest::collection::vec("[ -~]{1,20}", 0..3)) {
            let cp = Checkpoint { origin, size, root: Hash(root), extensions };
            prop_assert_eq!(Checkpoint::parse(&cp.to_text()), Ok(cp));
        }
    }
}
