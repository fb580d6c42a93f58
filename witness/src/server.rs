//! The witness's HTTP interface (c2sp.org/tlog-witness §HTTP Interface).
//!
//! - `POST <submission prefix>/add-checkpoint` (the submission prefix is the
//!   root): decided by [`crate::verdict`], persisted by [`crate::store`]
//!   before the cosignature is returned. Refusals are the spec's statuses
//!   with a plain-text body; a 409 has `Content-Type: text/x.tlog.size` and
//!   the body `<size>\n`.
//! - `GET <monitoring prefix>/<hex SHA-256 of the origin>/checkpoint`: the
//!   latest cosigned checkpoint, the log's signature and the witness's
//!   cosignature. The spec leaves monitor retrieval "TBD"; the monitoring
//!   prefix is the root unless `--monitoring-prefix` says otherwise (the spec
//!   allows one prefix for both).
//! - `GET /metrics`: counters, Prometheus text format.
//!
//! Other paths answer 404 and other methods 405 (and a request that takes
//! longer than `--request-timeout-ms` 408), with a JSON error body
//! `{"error":{"code","message"}}`. A body declared larger than
//! [`MAX_REQUEST_SIZE`] is refused (413) before any of it is read.
//! Connections are served by `modeltrail::front`: header-read and idle
//! timeout, connection limit, shutdown deadline.
//!
//! **One lock per origin** is held from reading the stored state, through
//! the decision, until the new state is durable: two requests for one log
//! are decided one after the other, so none can roll the state back
//! (tlog-witness's race). Requests for different logs proceed in parallel
//! and share the journal's syncs.
//!
//! **The log list is re-read** from `config.json` once a second when the
//! file changed (`add-log` on a running witness); new logs start with the
//! state the journal has for them, added keys apply to the next request.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use modeltrail::entry::bodies::Timestamp;
use modeltrail::tlog::note::{KeyType, Note, SignerKey, VerifierKey};
use tower_http::timeout::TimeoutLayer;

use crate::config::{Config, origin_hash_hex};
use crate::journal::{EvidenceRecord, StateRecord, kind_name, note_string};
use crate::request::{AddCheckpointRequest, MAX_REQUEST_SIZE};
use crate::store::{Commit, DataDir, Store};
use crate::verdict::{Cosigned, Decision, Evidence, KnownLog, Refusal, TEXT_CONTENT_TYPE};

/// How often the configuration file is checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// One witnessed log: its keys and, behind the per-origin lock, its state.
struct Slot {
    keys: Mutex<Vec<VerifierKey>>,
    latest: tokio::sync::Mutex<Option<StateRecord>>,
}

/// The logs by origin and by monitoring name.
#[derive(Default)]
struct Logs {
    by_origin: HashMap<String, Arc<Slot>>,
    by_hash: HashMap<String, Arc<Slot>>,
}

/// What every handler shares.
pub struct Witness {
    key: SignerKey,
    dir: DataDir,
    logs: RwLock<Logs>,
    /// State read at start-up for origins not (yet) configured.
    unconfigured: Mutex<BTreeMap<String, StateRecord>>,
    /// The configuration file's identity when last read.
    config_stamp: Mutex<Option<(u64, i64, i64, u64)>>,
    store: Store,
    cosigned: AtomicU64,
    refused: AtomicU64,
    evidence: AtomicU64,
}

impl Witness {
    /// The witness for `dir`, with the state `latest` read at start-up.
    pub fn new(
        dir: DataDir,
        key: SignerKey,
        config: &Config,
        latest: BTreeMap<String, StateRecord>,
        store: Store,
    ) -> Witness {
        let witness = Witness {
            key,
            dir,
            logs: RwLock::default(),
            unconfigured: Mutex::new(latest),
            config_stamp: Mutex::new(None),
            store,
            cosigned: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            evidence: AtomicU64::new(0),
        };
        witness.apply_config(config);
        *witness.config_stamp.lock().unwrap() = witness.stamp();
        witness
    }

    /// Adds new logs and updates the keys of known ones.
    fn apply_config(&self, config: &Config) {
        let mut logs = self.logs.write().unwrap();
        let mut unconfigured = self.unconfigured.lock().unwrap();
        for log in &config.logs {
            if let Some(slot) = logs.by_origin.get(&log.origin) {
                *slot.keys.lock().unwrap() = log.keys.clone();
                continue;
            }
            let slot = Arc::new(Slot {
                keys: Mutex::new(log.keys.clone()),
                latest: tokio::sync::Mutex::new(unconfigured.remove(&log.origin)),
            });
            logs.by_hash
                .insert(origin_hash_hex(&log.origin), slot.clone());
            logs.by_origin.insert(log.origin.clone(), slot);
        }
    }

    /// The configuration file's inode, modification time and length.
    fn stamp(&self) -> Option<(u64, i64, i64, u64)> {
        let m = std::fs::metadata(self.dir.config_path()).ok()?;
        Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
    }

    /// Re-reads the configuration if the file changed. A configuration that
    /// does not parse is reported and ignored (the logs stay as they were).
    pub fn reload_if_changed(&self) {
        let stamp = self.stamp();
        if stamp == *self.config_stamp.lock().unwrap() {
            return;
        }
        match self.dir.read_config() {
            Ok(config) => {
                self.apply_config(&config);
                tracing::info!(logs = config.logs.len(), "configuration reloaded");
            }
            Err(err) => tracing::error!(error = %format!("{err:#}"), "configuration not reloaded"),
        }
        *self.config_stamp.lock().unwrap() = stamp;
    }

    fn slot(&self, origin: &str) -> Option<Arc<Slot>> {
        self.logs.read().unwrap().by_origin.get(origin).cloned()
    }

    /// The number of logs witnessed.
    pub fn log_count(&self) -> usize {
        self.logs.read().unwrap().by_origin.len()
    }
}

/// The witness's routes. `monitoring_prefix` is `""` (the root) or starts
/// with `/` and does not end with one.
pub fn router(witness: Arc<Witness>, monitoring_prefix: &str, timeout: Duration) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route(
            &format!("{monitoring_prefix}/{{origin_hash}}/checkpoint"),
            get(latest_checkpoint),
        )
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_SIZE))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(timeout_in_json))
        .with_state(witness)
}

/// Refuses a body whose declared `Content-Length` is over
/// [`MAX_REQUEST_SIZE`] before reading any of it (axum's limit reads up to
/// the limit first); a chunked body is still cut at the limit as it streams.
async fn refuse_declared_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_SIZE as u64) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than {MAX_REQUEST_SIZE} bytes"),
        );
    }
    next.run(request).await
}

/// The request timeout's 408 (bodiless from tower-http) in the JSON error shape.
async fn timeout_in_json(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        return json_error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took longer than --request-timeout-ms",
        );
    }
    response
}

/// Re-reads the configuration every [`RELOAD_INTERVAL`], forever.
pub async fn watch_config(witness: Arc<Witness>) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        tick.tick().await;
        let w = witness.clone();
        let _ = tokio::task::spawn_blocking(move || w.reload_if_changed()).await;
    }
}

/// `POST /add-checkpoint`: parse, find the log, then decide and persist in
/// a task of its own, so that a request timing out (or a client going
/// away) cannot interrupt a commit between the sync and the update of the
/// in-memory state.
async fn add_checkpoint(
    State(witness): State<Arc<Witness>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = SystemTime::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejected(&rejection),
    };
    let request = match AddCheckpointRequest::parse(&body) {
        Ok(request) => request,
        Err(err) => return witness.refused(&Refusal::Malformed(err)),
    };
    let Some(slot) = witness.slot(&request.checkpoint().origin) else {
        let refusal = Refusal::UnknownOrigin(request.checkpoint().origin.clone());
        return witness.refused(&refusal);
    };
    let task = tokio::spawn(decide_and_persist(witness, slot, request, received));
    task.await.unwrap_or_else(|err| {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("add-checkpoint failed: {err}"),
        )
    })
}

/// Under the origin's lock: decide, make the new state and any evidence
/// durable, then update the in-memory state and answer.
async fn decide_and_persist(
    witness: Arc<Witness>,
    slot: Arc<Slot>,
    request: AddCheckpointRequest,
    received: SystemTime,
) -> Response {
    let keys = slot.keys.lock().unwrap().clone();
    let mut latest = slot.latest.lock().await;
    let log = KnownLog {
        keys: keys.clone(),
        latest: latest.as_ref().map(StateRecord::head),
    };
    let now = received.duration_since(UNIX_EPOCH).unwrap_or_default();
    let decision =
        crate::verdict::add_checkpoint(Some(&log), &request, &witness.key, now.as_secs());
    let commit = match witness.to_commit(&decision, &request, &keys, latest.as_ref(), now) {
        Ok(commit) => commit,
        Err(err) => return text(StatusCode::INTERNAL_SERVER_ERROR, &err),
    };
    if commit.state.is_some() || commit.evidence.is_some() {
        let new_state = commit.state.clone();
        if let Some(e) = &commit.evidence {
            tracing::warn!(origin = %e.origin, kind = %e.kind, "log misbehaviour: evidence kept");
            witness.evidence.fetch_add(1, Relaxed);
        }
        if let Err(err) = witness.store.commit(commit).await {
            return text(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string());
        }
        if new_state.is_some() {
            *latest = new_state;
        }
    }
    drop(latest);
    match &decision.outcome {
        Ok(cosigned) => {
            witness.cosigned.fetch_add(1, Relaxed);
            text(StatusCode::OK, &cosigned.response_body())
        }
        Err(refusal) => witness.refused(refusal),
    }
}

impl Witness {
    /// What to persist for a decision: the cosigned note, the evidence.
    fn to_commit(
        &self,
        decision: &Decision,
        request: &AddCheckpointRequest,
        keys: &[VerifierKey],
        stored: Option<&StateRecord>,
        now: Duration,
    ) -> Result<Commit, String> {
        let state = match &decision.outcome {
            Ok(cosigned) => Some(cosigned_record(request, keys, cosigned, now.as_secs())?),
            Err(_) => None,
        };
        let evidence = decision.evidence.as_ref().map(|e| {
            let status = match &decision.outcome {
                Ok(_) => 200,
                Err(r) => r.status(),
            };
            evidence_record(e, stored, status, now)
        });
        Ok(Commit { state, evidence })
    }

    /// A refusal's response (and its count).
    fn refused(&self, refusal: &Refusal) -> Response {
        self.refused.fetch_add(1, Relaxed);
        tracing::debug!(status = refusal.status(), %refusal, "refused");
        let status = StatusCode::from_u16(refusal.status()).expect("spec statuses are valid");
        (
            status,
            [(header::CONTENT_TYPE, refusal.content_type())],
            refusal.response_body(),
        )
            .into_response()
    }
}

/// The note to store and serve: the checkpoint text, the signatures by the
/// log's keys (all of which verified), and the cosignature.
fn cosigned_record(
    request: &AddCheckpointRequest,
    keys: &[VerifierKey],
    cosigned: &Cosigned,
    time: u64,
) -> Result<StateRecord, String> {
    let mut signatures: Vec<_> = request
        .note()
        .signatures()
        .iter()
        .filter(|s| {
            keys.iter()
                .any(|k| k.key_type() == KeyType::Ed25519 && k.matches(s))
        })
        .cloned()
        .collect();
    signatures.push(cosigned.signature.clone());
    let note = Note::new(request.note().text(), signatures).map_err(|e| e.to_string())?;
    StateRecord::new(note, time)
}

/// The evidence file's record of `evidence`, answered with `status`.
fn evidence_record(
    evidence: &Evidence,
    stored: Option<&StateRecord>,
    status: u16,
    now: Duration,
) -> EvidenceRecord {
    let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let received = Timestamp::from_unix_millis(ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    EvidenceRecord {
        origin: evidence.request.checkpoint().origin.clone(),
        kind: kind_name(evidence.kind).to_owned(),
        received,
        received_unix_ms: ms,
        status,
        stored: stored.map(|s| note_string(&s.note)),
        checkpoint: note_string(evidence.request.note()),
        request: String::from_utf8(evidence.request.to_bytes()).expect("requests are UTF-8"),
    }
}

/// `GET <monitoring prefix>/<origin hash>/checkpoint`.
async fn latest_checkpoint(
    State(witness): State<Arc<Witness>>,
    Path(origin_hash): Path<String>,
) -> Response {
    let slot = witness
        .logs
        .read()
        .unwrap()
        .by_hash
        .get(&origin_hash)
        .cloned();
    let Some(slot) = slot else {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown_log",
            "no witnessed log has this origin hash (lowercase hex SHA-256 of the origin line)",
        );
    };
    let note = slot.latest.lock().await.as_ref().map(|r| r.note.to_bytes());
    match note {
        Some(note) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, TEXT_CONTENT_TYPE),
                (header::CACHE_CONTROL, "no-store"),
            ],
            note,
        )
            .into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            "the witness has not cosigned a checkpoint for this log yet",
        ),
    }
}

/// `GET /metrics`.
async fn metrics(State(witness): State<Arc<Witness>>) -> Response {
    let s = &witness.store.stats;
    let lines = [
        ("witness_logs", witness.log_count() as u64),
        ("witness_cosigned_total", witness.cosigned.load(Relaxed)),
        ("witness_refused_total", witness.refused.load(Relaxed)),
        ("witness_evidence_total", witness.evidence.load(Relaxed)),
        (
            "witness_store_batches_total",
            s.batches.load(Ordering::Relaxed),
        ),
        ("witness_store_commits_total", s.commits.load(Relaxed)),
        (
            "witness_store_compactions_total",
            s.compactions.load(Relaxed),
        ),
    ];
    let body: String = lines
        .iter()
        .map(|(name, value)| format!("{name} {value}\n"))
        .collect();
    text(StatusCode::OK, &body)
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: POST /add-checkpoint, GET <monitoring prefix>/<origin hash>/checkpoint, GET /metrics",
    )
}

async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed: add-checkpoint takes POST, checkpoints and metrics take GET",
    )
}

/// A body that could not be read: too large (413) or broken (400).
fn body_rejected(rejection: &BytesRejection) -> Response {
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("request body is larger than {MAX_REQUEST_SIZE} bytes")
    } else {
        rejection.body_text()
    };
    text(status, &message)
}

fn text(status: StatusCode, body: &str) -> Response {
    let mut body = body.to_owned();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    (status, [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response()
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}
