//! The end-to-end harness shared by `tests/server.rs`, `tests/chain.rs` and
//! `tests/bench_cli.rs`: the real `modeltrail` binary started on
//! 127.0.0.1:0, a blocking HTTP client for it, scratch directories and
//! `modeltrail init`.
//!
//! Each test file includes it with `mod common;` and uses what it needs.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use modeltrail::tlog::note::{KeyType, SignerKey, VerifierKey};
use serde_json::Value;

/// The clock, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `ms` as an entry timestamp (RFC 3339 UTC with milliseconds).
pub fn ts(ms: u64) -> String {
    modeltrail::entry::Timestamp::from_unix_millis(ms)
        .unwrap()
        .to_string()
}

/// The `modeltrail` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_modeltrail");

/// A `POST /v1/entries` body: the entries as a JSON array, byte for byte.
pub fn json_array(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = b"[".to_vec();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.push(b']');
    body
}

/// A fresh, empty directory `<target tmpdir>/<test crate>/<name>`, removed by
/// the next run.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------
// `modeltrail init`
// ---------------------------------------------------------------------------

/// Runs `cmd` (typically `Command::new(BIN)` with arguments), which must
/// exit successfully; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `modeltrail init --data <data>` with `args` (e.g. `--origin`), which
/// must succeed; returns its stdout.
pub fn init(data: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new(BIN)
            .arg("init")
            .arg("--data")
            .arg(data)
            .args(args),
    )
}

/// The trimmed rest of the first line of `stdout` that starts with `prefix`
/// (such as `"log vkey:"`), which must be there.
pub fn init_line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {prefix:?} line in {stdout:?}"))
}

/// [`init_line`] parsed as a verifier key.
pub fn init_vkey(stdout: &str, prefix: &str) -> VerifierKey {
    VerifierKey::parse(init_line(stdout, prefix)).unwrap()
}

/// A signer key file as `init` and `keygen` write it.
pub fn read_key(file: &Path) -> SignerKey {
    SignerKey::parse(std::fs::read_to_string(file).unwrap().trim_end()).unwrap()
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `modeltrail serve`. Dropping it kills the process.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The tree size the start-up line announced.
    pub start_size: u64,
    /// Everything the server wrote on stderr so far.
    stderr: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the server on `data` (log level `info`) and waits, at most 30
    /// s, for its `modeltrail: serving … (size N) on http://<addr>` line. A
    /// thread keeps draining stderr so the pipe never fills.
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    /// [`Server::start`] with more `serve` arguments (e.g. `--witness-policy`).
    pub fn start_with(data: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("MODELTRAIL_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn modeltrail serve");
        let pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let drain = {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                // Keep reading until EOF so the pipe never fills.
                for line in BufReader::new(pipe).split(b'\n') {
                    let Ok(line) = line else { break };
                    let line = String::from_utf8_lossy(&line);
                    if let Some(rest) = line.strip_prefix("modeltrail: serving ")
                        && let Some((head, addr)) = rest.rsplit_once(" on http://")
                    {
                        let size = head
                            .rsplit_once("(size ")
                            .and_then(|(_, s)| s.strip_suffix(')'))
                            .and_then(|s| s.parse::<u64>().ok());
                        let _ = tx.send((addr.to_owned(), size));
                    }
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            })
        };
        let mut server = Server {
            child,
            base: String::new(),
            start_size: 0,
            stderr,
            drain: Some(drain),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((addr, size)) => {
                server.base = format!("http://{addr}");
                server.start_size = size.expect("the serving line states the size");
            }
            Err(_) => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                if let Some(d) = server.drain.take() {
                    let _ = d.join();
                }
                panic!(
                    "the server did not announce its address; stderr:\n{}",
                    server.stderr()
                );
            }
        }
        server
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A client for this server.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to end, at most `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                if let Some(d) = self.drain.take() {
                    let _ = d.join();
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the server did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Graceful stop: SIGTERM, then wait (at most 30 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
        self.wait_for_exit(Duration::from_secs(30))
    }

    /// Crash: SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL");
        self.wait_for_exit(Duration::from_secs(10))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `error.code` of an error answer (which must have the JSON error shape,
    /// with a non-empty message).
    pub fn code(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"].as_str().unwrap_or_else(|| {
            panic!("no error.code in {}", self.text());
        });
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.text()
        );
        code.to_owned()
    }
}

/// A blocking HTTP client bound to one server: HTTP error statuses are
/// answers, not errors; no proxy; 60 s per request.
#[derive(Clone)]
pub struct Client {
    pub agent: ureq::Agent,
    pub base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Client {
            agent: config.into(),
            base: base.to_owned(),
        }
    }

    fn finish(
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, ureq::Error> {
        let mut response = result?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `GET`, with transport errors returned.
    pub fn try_get(&self, path: &str) -> Result<Reply, ureq::Error> {
        Client::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }

    /// `POST`, with transport errors returned.
    pub fn try_post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Reply, ureq::Error> {
        Client::finish(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .send(body),
        )
    }

    /// `GET`; a transport error panics.
    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET` that must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// `POST`; a transport error panics.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.try_post(path, content_type, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// `POST /add` of raw bytes.
    pub fn add(&self, bytes: &[u8]) -> Reply {
        self.post("/add", "application/json", bytes)
    }

    /// `GET /v1/entries/<i>`, which must exist.
    pub fn entry(&self, index: u64) -> Vec<u8> {
        let r = self.get(&format!("/v1/entries/{index}"));
        assert_eq!(r.status, 200, "entry {index}: {}", r.text());
        r.body
    }
}

// ---------------------------------------------------------------------------
// Witnesses
// ---------------------------------------------------------------------------

/// The `modeltrail-witness` binary, built on first use (it belongs to the
/// other workspace package, so Cargo does not build it for this test).
pub fn witness_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = std::env::current_exe()
            .unwrap()
            .parent() // deps/
            .and_then(Path::parent)
            .expect("the test binary lives in <target>/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "-p",
            "modeltrail-witness",
            "--bin",
            "modeltrail-witness",
        ]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building modeltrail-witness failed");
        let bin = profile_dir.join("modeltrail-witness");
        assert!(bin.exists(), "{} is missing", bin.display());
        bin
    })
}

/// The value of the Prometheus sample `name` (labels included, as in
/// `modeltrail_submissions_total{outcome="accepted"}`) in `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A port nothing listens on right now, so a witness can be restarted at the
/// same URL.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `modeltrail-witness` data directory and, while running, its process.
pub struct Witness {
    pub name: String,
    pub data: PathBuf,
    pub port: u16,
    pub vkey: VerifierKey,
    child: Option<Child>,
}

impl Witness {
    /// `modeltrail-witness init` and `add-log` for the log.
    pub fn init(dir: &Path, name: &str, log_vkey: &VerifierKey) -> Witness {
        let data = dir.join(name);
        let out = run_ok(
            Command::new(witness_bin())
                .args(["init", "--name", name, "--data"])
                .arg(&data),
        );
        let vkey = out
            .split_whitespace()
            .find_map(|t| VerifierKey::parse(t).ok())
            .unwrap_or_else(|| panic!("no vkey in the output of init: {out:?}"));
        assert_eq!(vkey.key_type(), KeyType::CosignatureV1);
        run_ok(
            Command::new(witness_bin())
                .args(["add-log", "--data"])
                .arg(&data)
                .args(["--origin", log_vkey.name(), "--key"])
                .arg(log_vkey.to_string()),
        );
        Witness {
            name: name.to_owned(),
            data,
            port: free_port(),
            vkey,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `serve` and waits until it accepts connections.
    pub fn start(&mut self) {
        let child = Command::new(witness_bin())
            .args(["serve", "--data"])
            .arg(&self.data)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn modeltrail-witness serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "witness {} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A tlog-policy: the log, the witnesses with their URLs, and a group of
/// `threshold` of them as the quorum.
pub fn witness_policy(log: &VerifierKey, witnesses: &[&Witness], threshold: usize) -> String {
    let mut text = format!("log {log}\n");
    let mut names = Vec::new();
    for w in witnesses {
        text.push_str(&format!("witness {} {} {}\n", w.name, w.vkey, w.url()));
        names.push(w.name.as_str());
    }
    text.push_str(&format!(
        "group q {threshold} {}\nquorum q\n",
        names.join(" ")
    ));
    text
}
