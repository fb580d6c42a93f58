//! The log with real witnesses (c2sp.org/tlog-witness, c2sp.org/tlog-policy):
//! `modeltrail serve --witness-policy` and two `modeltrail-witness`
//! processes on loopback. Checkpoints are served at `/checkpoint` only once
//! their cosignatures meet the policy's quorum; a dead witness stops 2-of-2
//! but not 1-of-2; a restarted witness catches up. A stand-in witness
//! answering with forged, replayed, wrong-key, corrupted or malformed
//! cosignatures is never counted towards the quorum.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, Server, Witness, scratch};
use modeltrail::entry::{Kind, PolicyBody, SignedEntry};
use modeltrail::tlog::add_checkpoint::AddCheckpointRequest;
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::note::{KeyType, Note, NoteSignature, SignerKey};
use modeltrail::tlog::policy::{Policy, PolicyError};
use serde_json::json;

/// The admin's policy update enrolling nothing new but one more criterion:
/// a distinct valid entry per `n`.
fn policy_update(client: &Client, admin: &SignerKey, n: u64) -> SignedEntry {
    let size: u64 = client.get_json("/healthz")["size"].as_u64().unwrap();
    let mut latest = None;
    for i in (0..size).rev() {
        let entry = SignedEntry::parse(&client.entry(i)).unwrap();
        if entry.kind() == Kind::Policy {
            latest = Some(entry);
            break;
        }
    }
    let current = latest.expect("the log has a policy");
    let mut value = PolicyBody::parse(current.body()).unwrap().to_value();
    value["criteria"]
        .as_array_mut()
        .unwrap()
        .push(json!({"description": format!("criterion {n}"), "id": format!("c{n}")}));
    SignedEntry::sign(Kind::Policy, value, admin).unwrap()
}

/// Appends `count` entries and returns the log's size after them.
fn append(client: &Client, admin: &SignerKey, first: u64, count: u64) -> u64 {
    let mut last = 0;
    for n in first..first + count {
        let entry = policy_update(client, admin, n);
        let r = client.add(entry.bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.text().trim().parse::<u64>().unwrap();
    }
    last + 1
}

/// Polls `/checkpoint` until it verifies under `policy` at `size` or more.
fn wait_witnessed(server: &Server, policy: &Policy, size: u64) -> (Checkpoint, Vec<u8>) {
    let client = server.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client.get("/checkpoint");
        if r.status == 200
            && let Ok(cp) = policy.verify_checkpoint(&r.body)
            && cp.size >= size
        {
            return (cp, r.body);
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} met the quorum in 30 s; /checkpoint answered {} {}\n\
             log stderr:\n{}",
            r.status,
            r.text(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the sample `name{witness="<witness>"}` at `/metrics`.
fn witness_metric(client: &Client, name: &str, witness: &str) -> u64 {
    let text = client.get("/metrics").text();
    common::metric(&text, &format!("{name}{{witness=\"{witness}\"}}")) as u64
}

fn unwitnessed_size(client: &Client) -> u64 {
    let r = client.get("/checkpoint.unwitnessed");
    assert_eq!(r.status, 200);
    Checkpoint::from_note(&Note::parse(&r.body).unwrap())
        .unwrap()
        .size
}

/// Sets `[witness]` timing in config.toml so backoff stays short in tests.
fn short_witness_timing(data: &Path) {
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text
        .replace("timeout_ms = 5000\n", "timeout_ms = 2000\n")
        .replace("max_backoff_ms = 30000\n", "max_backoff_ms = 500\n");
    assert_ne!(
        text, edited,
        "config.toml has the [witness] defaults:\n{text}"
    );
    std::fs::write(&config, edited).unwrap();
}

#[test]
fn quorum_of_two_witnesses_gates_the_served_checkpoint() {
    let dir = scratch("quorum");
    let log_dir = dir.join("log");
    let origin = "witnessing.example.test/log";
    let out = common::init(&log_dir, &["--origin", origin]);
    let log_vkey = common::init_vkey(&out, "log vkey:");
    let admin = common::read_key(&log_dir.join("keys/admin.key"));
    short_witness_timing(&log_dir);

    let mut w1 = Witness::init(&dir, "w1", &log_vkey);
    let mut w2 = Witness::init(&dir, "w2", &log_vkey);
    w1.start();
    w2.start();
    let both = Policy::parse(common::witness_policy(&log_vkey, &[&w1, &w2], 2).as_bytes()).unwrap();
    let either =
        Policy::parse(common::witness_policy(&log_vkey, &[&w1, &w2], 1).as_bytes()).unwrap();
    let policy_file = dir.join("witnesses.policy");
    std::fs::write(
        &policy_file,
        common::witness_policy(&log_vkey, &[&w1, &w2], 2),
    )
    .unwrap();
    let policy_arg = policy_file.to_str().unwrap();

    // 2-of-2, both up: the served checkpoint carries both cosignatures.
    let mut server = Server::start_with(&log_dir, &["--witness-policy", policy_arg]);
    let client = server.client();
    let (cp, note) = wait_witnessed(&server, &both, 1);
    assert_eq!(cp.size, 1, "only the initial policy is logged");
    let size = append(&client, &admin, 0, 5);
    assert_eq!(size, 6);
    let (cp, note_6) = wait_witnessed(&server, &both, size);
    assert_eq!(cp.size, 6);
    assert_ne!(note, note_6);
    // The cosignatures are by the witnesses' keys, under cosignature/v1.
    let signed = Checkpoint::open(&note_6, &log_vkey, &[w1.vkey.clone(), w2.vkey.clone()]).unwrap();
    assert_eq!(signed.verified.len(), 3, "log + two witnesses");
    assert_eq!(witness_metric(&client, "modeltrail_witness_up", "w1"), 1);
    assert_eq!(
        witness_metric(&client, "modeltrail_witness_cosigned_size", "w2"),
        6
    );
    // Proofs are against the witnessed checkpoint when it holds the entry.
    let proof = client.get("/v1/tlog-proof/5");
    assert_eq!(proof.status, 200);
    assert!(
        proof
            .text()
            .contains(&String::from_utf8_lossy(&note_6).into_owned()),
        "the tlog-proof embeds the cosigned checkpoint:\n{}",
        proof.text()
    );

    // w2 dies: under 2-of-2 the log keeps sequencing, /checkpoint stays put.
    w2.kill9();
    let size = append(&client, &admin, 5, 3);
    assert_eq!(unwitnessed_size(&client), size);
    std::thread::sleep(Duration::from_millis(1500));
    let served = client.get("/checkpoint");
    assert_eq!(both.verify_checkpoint(&served.body).unwrap().size, 6);
    assert!(
        matches!(
            either.verify_checkpoint(&served.body),
            Ok(ref cp) if cp.size == 6
        ),
        "what is served under 2-of-2 also meets 1-of-2"
    );
    assert_eq!(witness_metric(&client, "modeltrail_witness_up", "w2"), 0);
    assert!(witness_metric(&client, "modeltrail_witness_failures_total", "w2") >= 1);
    assert_eq!(
        witness_metric(&client, "modeltrail_witness_cosigned_size", "w1"),
        size
    );
    assert!(server.terminate().success());

    // The same log under 1-of-2 publishes with w1 alone.
    std::fs::write(
        &policy_file,
        common::witness_policy(&log_vkey, &[&w1, &w2], 1),
    )
    .unwrap();
    let mut server = Server::start_with(&log_dir, &["--witness-policy", policy_arg]);
    let client = server.client();
    let size = append(&client, &admin, 8, 2);
    let (cp, note) = wait_witnessed(&server, &either, size);
    assert_eq!(cp.size, size);
    assert!(
        matches!(
            both.verify_checkpoint(&note),
            Err(PolicyError::QuorumNotMet { cosigned: 1, .. })
        ),
        "w1's cosignature alone does not meet 2-of-2"
    );

    // w2 comes back: the log learns its size (409) and it catches up, with
    // no new entries needed.
    w2.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while witness_metric(&client, "modeltrail_witness_cosigned_size", "w2") < size {
        assert!(
            Instant::now() < deadline,
            "w2 did not catch up:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (cp, note) = wait_witnessed(&server, &both, size);
    assert_eq!(cp.size, size);
    assert!(server.terminate().success());

    // The witnessed checkpoint survives a restart of the log.
    let stored = std::fs::read(log_dir.join("tiles/checkpoint.witnessed")).unwrap();
    assert_eq!(stored, note);
    let server = Server::start_with(&log_dir, &["--witness-policy", policy_arg]);
    let r = server.client().get("/checkpoint");
    assert_eq!(r.status, 200);
    assert!(either.verify_checkpoint(&r.body).unwrap().size >= size);
}

#[test]
fn without_a_quorum_yet_the_checkpoint_is_not_served() {
    let dir = scratch("no-quorum");
    let log_dir = dir.join("log");
    let out = common::init(&log_dir, &["--origin", "witnessing.example.test/none"]);
    let log_vkey = common::init_vkey(&out, "log vkey:");
    short_witness_timing(&log_dir);
    // A witness that is registered but never started.
    let w1 = Witness::init(&dir, "w1", &log_vkey);
    let policy_file = dir.join("witnesses.policy");
    std::fs::write(&policy_file, common::witness_policy(&log_vkey, &[&w1], 1)).unwrap();
    let server = Server::start_with(
        &log_dir,
        &["--witness-policy", policy_file.to_str().unwrap()],
    );
    let client = server.client();
    let r = client.get("/checkpoint");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.code(), "not_witnessed");
    assert_eq!(unwitnessed_size(&client), 1);
    // The tlog-proof falls back to the latest log-signed checkpoint.
    assert_eq!(client.get("/v1/tlog-proof/0").status, 200);
}

#[test]
fn unusable_witness_policies_stop_the_log_from_starting() {
    let dir = scratch("bad-policy");
    let log_dir = dir.join("log");
    common::init(&log_dir, &["--origin", "witnessing.example.test/bad"]);
    let w = SignerKey::generate("w.example", KeyType::CosignatureV1)
        .unwrap()
        .verifier();
    let other_log = SignerKey::generate("other.example/log", KeyType::Ed25519)
        .unwrap()
        .verifier();
    for (name, text, expected) in [
        ("no-url", format!("witness w {w}\nquorum w\n"), "has no URL"),
        (
            "quorum-none",
            format!("witness w {w} http://127.0.0.1:1\nquorum none\n"),
            "quorum none",
        ),
        (
            "other-log",
            format!("log {other_log}\nwitness w {w} http://127.0.0.1:1\nquorum w\n"),
            "do not include this log's key",
        ),
        ("syntax", "witness w\n".to_owned(), "policy line 1"),
    ] {
        let file = dir.join(format!("{name}.policy"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(common::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&log_dir)
            .arg("--witness-policy")
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}: the log started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

// ---------------------------------------------------------------------------
// A witness that answers with bad cosignatures
// ---------------------------------------------------------------------------

/// What the fake witness answers to `add-checkpoint`, with status 200.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    /// A line with the witness key's name and ID and random signature bytes.
    Forged,
    /// A real cosignature by the witness key, of another checkpoint (the
    /// same log and size, another root): a replay.
    OtherCheckpoint,
    /// A real cosignature of the checkpoint, by another key of the same name.
    OtherKey,
    /// The witness key's real cosignature with one bit flipped.
    Flipped,
    /// Not a signature line at all.
    Garbage,
    /// A real cosignature of the checkpoint, by the witness key.
    Valid,
}

/// A tlog-witness stand-in on 127.0.0.1: a real HTTP/1.1 server in a
/// thread, answering every `POST /add-checkpoint` with the current
/// [`Answer`] and counting the requests per answer.
struct FakeWitness {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    served: Arc<Mutex<Vec<Answer>>>,
}

impl FakeWitness {
    fn start(key: SignerKey, other: SignerKey) -> FakeWitness {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new(Answer::Forged));
        let served = Arc::new(Mutex::new(Vec::new()));
        let (a, s) = (answer.clone(), served.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let answer = *a.lock().unwrap();
                if fake_answer(stream, answer, &key, &other).is_some() {
                    s.lock().unwrap().push(answer);
                }
            }
        });
        FakeWitness {
            port,
            answer,
            served,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Switches to `answer` and waits until the log has asked twice more.
    fn answer_and_wait(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
        let count = || {
            self.served
                .lock()
                .unwrap()
                .iter()
                .filter(|a| **a == answer)
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while count() < 2 {
            assert!(
                Instant::now() < deadline,
                "the log stopped asking the witness: did it accept a {answer:?} answer?"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads one request (head, then `Content-Length` bytes), answers it and
/// closes; the request body if it was an `add-checkpoint`.
fn fake_answer(
    mut stream: TcpStream,
    answer: Answer,
    key: &SignerKey,
    other: &SignerKey,
) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    if !request_line.starts_with("POST ") || !request_line.contains("/add-checkpoint ") {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return None;
    }
    let request = AddCheckpointRequest::parse(&body).ok()?;
    let text = request.note().text().to_owned();
    let now = 1_800_000_000;
    let real = cosignature::sign(key, &text, now).unwrap();
    let line = match answer {
        Answer::Forged => {
            let mut bytes = now.to_be_bytes().to_vec();
            bytes.extend((0..64u8).map(|i| i.wrapping_mul(37)));
            NoteSignature::new(key.name(), key.verifier().key_id(), bytes)
                .unwrap()
                .to_line()
        }
        Answer::OtherCheckpoint => {
            let mut cp = request.checkpoint().clone();
            cp.root.0[0] ^= 1;
            cosignature::sign(key, &cp.to_text(), now)
                .unwrap()
                .to_line()
        }
        Answer::OtherKey => cosignature::sign(other, &text, now).unwrap().to_line(),
        Answer::Flipped => {
            let mut bytes = real.signature().to_vec();
            bytes[20] ^= 0x10;
            NoteSignature::new(real.name(), real.key_id(), bytes)
                .unwrap()
                .to_line()
        }
        Answer::Garbage => "— this is not a cosignature\n".to_owned(),
        Answer::Valid => real.to_line(),
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        line.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(line.as_bytes()).ok()?;
    Some(body)
}

#[test]
fn bad_cosignatures_are_never_counted_or_published() {
    let dir = scratch("bad-cosignatures");
    let log_dir = dir.join("log");
    let out = common::init(&log_dir, &["--origin", "witnessing.example.test/forged"]);
    let log_vkey = common::init_vkey(&out, "log vkey:");
    short_witness_timing(&log_dir);
    let key = SignerKey::generate("w.example/fake", KeyType::CosignatureV1).unwrap();
    let other = SignerKey::generate("w.example/fake", KeyType::CosignatureV1).unwrap();
    let fake = FakeWitness::start(key.clone(), other);
    let policy_text = format!(
        "log {log_vkey}\nwitness fake {} {}\nquorum fake\n",
        key.verifier(),
        fake.url()
    );
    let policy = Policy::parse(policy_text.as_bytes()).unwrap();
    let policy_file = dir.join("witnesses.policy");
    std::fs::write(&policy_file, &policy_text).unwrap();
    let server = Server::start_with(
        &log_dir,
        &["--witness-policy", policy_file.to_str().unwrap()],
    );
    let client = server.client();
    let witnessed = log_dir.join("tiles/checkpoint.witnessed");

    for answer in [
        Answer::Forged,
        Answer::OtherCheckpoint,
        Answer::OtherKey,
        Answer::Flipped,
        Answer::Garbage,
    ] {
        fake.answer_and_wait(answer);
        let r = client.get("/checkpoint");
        assert_eq!(r.status, 404, "{answer:?}: {}", r.text());
        assert_eq!(r.code(), "not_witnessed", "{answer:?}");
        assert!(
            !witnessed.exists(),
            "{answer:?}: a witnessed checkpoint was written"
        );
        assert_eq!(witness_metric(&client, "modeltrail_witness_up", "fake"), 0);
        assert_eq!(
            witness_metric(&client, "modeltrail_witness_cosigned_size", "fake"),
            0,
            "{answer:?}"
        );
    }
    let failures = witness_metric(&client, "modeltrail_witness_failures_total", "fake");
    assert!(failures >= 10, "{failures} failures counted");
    for reason in [
        "the cosignature does not verify",
        "no cosignature by the witness's key",
        "malformed cosignature lines",
    ] {
        assert!(
            server.stderr().contains(reason),
            "{reason}:\n{}",
            server.stderr()
        );
    }

    // Control: the same stand-in with a real cosignature is published.
    *fake.answer.lock().unwrap() = Answer::Valid;
    let (cp, note) = wait_witnessed(&server, &policy, 1);
    assert_eq!(cp.size, 1);
    Checkpoint::open(&note, &log_vkey, &[key.verifier()]).unwrap();
    assert_eq!(std::fs::read(&witnessed).unwrap(), note);
}
