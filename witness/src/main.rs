//! `modeltrail-witness`: a C2SP tlog-witness (c2sp.org/tlog-witness).
//!
//! Not implemented yet: this binary only reports that. The witness is
//! built on the same tlog core as the log (`modeltrail::tlog`).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("modeltrail-witness: not implemented yet");
    ExitCode::FAILURE
}
