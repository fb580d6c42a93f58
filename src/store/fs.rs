//! [`FsTileStore`]: a [`TileStore`] in a local directory laid out exactly as
//! the C2SP tlog-tiles URL space (<https://c2sp.org/tlog-tiles>):
//!
//! ```text
//! <root>/checkpoint
//! <root>/tile/<L>/<N>[.p/<W>]        e.g. tile/0/x001/234, tile/1/005.p/17
//! <root>/tile/entries/<N>[.p/<W>]
//! ```
//!
//! so any static web server (or an object-storage mirror) can serve `<root>`
//! as the log's prefix. The 3-digit `x`-prefixed path elements of the spec
//! make a full tile `005` (a file) and the partial tiles `005.p/<W>` (files
//! in a directory) coexist without file/directory conflicts.
//!
//! # Write protocol
//!
//! - [`TileStore::put`] writes the data to a fresh temporary file in the
//!   target's own directory (`.<name>.tmp-<pid>-<n>`, never a tile path) and
//!   renames it over the target, so a concurrent reader sees either no file,
//!   the previous content, or the new content whole — never a torn tile. It
//!   does not fsync: it records the file, its directory and every directory
//!   it had to create (and each one's parent) as *dirty*.
//! - [`TileStore::sync`] fsyncs every dirty file and every dirty directory,
//!   once each however many puts touched them, concurrently
//!   ([`FsTileStore::with_sync_threads`]): one batch per append.
//! - [`TileStore::replace_checkpoint`] first syncs any pending puts (so a
//!   checkpoint can never become durable before the tiles it commits to),
//!   then writes `checkpoint.tmp`, fsyncs it, renames it over `checkpoint`
//!   and fsyncs the root directory.
//!
//! # Crash safety
//!
//! The invariant is: *every tile and bundle the durable checkpoint commits to
//! is durable and never rewritten.* Tiles are immutable in tlog-tiles, and a
//! log growing from size `s` to `s'` only writes paths that the tree of size
//! `s` does not have (full tiles that became full, partial tiles of new
//! widths), so a put never replaces committed content; the only files it
//! replaces are leftovers of an append that was never committed. A crash at
//! any point leaves:
//!
//! 1. *during a put, before the rename*: a stray temporary file, which is no
//!    tile path (ignored by readers and by the log; safe to delete);
//! 2. *after a put's rename, before or during sync*: files at paths beyond
//!    the durable checkpoint, possibly empty or truncated (their data was not
//!    fsynced). Nothing refers to them; the log resumes from the checkpoint
//!    and rewrites them (atomically, by rename) as it grows again;
//! 3. *after sync, before the checkpoint rename*: durable but uncommitted
//!    tiles (plus perhaps `checkpoint.tmp`); as in 2. Nothing was
//!    acknowledged, since the caller acknowledges only after
//!    `replace_checkpoint` returns;
//! 4. *after the checkpoint rename, before the root fsync*: after reboot the
//!    root shows the old or the new checkpoint, each whole (rename is
//!    atomic), and the tiles of both are durable;
//! 5. *after `replace_checkpoint` returns*: the new checkpoint is durable.
//!
//! A server must therefore serve only the tiles the *current checkpoint*
//! implies (uncommitted leftovers may be rewritten with different content,
//! and tiles are served with long-lived cache headers).
//!
//! After a failed sync (`fsync` error), the failed and unprocessed paths stay
//! dirty; the writer rewrites its whole batch anyway before the next
//! checkpoint. Directory fsyncs are Unix-only (elsewhere they are skipped).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::TileStore;

/// The file name of the checkpoint, at the root.
const CHECKPOINT: &str = "checkpoint";
/// The temporary file [`TileStore::replace_checkpoint`] renames over it.
const CHECKPOINT_TMP: &str = "checkpoint.tmp";
/// The file name of the newest witness-cosigned checkpoint, at the root.
const WITNESSED: &str = "checkpoint.witnessed";
/// The temporary file [`TileStore::replace_witnessed_checkpoint`] renames over it.
const WITNESSED_TMP: &str = "checkpoint.witnessed.tmp";
/// Concurrent fsyncs per [`TileStore::sync`] unless configured.
const DEFAULT_SYNC_THREADS: usize = 8;

/// A tlog-tiles directory on the local filesystem; see the module docs for
/// the layout and the crash-safety protocol.
#[derive(Debug)]
pub struct FsTileStore {
    root: PathBuf,
    dirty: Mutex<Dirty>,
    /// Makes temporary file names unique within the process.
    tmp_counter: AtomicU64,
    /// How many fsyncs [`TileStore::sync`] runs at once.
    sync_threads: usize,
    stats: Counters,
}

/// Paths written but not yet fsynced.
#[derive(Debug, Default)]
struct Dirty {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    syncs: AtomicU64,
    file_fsyncs: AtomicU64,
    dir_fsyncs: AtomicU64,
}

/// Cumulative I/O counters of an [`FsTileStore`], for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// [`TileStore::put`] calls that succeeded.
    pub puts: u64,
    /// [`TileStore::sync`] calls (including those `replace_checkpoint` makes).
    pub syncs: u64,
    /// `fsync`s of files (tiles, bundles, checkpoints).
    pub file_fsyncs: u64,
    /// `fsync`s of directories.
    pub dir_fsyncs: u64,
}

impl FsTileStore {
    /// Opens the store at `root`, creating the directory (and its missing
    /// parents, durably) if needed. Nothing else is read or checked: the
    /// log's state is its checkpoint.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<FsTileStore> {
        let root = root.into();
        let created = create_dirs(&root)?;
        // The new directories' entries must survive a crash too.
        for dir in &created {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsync_dir(parent)?;
            }
        }
        Ok(FsTileStore {
            root,
            dirty: Mutex::default(),
            tmp_counter: AtomicU64::new(0),
            sync_threads: DEFAULT_SYNC_THREADS,
            stats: Counters::default(),
        })
    }

    /// Sets how many fsyncs [`TileStore::sync`] issues concurrently (at
    /// least 1; default 8). One append dirties ~10–20 files and directories;
    /// issuing their fsyncs together lets the filesystem batch them.
    pub fn with_sync_threads(mut self, threads: usize) -> FsTileStore {
        self.sync_threads = threads.max(1);
        self
    }

    /// The directory this store lives in: serve it as the log's prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Cumulative I/O counters since the store was opened.
    pub fn stats(&self) -> FsStats {
        let c = &self.stats;
        FsStats {
            puts: c.puts.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            file_fsyncs: c.file_fsyncs.load(Ordering::Relaxed),
            dir_fsyncs: c.dir_fsyncs.load(Ordering::Relaxed),
        }
    }

    /// The filesystem path of a store path, refusing anything that could
    /// escape the root or is not a plain relative `/`-separated path.
    fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let valid = !path.is_empty()
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0']));
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid store path {path:?}"),
            ));
        }
        Ok(self.root.join(path))
    }

    fn lock_dirty(&self) -> std::sync::MutexGuard<'_, Dirty> {
        // A panic while holding the lock leaves sets that are still valid.
        self.dirty.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `dir` and its missing ancestors, marking every directory
    /// whose entries changed as dirty.
    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        let created = create_dirs(dir)?;
        let mut dirty = self.lock_dirty();
        for d in created {
            if let Some(parent) = d.parent() {
                dirty.dirs.insert(parent.to_path_buf());
            }
            dirty.dirs.insert(d);
        }
        Ok(())
    }

    /// Writes `data` to a new temporary file in `dir`, returning its path.
    fn write_tmp(&self, dir: &Path, name: &str, data: &[u8]) -> io::Result<PathBuf> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let mut file = File::create(&tmp)?;
        file.write_all(data)
            .map_err(|e| with_path(e, "writing", &tmp))?;
        Ok(tmp)
    }
}

impl TileStore for FsTileStore {
    fn get(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let full = self.resolve(path)?;
        match fs::read(&full) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_path(e, "reading", &full)),
        }
    }

    fn put(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let full = self.resolve(path)?;
        let dir = full.parent().expect("resolved paths are under the root");
        let name = full
            .file_name()
            .and_then(|n| n.to_str())
            .expect("resolved paths end in a name");
        let tmp = match self.write_tmp(dir, name, data) {
            Ok(tmp) => tmp,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_dir(dir)?;
                self.write_tmp(dir, name, data)
                    .map_err(|e| with_path(e, "creating a temporary file in", dir))?
            }
            Err(e) => return Err(with_path(e, "creating a temporary file in", dir)),
        };
        if let Err(e) = fs::rename(&tmp, &full) {
            let _ = fs::remove_file(&tmp);
            return Err(with_path(e, "renaming a temporary file to", &full));
        }
        let dir = dir.to_path_buf();
        let mut dirty = self.lock_dirty();
        dirty.files.insert(full);
        dirty.dirs.insert(dir);
        self.stats.puts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        let Dirty { files, dirs } = std::mem::take(&mut *self.lock_dirty());
        let mut pending: Vec<(PathBuf, bool)> = files.into_iter().map(|f| (f, false)).collect();
        pending.extend(dirs.into_iter().map(|d| (d, true)));
        // Every fsync must complete before sync returns; their order does
        // not matter, so they run concurrently and the filesystem can
        // group them into fewer journal commits.
        let next = AtomicUsize::new(0);
        let failed = Mutex::new(Vec::new());
        let worker = || {
            while let Some((path, is_dir)) = pending.get(next.fetch_add(1, Ordering::Relaxed)) {
                let (result, counter) = if *is_dir {
                    (fsync_dir(path), &self.stats.dir_fsyncs)
                } else {
                    (fsync_file(path), &self.stats.file_fsyncs)
                };
                match result {
                    Ok(()) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failed.lock().unwrap_or_else(|e| e.into_inner()).push((
                        path.clone(),
                        *is_dir,
                        e,
                    )),
                }
            }
        };
        let threads = self.sync_threads.min(pending.len());
        if threads <= 1 {
            worker();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(worker);
                }
            });
        }
        let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut first = None;
        if !failed.is_empty() {
            // Keep what is not known durable dirty for the next sync.
            let mut dirty = self.lock_dirty();
            for (path, is_dir, err) in failed {
                if is_dir {
                    dirty.dirs.insert(path);
                } else {
                    dirty.files.insert(path);
                }
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn replace_checkpoint(&self, data: &[u8]) -> io::Result<()> {
        self.sync()?;
        self.replace_root_file(CHECKPOINT, CHECKPOINT_TMP, data)
    }

    fn replace_witnessed_checkpoint(&self, data: &[u8]) -> io::Result<()> {
        self.replace_root_file(WITNESSED, WITNESSED_TMP, data)
    }
}

impl FsTileStore {
    /// Atomically and durably replaces the file `name` at the root: write and
    /// fsync `tmp`, rename it over `name`, fsync the root directory.
    fn replace_root_file(&self, name: &str, tmp: &str, data: &[u8]) -> io::Result<()> {
        replace_file_via(&self.root.join(name), &self.root.join(tmp), data)?;
        self.stats.file_fsyncs.fetch_add(1, Ordering::Relaxed);
        self.stats.dir_fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The project's one durable replace: writes and fsyncs `data` to `tmp`,
/// renames it over `target` and fsyncs the directory, so `target` is the old
/// or the new bytes after a crash, never a mix. `tmp` must be in `target`'s
/// directory.
pub(crate) fn replace_file_via(target: &Path, tmp: &Path, data: &[u8]) -> io::Result<()> {
    let mut file = File::create(tmp).map_err(|e| with_path(e, "creating", tmp))?;
    file.write_all(data)
        .map_err(|e| with_path(e, "writing", tmp))?;
    file.sync_all().map_err(|e| with_path(e, "fsyncing", tmp))?;
    drop(file);
    fs::rename(tmp, target).map_err(|e| with_path(e, "renaming a temporary file to", target))?;
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fsync_dir(dir),
        _ => fsync_dir(Path::new(".")),
    }
}

/// [`replace_file_via`] with the temporary file `.<name>.tmp` beside `target`.
pub(crate) fn replace_file(target: &Path, data: &[u8]) -> io::Result<()> {
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", target.display()),
        )
    })?;
    let tmp = target.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    replace_file_via(target, &tmp, data)
}

/// Adds the operation and path to an I/O error's message, keeping its kind.
fn with_path(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

/// Creates `dir` and its missing ancestors, returning those it created,
/// outermost first.
fn create_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
        match fs::metadata(d) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", d.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(d.to_path_buf()),
            Err(e) => return Err(with_path(e, "inspecting", d)),
        }
        cur = d.parent();
    }
    missing.reverse();
    let mut created = Vec::with_capacity(missing.len());
    for d in missing {
        match fs::create_dir(&d) {
            Ok(()) => created.push(d),
            // Another writer won the race: it is that writer's to sync.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(with_path(e, "creating directory", &d)),
        }
    }
    Ok(created)
}

/// Makes a file's data durable.
fn fsync_file(path: &Path) -> io::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(|e| with_path(e, "fsyncing", path))
}

/// Makes a directory's entries durable (Unix; a no-op elsewhere).
pub(crate) fn fsync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| with_path(e, "fsyncing directory", path))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("modeltrail-{name}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn new_creates_the_root() {
        let tmp = TempDir::new("fs-root");
        let root = tmp.0.join("a/b/c");
        let store = FsTileStore::new(&root).unwrap();
        assert!(root.is_dir());
        assert_eq!(store.root(), root);
        assert_eq!(store.checkpoint().unwrap(), None);
        // Opening again is fine.
        FsTileStore::new(&root).unwrap();
    }

    #[test]
    fn put_get_and_sync_batch_directories() {
        let tmp = TempDir::new("fs-put");
        let store = FsTileStore::new(&tmp.0).unwrap();
        assert_eq!(store.get("tile/0/x001/234").unwrap(), None);
        store.put("tile/0/x001/234", b"one").unwrap();
        store.put("tile/0/x001/235.p/7", b"two").unwrap();
        store.put("tile/0/x001/234", b"three").unwrap();
        assert_eq!(store.get("tile/0/x001/234").unwrap().unwrap(), b"three");
        assert_eq!(store.get("tile/0/x001/235.p/7").unwrap().unwrap(), b"two");
        {
            let dirty = store.lock_dirty();
            assert_eq!(dirty.files.len(), 2);
            // root (for tile), tile, tile/0, tile/0/x001, tile/0/x001/235.p
            let want: BTreeSet<PathBuf> =
                ["", "tile", "tile/0", "tile/0/x001", "tile/0/x001/235.p"]
                    .iter()
                    .map(|p| {
                        if p.is_empty() {
                            tmp.0.clone()
                        } else {
                            tmp.0.join(p)
                        }
                    })
                    .collect();
            assert_eq!(dirty.dirs, want);
        }
        store.sync().unwrap();
        let stats = store.stats();
        assert_eq!((stats.file_fsyncs, stats.dir_fsyncs), (2, 5));
        store.sync().unwrap();
        assert_eq!(store.stats().file_fsyncs, 2, "nothing left dirty");
        // No temporary files remain.
        let names: Vec<_> = fs::read_dir(tmp.0.join("tile/0/x001"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn checkpoint_is_replaced_whole() {
        let tmp = TempDir::new("fs-checkpoint");
        let store = FsTileStore::new(&tmp.0).unwrap();
        store.put("tile/entries/000.p/1", b"x").unwrap();
        store.replace_checkpoint(b"first\n").unwrap();
        // Pending puts were synced first.
        assert!(store.lock_dirty().files.is_empty());
        store.replace_checkpoint(b"second\n").unwrap();
        assert_eq!(store.checkpoint().unwrap().unwrap(), b"second\n");
        assert!(!tmp.0.join(CHECKPOINT_TMP).exists());
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        let tmp = TempDir::new("fs-escape");
        let store = FsTileStore::new(&tmp.0).unwrap();
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "tile/../../x",
            "a//b",
            "a/./b",
            "a/",
            "a\\b",
        ] {
            let err = store.put(bad, b"x").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(store.get(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_path() {
        let tmp = TempDir::new("fs-errors");
        let store = FsTileStore::new(&tmp.0).unwrap();
        store.put("tile/0/000", b"x").unwrap();
        // tile/0/000 is a file, so it cannot be a directory.
        let err = store.put("tile/0/000/001", b"y").unwrap_err();
        assert!(err.to_string().contains("tile/0/000"), "{err}");
    }
}
