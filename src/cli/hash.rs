//! `modeltrail hash`: the version hash of model weights (see [`crate::weights`]).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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

/// Hashes weights, with a progress bar (bytes, rate, ETA) when stderr is a
/// terminal and none when it is not. It advances every [`PIECE`] bytes, so
/// also within one large file.
///
/// [`PIECE`]: crate::weights::PIECE
pub(super) fn hash_weights(path: &Path) -> anyhow::Result<Manifest> {
    let files = Manifest::list(path)?;
    let bar = if std::io::stderr().is_terminal() {
        let total = files.iter().map(|f| f.2).sum();
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )?,
        )
    } else {
        ProgressBar::hidden()
    };
    let manifest = Manifest::hash_files(files, |bytes| bar.inc(bytes));
    bar.finish_and_clear();
    Ok(manifest?)
}
