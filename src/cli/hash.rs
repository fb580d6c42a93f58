//! `modeltrail hash`: the version hash of model weights (see [`crate::weights`]).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use crate::weights::Manifest;

/// `modeltrail hash <file-or-dir>`.
#[derive(Args)]
pub(super) struct HashArgs {
    /// The weights: a file or a directory.
    path: PathBuf,
    /// Print the manifest and the version hash as JSON.
    #[arg(long)]
    json: bool,
}

impl HashArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let manifest = hash_weights(&self.path)?;
        if self.json {
            println!(
                "{}",
                json!({ "version_hash": manifest.version_hash().to_string(), "manifest": manifest.to_value() })
            );
        } else {
            println!("{}", manifest.version_hash());
        }
        Ok(())
    }
}

/// Hashes weights, with a progress line on a terminal and none when piped.
pub(super) fn hash_weights(path: &Path) -> anyhow::Result<Manifest> {
    let total: u64 = Manifest::list(path)?.iter().map(|f| f.2).sum();
    let show = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut done = 0u64;
    let manifest = Manifest::compute(path, |bytes| {
        done += bytes;
        if show {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let rate = done as f64 / secs;
            let eta = (total - done) as f64 / rate.max(1.0);
            eprint!(
                "\r{:>6.1} / {:.1} MiB  {:>7.1} MiB/s  ETA {:>4.0} s ",
                done as f64 / 1048576.0,
                total as f64 / 1048576.0,
                rate / 1048576.0,
                eta
            );
        }
    })?;
    if show {
        eprintln!();
    }
    Ok(manifest)
}
