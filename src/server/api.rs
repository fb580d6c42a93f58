//! Submissions and the JSON API under `/v1/`.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::extract::TextPath;
use super::{ApiError, AppState, enqueue, validate};
use crate::entry::ArtefactId;
use crate::log::sequencer::Accepted;
use crate::store::{FsTileStore, StoreHashReader};
use crate::tlog::Hash;
use crate::tlog::proof::{ProveError, prove_consistency, prove_inclusion};
use crate::tlog::tlog_proof::TlogProof;

/// Reads a request body, answering an over-limit body with a JSON 413.
fn body(bytes: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    bytes.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// A leaf index in the path, or the JSON error for one that does not parse.
fn path_index(path: Result<Path<u64>, PathRejection>) -> Result<u64, ApiError> {
    path.map(|Path(index)| index)
        .map_err(|rejection| ApiError::new(rejection.status(), "bad_index", rejection.body_text()))
}

/// A proof query, or the JSON error for one that does not parse.
fn proof_query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "bad_proof_request",
            rejection.body_text(),
        )
    })
}

/// `POST /add`: one signed entry; answers its leaf index in decimal once durable.
pub async fn add(State(state): State<AppState>, bytes: Result<Bytes, BytesRejection>) -> Response {
    let received = Instant::now();
    let result = async {
        let bytes = body(bytes)?;
        let validated = validate(&state.log, &bytes, true)?;
        let accepted = enqueue(&state, validated, received)?.wait().await?;
        Ok::<_, ApiError>(original_warnings(&state, bytes, accepted).await)
    }
    .await;
    match result {
        Ok(accepted) => {
            let mut response = (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{}\n", accepted.index),
            )
                .into_response();
            for warning in &accepted.warnings {
                if let Ok(value) = HeaderValue::from_str(&header_text(warning)) {
                    response.headers_mut().append(WARNING_HEADER, value);
                }
            }
            response
        }
        Err(err) => err.into_response(),
    }
}

/// The header `POST /add` carries each warning in, one header per warning
/// (the body is the bare index, which clients parse as such).
const WARNING_HEADER: &str = "modeltrail-warning";

/// A warning as a header value: header values are printable ASCII, so any
/// other character is written as `\u{…}` (model names may be non-ASCII).
fn header_text(warning: &str) -> String {
    let mut out = String::with_capacity(warning.len());
    for c in warning.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

/// A duplicate answers with the warnings its original was given (a client
/// that retries must still learn that its entry was flagged); the sequencer
/// answers duplicates without them, so they are recomputed here, off the
/// sequencer and only for duplicates.
async fn original_warnings(state: &AppState, leaf: Bytes, mut accepted: Accepted) -> Accepted {
    if !accepted.duplicate {
        return accepted;
    }
    let log = state.log.clone();
    let index = accepted.index;
    let recomputed =
        tokio::task::spawn_blocking(move || crate::log::rules::warnings_at(&log, &leaf, index))
            .await
            .unwrap_or_else(|_| Err("shutting down".to_owned()));
    accepted.warnings = recomputed_warnings(index, recomputed);
    accepted
}

/// A duplicate's recomputed warnings; if they cannot be recomputed, a
/// warning saying so (an empty list would read as "not flagged").
fn recomputed_warnings(index: u64, recomputed: Result<Vec<String>, String>) -> Vec<String> {
    recomputed.unwrap_or_else(|err| {
        tracing::warn!(%err, index, "recomputing a duplicate's warnings");
        vec![format!(
            "the warnings of the entry logged at index {index} could not be recomputed: {err}"
        )]
    })
}

/// One entry's outcome in a batch answer.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchResult<'a> {
    Ok {
        index: u64,
        id: ArtefactId,
        duplicate: bool,
        warnings: &'a [String],
    },
    Err {
        error: super::error::Detail<'a>,
    },
}

/// `POST /v1/entries`: a JSON array of entries, or NDJSON (one per line).
/// Each entry succeeds or fails on its own; the answer lists every outcome,
/// in order, so a partial success is never silent.
pub async fn add_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let bytes = match body(bytes) {
        Ok(b) => b,
        Err(err) => return err.into_response(),
    };
    // Splitting and validating up to 4096 signed entries is CPU work of
    // tens of milliseconds: off the async threads, so `/healthz` and the
    // other connections keep being served meanwhile.
    let queued = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || queue_batch(&state, &headers, &bytes, received)).await
    };
    let pending = match queued {
        Ok(Ok(pending)) => pending,
        Ok(Err(err)) => return err.into_response(),
        Err(_) => return ApiError::shutting_down().into_response(),
    };
    let mut outcomes: Vec<Result<(ArtefactId, Accepted), ApiError>> =
        Vec::with_capacity(pending.len());
    let mut leaves = Vec::with_capacity(pending.len());
    for (leaf, p) in pending {
        leaves.push(leaf);
        outcomes.push(match p {
            Ok((id, p)) => p.wait().await.map(|a| (id, a)),
            Err(err) => Err(err),
        });
    }
    // Duplicates answer their originals' warnings, recomputed in one
    // blocking task for the whole batch.
    let duplicates: Vec<(usize, Bytes, u64)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Ok((_, a)) if a.duplicate => Some((i, leaves[i].clone(), a.index)),
            _ => None,
        })
        .collect();
    if !duplicates.is_empty() {
        let log = state.log.clone();
        let recomputed = tokio::task::spawn_blocking(move || {
            duplicates
                .into_iter()
                .map(|(i, leaf, index)| (i, crate::log::rules::warnings_at(&log, &leaf, index)))
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(recomputed) = recomputed else {
            return ApiError::shutting_down().into_response();
        };
        for (i, warnings) in recomputed {
            if let Ok((_, a)) = &mut outcomes[i] {
                a.warnings = recomputed_warnings(a.index, warnings);
            }
        }
    }
    let results: Vec<BatchResult<'_>> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok((id, a)) => BatchResult::Ok {
                index: a.index,
                id: *id,
                duplicate: a.duplicate,
                warnings: &a.warnings,
            },
            Err(err) => BatchResult::Err {
                error: err.detail(),
            },
        })
        .collect();
    batch_answer(results)
}

/// Splits, validates and queues a batch (a blocking task).
#[allow(clippy::type_complexity)]
fn queue_batch(
    state: &AppState,
    headers: &HeaderMap,
    bytes: &Bytes,
    received: Instant,
) -> Result<Vec<(Bytes, Result<(ArtefactId, super::Pending), ApiError>)>, ApiError> {
    let raw = split_batch(headers, bytes, state.max_batch_entries)?;
    // Queue every valid entry first, in order, then wait: the sequencer sees
    // the whole batch at once and logs it in one checkpoint. After a policy
    // entry, later entries may rely on the policy it brings (a new signer),
    // so their roster check is left to the sequencer, which judges each
    // entry by the policy in force at its index.
    let mut policy_pending = false;
    Ok(raw
        .into_iter()
        .map(|leaf| {
            let queued = validate(&state.log, leaf, !policy_pending).and_then(|validated| {
                policy_pending |= validated.0.kind() == crate::entry::Kind::Policy;
                let id = validated.0.id();
                enqueue(state, validated, received).map(|p| (id, p))
            });
            (bytes.slice_ref(leaf), queued)
        })
        .collect())
}

/// The answer to a batch: 200 with every outcome, unless no entry was
/// logged and every one failed for the log's storage or index (not for its
/// content): then the log is unable to take entries, and says so with 503
/// so a client retries rather than reading the batch as judged.
fn batch_answer(results: Vec<BatchResult<'_>>) -> Response {
    let failed_for_the_log = !results.is_empty()
        && results.iter().all(|r| {
            matches!(r, BatchResult::Err { error }
                if error.code == "storage_failure" || error.code == "index_failure")
        });
    let mut response = Json(BatchAnswer { results }).into_response();
    if failed_for_the_log {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    response
}

/// The answer to `POST /v1/entries`, serialised straight from the results
/// (not through a `serde_json::Value` tree).
#[derive(Serialize)]
struct BatchAnswer<'a> {
    results: Vec<BatchResult<'a>>,
}

/// Splits a batch body into the exact bytes of each entry: a JSON array
/// (each element's raw text) or NDJSON (each non-empty line; a line may end
/// in `\r\n`, as NDJSON allows, and the `\r` is not part of the entry).
/// Stops at the first entry past `max` (413 `batch_too_large`) rather than
/// splitting the whole body first.
fn split_batch<'a>(
    headers: &HeaderMap,
    bytes: &'a [u8],
    max: usize,
) -> Result<Vec<&'a [u8]>, ApiError> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    split_batch_body(ndjson, bytes, max)
}

/// [`split_batch`] once the content type is known (public for the fuzz
/// target `batch`).
pub fn split_batch_body(ndjson: bool, bytes: &[u8], max: usize) -> Result<Vec<&[u8]>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("a batch holds at most {max} entries"),
        )
    };
    if ndjson {
        let lines: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.is_empty())
            .take(max.saturating_add(1))
            .collect();
        return if lines.len() > max {
            Err(too_large())
        } else {
            Ok(lines)
        };
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let mut over = false;
    let parsed = serde::de::DeserializeSeed::deserialize(
        BatchSeed {
            max,
            over: &mut over,
        },
        &mut deserializer,
    )
    .and_then(|elements| deserializer.end().map(|()| elements));
    match parsed {
        Ok(elements) => Ok(elements),
        Err(_) if over => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(
            "bad_batch",
            format!("the body is not a JSON array of entries (or send application/x-ndjson): {e}"),
        )),
    }
}

/// Reads a JSON array's elements as raw text, at most `max` of them; notes
/// in `over` that there were more.
struct BatchSeed<'s> {
    max: usize,
    over: &'s mut bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<&'de [u8]>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<&'de [u8]>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of entries")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if elements.len() == self.max {
                *self.over = true;
                return Err(serde::de::Error::custom("too many entries"));
            }
            elements.push(raw.get().as_bytes());
        }
        Ok(elements)
    }
}

/// `GET /v1/entries/<index>`: the entry's exact bytes.
pub async fn entry(
    State(state): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
) -> Response {
    let index = match path_index(index) {
        Ok(index) => index,
        Err(err) => return err.into_response(),
    };
    let log = state.log.clone();
    match tokio::task::spawn_blocking(move || log.entry(index)).await {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Ok(None) => ApiError::not_found(format!(
            "no entry {index} in the published tree of size {}",
            state.log.published().size
        ))
        .into_response(),
        Err(_) => ApiError::shutting_down().into_response(),
    }
}

/// Query of `GET /v1/proof/inclusion`.
#[derive(Deserialize)]
pub struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

/// A proof answer: `index` and `size` for inclusion, `old` and `new` for
/// consistency, the root of the tree proven against, and the proof hashes.
#[derive(Serialize, Default)]
struct ProofAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<u64>,
    root: String,
    proof: Vec<String>,
}

/// `GET /v1/proof/inclusion?index=&size=`: the inclusion proof of leaf
/// `index` in the tree of `size` (default: the published size).
pub async fn inclusion_proof(
    State(state): State<AppState>,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Response {
    let q = match proof_query(q) {
        Ok(q) => q,
        Err(err) => return err.into_response(),
    };
    let published = state.log.published().size;
    let size = q.size.unwrap_or(published);
    if size > published || q.index >= size {
        return ApiError::bad_request(
            "bad_proof_request",
            format!(
                "need index < size <= {published} (the published size); got index {} size {size}",
                q.index
            ),
        )
        .into_response();
    }
    let index = q.index;
    let proven = prove_in_tree(&state, size, move |r| prove_inclusion(size, index, r)).await;
    proof_response(proven, |proof, root| ProofAnswer {
        index: Some(index),
        size: Some(size),
        root,
        proof,
        ..ProofAnswer::default()
    })
}

/// Query of `GET /v1/proof/consistency`.
#[derive(Deserialize)]
pub struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

/// `GET /v1/proof/consistency?old=&new=`: proof that the tree of `old`
/// entries is a prefix of the tree of `new` (default: the published size).
pub async fn consistency_proof(
    State(state): State<AppState>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Response {
    let q = match proof_query(q) {
        Ok(q) => q,
        Err(err) => return err.into_response(),
    };
    let published = state.log.published().size;
    let new = q.new.unwrap_or(published);
    if q.old == 0 || q.old > new || new > published {
        return ApiError::bad_request(
            "bad_proof_request",
            format!(
                "need 0 < old <= new <= {published} (the published size); got old {} new {new}",
                q.old
            ),
        )
        .into_response();
    }
    let old = q.old;
    let proven = prove_in_tree(&state, new, move |r| prove_consistency(old, new, r)).await;
    proof_response(proven, |proof, root| ProofAnswer {
        old: Some(old),
        new: Some(new),
        root,
        proof,
        ..ProofAnswer::default()
    })
}

/// The root of the tree of `size`: the published one's is known.
fn root_of(
    log: &crate::log::Log,
    size: u64,
    reader: &impl crate::tlog::HashReader,
) -> Result<Hash, String> {
    let published = log.published();
    if published.size == size {
        return Ok(published.root);
    }
    crate::tlog::hash::tree_hash(size, reader).map_err(|e| e.to_string())
}

/// Runs `prove` over the stored hashes of the tree of `size` (a published
/// size) off the async runtime, and returns the proof with that tree's root.
async fn prove_in_tree(
    state: &AppState,
    size: u64,
    prove: impl FnOnce(&StoreHashReader<'_, FsTileStore>) -> Result<Vec<Hash>, ProveError>
    + Send
    + 'static,
) -> Result<(Vec<Hash>, Hash), ApiError> {
    let log = state.log.clone();
    let proven = tokio::task::spawn_blocking(move || {
        let reader = log.hash_reader(size);
        let proof = prove(&reader).map_err(|e| e.to_string())?;
        let root = root_of(&log, size, &reader)?;
        Ok::<_, String>((proof, root))
    })
    .await
    .map_err(|_| ApiError::shutting_down())?;
    proven.map_err(|err| {
        tracing::error!(%err, "computing a proof");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failure", err)
    })
}

/// The JSON answer for a proof, or the error.
fn proof_response(
    proven: Result<(Vec<Hash>, Hash), ApiError>,
    answer: impl FnOnce(Vec<String>, String) -> ProofAnswer,
) -> Response {
    match proven {
        Ok((proof, root)) => Json(answer(
            proof.iter().map(Hash::to_base64).collect(),
            root.to_base64(),
        ))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// A c2sp tlog-proof of `index` against the served (witnessed) checkpoint
/// when it contains the entry, else against the latest published one.
pub(super) fn make_tlog_proof(log: &crate::log::Log, index: u64) -> Result<TlogProof, ApiError> {
    let published = log.checkpoint_for(index);
    if index >= published.size {
        return Err(ApiError::not_found(format!(
            "no entry {index} in the published tree of size {}",
            published.size
        )));
    }
    let reader = log.hash_reader(published.size);
    let proof = prove_inclusion(published.size, index, &reader).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_failure",
            e.to_string(),
        )
    })?;
    Ok(TlogProof {
        extra: None,
        index,
        proof,
        checkpoint: published.note.clone(),
    })
}

/// `GET /v1/tlog-proof/<index>`: c2sp.org/tlog-proof text for one entry.
pub async fn tlog_proof(
    State(state): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
) -> Response {
    let index = match path_index(index) {
        Ok(index) => index,
        Err(err) => return err.into_response(),
    };
    let log = state.log.clone();
    match tokio::task::spawn_blocking(move || make_tlog_proof(&log, index)).await {
        Ok(Ok(proof)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            proof.to_bytes(),
        )
            .into_response(),
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::shutting_down().into_response(),
    }
}

/// `GET /v1/artefacts/<id>`: the entry with this artefact ID, its index and
/// a tlog-proof against the published checkpoint.
pub async fn artefact(State(state): State<AppState>, TextPath(id): TextPath) -> Response {
    let id: ArtefactId = match id.parse() {
        Ok(id) => id,
        Err(_) => {
            return ApiError::bad_request(
                "bad_artefact_id",
                "artefact IDs are b3: and 64 lowercase hex digits",
            )
            .into_response();
        }
    };
    let log = state.log.clone();
    let found = tokio::task::spawn_blocking(move || {
        let (index, bytes) = log
            .artefact(&id)
            .map_err(|e| ApiError::index_failure(e.to_string()))?
            .ok_or_else(|| ApiError::not_found(format!("no artefact {id} in the log")))?;
        let proof = make_tlog_proof(&log, index)?;
        Ok::<_, ApiError>((id, index, bytes, proof))
    })
    .await;
    match found {
        Ok(Ok((_, index, bytes, proof))) => entry_answer(index, &bytes, &proof),
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::shutting_down().into_response(),
    }
}

/// `GET /v1/policy`: the policy in force, its leaf index and a tlog-proof.
pub async fn policy(State(state): State<AppState>) -> Response {
    let log = state.log.clone();
    let found = tokio::task::spawn_blocking(move || {
        let (index, bytes) = log
            .current_policy_entry()
            .ok_or_else(|| ApiError::not_found("the log has no policy entry"))?;
        let proof = make_tlog_proof(&log, index)?;
        Ok::<_, ApiError>((index, bytes, proof))
    })
    .await;
    match found {
        Ok(Ok((index, bytes, proof))) => entry_answer(index, &bytes, &proof),
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::shutting_down().into_response(),
    }
}

/// `{"id","index","entry","leaf","tlog_proof"}` for a logged entry: `leaf`
/// is the entry's exact bytes as a string (`entry` is the same JSON, which
/// a client's JSON tools may re-serialise differently).
fn entry_answer(index: u64, bytes: &[u8], proof: &TlogProof) -> Response {
    let entry: &RawValue = match std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| serde_json::from_str(s).ok())
    {
        Some(raw) => raw,
        None => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_failure",
                "a logged entry is not JSON",
            )
            .into_response();
        }
    };
    Json(serde_json::json!({
        "id": ArtefactId::of(bytes).to_string(),
        "index": index,
        "entry": entry,
        "leaf": entry.get(),
        "tlog_proof": String::from_utf8_lossy(&proof.to_bytes()),
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&state.log),
    )
        .into_response()
}

/// The log's metrics and its witnesses' status.
fn render_metrics(log: &crate::log::Log) -> String {
    let mut out = log.metrics.render();
    if let Some(policy) = &log.witness_policy {
        policy.render_metrics(&mut out);
    }
    out
}

/// `GET /healthz`: 200 `{"status":"ok"}` with the published size while the
/// log runs; 503 `{"status":"degraded","reason","message","since"}` after a
/// storage or index failure, until a batch is stored and indexed again.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let published = state.log.published();
    match state.log.metrics.degraded() {
        None => Json(
            serde_json::json!({ "status": "ok", "size": published.size, "origin": state.log.origin }),
        )
        .into_response(),
        Some(degraded) => {
            let since = degraded
                .since
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| {
                    crate::entry::Timestamp::from_unix_millis(d.as_millis() as u64)
                })
                .map(|t| t.to_string());
            let body = serde_json::json!({
                "status": "degraded",
                "reason": degraded.reason,
                "message": degraded.message,
                "since": since,
                "size": published.size,
                "origin": state.log.origin,
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// Anything else.
pub async fn not_found() -> Response {
    ApiError::not_found("no such endpoint").into_response()
}

/// A known endpoint with the wrong method.
pub async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
    .into_response()
}
