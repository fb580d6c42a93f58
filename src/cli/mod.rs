//! The `modeltrail` command line: offline tools for auditors (proof, note and
//! tlog-proof verification, key generation).
//!
//! Every command exits 0 on success and 1 with a one-line reason on stderr
//! on failure; usage errors exit 2.

mod audit;
#[cfg(feature = "server")]
mod bench;
#[cfg(feature = "server")]
mod chain;
#[cfg(feature = "server")]
mod client;
#[cfg(feature = "server")]
mod fetch;
mod hash;
mod keys;
#[cfg(feature = "server")]
mod openings;
mod proof;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod token;

#[cfg(feature = "server")]
pub(crate) use keys::write_private_key;

// Parsers of untrusted input, public for the fuzz targets.
#[cfg(feature = "server")]
pub use fetch::answers;
pub use proof::parse_proof_file;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

/// modeltrail: a transparency log for model governance.
#[derive(Parser)]
#[command(name = "modeltrail", version, about)]
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
    /// Print the vkey (public key) of an existing private key file.
    Vkey(keys::VkeyArgs),
    /// Verify c2sp.org/tlog-proof files offline.
    #[command(name = "tlog-proof", subcommand)]
    TlogProof(proof::TlogProofCommand),
    /// Run the log server (initialises the data directory on first start).
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
    /// Initialise a data directory: keys, the initial policy, config.toml.
    #[cfg(feature = "server")]
    Init(serve::InitArgs),
    /// Create, revoke and list the read tokens of a private log.
    #[cfg(feature = "server")]
    Token(token::TokenArgs),
    /// Rebuild the index of a stopped log from its tiles.
    #[cfg(feature = "server")]
    Reindex(serve::ReindexArgs),
    /// Show or edit (as an admin) the policy in force.
    #[cfg(feature = "server")]
    Policy(client::PolicyArgs),
    /// Sign an entry offline.
    #[cfg(feature = "server")]
    Entry(client::EntryArgs),
    /// Submit a signed entry to the log; prints its index once durable.
    #[cfg(feature = "server")]
    Submit(client::SubmitArgs),
    /// Print the version hash of model weights (a file or a directory).
    Hash(hash::HashArgs),
    /// Log a model card (registry).
    #[cfg(feature = "server")]
    Card(chain::CardArgs),
    /// Register a model version: hash the weights and log them (registry).
    #[cfg(feature = "server")]
    Version(chain::VersionArgs),
    /// Approve (or reject) a version against the policy's criteria (approver).
    #[cfg(feature = "server")]
    Approve(chain::ApproveArgs),
    /// Make a version the model's active one (approver).
    #[cfg(feature = "server")]
    Activate(chain::TransitionArgs),
    /// Return a model to an earlier version (approver).
    #[cfg(feature = "server")]
    Rollback(chain::TransitionArgs),
    /// Log inferences served (serving system).
    #[cfg(feature = "server")]
    Inference(chain::InferenceArgs),
    /// Show a model's active version and transition history.
    #[cfg(feature = "server")]
    Status(chain::StatusArgs),
    /// Load-test a log over its public HTTP API (`POST /add`, tlog-tiles).
    #[cfg(feature = "server")]
    Bench(bench::BenchArgs),
    /// Write an evidence file answering one question, proven against one checkpoint.
    #[cfg(feature = "server")]
    Evidence(fetch::EvidenceArgs),
    /// Verify an evidence file offline under a tlog-policy and print its answer.
    Verify(audit::VerifyArgs),
    /// Audit the whole chain from a log's tiles (URL or directory).
    Audit(audit::AuditArgs),
    /// The committee's review: what changed since a saved checkpoint, in Markdown.
    #[cfg(feature = "server")]
    Review(fetch::ReviewArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    #[cfg(not(feature = "server"))]
    if let Some(code) = refuse_server_command() {
        return code;
    }
    let cli = Cli::parse();
    #[cfg(feature = "server")]
    let serving = matches!(cli.command, Command::Serve(_));
    #[cfg(not(feature = "server"))]
    let serving = false;
    if !serving {
        quiet_on_broken_pipe();
    }
    let result = match cli.command {
        Command::Proof(cmd) => cmd.run(),
        Command::Note(cmd) => cmd.run(),
        Command::Keygen(args) => args.run(),
        Command::Vkey(args) => args.run(),
        Command::TlogProof(cmd) => cmd.run(),
        #[cfg(feature = "server")]
        Command::Serve(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Init(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Token(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Reindex(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Policy(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Entry(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Submit(args) => args.run(),
        Command::Hash(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Card(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Version(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Approve(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Activate(args) => args.activate(),
        #[cfg(feature = "server")]
        Command::Rollback(args) => args.rollback(),
        #[cfg(feature = "server")]
        Command::Inference(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Status(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Bench(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Evidence(args) => args.run(),
        Command::Verify(args) => args.run(),
        Command::Audit(args) => args.run(),
        #[cfg(feature = "server")]
        Command::Review(args) => args.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("modeltrail: {}", crate::error_line(err.as_ref()));
            ExitCode::FAILURE
        }
    }
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

/// Parses JSON the way the log does ([`crate::entry::canonical::parse_strict`]):
/// numbers read exactly (serde_json's default float parsing is off by an ulp
/// for some shortest-form numbers, and the wrong double would be signed),
/// duplicate member names refused rather than the last one kept.
#[cfg(feature = "server")]
fn parse_json(bytes: &[u8]) -> anyhow::Result<serde_json::Value> {
    crate::entry::canonical::parse_strict(bytes).map_err(anyhow::Error::new)
}

/// Reads a file (or standard input for `-`) that may hold at most `max`
/// bytes: reads no more than `max + 1`, so an oversized or endless input
/// (a huge file, `/dev/zero`) is refused at once, naming `what` and the
/// limit, instead of being read whole before the parser refuses it.
fn read_input_limited(path: &Path, max: usize, what: &str) -> anyhow::Result<Vec<u8>> {
    let limit = max as u64 + 1;
    let mut data = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut data)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut data))
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if data.len() > max {
        bail!(
            "{what} {} is larger than the limit of {max} bytes",
            path.display()
        );
    }
    Ok(data)
}

/// A path argument that defaults to standard input.
fn stdin_path() -> PathBuf {
    PathBuf::from("-")
}

/// The commands only a build with the `server` feature has.
#[cfg(not(feature = "server"))]
const SERVER_COMMANDS: [&str; 17] = [
    "serve",
    "init",
    "token",
    "reindex",
    "policy",
    "entry",
    "submit",
    "card",
    "version",
    "approve",
    "activate",
    "rollback",
    "inference",
    "status",
    "bench",
    "evidence",
    "review",
];

/// In a verify-only build, names a server command's absence plainly instead
/// of clap's "unrecognized subcommand".
#[cfg(not(feature = "server"))]
fn refuse_server_command() -> Option<ExitCode> {
    let first = std::env::args().nth(1)?;
    if !SERVER_COMMANDS.contains(&first.as_str()) {
        return None;
    }
    eprintln!(
        "modeltrail: `{first}` is not in this build: it was built without the server feature \
         (verify-only: `--no-default-features --features cli`); install the full tool with \
         `cargo install --path .`"
    );
    Some(ExitCode::from(2))
}

/// Restores the default action of SIGPIPE (terminate, silently), which the
/// Rust runtime sets to "ignore": without it, `modeltrail audit … | head -1`
/// panics on the first write after `head` exits. Every command but `serve`
/// does this at start; the server keeps SIGPIPE ignored so that a client
/// closing its connection is an error on that connection, not the end of the
/// log. (Sockets are written with `MSG_NOSIGNAL` anyway; this is about
/// standard output.)
fn quiet_on_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any other thread exists;
    // setting a signal's disposition to SIG_DFL has no other precondition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own consistency checks (duplicate flags and the like), which
    /// otherwise only fire when a command is run.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
