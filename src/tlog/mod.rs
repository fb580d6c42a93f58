//! The transparency-log core: RFC 6962 / RFC 9162 Merkle math and proofs, and
//! the C2SP formats (signed-note, tlog-checkpoint, tlog-cosignature,
//! tlog-tiles, tlog-proof, tlog-policy).
//!
//! Everything here is pure computation: no files, no network, no async. Every
//! parser returns a typed error and never panics, whatever its input; broken
//! internal invariants ("bad math") are bugs and panic.

pub mod add_checkpoint;
pub mod checkpoint;
pub mod compact;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod policy;
pub mod proof;
pub mod tile;
pub mod tlog_proof;

pub use hash::{Hash, HashReader, empty_tree_hash, leaf_hash, node_hash};
