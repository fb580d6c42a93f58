//! The governance chain from the command line, one command per actor:
//! `card submit`, `version register`, `approve`, `activate`,
//! `rollback`, `inference log`, `status`.
//!
//! Every command builds a typed body, validates it, signs it with `--key`
//! and submits it to `--log`; `--json` prints one object with at least `id`
//! and `index` (plus `version_hash` for `version register` and `warnings`
//! for `inference log`). Input and output commitments of inferences are
//! computed here: raw data never leaves the machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::{ClientFlags, LogClient, ReadFlags};
use super::hash::hash_weights;
use super::openings;
use super::{parse_json, read_input};
use crate::entry::{
    Approval, ArtefactId, Commitment, ContentHash, CriterionResult, Decision, Inference, Kind,
    ModelCard, ModelName, ModelVersion, RequestId, Side, SignedEntry, Timestamp, Transition,
};

/// `modeltrail card submit <card.json>`.
#[derive(Args)]
pub(super) struct CardArgs {
    #[command(subcommand)]
    command: CardCommand,
    #[command(flatten)]
    flags: ClientFlags,
}

#[derive(Subcommand)]
enum CardCommand {
    /// Log a model card (signed by a registry key).
    Submit {
        /// The card: `model`, `training_data`, `evaluation` ([{metric, value,
        /// dataset}]), `intended_use`, `limitations`; other fields go under
        /// `extensions`.
        card: PathBuf,
    },
}

/// The fields a card body has; anything else in a card file is moved under
/// `extensions`.
const CARD_FIELDS: [&str; 7] = [
    "model",
    "training_data",
    "evaluation",
    "intended_use",
    "limitations",
    "documents",
    "extensions",
];

impl CardArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let CardCommand::Submit { card } = self.command;
        let file = parse_json(&read_input(&card)?).context("the card file is not JSON")?;
        let Value::Object(mut fields) = file else {
            bail!("the card file must be a JSON object");
        };
        let mut extensions: Map<String, Value> = match fields.remove("extensions") {
            Some(Value::Object(ext)) => ext,
            Some(_) => bail!("extensions must be an object"),
            None => Map::new(),
        };
        let extra: Vec<String> = fields
            .keys()
            .filter(|k| !CARD_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in extra {
            extensions.insert(key.clone(), fields.remove(&key).expect("listed above"));
        }
        if !extensions.is_empty() {
            fields.insert("extensions".into(), Value::Object(extensions));
        }
        let body = ModelCard::parse(&Value::Object(fields)).context("invalid card")?;
        submit(&self.flags, Kind::ModelCard, body.to_value(), json!({}))
    }
}

/// `modeltrail version register`.
#[derive(Args)]
pub(super) struct VersionArgs {
    #[command(subcommand)]
    command: VersionCommand,
    #[command(flatten)]
    flags: ClientFlags,
}

#[derive(Subcommand)]
enum VersionCommand {
    /// Hash the weights and log the version (signed by a registry key).
    Register {
        /// The model.
        #[arg(long)]
        model: String,
        /// The weights: a file or a directory.
        #[arg(long)]
        weights: PathBuf,
        /// The model card's artefact ID (`b3:…`).
        #[arg(long)]
        card: String,
        /// A registry reference, e.g. `models:/fraud-detector/3`.
        #[arg(long)]
        registry_ref: Option<String>,
        /// The git commit the weights were trained from.
        #[arg(long)]
        git_sha: Option<String>,
    },
}

impl VersionArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let VersionCommand::Register {
            model,
            weights,
            card,
            registry_ref,
            git_sha,
        } = self.command;
        let manifest = hash_weights(&weights)?;
        let version_hash = manifest.version_hash();
        let mut body = json!({
            "model": model,
            "version_hash": version_hash.to_string(),
            "card": card,
        });
        if let Some(r) = registry_ref {
            body["registry_ref"] = json!(r);
        }
        if let Some(g) = git_sha {
            body["git_sha"] = json!(g);
        }
        let body = ModelVersion::parse(&body).context("invalid version")?;
        submit(
            &self.flags,
            Kind::ModelVersion,
            body.to_value(),
            json!({ "version_hash": version_hash.to_string() }),
        )
    }
}

/// `modeltrail approve`.
#[derive(Args)]
pub(super) struct ApproveArgs {
    /// The version hash approved (or rejected).
    #[arg(long)]
    version: String,
    /// The result of every criterion of the policy in force:
    /// `{"<criterion id>": {"met": true|false, "note": "..."}}`.
    #[arg(long)]
    criteria: PathBuf,
    /// Reject instead of approve.
    #[arg(long)]
    reject: bool,
    /// A comment for the record.
    #[arg(long, default_value = "")]
    comment: String,
    #[command(flatten)]
    flags: ClientFlags,
}

impl ApproveArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let client = self.flags.client()?;
        let policy: Value = serde_json::from_slice(&client.get("/v1/policy")?)?;
        let policy_id = policy["id"]
            .as_str()
            .ok_or_else(|| anyhow!("/v1/policy has no id"))?;
        let criteria: BTreeMap<String, CriterionResult> = parse_json(&read_input(&self.criteria)?)
            .and_then(|v| Ok(serde_json::from_value(v)?))
            .context(
                "the criteria file must map criterion ids to {\"met\": bool, \"note\": \"...\"}",
            )?;
        let body = Approval {
            version_hash: ContentHash::parse(&self.version)?,
            policy: ArtefactId::parse(policy_id).map_err(|e| anyhow!("policy id: {e}"))?,
            criteria,
            decision: if self.reject {
                Decision::Reject
            } else {
                Decision::Approve
            },
            comment: self.comment,
            extensions: None,
        };
        body.validate()?;
        submit(&self.flags, Kind::Approval, body.to_value(), json!({}))
    }
}

/// `modeltrail activate` and `modeltrail rollback`.
#[derive(Args)]
pub(super) struct TransitionArgs {
    /// The model.
    #[arg(long)]
    model: String,
    /// The version to make active (`activate --version`, `rollback --to`).
    #[arg(long, alias = "to")]
    version: String,
    /// Why.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    flags: ClientFlags,
}

impl TransitionArgs {
    /// Activates `--version`, replacing whatever is active now.
    pub(super) fn activate(self) -> anyhow::Result<()> {
        self.transition(false)
    }

    /// Reactivates an earlier version (one that was active before).
    pub(super) fn rollback(self) -> anyhow::Result<()> {
        self.transition(true)
    }

    fn transition(self, rollback: bool) -> anyhow::Result<()> {
        let client = self.flags.client()?;
        let status = model_status(&client, &self.model)?;
        let to = ContentHash::parse(&self.version)?;
        if rollback {
            let earlier = status["history"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["body"]["to"] == json!(to.to_string()));
            if !earlier {
                bail!(
                    "{to} was never active for {:?}: a rollback returns to an earlier version (use activate)",
                    self.model
                );
            }
        }
        let from = match status["active"].as_str() {
            Some(active) => Some(ContentHash::parse(active)?),
            None => None,
        };
        let body = Transition {
            model: ModelName::parse(&self.model)?,
            from,
            to,
            at: now(),
            reason: self.reason,
            extensions: None,
        };
        body.validate()?;
        submit(&self.flags, Kind::Transition, body.to_value(), json!({}))
    }
}

/// `modeltrail inference log`.
#[derive(Args)]
pub(super) struct InferenceArgs {
    #[command(subcommand)]
    command: InferenceCommand,
    #[command(flatten)]
    flags: ClientFlags,
}

#[derive(Subcommand)]
enum InferenceCommand {
    /// Log inferences served (signed by a serving key). Commitments are
    /// BLAKE3 of the input and output files, computed locally.
    Log(InferenceLogArgs),
}

#[derive(Args)]
struct InferenceLogArgs {
    /// The model.
    #[arg(long, required_unless_present = "batch")]
    model: Option<String>,
    /// The version hash that served the request.
    #[arg(long, required_unless_present = "batch")]
    version: Option<String>,
    /// The request's ID.
    #[arg(long, required_unless_present = "batch")]
    request_id: Option<String>,
    /// The request's input (committed to here with a hiding commitment;
    /// never sent).
    #[arg(long, required_unless_present = "batch")]
    input: Option<PathBuf>,
    /// The response (committed to here with a hiding commitment; never
    /// sent).
    #[arg(long, required_unless_present = "batch")]
    output: Option<PathBuf>,
    /// When it was served (RFC 3339 UTC with milliseconds; default now).
    #[arg(long)]
    served_at: Option<String>,
    /// A JSON Lines file, one inference per line: `{"model", "version",
    /// "request_id", "input", "output"[, "served_at"]}` with `input` and
    /// `output` file paths, or `input_commitment`/`output_commitment` hashes.
    #[arg(long, conflicts_with_all = ["model", "version", "request_id", "input", "output"])]
    batch: Option<PathBuf>,
    /// Where the openings of the hiding commitments go (one record per
    /// request ID, written before the entry is submitted; created mode 0700).
    #[arg(long, default_value = openings::DEFAULT_DIR)]
    openings: PathBuf,
}

impl InferenceArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let InferenceCommand::Log(a) = self.command;
        let key = self.flags.signer()?;
        let client = self.flags.client()?;
        let Some(batch) = a.batch else {
            let served_at = match &a.served_at {
                Some(t) => Timestamp::parse(t)?,
                None => now(),
            };
            let model = ModelName::parse(a.model.as_deref().unwrap_or_default())?;
            let version_hash = ContentHash::parse(a.version.as_deref().unwrap_or_default())?;
            let request_id = RequestId::parse(a.request_id.as_deref().unwrap_or_default())?;
            let input = read_input(a.input.as_deref().expect("required by clap"))?;
            let output = read_input(a.output.as_deref().expect("required by clap"))?;
            let record = openings::openings_for(&a.openings, &request_id)?;
            let body = Inference {
                model,
                version_hash,
                request_id,
                served_at,
                input_commitment: Commitment::hiding(&record.input, Side::Input, &input),
                output_commitment: Commitment::hiding(&record.output, Side::Output, &output),
                extensions: None,
            };
            let entry = SignedEntry::sign(Kind::Inference, body.to_value(), &key)?;
            let results = client.submit_batch(std::slice::from_ref(&entry))?;
            return print_results(&self.flags, &results);
        };
        let text = String::from_utf8(read_input(&batch)?).context("the batch file is not UTF-8")?;
        let mut entries = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let body = batch_line(line, &a.openings)
                .with_context(|| format!("{} line {}", batch.display(), n + 1))?;
            entries.push(SignedEntry::sign(Kind::Inference, body.to_value(), &key)?);
        }
        let results = client.submit_batch(&entries)?;
        print_results(&self.flags, &results)
    }
}

/// One line of an inference batch file.
/// Files are committed to with hiding commitments whose openings go to
/// `openings` (durably, before anything is submitted); commitments given
/// as such are taken as they are.
fn batch_line(line: &str, openings: &Path) -> anyhow::Result<Inference> {
    let v = parse_json(line.as_bytes())?;
    let text = |field: &str| {
        v[field]
            .as_str()
            .ok_or_else(|| anyhow!("missing {field:?}"))
    };
    let request_id = RequestId::parse(text("request_id")?)?;
    let mut record = None;
    let mut hash_or_file = |commitment: &str, side: Side| -> anyhow::Result<Commitment> {
        let file = side.as_str();
        match (v[commitment].as_str(), v[file].as_str()) {
            (Some(h), _) => Ok(Commitment::parse(h)?),
            (None, Some(path)) => {
                let bytes = read_input(Path::new(path))?;
                let record = match &record {
                    Some(r) => r,
                    None => record.insert(openings::openings_for(openings, &request_id)?),
                };
                Ok(Commitment::hiding(record.opening(side), side, &bytes))
            }
            (None, None) => {
                bail!("needs {file:?} (a file) or {commitment:?} (a c1: or b3: commitment)")
            }
        }
    };
    let input_commitment = hash_or_file("input_commitment", Side::Input)?;
    let output_commitment = hash_or_file("output_commitment", Side::Output)?;
    let served_at = match v["served_at"].as_str() {
        Some(t) => Timestamp::parse(t)?,
        None => now(),
    };
    let body = Inference {
        model: ModelName::parse(text("model")?)?,
        version_hash: ContentHash::parse(text("version").or_else(|_| text("version_hash"))?)?,
        request_id,
        served_at,
        input_commitment,
        output_commitment,
        extensions: None,
    };
    body.validate()?;
    Ok(body)
}

fn print_results(flags: &ClientFlags, results: &[Value]) -> anyhow::Result<()> {
    let mut failed = 0;
    for r in results {
        if let Some(err) = r.get("error") {
            failed += 1;
            eprintln!("modeltrail: refused ({}): {}", err["code"], err["message"]);
            continue;
        }
        if flags.json {
            println!("{r}");
        } else {
            println!(
                "logged {} at index {}",
                r["id"].as_str().unwrap_or("?"),
                r["index"]
            );
            for w in r["warnings"].as_array().into_iter().flatten() {
                println!("  warning: {}", w.as_str().unwrap_or_default());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} inferences were refused", results.len());
    }
    Ok(())
}

/// `modeltrail status --model <m>`.
#[derive(Args)]
pub(super) struct StatusArgs {
    /// The model.
    #[arg(long)]
    model: String,
    #[command(flatten)]
    flags: ReadFlags,
}

impl StatusArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let client = self.flags.client()?;
        let status = model_status(&client, &self.model)?;
        if self.flags.json {
            let history: Vec<Value> = status["history"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    json!({
                        "index": t["index"], "id": t["id"], "from": t["body"]["from"],
                        "to": t["body"]["to"], "at": t["body"]["at"], "reason": t["body"]["reason"],
                        "signer": t["signer"],
                    })
                })
                .collect();
            println!(
                "{}",
                json!({ "model": self.model, "active": status["active"], "history": history })
            );
            return Ok(());
        }
        println!("model:  {}", self.model);
        println!("active: {}", status["active"].as_str().unwrap_or("none"));
        for t in status["history"].as_array().into_iter().flatten() {
            println!(
                "  entry {}: {} -> {} at {} by {}: {}",
                t["index"],
                t["body"]["from"].as_str().unwrap_or("none"),
                t["body"]["to"].as_str().unwrap_or("?"),
                t["body"]["at"].as_str().unwrap_or("?"),
                t["signer"].as_str().unwrap_or("?"),
                t["body"]["reason"].as_str().unwrap_or("")
            );
        }
        Ok(())
    }
}

fn model_status(client: &LogClient, model: &str) -> anyhow::Result<Value> {
    let path = format!("/v1/models/{}", super::fetch::encode(model));
    Ok(serde_json::from_slice(&client.get(&path)?)?)
}

/// Signs and submits one entry, then reports it.
fn submit(flags: &ClientFlags, kind: Kind, body: Value, extra: Value) -> anyhow::Result<()> {
    let entry = SignedEntry::sign(kind, body, &flags.signer()?)?;
    let index = flags.client()?.submit(&entry)?;
    if flags.json {
        let mut out = json!({ "id": entry.id().to_string(), "index": index });
        if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
            out.extend(extra);
        }
        println!("{out}");
    } else {
        println!("logged {} at index {index}", entry.id());
        if let Some(v) = extra.get("version_hash") {
            println!("version hash: {}", v.as_str().unwrap_or_default());
        }
    }
    Ok(())
}

/// Now, to the millisecond.
fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp::from_unix_millis(ms).unwrap_or(Timestamp::MAX)
}
