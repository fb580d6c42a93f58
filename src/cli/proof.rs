//! `modeltrail proof ...` and `modeltrail tlog-proof ...`: offline proof checks.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{read_input, read_input_limited};
use crate::tlog::Hash;
use crate::tlog::proof::{verify_consistency, verify_inclusion};
use crate::tlog::tlog_proof::{MAX_PROOF_BYTES, TlogProof};

#[derive(Subcommand)]
pub(super) enum ProofCommand {
    /// Check that a leaf hash is at an index of a tree with a given root.
    VerifyInclusion(InclusionArgs),
    /// Check that an older tree is a prefix of a newer one.
    VerifyConsistency(ConsistencyArgs),
}

#[derive(Args)]
pub(super) struct InclusionArgs {
    /// The leaf hash, SHA-256(0x00 || entry), standard base64.
    #[arg(long, value_parser = parse_hash)]
    leaf_hash: Hash,
    /// The leaf's zero-based index.
    #[arg(long)]
    index: u64,
    /// The tree size.
    #[arg(long)]
    size: u64,
    /// The tree's root hash, standard base64.
    #[arg(long, value_parser = parse_hash)]
    root: Hash,
    /// The proof: one base64 hash per line, leaf's sibling first (`-` for stdin).
    #[arg(long)]
    proof: PathBuf,
}

#[derive(Args)]
pub(super) struct ConsistencyArgs {
    /// The older tree size.
    #[arg(long)]
    old_size: u64,
    /// The newer tree size.
    #[arg(long)]
    new_size: u64,
    /// The older tree's root hash, standard base64.
    #[arg(long, value_parser = parse_hash)]
    old_root: Hash,
    /// The newer tree's root hash, standard base64.
    #[arg(long, value_parser = parse_hash)]
    new_root: Hash,
    /// The proof: one base64 hash per line (`-` for stdin).
    #[arg(long)]
    proof: PathBuf,
}

impl ProofCommand {
    pub(super) fn run(self) -> anyhow::Result<()> {
        match self {
            ProofCommand::VerifyInclusion(a) => {
                let proof = read_proof_file(&a.proof)?;
                verify_inclusion(&a.leaf_hash, a.index, a.size, &proof, &a.root)
                    .context("inclusion proof rejected")?;
                println!(
                    "OK: leaf {} is at index {} of the tree of size {} with root {}",
                    a.leaf_hash, a.index, a.size, a.root
                );
            }
            ProofCommand::VerifyConsistency(a) => {
                let proof = read_proof_file(&a.proof)?;
                verify_consistency(a.old_size, a.new_size, &a.old_root, &a.new_root, &proof)
                    .context("consistency proof rejected")?;
                println!(
                    "OK: the tree of size {} (root {}) is a prefix of the tree of size {} (root {})",
                    a.old_size, a.old_root, a.new_size, a.new_root
                );
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub(super) enum TlogProofCommand {
    /// Check a tlog-proof offline: checkpoint signatures and witness quorum
    /// under a tlog-policy, then the entry's inclusion.
    Verify(TlogProofVerifyArgs),
}

#[derive(Args)]
pub(super) struct TlogProofVerifyArgs {
    /// The tlog-proof file (`-` for stdin).
    file: PathBuf,
    /// The entry the proof is for, exactly as logged.
    #[arg(long)]
    leaf: PathBuf,
    /// The c2sp tlog-policy file naming the trusted log and witnesses.
    #[arg(long)]
    policy: PathBuf,
}

impl TlogProofCommand {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let TlogProofCommand::Verify(a) = self;
        let policy = super::audit::read_policy(&a.policy)?;
        let proof = TlogProof::parse(&trim_trailing_newlines(read_input_limited(
            &a.file,
            MAX_PROOF_BYTES,
            "tlog-proof",
        )?))
        .with_context(|| format!("tlog-proof {}", a.file.display()))?;
        let entry = read_input(&a.leaf)?;
        let checkpoint = proof
            .verify(&entry, &policy)
            .context("tlog-proof rejected")?;
        println!(
            "OK: entry {} is in {} at size {} (root {})",
            proof.index, checkpoint.origin, checkpoint.size, checkpoint.root
        );
        Ok(())
    }
}

/// A tlog-proof ends with its checkpoint note, which ends with exactly one
/// newline. `jq -r .tlog_proof` (the README's recipe) and editors append
/// another, which would make the note's last line blank and its signatures
/// unreadable; trailing line ends beyond the note's own are dropped.
fn trim_trailing_newlines(mut data: Vec<u8>) -> Vec<u8> {
    let end = data
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    if end < data.len() {
        data.truncate(end);
        data.push(b'\n');
    }
    data
}

/// Parses a base64 hash argument for clap.
fn parse_hash(text: &str) -> Result<Hash, String> {
    Hash::from_base64(text).map_err(|e| e.to_string())
}

/// Reads a proof file: one standard-base64 hash per line, as in tlog-proof,
/// the last line ending in a newline or not. Only an empty file is an empty
/// proof; a blank or malformed line is an error naming its line number (a
/// stray newline must not turn a proof into the empty one, which verifies
/// any leaf of a one-leaf tree).
fn read_proof_file(path: &Path) -> anyhow::Result<Vec<Hash>> {
    let data = read_input(path)?;
    parse_proof_file(&data).map_err(|e| anyhow::anyhow!("proof file {} {e}", path.display()))
}

/// Parses a proof file's bytes (see `read_proof_file`); the error says
/// where (`is not UTF-8 text`, `line N: …`). The fuzz target `proof_file`
/// calls this.
pub fn parse_proof_file(data: &[u8]) -> Result<Vec<Hash>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "is not UTF-8 text".to_owned())?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut proof = Vec::new();
    for (i, line) in body.split('\n').enumerate() {
        if line.trim().is_empty() {
            return Err(format!(
                "line {} is blank; a proof file holds one base64 hash per line (an empty proof is an empty file)",
                i + 1
            ));
        }
        match Hash::from_base64(line) {
            Ok(h) => proof.push(h),
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(proof)
}
