//! The HTTP front end's limits against the real `modeltrail serve` (and
//! `modeltrail-witness serve`) on loopback, driven over raw TCP so a test can
//! stop half-way through a request head or body: per-route body caps
//! (refused from `Content-Length` before the body is sent; counted for
//! chunked bodies), the global body budget, no body where none is expected,
//! JSON error bodies, the header-read and idle timeouts, the connection
//! limit, and the shutdown deadline.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, scratch};
use serde_json::Value;

/// A log initialised in a scratch directory with `http` (the body of an
/// `[http]` table) appended to its config.toml, and started.
fn start(name: &str, http: &str) -> (Server, PathBuf) {
    let dir = scratch(name);
    let origin = format!("limits.example.test/{name}");
    common::init(&dir, &["--origin", &origin]);
    let config = format!("origin = {origin:?}\n\n[http]\n{http}\n");
    std::fs::write(dir.join("config.toml"), config).unwrap();
    (Server::start(&dir), dir)
}

/// `host:port` of a server's base URL.
fn addr(server: &Server) -> String {
    server.base.strip_prefix("http://").unwrap().to_owned()
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// One answer read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {self:?}"))
            .to_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Reads one answer (head and a `Content-Length` body) from `stream`.
fn read_answer(stream: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("reading an answer: {e}; got {buf:?}"));
        assert!(
            n > 0,
            "connection closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut raw = Raw {
        status,
        head,
        body: buf[head_end..].to_vec(),
    };
    let len: usize = raw
        .header("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    while raw.body.len() < len {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-body: {raw:?}");
        raw.body.extend_from_slice(&chunk[..n]);
    }
    raw
}

/// Sends `request` on a new connection and reads the answer.
fn exchange(addr: &str, request: &[u8]) -> Raw {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    read_answer(&mut stream)
}

/// True once the server closed `stream` (reads EOF or a reset), reading
/// and discarding whatever comes first; false if it is still open after `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let deadline = Instant::now() + limit;
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => return false,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn post_head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[test]
fn oversize_bodies_are_refused_from_content_length_before_they_are_sent() {
    let (server, _dir) = start("content_length", "max_body_bytes = 100000");
    let addr = addr(&server);
    // Nothing of the body is sent: the answer must come from the head alone.
    let batch = exchange(&addr, post_head("/v1/entries", 100_001).as_bytes());
    assert_eq!(batch.status, 413, "{batch:?}");
    assert_eq!(batch.code(), "batch_too_large");
    let add = exchange(&addr, post_head("/add", 65_536).as_bytes());
    assert_eq!(add.status, 413, "{add:?}");
    assert_eq!(add.code(), "entry_too_large");
    // The largest bodies allowed are read (and judged on their content).
    let mut at_cap = post_head("/add", 65_535).into_bytes();
    at_cap.extend(std::iter::repeat_n(b' ', 65_535));
    let judged = exchange(&addr, &at_cap);
    assert_ne!(judged.status, 413, "{judged:?}");
    // A client that sends its whole oversize body anyway still reads the
    // answer (the server drains what arrives after answering), not a reset.
    for _ in 0..3 {
        let mut whole = post_head("/add", 1 << 20).into_bytes();
        whole.extend(std::iter::repeat_n(b' ', 1 << 20));
        let mut stream = connect(&addr);
        stream
            .write_all(&whole)
            .expect("the body is taken, not reset");
        let answer = read_answer(&mut stream);
        assert_eq!(answer.status, 413, "{answer:?}");
        assert_eq!(answer.code(), "entry_too_large");
        assert_eq!(answer.header("connection").as_deref(), Some("close"));
    }
    // A client asking `Expect: 100-continue` is refused without a 100.
    let expect = format!(
        "POST /v1/entries HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        1u64 << 40
    );
    let refused = exchange(&addr, expect.as_bytes());
    assert_eq!(refused.status, 413, "{refused:?}");
}

#[test]
fn chunked_bodies_are_counted_as_they_stream() {
    let (server, _dir) = start("chunked", "max_body_bytes = 100000");
    let addr = addr(&server);
    for (path, code, total) in [
        ("/add", "entry_too_large", 70_000),
        ("/v1/entries", "batch_too_large", 110_000),
    ] {
        let mut stream = connect(&addr);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b' '; 10_000];
        let mut sent = 0;
        // Send until refused; the server may answer and close before the end.
        while sent < total {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            if stream.write_all(&frame).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let answer = read_answer(&mut stream);
        assert_eq!(answer.status, 413, "{path}: {answer:?}");
        assert_eq!(answer.code(), code);
    }
}

#[test]
fn routes_without_a_body_refuse_one() {
    let (server, _dir) = start("no_body", "");
    let addr = addr(&server);
    let get = exchange(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(get.status, 413, "{get:?}");
    assert_eq!(get.code(), "body_not_allowed");
    let chunked = exchange(
        &addr,
        b"GET /checkpoint HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(chunked.status, 413, "{chunked:?}");
    assert_eq!(chunked.code(), "body_not_allowed");
    // Without a body the route answers as ever.
    let ok = exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[test]
fn the_body_budget_bounds_bytes_buffered_across_requests() {
    let (server, _dir) = start(
        "budget",
        "max_body_bytes = 80000\nbody_budget_bytes = 100000",
    );
    let addr = addr(&server);
    // A holds 80,000 bytes of the budget while its body trickles in.
    let mut a = connect(&addr);
    a.write_all(post_head("/v1/entries", 80_000).as_bytes())
        .unwrap();
    a.write_all(&[b' '; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // B's 30,000 do not fit in what is left.
    let b = exchange(&addr, post_head("/v1/entries", 30_000).as_bytes());
    assert_eq!(b.status, 503, "{b:?}");
    assert_eq!(b.code(), "server_busy");
    assert_eq!(b.header("retry-after").as_deref(), Some("1"));
    // Small bodies still fit, and A's reservation comes back when it ends.
    let mut small = post_head("/v1/entries", 2).into_bytes();
    small.extend_from_slice(b"[]");
    assert_eq!(exchange(&addr, &small).status, 200);
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = post_head("/v1/entries", 30_000).into_bytes();
    c.extend(std::iter::repeat_n(b' ', 30_000));
    let c = exchange(&addr, &c);
    assert_eq!(c.status, 400, "{c:?}");
    assert_eq!(c.code(), "bad_batch");
}

#[test]
fn error_answers_have_the_json_error_shape() {
    let (server, _dir) = start("json_errors", "request_timeout_ms = 300");
    let addr = addr(&server);
    let method = exchange(&addr, b"DELETE /checkpoint HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(method.status, 405, "{method:?}");
    assert_eq!(method.code(), "method_not_allowed");
    let missing = exchange(&addr, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(missing.code(), "not_found");
    let query = exchange(
        &addr,
        b"GET /v1/proof/inclusion?index=x HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(query.status, 400, "{query:?}");
    assert_eq!(query.code(), "bad_proof_request");
    // A body that stops half-way runs into the request timeout: 408, in JSON.
    let mut stream = connect(&addr);
    stream
        .write_all(post_head("/v1/entries", 100).as_bytes())
        .unwrap();
    stream.write_all(b"[").unwrap();
    let timeout = read_answer(&mut stream);
    assert_eq!(timeout.status, 408, "{timeout:?}");
    assert_eq!(timeout.code(), "request_timeout");
    // hyper's own refusal of a malformed request line, and an extractor's
    // plain-text rejection of a path, are JSON too.
    let request_line = exchange(&addr, b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(request_line.status, 400, "{request_line:?}");
    assert_eq!(request_line.code(), "bad_request");
    let control = exchange(&addr, b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(control.status, 400, "{control:?}");
    assert_eq!(control.code(), "bad_request");
    let path = exchange(&addr, b"GET /v1/models/%ff HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!((400..500).contains(&path.status), "{path:?}");
    assert!(!path.code().is_empty());
    let too_large = exchange(&addr, post_head("/add", 1 << 20).as_bytes());
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.code(), "entry_too_large");
}

#[test]
fn half_sent_heads_and_idle_connections_are_closed() {
    let (server, _dir) = start("header_timeout", "header_read_timeout_ms = 300");
    let addr = addr(&server);
    // A head that never ends.
    let mut half = connect(&addr);
    half.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    // Nothing sent at all.
    let mut silent = connect(&addr);
    // A keep-alive connection idle after one request.
    let mut idle = connect(&addr);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut idle).status, 200);
    let start = Instant::now();
    for (what, stream) in [
        ("half-sent head", &mut half),
        ("silent", &mut silent),
        ("idle keep-alive", &mut idle),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(3)),
            "{what} connection still open after {:?}",
            start.elapsed()
        );
    }
    // A connection that keeps sending complete requests is not cut.
    let mut busy = connect(&addr);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        busy.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_answer(&mut busy).status, 200);
    }
}

#[test]
fn the_connection_limit_sheds_idle_connections_and_keeps_healthz_answering() {
    let (server, _dir) = start("conn_limit", "max_connections = 20");
    let addr = addr(&server);
    // 60 stalled connections: silent ones and half-sent heads.
    let mut stalled = Vec::new();
    for i in 0..60 {
        let mut s = connect(&addr);
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        }
        stalled.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        let ok = exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(ok.status, 200, "{ok:?}");
    }
    drop(stalled);
    // 20 connections each with a request in progress (a body half-sent):
    // none can be shed, so the next connection is refused, in JSON.
    let mut busy = Vec::new();
    for _ in 0..20 {
        let mut s = connect(&addr);
        s.write_all(post_head("/v1/entries", 1000).as_bytes())
            .unwrap();
        s.write_all(b"[").unwrap();
        busy.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let refused = exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.code(), "too_many_connections");
    drop(busy);
    std::thread::sleep(Duration::from_millis(300));
    let ok = exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ok.status, 200, "{ok:?}");
}

/// Sends SIGTERM to `pid`.
fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
}

#[test]
fn sigterm_exits_within_the_shutdown_deadline_despite_half_sent_requests() {
    let (mut server, _dir) = start(
        "shutdown",
        "shutdown_timeout_ms = 500\nrequest_timeout_ms = 60000",
    );
    let addr = addr(&server);
    let mut head = connect(&addr);
    head.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let mut body = connect(&addr);
    body.write_all(post_head("/v1/entries", 1000).as_bytes())
        .unwrap();
    body.write_all(b"[").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    sigterm(server.pid());
    let status = server.wait_for_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}: {}", server.stderr());
    eprintln!("exited {:?} after SIGTERM", start.elapsed());
    assert!(
        server.stderr().contains("stopped with a final checkpoint"),
        "{}",
        server.stderr()
    );
}

/// A witness with the front end's flags, started on a free port.
struct WitnessProcess {
    child: Child,
    addr: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_witness(name: &str, args: &[&str]) -> WitnessProcess {
    let data = scratch(name).join("w");
    common::run_ok(
        Command::new(common::witness_bin())
            .args(["init", "--name", name, "--data"])
            .arg(&data),
    );
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(common::witness_bin())
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", &addr])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the witness did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    WitnessProcess { child, addr }
}

#[test]
fn the_witness_has_the_same_timeouts_limit_and_shutdown_deadline() {
    let mut witness = start_witness(
        "witness_front",
        &[
            "--header-read-timeout-ms",
            "300",
            "--max-connections",
            "10",
            "--shutdown-timeout-ms",
            "500",
            "--request-timeout-ms",
            "1000",
        ],
    );
    let addr = witness.addr.clone();
    // An oversize body is refused from its declared length.
    let big = exchange(
        &addr,
        b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
    );
    assert_eq!(big.status, 413, "{big:?}");
    let mut half = connect(&addr);
    half.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(3)),
        "a half-sent head stays open"
    );
    let mut stalled: Vec<TcpStream> = (0..30).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let ok = exchange(&addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ok.status, 200, "{ok:?}");
    stalled.clear();
    // A body that stops half-way gets the request timeout's 408, in JSON.
    let mut slow = connect(&addr);
    slow.write_all(
        b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nold 0\n",
    )
    .unwrap();
    let timeout = read_answer(&mut slow);
    assert_eq!(timeout.status, 408, "{timeout:?}");
    assert_eq!(timeout.code(), "request_timeout");
    // A half-sent add-checkpoint body does not hold up SIGTERM (the
    // shutdown deadline, 500 ms, is shorter than the request timeout).
    let mut body = connect(&addr);
    body.write_all(
        b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nold 0\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    sigterm(witness.child.id());
    loop {
        if let Some(status) = witness.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the witness did not exit within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn batches_stop_at_the_first_entry_past_the_limit() {
    let (server, _dir) = start("batch_entries", "max_batch_entries = 3");
    let addr = addr(&server);
    let post = |content_type: &str, body: &str| {
        let head = format!(
            "POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        exchange(&addr, head.as_bytes())
    };
    // Three (invalid) entries are judged one by one; a fourth refuses the batch,
    // even when what follows it would not parse.
    let three = post("application/json", "[1,2,3]");
    assert_eq!(three.status, 200, "{three:?}");
    assert_eq!(three.json()["results"].as_array().unwrap().len(), 3);
    for body in ["[1,2,3,4]", "[1,2,3,4,not json"] {
        let four = post("application/json", body);
        assert_eq!(four.status, 413, "{body}: {four:?}");
        assert_eq!(four.code(), "batch_too_large");
    }
    let lines = post("application/x-ndjson", "1\n2\n3\n4\n");
    assert_eq!(lines.status, 413, "{lines:?}");
    assert_eq!(lines.code(), "batch_too_large");
    let bad = post("application/json", "[1,2");
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.code(), "bad_batch");
}

/// `modeltrail serve` on `data` under a file-descriptor limit of `fds`
/// (soft and hard, as `ulimit -n`), listening on a free port.
struct LimitedLog {
    child: Child,
    addr: String,
}

impl Drop for LimitedLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_with_fd_limit(data: &std::path::Path, fds: u32) -> LimitedLog {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {fds} && exec \"$0\" serve --data \"$1\" --listen {addr}"
        ))
        .arg(common::BIN)
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the log did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    LimitedLog { child, addr }
}

#[test]
fn with_256_descriptors_300_half_open_connections_leave_healthz_and_the_sequencer_working() {
    let dir = scratch("fd_limit");
    let origin = "limits.example.test/fd_limit";
    common::init(&dir, &["--origin", origin]);
    let log = start_with_fd_limit(&dir, 256);
    let addr = log.addr.clone();
    let mut open = Vec::new();
    for i in 0..300 {
        let Ok(mut s) = TcpStream::connect(&addr) else {
            continue;
        };
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        }
        open.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let health = exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(health.status, 200, "{health:?}");
    // The sequencer still opens its files: an entry is logged.
    let client = common::Client::new(&format!("http://{addr}"));
    let admin = common::read_key(&dir.join("keys/admin.key"));
    let initial = modeltrail::entry::SignedEntry::parse(&client.entry(0)).unwrap();
    let mut policy = modeltrail::entry::PolicyBody::parse(initial.body())
        .unwrap()
        .to_value();
    policy["criteria"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"description": "fd test", "id": "fd"}));
    let entry =
        modeltrail::entry::SignedEntry::sign(modeltrail::entry::Kind::Policy, policy, &admin)
            .unwrap();
    let logged = client.add(entry.bytes());
    assert_eq!(logged.status, 200, "{}", logged.text());
    drop(open);
}
