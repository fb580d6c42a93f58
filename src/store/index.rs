//! The derived index (sled): artefact ID → leaf index, inference request ID
//! → leaf index, model → transition leaf indexes, the governance chain's
//! state (registered versions, approvals per version, the active version per
//! model, inferences per version), and the tree size indexed.
//!
//! The index is never the only copy of anything. It is rebuilt from the
//! entry bundles when it is missing, fails to open, or claims more entries
//! than the checkpoint; on start it catches up from the size it indexed to
//! the checkpoint's. Artefact IDs are BLAKE3 of the leaf bytes, so the ID
//! map also deduplicates identical submissions. Callers check every answer
//! against the entry it points to before serving it.
//!
//! Recording is idempotent (the same entry always maps to the same values),
//! and the indexed size is written after the entries it covers, so a crash
//! between the two only makes the next start index those entries again.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TileStore;
use crate::entry::ArtefactId;
use crate::tlog::tile::{TILE_WIDTH, Tile, TileKind, parse_bundle_for};

/// Bumped when the index layout changes; an index of another version is rebuilt.
const SCHEMA_VERSION: u64 = 3;

/// sled's page cache, in bytes.
const CACHE_BYTES: u64 = 16 << 20;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// sled failed.
    #[error("index database: {0}")]
    Db(#[from] sled::Error),
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
}

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

/// The sled index of a log.
pub struct Index {
    db: sled::Db,
    meta: sled::Tree,
    ids: sled::Tree,
    requests: sled::Tree,
    models: sled::Tree,
    versions: sled::Tree,
    approvals: sled::Tree,
    active: sled::Tree,
    inferences: sled::Tree,
}

impl Index {
    /// Opens (or creates) the index at `path` without checking it against
    /// the log.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        // sled caches up to 1 GiB by default, and its resident memory runs
        // at a few times the cap (measured: RSS after 10 s of batched writes
        // 264 MiB with a 64 MiB cap, 163 MiB with 16 MiB; BENCHMARKS.md).
        // The log's memory must not grow with its size: keep the cap small.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let index = Index {
            meta: db.open_tree("meta")?,
            ids: db.open_tree("ids")?,
            requests: db.open_tree("requests")?,
            models: db.open_tree("models")?,
            versions: db.open_tree("versions")?,
            approvals: db.open_tree("approvals")?,
            active: db.open_tree("active")?,
            inferences: db.open_tree("inferences")?,
            db,
        };
        match index.meta.get("schema")? {
            None if index.ids.is_empty() => {
                index.meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
            }
            None => return Err(IndexError::Schema { found: 0 }),
            Some(v) => {
                let found = decode_u64(&v);
                if found != SCHEMA_VERSION {
                    return Err(IndexError::Schema { found });
                }
            }
        }
        Ok(index)
    }

    /// Opens the index for a log whose checkpoint has `size` entries and
    /// brings it up to date. An index that fails to open or is ahead of the
    /// log is moved aside (kept for inspection) and rebuilt from the tiles.
    pub fn open_for_log(
        path: &Path,
        store: &dyn TileStore,
        size: u64,
    ) -> Result<Index, IndexError> {
        let index = match Index::open(path) {
            Ok(index) if index.indexed_size() <= size => index,
            Ok(index) => {
                tracing::warn!(
                    indexed = index.indexed_size(),
                    size,
                    "index is ahead of the log; rebuilding it"
                );
                drop(index);
                Index::fresh(path)?
            }
            Err(err) => {
                tracing::warn!(%err, "index failed to open; rebuilding it");
                Index::fresh(path)?
            }
        };
        index.catch_up(store, size)?;
        Ok(index)
    }

    /// Moves any index at `path` aside and creates an empty one.
    pub fn fresh(path: &Path) -> Result<Index, IndexError> {
        if path.exists() {
            let aside = aside_path(path);
            std::fs::rename(path, &aside)?;
            tracing::warn!(path = %aside.display(), "moved the old index aside");
        }
        Index::open(path)
    }

    /// The number of log entries the index covers.
    pub fn indexed_size(&self) -> u64 {
        self.meta
            .get("size")
            .ok()
            .flatten()
            .map_or(0, |v| decode_u64(&v))
    }

    /// Indexes every entry from [`Self::indexed_size`] up to `size`, reading
    /// whole entry bundles; memory stays at one bundle.
    pub fn catch_up(&self, store: &dyn TileStore, size: u64) -> Result<(), IndexError> {
        let mut next = self.indexed_size();
        while next < size {
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
            let first = bundle * u64::from(TILE_WIDTH);
            let skip = usize::try_from(next - first).expect("offset within a bundle");
            self.record(next, &entries[skip..])?;
            next = first + entries.len() as u64;
        }
        Ok(())
    }

    /// Records `entries`, the leaves at `first`, `first + 1`, …, and moves the
    /// indexed size past them. Entries must be recorded in log order.
    pub fn record<E: AsRef<[u8]>>(&self, first: u64, entries: &[E]) -> Result<(), IndexError> {
        let mut ids = FirstWins::new(&self.ids);
        let mut requests = FirstWins::new(&self.requests);
        let mut models = sled::Batch::default();
        let mut versions = FirstWins::new(&self.versions);
        let mut approvals = sled::Batch::default();
        let mut active = sled::Batch::default();
        let mut inferences: std::collections::HashMap<[u8; 32], Vec<u64>> = Default::default();
        let mut last_policy = None;
        for (i, entry) in entries.iter().enumerate() {
            let index = first + i as u64;
            let bytes = entry.as_ref();
            // The first occurrence wins: identical resubmissions are
            // deduplicated before they are logged, so a second one can only
            // come from replaying what is already indexed.
            ids.insert(&ArtefactId::of(bytes).0, index)?;
            let Ok(fields) = serde_json::from_slice::<IndexedFields>(bytes) else {
                continue;
            };
            let body = fields.body;
            let version = body.version_hash.as_deref().and_then(hash_bytes);
            match fields.kind.as_str() {
                "policy" => last_policy = Some(index),
                "model_version" => {
                    if let (Some(v), Some(model)) = (version, &body.model) {
                        let mut value = index.to_be_bytes().to_vec();
                        value.extend_from_slice(model.as_bytes());
                        versions.insert_value(&v, value)?;
                    }
                }
                "approval" => {
                    if let (Some(v), Some(decision)) = (version, &body.decision) {
                        let mut key = v.to_vec();
                        key.extend_from_slice(fields.signer.as_bytes());
                        let mut value = vec![u8::from(decision == "approve")];
                        value.extend_from_slice(&index.to_be_bytes());
                        approvals.insert(key, value);
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
                        let mut value = to.to_vec();
                        value.extend_from_slice(&index.to_be_bytes());
                        value.extend_from_slice(&at.to_be_bytes());
                        active.insert(model.as_bytes(), value);
                        models.insert(model_key(model, index), &[]);
                    }
                }
                "inference" => {
                    if let Some(rid) = &body.request_id {
                        requests.insert(rid.as_bytes(), index)?;
                    }
                    if let Some(v) = version {
                        inferences.entry(v).or_default().push(index);
                    }
                }
                _ => {}
            }
        }
        ids.apply()?;
        requests.apply()?;
        versions.apply()?;
        self.models.apply_batch(models)?;
        self.approvals.apply_batch(approvals)?;
        self.active.apply_batch(active)?;
        // A count is stored with the last index it counted, so replaying
        // entries already counted (a crash between these writes and the
        // indexed size) adds nothing: recording stays idempotent.
        for (v, indexes) in inferences {
            self.inferences.update_and_fetch(v, |old| {
                let (count, last) = old.map_or((0, None), decode_count);
                let fresh = indexes.iter().filter(|&&i| last.is_none_or(|l| i > l));
                let added = fresh.clone().count() as u64;
                let last = fresh.max().copied().max(last);
                let mut value = (count + added).to_be_bytes().to_vec();
                value.extend_from_slice(&last.unwrap_or(0).to_be_bytes());
                Some(value)
            })?;
        }
        if let Some(policy) = last_policy {
            self.meta.insert("policy", &policy.to_be_bytes())?;
        }
        let end = first + entries.len() as u64;
        self.meta.insert("size", &end.to_be_bytes())?;
        Ok(())
    }

    /// The leaf index of the newest policy entry: the policy in force.
    pub fn current_policy(&self) -> Result<Option<u64>, IndexError> {
        Ok(self.meta.get("policy")?.map(|v| decode_u64(&v)))
    }

    /// The leaf index of the entry with this artefact ID, if logged.
    pub fn lookup_id(&self, id: &ArtefactId) -> Result<Option<u64>, IndexError> {
        Ok(self.ids.get(id.0)?.map(|v| decode_u64(&v)))
    }

    /// The registered version with this hash.
    pub fn version(&self, hash: &[u8; 32]) -> Result<Option<VersionRecord>, IndexError> {
        Ok(self.versions.get(hash)?.and_then(|v| {
            let (index, model) = v.split_at_checked(8)?;
            Some(VersionRecord {
                index: decode_u64(index),
                model: String::from_utf8(model.to_vec()).ok()?,
            })
        }))
    }

    /// Every approver's latest decision on the version with this hash.
    pub fn approvals(&self, hash: &[u8; 32]) -> Result<Vec<ApprovalRecord>, IndexError> {
        self.approvals
            .scan_prefix(hash)
            .map(|kv| {
                let (k, v) = kv?;
                Ok(ApprovalRecord {
                    signer: String::from_utf8_lossy(&k[32..]).into_owned(),
                    approve: v.first() == Some(&1),
                    index: decode_u64(v.get(1..9).unwrap_or_default()),
                })
            })
            .collect()
    }

    /// The version a model's latest transition activated, if any.
    pub fn active(&self, model: &str) -> Result<Option<ActiveRecord>, IndexError> {
        Ok(self.active.get(model.as_bytes())?.and_then(|v| {
            let version = <[u8; 32]>::try_from(v.get(..32)?).ok()?;
            Some(ActiveRecord {
                version,
                index: decode_u64(v.get(32..40)?),
                at: decode_u64(v.get(40..48)?),
            })
        }))
    }

    /// How many inference entries name the version with this hash.
    pub fn inference_count(&self, hash: &[u8; 32]) -> Result<u64, IndexError> {
        Ok(self.inferences.get(hash)?.map_or(0, |v| decode_count(&v).0))
    }

    /// The leaf index of the first inference entry with this request ID.
    pub fn lookup_request(&self, request_id: &str) -> Result<Option<u64>, IndexError> {
        Ok(self
            .requests
            .get(request_id.as_bytes())?
            .map(|v| decode_u64(&v)))
    }

    /// The leaf indexes of a model's transitions, in log order.
    pub fn model_history(&self, model: &str) -> Result<Vec<u64>, IndexError> {
        let prefix = model_prefix(model);
        self.models
            .scan_prefix(&prefix)
            .keys()
            .map(|k| Ok(decode_u64(&k?[prefix.len()..])))
            .collect()
    }

    /// Flushes the index to disk (it is derived: losing unflushed writes only
    /// means re-indexing on the next start).
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }
}

/// A batch of `key → index` inserts where the first index for a key wins,
/// against both the tree and earlier inserts of the same batch.
struct FirstWins<'t> {
    tree: &'t sled::Tree,
    batch: sled::Batch,
    seen: std::collections::HashSet<Vec<u8>>,
}

impl<'t> FirstWins<'t> {
    fn new(tree: &'t sled::Tree) -> FirstWins<'t> {
        FirstWins {
            tree,
            batch: sled::Batch::default(),
            seen: Default::default(),
        }
    }

    fn insert(&mut self, key: &[u8], index: u64) -> Result<(), IndexError> {
        self.insert_value(key, index.to_be_bytes().to_vec())
    }

    fn insert_value(&mut self, key: &[u8], value: Vec<u8>) -> Result<(), IndexError> {
        if !self.seen.contains(key) && self.tree.get(key)?.is_none() {
            self.seen.insert(key.to_vec());
            self.batch.insert(key, value);
        }
        Ok(())
    }

    fn apply(self) -> Result<(), IndexError> {
        self.tree.apply_batch(self.batch)?;
        Ok(())
    }
}

/// `len(model) as u32 BE || model || index BE`: a model's transitions sort
/// together, in index order, and no model's prefix is another's.
fn model_key(model: &str, index: u64) -> Vec<u8> {
    let mut key = model_prefix(model);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn model_prefix(model: &str) -> Vec<u8> {
    let len = u32::try_from(model.len()).unwrap_or(u32::MAX);
    let mut key = Vec::with_capacity(model.len() + 12);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(model.as_bytes());
    key
}

/// The 32 bytes of a `b3:` hash, if well formed.
fn hash_bytes(text: &str) -> Option<[u8; 32]> {
    crate::entry::ContentHash::parse(text).ok().map(|h| h.0)
}

/// An inference count and the last index it counted.
fn decode_count(bytes: &[u8]) -> (u64, Option<u64>) {
    let count = decode_u64(bytes.get(..8).unwrap_or_default());
    (count, bytes.get(8..16).map(decode_u64))
}

fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
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
        let mut approvals = index.approvals(&hash(V1)).unwrap();
        approvals.sort_by(|a, b| a.signer.cmp(&b.signer));
        let latest: Vec<(&str, bool, u64)> = approvals
            .iter()
            .map(|a| (a.signer.as_str(), a.approve, a.index))
            .collect();
        assert_eq!(latest, vec![("a1", true, 2), ("a2", true, 8)]);
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
        let index = Index::open(&dir).unwrap();
        let entries = entries();
        index.record(0, &entries[..4]).unwrap();
        index.record(4, &entries[4..]).unwrap();
        assert_state(&index);
        drop(index);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replaying_recorded_entries_changes_nothing() {
        let dir = scratch("replay");
        let index = Index::open(&dir).unwrap();
        let entries = entries();
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
