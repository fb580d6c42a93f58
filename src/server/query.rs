//! The governance queries: models, versions, inferences. Every answer
//! carries the entries it is built from, their indexes and a tlog-proof of
//! each against the current checkpoint, so a client can check it rather
//! than trust the index. Each entry comes with `leaf`, its exact logged
//! bytes as a JSON string: parsed fields alone (`body`, `signer`) cannot be
//! re-serialised into the leaf the proof is for.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::make_tlog_proof;
use super::extract::{JsonQuery, TextPath};
use super::{ApiError, AppState};
use crate::entry::{Body, ContentHash, SignedEntry, Timestamp};
use crate::log::Log;

/// A logged entry with its index, ID, typed body and tlog-proof.
struct Proven {
    index: u64,
    entry: SignedEntry,
    body: Body,
    proof: String,
}

impl Proven {
    /// Reads, checks and proves the entry at `index`.
    fn at(log: &Log, index: u64) -> Result<Proven, ApiError> {
        let bytes = log
            .entry(index)
            .ok_or_else(|| ApiError::not_found(format!("no entry {index}")))?;
        let entry =
            SignedEntry::parse(&bytes).map_err(|e| ApiError::index_failure(e.to_string()))?;
        let body = entry
            .typed_body()
            .map_err(|e| ApiError::index_failure(e.to_string()))?;
        let proof = make_tlog_proof(log, index)?;
        Ok(Proven {
            index,
            entry,
            body,
            proof: String::from_utf8_lossy(&proof.to_bytes()).into_owned(),
        })
    }

    /// The entry's fields, and `leaf`: the exact logged bytes as a string
    /// (`jq -j .leaf` writes them unchanged), to hash and check against the
    /// tlog-proof offline.
    fn json(&self) -> Value {
        json!({
            "index": self.index,
            "id": self.entry.id().to_string(),
            "kind": self.entry.kind().as_str(),
            "signer": self.entry.signer().to_string(),
            "body": self.entry.body(),
            "leaf": String::from_utf8_lossy(self.entry.bytes()),
            "tlog_proof": self.proof,
        })
    }
}

/// Runs a blocking query and turns its result into a response.
async fn blocking(
    state: &AppState,
    query: impl FnOnce(&Log) -> Result<Value, ApiError> + Send + 'static,
) -> Response {
    let log = state.log.clone();
    match tokio::task::spawn_blocking(move || query(&log)).await {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::shutting_down().into_response(),
    }
}

/// The transitions of `model`, in log order, proven.
fn history(log: &Log, model: &str) -> Result<Vec<Proven>, ApiError> {
    let indexes = log
        .index
        .model_history(model)
        .map_err(|e| ApiError::index_failure(e.to_string()))?;
    indexes
        .into_iter()
        .map(|i| Proven::at(log, i))
        .filter(|p| match p {
            Ok(p) => matches!(&p.body, Body::Transition(t) if t.model.as_str() == model),
            Err(_) => true,
        })
        .collect()
}

/// `GET /v1/models/<m>`: the model's active version and transition history.
/// `<m>` is one path segment, percent-decoded, so a name holding `/` is sent
/// as `%2F` and routed exactly (see [`bad_model_path`]).
pub async fn model(State(state): State<AppState>, TextPath(model): TextPath) -> Response {
    blocking(&state, move |log| {
        let transitions = history(log, &model)?;
        let active = transitions.last().and_then(|p| match &p.body {
            Body::Transition(t) => Some(t.to.to_string()),
            _ => None,
        });
        Ok(json!({
            "model": model,
            "active": active,
            "history": transitions.iter().map(Proven::json).collect::<Vec<_>>(),
        }))
    })
    .await
}

/// `GET /v1/models/<m>/active?at=<time>`: the version active at a time.
pub async fn model_active(
    State(state): State<AppState>,
    TextPath(model): TextPath,
    JsonQuery(q): JsonQuery<ActiveQuery>,
) -> Response {
    blocking(&state, move |log| active_at(log, &model, q.at.as_deref())).await
}

/// `GET /v1/models/<m>/<anything else>`: a model name holding `/` sent
/// unencoded. Answering it as another model's (or another route's) answer
/// would be wrong, so it is refused.
pub async fn bad_model_path() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "bad_model_path",
        "no such model path: the model name is one path segment (percent-encode a / in it as %2F); the routes are /v1/models/<m> and /v1/models/<m>/active",
    )
    .into_response()
}

/// Query of `GET /v1/models/<m>/active`.
#[derive(Deserialize)]
pub struct ActiveQuery {
    at: Option<String>,
}

/// The version active at `at` (default: now): the last transition of the
/// model whose `at` is not after it.
fn active_at(log: &Log, model: &str, at: Option<&str>) -> Result<Value, ApiError> {
    let when = match at {
        Some(text) => Some(Timestamp::parse(text).map_err(|e| {
            ApiError::bad_request(
                "bad_time",
                format!("at must be RFC 3339 UTC with milliseconds: {e}"),
            )
        })?),
        None => None,
    };
    let transitions = history(log, model)?;
    let in_effect = transitions.iter().rev().find(|p| match (&p.body, when) {
        (Body::Transition(t), Some(when)) => t.at <= when,
        (Body::Transition(_), None) => true,
        _ => false,
    });
    let version = in_effect.and_then(|p| match &p.body {
        Body::Transition(t) => Some(t.to.to_string()),
        _ => None,
    });
    Ok(json!({
        "model": model,
        "at": when.map(|t| t.to_string()),
        "active": version,
        "transition": in_effect.map(Proven::json),
    }))
}

/// `GET /v1/versions/<hash>`: the version entry, its card, every approval
/// decision on it in log order (so evidence can judge a transition by the
/// decisions made before it), the transitions to or from it, and how many
/// inferences name it.
pub async fn version(State(state): State<AppState>, TextPath(hash): TextPath) -> Response {
    let hash = match ContentHash::parse(&hash) {
        Ok(h) => h,
        Err(_) => {
            return ApiError::bad_request(
                "bad_version_hash",
                "a version hash is b3: and 64 lowercase hex digits",
            )
            .into_response();
        }
    };
    blocking(&state, move |log| {
        let record = log
            .index
            .version(&hash.0)
            .map_err(|e| ApiError::index_failure(e.to_string()))?
            .ok_or_else(|| ApiError::not_found(format!("version {hash} is not registered")))?;
        let version = Proven::at(log, record.index)?;
        let Body::ModelVersion(body) = &version.body else {
            return Err(ApiError::index_failure(format!(
                "entry {} is not a model version",
                record.index
            )));
        };
        let card = log
            .artefact(&body.card)
            .map_err(|e| ApiError::index_failure(e.to_string()))?
            .map(|(i, _)| Proven::at(log, i))
            .transpose()?;
        let approvals = log
            .index
            .approvals(&hash.0)
            .map_err(|e| ApiError::index_failure(e.to_string()))?
            .into_iter()
            .map(|a| Proven::at(log, a.index).map(|p| p.json()))
            .collect::<Result<Vec<_>, _>>()?;
        let transitions: Vec<Value> = history(log, &record.model)?
            .iter()
            .filter(
                |p| matches!(&p.body, Body::Transition(t) if t.to == hash || t.from == Some(hash)),
            )
            .map(Proven::json)
            .collect();
        let inferences = log
            .index
            .inference_count(&hash.0)
            .map_err(|e| ApiError::index_failure(e.to_string()))?;
        Ok(json!({
            "version_hash": hash.to_string(),
            "model": record.model,
            "version": version.json(),
            "card": card.as_ref().map(Proven::json),
            "approvals": approvals,
            "transitions": transitions,
            "inference_count": inferences,
        }))
    })
    .await
}

/// `GET /v1/inferences/<request-id>`: the inference logged for a request.
pub async fn inference(State(state): State<AppState>, TextPath(request_id): TextPath) -> Response {
    blocking(&state, move |log| {
        let index = log
            .index
            .lookup_request(&request_id)
            .map_err(|e| ApiError::index_failure(e.to_string()))?
            .ok_or_else(|| {
                ApiError::not_found(format!("no inference for request {request_id:?}"))
            })?;
        let proven = Proven::at(log, index)?;
        let Body::Inference(body) = &proven.body else {
            return Err(ApiError::index_failure(format!(
                "entry {index} is not an inference"
            )));
        };
        if body.request_id.as_str() != request_id {
            return Err(ApiError::index_failure(format!(
                "the index points entry {index} at another request"
            )));
        }
        Ok(json!({
            "request_id": request_id,
            "model": body.model.as_str(),
            "version_hash": body.version_hash.to_string(),
            "served_at": body.served_at.to_string(),
            "index": index,
            "id": proven.entry.id().to_string(),
            "entry": proven.json(),
        }))
    })
    .await
}
