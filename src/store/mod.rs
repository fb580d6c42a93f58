//! Storage: the tlog-tiles directory that is the log's source of truth
//! (c2sp.org/tlog-tiles), and the derived redb index.
//!
//! The crash-safety protocol: tiles and entry bundles of a new tree are
//! written and made durable first ([`TileStore::put`] then
//! [`TileStore::sync`]); only then is the checkpoint that commits to them
//! atomically replaced ([`TileStore::replace_checkpoint`]). Whatever lies
//! beyond the checkpoint after a crash is ignored and overwritten. See
//! [`fs`] for the filesystem backend and its crash analysis, and [`writer`]
//! for the append path and proof reads.

use std::io;
use std::sync::Arc;

pub mod fs;
pub mod idmap;
pub mod index;
pub mod writer;

pub use fs::{FsStats, FsTileStore};
pub use writer::{
    StoreHashReader, StoreTileReader, TileCache, TreeError, TreeWriter, read_bundle, read_entry,
};

/// Where the log keeps its tiles, entry bundles and checkpoint, addressed by
/// their tlog-tiles paths (`checkpoint`, `tile/0/x001/234`, `tile/entries/000.p/5`).
///
/// A filesystem directory now; an S3-compatible bucket can implement the
/// same trait for scale-out.
pub trait TileStore: Send + Sync + 'static {
    /// Reads the object at `path`, or `None` if there is none.
    fn get(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// Writes the object at `path`, replacing any previous content. Not
    /// necessarily durable until [`TileStore::sync`] returns.
    fn put(&self, path: &str, data: &[u8]) -> io::Result<()>;
    /// Makes every [`TileStore::put`] so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Atomically and durably replaces the checkpoint: after a crash, readers
    /// see either the old checkpoint or the new one, whole.
    fn replace_checkpoint(&self, data: &[u8]) -> io::Result<()>;
    /// The current checkpoint, or `None` before the first.
    fn checkpoint(&self) -> io::Result<Option<Vec<u8>>> {
        self.get("checkpoint")
    }
    /// Atomically and durably replaces `checkpoint.witnessed`, the newest
    /// checkpoint with the witness cosignatures the log's quorum needs. It
    /// never commits to anything `checkpoint` does not, so no tile sync.
    fn replace_witnessed_checkpoint(&self, data: &[u8]) -> io::Result<()>;
    /// The witnessed checkpoint, or `None` if none was stored.
    fn witnessed_checkpoint(&self) -> io::Result<Option<Vec<u8>>> {
        self.get("checkpoint.witnessed")
    }
}

/// A shared store is a store: the sequencer's [`writer::TreeWriter`] and the
/// server's readers can hold the same one.
impl<S: TileStore + ?Sized> TileStore for Arc<S> {
    fn get(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        (**self).get(path)
    }
    fn put(&self, path: &str, data: &[u8]) -> io::Result<()> {
        (**self).put(path, data)
    }
    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
    fn replace_checkpoint(&self, data: &[u8]) -> io::Result<()> {
        (**self).replace_checkpoint(data)
    }
    fn checkpoint(&self) -> io::Result<Option<Vec<u8>>> {
        (**self).checkpoint()
    }
    fn replace_witnessed_checkpoint(&self, data: &[u8]) -> io::Result<()> {
        (**self).replace_witnessed_checkpoint(data)
    }
    fn witnessed_checkpoint(&self) -> io::Result<Option<Vec<u8>>> {
        (**self).witnessed_checkpoint()
    }
}
