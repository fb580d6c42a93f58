//! API errors: an HTTP status, a stable machine-readable code and a message
//! a person can act on, served as `{"error":{"code":"…","message":"…"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::entry::EntryError;
use crate::log::sequencer::Refused;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code, e.g. `not_canonical_json`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

/// The JSON form of an error, also used per entry in batch answers.
#[derive(Serialize)]
pub struct Detail<'a> {
    /// The machine-readable code.
    pub code: &'a str,
    /// The human message.
    pub message: &'a str,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500 `index_failure`: the index (or the tiles it checks) failed.
    pub fn index_failure(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "index_failure", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 with `Retry-After`: the sequencer's queue is full.
    pub fn pushback() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "the log is at capacity; retry after the Retry-After delay",
        )
    }

    /// 503: the log is stopping.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the log is shutting down; retry against its next start",
        )
    }

    /// The answer for an entry refused by validation.
    pub fn from_entry(err: EntryError) -> ApiError {
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, err.code(), err.to_string())
    }

    /// The answer for an entry refused by the sequencer.
    pub fn from_refused(refused: Refused) -> ApiError {
        let status =
            StatusCode::from_u16(refused.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, refused.code, refused.message)
    }

    /// The JSON detail, for embedding in batch answers.
    pub fn detail(&self) -> Detail<'_> {
        Detail {
            code: self.code,
            message: &self.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(Body {
            error: self.detail(),
        });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
