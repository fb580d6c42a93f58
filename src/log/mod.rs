//! The running log: its shared state, start-up (initialisation and recovery
//! from the checkpoint alone), the sequencer and the policy rules.
//!
//! Start-up reads the checkpoint, verifies it with the log key, reopens the
//! tree writer from the right edge of the tiles (no replay), and brings the
//! derived index up to the checkpoint. Work and memory at start-up do not
//! grow with the log, except for the index catching up on what it missed.

pub mod access;
pub mod config;
pub mod metrics;
pub mod rules;
pub mod sequencer;
pub mod witness;

use std::path::Path;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, watch};

use crate::entry::PolicyBody;
use crate::entry::{ArtefactId, Kind, SignedEntry};
use crate::store::TileStore;
use crate::store::fs::FsTileStore;
use crate::store::index::{Index, IndexError};
use crate::store::writer::{StoreHashReader, TileCache, TreeWriter, read_entry};
use crate::tlog::Hash;
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::note::{KeyType, Note, SignerKey, VerifierKey};

use config::{Config, DataDir};
use metrics::Metrics;
use sequencer::Submission;

/// A published checkpoint: what readers see.
#[derive(Debug, Clone)]
pub struct Published {
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// The signed checkpoint note (with any witness cosignatures).
    pub note: Vec<u8>,
    /// When the log signed and published it (for the witnessing latency).
    pub published_at: std::time::Instant,
}

/// Why the log could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory has no configuration: run `modeltrail init`.
    #[error(
        "{0} is not an initialised data directory (no config.toml); run `modeltrail init --data {0}`"
    )]
    NotInitialised(String),
    /// Anything else, with what was being done.
    #[error("{0}")]
    Other(String),
}

fn other(context: &str) -> impl Fn(&dyn std::fmt::Display) -> StartError + '_ {
    move |e| StartError::Other(format!("{context}: {e}"))
}

/// The state shared by the HTTP handlers and the sequencer.
pub struct Log {
    /// The checkpoint origin.
    pub origin: String,
    /// The log's public key.
    pub vkey: VerifierKey,
    /// The tiles: the source of truth.
    pub store: Arc<FsTileStore>,
    /// The derived index.
    pub index: Index,
    /// Metrics for `/metrics`.
    pub metrics: Metrics,
    /// Full hash tiles kept in memory for proofs.
    tile_cache: TileCache,
    /// The latest log-signed checkpoint; the witnessing task subscribes.
    published: watch::Sender<Arc<Published>>,
    /// The witnesses and quorum, if the log is configured with a witness policy.
    pub witness_policy: Option<Arc<witness::WitnessPolicy>>,
    /// The newest checkpoint whose cosignatures meet the witness quorum.
    witnessed: RwLock<Option<Arc<Published>>>,
    policy: RwLock<Arc<PolicyBody>>,
}

impl Log {
    /// The latest published checkpoint.
    pub fn published(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }

    /// Notifications of each newly published checkpoint.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.published.subscribe()
    }

    /// The newest witnessed checkpoint, if any has met the quorum.
    pub fn witnessed(&self) -> Option<Arc<Published>> {
        self.witnessed.read().expect("lock poisoned").clone()
    }

    /// Serves `witnessed` unless a newer witnessed checkpoint is served already.
    pub fn publish_witnessed(&self, witnessed: Published) {
        let mut current = self.witnessed.write().expect("lock poisoned");
        if current.as_ref().is_some_and(|c| c.size > witnessed.size) {
            return;
        }
        self.metrics
            .witnessed_size
            .store(witnessed.size, std::sync::atomic::Ordering::Relaxed);
        *current = Some(Arc::new(witnessed));
    }

    /// What readers should trust: the witnessed checkpoint when the log has
    /// witnesses (`None` until one meets the quorum), else the latest.
    pub fn served_checkpoint(&self) -> Option<Arc<Published>> {
        match self.witness_policy {
            Some(_) => self.witnessed(),
            None => Some(self.published()),
        }
    }

    /// The checkpoint to prove `index` against: the served one when it
    /// contains the entry (so the proof carries the witnesses'
    /// cosignatures), else the latest.
    pub fn checkpoint_for(&self, index: u64) -> Arc<Published> {
        self.served_checkpoint()
            .filter(|c| index < c.size)
            .unwrap_or_else(|| self.published())
    }

    /// Makes `published` the checkpoint readers see.
    pub fn publish(&self, published: Published) {
        self.metrics
            .tree_size
            .store(published.size, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .checkpoints
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.published.send_replace(Arc::new(published));
    }

    /// The policy in force for new submissions.
    pub fn policy(&self) -> Arc<PolicyBody> {
        self.policy.read().expect("lock poisoned").clone()
    }

    /// Makes `policy` the one new submissions are checked against.
    pub fn set_policy(&self, policy: Arc<PolicyBody>) {
        *self.policy.write().expect("lock poisoned") = policy;
    }

    /// Reads the stored hashes of the tree of `size` (a published size), for proofs.
    pub fn hash_reader(&self, size: u64) -> StoreHashReader<'_, FsTileStore> {
        StoreHashReader::new(&*self.store, size).with_cache(&self.tile_cache)
    }

    /// The entry at `index` of the published tree.
    pub fn entry(&self, index: u64) -> Option<Vec<u8>> {
        let size = self.published().size;
        if index >= size {
            return None;
        }
        // A published entry that cannot be read is a storage fault, not a
        // missing entry: say so where the operator will see it.
        read_entry(&*self.store, index, size)
            .inspect_err(|err| tracing::error!(index, %err, "reading a published entry"))
            .ok()
    }

    /// The policy entry in force and its index, checked to be a policy.
    pub fn current_policy_entry(&self) -> Option<(u64, Vec<u8>)> {
        let index = self.index.current_policy().ok()??;
        let bytes = self.entry(index)?;
        let entry = SignedEntry::parse(&bytes).ok()?;
        (entry.kind() == Kind::Policy).then_some((index, bytes))
    }

    /// The logged entry with this ID and its index, checked. An error is
    /// the index or the tiles failing, not a missing entry.
    pub fn artefact(&self, id: &ArtefactId) -> Result<Option<(u64, Vec<u8>)>, IndexError> {
        self.index.find_id(id)
    }
}

/// A log opened from its data directory, ready to serve.
pub struct Opened {
    /// The shared state.
    pub log: Arc<Log>,
    /// The configuration read.
    pub config: Config,
    /// The tree writer positioned at the checkpoint.
    pub writer: TreeWriter<Arc<FsTileStore>>,
    /// The log's signing key.
    pub key: Arc<SignerKey>,
    /// The policy in force at the checkpoint.
    pub policy: rules::PolicyInForce,
    /// The data directory's lock, held while the log runs.
    pub lock: std::fs::File,
}

/// What `init` created.
pub struct Initialised {
    /// The log's public key.
    pub log_vkey: VerifierKey,
    /// The admin's public key.
    pub admin_vkey: VerifierKey,
    /// The origin.
    pub origin: String,
}

/// Initialises `data`: keys (mode 0600), the initial policy as leaf 0 and its
/// checkpoint, then `config.toml` last, so a directory with a config is
/// always complete.
pub fn init(
    data: &Path,
    origin: &str,
    read: access::ReadAccess,
) -> Result<Initialised, StartError> {
    let dirs = DataDir(data);
    if dirs.config().exists() {
        return Err(StartError::Other(format!(
            "{} is already initialised",
            data.display()
        )));
    }
    create_private_dir(&dirs.keys())?;
    let _lock = dirs
        .lock()
        .map_err(|e| other("locking the data directory")(&e))?;
    let log_key =
        SignerKey::generate(origin, KeyType::Ed25519).map_err(|e| other("log key")(&e))?;
    let admin_name = format!("{}/admin", origin.split('/').next().unwrap_or(origin));
    let admin_key =
        SignerKey::generate(&admin_name, KeyType::Ed25519).map_err(|e| other("admin key")(&e))?;
    write_key(&dirs.log_key(), &log_key)?;
    write_key(&dirs.admin_key(), &admin_key)?;

    let policy =
        PolicyBody::initial(&admin_key.verifier()).map_err(|e| other("initial policy")(&e))?;
    let entry = SignedEntry::sign(Kind::Policy, policy.to_value(), &admin_key)
        .map_err(|e| other("signing the initial policy")(&e))?;
    let store = Arc::new(FsTileStore::new(dirs.tiles()).map_err(|e| other("tiles")(&e))?);
    let mut writer = TreeWriter::open(store.clone(), 0, crate::tlog::empty_tree_hash())
        .map_err(|e| other("tiles")(&e))?;
    let (size, root) = writer
        .append(&[entry.bytes().to_vec()])
        .map_err(|e| other("writing the initial policy")(&e))?;
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
        extensions: Vec::new(),
    };
    let note =
        Note::sign(&checkpoint.to_text(), &[&log_key]).map_err(|e| other("checkpoint")(&e))?;
    store
        .replace_checkpoint(&note.to_bytes())
        .map_err(|e| other("checkpoint")(&e))?;
    let mut config = Config::new(origin);
    config.access.read = read;
    write_synced(&dirs.config(), config.to_toml().as_bytes())?;
    Ok(Initialised {
        log_vkey: log_key.verifier(),
        admin_vkey: admin_key.verifier(),
        origin: origin.to_owned(),
    })
}

/// Opens an initialised data directory: verifies the checkpoint, reopens the
/// writer at it and brings the index up to date.
pub fn open(data: &Path, config: Config) -> Result<Opened, StartError> {
    let dirs = DataDir(data);
    let lock = dirs
        .lock()
        .map_err(|e| other("locking the data directory")(&e))?;
    let key_text =
        std::fs::read_to_string(dirs.log_key()).map_err(|e| other("reading keys/log.key")(&e))?;
    let key = SignerKey::parse(key_text.trim_end()).map_err(|e| other("keys/log.key")(&e))?;
    let vkey = key.verifier();
    let store = Arc::new(FsTileStore::new(dirs.tiles()).map_err(|e| other("tiles")(&e))?);
    let note = store
        .checkpoint()
        .map_err(|e| other("reading the checkpoint")(&e))?
        .ok_or_else(|| StartError::Other("tiles/checkpoint is missing".into()))?;
    let checkpoint = Checkpoint::open(&note, &vkey, &[])
        .map_err(|e| other("the checkpoint does not verify with keys/log.key")(&e))?
        .checkpoint;
    if checkpoint.origin != config.origin {
        return Err(StartError::Other(format!(
            "the checkpoint's origin {:?} is not the configured origin {:?}",
            checkpoint.origin, config.origin
        )));
    }
    let writer = TreeWriter::open(store.clone(), checkpoint.size, checkpoint.root)
        .map_err(|e| other("the tiles do not match the checkpoint")(&e))?;
    let index = Index::open_for_log(
        &dirs.index(),
        store.clone(),
        checkpoint.size,
        config.index.options(),
    )
    .map_err(|e| other("index")(&e))?;
    let policy = current_policy(&index, &*store, checkpoint.size)?;
    let policy_body = policy.body.clone();
    let witness_policy = match &config.witness.policy {
        Some(path) => Some(Arc::new(
            witness::WitnessPolicy::load(path, &vkey).map_err(|e| other("witnesses")(&e))?,
        )),
        None => None,
    };
    let witnessed = match &witness_policy {
        Some(policy) => stored_witnessed(&*store, policy, &vkey, checkpoint.size),
        None => None,
    };
    let log = Arc::new(Log {
        origin: checkpoint.origin.clone(),
        vkey,
        store,
        index,
        metrics: Metrics::default(),
        tile_cache: TileCache::new(config.sequencer.tile_cache_tiles),
        published: watch::Sender::new(Arc::new(Published {
            size: checkpoint.size,
            root: checkpoint.root,
            note,
            published_at: std::time::Instant::now(),
        })),
        witness_policy,
        witnessed: RwLock::new(None),
        policy: RwLock::new(policy_body),
    });
    if let Some(witnessed) = witnessed {
        log.publish_witnessed(witnessed);
    }
    log.metrics
        .tree_size
        .store(checkpoint.size, std::sync::atomic::Ordering::Relaxed);
    Ok(Opened {
        log,
        config,
        writer,
        key: Arc::new(key),
        policy,
        lock,
    })
}

/// The witnessed checkpoint kept from the last run, if it still meets the
/// witness policy and is not beyond the log's checkpoint; a stale or
/// unverifiable one is ignored (and replaced by the next round).
fn stored_witnessed(
    store: &dyn TileStore,
    policy: &witness::WitnessPolicy,
    log_key: &VerifierKey,
    size: u64,
) -> Option<Published> {
    let note = match store.witnessed_checkpoint() {
        Ok(note) => note?,
        Err(err) => {
            tracing::warn!(%err, "reading the witnessed checkpoint");
            return None;
        }
    };
    match policy.verify_witnessed(&note, log_key) {
        Ok(checkpoint) if checkpoint.size <= size => Some(Published {
            size: checkpoint.size,
            root: checkpoint.root,
            note,
            published_at: std::time::Instant::now(),
        }),
        Ok(_) => {
            tracing::warn!("the witnessed checkpoint is beyond the log's checkpoint; ignored");
            None
        }
        Err(err) => {
            tracing::warn!(%err, "the stored witnessed checkpoint is ignored");
            None
        }
    }
}

/// Reads and parses the policy entry the index names as current.
fn current_policy(
    index: &Index,
    store: &dyn TileStore,
    size: u64,
) -> Result<rules::PolicyInForce, StartError> {
    let at = index
        .current_policy()
        .map_err(|e| other("index")(&e))?
        .ok_or_else(|| StartError::Other("the log has no policy entry".into()))?;
    let bytes = read_entry(store, at, size).map_err(|e| other("reading the policy entry")(&e))?;
    let entry = SignedEntry::parse(&bytes).map_err(|e| other("the policy entry")(&e))?;
    let body = PolicyBody::parse(entry.body()).map_err(|e| other("the policy entry")(&e))?;
    Ok(rules::PolicyInForce {
        index: at,
        id: entry.id(),
        body: Arc::new(body),
    })
}

/// Starts the sequencer task and returns the queue handlers submit to.
pub fn start_sequencer(
    opened: Opened,
) -> (
    Arc<Log>,
    Config,
    mpsc::Sender<Submission>,
    tokio::task::JoinHandle<()>,
) {
    let Opened {
        log,
        config,
        writer,
        key,
        policy,
        lock,
    } = opened;
    let (tx, rx) = mpsc::channel(config.sequencer.queue_capacity.max(1));
    let bounds = rules::ServedAtBounds {
        max_future_ms: config.time.max_future_ms,
        max_age_ms: config.time.max_inference_age_ms,
    };
    let rules = Box::new(rules::GovernanceRules::new(log.clone(), policy, bounds));
    let log_for_task = log.clone();
    let limits = sequencer::BatchLimits {
        max_entries: config.sequencer.max_batch_entries.max(1),
        max_age: std::time::Duration::from_millis(config.sequencer.max_batch_age_ms),
    };
    let task = tokio::spawn(async move {
        sequencer::run(log_for_task, rx, writer, rules, key, limits).await;
        // The lock goes when the last batch is written, not before.
        drop(lock);
    });
    (log, config, tx, task)
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|e| StartError::Other(format!("creating {}: {e}", path.display())))
}

fn write_key(path: &Path, key: &SignerKey) -> Result<(), StartError> {
    crate::cli::write_private_key(path, &key.to_private_string())
        .map_err(|e| StartError::Other(crate::error_line(e.as_ref())))
}

/// Writes a whole file durably (temporary file, fsync, rename, directory fsync).
fn write_synced(path: &Path, data: &[u8]) -> Result<(), StartError> {
    crate::store::fs::replace_file(path, data).map_err(|e| StartError::Other(e.to_string()))
}
