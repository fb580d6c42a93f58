//! The derived index: artefact ID → leaf index and inference request ID →
//! leaf index (two [`IdMap`]s: one entry each per logged entry, at random
//! keys), and in redb model → transition leaf indexes, the governance
//! chain's state (registered versions, approvals per version, the active
//! version per model, inferences per version) and the tree size indexed.
//!
//! The index is never the only copy of anything (design decision 4: the
//! tlog-tiles entry bundles are the source of truth). It is rebuilt from the
//! entry bundles when it is missing, fails to open, has another schema, or
//! claims more entries than the checkpoint; on start it catches up from the
//! size it indexed to the checkpoint's. Artefact IDs are BLAKE3 of the leaf
//! bytes, so the ID map also deduplicates identical submissions. The ID maps
//! answer with candidate leaves under a 64-bit key; [`Index::lookup_id`] and
//! [`Index::lookup_request`] read each candidate's entry from the tiles and
//! answer only with one that checks out, so a damaged map can make a lookup
//! miss but never point at the wrong entry.
//!
//! **Durability.** Each sequencer batch ([`Index::begin`], [`IndexUpdate`])
//! and each [`Index::record`] is one redb transaction holding the entries'
//! keys *and* the new indexed size, so the index is always a consistent
//! prefix of the log. Most commits are non-durable (no fsync);
//! one commit every [`DURABLE_EVERY`], and [`Index::flush`], are durable
//! with redb's quick-repair (the allocator state is saved with the commit),
//! so opening after a crash neither walks the database nor replays more than
//! the entries of the last second, which [`Index::catch_up`] re-reads from
//! the tiles. The ID maps join the batch's pairs once its redb transaction
//! has committed and survive a crash up to their own covered size (see
//! [`super::idmap`]); the indexed size is the least of the three, and
//! recording stays idempotent (first index wins; inference counts carry the
//! last index they counted; a map takes only leaves past its size), so
//! replaying is always harmless.
//!
//! **Memory** is redb's page cache ([`CACHE_BYTES`]) plus the current
//! transaction's dirty pages, plus per ID map a memtable of at most
//! [`IndexOptions::memtable_pairs`] pairs and ~1.3 bytes per
//! logged entry of Bloom filter and fences: redb and the maps read their
//! files with `pread`, not `mmap`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::Deserialize;

use super::TileStore;
use super::idmap::{DEFAULT_FLUSH_PAIRS, IdMap, IdMapError};
use crate::entry::ArtefactId;
use crate::tlog::tile::{TILE_WIDTH, Tile, TileKind, parse_bundle_for};

/// Bumped when the index layout changes; an index of another version is rebuilt.
const SCHEMA_VERSION: u64 = 6;

/// redb's page cache, in bytes: the index's memory bound. It holds the
/// B-trees' branch pages of a 10^7-entry log several times over; leaf reads
/// beyond it come from the operating system's page cache.
pub const CACHE_BYTES: usize = 32 << 20;

/// How often a commit is made durable (fsync + quick-repair state). After a
/// crash, at most the entries recorded since are re-read from the tiles.
pub const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// The database file inside the index directory.
const FILE: &str = "index.redb";
/// The artefact ID map's directory inside the index directory.
const IDS_DIR: &str = "ids";
/// The request ID map's directory inside the index directory.
const REQUESTS_DIR: &str = "requests";

/// `"schema"`, `"size"`, `"policy"` → u64.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (model, transition leaf index) → (): a model's history in log order.
const MODELS: TableDefinition<(&str, u64), ()> = TableDefinition::new("models");
/// Version hash → (`model_version` leaf index, model).
const VERSIONS: TableDefinition<&[u8; 32], (u64, &str)> = TableDefinition::new("versions");
/// (version hash, leaf index) → (approver vkey, approve?): every decision,
/// in log order, so a decision can be judged as of any later transition.
const APPROVALS: TableDefinition<(&[u8; 32], u64), (&str, bool)> =
    TableDefinition::new("approvals");
/// Model → (active version hash, transition leaf index, `at` in Unix ms).
const ACTIVE: TableDefinition<&str, (&[u8; 32], u64, u64)> = TableDefinition::new("active");
/// Version hash → (inference count, last leaf index counted).
const INFERENCES: TableDefinition<&[u8; 32], (u64, u64)> = TableDefinition::new("inferences");

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database failed.
    #[error("index database: {0}")]
    Db(#[from] Box<redb::Error>),
    /// The tiles could not be read.
    #[error("reading entries to index: {0}")]
    Io(#[from] std::io::Error),
    /// The tiles are not what the checkpoint says.
    #[error("entry bundle {path}: {what}")]
    BadBundle {
        /// The bundle's path.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The index was written by another version of modeltrail.
    #[error("index schema version {found}, want {SCHEMA_VERSION}")]
    Schema {
        /// The version found.
        found: u64,
    },
    /// An ID map failed or is damaged.
    #[error("index id map: {0}")]
    IdMap(#[from] IdMapError),
    /// An entry a lookup named could not be read from the tiles.
    #[error("reading entry {index} to check a lookup: {what}")]
    Entry {
        /// The entry's leaf index.
        index: u64,
        /// What failed.
        what: String,
    },
}

/// redb has one error type per operation; all of them are database failures.
macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(err: $t) -> IndexError {
                IndexError::Db(Box::new(err.into()))
            }
        }
    )*};
}
db_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The fields of an entry the index needs; read without verifying the
/// signature again (every entry was verified when it was admitted).
#[derive(Deserialize)]
struct IndexedFields {
    kind: String,
    #[serde(default)]
    signer: String,
    #[serde(default)]
    body: IndexedBody,
}

#[derive(Deserialize, Default)]
struct IndexedBody {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    version_hash: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    decision: Option<String>,
}

/// A registered version: where, and of which model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The `model_version` entry's index.
    pub index: u64,
    /// The model it is a version of.
    pub model: String,
}

/// One approver's latest decision on a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    /// The approver's vkey, as in the entry.
    pub signer: String,
    /// `true` for approve, `false` for reject.
    pub approve: bool,
    /// The `approval` entry's index.
    pub index: u64,
}

/// The version a model's latest transition activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveRecord {
    /// The active version hash.
    pub version: [u8; 32],
    /// The `transition` entry's index.
    pub index: u64,
    /// When it took effect (Unix ms).
    pub at: u64,
}

/// How an index is opened.
#[derive(Debug, Clone, Copy)]
pub struct IndexOptions {
    /// Pairs each ID map holds in memory before writing them out as a run
    /// (see [`super::idmap`]): the most entries re-read after a crash.
    pub memtable_pairs: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            memtable_pairs: DEFAULT_FLUSH_PAIRS,
        }
    }
}

/// The index of a log: a redb database file and two ID maps in one
/// directory, and the tiles its lookups are checked against.
pub struct Index {
    db: Database,
    /// When the last durable commit was made.
    last_durable: Mutex<Instant>,
    /// Artefact ID (its first 8 bytes) → leaf indexes.
    ids: IdMap,
    /// Request ID (8 bytes of its BLAKE3) → leaf indexes of inferences.
    requests: IdMap,
    /// The log's tiles, to check candidates against.
    store: Arc<dyn TileStore>,
    /// The largest checkpointed tree size the index was told of: its tiles
    /// hold every leaf a lookup can name.
    readable: AtomicU64,
}

/// How many entry bundles [`Index::catch_up`] records per transaction.
const CATCH_UP_BUNDLES: u64 = 64;

impl Index {
    /// Opens (or creates) the index in the directory `path` for the log
    /// whose tiles are in `store`, without checking it against the log.
    pub fn open(path: &Path, store: Arc<dyn TileStore>) -> Result<Index, IndexError> {
        Index::open_with(path, store, IndexOptions::default())
    }

    /// [`Index::open`] with other options.
    pub fn open_with(
        path: &Path,
        store: Arc<dyn TileStore>,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        std::fs::create_dir_all(path)?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path.join(FILE))?;
        let index = Index {
            db,
            last_durable: Mutex::new(Instant::now()),
            ids: IdMap::open(&path.join(IDS_DIR), options.memtable_pairs)?,
            requests: IdMap::open(&path.join(REQUESTS_DIR), options.memtable_pairs)?,
            store,
            readable: AtomicU64::new(0),
        };
        index.check_schema()?;
        Ok(index)
    }

    /// Creates the tables of a new index, or checks an existing one's schema.
    fn check_schema(&self) -> Result<(), IndexError> {
        let mut txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value());
            match found {
                Some(SCHEMA_VERSION) => {}
                Some(found) => return Err(IndexError::Schema { found }),
                None if meta.get("size")?.is_some() => {
                    return Err(IndexError::Schema { found: 0 });
                }
                None => {
                    meta.insert("schema", SCHEMA_VERSION)?;
                }
            }
            // Every table exists from the start, so readers never find one missing.
            txn.open_table(MODELS)?;
            txn.open_table(VERSIONS)?;
            txn.open_table(APPROVALS)?;
            txn.open_table(ACTIVE)?;
            txn.open_table(INFERENCES)?;
        }
        txn.set_durability(Durability::Immediate)?;
        txn.set_quick_repair(true);
        txn.commit()?;
        Ok(())
    }

    /// Opens the index for a log whose checkpoint has `size` entries and
    /// brings it up to date. An index that fails to open, has another
    /// schema or is ahead of the log is moved aside (kept for inspection)
    /// and rebuilt from the tiles.
    pub fn open_for_log(
        path: &Path,
        store: Arc<dyn TileStore>,
        size: u64,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        let index = match Index::open_with(path, store.clone(), options) {
            Ok(index) if index.ahead_of(size).is_none() => index,
            Ok(index) => {
                tracing::warn!(
                    indexed = index.ahead_of(size),
                    size,
                    "index is ahead of the log; rebuilding it"
                );
                drop(index);
                Index::fresh(path, store, options)?
            }
            Err(err) => {
                tracing::warn!(%err, "index failed to open; rebuilding it");
                Index::fresh(path, store, options)?
            }
        };
        let from = index.indexed_size();
        index.catch_up(size)?;
        if from < size {
            tracing::info!(from, to = size, "index caught up from the tiles");
        }
        Ok(index)
    }

    /// Moves any index at `path` aside (to `<path>.broken-<unix seconds>`,
    /// kept for inspection) and creates an empty one.
    pub fn fresh(
        path: &Path,
        store: Arc<dyn TileStore>,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        Index::fresh_aside(path, store, options).map(|(index, _)| index)
    }

    /// [`Index::fresh`], also returning where the old index was moved, if
    /// there was one (`reindex` deletes it once the new index is complete).
    pub fn fresh_aside(
        path: &Path,
        store: Arc<dyn TileStore>,
        options: IndexOptions,
    ) -> Result<(Index, Option<PathBuf>), IndexError> {
        let mut moved = None;
        if path.exists() {
            let aside = aside_path(path);
            std::fs::rename(path, &aside)?;
            tracing::warn!(path = %aside.display(), "moved the old index aside");
            moved = Some(aside);
        }
        Ok((Index::open_with(path, store, options)?, moved))
    }

    /// The number of log entries the index covers: the database and both
    /// ID maps hold every entry below it.
    pub fn indexed_size(&self) -> u64 {
        let recorded = self.meta("size").ok().flatten().unwrap_or(0);
        recorded.min(self.ids.size()).min(self.requests.size())
    }

    /// The largest size any part of the index claims, if beyond `size`.
    fn ahead_of(&self, size: u64) -> Option<u64> {
        let recorded = self.meta("size").ok().flatten().unwrap_or(0);
        let claimed = recorded.max(self.ids.size()).max(self.requests.size());
        (claimed > size).then_some(claimed)
    }

    /// Indexes every entry from [`Self::indexed_size`] up to `size`, reading
    /// whole entry bundles; memory stays at `CATCH_UP_BUNDLES` bundles.
    pub fn catch_up(&self, size: u64) -> Result<(), IndexError> {
        self.readable.fetch_max(size, Ordering::SeqCst);
        let mut next = self.indexed_size();
        while next < size {
            let txn = self.begin()?;
            let mut bundles = 0;
            let mut update = txn.update()?;
            while next < size && bundles < CATCH_UP_BUNDLES {
                let (first, entries) = read_bundle_at(&*self.store, next, size)?;
                let skip = usize::try_from(next - first).expect("offset within a bundle");
                record_in(&mut update, next, &entries[skip..])?;
                next = first + entries.len() as u64;
                bundles += 1;
            }
            update.finish(next)?;
            self.commit(txn)?;
        }
        Ok(())
    }

    /// Records `entries`, the leaves at `first`, `first + 1`, …, and moves the
    /// indexed size past them, in one transaction. Entries must be recorded
    /// in log order.
    pub fn record<E: AsRef<[u8]>>(&self, first: u64, entries: &[E]) -> Result<(), IndexError> {
        let txn = self.begin()?;
        let mut update = txn.update()?;
        record_in(&mut update, first, entries)?;
        update.finish(first + entries.len() as u64)?;
        self.commit(txn)
    }

    /// Opens the write transaction of one sequencer batch (see [`IndexTxn`]).
    pub fn begin(&self) -> Result<IndexTxn<'_>, IndexError> {
        Ok(IndexTxn {
            index: self,
            txn: self.db.begin_write()?,
            pairs: RefCell::default(),
        })
    }

    /// Commits what [`IndexTxn::update`] recorded and finished: the database
    /// first, then the ID maps, so they never run ahead of it.
    pub fn commit(&self, txn: IndexTxn<'_>) -> Result<(), IndexError> {
        self.commit_write(txn.txn)?;
        let pairs = txn.pairs.into_inner();
        if let Some(size) = pairs.size {
            self.readable.fetch_max(size, Ordering::SeqCst);
            self.ids.insert(&pairs.ids, size)?;
            self.requests.insert(&pairs.requests, size)?;
        }
        Ok(())
    }

    /// Commits durably (with quick-repair state) if the last durable commit
    /// is [`DURABLE_EVERY`] old, otherwise without waiting for the disk.
    fn commit_write(&self, mut txn: WriteTransaction) -> Result<(), IndexError> {
        let mut last = self.last_durable.lock().expect("lock poisoned");
        let durable = last.elapsed() >= DURABLE_EVERY;
        if durable {
            txn.set_durability(Durability::Immediate)?;
            txn.set_quick_repair(true);
        } else {
            txn.set_durability(Durability::None)?;
        }
        txn.commit()?;
        if durable {
            *last = Instant::now();
        }
        Ok(())
    }

    /// The leaf index of the newest policy entry: the policy in force.
    pub fn current_policy(&self) -> Result<Option<u64>, IndexError> {
        self.meta("policy")
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, IndexError> {
        let table = self.db.begin_read()?.open_table(META)?;
        Ok(table.get(key)?.map(|v| v.value()))
    }

    /// The leaf index of the entry with this artefact ID, if logged
    /// (checked: the entry there has this ID).
    pub fn lookup_id(&self, id: &ArtefactId) -> Result<Option<u64>, IndexError> {
        Ok(self.find_id(id)?.map(|(index, _)| index))
    }

    /// The entry with this artefact ID and its leaf index, if logged: the
    /// bytes [`Index::lookup_id`] checked, so callers need not read them again.
    pub fn find_id(&self, id: &ArtefactId) -> Result<Option<(u64, Vec<u8>)>, IndexError> {
        let size = self.readable_size(self.ids.size());
        for candidate in self.ids.candidates(id_key(id))? {
            let bytes = self.entry(candidate, size)?;
            if ArtefactId::of(&bytes) == *id {
                return Ok(Some((candidate, bytes)));
            }
        }
        Ok(None)
    }

    /// The leaf index of the first inference entry with this request ID
    /// (checked: the entry there is an inference with this request ID).
    pub fn lookup_request(&self, request_id: &str) -> Result<Option<u64>, IndexError> {
        let size = self.readable_size(self.requests.size());
        for candidate in self.requests.candidates(request_key(request_id))? {
            let entry = self.entry(candidate, size)?;
            let Ok(fields) = serde_json::from_slice::<IndexedFields>(&entry) else {
                continue;
            };
            if fields.kind == "inference" && fields.body.request_id.as_deref() == Some(request_id) {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    /// The tree size to read a map's candidates at: the map's own size is
    /// a size the log had (every commit is at a checkpoint or a bundle's
    /// end), but a later checkpoint's tiles hold its leaves as well.
    fn readable_size(&self, map_size: u64) -> u64 {
        self.readable.load(Ordering::SeqCst).max(map_size)
    }

    /// The entry at `index` of the tree of `size` entries, from the tiles.
    fn entry(&self, index: u64, size: u64) -> Result<Vec<u8>, IndexError> {
        super::read_entry(&*self.store, index, size).map_err(|e| IndexError::Entry {
            index,
            what: e.to_string(),
        })
    }

    /// The registered version with this hash.
    pub fn version(&self, hash: &[u8; 32]) -> Result<Option<VersionRecord>, IndexError> {
        version_in(&self.db.begin_read()?.open_table(VERSIONS)?, hash)
    }

    /// Every decision on the version with this hash, in log order (a
    /// signer's latest one is the one that counts).
    pub fn approvals(&self, hash: &[u8; 32]) -> Result<Vec<ApprovalRecord>, IndexError> {
        approvals_in(&self.db.begin_read()?.open_table(APPROVALS)?, hash)
    }

    /// The version a model's latest transition activated, if any.
    pub fn active(&self, model: &str) -> Result<Option<ActiveRecord>, IndexError> {
        active_in(&self.db.begin_read()?.open_table(ACTIVE)?, model)
    }

    /// How many inference entries name the version with this hash.
    pub fn inference_count(&self, hash: &[u8; 32]) -> Result<u64, IndexError> {
        let table = self.db.begin_read()?.open_table(INFERENCES)?;
        Ok(table.get(hash)?.map_or(0, |v| v.value().0))
    }

    /// The leaf indexes of a model's transitions, in log order.
    pub fn model_history(&self, model: &str) -> Result<Vec<u64>, IndexError> {
        let table = self.db.begin_read()?.open_table(MODELS)?;
        table
            .range((model, 0)..=(model, u64::MAX))?
            .map(|kv| Ok(kv?.0.value().1))
            .collect()
    }

    /// Makes everything recorded so far durable, with the quick-repair state
    /// (an index is derived: losing non-durable commits in a crash only means
    /// re-reading those entries from the tiles on the next start).
    pub fn flush(&self) -> Result<(), IndexError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.set_quick_repair(true);
        txn.commit()?;
        *self.last_durable.lock().expect("lock poisoned") = Instant::now();
        self.ids.flush()?;
        self.requests.flush()?;
        Ok(())
    }
}

/// An artefact ID's key in the ID map: its first 8 bytes (it is a hash).
fn id_key(id: &ArtefactId) -> u64 {
    u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))
}

/// A request ID's key in the request map: 8 bytes of its BLAKE3 hash.
fn request_key(request_id: &str) -> u64 {
    let hash = blake3::hash(request_id.as_bytes());
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The entry bundle holding leaf `next` of the tree of `size`: its first
/// leaf index and its entries.
fn read_bundle_at(
    store: &dyn TileStore,
    next: u64,
    size: u64,
) -> Result<(u64, Vec<Vec<u8>>), IndexError> {
    let bundle = next / u64::from(TILE_WIDTH);
    let tile = Tile::in_tree(TileKind::Entries, bundle, size)
        .expect("a bundle below the tree size is in the tree");
    let path = tile.path();
    let data = store.get(&path)?.ok_or_else(|| IndexError::BadBundle {
        path: path.clone(),
        what: "missing".into(),
    })?;
    let entries = parse_bundle_for(&tile, &data).map_err(|e| IndexError::BadBundle {
        path: path.clone(),
        what: e.to_string(),
    })?;
    let entries = entries.into_iter().map(|e| e.to_vec()).collect();
    Ok((bundle * u64::from(TILE_WIDTH), entries))
}

/// Records `entries` (leaves `first`, `first + 1`, …) in `update`.
/// Idempotent: the first index recorded for a key wins, a map takes only
/// leaves past its size, and an inference is counted only past the last
/// index counted.
fn record_in<E: AsRef<[u8]>>(
    update: &mut IndexUpdate<'_>,
    first: u64,
    entries: &[E],
) -> Result<(), IndexError> {
    for (index, entry) in (first..).zip(entries) {
        let bytes = entry.as_ref();
        update.add_id(&ArtefactId::of(bytes), index);
        update.record_fields(index, bytes)?;
    }
    Ok(())
}

/// A write transaction on the index, for one sequencer batch: open it with
/// [`Index::begin`], work on it through [`IndexTxn::update`], and make it
/// count with [`Index::commit`]. Dropped uncommitted, it changes nothing.
pub struct IndexTxn<'i> {
    index: &'i Index,
    txn: WriteTransaction,
    /// The ID maps' new pairs, added when the transaction commits.
    pairs: RefCell<NewPairs>,
}

/// What a transaction adds to the ID maps.
#[derive(Default)]
struct NewPairs {
    ids: Vec<(u64, u64)>,
    requests: Vec<(u64, u64)>,
    /// The indexed size [`IndexUpdate::finish`] set.
    size: Option<u64>,
}

impl IndexTxn<'_> {
    /// The tables of this transaction, ready to read and record.
    pub fn update(&self) -> Result<IndexUpdate<'_>, IndexError> {
        IndexUpdate::open(self)
    }
}

/// The index as one write transaction sees it. The sequencer deduplicates
/// with [`IndexUpdate::lookup_id`] and judges the chain rules with its reads
/// while a batch is admitted (database reads include what the transaction
/// recorded; ID lookups see only committed entries), then records the
/// batch; catch-up and reindex record through it too, so there is one
/// derivation of the index from the entries.
pub struct IndexUpdate<'t> {
    index: &'t Index,
    pairs: &'t RefCell<NewPairs>,
    /// The ID maps' sizes: leaves below are in them already.
    ids_from: u64,
    requests_from: u64,
    meta: redb::Table<'t, &'static str, u64>,
    models: redb::Table<'t, (&'static str, u64), ()>,
    versions: redb::Table<'t, &'static [u8; 32], (u64, &'static str)>,
    approvals: redb::Table<'t, (&'static [u8; 32], u64), (&'static str, bool)>,
    active: redb::Table<'t, &'static str, (&'static [u8; 32], u64, u64)>,
    inferences: redb::Table<'t, &'static [u8; 32], (u64, u64)>,
    /// The newest policy entry recorded, for `meta["policy"]`.
    last_policy: Option<u64>,
    /// Inference indexes recorded per version, in log order, counted into
    /// [`INFERENCES`] once at [`IndexUpdate::finish`]: a batch of inferences
    /// of one version updates its counter once, not once per entry.
    counted: HashMap<[u8; 32], Vec<u64>>,
}

impl<'t> IndexUpdate<'t> {
    fn open(txn: &'t IndexTxn<'_>) -> Result<IndexUpdate<'t>, IndexError> {
        let (index, pairs) = (txn.index, &txn.pairs);
        let txn = &txn.txn;
        Ok(IndexUpdate {
            index,
            pairs,
            ids_from: index.ids.size(),
            requests_from: index.requests.size(),
            meta: txn.open_table(META)?,
            models: txn.open_table(MODELS)?,
            versions: txn.open_table(VERSIONS)?,
            approvals: txn.open_table(APPROVALS)?,
            active: txn.open_table(ACTIVE)?,
            inferences: txn.open_table(INFERENCES)?,
            last_policy: None,
            counted: HashMap::new(),
        })
    }

    /// The leaf index of the logged entry with this artefact ID, checked
    /// (see [`Index::lookup_id`]). Entries this transaction added are not
    /// seen: the sequencer tracks its batch itself.
    pub fn lookup_id(&self, id: &ArtefactId) -> Result<Option<u64>, IndexError> {
        self.index.lookup_id(id)
    }

    /// Maps `id` to the entry at `index`, when the transaction commits.
    pub fn add_id(&mut self, id: &ArtefactId, index: u64) {
        if index >= self.ids_from {
            self.pairs.borrow_mut().ids.push((id_key(id), index));
        }
    }

    /// The registered version with this hash.
    pub fn version(&self, hash: &[u8; 32]) -> Result<Option<VersionRecord>, IndexError> {
        version_in(&self.versions, hash)
    }

    /// Every decision on the version with this hash, in log order.
    pub fn approvals(&self, hash: &[u8; 32]) -> Result<Vec<ApprovalRecord>, IndexError> {
        approvals_in(&self.approvals, hash)
    }

    /// The version a model's latest transition activated, if any.
    pub fn active(&self, model: &str) -> Result<Option<ActiveRecord>, IndexError> {
        active_in(&self.active, model)
    }

    /// The leaf index of the first logged inference entry with this request
    /// ID, checked (see [`Index::lookup_request`]); as for
    /// [`IndexUpdate::lookup_id`], this transaction's entries are not seen.
    pub fn lookup_request(&self, request_id: &str) -> Result<Option<u64>, IndexError> {
        self.index.lookup_request(request_id)
    }

    /// Records what the chain rules and queries need of the entry at
    /// `index` (its artefact ID is [`IndexUpdate::add_id`]'s business).
    /// The entry was verified when it was admitted, so only the fields the
    /// index needs are read; an entry without them records nothing.
    pub fn record_fields(&mut self, index: u64, bytes: &[u8]) -> Result<(), IndexError> {
        let Ok(fields) = serde_json::from_slice::<IndexedFields>(bytes) else {
            return Ok(());
        };
        let body = &fields.body;
        let version = body.version_hash.as_deref().and_then(hash_bytes);
        match fields.kind.as_str() {
            "policy" => self.last_policy = Some(index),
            "model_version" => {
                if let (Some(v), Some(model)) = (version, &body.model)
                    && self.versions.get(&v)?.is_none()
                {
                    self.versions.insert(&v, (index, model.as_str()))?;
                }
            }
            "approval" => {
                if let (Some(v), Some(decision)) = (version, &body.decision) {
                    let decision = (fields.signer.as_str(), decision == "approve");
                    self.approvals.insert((&v, index), decision)?;
                }
            }
            "transition" => {
                let to = body.to.as_deref().and_then(hash_bytes);
                if let (Some(model), Some(to)) = (&body.model, to) {
                    let at = body
                        .at
                        .as_deref()
                        .and_then(|t| crate::entry::Timestamp::parse(t).ok())
                        .map_or(0, |t| t.unix_millis());
                    self.active.insert(model.as_str(), (&to, index, at))?;
                    self.models.insert((model.as_str(), index), ())?;
                }
            }
            "inference" => {
                if let Some(rid) = &body.request_id
                    && index >= self.requests_from
                {
                    let pair = (request_key(rid), index);
                    self.pairs.borrow_mut().requests.push(pair);
                }
                if let Some(v) = version {
                    self.counted.entry(v).or_default().push(index);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the inference counts and the newest policy, and sets the
    /// indexed size to `size`.
    pub fn finish(mut self, size: u64) -> Result<(), IndexError> {
        for (v, indexes) in std::mem::take(&mut self.counted) {
            self.count_inferences(&v, &indexes)?;
        }
        if let Some(policy) = self.last_policy {
            self.meta.insert("policy", policy)?;
        }
        self.meta.insert("size", size)?;
        self.pairs.borrow_mut().size = Some(size);
        Ok(())
    }

    /// Counts the inferences at `indexes` (ascending) for version `v`,
    /// those past the last index counted: replaying counts nothing twice.
    fn count_inferences(&mut self, v: &[u8; 32], indexes: &[u64]) -> Result<(), IndexError> {
        let (count, last) = match self.inferences.get(v)?.map(|g| g.value()) {
            Some((count, last)) => (count, Some(last)),
            None => (0, None),
        };
        let new = match last {
            Some(last) => &indexes[indexes.partition_point(|&i| i <= last)..],
            None => indexes,
        };
        if let Some(&newest) = new.last() {
            self.inferences
                .insert(v, (count + new.len() as u64, newest))?;
        }
        Ok(())
    }
}

fn version_in(
    table: &impl ReadableTable<&'static [u8; 32], (u64, &'static str)>,
    hash: &[u8; 32],
) -> Result<Option<VersionRecord>, IndexError> {
    Ok(table.get(hash)?.map(|v| {
        let (index, model) = v.value();
        VersionRecord {
            index,
            model: model.to_owned(),
        }
    }))
}

fn approvals_in(
    table: &impl ReadableTable<(&'static [u8; 32], u64), (&'static str, bool)>,
    hash: &[u8; 32],
) -> Result<Vec<ApprovalRecord>, IndexError> {
    let mut out = Vec::new();
    for kv in table.range((hash, 0)..=(hash, u64::MAX))? {
        let (k, v) = kv?;
        let (_, index) = k.value();
        let (signer, approve) = v.value();
        out.push(ApprovalRecord {
            signer: signer.to_owned(),
            approve,
            index,
        });
    }
    Ok(out)
}

fn active_in(
    table: &impl ReadableTable<&'static str, (&'static [u8; 32], u64, u64)>,
    model: &str,
) -> Result<Option<ActiveRecord>, IndexError> {
    Ok(table.get(model)?.map(|v| {
        let (version, index, at) = v.value();
        ActiveRecord {
            version: *version,
            index,
            at,
        }
    }))
}

/// The 32 bytes of a `b3:` hash, if well formed.
fn hash_bytes(text: &str) -> Option<[u8; 32]> {
    crate::entry::ContentHash::parse(text).ok().map(|h| h.0)
}

/// `<path>.broken-<unix seconds>[-n]`, a name not yet taken.
fn aside_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.broken-{secs}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FsTileStore, TreeWriter};
    use crate::tlog::hash::empty_tree_hash;

    const V1: &str = "b3:1111111111111111111111111111111111111111111111111111111111111111";
    const V2: &str = "b3:2222222222222222222222222222222222222222222222222222222222222222";

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("modeltrail-index-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Entries as the index reads them (it does not check signatures).
    fn entries() -> Vec<Vec<u8>> {
        [
            r#"{"body":{},"kind":"policy","signer":"admin"}"#.to_owned(),
            format!(r#"{{"body":{{"model":"m","version_hash":"{V1}"}},"kind":"model_version","signer":"r"}}"#),
            format!(r#"{{"body":{{"decision":"approve","version_hash":"{V1}"}},"kind":"approval","signer":"a1"}}"#),
            format!(r#"{{"body":{{"decision":"reject","version_hash":"{V1}"}},"kind":"approval","signer":"a2"}}"#),
            format!(r#"{{"body":{{"at":"2026-01-01T00:00:00.000Z","model":"m","to":"{V1}"}},"kind":"transition","signer":"a1"}}"#),
            format!(r#"{{"body":{{"model":"m","request_id":"r1","version_hash":"{V1}"}},"kind":"inference","signer":"s"}}"#),
            format!(r#"{{"body":{{"model":"m","request_id":"r2","version_hash":"{V1}"}},"kind":"inference","signer":"s"}}"#),
            format!(r#"{{"body":{{"model":"m","request_id":"r1","version_hash":"{V2}"}},"kind":"inference","signer":"s"}}"#),
            format!(r#"{{"body":{{"decision":"approve","version_hash":"{V1}"}},"kind":"approval","signer":"a2"}}"#),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    /// `entries` as a log's tiles under `dir/tiles`.
    fn tiles_of(dir: &Path, entries: &[Vec<u8>]) -> Arc<dyn TileStore> {
        let store = Arc::new(FsTileStore::new(dir.join("tiles")).unwrap());
        let mut writer = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
        // One checkpoint per entry, as if each came in its own batch.
        for entry in entries {
            writer.append(&[entry]).unwrap();
        }
        store
    }

    /// An empty index at `dir/index` for the log of `entries`.
    fn index_of(dir: &Path, entries: &[Vec<u8>]) -> Index {
        Index::open(&dir.join("index"), tiles_of(dir, entries)).unwrap()
    }

    fn hash(text: &str) -> [u8; 32] {
        hash_bytes(text).unwrap()
    }

    fn assert_state(index: &Index) {
        assert_eq!(index.indexed_size(), 9);
        assert_eq!(index.current_policy().unwrap(), Some(0));
        assert_eq!(
            index.version(&hash(V1)).unwrap(),
            Some(VersionRecord {
                index: 1,
                model: "m".into()
            })
        );
        let approvals = index.approvals(&hash(V1)).unwrap();
        let every: Vec<(&str, bool, u64)> = approvals
            .iter()
            .map(|a| (a.signer.as_str(), a.approve, a.index))
            .collect();
        assert_eq!(
            every,
            vec![("a1", true, 2), ("a2", false, 3), ("a2", true, 8)]
        );
        let active = index.active("m").unwrap().unwrap();
        assert_eq!((active.version, active.index), (hash(V1), 4));
        assert_eq!(index.model_history("m").unwrap(), vec![4]);
        assert_eq!(index.inference_count(&hash(V1)).unwrap(), 2);
        assert_eq!(index.inference_count(&hash(V2)).unwrap(), 1);
        // The first inference with a request ID is the one found.
        assert_eq!(index.lookup_request("r1").unwrap(), Some(5));
        assert_eq!(index.lookup_request("r2").unwrap(), Some(6));
        let first = entries()[0].clone();
        assert_eq!(index.lookup_id(&ArtefactId::of(&first)).unwrap(), Some(0));
    }

    #[test]
    fn records_the_chain_state() {
        let dir = scratch("state");
        let entries = entries();
        let index = index_of(&dir, &entries);
        index.record(0, &entries[..4]).unwrap();
        index.record(4, &entries[4..]).unwrap();
        assert_state(&index);
        drop(index);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_count_once_committed_and_only_where_the_entry_checks_out() {
        let dir = scratch("ids");
        let entries = entries();
        let index = index_of(&dir, &entries);
        let id = |i: usize| ArtefactId::of(&entries[i]);
        // Dropped without a commit, a transaction leaves nothing.
        let txn = index.begin().unwrap();
        let mut update = txn.update().unwrap();
        update.add_id(&id(0), 0);
        update.finish(1).unwrap();
        drop(txn);
        assert_eq!(index.lookup_id(&id(0)).unwrap(), None);
        assert_eq!(index.indexed_size(), 0);

        let txn = index.begin().unwrap();
        let mut update = txn.update().unwrap();
        update.add_id(&id(0), 0);
        update.add_id(&id(1), 1);
        // A damaged map: entry 3's ID pointing at entry 2.
        update.add_id(&id(3), 2);
        update.finish(3).unwrap();
        index.commit(txn).unwrap();
        assert_eq!(index.indexed_size(), 3);
        assert_eq!(index.lookup_id(&id(0)).unwrap(), Some(0));
        assert_eq!(index.lookup_id(&id(1)).unwrap(), Some(1));
        assert_eq!(index.lookup_id(&id(2)).unwrap(), None, "never added");
        assert_eq!(
            index.lookup_id(&id(3)).unwrap(),
            None,
            "a candidate whose entry has another ID is no answer"
        );
        drop(index);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reopened_index_catches_its_maps_up_from_the_tiles() {
        let dir = scratch("reopen");
        let entries = entries();
        let index = index_of(&dir, &entries);
        index.record(0, &entries[..5]).unwrap();
        index.flush().unwrap();
        index.record(5, &entries[5..]).unwrap();
        drop(index);
        // The maps kept what was flushed; the rest is re-read.
        let index = Index::open(&dir.join("index"), tiles_of(&dir.join("again"), &entries));
        let index = index.unwrap();
        assert_eq!(index.indexed_size(), 5);
        index.catch_up(9).unwrap();
        assert_state(&index);
        drop(index);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replaying_recorded_entries_changes_nothing() {
        let dir = scratch("replay");
        let entries = entries();
        let index = index_of(&dir, &entries);
        index.record(0, &entries).unwrap();
        // A crash after the trees were written but before the indexed size
        // was: the next start records the same entries again.
        index.record(3, &entries[3..]).unwrap();
        index.record(0, &entries).unwrap();
        assert_state(&index);
        drop(index);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
