//! `modeltrail-witness`: a transparency-log witness implementing
//! c2sp.org/tlog-witness (<https://c2sp.org/tlog-witness>) on the modeltrail
//! tlog core.
//!
//! This crate is, for now, the pure part of the `add-checkpoint` call, with
//! no I/O, clock or storage:
//!
//! - [`request`] parses and serialises the `POST /add-checkpoint` body (the
//!   witness reads it, a log writes it);
//! - [`verdict`] decides what the witness answers, given the state it stored
//!   for the log: a cosignature and the new state to persist, or a refusal
//!   mapped to the spec's HTTP status, plus any evidence of log misbehaviour.
//!
//! The HTTP server and durable state build on these; they must persist the
//! new state atomically with the old-size check (tlog-witness §add-checkpoint).

pub mod request;
pub mod verdict;

pub use request::{AddCheckpointRequest, MAX_PROOF_LINES, MAX_REQUEST_SIZE, RequestError};
pub use verdict::{
    Cosigned, Decision, Evidence, EvidenceKind, KnownLog, Refusal, SIZE_CONTENT_TYPE, TreeHead,
    add_checkpoint,
};
