//! The local openings store of `inference log` (docs/ARCHITECTURE.md
//! "Hiding commitments"): a directory, created mode 0700, holding one
//! [`OpeningsRecord`] per request ID in `<hex BLAKE3 of the request ID>.json`,
//! each written durably (temporary file, fsync, rename, directory fsync)
//! before the entry that commits under it is submitted.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};

use super::fetch::write_atomically;
use crate::entry::commitment::MAX_OPENINGS_RECORD;
use crate::entry::{Opening, OpeningsRecord, RequestId};

/// The default openings directory.
pub(super) const DEFAULT_DIR: &str = "modeltrail-openings";

/// The record's file in `dir`.
fn record_path(dir: &Path, rid: &RequestId) -> PathBuf {
    dir.join(format!(
        "{}.json",
        blake3::hash(rid.as_str().as_bytes()).to_hex()
    ))
}

/// Creates `dir` (mode 0700) if it does not exist.
fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating openings directory {}", dir.display()))
}

/// The openings of `rid`: the stored record if there is one (a retry after
/// a crash or a refused submission commits under the same openings, so a
/// logged commitment always has its opening), else a fresh random record
/// written durably first.
pub(super) fn openings_for(dir: &Path, rid: &RequestId) -> anyhow::Result<OpeningsRecord> {
    if let Some(record) = read(dir, rid)? {
        return Ok(record);
    }
    ensure_dir(dir)?;
    let record = OpeningsRecord {
        request_id: rid.clone(),
        input: random_opening()?,
        output: random_opening()?,
    };
    let line = record.to_line() + "\n";
    write_atomically(&record_path(dir, rid), line.as_bytes())?;
    Ok(record)
}

/// The stored record of `rid`, if any.
pub(super) fn read(dir: &Path, rid: &RequestId) -> anyhow::Result<Option<OpeningsRecord>> {
    let path = record_path(dir, rid);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    if bytes.len() > MAX_OPENINGS_RECORD {
        bail!("{} is not an openings record: too large", path.display());
    }
    let record = OpeningsRecord::parse(&bytes).with_context(|| path.display().to_string())?;
    if record.request_id != *rid {
        bail!(
            "{} holds the openings of request {:?}, not {:?}",
            path.display(),
            record.request_id.as_str(),
            rid.as_str()
        );
    }
    Ok(Some(record))
}

fn random_opening() -> anyhow::Result<Opening> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for an opening: {e}"))?;
    Ok(Opening(bytes))
}
