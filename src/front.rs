//! The HTTP front end shared by the log server and the witness: its own
//! hyper 1 accept loop (HTTP/1.1) in place of `axum::serve`, so that a
//! client without a key cannot hold the server's connections or stop it
//! from shutting down.
//!
//! - **Header-read timeout** (`header_read_timeout`): a request head must
//!   arrive whole within it, counted from when the connection starts waiting
//!   for the head — so it is also the idle timeout between keep-alive
//!   requests. A late head closes the connection, without an answer (there
//!   is no request to answer).
//! - **Connection limit**: at start the soft `RLIMIT_NOFILE` is raised to
//!   the hard limit and the limit is the descriptors left after a reserve of
//!   [`FD_RESERVE`] for the log's own files (tiles, index, checkpoint) and
//!   the witness client's sockets; a configured limit can only lower it. A
//!   new connection beyond the limit first sheds the oldest idle connection
//!   (no request in progress: a keep-alive client, or a half-sent head),
//!   which loses no work; only when every connection has a request in
//!   progress is the new one answered `503 too_many_connections` and
//!   closed. So stalled clients cannot make `/healthz` unreachable, and the
//!   sequencer never runs out of descriptors.
//! - **Shutdown deadline** (`shutdown_timeout`): on the shutdown signal the
//!   listener stops accepting, idle connections close at once, requests in
//!   progress may finish until the deadline, and then every connection left
//!   is dropped (its handler future with it). A half-sent request cannot
//!   keep the process alive.
//!
//! - **Lingering close**: a request refused before its body was read (413
//!   from `Content-Length`) leaves the body in flight; closing at once would
//!   make the kernel reset the connection, and the client would see a broken
//!   pipe instead of the answer. So once hyper is done with a connection, its
//!   write side is shut down and what the client still sends is read and
//!   discarded for up to [`LINGER`] (not buffered: no memory), unless the
//!   connection was shed or the server is stopping.
//! - **hyper's own error answers** (400 for a malformed request line or
//!   header, 414 for an oversize URI, 431 for oversize headers) have an empty
//!   body; [`JsonErrorIo`] gives them the API's JSON error shape as they are
//!   written, so every error answer is `{"error":{"code","message"}}`.
//!
//! Crash analysis: nothing here is durable state. Dropping a connection
//! drops its handler; a submission already queued is still integrated by
//! the sequencer (the client sees a closed connection and may retry, which
//! the log answers as a duplicate).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// File descriptors kept back from the connection limit for the server's
/// own files and outgoing connections.
pub const FD_RESERVE: u64 = 128;

/// Longest a closed connection keeps reading (and discarding) what the
/// client still sends, so it gets the answer rather than a reset.
pub const LINGER: Duration = Duration::from_secs(1);

/// The front end's limits.
#[derive(Debug, Clone, Copy)]
pub struct FrontConfig {
    /// Longest wait for a whole request head (also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Most open connections; `None`: as many as the descriptors allow.
    pub max_connections: Option<usize>,
    /// Longest wait for requests in progress after the shutdown signal.
    pub shutdown_timeout: Duration,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    }
}

/// The connection limit: the descriptors left after [`FD_RESERVE`], lowered
/// to `configured` if it is smaller; at least 1.
pub fn connection_limit(configured: Option<usize>) -> usize {
    let fds = raise_fd_limit();
    let by_fds = usize::try_from(fds.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    configured.map_or(by_fds, |c| c.min(by_fds)).max(1)
}

/// What the accept loop knows of one open connection.
struct ConnState {
    /// When its last request ended (or it was accepted).
    last_active: Instant,
    /// Requests in progress on it.
    busy: usize,
    /// Wakes it to close (when shed).
    shed: Arc<Notify>,
}

/// The open connections.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, ConnState>>,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Asks the oldest idle connection to close and forgets it; false if
    /// every connection has a request in progress.
    fn shed_oldest_idle(&self) -> bool {
        let mut conns = self.conns.lock().unwrap();
        let oldest = conns
            .iter()
            .filter(|(_, c)| c.busy == 0)
            .min_by_key(|(_, c)| c.last_active)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| conns.remove(&id)) {
            Some(conn) => {
                conn.shed.notify_one();
                true
            }
            None => false,
        }
    }

    fn set_busy(&self, id: u64, start: bool) {
        if let Some(conn) = self.conns.lock().unwrap().get_mut(&id) {
            if start {
                conn.busy += 1;
            } else {
                conn.busy = conn.busy.saturating_sub(1);
                conn.last_active = Instant::now();
            }
        }
    }
}

/// Marks a request in progress on a connection until dropped.
struct Busy {
    registry: Arc<Registry>,
    id: u64,
}

impl Busy {
    fn new(registry: &Arc<Registry>, id: u64) -> Busy {
        registry.set_busy(id, true);
        Busy {
            registry: registry.clone(),
            id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.registry.set_busy(self.id, false);
    }
}

/// The answer to a connection beyond the limit, in the API's JSON error shape.
fn too_many_connections() -> Vec<u8> {
    let body = r#"{"error":{"code":"too_many_connections","message":"the server has as many connections as it allows and all are busy; retry after the Retry-After delay"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` completes, then drains the
/// connections within the shutdown deadline and returns.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    config: FrontConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = connection_limit(config.max_connections);
    tracing::info!(max_connections = limit, "accepting connections");
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let next_id = AtomicUsize::new(0);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors (or a connection reset before it
                    // was accepted): wait a moment rather than spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if registry.len() >= limit && !registry.shed_oldest_idle() {
            tasks.spawn(refuse(stream));
            continue;
        }
        let id = next_id.fetch_add(1, SeqCst) as u64;
        let shed = Arc::new(Notify::new());
        registry.conns.lock().unwrap().insert(
            id,
            ConnState {
                last_active: Instant::now(),
                busy: 0,
                shed: shed.clone(),
            },
        );
        tasks.spawn(connection(
            stream,
            app.clone(),
            builder.clone(),
            registry.clone(),
            id,
            shed,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "shutdown deadline reached: dropping the connections left"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Answers a connection beyond the limit with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&too_many_connections()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves one connection until the client closes it, it times out, it is
/// shed, or the server stops (gracefully: a request in progress finishes).
async fn connection(
    stream: TcpStream,
    app: axum::Router,
    builder: http1::Builder,
    registry: Arc<Registry>,
    id: u64,
    shed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let stream = Arc::new(stream);
    let service = TowerToHyperService::new(app);
    let service_registry = registry.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::new(&service_registry, id);
        let answer = hyper::service::Service::call(&service, request);
        async move {
            let answer = answer.await;
            drop(busy);
            answer
        }
    });
    let io = JsonErrorIo::new(SharedStream(stream.clone()));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                break;
            }
            () = shed.notified(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    if !closing {
        tokio::select! {
            () = linger(&stream) => {}
            () = shed.notified() => {}
            _ = stop.wait_for(|stop| *stop) => {}
        }
    }
    registry.conns.lock().unwrap().remove(&id);
}

/// Shuts down the write side of `stream` (the client reads the answer and
/// then end of file) and discards what the client still sends, until it
/// closes too or [`LINGER`] has passed.
async fn linger(stream: &TcpStream) {
    shutdown_write(stream);
    let _ = tokio::time::timeout(LINGER, async {
        let mut scratch = [0u8; 16 << 10];
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

/// `shutdown(SHUT_WR)`: sends FIN, keeps reading possible.
fn shutdown_write(stream: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is open for as long as `stream` is borrowed;
    // shutdown changes no memory.
    unsafe {
        libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR);
    }
}

/// A connection's TCP stream, shared by hyper and the connection task (which
/// lingers on it after hyper is done).
struct SharedStream(Arc<TcpStream>);

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        shutdown_write(&self.0);
        Poll::Ready(Ok(()))
    }
}

/// The JSON error answer replacing hyper's own bodiless error answer `head`
/// (a status line and headers with `content-length: 0`, nothing after), or
/// `None` for anything else. The application never answers an error with
/// an empty body, so such a head can only come from hyper.
fn json_error_for(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    if !text.ends_with("\r\n\r\n") || !text.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let reason = rest.get(4..)?.split("\r\n").next()?;
    let (code, message) = match status {
        400 => (
            "bad_request",
            "the request line or a header is malformed (HTTP/1.1, a valid URI)",
        ),
        414 => ("uri_too_long", "the request URI is too long"),
        431 => ("headers_too_large", "the request head is too large"),
        _ if (400..600).contains(&status) => ("http_error", reason),
        _ => return None,
    };
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A connection's stream that rewrites hyper's bodiless error answers
/// (see [`json_error_for`]); everything else passes through.
pub struct JsonErrorIo<T> {
    inner: T,
    /// A replacement being written: its bytes, how many are written, and
    /// the length of the write it replaces (reported once it is all out).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonErrorIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> JsonErrorIo<T> {
        JsonErrorIo {
            inner,
            replacing: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrorIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrorIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none()
            && let Some(replacement) = json_error_for(buf)
        {
            this.replacing = Some((replacement, 0, buf.len()));
        }
        let Some((bytes, written, replaced)) = &mut this.replacing else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let replaced = *replaced;
        this.replacing = None;
        Poll::Ready(Ok(replaced))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_error_heads_are_rewritten() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 14:48:03 GMT\r\n\r\n";
        let rewritten = String::from_utf8(json_error_for(hyper_400).unwrap()).unwrap();
        let (head, body) = rewritten.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "bad_request");
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(json_error_for(hyper_431).is_some());
        for untouched in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nmore",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"{\"a\":1}",
        ] {
            assert_eq!(json_error_for(untouched), None, "{untouched:?}");
        }
    }
}
