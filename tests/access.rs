//! Private logs (`init --read-access token`): the real `modeltrail serve`
//! on loopback and the real CLI.
//!
//! 1. the matrix: every content endpoint answers 401 (`token_required`,
//!    `WWW-Authenticate: Bearer`) without a token and 200 with one; every
//!    public endpoint (checkpoint, hash tiles, proofs, health, metrics)
//!    answers 200 without;
//! 2. a token in the query string, a malformed `Authorization` header and an
//!    unknown token are 401 with their codes; the server logs no token;
//! 3. tokens created and revoked while the server runs take effect within a
//!    second (polled);
//! 4. the CLI (`policy show`, `status`, `evidence`, `audit`, `review`) with
//!    `--token` and `MODELTRAIL_TOKEN`, and its one-line refusal without;
//! 5. `token list` never prints a token; bad names and revokes fail; a
//!    token file broken while the log runs refuses every token (503);
//! 6. a public log ignores tokens; a bad token file stops `serve`;
//! 7. a witness cosigns a private log without a token, and writes need none.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{BIN, Client, Server, scratch};

const MODEL: &str = "fraud-detector";

/// `GET path` with an optional `Authorization` value: status, error code
/// (if JSON), `WWW-Authenticate`.
fn get(client: &Client, path: &str, auth: Option<&str>) -> (u16, String, Option<String>) {
    let mut request = client.agent.get(format!("{}{path}", client.base));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.body_mut().read_to_vec().unwrap();
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code, www)
}

fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("MODELTRAIL_TOKEN")
        .output()
        .unwrap()
}

fn token_create(data: &Path, name: &str) -> String {
    let out = cli(data, &["token", "create", "--name", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("mt_") && token.len() == 46, "{token}");
    token
}

/// A client command against the log, with `MODELTRAIL_TOKEN` as given.
fn client_cmd(base: &str, args: &[&str], env_token: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["--log", base])
        .env_remove("MODELTRAIL_TOKEN")
        .env_remove("MODELTRAIL_LOG")
        .env_remove("MODELTRAIL_KEY");
    if let Some(t) = env_token {
        cmd.env("MODELTRAIL_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `path` with `auth` until it answers `want`, for at most `limit`;
/// returns how long that took.
fn until_status(client: &Client, path: &str, auth: &str, want: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, _, _) = get(client, path, Some(auth));
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{path} still answers {status}, not {want}, after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_private_log_serves_content_only_to_current_tokens() {
    let dir = scratch("private");
    let data = dir.join("data");
    let stdout = common::init(
        &data,
        &[
            "--origin",
            "private.example.test/log",
            "--read-access",
            "token",
        ],
    );
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    assert!(config.contains("read = \"token\""), "{config}");
    let alice = token_create(&data, "alice");

    let server = Server::start(&data);
    let base = server.base.clone();
    let http = Client::new(&base);
    let bearer = format!("Bearer {alice}");

    // Content: the admin also takes the registry role, logs a card and a version.
    let admin_key = data.join("keys/admin.key");
    let admin_vkey = common::read_key(&admin_key).verifier().to_string();
    let key = admin_key.to_str().unwrap();
    let with_key = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--key", key, "--json", "--token", &alice]);
        ok_json(&client_cmd(&base, &all, None))
    };
    with_key(&[
        "policy",
        "add-signer",
        "--vkey",
        &admin_vkey,
        "--role",
        "registry",
    ]);
    let card = dir.join("card.json");
    std::fs::write(
        &card,
        serde_json::json!({"model": MODEL, "training_data": "t", "intended_use": "u",
            "limitations": "l", "evaluation": [{"metric": "auc", "value": 0.9, "dataset": "d"}]})
        .to_string(),
    )
    .unwrap();
    let card = with_key(&["card", "submit", card.to_str().unwrap()]);
    let card_id = card["id"].as_str().unwrap().to_owned();
    let weights = dir.join("weights.bin");
    std::fs::write(&weights, [7u8; 4096]).unwrap();
    let version = with_key(&[
        "version",
        "register",
        "--model",
        MODEL,
        "--weights",
        weights.to_str().unwrap(),
        "--card",
        &card_id,
    ]);
    let version_hash = version["version_hash"].as_str().unwrap().to_owned();
    let size = version["index"].as_u64().unwrap() + 1;

    // 1. The matrix.
    let content = [
        format!("/tile/entries/000.p/{size}"),
        "/v1/entries/0".to_owned(),
        format!("/v1/artefacts/{card_id}"),
        format!("/v1/models/{MODEL}"),
        format!("/v1/versions/{version_hash}"),
        "/v1/policy".to_owned(),
        "/v1/tlog-proof/1".to_owned(),
    ];
    for path in &content {
        let (status, code, www) = get(&http, path, None);
        assert_eq!((status, code.as_str()), (401, "token_required"), "{path}");
        assert_eq!(www.as_deref(), Some("Bearer"), "{path}");
        let (status, _, _) = get(&http, path, Some(&bearer));
        assert_eq!(status, 200, "{path} with a token");
    }
    // Content routes that 404 here (no such model or inference) are still
    // behind the token, as is any unknown path.
    for path in [
        "/v1/inferences/req-1",
        "/v1/models/other/active",
        "/no/such/route",
        "/tile/%65ntries/000",
    ] {
        let (status, code, _) = get(&http, path, None);
        assert_eq!((status, code.as_str()), (401, "token_required"), "{path}");
        let (status, _, _) = get(&http, path, Some(&bearer));
        assert_ne!(status, 401, "{path} with a token");
    }
    let public = [
        "/checkpoint".to_owned(),
        "/checkpoint.unwitnessed".to_owned(),
        format!("/tile/0/000.p/{size}"),
        format!("/v1/proof/inclusion?index=0&size={size}"),
        format!("/v1/proof/consistency?old=1&new={size}"),
        "/healthz".to_owned(),
        "/metrics".to_owned(),
    ];
    for path in &public {
        let (status, _, _) = get(&http, path, None);
        assert_eq!(status, 200, "{path} without a token");
    }

    // 2. Bad tokens: the query string, malformed headers, unknown tokens.
    let (status, code, www) = get(&http, &format!("/v1/policy?access_token={alice}"), None);
    assert_eq!(
        (status, code.as_str(), www.as_deref()),
        (401, "token_in_query", Some("Bearer"))
    );
    let (status, code, _) = get(&http, &format!("/checkpoint?t={alice}"), None);
    assert_eq!((status, code.as_str()), (401, "token_in_query"));
    for auth in [
        format!("Basic {alice}"),
        format!("Bearer{alice}"),
        format!("Bearer {alice} x"),
        "Bearer mt_short".to_owned(),
        "Bearer ".to_owned(),
    ] {
        let (status, code, www) = get(&http, "/v1/policy", Some(&auth));
        assert_eq!((status, code.as_str()), (401, "token_malformed"), "{auth}");
        assert_eq!(www.as_deref(), Some("Bearer"));
    }
    let forged = format!("Bearer mt_{}", "A".repeat(43));
    let (status, code, _) = get(&http, "/v1/policy", Some(&forged));
    assert_eq!((status, code.as_str()), (401, "token_invalid"));

    // 4. The CLI: --token, MODELTRAIL_TOKEN, and the refusal without.
    let shown = ok_json(&client_cmd(
        &base,
        &["policy", "show", "--json", "--token", &alice],
        None,
    ));
    assert!(shown["index"].as_u64().is_some());
    let status = ok_json(&client_cmd(
        &base,
        &["status", "--model", MODEL, "--json"],
        Some(&alice),
    ));
    assert!(status.is_object(), "{status}");
    let refused = client_cmd(&base, &["status", "--model", MODEL], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("token_required"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let evidence = dir.join("evidence.json");
    let out = client_cmd(
        &base,
        &[
            "evidence",
            "--version",
            &version_hash,
            "--out",
            evidence.to_str().unwrap(),
            "--token",
            &alice,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(evidence.exists());
    // `audit` reads the entry bundles: with the token only.
    let log_vkey = common::init_vkey(&stdout, "log vkey:");
    let tlog_policy = dir.join("audit.policy");
    std::fs::write(&tlog_policy, format!("log {log_vkey}\nquorum none\n")).unwrap();
    let audit = ["audit", "--policy", tlog_policy.to_str().unwrap()];
    let out = client_cmd(&base, &audit, Some(&alice));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = client_cmd(&base, &audit, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token_required"));
    // `review` reads the entries since a saved checkpoint: with the token only.
    let since = dir.join("since.checkpoint");
    let (status, _, _) = get(&http, "/checkpoint", None);
    assert_eq!(status, 200);
    let note = http.get("/checkpoint").body;
    std::fs::write(&since, &note).unwrap();
    let review = [
        "review",
        "--since",
        since.to_str().unwrap(),
        "--policy",
        tlog_policy.to_str().unwrap(),
    ];
    let out = client_cmd(&base, &review, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token_required"));
    let out = client_cmd(&base, &review, Some(&alice));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = client_cmd(&base, &["policy", "show", "--token", "not-a-token"], None);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not-a-token"));

    // 3. Tokens on a running server: a new one works and a revoked one is
    // refused, each within a second.
    let bob = token_create(&data, "bob");
    until_status(
        &http,
        "/v1/policy",
        &format!("Bearer {bob}"),
        200,
        Duration::from_secs(1),
    );
    let out = cli(&data, &["token", "revoke", "--name", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = until_status(&http, "/v1/policy", &bearer, 401, Duration::from_secs(1));
    eprintln!("revocation took effect after {took:?}");
    let (_, code, _) = get(&http, "/v1/policy", Some(&bearer));
    assert_eq!(code, "token_invalid");
    assert_eq!(
        get(&http, "/v1/policy", Some(&format!("Bearer {bob}"))).0,
        200
    );

    // 5. `token list`, and what the token commands refuse.
    let out = cli(&data, &["token", "list"]);
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with("alice created ") && lines[0].contains(" revoked "),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("bob created ") && lines[1].ends_with(" active"),
        "{listed}"
    );
    assert!(!listed.contains("mt_"), "{listed}");
    let stored = std::fs::read_to_string(data.join("tokens")).unwrap();
    assert!(
        !stored.contains(&alice) && !stored.contains(&bob[3..]),
        "{stored}"
    );
    for (args, want) in [
        (&["token", "create", "--name", "bob"][..], "already exists"),
        (&["token", "create", "--name", "a b"][..], "is not 1-64"),
        (
            &["token", "revoke", "--name", "alice"][..],
            "already revoked",
        ),
        (
            &["token", "revoke", "--name", "carol"][..],
            "no token named",
        ),
    ] {
        let out = cli(&data, args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(want) && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }

    // A token file broken while the log runs refuses every token (fails
    // closed), and works again once fixed.
    let good = std::fs::read_to_string(data.join("tokens")).unwrap();
    std::fs::write(data.join("tokens"), "garbage\n").unwrap();
    let bob_auth = format!("Bearer {bob}");
    until_status(&http, "/v1/policy", &bob_auth, 503, Duration::from_secs(1));
    assert_eq!(
        get(&http, "/v1/policy", Some(&bob_auth)).1,
        "tokens_unavailable"
    );
    std::fs::write(data.join("tokens"), good).unwrap();
    until_status(&http, "/v1/policy", &bob_auth, 200, Duration::from_secs(1));

    // The server logged no token.
    let logged = server.stderr();
    assert!(
        !logged.contains(&alice[3..]) && !logged.contains(&bob[3..]),
        "{logged}"
    );
}

#[test]
fn a_public_log_needs_no_token_and_ignores_authorization() {
    let dir = scratch("public");
    let data = dir.join("data");
    common::init(&data, &["--origin", "public.example.test/log"]);
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    assert!(config.contains("read = \"public\""), "{config}");
    let server = Server::start(&data);
    let http = Client::new(&server.base);
    for path in ["/v1/policy", "/v1/entries/0", "/tile/entries/000.p/1"] {
        assert_eq!(get(&http, path, None).0, 200, "{path}");
        assert_eq!(get(&http, path, Some("Basic x")).0, 200, "{path}");
    }
}

#[test]
fn a_bad_token_file_stops_serve_with_its_path() {
    let dir = scratch("badfile");
    let data = dir.join("data");
    common::init(&data, &["--read-access", "token"]);
    std::fs::write(data.join("tokens"), "modeltrail tokens v1\nalice nope\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tokens") && stderr.contains("line 2"),
        "{stderr}"
    );
    let out = cli(&data, &["token", "list"]);
    assert!(!out.status.success());
    let out = Command::new(BIN)
        .args(["init", "--read-access", "secret", "--data"])
        .arg(dir.join("other"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_witness_cosigns_a_private_log_without_a_token() {
    use modeltrail::entry::{Kind, PolicyBody, SignedEntry};
    use modeltrail::tlog::policy::Policy;

    let dir = scratch("witnessed");
    let data = dir.join("log");
    let out = common::init(
        &data,
        &[
            "--origin",
            "private-witnessed.example.test/log",
            "--read-access",
            "token",
        ],
    );
    let log_vkey = common::init_vkey(&out, "log vkey:");
    let admin = common::read_key(&data.join("keys/admin.key"));
    let mut witness = common::Witness::init(&dir, "w1", &log_vkey);
    witness.start();
    let policy_text = common::witness_policy(&log_vkey, &[&witness], 1);
    let policy = Policy::parse(policy_text.as_bytes()).unwrap();
    let policy_file = dir.join("witnesses.policy");
    std::fs::write(&policy_file, &policy_text).unwrap();
    let server = Server::start_with(&data, &["--witness-policy", policy_file.to_str().unwrap()]);
    let http = Client::new(&server.base);

    // A write needs no token: the entry's signature authenticates it.
    let mut body = PolicyBody::initial(&admin.verifier()).unwrap().to_value();
    body["criteria"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"description": "d", "id": "c1"}));
    let entry = SignedEntry::sign(Kind::Policy, body, &admin).unwrap();
    let r = http.add(entry.bytes());
    assert_eq!((r.status, r.text().trim()), (200, "1"), "{}", r.text());

    // The witness, which holds no token, cosigns; the cosigned checkpoint
    // is public while the entries stay private.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get("/checkpoint");
        if r.status == 200
            && let Ok(cp) = policy.verify_checkpoint(&r.body)
            && cp.size >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no witnessed checkpoint of size 2: {} {}\n{}",
            r.status,
            r.text(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&http, "/v1/entries/1", None).0, 401);
}
