//! Request body limits, applied before any handler reads a byte.
//!
//! - Each route's body is capped at what it can accept: `POST /add` at one
//!   entry ([`MAX_ENTRY_SIZE`], 413 `entry_too_large`), `POST /v1/entries`
//!   at `[http] max_body_bytes` (413 `batch_too_large`); every other
//!   request must have no body (413 `body_not_allowed`).
//! - A declared `Content-Length` over the cap is refused before the body is
//!   read (a client sending `Expect: 100-continue` never sends it); a
//!   chunked body is counted as it streams and refused at the first byte
//!   over the cap.
//! - One budget (`[http] body_budget_bytes`) bounds the bytes buffered
//!   across all requests: a declared length is reserved whole before
//!   reading, a chunked body chunk by chunk; a body that does not fit is
//!   answered 503 `server_busy` with `Retry-After`. The reservation is
//!   returned when the handler has answered (it holds the body until then).
//!   With the defaults (32 MiB) memory stays within the 200 MB target under
//!   any number of concurrent posts.
//!
//! The handlers then get the body whole, as `Bytes`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::entry::MAX_ENTRY_SIZE;

/// The body limits shared by every request.
#[derive(Clone)]
pub struct BodyLimits {
    /// Largest `POST /v1/entries` body.
    pub max_batch_bytes: usize,
    /// The budget of buffered bytes.
    pub budget: Arc<Budget>,
}

/// Bytes of request bodies that may still be buffered.
pub struct Budget {
    left: AtomicUsize,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Budget {
        Budget {
            left: AtomicUsize::new(bytes),
        }
    }

    /// Takes `bytes` from the budget, or nothing if they do not fit.
    fn take(&self, bytes: usize) -> bool {
        self.left
            .fetch_update(SeqCst, SeqCst, |left| left.checked_sub(bytes))
            .is_ok()
    }

    fn give(&self, bytes: usize) {
        self.left.fetch_add(bytes, SeqCst);
    }
}

/// Bytes taken from the budget, returned when dropped.
struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reservation {
    fn grow(&mut self, bytes: usize) -> bool {
        if self.budget.take(bytes) {
            self.bytes += bytes;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

/// The cap and the refusal code of a request's body.
fn cap(method: &Method, path: &str, limits: &BodyLimits) -> (usize, &'static str, String) {
    match (method, path) {
        (&Method::POST, "/add") => (
            MAX_ENTRY_SIZE,
            "entry_too_large",
            format!("an entry is at most {MAX_ENTRY_SIZE} bytes"),
        ),
        (&Method::POST, "/v1/entries") => (
            limits.max_batch_bytes,
            "batch_too_large",
            format!(
                "a batch body is at most {} bytes ([http] max_body_bytes); split it",
                limits.max_batch_bytes
            ),
        ),
        _ => (
            0,
            "body_not_allowed",
            format!("{method} {path} takes no request body"),
        ),
    }
}

/// A refusal answered before the whole body was read: the connection
/// closes after it (the rest of the body is not read as a next request),
/// and says so, so a client does not reuse it.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

fn too_large(code: &'static str, message: String) -> Response {
    closing(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, message))
}

fn server_busy() -> Response {
    closing(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
        "the server is buffering as many request bodies as it allows; retry after the Retry-After delay",
    ))
}

/// The middleware: checks and buffers the body, then runs the handler.
pub async fn limit_body(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (cap, code, message) = cap(request.method(), request.uri().path(), &limits);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if declared.is_none() && !chunked {
        // No body at all (hyper reads none without a length or chunking).
        return next.run(request).await;
    }
    if declared.is_some_and(|len| len > cap as u64) {
        return too_large(code, message);
    }
    let mut reservation = Reservation {
        budget: limits.budget.clone(),
        bytes: 0,
    };
    // A declared length is reserved whole, so a request is refused before
    // anything is read rather than half-way.
    let declared = declared.map_or(0, |len| len as usize);
    if !reservation.grow(declared) {
        return server_busy();
    }
    let (parts, body) = request.into_parts();
    let mut body = body;
    let mut buffer = Vec::with_capacity(declared);
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                return closing(ApiError::bad_request(
                    "bad_body",
                    format!("reading the body: {err}"),
                ));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > cap {
            return too_large(code, message);
        }
        let over = (buffer.len() + data.len()).saturating_sub(reservation.bytes);
        if over > 0 && !reservation.grow(over) {
            return server_busy();
        }
        buffer.extend_from_slice(&data);
    }
    let request = Request::from_parts(parts, Body::from(Bytes::from(buffer)));
    let response = next.run(request).await;
    drop(reservation);
    response
}

/// Gives an error answer that is not JSON (a timeout's empty 408, a
/// rejection of the router's or an extractor's in plain text) the API's
/// JSON error shape, its text as the message.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, default) = match status {
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than [http] request_timeout_ms",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is too large"),
        StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
        _ => ("http_error", status.canonical_reason().unwrap_or("error")),
    };
    // Rejection texts are short; a longer body is not read.
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty());
    let message = text.unwrap_or_else(|| default.to_owned());
    ApiError::new(status, code, message).into_response()
}
