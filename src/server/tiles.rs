//! c2sp.org/tlog-tiles reads: the checkpoint, hash tiles and entry bundles.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::extract::TextPath;
use super::{ApiError, AppState};
use crate::store::TileStore as _;
use crate::tlog::tile::Tile;

/// Tiles and bundles never change once published.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The checkpoint changes with every batch: cache it for seconds only.
const CHECKPOINT_CACHE: &str = "public, max-age=2";

/// `GET /checkpoint`: the checkpoint readers should trust: with witnesses,
/// the newest one whose cosignatures meet the quorum; otherwise the latest.
pub async fn checkpoint(State(state): State<AppState>) -> Response {
    match state.log.served_checkpoint() {
        Some(served) => checkpoint_response(&served.note),
        None => ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_witnessed",
            "no checkpoint has met the witness quorum yet; the log-signed latest is at \
             /checkpoint.unwitnessed",
        )
        .into_response(),
    }
}

/// `GET /checkpoint.unwitnessed`: the latest log-signed checkpoint, before
/// (or without) witness cosignatures.
pub async fn unwitnessed_checkpoint(State(state): State<AppState>) -> Response {
    checkpoint_response(&state.log.published().note)
}

fn checkpoint_response(note: &[u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, CHECKPOINT_CACHE),
        ],
        note.to_vec(),
    )
        .into_response()
}

/// `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`.
pub async fn tile(State(state): State<AppState>, TextPath(rest): TextPath) -> Response {
    let path = format!("tile/{rest}");
    let tile = match Tile::parse_path(&path) {
        Ok(tile) => tile,
        Err(err) => return ApiError::not_found(format!("{path}: {err}")).into_response(),
    };
    let size = state.log.published().size;
    if !published_in(&tile, size) {
        return ApiError::not_found(format!(
            "{path} is not in the published tree of size {size}"
        ))
        .into_response();
    }
    let store = state.log.store.clone();
    let read = tokio::task::spawn_blocking(move || store.get(&path)).await;
    match read {
        Ok(Ok(Some(data))) => {
            let mut response = data.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
            response
        }
        Ok(Ok(None)) => ApiError::not_found(format!(
            "{} is no longer stored (a partial tile superseded by its full tile)",
            tile.path()
        ))
        .into_response(),
        Ok(Err(err)) => {
            tracing::error!(%err, "reading a tile");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "storage_failure",
                "the tile could not be read",
            )
            .into_response()
        }
        Err(_) => ApiError::shutting_down().into_response(),
    }
}

/// Whether every hash (or entry) of `tile` is in the published tree of
/// `size`: the tile as published at that size is at least as wide.
fn published_in(tile: &Tile, size: u64) -> bool {
    Tile::in_tree(tile.kind(), tile.index(), size).is_some_and(|t| t.width() >= tile.width())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_tiles_are_served() {
        let full0 = Tile::parse_path("tile/0/000").unwrap();
        let part0 = Tile::parse_path("tile/0/001.p/5").unwrap();
        let bundle = Tile::parse_path("tile/entries/001.p/5").unwrap();
        assert!(!published_in(&full0, 255));
        assert!(published_in(&full0, 256));
        assert!(!published_in(&part0, 260));
        assert!(published_in(&part0, 261));
        assert!(published_in(&part0, 10_000));
        assert!(published_in(&bundle, 261));
        assert!(!published_in(&bundle, 260));
    }
}
