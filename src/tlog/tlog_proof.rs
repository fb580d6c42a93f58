//! c2sp.org/tlog-proof@v1: a self-contained, offline-verifiable proof that an
//! entry is in a log, as text.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>                      (optional, unauthenticated)
//! index <decimal, no leading zeros>
//! <base64 hash>                       (zero or more: the inclusion proof,
//! ...                                  leaf's sibling first)
//!
//! <the checkpoint, a signed note, verbatim>
//! ```
//!
//! Verification checks the checkpoint under a [`Policy`] (log signature and
//! witness quorum, see [`super::policy`]) and then the RFC 9162 inclusion
//! proof of the entry's leaf hash against the checkpoint's root.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::checkpoint::Checkpoint;
use super::hash::{Hash, leaf_hash};
use super::policy::{Policy, PolicyError};
use super::proof::{VerifyError, verify_inclusion};

/// The first line of every tlog-proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The largest tlog-proof accepted, in bytes: a 64-hash proof and a
/// checkpoint with many cosignatures fit many times over.
pub const MAX_PROOF_BYTES: usize = 1 << 20;

/// More hashes than any tree of 2^64 leaves needs in an inclusion proof.
const MAX_PROOF_HASHES: usize = 64;

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated application data (the `extra` line).
    pub extra: Option<Vec<u8>>,
    /// The zero-based index of the entry in the log.
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up to the root's child.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a tlog-proof is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofParseError {
    /// Larger than [`MAX_PROOF_BYTES`].
    #[error("tlog-proof is larger than {MAX_PROOF_BYTES} bytes")]
    TooLarge,
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("tlog-proof does not start with the line {HEADER:?}")]
    BadHeader,
    /// The `extra` line's data is not standard base64.
    #[error("tlog-proof extra data is not valid base64")]
    BadExtra,
    /// The `index` line is missing or not a canonical decimal.
    #[error("tlog-proof has no valid \"index <n>\" line (decimal, no leading zeros)")]
    BadIndex,
    /// A proof line is not a base64 SHA-256 hash.
    #[error("tlog-proof line {line} is not a base64 32-byte hash")]
    BadHash {
        /// 1-based line number.
        line: usize,
    },
    /// More proof hashes than any tree needs.
    #[error("tlog-proof has more than {MAX_PROOF_HASHES} proof hashes")]
    TooManyHashes,
    /// The empty line before the checkpoint is missing, or nothing follows it.
    #[error("tlog-proof has no checkpoint after an empty line")]
    MissingCheckpoint,
}

/// Why a tlog-proof does not prove its entry.
#[derive(Debug, thiserror::Error)]
pub enum TlogProofError {
    /// The text is malformed.
    #[error(transparent)]
    Parse(#[from] TlogProofParseError),
    /// The checkpoint does not satisfy the policy.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] PolicyError),
    /// The inclusion proof fails against the checkpoint.
    #[error("inclusion proof of entry {index} in tree of size {size}: {source}")]
    Inclusion {
        /// The entry's index.
        index: u64,
        /// The checkpoint's tree size.
        size: u64,
        /// What failed.
        source: VerifyError,
    },
}

impl TlogProof {
    /// Parses a tlog-proof, refusing anything not exactly in the format.
    pub fn parse(text: &[u8]) -> Result<TlogProof, TlogProofParseError> {
        if text.len() > MAX_PROOF_BYTES {
            return Err(TlogProofParseError::TooLarge);
        }
        let mut lines = Lines {
            rest: text,
            number: 0,
        };
        if lines.next() != Some(HEADER.as_bytes()) {
            return Err(TlogProofParseError::BadHeader);
        }
        let mut line = lines.next().ok_or(TlogProofParseError::BadIndex)?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix(b"extra ") {
            let data = BASE64
                .decode(data)
                .map_err(|_| TlogProofParseError::BadExtra)?;
            extra = Some(data);
            line = lines.next().ok_or(TlogProofParseError::BadIndex)?;
        }
        let index = line
            .strip_prefix(b"index ")
            .and_then(parse_decimal)
            .ok_or(TlogProofParseError::BadIndex)?;

        let mut proof = Vec::new();
        loop {
            let line = lines.next().ok_or(TlogProofParseError::MissingCheckpoint)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(TlogProofParseError::TooManyHashes);
            }
            let hash = std::str::from_utf8(line)
                .ok()
                .and_then(|s| Hash::from_base64(s).ok())
                .ok_or(TlogProofParseError::BadHash { line: lines.number })?;
            proof.push(hash);
        }
        let rest = lines.rest;
        if rest.is_empty() {
            return Err(TlogProofParseError::MissingCheckpoint);
        }
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// Serialises the proof in the tlog-proof text format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 45 * self.proof.len() + self.checkpoint.len());
        out.extend_from_slice(HEADER.as_bytes());
        out.push(b'\n');
        if let Some(extra) = &self.extra {
            out.extend_from_slice(b"extra ");
            out.extend_from_slice(BASE64.encode(extra).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(format!("index {}\n", self.index).as_bytes());
        for hash in &self.proof {
            out.extend_from_slice(hash.to_base64().as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Verifies that `entry` (the leaf's bytes) is at [`Self::index`] in a
    /// checkpoint that satisfies `policy`, and returns that checkpoint.
    pub fn verify(&self, entry: &[u8], policy: &Policy) -> Result<Checkpoint, TlogProofError> {
        self.verify_leaf_hash(&leaf_hash(entry), policy)
    }

    /// Like [`Self::verify`], for a caller that has only the leaf hash.
    pub fn verify_leaf_hash(
        &self,
        leaf: &Hash,
        policy: &Policy,
    ) -> Result<Checkpoint, TlogProofError> {
        let checkpoint = policy.verify_checkpoint(&self.checkpoint)?;
        verify_inclusion(
            leaf,
            self.index,
            checkpoint.size,
            &self.proof,
            &checkpoint.root,
        )
        .map_err(|source| TlogProofError::Inclusion {
            index: self.index,
            size: checkpoint.size,
            source,
        })?;
        Ok(checkpoint)
    }
}

/// Splits newline-terminated lines off the front of a byte string.
struct Lines<'a> {
    rest: &'a [u8],
    /// 1-based number of the line last returned.
    number: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its newline, or `None` if no complete line is left.
    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == b'\n')?;
        let line = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        self.number += 1;
        Some(line)
    }
}

/// Parses an ASCII decimal with no sign and no leading zeros (except `0`).
pub(crate) fn parse_decimal(text: &[u8]) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.iter().all(u8::is_ascii_digit)
        && (text[0] != b'0' || text.len() == 1);
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::cosignature::cosign;
    use crate::tlog::hash::{stored_hashes, tree_hash};
    use crate::tlog::note::{KeyType, Note, SignerKey};
    use crate::tlog::proof::prove_inclusion;

    const ORIGIN: &str = "example.com/log";

    fn keys() -> (SignerKey, SignerKey) {
        (
            SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[1; 32]).unwrap(),
            SignerKey::from_seed("witness.example", KeyType::CosignatureV1, &[2; 32]).unwrap(),
        )
    }

    fn policy() -> Policy {
        let (log, witness) = keys();
        let text = format!(
            "log {}\nwitness w {}\nquorum w\n",
            log.verifier(),
            witness.verifier()
        );
        Policy::parse(text.as_bytes()).unwrap()
    }

    fn entry(i: u64) -> Vec<u8> {
        format!("entry {i}").into_bytes()
    }

    /// A real tlog-proof for entry `index` of a cosigned tree of `size` entries.
    fn make_proof(size: u64, index: u64, extra: Option<Vec<u8>>) -> TlogProof {
        let mut stored = Vec::new();
        for i in 0..size {
            stored.extend(stored_hashes(i, &entry(i), &stored).unwrap());
        }
        let root = tree_hash(size, &stored).unwrap();
        let (log, witness) = keys();
        let mut note = Note::sign(&format!("{ORIGIN}\n{size}\n{root}\n"), &[&log]).unwrap();
        cosign(&mut note, &witness, 1_764_236_400).unwrap();
        TlogProof {
            extra,
            index,
            proof: prove_inclusion(size, index, &stored).unwrap(),
            checkpoint: note.to_bytes(),
        }
    }

    #[test]
    fn round_trips_byte_for_byte() {
        for extra in [None, Some(b"context".to_vec()), Some(Vec::new())] {
            let proof = make_proof(13, 6, extra);
            let bytes = proof.to_bytes();
            let parsed = TlogProof::parse(&bytes).unwrap();
            assert_eq!(parsed, proof);
            assert_eq!(parsed.to_bytes(), bytes);
        }
    }

    #[test]
    fn verifies_every_entry_and_no_other() {
        let policy = policy();
        for index in 0..13 {
            let proof = make_proof(13, index, None);
            let checkpoint = proof.verify(&entry(index), &policy).unwrap();
            assert_eq!(checkpoint.size, 13);
            assert!(matches!(
                proof.verify(&entry(index + 1), &policy),
                Err(TlogProofError::Inclusion { .. })
            ));
        }
    }

    #[test]
    fn a_single_entry_tree_has_no_proof_lines() {
        let proof = make_proof(1, 0, None);
        assert!(proof.proof.is_empty());
        let text = String::from_utf8(proof.to_bytes()).unwrap();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 0\n\nexample.com/log\n1\n"));
        proof.verify(&entry(0), &policy()).unwrap();
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let policy = policy();
        let bytes = make_proof(6, 4, Some(b"x".to_vec())).to_bytes();
        // The extra line is unauthenticated by design; every other byte matters.
        let extra_line = bytes.iter().skip(23).position(|&b| b == b'\n').unwrap() + 24;
        for at in extra_line..bytes.len() {
            for bit in 0..8 {
                let mut tampered = bytes.clone();
                tampered[at] ^= 1 << bit;
                let verdict = TlogProof::parse(&tampered)
                    .map_err(TlogProofError::from)
                    .and_then(|p| p.verify(&entry(4), &policy));
                assert!(verdict.is_err(), "byte {at} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let good = String::from_utf8(make_proof(6, 4, None).to_bytes()).unwrap();
        let cases = [
            ("", TlogProofParseError::BadHeader),
            (
                "c2sp.org/tlog-proof@v2\nindex 0\n\nx\n",
                TlogProofParseError::BadHeader,
            ),
            (
                "c2sp.org/tlog-proof@v1\nindex 01\n\nx\n",
                TlogProofParseError::BadIndex,
            ),
            (
                "c2sp.org/tlog-proof@v1\nindex -1\n\nx\n",
                TlogProofParseError::BadIndex,
            ),
            (
                "c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\nx\n",
                TlogProofParseError::BadIndex,
            ),
            (
                "c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\nx\n",
                TlogProofParseError::BadExtra,
            ),
            (
                "c2sp.org/tlog-proof@v1\nindex 0\nnot-a-hash\n\nx\n",
                TlogProofParseError::BadHash { line: 3 },
            ),
            (
                "c2sp.org/tlog-proof@v1\nindex 0\n",
                TlogProofParseError::MissingCheckpoint,
            ),
            (
                "c2sp.org/tlog-proof@v1\nindex 0\n\n",
                TlogProofParseError::MissingCheckpoint,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(TlogProof::parse(text.as_bytes()), Err(want), "{text:?}");
        }
        let too_many = good.replacen(
            "index 4\n",
            &format!(
                "index 4\n{}",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n".repeat(65)
            ),
            1,
        );
        assert_eq!(
            TlogProof::parse(too_many.as_bytes()),
            Err(TlogProofParseError::TooManyHashes)
        );
    }

    #[test]
    fn a_checkpoint_short_of_quorum_is_refused() {
        let (log, _) = keys();
        let mut proof = make_proof(6, 2, None);
        let note = Note::parse(&proof.checkpoint).unwrap();
        proof.checkpoint = Note::sign(note.text(), &[&log]).unwrap().to_bytes();
        assert!(matches!(
            proof.verify(&entry(2), &policy()),
            Err(TlogProofError::Checkpoint(PolicyError::QuorumNotMet { .. }))
        ));
    }
}
