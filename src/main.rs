use std::process::ExitCode;

fn main() -> ExitCode {
    modeltrail::cli::main()
}
