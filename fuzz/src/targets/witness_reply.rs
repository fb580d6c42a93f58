//! The log's reading of a witness's replies (`log::witness`): a 409's
//! `text/x.tlog.size` body (`parse_size`), and a 200's cosignature lines for
//! the fixed log-signed checkpoint (`read_cosignature`), on arbitrary bytes.
//!
//! A size parses only from its canonical decimal and a newline. A reply is
//! accepted only when it carries, as one of its lines, a cosignature by the
//! fixed witness key that verifies over the checkpoint: the fuzzer cannot
//! forge one, so what it accepts is a real line (from the seeds) kept whole.

use modeltrail::log::witness::{parse_size, read_cosignature};
use modeltrail::tlog::cosignature;
use modeltrail::tlog::note::Note;

use crate::{checkpoint_note, witness_vkey};

/// The target: `fuzz_targets/witness_reply.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    if let Some(size) = parse_size(data) {
        assert_eq!(format!("{size}\n").as_bytes(), data);
    }
    let note = checkpoint_note();
    let Ok(sig) = read_cosignature(&witness_vkey(), note, data) else {
        return;
    };
    let text = Note::parse(note)
        .expect("the fixed note parses")
        .text()
        .to_owned();
    assert!(cosignature::verify(&witness_vkey(), &text, &sig).is_ok());
    let line = sig.to_line();
    assert!(
        data.windows(line.len()).any(|w| w == line.as_bytes()),
        "accepted a cosignature that is not a line of the reply"
    );
}
