//! Getting the log's checkpoints cosigned: the client side of
//! c2sp.org/tlog-witness, with the publishing rule of a c2sp.org/tlog-policy.
//!
//! The operator gives a tlog-policy file whose `witness <name> <vkey> <url>`
//! lines name each witness and its submission prefix, and whose `quorum`
//! line says which cosignatures a checkpoint needs before the log serves it
//! at `/checkpoint`.
//!
//! One task runs witnessing rounds. A round takes the newest published
//! checkpoint and sends it to every witness concurrently (tlog-witness
//! §add-checkpoint): `old <size the witness last cosigned>`, the consistency
//! proof from that size, and the signed checkpoint. A witness that answers
//! 409 tells its size (`text/x.tlog.size`); the log retries once from it.
//! The log starts from `old 0` and learns sizes from 409s, so it keeps no
//! witness state on disk. Each returned cosignature is verified under
//! cosignature/v1 before it is used.
//!
//! As soon as the cosignatures collected satisfy the quorum, the witnessed
//! checkpoint (the log's note plus those cosignature lines) is written to
//! `tiles/checkpoint.witnessed` (atomically, durably) and served; later
//! cosignatures of the same round are added as they arrive. A round ends when
//! every witness has answered or after the timeout, so a slow or dead witness
//! delays publication only when the quorum needs it. A witness that fails is
//! skipped for an exponentially growing backoff (1 s doubling to the
//! configured maximum) and retried even when the log is idle, so a witness
//! that comes back catches up without waiting for new entries.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Log, Published};
use crate::store::TileStore as _;
use crate::tlog::Hash;
use crate::tlog::add_checkpoint::{AddCheckpointRequest, SIZE_CONTENT_TYPE};
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::cosignature;
use crate::tlog::note::{Note, NoteSignature, VerifierKey};
use crate::tlog::policy::Policy;
use crate::tlog::proof::prove_consistency;

/// The first backoff after a failure; it doubles with each further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The witnesses of a log and the quorum its served checkpoint must meet.
#[derive(Debug)]
pub struct WitnessPolicy {
    /// The parsed tlog-policy.
    policy: Policy,
    /// What the log knows of each witness, indexed like `policy.witnesses`.
    witnesses: Vec<WitnessStatus>,
}

/// One witness: where it is and how it has been doing (for `/metrics`).
#[derive(Debug)]
pub struct WitnessStatus {
    /// The policy-local name.
    pub name: String,
    /// The cosigning key.
    pub key: VerifierKey,
    /// The submission prefix, without a trailing slash.
    pub url: String,
    /// 1 if the last request got a valid cosignature, else 0.
    pub up: AtomicU64,
    /// The largest tree size it cosigned for this log.
    pub cosigned_size: AtomicU64,
    /// Requests that failed (network, timeout, refusal, bad cosignature).
    pub failures: AtomicU64,
}

/// Why a witness policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WitnessPolicyError {
    /// The file could not be read.
    #[error("reading the witness policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid tlog-policy.
    #[error("the witness policy {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        source: crate::tlog::policy::PolicyParseError,
    },
    /// The policy cannot drive witnessing.
    #[error("the witness policy {path}: {what}")]
    Unusable {
        /// The file.
        path: String,
        /// What is missing.
        what: String,
    },
}

impl WitnessPolicy {
    /// Reads and checks a tlog-policy file for the log whose checkpoint key
    /// is `log_key`: every witness needs a URL, there must be a quorum of
    /// witnesses, and `log` lines, if any, must include this log's key.
    pub fn load(path: &Path, log_key: &VerifierKey) -> Result<WitnessPolicy, WitnessPolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| WitnessPolicyError::Read {
            path: shown.clone(),
            source,
        })?;
        let policy = Policy::parse(&text).map_err(|source| WitnessPolicyError::Parse {
            path: shown.clone(),
            source,
        })?;
        Self::new(policy, log_key)
            .map_err(|what| WitnessPolicyError::Unusable { path: shown, what })
    }

    fn new(policy: Policy, log_key: &VerifierKey) -> Result<WitnessPolicy, String> {
        if !policy.logs.is_empty() && !policy.logs.iter().any(|l| l.key == *log_key) {
            return Err(format!(
                "its log lines do not include this log's key {log_key}"
            ));
        }
        if policy.quorum.is_none() {
            return Err("`quorum none` needs no witnesses; remove the witness policy".into());
        }
        let mut witnesses = Vec::with_capacity(policy.witnesses.len());
        for w in &policy.witnesses {
            let name = String::from_utf8_lossy(&w.name).into_owned();
            let url = w
                .url
                .as_deref()
                .ok_or_else(|| format!("witness {name} has no URL (its submission prefix)"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("witness {name}: {url} is not an http(s) URL"));
            }
            witnesses.push(WitnessStatus {
                name,
                key: w.key.clone(),
                url: url.trim_end_matches('/').to_owned(),
                up: AtomicU64::new(0),
                cosigned_size: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            });
        }
        Ok(WitnessPolicy { policy, witnesses })
    }

    /// The witnesses, in policy order.
    pub fn witnesses(&self) -> &[WitnessStatus] {
        &self.witnesses
    }

    /// Whether cosignatures by exactly the flagged witnesses meet the quorum.
    fn quorum_met(&self, cosigned: &[bool]) -> bool {
        self.policy.quorum_met(cosigned)
    }

    /// Checks a stored witnessed checkpoint against this policy and the
    /// log's key: the log signed it and the witnesses that validly cosigned
    /// it meet the quorum. Used at start-up, where the policy may have changed.
    pub fn verify_witnessed(
        &self,
        note: &[u8],
        log_key: &VerifierKey,
    ) -> Result<Checkpoint, String> {
        let keys: Vec<VerifierKey> = self.witnesses.iter().map(|w| w.key.clone()).collect();
        let signed = Checkpoint::open(note, log_key, &keys).map_err(|e| e.to_string())?;
        let cosigned: Vec<bool> = self
            .witnesses
            .iter()
            .map(|w| signed.verified.iter().any(|v| v.key == w.key))
            .collect();
        if !self.quorum_met(&cosigned) {
            return Err("its cosignatures do not meet the current witness quorum".into());
        }
        Ok(signed.checkpoint)
    }

    /// Appends the Prometheus exposition of every witness's status.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        type Field = fn(&WitnessStatus) -> &AtomicU64;
        let metrics: [(&str, &str, &str, Field); 3] = [
            (
                "modeltrail_witness_up",
                "1 if the witness's last answer was a valid cosignature.",
                "gauge",
                |w| &w.up,
            ),
            (
                "modeltrail_witness_cosigned_size",
                "The largest tree size the witness cosigned.",
                "gauge",
                |w| &w.cosigned_size,
            ),
            (
                "modeltrail_witness_failures_total",
                "add-checkpoint requests to the witness that failed.",
                "counter",
                |w| &w.failures,
            ),
        ];
        for (metric, help, kind, field) in metrics {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for w in &self.witnesses {
                let value = field(w).load(Relaxed);
                let _ = writeln!(out, "{metric}{{witness=\"{}\"}} {value}", w.name);
            }
        }
    }
}

/// Knobs of the witnessing loop (from `[witness]` in config.toml).
#[derive(Debug, Clone, Copy)]
pub struct WitnessTiming {
    /// Longest a round waits for the witnesses' answers.
    pub timeout: Duration,
    /// Longest a failed witness is skipped before it is tried again.
    pub max_backoff: Duration,
}

/// What the loop remembers of one witness between rounds.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The size the witness is believed to have cosigned last (0 at first).
    known_size: u64,
    /// Its cosignature of the log's checkpoint of `known_size`, if it gave one.
    cosignature: Option<NoteSignature>,
    /// Consecutive failures.
    failures: u32,
    /// Not tried again before this instant.
    retry_at: Option<Instant>,
}

impl Progress {
    /// Whether the witness should be sent `checkpoint` now.
    fn due(&self, checkpoint: &Published, now: Instant) -> bool {
        self.known_size < checkpoint.size && self.retry_at.is_none_or(|at| at <= now)
    }

    /// Its cosignature of `checkpoint`, if it has given one.
    fn cosigned(&self, checkpoint: &Published) -> Option<&NoteSignature> {
        (self.known_size == checkpoint.size)
            .then_some(self.cosignature.as_ref())
            .flatten()
    }

    fn succeeded(&mut self, witness: &WitnessStatus, submitted: Submitted) {
        witness.up.store(1, Relaxed);
        witness
            .cosigned_size
            .fetch_max(submitted.known_size, Relaxed);
        *self = Progress {
            known_size: submitted.known_size,
            cosignature: Some(submitted.cosignature),
            failures: 0,
            retry_at: None,
        };
    }

    fn failed(&mut self, witness: &WitnessStatus, failed: Failed, max_backoff: Duration) {
        tracing::warn!(witness = %witness.name, error = %failed.message, "witness did not cosign");
        witness.up.store(0, Relaxed);
        witness.failures.fetch_add(1, Relaxed);
        if let Some(size) = failed.learned_size {
            self.known_size = size;
            self.cosignature = None;
        }
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + backoff(self.failures, max_backoff));
    }
}

/// Runs witnessing rounds until `stop` fires: one per newer published
/// checkpoint, and retries of failed witnesses while they lag behind it.
pub async fn run(log: Arc<Log>, timing: WitnessTiming, mut stop: watch::Receiver<bool>) {
    let Some(policy) = log.witness_policy.clone() else {
        return;
    };
    let http = reqwest::Client::builder()
        .timeout(timing.timeout)
        .build()
        .expect("an HTTP client without TLS builds");
    let mut published = log.subscribe();
    let mut progress = vec![Progress::default(); policy.witnesses.len()];
    loop {
        let latest = published.borrow_and_update().clone();
        let now = Instant::now();
        if progress.iter().any(|p| p.due(&latest, now)) {
            round(&log, &policy, &http, &latest, &mut progress, timing).await;
        }
        let retry_at = progress
            .iter()
            .filter(|p| p.known_size < latest.size)
            .filter_map(|p| p.retry_at)
            .min();
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            _ = retry => {}
            _ = stop.changed() => return,
        }
    }
}

/// One round: submit `checkpoint` to every witness that is due, publish the
/// witnessed checkpoint once the quorum is met, add later cosignatures.
async fn round(
    log: &Arc<Log>,
    policy: &Arc<WitnessPolicy>,
    http: &reqwest::Client,
    checkpoint: &Arc<Published>,
    progress: &mut [Progress],
    timing: WitnessTiming,
) {
    let now = Instant::now();
    let mut requests = JoinSet::new();
    let mut pending = vec![false; progress.len()];
    for (i, p) in progress.iter().enumerate() {
        if !p.due(checkpoint, now) {
            continue;
        }
        pending[i] = true;
        let (log, policy, http, checkpoint) = (
            log.clone(),
            policy.clone(),
            http.clone(),
            checkpoint.clone(),
        );
        let known = p.known_size;
        requests.spawn(async move {
            let answer = submit(&log, &policy.witnesses[i], &http, &checkpoint, known).await;
            (i, answer)
        });
    }
    let deadline = tokio::time::Instant::now() + timing.timeout;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, requests.join_next()).await {
        let Ok((i, answer)) = joined else { continue };
        pending[i] = false;
        let witness = &policy.witnesses[i];
        match answer {
            Ok(submitted) => {
                progress[i].succeeded(witness, submitted);
                publish_if_quorum(log, policy, checkpoint, progress).await;
            }
            Err(failed) => progress[i].failed(witness, failed, timing.max_backoff),
        }
    }
    // Requests still running at the deadline are dropped with the JoinSet.
    for (i, _) in pending.iter().enumerate().filter(|(_, p)| **p) {
        let late = Failed::new("no answer before the round's timeout");
        progress[i].failed(&policy.witnesses[i], late, timing.max_backoff);
    }
}

/// 1 s after the first failure, doubling, at most `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1 << shift).min(max)
}

/// If the cosignatures so far meet the quorum, makes the witnessed
/// checkpoint durable and serves it.
async fn publish_if_quorum(
    log: &Arc<Log>,
    policy: &WitnessPolicy,
    checkpoint: &Published,
    progress: &[Progress],
) {
    let cosignatures: Vec<Option<&NoteSignature>> =
        progress.iter().map(|p| p.cosigned(checkpoint)).collect();
    let flags: Vec<bool> = cosignatures.iter().map(Option::is_some).collect();
    if !policy.quorum_met(&flags) {
        return;
    }
    let mut note = match Note::parse(&checkpoint.note) {
        Ok(note) => note,
        Err(err) => {
            tracing::error!(%err, "the published checkpoint does not parse");
            return;
        }
    };
    for sig in cosignatures.into_iter().flatten() {
        if let Err(err) = note.add_signature(sig.clone()) {
            tracing::error!(%err, "adding a cosignature");
            return;
        }
    }
    let witnessed = Published {
        size: checkpoint.size,
        root: checkpoint.root,
        note: note.to_bytes(),
        published_at: checkpoint.published_at,
    };
    let first = log.witnessed().is_none_or(|w| w.size < checkpoint.size);
    let store = log.store.clone();
    let bytes = witnessed.note.clone();
    let stored =
        tokio::task::spawn_blocking(move || store.replace_witnessed_checkpoint(&bytes)).await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(%err, "storing the witnessed checkpoint"),
        Err(err) => tracing::error!(%err, "storing the witnessed checkpoint"),
    }
    log.publish_witnessed(witnessed);
    if first {
        log.metrics
            .witness_latency
            .observe(checkpoint.published_at.elapsed().as_secs_f64());
    }
}

/// A witness's valid cosignature of the checkpoint.
struct Submitted {
    /// The size it has now cosigned.
    known_size: u64,
    /// Its cosignature line.
    cosignature: NoteSignature,
}

/// Why a witness did not cosign.
struct Failed {
    message: String,
    /// The size a 409 told, to start the next attempt from.
    learned_size: Option<u64>,
}

impl Failed {
    fn new(message: impl Into<String>) -> Failed {
        Failed {
            message: message.into(),
            learned_size: None,
        }
    }
}

/// Sends `checkpoint` to one witness from `known_size`; after a 409, once
/// more from the size the witness reported.
async fn submit(
    log: &Arc<Log>,
    witness: &WitnessStatus,
    http: &reqwest::Client,
    checkpoint: &Arc<Published>,
    known_size: u64,
) -> Result<Submitted, Failed> {
    let url = format!("{}/add-checkpoint", witness.url);
    let mut old = known_size;
    for _attempt in 0..2 {
        let body = request_body(log, checkpoint, old).await?;
        let response = http
            .post(&url)
            .body(body)
            .send()
            .await
            .map_err(|e| Failed::new(format!("POST {url}: {e}")))?;
        let status = response.status().as_u16();
        let is_size = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(SIZE_CONTENT_TYPE.as_bytes()));
        let text = response
            .bytes()
            .await
            .map_err(|e| Failed::new(format!("reading the answer of {url}: {e}")))?;
        match status {
            200 => {
                let cosignature = accept_cosignature(witness, checkpoint, &text)
                    .map_err(|e| Failed::new(format!("{url}: {e}")))?;
                return Ok(Submitted {
                    known_size: checkpoint.size,
                    cosignature,
                });
            }
            409 if is_size => {
                let size = parse_size(&text)
                    .ok_or_else(|| Failed::new(format!("{url}: 409 with a malformed size body")))?;
                if size > checkpoint.size {
                    return Err(Failed {
                        message: format!(
                            "{url}: the witness has cosigned size {size}, beyond this log's {}",
                            checkpoint.size
                        ),
                        learned_size: Some(size),
                    });
                }
                old = size;
            }
            _ => {
                let first_line = String::from_utf8_lossy(&text);
                let first_line = first_line.lines().next().unwrap_or("").trim();
                return Err(Failed {
                    message: format!("{url}: {status} {first_line}"),
                    learned_size: Some(old),
                });
            }
        }
    }
    Err(Failed {
        message: format!("{url}: the witness's size changed twice during one request"),
        learned_size: Some(old),
    })
}

/// The `add-checkpoint` body: `old <size>`, the consistency proof lines from
/// `old` to the checkpoint, an empty line, the signed checkpoint.
async fn request_body(log: &Arc<Log>, checkpoint: &Published, old: u64) -> Result<Vec<u8>, Failed> {
    let proof = consistency_proof(log, old, checkpoint.size).await?;
    let note = Note::parse(&checkpoint.note)
        .map_err(|e| Failed::new(format!("the published checkpoint does not parse: {e}")))?;
    let request = AddCheckpointRequest::new(old, proof, note)
        .map_err(|e| Failed::new(format!("building the request: {e}")))?;
    Ok(request.to_bytes())
}

/// The consistency proof from `old` to `new` (empty from 0 or to itself).
async fn consistency_proof(log: &Arc<Log>, old: u64, new: u64) -> Result<Vec<Hash>, Failed> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let log = log.clone();
    tokio::task::spawn_blocking(move || prove_consistency(old, new, &log.hash_reader(new)))
        .await
        .map_err(|e| Failed::new(format!("proving consistency: {e}")))?
        .map_err(|e| Failed::new(format!("proving consistency from {old} to {new}: {e}")))
}

/// Finds and verifies the witness's cosignature line in a 200 answer.
fn accept_cosignature(
    witness: &WitnessStatus,
    checkpoint: &Published,
    body: &[u8],
) -> Result<NoteSignature, String> {
    read_cosignature(&witness.key, &checkpoint.note, body)
}

/// Finds and verifies the cosignature by `key` in a witness's 200 answer
/// `body` to the signed checkpoint `note` (public for the fuzz target
/// `witness_reply`).
pub fn read_cosignature(
    key: &VerifierKey,
    note: &[u8],
    body: &[u8],
) -> Result<NoteSignature, String> {
    // The answer is signature lines: append them to the note and let the
    // note parser read them.
    let mut combined = note.to_vec();
    combined.extend_from_slice(body);
    let note = Note::parse(&combined).map_err(|e| format!("malformed cosignature lines: {e}"))?;
    let sig = note
        .signatures()
        .iter()
        .find(|s| key.matches(s))
        .ok_or("no cosignature by the witness's key in the answer")?;
    cosignature::verify(key, note.text(), sig)
        .map_err(|e| format!("the cosignature does not verify: {e}"))?;
    Ok(sig.clone())
}

/// Parses a `text/x.tlog.size` body: a decimal size and a newline.
pub fn parse_size(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?.strip_suffix('\n')?;
    // Digits only: `u64::from_str` would also take a leading `+`.
    if text.is_empty()
        || (text.len() > 1 && text.starts_with('0'))
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, max), Duration::from_secs(1));
        assert_eq!(backoff(2, max), Duration::from_secs(2));
        assert_eq!(backoff(6, max), Duration::from_secs(32));
        assert_eq!(backoff(7, max), max);
        assert_eq!(backoff(u32::MAX, max), max);
    }

    #[test]
    fn size_bodies_are_strict() {
        assert_eq!(parse_size(b"0\n"), Some(0));
        assert_eq!(parse_size(b"1234\n"), Some(1234));
        for bad in [
            &b"12"[..],
            b"\n",
            b"012\n",
            b"-1\n",
            b"1 \n",
            b"x\n",
            b"+13\n",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
