//! The sequencer: the single task that orders submissions, applies the
//! stateful checks in log order, appends each batch durably, and publishes a
//! checkpoint for it before answering any submitter.
//!
//! Request handlers validate entries statelessly (encoding, signature,
//! signer role under the current policy) and queue them on a bounded
//! channel; a full queue is answered with 503 (pushback) instead of growing.
//! The sequencer takes what is queued (up to `max_batch_entries`, waiting at
//! most `max_batch_age` for more), and per batch:
//!
//! 1. opens one index transaction, deduplicates (against the index, whose
//!    lookups check the entry they find, and within the batch) and runs the
//!    [`ChainRules`] on each entry in order, staging their effects and
//!    adding each admitted entry's artefact ID to the transaction;
//! 2. writes the batch's entry bundles and tiles and syncs them
//!    ([`TreeWriter::append`]);
//! 3. signs and atomically replaces the checkpoint;
//! 4. records the batch in the index transaction (on this thread while
//!    steps 2–3 run on another) and commits it once the checkpoint is
//!    durable, commits the staged rule effects, publishes the checkpoint to
//!    readers, and only then answers every submitter.
//!
//! If step 2 or 3 fails, nothing of the batch is acknowledged, the staged
//! effects and the index transaction are dropped and the writer is reopened
//! from the last checkpoint, whose tree the failed batch's files do not
//! change; while it cannot be reopened, batches are refused and the reopen
//! is retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Log, Published};
use crate::entry::{ArtefactId, Body, SignedEntry};
use crate::store::fs::FsTileStore;
use crate::store::index::{IndexError, IndexUpdate};
use crate::store::writer::TreeWriter;
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::note::{Note, SignerKey};

/// One entry waiting to be sequenced.
pub struct Submission {
    /// The validated entry.
    pub entry: SignedEntry,
    /// Its typed body, parsed once by the handler that validated it.
    pub body: Body,
    /// When the request arrived, for the integration-latency metric.
    pub received: Instant,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<Accepted, Refused>>,
}

/// A durably logged entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Its leaf index.
    pub index: u64,
    /// Whether an identical entry was already logged (at `index`).
    pub duplicate: bool,
    /// Things the chain rules flagged without refusing (e.g. an inference
    /// naming an inactive version).
    pub warnings: Vec<String>,
}

/// Why the sequencer refused an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The HTTP status: 403 unauthorised, 409 chain conflict, 422 invalid
    /// content, 500 storage failure.
    pub status: u16,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What a person can act on.
    pub message: String,
}

impl Refused {
    /// A refusal with a status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The stateful checks that depend on everything logged before an entry.
/// They run in the sequencer, in log order, atomically with the append.
pub trait ChainRules: Send + 'static {
    /// Checks `entry` as the leaf at `index`, after everything admitted
    /// before it (earlier entries of the same batch included), and stages its
    /// effects. Returns warnings to pass on to the submitter.
    /// `state` is the batch's index transaction, read before the batch is
    /// recorded in it: the committed state (the rules stage what earlier
    /// members of the batch change).
    fn admit(
        &mut self,
        state: &IndexUpdate<'_>,
        entry: &SignedEntry,
        body: &Body,
        index: u64,
    ) -> Result<Vec<String>, Refused>;
    /// The staged effects are durable: make them current.
    fn commit(&mut self, log: &Log);
    /// The batch could not be written: forget the staged effects.
    fn abort(&mut self);
}

/// How the sequencer batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most entries per batch.
    pub max_entries: usize,
    /// Longest a batch waits for more entries after its first.
    pub max_age: Duration,
}

/// Runs the sequencer until every sender of `queue` is dropped and the queue
/// is drained. Each batch ends with a published checkpoint, so the last one
/// is the final checkpoint of a graceful shutdown.
pub async fn run(
    log: Arc<Log>,
    mut queue: mpsc::Receiver<Submission>,
    writer: TreeWriter<Arc<FsTileStore>>,
    mut rules: Box<dyn ChainRules>,
    key: Arc<SignerKey>,
    limits: BatchLimits,
) {
    // `None` after a storage failure until the tree reopens from the last
    // checkpoint: a fault that passes (a full disk freed, a path fixed)
    // must not stop the log for good.
    let mut writer = Some(writer);
    while let Some(batch) = next_batch(&mut queue, limits).await {
        log.metrics.queue_depth.store(queue.len() as u64, Relaxed);
        let mut tree = match writer.take() {
            Some(tree) => tree,
            None => match reopen(&log) {
                Ok(tree) => tree,
                Err(err) => {
                    tracing::error!(%err, "the tree still cannot be reopened; refusing the batch");
                    let refused = Refused::new(
                        500,
                        "storage_failure",
                        format!("the log cannot reopen its tree from its last checkpoint: {err}"),
                    );
                    refuse_all(&log, batch, &refused);
                    continue;
                }
            },
        };
        let task_log = log.clone();
        let task_key = key.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let outcome = integrate(&task_log, &mut tree, rules.as_mut(), &task_key, batch);
            (tree, rules, outcome)
        })
        .await;
        let Ok((tree, r, outcome)) = joined else {
            tracing::error!("sequencer batch panicked; stopping the sequencer");
            return;
        };
        rules = r;
        match outcome {
            Ok(()) => writer = Some(tree),
            Err(err) => {
                tracing::error!(%err, "batch not integrated; reopening from the last checkpoint");
                drop(tree);
                writer = reopen(&log)
                    .inspect_err(|err| tracing::error!(%err, "cannot reopen the tree yet"))
                    .ok();
            }
        }
    }
    if let Err(err) = log.index.flush() {
        tracing::warn!(%err, "flushing the index at shutdown");
    }
    tracing::info!(size = log.published().size, "sequencer stopped");
}

/// Waits for the first submission, then gathers more until the batch is
/// full, `max_age` has passed, or nothing more is queued after it.
async fn next_batch(
    queue: &mut mpsc::Receiver<Submission>,
    limits: BatchLimits,
) -> Option<Vec<Submission>> {
    let first = queue.recv().await?;
    let deadline = tokio::time::Instant::now() + limits.max_age;
    let mut batch = Vec::with_capacity(limits.max_entries.min(1024));
    batch.push(first);
    while batch.len() < limits.max_entries {
        match queue.try_recv() {
            Ok(s) => batch.push(s),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    Some(batch)
}

/// What a batch member turned into before the append.
enum Fate {
    /// New: appended at this index with these warnings.
    Append(u64, Vec<String>),
    /// Identical to an entry logged at this index.
    Duplicate(u64),
    /// Refused by a rule.
    Refuse(Refused),
}

/// Integrates one batch (steps 1–4 of the module docs) and answers every
/// submitter. On a storage failure every submitter gets a 500 and the error
/// is returned so the caller reopens the writer.
fn integrate(
    log: &Log,
    writer: &mut TreeWriter<Arc<FsTileStore>>,
    rules: &mut dyn ChainRules,
    key: &SignerKey,
    batch: Vec<Submission>,
) -> Result<(), String> {
    let start_size = log.published().size;
    // The rules judge by the index: if an earlier batch's index update
    // failed, bring it up to the published tree first, or refuse the batch.
    if log.index.indexed_size() != start_size
        && let Err(err) = log.index.catch_up(start_size)
    {
        refuse_all(log, batch, &index_failure(err));
        return Ok(());
    }
    // One index transaction per batch: it deduplicates and answers the
    // rules while the batch is judged, then records it. Dropped without a
    // commit (a refused batch, a storage failure) it leaves no trace.
    let txn = match log.index.begin() {
        Ok(txn) => txn,
        Err(err) => {
            refuse_all(log, batch, &index_failure(err));
            return Ok(());
        }
    };
    let mut update = match txn.update() {
        Ok(update) => update,
        Err(err) => {
            refuse_all(log, batch, &index_failure(err));
            return Ok(());
        }
    };
    let judging = Instant::now();
    let judged = judge(&mut update, rules, &batch, start_size);
    let stages = &log.metrics.stages;
    stages.judge.observe(judging.elapsed().as_secs_f64());
    let (fates, appended) = match judged {
        Ok(judged) => judged,
        Err(err) => {
            rules.abort();
            refuse_all(log, batch, &index_failure(err));
            return Ok(());
        }
    };

    // The leaves are borrowed from the submissions, not copied.
    let leaves: Vec<&[u8]> = appended.iter().map(|&i| batch[i].entry.bytes()).collect();
    if !leaves.is_empty() {
        // The tiles are written, synced and signed on a second thread while
        // this one records the batch in its index transaction: the two are
        // independent, and the transaction commits only after the checkpoint
        // is durable (or is dropped if it is not).
        let size = start_size + leaves.len() as u64;
        let (stored, recorded) = std::thread::scope(|scope| {
            let storing = scope.spawn(|| {
                let storing = Instant::now();
                let stored = append_and_sign(log, writer, key, start_size, &leaves);
                stages.store.observe(storing.elapsed().as_secs_f64());
                stored
            });
            let recording = Instant::now();
            let recorded = record(update, start_size, &leaves, size);
            let recorded = recorded.map(|()| recording.elapsed());
            let stored = storing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (stored, recorded)
        });
        let published = match stored {
            Ok(published) => published,
            Err(err) => {
                rules.abort();
                let refused = Refused::new(
                    500,
                    "storage_failure",
                    format!("the log could not store the batch: {err}"),
                );
                refuse_all(log, batch, &refused);
                return Err(err);
            }
        };
        // Index before publishing, so that no reader sees an entry in the
        // checkpoint that the index cannot find yet.
        // The index's time is its own (recording ran beside the store stage).
        let committing = Instant::now();
        let committed = recorded.and_then(|spent| {
            log.index.commit(txn)?;
            stages
                .index
                .observe((spent + committing.elapsed()).as_secs_f64());
            Ok(())
        });
        match committed {
            Ok(()) => log.metrics.recover(),
            Err(err) => {
                // The index is derived: the next batch (or start) catches it up.
                tracing::warn!(%err, "index update failed");
                log.metrics
                    .degrade("index_failure", &format!("the log's index failed: {err}"));
            }
        }
        rules.commit(log);
        log.publish(published);
        log.metrics.batch_size.observe(leaves.len() as f64);
    }

    let now = Instant::now();
    for (s, fate) in batch.into_iter().zip(fates) {
        let answer = match fate {
            Fate::Append(index, warnings) => {
                log.metrics.accepted.fetch_add(1, Relaxed);
                log.metrics.observe_latency(now - s.received);
                Ok(Accepted {
                    index,
                    duplicate: false,
                    warnings,
                })
            }
            Fate::Duplicate(index) => {
                log.metrics.duplicates.fetch_add(1, Relaxed);
                Ok(Accepted {
                    index,
                    duplicate: true,
                    warnings: Vec::new(),
                })
            }
            Fate::Refuse(refused) => {
                log.metrics.count_refused(refused.code, &refused.message);
                Err(refused)
            }
        };
        let _ = s.reply.send(answer);
    }
    Ok(())
}

/// Step 1: decides each member's fate in order — a duplicate of a logged
/// entry or of an earlier member, refused by the rules, or appended at the
/// next index — and returns the fates and the positions in `batch` of the
/// members to append, in order.
fn judge(
    update: &mut IndexUpdate<'_>,
    rules: &mut dyn ChainRules,
    batch: &[Submission],
    start_size: u64,
) -> Result<(Vec<Fate>, Vec<usize>), IndexError> {
    let mut next = start_size;
    let mut in_batch: HashMap<ArtefactId, u64> = HashMap::new();
    let mut fates = Vec::with_capacity(batch.len());
    let mut appended = Vec::with_capacity(batch.len());
    for (position, submission) in batch.iter().enumerate() {
        let entry = &submission.entry;
        let id = entry.id();
        let fate = if let Some(&index) = in_batch.get(&id) {
            Fate::Duplicate(index)
        } else if let Some(index) = update.lookup_id(&id)? {
            // The lookup checked the entry there: it has this ID.
            Fate::Duplicate(index)
        } else {
            match rules.admit(update, entry, &submission.body, next) {
                Ok(warnings) => {
                    update.add_id(&id, next);
                    in_batch.insert(id, next);
                    appended.push(position);
                    next += 1;
                    Fate::Append(next - 1, warnings)
                }
                Err(refused) => Fate::Refuse(refused),
            }
        };
        fates.push(fate);
    }
    Ok((fates, appended))
}

/// Step 4's index half: records the appended `leaves` (from `first`) and
/// the new indexed `size` in the batch's transaction.
fn record(
    mut update: IndexUpdate<'_>,
    first: u64,
    leaves: &[&[u8]],
    size: u64,
) -> Result<(), IndexError> {
    for (index, leaf) in (first..).zip(leaves) {
        update.record_fields(index, leaf)?;
    }
    update.finish(size)
}

/// Answers every member of `batch` with `refused`.
fn refuse_all(log: &Log, batch: Vec<Submission>, refused: &Refused) {
    for s in batch {
        log.metrics.count_refused(refused.code, &refused.message);
        let _ = s.reply.send(Err(refused.clone()));
    }
}

/// The refusal of an entry or a batch the index cannot judge.
pub(super) fn index_failure(err: impl std::fmt::Display) -> Refused {
    Refused::new(
        500,
        "index_failure",
        format!("the log's index failed: {err}"),
    )
}

/// Steps 2 and 3: durable tiles, then the signed checkpoint, durably
/// replaced. Returns what to publish once the index has the batch.
fn append_and_sign(
    log: &Log,
    writer: &mut TreeWriter<Arc<FsTileStore>>,
    key: &SignerKey,
    old_size: u64,
    leaves: &[&[u8]],
) -> Result<Published, String> {
    let (size, root) = writer.append(leaves).map_err(|e| e.to_string())?;
    debug_assert_eq!(size, old_size + leaves.len() as u64);
    let checkpoint = Checkpoint {
        origin: log.origin.clone(),
        size,
        root,
        extensions: Vec::new(),
    };
    let note = Note::sign(&checkpoint.to_text(), &[key]).map_err(|e| e.to_string())?;
    let note = note.to_bytes();
    log.store
        .replace_checkpoint(&note)
        .map_err(|e| format!("replacing the checkpoint: {e}"))?;
    Ok(Published {
        size,
        root,
        note,
        published_at: std::time::Instant::now(),
    })
}

/// A writer positioned at the published checkpoint.
fn reopen(log: &Log) -> Result<TreeWriter<Arc<FsTileStore>>, String> {
    let published = log.published();
    TreeWriter::open(log.store.clone(), published.size, published.root).map_err(|e| e.to_string())
}

use crate::store::TileStore as _;
