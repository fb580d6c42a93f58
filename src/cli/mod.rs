//! The `modeltrail` command line: offline tools for auditors (proof, note and
//! tlog-proof verification, key generation).
//!
//! Every command exits 0 on success and 1 with a one-line reason on stderr
//! on failure; usage errors exit 2.

#[cfg(feature = "server")]
mod bench;
mod keys;
mod proof;
#[cfg(feature = "server")]
mod serve;

pub(crate) use keys::write_private_key;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// modeltrail: a transparency log for model governance.
#[derive(Parser)]
#[command(name = "modeltrail", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify RFC 6962 inclusion and consistency proofs offline.
    #[command(subcommand)]
    Proof(proof::ProofCommand),
    /// Verify C2SP signed notes (checkpoints, cosigned checkpoints).
    #[command(subcommand)]
    Note(keys::NoteCommand),
    /// Generate a signing key (Go-style private key file, mode 0600) and print its vkey.
    Keygen(keys::KeygenArgs),
    /// Verify c2sp.org/tlog-proof files offline.
    #[command(name = "tlog-proof", subcommand)]
    TlogProof(proof::TlogProofCommand),
    /// Run the log server (initialises the data directory on first start).
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    /// Initialise a data directory: keys, the initial policy, config.toml.
    #[cfg(feature = "server")]
    Init(serve::InitArgs),
    /// Rebuild the index of a stopped log from its tiles.
    #[cfg(feature = "server")]
    Reindex(serve::ReindexArgs),
    /// Load-test a log over its public HTTP API (`POST /add`, tlog-tiles).
    #[cfg(feature = "server")]
    Bench(bench::BenchArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Proof(cmd) => cmd.run(),
        Command::Note(cmd) => cmd.run(),
        Command::Keygen(args) => args.run(),
        Command::TlogProof(cmd) => cmd.run(),
        #[cfg(feature = "server")]
        Command::Serve(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Init(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Reindex(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Bench(args) => args.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("modeltrail: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, outermost first.
fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Reads a whole file, or standard input for `-`.
fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading standard input")?;
        return Ok(data);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A path argument that defaults to standard input.
fn stdin_path() -> PathBuf {
    PathBuf::from("-")
}
