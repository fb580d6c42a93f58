//! The witness's end-to-end harness: the real `modeltrail-witness` binary on
//! 127.0.0.1:0, its CLI, a blocking HTTP client, and in-memory log trees
//! built with the core (`modeltrail::tlog`) that sign real checkpoints and
//! prove real consistency.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::hash::{Hash, stored_hashes, tree_hash};
use modeltrail::tlog::note::{KeyType, Note, SignerKey, VerifierKey};
use modeltrail::tlog::proof::prove_consistency;
use modeltrail_witness::AddCheckpointRequest;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_modeltrail-witness");

/// A fresh, empty directory `<target tmpdir>/<test crate>/<name>`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `modeltrail-witness <args>`, which must succeed; its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `modeltrail-witness <args>`, which must fail with exit code 1 and one
/// `modeltrail-witness: ` line on stderr; that line.
pub fn run_fail(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("modeltrail-witness: "), "{stderr:?}");
    stderr
}

/// `serve` on `data` with `args`, which must fail; its one-line message.
pub fn serve_fails(data: &Path, args: &[&str]) -> String {
    let d = data.to_str().unwrap();
    run_fail(&[&["serve", "--data", d, "--listen", "127.0.0.1:0"], args].concat())
}

/// `init` in `<scratch>/<dir>` as `name`; the data directory and the vkey.
pub fn init(dir: &str, name: &str) -> (PathBuf, VerifierKey) {
    let data = scratch(dir).join("data");
    let out = run_ok(&["init", "--data", data.to_str().unwrap(), "--name", name]);
    (data, VerifierKey::parse(out.trim_end()).unwrap())
}

/// `add-log` for `log`.
pub fn add_log(data: &Path, log: &TestLog) {
    run_ok(&[
        "add-log",
        "--data",
        data.to_str().unwrap(),
        "--origin",
        log.origin(),
        "--key",
        &log.key.verifier().to_string(),
    ]);
}

/// `evidence --data <data>` parsed.
pub fn evidence(data: &Path) -> Vec<Value> {
    let out = run_ok(&["evidence", "--data", data.to_str().unwrap()]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `status --json --data <data>` parsed.
pub fn status(data: &Path) -> Value {
    serde_json::from_str(&run_ok(&[
        "status",
        "--json",
        "--data",
        data.to_str().unwrap(),
    ]))
    .unwrap()
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `modeltrail-witness serve`. Dropping it kills the process.
pub struct Witness {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stderr: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Witness {
    /// Starts `serve` on `data` with `args` and waits, at most 30 s, for
    /// its `serving … on http://<addr>` line; stderr is drained by a thread.
    pub fn start(data: &Path, args: &[&str]) -> Witness {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let drain = {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("modeltrail-witness: serving ")
                        && let Some((_, addr)) = line.rsplit_once(" on http://")
                    {
                        let _ = tx.send(addr.to_owned());
                    }
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            })
        };
        let mut witness = Witness {
            child,
            base: String::new(),
            stderr,
            drain: Some(drain),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => witness.base = format!("http://{addr}"),
            Err(_) => {
                let _ = witness.child.kill();
                let _ = witness.child.wait();
                witness.drain.take().map(JoinHandle::join);
                panic!("the witness did not start:\n{}", witness.stderr());
            }
        }
        witness
    }

    /// Everything written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A client for this witness.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// Waits for the exit, at most `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain.take().map(JoinHandle::join);
                return status;
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.wait_for_exit(Duration::from_secs(30))
    }

    /// SIGKILL and wait.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child.kill().unwrap();
        self.wait_for_exit(Duration::from_secs(10))
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.drain.take().map(JoinHandle::join);
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    /// `error.code` of a JSON error answer (with a non-empty message).
    pub fn code(&self) -> String {
        let v: Value = serde_json::from_str(&self.body).unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        v["error"]["code"].as_str().unwrap().to_owned()
    }
}

/// A blocking client: statuses are answers, transport failures errors.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    pub base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client {
            agent,
            base: base.to_owned(),
        }
    }

    fn finish(
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, ureq::Error> {
        let mut r = r?;
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Ok(Reply {
            status: r.status().as_u16(),
            content_type,
            body: r.body_mut().with_config().limit(8 << 20).read_to_string()?,
        })
    }

    pub fn try_post(&self, path: &str, body: &[u8]) -> Result<Reply, ureq::Error> {
        Client::finish(self.agent.post(format!("{}{path}", self.base)).send(body))
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        self.try_post(path, body).unwrap()
    }

    /// `POST /add-checkpoint`.
    pub fn add_checkpoint(&self, body: &[u8]) -> Reply {
        self.post("/add-checkpoint", body)
    }

    pub fn get(&self, path: &str) -> Reply {
        Client::finish(self.agent.get(format!("{}{path}", self.base)).call()).unwrap()
    }
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// A log: its key (named like its origin) and an in-memory tree. Forks of
/// the same log share the key and differ in their records from `fork_at`.
#[derive(Clone)]
pub struct TestLog {
    pub key: SignerKey,
    pub stored: Vec<Hash>,
    pub size: u64,
    branch: String,
    fork_at: u64,
}

impl TestLog {
    /// A log named `origin` with a key from `seed`, holding `size` records.
    pub fn new(origin: &str, seed: u8, size: u64) -> TestLog {
        let key = SignerKey::from_seed(origin, KeyType::Ed25519, &[seed; 32]).unwrap();
        let mut log = TestLog {
            key,
            stored: Vec::new(),
            size: 0,
            branch: String::new(),
            fork_at: 0,
        };
        log.grow_to(size);
        log
    }

    /// The same key and the first `at` records, with different records
    /// after them: a split view.
    pub fn fork(&self, branch: &str, at: u64, size: u64) -> TestLog {
        let mut fork = TestLog::new(self.origin(), 0, 0);
        fork.key = self.key.clone();
        fork.branch = branch.to_owned();
        fork.fork_at = at;
        fork.grow_to(size);
        fork
    }

    pub fn origin(&self) -> &str {
        self.key.name()
    }

    /// Appends records until the tree has `size`.
    pub fn grow_to(&mut self, size: u64) {
        for i in self.size..size {
            let record = if i < self.fork_at || self.branch.is_empty() {
                format!("record {i}")
            } else {
                format!("{} record {i}", self.branch)
            };
            let new = stored_hashes(i, record.as_bytes(), &self.stored).unwrap();
            self.stored.extend(new);
        }
        self.size = self.size.max(size);
    }

    pub fn root(&self, size: u64) -> Hash {
        tree_hash(size, &self.stored).unwrap()
    }

    /// The checkpoint text at `size`.
    pub fn text(&self, size: u64) -> String {
        Checkpoint {
            origin: self.origin().to_owned(),
            size,
            root: self.root(size),
            extensions: vec![],
        }
        .to_text()
    }

    /// The log-signed checkpoint note at `size`.
    pub fn note(&self, size: u64) -> Note {
        Note::sign(&self.text(size), &[&self.key]).unwrap()
    }

    pub fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 {
            return vec![];
        }
        prove_consistency(old, new, &self.stored).unwrap()
    }

    /// The request body: `old`, the proof from `old` to `size`, the note at `size`.
    pub fn request(&self, old: u64, size: u64) -> Vec<u8> {
        AddCheckpointRequest::new(old, self.proof(old, size), self.note(size))
            .unwrap()
            .to_bytes()
    }
}

/// Asserts a 200 whose body is one cosignature/v1 line by `witness` on
/// `text`; returns the note with the log's signature and the cosignature.
pub fn assert_cosigned(reply: &Reply, log: &TestLog, size: u64, witness: &VerifierKey) -> Vec<u8> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body.lines().count(), 1, "{}", reply.body);
    let note = [log.note(size).to_bytes(), reply.body.as_bytes().to_vec()].concat();
    let opened = Checkpoint::open(&note, &log.key.verifier(), std::slice::from_ref(witness))
        .unwrap_or_else(|e| panic!("cosigned note does not verify: {e}"));
    let cosig = &opened.note.signatures()[1];
    cosignature::verify(witness, &log.text(size), cosig).unwrap();
    note
}

/// Submits `log`'s checkpoint at `size` with the proof from `old`, which
/// must be cosigned (see [`assert_cosigned`]); returns the cosigned note.
pub fn cosign(c: &Client, log: &TestLog, old: u64, size: u64, witness: &VerifierKey) -> Vec<u8> {
    assert_cosigned(
        &c.add_checkpoint(&log.request(old, size)),
        log,
        size,
        witness,
    )
}

/// Posts `body` to a witness that may not know the log yet (`add-log` just
/// ran): retries 404s for up to 10 s; the first other answer.
pub fn add_checkpoint_once_known(c: &Client, body: &[u8]) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.add_checkpoint(body);
        if r.status != 404 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts a refusal with `status`; returns the body.
pub fn assert_refused(reply: &Reply, status: u16) -> &str {
    assert_eq!(reply.status, status, "{}", reply.body);
    &reply.body
}
