//! The auditor's tools (DESIGN "Processes and interfaces": offline tools).
//!
//! - [`evidence`]: the evidence file format — one question's entries, each
//!   verbatim with a c2sp.org/tlog-proof against one checkpoint.
//! - [`verify`]: offline verification of an evidence file under a
//!   c2sp.org/tlog-policy, answering the question in plain language.
//! - [`replay`]: the chain rules ([`crate::entry::chain`]) replayed over a
//!   log's entries in order, reporting every break.
//! - [`scan`] (feature `cli`): the streaming chain audit over tlog-tiles
//!   entry bundles, authenticated by recomputing the checkpoint's root.
//! - [`review`]: the committee's Markdown review of the entries between two
//!   consistent checkpoints.
//!
//! Everything but [`scan`] is pure (no I/O, no runtime) and builds with
//! `--no-default-features`.

pub mod evidence;
pub mod replay;
pub mod review;
#[cfg(feature = "cli")]
pub mod scan;
pub mod verify;
