//! The body of a c2sp.org/tlog-witness `POST /add-checkpoint` request:
//!
//! ```text
//! old <old size>                 ASCII decimal, no leading zeroes ("0" for none)
//! <consistency proof hash>       zero to 63 lines, standard base64 of 32 bytes
//! ...
//!                                an empty line
//! <signed checkpoint note>       verbatim: text, empty line, signature lines
//! ```
//!
//! Every line ends in a newline (U+000A). [`AddCheckpointRequest::parse`]
//! checks only the format; whether the witness cosigns is
//! the witness's decision (`modeltrail-witness`'s `verdict` module) (so "old size larger than the checkpoint"
//! parses, and is refused there with the spec's status).
//!
//! # Limits
//!
//! - at most [`MAX_PROOF_LINES`] (63) proof lines, the spec's bound on clients;
//! - old size and checkpoint size at most [`MAX_TREE_SIZE`] (`2^63 - 1`), the
//!   core's bound on tree sizes;
//! - the note at most [`MAX_NOTE_SIZE`] (1 MiB) with at most 100 signatures,
//!   the core's note limits;
//! - hence the whole body at most [`MAX_REQUEST_SIZE`], checked first, so a
//!   server can also use it as its body read limit.
//!
//! [`AddCheckpointRequest::to_bytes`] and [`AddCheckpointRequest::parse`] are
//! exact inverses: every accepted body serialises back byte for byte (the
//! core's base64 and decimal parsers accept only canonical forms).

use super::Hash;
use super::checkpoint::{Checkpoint, CheckpointError};
use super::hash::HashParseError;
use super::note::{MAX_NOTE_SIZE, Note, NoteError};
use super::tile::MAX_TREE_SIZE;

/// The `Content-Type` of a 409 answer, whose body is the witness's size and
/// a newline (tlog-witness §add-checkpoint).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The most consistency proof lines a request may carry (tlog-witness: "The
/// client MUST NOT send more than 63 consistency proof lines").
pub const MAX_PROOF_LINES: usize = 63;

/// The longest old size line: `old `, the 19 digits of `2^63 - 1`, newline.
const MAX_OLD_LINE_LEN: usize = 4 + 19 + 1;

/// A proof line: 44 base64 characters and a newline.
const PROOF_LINE_LEN: usize = 44 + 1;

/// The largest request body accepted, in bytes: the longest old size line,
/// [`MAX_PROOF_LINES`] proof lines, the empty line and a note of
/// [`MAX_NOTE_SIZE`]. Every valid request fits; a server may stop reading past it.
pub const MAX_REQUEST_SIZE: usize =
    MAX_OLD_LINE_LEN + MAX_PROOF_LINES * PROOF_LINE_LEN + 1 + MAX_NOTE_SIZE;

/// The prefix of the first line.
const OLD_PREFIX: &[u8] = b"old ";

/// Why a body is not a well-formed `add-checkpoint` request. Every variant is
/// a "400 Bad Request".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is larger than [`MAX_REQUEST_SIZE`].
    #[error("request is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Size of the body.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The first line is not `old ` followed by a newline-terminated size.
    #[error("request does not start with an old size line \"old <size>\\n\"")]
    MissingOldLine,
    /// The old size is not canonical ASCII decimal within [`MAX_TREE_SIZE`].
    #[error("old size {0:?} is not a decimal number without leading zeroes, at most 2^63 - 1")]
    OldSize(String),
    /// A consistency proof line is not standard base64 of 32 bytes.
    #[error("consistency proof line {line}: {source}")]
    ProofLine {
        /// 1-based number of the proof line.
        line: usize,
        /// Why it is not a hash.
        source: HashParseError,
    },
    /// More than [`MAX_PROOF_LINES`] consistency proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    /// No empty line ends the proof lines (or a line lacks its newline).
    #[error("no empty line between the proof lines and the checkpoint")]
    MissingSeparator,
    /// The checkpoint is not a well-formed signed note.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The note text is not a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint's tree size is beyond [`MAX_TREE_SIZE`].
    #[error("checkpoint size {0} is larger than 2^63 - 1")]
    CheckpointSizeTooLarge(u64),
}

/// A well-formed `add-checkpoint` request: old size, consistency proof and
/// signed checkpoint (signatures not yet verified). Its fields are private
/// so that every value is within the limits and serialises to a body that
/// [`AddCheckpointRequest::parse`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    old_size: u64,
    proof: Vec<Hash>,
    note: Note,
    checkpoint: Checkpoint,
}

impl AddCheckpointRequest {
    /// Builds a request, as a log does: checks the limits and that the note
    /// text is a checkpoint. Signatures are not verified.
    pub fn new(old_size: u64, proof: Vec<Hash>, note: Note) -> Result<Self, RequestError> {
        if old_size > MAX_TREE_SIZE {
            return Err(RequestError::OldSize(old_size.to_string()));
        }
        if proof.len() > MAX_PROOF_LINES {
            return Err(RequestError::TooManyProofLines);
        }
        let checkpoint = Checkpoint::from_note(&note)?;
        if checkpoint.size > MAX_TREE_SIZE {
            return Err(RequestError::CheckpointSizeTooLarge(checkpoint.size));
        }
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            note,
            checkpoint,
        })
    }

    /// Parses a request body. Never panics, whatever the input; this is a
    /// fuzzing entry point.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        if body.len() > MAX_REQUEST_SIZE {
            return Err(RequestError::TooLarge {
                size: body.len(),
                max: MAX_REQUEST_SIZE,
            });
        }
        let (old_line, mut rest) = split_line(body).ok_or(RequestError::MissingOldLine)?;
        let old_size = parse_old_line(old_line)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = split_line(rest).ok_or(RequestError::MissingSeparator)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            proof.push(parse_proof_line(line, proof.len() + 1)?);
        }
        AddCheckpointRequest::new(old_size, proof, Note::parse(rest)?)
    }

    /// The request body, as a log sends it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.note.to_bytes());
        out
    }

    /// The size of the checkpoint the log believes the witness last cosigned.
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The consistency proof from the old size to the checkpoint's size.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The signed checkpoint note, all signature lines kept.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The checkpoint the note's text states.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

/// Splits off the first newline-terminated line (newline dropped), or `None`
/// if there is no newline.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// Parses `old <size>` (newline already dropped).
fn parse_old_line(line: &[u8]) -> Result<u64, RequestError> {
    let digits = line
        .strip_prefix(OLD_PREFIX)
        .ok_or(RequestError::MissingOldLine)?;
    let err = || RequestError::OldSize(String::from_utf8_lossy(digits).into_owned());
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits[0] != b'0');
    if !canonical {
        return Err(err());
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n <= MAX_TREE_SIZE)
        .ok_or_else(err)
}

/// Parses one proof line (newline already dropped); `line` numbers errors.
fn parse_proof_line(bytes: &[u8], line: usize) -> Result<Hash, RequestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| RequestError::ProofLine {
        line,
        source: HashParseError::Base64,
    })?;
    Hash::from_base64(text).map_err(|source| RequestError::ProofLine { line, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_line_is_canonical_decimal() {
        assert_eq!(parse_old_line(b"old 0"), Ok(0));
        assert_eq!(parse_old_line(b"old 20852014"), Ok(20852014));
        assert_eq!(
            parse_old_line(format!("old {MAX_TREE_SIZE}").as_bytes()),
            Ok(MAX_TREE_SIZE)
        );
        for bad in [
            "old ",
            "old 00",
            "old 01",
            "old +1",
            "old -1",
            "old 1 ",
            "old  1",
            "old 0x1",
            "old 9223372036854775808",
            "old 18446744073709551616",
        ] {
            assert!(
                matches!(
                    parse_old_line(bad.as_bytes()),
                    Err(RequestError::OldSize(_))
                ),
                "{bad:?}"
            );
        }
        for bad in ["", "old", "Old 1", "new 1", "old\t1"] {
            assert_eq!(
                parse_old_line(bad.as_bytes()),
                Err(RequestError::MissingOldLine),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn max_request_size_covers_the_longest_header() {
        let header = format!("old {MAX_TREE_SIZE}\n");
        assert_eq!(header.len(), MAX_OLD_LINE_LEN);
        assert_eq!(Hash::default().to_base64().len() + 1, PROOF_LINE_LEN);
    }
}
