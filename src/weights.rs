//! The version hash of model weights (DESIGN "Entries", `model_version`):
//! BLAKE3 of a canonical manifest of the files, re-derivable by anyone who
//! has them.
//!
//! The manifest is RFC 8785 canonical JSON:
//!
//! ```text
//! {"files":[{"blake3":"<64 hex>","path":"<relative POSIX path>","size":<bytes>},...],"v":1}
//! ```
//!
//! - `path` is relative to the directory hashed, with `/` separators, and
//!   files are sorted by the bytes of their path. Hashing a single file gives
//!   a manifest of one file named by its file name.
//! - `.git` directories are skipped: version control metadata is not part of
//!   the weights (and changes without the weights changing).
//! - A symbolic link to a regular file is hashed as that file, under the
//!   link's path (model caches such as Hugging Face's are trees of links to
//!   blobs); a link to a directory, a broken link, or any other file type is
//!   an error, so that what is hashed never depends on where links lead.
//! - File names must be UTF-8; anything else is an error.
//!
//! The version hash is `b3:` + BLAKE3(manifest bytes). Each file is hashed
//! memory-mapped and multi-threaded (BLAKE3's rayon mode), fed to one hasher
//! in [`PIECE`]-byte pieces so that progress can be reported while a large
//! file hashes; BLAKE3 is incremental, so the pieces never change the hash.
//! `size` is the number of bytes hashed.

use std::fs::{self, File};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::entry::ContentHash;
use crate::entry::canonical::to_canonical;

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative POSIX path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the contents.
    pub blake3: [u8; 32],
}

/// The canonical manifest of a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The files, sorted by path bytes.
    pub files: Vec<ManifestFile>,
}

/// Why weights could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file name is not UTF-8.
    #[error("{0}: file names must be UTF-8")]
    NotUtf8(PathBuf),
    /// A link to a directory, a broken link, or a special file.
    #[error("{path}: {what}; only regular files (or links to them) can be hashed")]
    Unsupported {
        /// The entry.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// Nothing to hash.
    #[error("{0}: no files to hash")]
    Empty(PathBuf),
}

/// Bytes hashed between two progress reports: a power of two (a whole
/// BLAKE3 subtree, hashed in parallel). It affects progress, never the hash.
pub const PIECE: usize = 64 << 20;

/// Files shorter than this are read rather than memory-mapped (as BLAKE3's
/// own `update_mmap` does): mapping costs more than it saves.
const MIN_MMAP: u64 = 16 * 1024;

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Manifest {
    /// Lists the files under `root` (or `root` itself if it is a file)
    /// without hashing them: `(relative path, absolute path, size)`, sorted.
    pub fn list(root: &Path) -> Result<Vec<(String, PathBuf, u64)>, WeightsError> {
        let meta = fs::metadata(root).map_err(io_error(root))?;
        let mut files = Vec::new();
        if meta.is_file() {
            let name = root
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| WeightsError::NotUtf8(root.to_owned()))?;
            files.push((name.to_owned(), root.to_owned(), meta.len()));
        } else {
            walk(root, "", &mut files)?;
        }
        if files.is_empty() {
            return Err(WeightsError::Empty(root.to_owned()));
        }
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(files)
    }

    /// Hashes every file under `root`; `progress` is called with the bytes
    /// hashed since its last call (at least every [`PIECE`] bytes).
    pub fn compute(root: &Path, progress: impl FnMut(u64)) -> Result<Manifest, WeightsError> {
        Manifest::hash_files(Manifest::list(root)?, progress)
    }

    /// Hashes the files of [`Manifest::list`], as [`Manifest::compute`].
    pub fn hash_files(
        listed: Vec<(String, PathBuf, u64)>,
        mut progress: impl FnMut(u64),
    ) -> Result<Manifest, WeightsError> {
        let mut files = Vec::with_capacity(listed.len());
        for (rel, abs, _) in listed {
            let (size, blake3) = hash_file(&abs, &mut progress).map_err(io_error(&abs))?;
            files.push(ManifestFile {
                path: rel,
                size,
                blake3,
            });
        }
        Ok(Manifest { files })
    }

    /// The manifest as JSON.
    pub fn to_value(&self) -> Value {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                json!({
                    "blake3": blake3::Hash::from_bytes(f.blake3).to_hex().as_str(),
                    "path": f.path,
                    "size": f.size,
                })
            })
            .collect();
        json!({ "files": files, "v": 1 })
    }

    /// The manifest's canonical bytes: what the version hash hashes.
    pub fn to_canonical(&self) -> Vec<u8> {
        to_canonical(&self.to_value())
    }

    /// The version hash: BLAKE3 of the canonical manifest.
    pub fn version_hash(&self) -> ContentHash {
        ContentHash::of(&self.to_canonical())
    }

    /// Total bytes hashed.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// BLAKE3 of one file and the number of bytes hashed. A file of at least
/// [`MIN_MMAP`] bytes is memory-mapped (bounded memory: the page cache
/// holds the data) and hashed piece by piece with rayon; a smaller one, or
/// one that cannot be mapped, is read.
fn hash_file(path: &Path, progress: &mut impl FnMut(u64)) -> io::Result<(u64, [u8; 32])> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    if len >= MIN_MMAP
        && let Ok(len) = usize::try_from(len)
        // SAFETY: the map is read only here and never escapes. If another
        // process changes the file meanwhile, the hash is of whatever was
        // read (or the process gets SIGBUS on truncation), as with b3sum;
        // memory safety does not depend on the contents.
        && let Ok(map) = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }
    {
        let _ = map.advise(memmap2::Advice::Sequential);
        for piece in map.chunks(PIECE) {
            hasher.update_rayon(piece);
            progress(piece.len() as u64);
        }
        return Ok((len as u64, *hasher.finalize().as_bytes()));
    }
    let mut total = 0u64;
    loop {
        let n = io::copy(&mut (&mut file).take(PIECE as u64), &mut hasher)?;
        if n == 0 {
            break;
        }
        total += n;
        progress(n);
    }
    Ok((total, *hasher.finalize().as_bytes()))
}

/// Collects regular files under `dir`, `prefix` being its relative path.
fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf, u64)>,
) -> Result<(), WeightsError> {
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| WeightsError::NotUtf8(path.clone()))?;
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type().map_err(io_error(&path))?;
        if kind.is_dir() {
            if name != ".git" {
                walk(&path, &rel, out)?;
            }
        } else if kind.is_file() {
            let size = entry.metadata().map_err(io_error(&path))?.len();
            out.push((rel, path, size));
        } else if kind.is_symlink() {
            match fs::metadata(&path) {
                Ok(target) if target.is_file() => out.push((rel, path, target.len())),
                Ok(_) => {
                    return Err(WeightsError::Unsupported {
                        path,
                        what: "a link to a directory",
                    });
                }
                Err(_) => {
                    return Err(WeightsError::Unsupported {
                        path,
                        what: "a broken link",
                    });
                }
            }
        } else {
            return Err(WeightsError::Unsupported {
                path,
                what: "not a regular file",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("modeltrail-weights-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn hash(dir: &Path) -> String {
        Manifest::compute(dir, |_| {})
            .unwrap()
            .version_hash()
            .to_string()
    }

    #[test]
    fn golden_version_hash() {
        let dir = scratch("golden");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("config.json"), b"{\"layers\":2}").unwrap();
        fs::write(dir.join("sub/weights.bin"), [0u8, 1, 2, 3, 255]).unwrap();
        fs::create_dir_all(dir.join(".git")).unwrap();
        fs::write(dir.join(".git/HEAD"), b"ref: refs/heads/main\n").unwrap();
        let manifest = Manifest::compute(&dir, |_| {}).unwrap();
        assert_eq!(
            String::from_utf8(manifest.to_canonical()).unwrap(),
            format!(
                "{{\"files\":[{{\"blake3\":\"{}\",\"path\":\"config.json\",\"size\":12}},{{\"blake3\":\"{}\",\"path\":\"sub/weights.bin\",\"size\":5}}],\"v\":1}}",
                blake3::hash(b"{\"layers\":2}").to_hex(),
                blake3::hash(&[0u8, 1, 2, 3, 255]).to_hex()
            )
        );
        // The golden value, computed independently (Python's blake3 over the
        // manifest text above): it must never change across runs, machines
        // or releases, or every logged version hash would stop matching.
        assert_eq!(
            manifest.version_hash().to_string(),
            "b3:ed53a861d18997a473022fce798f40b0320e2dafc6c10a651b47e2bc96d5544b"
        );
        assert_eq!(hash(&dir), manifest.version_hash().to_string());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn any_change_changes_the_hash() {
        let dir = scratch("changes");
        fs::write(dir.join("a.bin"), b"weights").unwrap();
        fs::write(dir.join("b.bin"), b"more").unwrap();
        let base = hash(&dir);
        fs::write(dir.join("a.bin"), b"weightz").unwrap();
        let byte = hash(&dir);
        assert_ne!(byte, base);
        fs::write(dir.join("a.bin"), b"weights").unwrap();
        assert_eq!(hash(&dir), base);
        fs::rename(dir.join("b.bin"), dir.join("c.bin")).unwrap();
        assert_ne!(hash(&dir), base);
        fs::rename(dir.join("c.bin"), dir.join("b.bin")).unwrap();
        fs::write(dir.join("extra"), b"").unwrap();
        assert_ne!(hash(&dir), base);
        fs::remove_file(dir.join("extra")).unwrap();
        assert_eq!(hash(&dir), base);
        fs::remove_file(dir.join("b.bin")).unwrap();
        assert_ne!(hash(&dir), base);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn links_to_files_are_followed_and_others_refused() {
        let dir = scratch("links");
        fs::write(dir.join("blob"), b"data").unwrap();
        std::os::unix::fs::symlink(dir.join("blob"), dir.join("model.bin")).unwrap();
        let manifest = Manifest::compute(&dir, |_| {}).unwrap();
        assert_eq!(manifest.files.len(), 2);
        assert_eq!(manifest.files[0].blake3, manifest.files[1].blake3);
        std::os::unix::fs::symlink(dir.join("missing"), dir.join("broken")).unwrap();
        assert!(matches!(
            Manifest::compute(&dir, |_| {}),
            Err(WeightsError::Unsupported { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Deterministic, non-repeating test bytes (a BLAKE3 XOF stream).
    fn content(len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        blake3::Hasher::new()
            .update(b"modeltrail weights test")
            .finalize_xof()
            .fill(&mut out);
        out
    }

    #[test]
    fn pieces_hash_as_the_whole_file() {
        // Around the mmap threshold and piece boundaries, including files of
        // more than one piece: each must hash to BLAKE3 of its bytes.
        let dir = scratch("pieces");
        let min = MIN_MMAP as usize;
        let sizes = [
            0,
            1,
            min - 1,
            min,
            min + 1,
            PIECE - 1,
            PIECE,
            PIECE + 1,
            2 * PIECE + 1024 + 1,
        ];
        let data = content(*sizes.iter().max().unwrap());
        for &size in &sizes {
            let path = dir.join("f.bin");
            fs::write(&path, &data[..size]).unwrap();
            let mut reports = Vec::new();
            let manifest = Manifest::compute(&path, |n| reports.push(n)).unwrap();
            let file = &manifest.files[0];
            assert_eq!(file.size, size as u64, "size {size}");
            assert_eq!(
                blake3::Hash::from_bytes(file.blake3),
                blake3::hash(&data[..size]),
                "size {size}"
            );
            assert_eq!(reports.iter().sum::<u64>(), size as u64);
            assert!(reports.iter().all(|&n| 0 < n && n <= PIECE as u64));
            assert_eq!(reports.len(), size.div_ceil(PIECE), "size {size}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_several_pieces_in_a_manifest() {
        // The manifest entry of a file larger than one piece is BLAKE3 of
        // its content, so chunked hashing cannot drift from `b3sum`.
        let dir = scratch("large");
        let big = content(PIECE + PIECE / 2 + 7);
        fs::write(dir.join("model.bin"), &big).unwrap();
        fs::write(dir.join("config.json"), b"{}").unwrap();
        let manifest = Manifest::compute(&dir, |_| {}).unwrap();
        let expected = format!(
            "{{\"files\":[{{\"blake3\":\"{}\",\"path\":\"config.json\",\"size\":2}},{{\"blake3\":\"{}\",\"path\":\"model.bin\",\"size\":{}}}],\"v\":1}}",
            blake3::hash(b"{}").to_hex(),
            blake3::hash(&big).to_hex(),
            big.len()
        );
        assert_eq!(
            String::from_utf8(manifest.to_canonical()).unwrap(),
            expected
        );
        assert_eq!(
            manifest.version_hash().to_string(),
            format!("b3:{}", blake3::hash(expected.as_bytes()).to_hex())
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_directory_is_an_error() {
        let dir = scratch("empty");
        assert!(matches!(
            Manifest::compute(&dir, |_| {}),
            Err(WeightsError::Empty(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
