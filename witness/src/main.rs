//! `modeltrail-witness`: a C2SP tlog-witness (c2sp.org/tlog-witness); see
//! the crate docs and `modeltrail-witness --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    modeltrail_witness::cli::main()
}
