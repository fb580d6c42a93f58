//! modeltrail: a transparency log for model governance.
//!
//! Every governance artefact of a production model (model card, version
//! hash, approval, activation or rollback, inference) is appended as a leaf
//! of an RFC 6962 Merkle log whose checkpoints follow the C2SP formats, so that
//! auditors can verify inclusion and consistency offline and witnesses can
//! refuse a rewritten history.
//!
//! [`tlog`] is the pure core: Merkle math, proofs and the C2SP formats. It
//! has no I/O runtime and builds with `--no-default-features`.

pub mod tlog;

#[cfg(feature = "cli")]
pub mod cli;
