//! HTTP paths and query parameters: the log's real router
//! (`server::router`) over a real log (initialised once per process in a
//! temporary directory), asked for the fuzzer's request target.
//!
//! Input: the first byte picks the method (GET, HEAD, DELETE: byte % 3)
//! and the log (public, or the same log private with no tokens: byte / 3
//! % 2); the rest is the request target (path and query), skipped unless
//! it is a valid origin-form URI. Nothing may panic; no answer is a 5xx;
//! every error answer is the JSON error shape
//! `{"error":{"code":…,"message":…}}` with a non-empty code; the private
//! log never answers entry content (the initial policy's criterion ID).

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Uri};
use modeltrail::log::access::ReadAccess;
use modeltrail::log::config::Config;
use modeltrail::server::{AppState, router};
use serde_json::Value;
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

use crate::LOG_NAME;

struct Served {
    runtime: Runtime,
    router: Router,
    /// The same log, private (`[access] read = "token"`, no tokens).
    private: Router,
}

/// Text only entries carry (a criterion ID of the initial policy): a
/// private log must never answer it without a token.
const CONTENT_MARKER: &[u8] = b"evaluation-reviewed";

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("modeltrail-fuzz-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        modeltrail::log::init(&dir, LOG_NAME, Default::default()).expect("init a log");
        let config = Config::new(LOG_NAME);
        let opened = modeltrail::log::open(&dir, config.clone()).expect("open the log");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (router, private) = runtime.block_on(async {
            let (log, config, queue, _sequencer) = modeltrail::log::start_sequencer(opened);
            let state = AppState {
                log,
                queue,
                max_batch_entries: config.http.max_batch_entries,
                access: std::sync::Arc::new(
                    modeltrail::server::Gate::open(config.access.read, dir.join("tokens"))
                        .expect("a public log's gate"),
                ),
            };
            let private = AppState {
                access: std::sync::Arc::new(
                    modeltrail::server::Gate::open(ReadAccess::Token, dir.join("tokens"))
                        .expect("a private log's gate"),
                ),
                ..state.clone()
            };
            (router(state, &config), router(private, &config))
        });
        Served {
            runtime,
            router,
            private,
        }
    })
}

/// The target: `fuzz_targets/http_params.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Some((&pick, target)) = data.split_first() else {
        return;
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    if uri.scheme().is_some() || !uri.path().starts_with('/') {
        return;
    }
    let method = [Method::GET, Method::HEAD, Method::DELETE][usize::from(pick) % 3].clone();
    let private = (pick / 3) % 2 == 1;
    let request = Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .body(Body::empty())
        .unwrap();
    let served = served();
    let (status, body) = served.runtime.block_on(async {
        let router = if private {
            &served.private
        } else {
            &served.router
        };
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 26)
            .await
            .unwrap();
        (status, body)
    });
    assert!(!status.is_server_error(), "{method} {uri}: {status}");
    if private {
        assert!(
            !body
                .windows(CONTENT_MARKER.len())
                .any(|w| w == CONTENT_MARKER),
            "{method} {uri}: a private log answered entry content without a token ({status})"
        );
    }
    if status.is_client_error() && method != Method::HEAD {
        let error: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {uri}: {status} with a non-JSON body: {e}"));
        let code = error["error"]["code"].as_str().unwrap_or("");
        assert!(
            !code.is_empty(),
            "{method} {uri}: {status} without a code: {error}"
        );
        assert!(
            error["error"]["message"].is_string(),
            "{method} {uri}: {error}"
        );
    }
}
