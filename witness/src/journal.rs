//! The witness's two append-only files, as pure formats: the state journal
//! (one [`StateRecord`] per cosigned checkpoint) and the evidence file (one
//! [`EvidenceRecord`] per log-signed checkpoint that contradicted the state).
//!
//! Both are JSON Lines: one JSON object per line, each line ending in a
//! newline. Records are appended and made durable (`fdatasync`) before the
//! witness answers, so after a crash the only damage possible is a final
//! line that was being written and never acknowledged: a tail without a
//! newline. [`replay_state`] and [`parse_evidence`] drop such a tail and
//! report how many bytes are valid; any complete line that does not parse
//! is corruption and an error (the witness refuses to start rather than
//! guess at its state).
//!
//! The journal's latest record per origin is the state tlog-witness requires
//! (§Introduction: "the latest checkpoint it observed and verified"). The
//! server rewrites the journal with only those records when it grows large.

use std::collections::BTreeMap;

use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::note::Note;
use serde::{Deserialize, Serialize};

use crate::request::AddCheckpointRequest;
use crate::verdict::{EvidenceKind, TreeHead};

/// Why a journal or evidence file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// A complete line that is not a valid record.
    #[error("line {line}: {why}")]
    BadRecord {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A record for an origin whose tree is smaller than an earlier one's,
    /// or the same size with another root: the journal would roll back.
    #[error(
        "line {line}: checkpoint for {origin:?} of size {size} does not extend the one of size {previous} before it"
    )]
    Backwards {
        /// 1-based line number.
        line: usize,
        /// The origin.
        origin: String,
        /// The size of this record.
        size: u64,
        /// The size of the earlier record.
        previous: u64,
    },
}

/// A cosigned checkpoint: the checkpoint text, the log's signature lines
/// that verified, and the witness's cosignature line, as one note. This is
/// what the monitoring endpoint serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// The cosigned note.
    pub note: Note,
    /// Its parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// When it was cosigned (POSIX seconds; the cosignature's timestamp).
    pub time: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    note: String,
    time: u64,
}

impl StateRecord {
    /// A record of `note`, which must hold a checkpoint.
    pub fn new(note: Note, time: u64) -> Result<StateRecord, String> {
        let checkpoint = Checkpoint::from_note(&note).map_err(|e| e.to_string())?;
        Ok(StateRecord {
            note,
            checkpoint,
            time,
        })
    }

    /// The tree head the record states.
    pub fn head(&self) -> TreeHead {
        TreeHead {
            size: self.checkpoint.size,
            root: self.checkpoint.root,
        }
    }

    /// The journal line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let raw = RawState {
            note: note_string(&self.note),
            time: self.time,
        };
        json_line(&raw)
    }

    /// Parses one journal line (newline removed).
    pub fn parse_line(line: &[u8]) -> Result<StateRecord, String> {
        let raw: RawState = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let note = Note::parse(raw.note.as_bytes()).map_err(|e| e.to_string())?;
        StateRecord::new(note, raw.time)
    }
}

/// The result of reading a journal: the latest record per origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// The latest cosigned checkpoint of each origin.
    pub latest: BTreeMap<String, StateRecord>,
    /// Complete records read.
    pub records: usize,
    /// Bytes of the file that are complete lines; the rest is a torn tail.
    pub valid_len: usize,
}

/// Reads a journal. A torn final line is ignored (see the module docs);
/// records of one origin must never go back (smaller size, or equal size
/// and another root), which the witness's compare-and-swap guarantees.
/// Never panics; a fuzzing entry point.
pub fn replay_state(bytes: &[u8]) -> Result<Replay, JournalError> {
    let (lines, valid_len) = complete_lines(bytes);
    let mut replay = Replay {
        valid_len,
        ..Replay::default()
    };
    for (i, line) in lines.into_iter().enumerate() {
        let number = i + 1;
        let record = StateRecord::parse_line(line)
            .map_err(|why| JournalError::BadRecord { line: number, why })?;
        let origin = record.checkpoint.origin.clone();
        if let Some(previous) = replay.latest.get(&origin) {
            let (old, new) = (previous.head(), record.head());
            if new.size < old.size || (new.size == old.size && new.root != old.root) {
                return Err(JournalError::Backwards {
                    line: number,
                    origin,
                    size: new.size,
                    previous: old.size,
                });
            }
        }
        replay.latest.insert(origin, record);
        replay.records += 1;
    }
    Ok(replay)
}

/// A log-signed request that contradicted the witness's state, kept as
/// possible proof of log misbehaviour (tlog-witness §add-checkpoint: "the
/// witness MAY log the request").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRecord {
    /// The log's origin.
    pub origin: String,
    /// `fork`, `bad_empty_tree` or `inconsistent_proof`.
    pub kind: String,
    /// When the request arrived (UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`).
    pub received: String,
    /// The same instant in milliseconds since the POSIX epoch.
    pub received_unix_ms: u64,
    /// The HTTP status the witness answered.
    pub status: u16,
    /// The latest cosigned checkpoint it contradicts (the cosigned note),
    /// `null` if the witness had cosigned nothing for the log.
    pub stored: Option<String>,
    /// The conflicting checkpoint, as the log signed it.
    pub checkpoint: String,
    /// The whole request body: old size, proof and checkpoint.
    pub request: String,
}

impl EvidenceRecord {
    /// The evidence file line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        json_line(self)
    }

    /// Parses one evidence line (newline removed), checking that the request
    /// is a well-formed `add-checkpoint` body holding the stated checkpoint.
    pub fn parse_line(line: &[u8]) -> Result<EvidenceRecord, String> {
        let record: EvidenceRecord = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        if kind_from_name(&record.kind).is_none() {
            return Err(format!("unknown evidence kind {:?}", record.kind));
        }
        let request = AddCheckpointRequest::parse(record.request.as_bytes())
            .map_err(|e| format!("request: {e}"))?;
        if note_string(request.note()) != record.checkpoint
            || request.checkpoint().origin != record.origin
        {
            return Err("the checkpoint is not the request's".into());
        }
        Ok(record)
    }
}

/// Reads an evidence file; a torn final line is ignored. Returns the
/// records and the length of the valid prefix. Never panics.
pub fn parse_evidence(bytes: &[u8]) -> Result<(Vec<EvidenceRecord>, usize), JournalError> {
    let (lines, valid_len) = complete_lines(bytes);
    let records = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            EvidenceRecord::parse_line(line)
                .map_err(|why| JournalError::BadRecord { line: i + 1, why })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((records, valid_len))
}

/// The name an [`EvidenceKind`] has in the evidence file.
pub fn kind_name(kind: EvidenceKind) -> &'static str {
    match kind {
        EvidenceKind::Fork => "fork",
        EvidenceKind::BadEmptyTree => "bad_empty_tree",
        EvidenceKind::InconsistentProof => "inconsistent_proof",
    }
}

fn kind_from_name(name: &str) -> Option<EvidenceKind> {
    [
        EvidenceKind::Fork,
        EvidenceKind::BadEmptyTree,
        EvidenceKind::InconsistentProof,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// A note's bytes as a string (notes are UTF-8 by construction).
pub fn note_string(note: &Note) -> String {
    String::from_utf8(note.to_bytes()).expect("notes are UTF-8")
}

/// The newline-terminated lines of `bytes` (newlines removed), and the
/// length they cover; bytes after the last newline are a torn tail.
fn complete_lines(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let valid_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines = bytes[..valid_len]
        .split(|&b| b == b'\n')
        .take(bytes[..valid_len].iter().filter(|&&b| b == b'\n').count())
        .collect();
    (lines, valid_len)
}

/// One JSON object and a newline.
fn json_line(value: &impl Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).expect("records serialise");
    out.push(b'\n');
    out
}
