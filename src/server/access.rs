//! Read access for a private log (`[access] read = "token"`): every request
//! that could reveal entry content needs `Authorization: Bearer <token>`
//! with a current token from `<data>/tokens`.
//!
//! Deny by default: only the routes below are public, whatever the access
//! mode, because they carry hashes and signatures only (or a submitter's own
//! entry):
//! `/checkpoint`, `/checkpoint.unwitnessed`, hash tiles `/tile/<L>/…`
//! (not `/tile/entries/…`), `/v1/proof/inclusion`, `/v1/proof/consistency`,
//! `/healthz`, `/metrics`, and the writes `POST /add` and `POST /v1/entries`
//! (authenticated by their entries' signatures). Every other path, known or
//! not, needs a token (so a route added later is private until it is listed
//! here).
//!
//! The token file is re-read when its identity (inode, size, mtime)
//! changes, checked at most every [`RECHECK`] on the next request that needs
//! a token: a `modeltrail token revoke` takes effect within that time. A
//! file that fails to parse refuses every token (503) until it is fixed.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::log::access::{ReadAccess, TokenFile, well_formed};

/// Longest a revoked token stays valid on a running log.
pub const RECHECK: Duration = Duration::from_millis(250);

/// The read-access check of one log.
pub struct Gate {
    read: ReadAccess,
    path: PathBuf,
    state: Mutex<Loaded>,
}

/// The token file as last read.
struct Loaded {
    checked: Instant,
    stamp: Option<Stamp>,
    tokens: Result<TokenFile, String>,
}

/// What identifies a version of the file (it is always replaced by rename).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &std::path::Path) -> std::io::Result<Option<Stamp>> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&meta);
            #[cfg(not(unix))]
            let inode = 0;
            Ok(Some(Stamp {
                inode,
                len: meta.len(),
                modified: meta.modified().ok(),
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_file(path: &std::path::Path) -> (Option<Stamp>, Result<TokenFile, String>) {
    let before = match stamp(path) {
        Ok(s) => s,
        Err(e) => return (None, Err(format!("{}: {e}", path.display()))),
    };
    let tokens = match std::fs::read_to_string(path) {
        Ok(text) => TokenFile::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    };
    (before, tokens)
}

impl Gate {
    /// The gate of a log with read access `read` and token file `path`;
    /// refuses to start on a token file that does not parse.
    pub fn open(read: ReadAccess, path: PathBuf) -> Result<Gate, String> {
        let (stamp, tokens) = match read {
            ReadAccess::Public => (None, Ok(TokenFile::default())),
            ReadAccess::Token => read_file(&path),
        };
        let tokens = Ok(tokens?);
        Ok(Gate {
            read,
            path,
            state: Mutex::new(Loaded {
                checked: Instant::now(),
                stamp,
                tokens,
            }),
        })
    }

    /// Whether the token is current, re-reading the file if it changed.
    fn check(&self, token: &str) -> Result<bool, String> {
        let mut loaded = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let now = stamp(&self.path).map_err(|e| format!("{}: {e}", self.path.display()));
            if now.as_ref().map_or(true, |s| *s != loaded.stamp) {
                let (stamp, tokens) = read_file(&self.path);
                if let Err(e) = &tokens {
                    tracing::error!("the token file cannot be read; refusing every token: {e}");
                } else if loaded.tokens.is_ok() {
                    tracing::info!("re-read the token file");
                }
                loaded.stamp = stamp;
                loaded.tokens = tokens;
            }
        }
        match &loaded.tokens {
            Ok(file) => Ok(file.accepts(token)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Whether a request may be answered without a token.
fn public(method: &Method, path: &str) -> bool {
    // Percent-encoded paths are decoded by the router: never public, so
    // `/tile/%65ntries/…` cannot reach an entry bundle.
    if path.contains('%') {
        return false;
    }
    if *method == Method::POST {
        return matches!(path, "/add" | "/v1/entries");
    }
    match path {
        "/checkpoint"
        | "/checkpoint.unwitnessed"
        | "/healthz"
        | "/metrics"
        | "/v1/proof/inclusion"
        | "/v1/proof/consistency" => true,
        _ => path
            .strip_prefix("/tile/")
            .is_some_and(|rest| rest != "entries" && !rest.starts_with("entries/")),
    }
}

/// A query string carrying what looks like a token (`…=mt_…`, or an
/// `access_token`/`token` parameter).
fn token_in_query(query: &str) -> bool {
    query.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        matches!(name, "access_token" | "token") || value.starts_with("mt_")
    })
}

fn unauthorised(code: &'static str, message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The middleware: answers 401 unless the request is public or carries a
/// current token. Never logs or echoes the token.
pub async fn require(
    State(gate): State<std::sync::Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    if gate.read == ReadAccess::Public {
        return next.run(request).await;
    }
    if request.uri().query().is_some_and(token_in_query) {
        return unauthorised(
            "token_in_query",
            "tokens go in an Authorization: Bearer header, never in the URL (URLs are logged); \
             revoke this token",
        );
    }
    if public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return unauthorised(
            "token_required",
            "this log is private: send Authorization: Bearer <token> (modeltrail: --token or MODELTRAIL_TOKEN)",
        );
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| well_formed(t));
    let Some(token) = token else {
        return unauthorised(
            "token_malformed",
            "the Authorization header is not `Bearer mt_<43 base64url characters>`",
        );
    };
    match gate.check(token) {
        Ok(true) => next.run(request).await,
        Ok(false) => unauthorised("token_invalid", "the token is unknown or revoked"),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tokens_unavailable",
            "the log cannot read its token file; the operator must fix it",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hash_routes_are_public() {
        let get = Method::GET;
        for path in [
            "/checkpoint",
            "/tile/0/000",
            "/tile/1/x001/002.p/5",
            "/v1/proof/inclusion",
            "/healthz",
        ] {
            assert!(public(&get, path), "{path}");
        }
        for path in [
            "/tile/entries/000",
            "/tile/entries",
            "/tile/%65ntries/000",
            "/v1/entries/0",
            "/v1/policy",
            "/v1/tlog-proof/0",
            "/nope",
            "/add",
        ] {
            assert!(!public(&get, path), "{path}");
        }
        assert!(public(&Method::POST, "/add"));
        assert!(token_in_query("index=1&access_token=x"));
        assert!(token_in_query("x=mt_abc"));
        assert!(!token_in_query("index=1&size=2"));
    }
}
