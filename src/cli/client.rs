//! Commands that talk to a running log: `policy show|add-signer|add-criterion|set`,
//! `entry sign` (offline) and `submit`.
//!
//! Each command takes only the flags it uses: commands that submit take
//! `--log <url>` (env `MODELTRAIL_LOG`), `--key <file>` (env
//! `MODELTRAIL_KEY`, a private key file) and `--json` (one JSON object with at
//! least `id` and `index`) ([`ClientFlags`]); `entry sign` works offline and
//! takes only `--key` ([`KeyFlag`]); `status` and `policy show` only read and
//! take `--log` and `--json` ([`ReadFlags`]). Any other flag is a usage error.
//! Every command that talks to a log takes `--token` (env `MODELTRAIL_TOKEN`),
//! a read token for a private log, sent as `Authorization: Bearer`.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{parse_json, read_input, stdin_path};
use crate::entry::{Kind, PolicyBody, Role, SignedEntry};
use crate::tlog::note::{SignerKey, VerifierKey};

/// Where the log is and who signs.
#[derive(Args, Clone)]
pub(super) struct ClientFlags {
    /// The log's base URL.
    #[arg(
        long = "log",
        env = "MODELTRAIL_LOG",
        default_value = "http://127.0.0.1:7480",
        global = true
    )]
    log: String,
    /// The private key file that signs submissions.
    #[arg(long = "key", env = "MODELTRAIL_KEY", global = true)]
    key: Option<PathBuf>,
    /// A read token for a private log (sent as `Authorization: Bearer`).
    #[arg(
        long = "token",
        env = "MODELTRAIL_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub(super) json: bool,
}

impl ClientFlags {
    pub(super) fn signer(&self) -> anyhow::Result<SignerKey> {
        load_signer(self.key.as_ref())
    }

    pub(super) fn client(&self) -> anyhow::Result<LogClient> {
        LogClient::new(&self.log, self.token.as_deref())
    }
}

/// Only the signing key: for commands that sign offline (`entry sign`), so
/// that their help lists no `--log` or `--json` they would ignore.
#[derive(Args, Clone)]
pub(super) struct KeyFlag {
    /// The private key file that signs.
    #[arg(long = "key", env = "MODELTRAIL_KEY", global = true)]
    key: Option<PathBuf>,
}

impl KeyFlag {
    pub(super) fn signer(&self) -> anyhow::Result<SignerKey> {
        load_signer(self.key.as_ref())
    }
}

/// Where the log is and how to print: for commands that only read
/// (`status`), so that their help lists no `--key` they would ignore.
#[derive(Args, Clone)]
pub(super) struct ReadFlags {
    /// The log's base URL.
    #[arg(
        long = "log",
        env = "MODELTRAIL_LOG",
        default_value = "http://127.0.0.1:7480"
    )]
    log: String,
    /// A read token for a private log (sent as `Authorization: Bearer`).
    #[arg(long = "token", env = "MODELTRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

impl ReadFlags {
    pub(super) fn client(&self) -> anyhow::Result<LogClient> {
        LogClient::new(&self.log, self.token.as_deref())
    }
}

fn load_signer(path: Option<&PathBuf>) -> anyhow::Result<SignerKey> {
    let path =
        path.ok_or_else(|| anyhow!("no signing key: pass --key <file> or set MODELTRAIL_KEY"))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SignerKey::parse(text.trim_end()).with_context(|| format!("key file {}", path.display()))
}

#[derive(Subcommand)]
pub(super) enum PolicyCommand {
    /// Show the policy in force.
    Show {
        #[command(flatten)]
        flags: ReadFlags,
    },
    /// Add a signer (or roles to a signer) to the policy; signed by an admin.
    AddSigner {
        /// The signer's vkey.
        #[arg(long)]
        vkey: String,
        /// A role: admin, registry, approver or serving (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        flags: ClientFlags,
    },
    /// Add an approval criterion to the policy; signed by an admin.
    AddCriterion {
        /// The criterion's ID, quoted by approvals.
        #[arg(long)]
        id: String,
        /// What the approver attests.
        #[arg(long)]
        description: String,
        #[command(flatten)]
        flags: ClientFlags,
    },
    /// Change policy settings; signed by an admin.
    Set {
        /// Distinct approvals a version needs before activation.
        #[arg(long)]
        approvals_required: u32,
        #[command(flatten)]
        flags: ClientFlags,
    },
}

#[derive(Args)]
pub(super) struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

impl PolicyArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let (flags, edit): (_, fn(&mut Value, &PolicyCommand) -> anyhow::Result<()>) =
            match &self.command {
                PolicyCommand::Show { flags } => {
                    let (index, body) = flags.client()?.current_policy()?;
                    if flags.json {
                        println!("{}", json!({ "index": index, "policy": body }));
                    } else {
                        print_policy(index, &PolicyBody::parse(&body)?);
                    }
                    return Ok(());
                }
                PolicyCommand::AddSigner { flags, .. } => (flags, add_signer),
                PolicyCommand::AddCriterion { flags, .. } => (flags, add_criterion),
                PolicyCommand::Set { flags, .. } => (flags, set_settings),
            };
        let client = flags.client()?;
        let (_, mut body) = client.current_policy()?;
        edit(&mut body, &self.command)?;
        PolicyBody::parse(&body).context("the edited policy is invalid")?;
        let entry = SignedEntry::sign(Kind::Policy, body, &flags.signer()?)?;
        let index = client.submit(&entry)?;
        report(flags, &entry, index);
        Ok(())
    }
}

fn add_signer(body: &mut Value, command: &PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::AddSigner { vkey, roles, .. } = command else {
        unreachable!("add_signer is only chosen for add-signer")
    };
    VerifierKey::parse(vkey).with_context(|| format!("--vkey {vkey}"))?;
    for role in roles {
        serde_json::from_value::<Role>(json!(role)).map_err(|_| {
            anyhow!("unknown role {role:?}: want admin, registry, approver or serving")
        })?;
    }
    let signers = body["signers"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("the policy in force has no signers list"))?;
    let existing = signers.iter_mut().find(|s| s["vkey"] == json!(vkey));
    match existing {
        Some(signer) => {
            let have = signer["roles"]
                .as_array_mut()
                .ok_or_else(|| anyhow!("a signer has no roles"))?;
            for role in roles {
                if !have.contains(&json!(role)) {
                    have.push(json!(role));
                }
            }
        }
        None => signers.push(json!({ "roles": roles, "vkey": vkey })),
    }
    Ok(())
}

fn add_criterion(body: &mut Value, command: &PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::AddCriterion {
        id, description, ..
    } = command
    else {
        unreachable!("add_criterion is only chosen for add-criterion")
    };
    let criteria = body["criteria"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("the policy in force has no criteria list"))?;
    if criteria.iter().any(|c| c["id"] == json!(id)) {
        bail!("the policy already has a criterion {id:?}");
    }
    criteria.push(json!({ "description": description, "id": id }));
    Ok(())
}

fn set_settings(body: &mut Value, command: &PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::Set {
        approvals_required, ..
    } = command
    else {
        unreachable!("set_settings is only chosen for set")
    };
    body["approvals_required"] = json!(approvals_required);
    Ok(())
}

fn print_policy(index: u64, policy: &PolicyBody) {
    println!("policy in force: entry {index}");
    println!("approvals required: {}", policy.approvals_required());
    println!("criteria:");
    for c in policy.criteria() {
        println!("  {}: {}", c.id, c.description);
    }
    println!("signers:");
    for s in policy.signers() {
        let roles: Vec<&str> = s.roles().iter().map(|r| r.as_str()).collect();
        println!("  {} ({})", s.vkey(), roles.join(", "));
    }
}

#[derive(Subcommand)]
pub(super) enum EntryCommand {
    /// Sign a body as an entry of a kind and print the entry (canonical JSON,
    /// no trailing newline: exactly the bytes to submit).
    Sign {
        /// The kind: policy, model_card, model_version, approval, transition, inference.
        #[arg(long)]
        kind: String,
        /// The body, a JSON object (`-` for standard input).
        #[arg(long, default_value_os_t = stdin_path())]
        body: PathBuf,
    },
}

#[derive(Args)]
pub(super) struct EntryArgs {
    #[command(subcommand)]
    command: EntryCommand,
    #[command(flatten)]
    flags: KeyFlag,
}

impl EntryArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let EntryCommand::Sign { kind, body } = self.command;
        let kind = Kind::parse(&kind)?;
        let body = parse_json(&read_input(&body)?).context("the body is not JSON")?;
        let entry = SignedEntry::sign(kind, body, &self.flags.signer()?)?;
        use std::io::Write as _;
        std::io::stdout().write_all(entry.bytes())?;
        Ok(())
    }
}

#[derive(Args)]
pub(super) struct SubmitArgs {
    /// The signed entry file (`-` for standard input), exactly as signed.
    #[arg(default_value_os_t = stdin_path())]
    entry: PathBuf,
    #[command(flatten)]
    flags: ClientFlags,
}

impl SubmitArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let bytes = read_input(&self.entry)?;
        let entry = SignedEntry::parse(&bytes).context("not a valid signed entry")?;
        let (index, warnings) = self.flags.client()?.submit_warned(&entry)?;
        if self.flags.json {
            println!(
                "{}",
                json!({ "id": entry.id().to_string(), "index": index, "warnings": warnings })
            );
        } else {
            report(&self.flags, &entry, index);
            for w in &warnings {
                eprintln!("modeltrail: warning: {w}");
            }
        }
        Ok(())
    }
}

fn report(flags: &ClientFlags, entry: &SignedEntry, index: u64) {
    if flags.json {
        println!(
            "{}",
            json!({ "id": entry.id().to_string(), "index": index })
        );
    } else {
        println!("logged {} at index {index}", entry.id());
    }
}

/// A blocking client of one log's HTTP API.
pub(crate) struct LogClient {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl LogClient {
    /// A client of the log at `base` (e.g. `http://127.0.0.1:7480`), sending
    /// `token` (if any) as `Authorization: Bearer` on every request.
    pub(crate) fn new(base: &str, token: Option<&str>) -> anyhow::Result<LogClient> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let token = token.trim();
            if !crate::log::access::well_formed(token) {
                bail!(
                    "--token / MODELTRAIL_TOKEN is not a modeltrail token (mt_ and 43 base64url characters)"
                );
            }
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("--token")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(LogClient {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .context("building the HTTP client")?,
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(|t| t.trim().to_owned()),
        })
    }

    /// Another client of the same log with the same token.
    pub(crate) fn again(&self) -> anyhow::Result<LogClient> {
        LogClient::new(&self.base, self.token.as_deref())
    }

    /// GETs `path` and returns the body of a 2xx answer.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        self.runtime
            .block_on(async { answer(self.send_get(path).await?).await })
    }

    /// GETs `path`: the body of a 2xx answer, `None` for 404.
    pub(crate) fn get_optional(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.runtime.block_on(async {
            let response = self.send_get(path).await?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            answer(response).await.map(Some)
        })
    }

    async fn send_get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        self.http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))
    }

    /// GETs `path` and parses the JSON answer.
    pub(crate) fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let body = self.get(path)?;
        serde_json::from_slice(&body).with_context(|| format!("the answer to {path} is not JSON"))
    }

    /// POSTs an entry to `/add` and returns its index once durable.
    pub(crate) fn submit(&self, entry: &SignedEntry) -> anyhow::Result<u64> {
        self.submit_warned(entry).map(|(index, _)| index)
    }

    /// [`LogClient::submit`], with the warnings the log flagged the entry
    /// with (its `Modeltrail-Warning` headers).
    pub(crate) fn submit_warned(&self, entry: &SignedEntry) -> anyhow::Result<(u64, Vec<String>)> {
        let url = format!("{}/add", self.base);
        let (body, warnings) = self.runtime.block_on(async {
            let response = self
                .http
                .post(&url)
                .body(entry.bytes().to_vec())
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            let warnings: Vec<String> = response
                .headers()
                .get_all("modeltrail-warning")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            answer(response).await.map(|body| (body, warnings))
        })?;
        let text = String::from_utf8_lossy(&body);
        let index = text
            .trim()
            .parse()
            .with_context(|| format!("the log answered {text:?}, not an index"))?;
        Ok((index, warnings))
    }

    /// POSTs entries to `/v1/entries` as NDJSON and returns each entry's
    /// result object, in order.
    pub(crate) fn submit_batch(&self, entries: &[SignedEntry]) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/v1/entries", self.base);
        let mut body = Vec::new();
        for e in entries {
            body.extend_from_slice(e.bytes());
            body.push(b'\n');
        }
        let answer = self.runtime.block_on(async {
            let response = self
                .http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            answer(response).await
        })?;
        let answer: Value = serde_json::from_slice(&answer)?;
        answer["results"]
            .as_array()
            .cloned()
            .ok_or_else(|| anyhow!("the log's answer has no results"))
    }

    /// The policy in force: its leaf index and body.
    fn current_policy(&self) -> anyhow::Result<(u64, Value)> {
        let answer = parse_json(&self.get("/v1/policy")?).context("the answer to /v1/policy")?;
        let index = answer["index"]
            .as_u64()
            .ok_or_else(|| anyhow!("/v1/policy has no index"))?;
        Ok((index, answer["entry"]["body"].clone()))
    }
}

/// The body of a 2xx answer, or the log's error as a one-line reason.
async fn answer(response: reqwest::Response) -> anyhow::Result<Vec<u8>> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .context("reading the answer")?
        .to_vec();
    if status.is_success() {
        return Ok(body);
    }
    let detail: Option<(String, String)> =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            Some((
                v["error"]["code"].as_str()?.to_owned(),
                v["error"]["message"].as_str()?.to_owned(),
            ))
        });
    match detail {
        Some((code, message)) => bail!("the log refused ({status}, {code}): {message}"),
        None => bail!(
            "the log answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ),
    }
}
