//! The log's HTTP API (axum).
//!
//! - c2sp.org/tlog-tiles reads at the root: `GET /checkpoint`,
//!   `GET /tile/<L>/<N>[.p/<W>]`, `GET /tile/entries/<N>[.p/<W>]`. Only tiles
//!   within the published tree are served (never one written for a batch
//!   whose checkpoint is not yet durable); they are immutable and cached as
//!   such, the checkpoint for two seconds.
//! - `POST /add`: one signed entry; answers its leaf index in decimal once the
//!   checkpoint containing it is durable.
//! - JSON under `/v1/`: batches, entries, proofs, tlog-proofs, artefacts,
//!   the policy in force, and the governance queries (models, versions,
//!   inferences), each answer with its entries' indexes and tlog-proofs.
//! - `GET /metrics` (Prometheus), `GET /healthz`.
//! - A private log (`[access] read = "token"`) answers content only to a
//!   bearer token; hashes, checkpoints and proofs stay public ([`access`]).
//!
//! Errors are `{"error":{"code":"…","message":"…"}}` with the status of
//! their class: 400 bad encoding, 401/403 unknown or unauthorised signer,
//! 409 chain conflict, 413 too large, 422 invalid content, 503 pushback.
//! Every error answer has that shape, the router's own (408, 405) included.
//!
//! Connections are served by [`crate::front`] (timeouts, connection limit,
//! shutdown deadline); bodies are limited per route by [`limits`].

mod access;
mod api;
mod error;
mod extract;
mod limits;
mod query;
mod tiles;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};
use tower_http::timeout::TimeoutLayer;

use crate::entry::{Body, SignedEntry};
use crate::log::Log;
use crate::log::config::Config;
use crate::log::sequencer::{Accepted, Submission};
pub use access::{Gate, RECHECK};
pub use api::split_batch_body;
pub use error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The log.
    pub log: Arc<Log>,
    /// The sequencer's queue.
    pub queue: mpsc::Sender<Submission>,
    /// Most entries in one `POST /v1/entries`.
    pub max_batch_entries: usize,
    /// Read access (public, or bearer tokens).
    pub access: Arc<Gate>,
}

/// The whole HTTP API.
pub fn router(state: AppState, config: &Config) -> Router {
    Router::new()
        .route("/checkpoint", get(tiles::checkpoint))
        .route(
            "/checkpoint.unwitnessed",
            get(tiles::unwitnessed_checkpoint),
        )
        .route("/tile/{*path}", get(tiles::tile))
        .route("/add", post(api::add))
        .route("/v1/entries", post(api::add_batch))
        .route("/v1/entries/{index}", get(api::entry))
        .route("/v1/proof/inclusion", get(api::inclusion_proof))
        .route("/v1/proof/consistency", get(api::consistency_proof))
        .route("/v1/tlog-proof/{index}", get(api::tlog_proof))
        .route("/v1/artefacts/{id}", get(api::artefact))
        .route("/v1/policy", get(api::policy))
        .route("/v1/models/{model}", get(query::model))
        .route("/v1/models/{model}/active", get(query::model_active))
        .route("/v1/models/{model}/{*rest}", get(query::bad_model_path))
        .route("/v1/versions/{hash}", get(query::version))
        .route("/v1/inferences/{request_id}", get(query::inference))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(api::healthz))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        // The body limits buffer the body (bounded): axum's own limit is off.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.access.clone(),
            access::require,
        ))
        .layer(middleware::from_fn_with_state(
            limits::BodyLimits {
                max_batch_bytes: config.http.max_body_bytes,
                budget: Arc::new(limits::Budget::new(config.http.body_budget_bytes)),
            },
            limits::limit_body,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(config.http.request_timeout_ms),
        ))
        .layer(middleware::map_response(limits::json_errors))
        .with_state(state)
}

/// Validates an entry without any log state: size, canonical encoding,
/// signature, the signer's role under the current policy (unless
/// `check_roster` is false), and the typed body of its kind. The sequencer
/// checks the rest, the roster again included, in log order.
fn validate(log: &Log, bytes: &[u8], check_roster: bool) -> Result<(SignedEntry, Body), ApiError> {
    let policy = log.policy();
    let entry = SignedEntry::parse_with_keys(bytes, |vkey| policy.rostered_key(vkey).cloned())
        .map_err(ApiError::from_entry)?;
    if check_roster {
        crate::entry::authorise(&entry, &policy).map_err(ApiError::from_entry)?;
    }
    let body = entry.typed_body().map_err(ApiError::from_entry)?;
    Ok((entry, body))
}

/// A submission waiting for the sequencer's answer.
struct Pending(oneshot::Receiver<Result<Accepted, crate::log::sequencer::Refused>>);

impl Pending {
    /// Waits until the entry is durable (or refused).
    async fn wait(self) -> Result<Accepted, ApiError> {
        match self.0.await {
            Ok(Ok(accepted)) => Ok(accepted),
            Ok(Err(refused)) => Err(ApiError::from_refused(refused)),
            Err(_) => Err(ApiError::shutting_down()),
        }
    }
}

/// Queues a validated entry for the sequencer, which answers an identical
/// logged entry with its index (the dedup lookup happens once, there); a
/// full queue is refused (pushback).
fn enqueue(
    state: &AppState,
    (entry, body): (SignedEntry, Body),
    received: Instant,
) -> Result<Pending, ApiError> {
    let metrics = &state.log.metrics;
    let (reply, answer) = oneshot::channel();
    let submission = Submission {
        entry,
        body,
        received,
        reply,
    };
    match state.queue.try_send(submission) {
        Ok(()) => {
            let depth = state.queue.max_capacity() - state.queue.capacity();
            metrics.queue_depth.store(depth as u64, Relaxed);
            Ok(Pending(answer))
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics.pushback.fetch_add(1, Relaxed);
            Err(ApiError::pushback())
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err(ApiError::shutting_down()),
    }
}

/// Serves the log on `listener` until SIGINT/SIGTERM, then stops accepting,
/// lets requests in progress finish until `[http] shutdown_timeout_ms`
/// (dropping the rest), lets the sequencer drain the queue (its last batch
/// publishes the final checkpoint), and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    opened: crate::log::Opened,
    access: Gate,
) -> std::io::Result<()> {
    let (log, config, queue, sequencer) = crate::log::start_sequencer(opened);
    let state = AppState {
        log: log.clone(),
        queue,
        max_batch_entries: config.http.max_batch_entries,
        access: Arc::new(access),
    };
    let app = router(state, &config);
    let (stop_witnessing, stop) = tokio::sync::watch::channel(false);
    let timing = crate::log::witness::WitnessTiming {
        timeout: Duration::from_millis(config.witness.timeout_ms),
        max_backoff: Duration::from_millis(config.witness.max_backoff_ms),
    };
    let witnessing = tokio::spawn(crate::log::witness::run(log.clone(), timing, stop));
    crate::front::serve(listener, app, config.http.front(), shutdown_signal()).await?;
    // Every handler (and so every queue sender) is gone: the sequencer drains and stops.
    if sequencer.await.is_err() {
        tracing::error!("the sequencer task failed");
    }
    let _ = stop_witnessing.send(true);
    if witnessing.await.is_err() {
        tracing::error!("the witnessing task failed");
    }
    let published = log.published();
    tracing::info!(size = published.size, root = %published.root, "stopped with a final checkpoint");
    Ok(())
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: draining submissions");
}
