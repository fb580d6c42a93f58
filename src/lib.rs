//! modeltrail: a transparency log for model governance.
//!
//! Every governance artefact of a production model (model card, version
//! hash, approval, activation or rollback, inference) is appended as a leaf
//! of an RFC 6962 Merkle log whose checkpoints follow the C2SP formats, so that
//! auditors can verify inclusion and consistency offline and witnesses can
//! refuse a rewritten history.
//!
//! [`tlog`] is the pure core: Merkle math, proofs and the C2SP formats;
//! [`entry`] the signed governance entries; [`audit`] evidence files, their
//! offline verification, the chain replay and the committee review. They
//! have no I/O runtime and build with `--no-default-features`. The log server (`store`, `log`,
//! `server`) needs the `server` feature.

pub mod audit;
pub mod entry;
pub mod tlog;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "server")]
pub mod front;
#[cfg(feature = "server")]
pub mod log;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "cli")]
pub mod weights;
