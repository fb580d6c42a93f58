//! `modeltrail-witness`: a transparency-log witness implementing
//! c2sp.org/tlog-witness (<https://c2sp.org/tlog-witness>) on the modeltrail
//! tlog core.
//!
//! The pure part, with no I/O, clock or runtime (what the fuzz targets build):
//!
//! - [`request`] parses and serialises the `POST /add-checkpoint` body (the
//!   witness reads it, a log writes it);
//! - [`verdict`] decides what the witness answers, given the state it stored
//!   for the log: a cosignature and the new state to persist, or a refusal
//!   mapped to the spec's HTTP status, plus any evidence of log misbehaviour;
//! - [`config`] and [`journal`] are the formats of the configuration, the
//!   state journal and the evidence file.
//!
//! With the default feature `server`, the binary's parts: [`store`] (the
//! data directory, group-committed durable state), [`server`] (HTTP),
//! [`cli`] and [`bench`] (the load generator).

pub mod config;
pub mod journal;
/// The request body format lives in the core, which the log uses to send it.
pub use modeltrail::tlog::add_checkpoint as request;
pub mod verdict;

#[cfg(feature = "server")]
pub mod bench;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;

pub use request::{AddCheckpointRequest, MAX_PROOF_LINES, MAX_REQUEST_SIZE, RequestError};
pub use verdict::{
    Cosigned, Decision, Evidence, EvidenceKind, KnownLog, Refusal, SIZE_CONTENT_TYPE, TreeHead,
    add_checkpoint,
};
