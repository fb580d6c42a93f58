//! Path and query extractors whose rejections are the API's JSON errors.
//!
//! axum's own `Path` and `Query` answer a malformed parameter (bad
//! percent-encoding, a segment that is not UTF-8, a query that does not
//! deserialise) with a plain-text 400; every error of this API is the JSON
//! shape `{"error":{"code":…,"message":…}}` instead (found by the fuzz
//! target `http_params`).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A `{param}` or `{*rest}` path parameter as text; `bad_path` if malformed.
pub struct TextPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TextPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(text)) => Ok(TextPath(text)),
            Err(r) => Err(ApiError::new(r.status(), "bad_path", r.body_text())),
        }
    }
}

/// A query string deserialised into `T`; `bad_query` if it does not.
pub struct JsonQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for JsonQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(JsonQuery(q)),
            Err(r) => Err(ApiError::new(r.status(), "bad_query", r.body_text())),
        }
    }
}
