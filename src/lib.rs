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

/// An error and its causes on one line, outermost first, joined by `": "`,
/// each cause once: a cause whose text the previous message already contains
/// (an error that prints its source, `"…: {0}"`, and also returns it from
/// `source()`) is left out. Every CLI error line is printed through this.
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut previous = line.clone();
    let mut cause = err.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !previous.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        previous = text;
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("note has no signature lines")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("bad note: {0}")]
    struct Repeats(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("tlog-proof rejected")]
    struct Outer(#[source] Repeats);

    #[test]
    fn error_line_prints_each_cause_once() {
        assert_eq!(
            super::error_line(&Outer(Repeats(Inner))),
            "tlog-proof rejected: bad note: note has no signature lines"
        );
        assert_eq!(super::error_line(&Inner), "note has no signature lines");
    }
}
