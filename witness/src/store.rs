//! The witness's data directory and its durable state.
//!
//! ```text
//! <data>/witness.key     the cosignature/v1 private key (mode 0600)
//! <data>/witness.vkey    its public key, one line
//! <data>/config.json     name and witnessed logs (crate::config)
//! <data>/state.jsonl     the state journal (crate::journal)
//! <data>/evidence.jsonl  evidence of log misbehaviour (crate::journal)
//! <data>/lock            held by a running server: one server per directory
//! ```
//!
//! # Group commit
//!
//! tlog-witness requires the new checkpoint to be persisted before the
//! cosignature is returned, atomically with the old-size check. The server
//! holds a per-origin lock around read, decide and persist; persisting is a
//! [`Store::commit`] to one writer thread, which appends every commit queued
//! while it was busy (from any origin) to the journal, calls `fdatasync`
//! once for all of them, and only then answers each. Batches grow with load
//! by themselves and add no wait when idle. An I/O error fails the batch and
//! every later commit (the witness must be restarted and re-read its state):
//! after a failed write the file's contents are unknown, and answering from
//! a state that might not be the durable one could cosign a fork.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::{Context as _, anyhow, bail};
use modeltrail::tlog::note::{KeyType, SignerKey, VerifierKey};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::journal::{EvidenceRecord, Replay, StateRecord, parse_evidence, replay_state};

/// Most commits written with one `fdatasync`.
const MAX_BATCH: usize = 4096;

/// The commit queue's capacity; handlers wait for room beyond it.
const QUEUE: usize = 8192;

/// The witness's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory at `root` (not touched until used).
    pub fn new(root: &Path) -> DataDir {
        DataDir {
            root: root.to_owned(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.path("config.json")
    }

    /// `state.jsonl`.
    pub fn journal_path(&self) -> PathBuf {
        self.path("state.jsonl")
    }

    /// `evidence.jsonl`.
    pub fn evidence_path(&self) -> PathBuf {
        self.path("evidence.jsonl")
    }

    /// Creates the directory (mode 0700), a new cosignature/v1 key named
    /// `name` (mode 0600, never overwritten) and an empty configuration,
    /// written last so a directory with a configuration is complete.
    /// Returns the public key.
    pub fn init(&self, name: &str) -> anyhow::Result<VerifierKey> {
        if self.config_path().exists() {
            bail!("{} is already initialised", self.root.display());
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("create {}", self.root.display()))?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        let key = SignerKey::generate(name, KeyType::CosignatureV1)
            .map_err(|e| anyhow!("witness name {name:?}: {e}"))?;
        let key_path = self.path("witness.key");
        write_new(
            &key_path,
            format!("{}\n", key.to_private_string()).as_bytes(),
            0o600,
        )
        .with_context(|| format!("write {}", key_path.display()))?;
        let vkey = key.verifier();
        write_atomic(&self.path("witness.vkey"), format!("{vkey}\n").as_bytes())?;
        write_atomic(&self.config_path(), &Config::new(name).to_bytes())?;
        Ok(vkey)
    }

    /// Reads and validates `config.json`.
    pub fn read_config(&self) -> anyhow::Result<Config> {
        let path = self.config_path();
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "read {} (run `modeltrail-witness init` first)",
                path.display()
            )
        })?;
        Config::parse(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// Reads the witness's private key, which must be a cosignature/v1 key
    /// named like the configuration says.
    pub fn read_key(&self, config: &Config) -> anyhow::Result<SignerKey> {
        let path = self.path("witness.key");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let key =
            SignerKey::parse(text.trim_end()).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if key.key_type() != KeyType::CosignatureV1 || key.name() != config.name {
            bail!(
                "{} is not a cosignature/v1 key named {:?}",
                path.display(),
                config.name
            );
        }
        Ok(key)
    }

    /// Adds a log key to `config.json` (read, modify, atomic replace, under
    /// an exclusive lock so concurrent `add-log`s do not lose each other's
    /// changes). A running server picks the change up (`crate::server`).
    pub fn add_logs(&self, logs: &[(String, VerifierKey)]) -> anyhow::Result<()> {
        let lock = open_lock(&self.path("config.lock"))?;
        lock.lock().context("lock the configuration")?;
        let mut config = self.read_config()?;
        for (origin, key) in logs {
            config.add_log(origin, key.clone())?;
        }
        write_atomic(&self.config_path(), &config.to_bytes())
    }

    /// Takes the server lock: fails if another server runs on this directory.
    pub fn lock_server(&self) -> anyhow::Result<File> {
        let lock = open_lock(&self.path("lock"))?;
        lock.try_lock().map_err(|_| {
            anyhow!(
                "another modeltrail-witness is serving {}",
                self.root.display()
            )
        })?;
        Ok(lock)
    }

    /// Reads the journal (read-only: a torn tail is ignored, not removed).
    pub fn read_state(&self) -> anyhow::Result<Replay> {
        let path = self.journal_path();
        let bytes = read_if_exists(&path)?;
        replay_state(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// Reads the evidence file.
    pub fn read_evidence(&self) -> anyhow::Result<Vec<EvidenceRecord>> {
        let path = self.evidence_path();
        let bytes = read_if_exists(&path)?;
        let (records, _) = parse_evidence(&bytes).with_context(|| format!("{}", path.display()))?;
        Ok(records)
    }
}

/// A commit: the new state of one origin and/or one piece of evidence.
#[derive(Debug, Default)]
pub struct Commit {
    /// The checkpoint just cosigned.
    pub state: Option<StateRecord>,
    /// Evidence to keep.
    pub evidence: Option<EvidenceRecord>,
}

/// The durable store failed; nothing more is committed until a restart.
#[derive(Debug, Clone, thiserror::Error)]
#[error("witness storage failed, restart the witness: {0}")]
pub struct StoreFailed(pub String);

struct Job {
    commit: Commit,
    reply: oneshot::Sender<Result<(), StoreFailed>>,
}

/// Counters of the writer thread, for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Batches written (one `fdatasync` of the journal each).
    pub batches: AtomicU64,
    /// Commits written.
    pub commits: AtomicU64,
    /// Journal rewrites.
    pub compactions: AtomicU64,
}

/// The handle to the writer thread.
#[derive(Clone)]
pub struct Store {
    queue: mpsc::Sender<Job>,
    /// The writer's counters.
    pub stats: Arc<StoreStats>,
}

impl Store {
    /// Opens the journal and evidence files for appending (cutting off a
    /// torn tail left by a crash), and starts the writer thread. `replay` is
    /// the journal as read at start-up; the journal is rewritten with only
    /// the latest record per origin when it grows past `compact_bytes`.
    pub fn open(
        dir: &DataDir,
        replay: &Replay,
        compact_bytes: u64,
    ) -> anyhow::Result<(Store, std::thread::JoinHandle<()>)> {
        let journal = open_append(&dir.journal_path(), replay.valid_len as u64)?;
        let evidence_len = parse_evidence(&read_if_exists(&dir.evidence_path())?)
            .with_context(|| format!("{}", dir.evidence_path().display()))?
            .1;
        let evidence = open_append(&dir.evidence_path(), evidence_len as u64)?;
        sync_dir(dir.root())?;
        let stats = Arc::new(StoreStats::default());
        let writer = Writer {
            dir: dir.clone(),
            journal,
            journal_len: replay.valid_len as u64,
            evidence,
            latest: replay.latest.clone(),
            compact_bytes,
            failed: None,
            stats: stats.clone(),
        };
        let (queue, jobs) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("witness-store".into())
            .spawn(move || writer.run(jobs))?;
        Ok((Store { queue, stats }, thread))
    }

    /// Makes `commit` durable; returns once it is (or the store failed).
    pub async fn commit(&self, commit: Commit) -> Result<(), StoreFailed> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { commit, reply })
            .await
            .map_err(|_| StoreFailed("the writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreFailed("the writer stopped".into()))?
    }
}

/// The writer thread's state.
struct Writer {
    dir: DataDir,
    journal: File,
    journal_len: u64,
    evidence: File,
    /// The latest record per origin, for compaction.
    latest: BTreeMap<String, StateRecord>,
    compact_bytes: u64,
    failed: Option<StoreFailed>,
    stats: Arc<StoreStats>,
}

impl Writer {
    /// Takes every queued commit, writes them with one sync, answers them;
    /// until every [`Store`] handle is dropped.
    fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let result = self.write_batch(&batch);
            for job in batch {
                let _ = job.reply.send(result.clone());
            }
        }
    }

    /// Appends a batch and syncs it; then compacts if due.
    fn write_batch(&mut self, batch: &[Job]) -> Result<(), StoreFailed> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        let result = self.append(batch).and_then(|()| self.maybe_compact());
        if let Err(err) = result {
            let failed = StoreFailed(format!("{err:#}"));
            tracing::error!(error = %failed, "storage failed; refusing to cosign until restarted");
            self.failed = Some(failed.clone());
            return Err(failed);
        }
        self.stats.batches.fetch_add(1, Relaxed);
        self.stats.commits.fetch_add(batch.len() as u64, Relaxed);
        Ok(())
    }

    fn append(&mut self, batch: &[Job]) -> anyhow::Result<()> {
        let mut state = Vec::new();
        let mut evidence = Vec::new();
        for job in batch {
            if let Some(record) = &job.commit.state {
                state.extend_from_slice(&record.to_line());
            }
            if let Some(record) = &job.commit.evidence {
                evidence.extend_from_slice(&record.to_line());
            }
        }
        if !evidence.is_empty() {
            self.evidence
                .write_all(&evidence)
                .context("append evidence")?;
            self.evidence.sync_data().context("sync evidence")?;
        }
        if !state.is_empty() {
            self.journal.write_all(&state).context("append journal")?;
            self.journal.sync_data().context("sync journal")?;
            self.journal_len += state.len() as u64;
        }
        for job in batch {
            if let Some(record) = &job.commit.state {
                self.latest
                    .insert(record.checkpoint.origin.clone(), record.clone());
            }
        }
        Ok(())
    }

    /// Rewrites the journal with one record per origin once it passes
    /// `compact_bytes`: temp file, sync, rename over, sync the directory.
    fn maybe_compact(&mut self) -> anyhow::Result<()> {
        if self.journal_len < self.compact_bytes {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for record in self.latest.values() {
            bytes.extend_from_slice(&record.to_line());
        }
        let path = self.dir.journal_path();
        write_atomic(&path, &bytes).context("compact the journal")?;
        self.journal = open_append(&path, bytes.len() as u64)?;
        self.journal_len = bytes.len() as u64;
        self.stats.compactions.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// Opens `path` for appending, creating it, and cuts it to `len` (dropping a
/// torn tail) durably.
fn open_append(path: &Path, len: u64) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    if file.metadata()?.len() != len {
        file.set_len(len)
            .with_context(|| format!("truncate {}", path.display()))?;
        file.sync_all()?;
    }
    Ok(file)
}

fn open_lock(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

fn read_if_exists(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Creates `path` with `mode`, failing if it exists, and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` atomically and durably: temp file, sync, rename, sync
/// the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("sync {}", dir.display()))
}
