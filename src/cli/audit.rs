//! `modeltrail verify` (an evidence file, offline) and `modeltrail audit`
//! (the whole chain, from a tiles directory or a log's URL).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{read_input, read_input_limited};
use crate::audit::evidence::{Evidence, MAX_EVIDENCE_BYTES, Query, Role};
use crate::audit::scan::{self, AuditOptions, BundleSource, Report};
use crate::audit::verify::verify;
use crate::entry::{Body, Side, SignedEntry};
use crate::tlog::policy::{MAX_POLICY_BYTES, Policy};
use crate::tlog::tile::Tile;

/// Reads and parses a c2sp.org/tlog-policy file.
pub(super) fn read_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = read_input_limited(path, MAX_POLICY_BYTES, "policy file")?;
    Policy::parse(&text).with_context(|| format!("policy file {}", path.display()))
}

/// `modeltrail verify <evidence> --policy <file>`.
#[derive(Args)]
pub(super) struct VerifyArgs {
    /// The evidence file (`modeltrail evidence` writes it).
    evidence: PathBuf,
    /// The c2sp.org/tlog-policy naming the log's key and the witnesses you trust.
    #[arg(long)]
    policy: PathBuf,
    /// Check this raw request input against the inference's input
    /// commitment, using the opening in the evidence.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Check this raw response against the inference's output commitment.
    #[arg(long)]
    output: Option<PathBuf>,
}

impl VerifyArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let policy = read_policy(&self.policy)?;
        let text = read_input_limited(&self.evidence, MAX_EVIDENCE_BYTES, "evidence file")?;
        let evidence = Evidence::parse(&text)
            .with_context(|| format!("evidence file {}", self.evidence.display()))?;
        let answer = verify(&evidence, &policy).context("the evidence does not verify")?;
        println!(
            "Verified against checkpoint {} of size {} (root {}).",
            answer.checkpoint.origin,
            answer.checkpoint.size,
            answer.checkpoint.root.to_base64()
        );
        print!("{}", answer.text);
        for (side, path) in [(Side::Input, &self.input), (Side::Output, &self.output)] {
            if let Some(path) = path {
                let bytes = read_input(path)?;
                open_commitment(&evidence, side, &bytes)
                    .with_context(|| format!("--{side} {}", path.display()))?;
                println!(
                    "The {side} {} matches the inference's {side} commitment.",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// Checks `bytes` against the verified evidence's inference commitment on
/// `side`, with the evidence's opening for a hiding commitment.
fn open_commitment(evidence: &Evidence, side: Side, bytes: &[u8]) -> anyhow::Result<()> {
    let Query::Inference(rid) = &evidence.query else {
        bail!("the evidence does not answer an inference query, so it has no commitments");
    };
    let item = evidence
        .items
        .iter()
        .find(|i| i.role == Role::Inference)
        .ok_or_else(|| anyhow!("the evidence holds no inference"))?;
    let Body::Inference(inference) = SignedEntry::parse(&item.entry)?.typed_body()? else {
        bail!("the evidence's inference entry is not an inference");
    };
    let commitment = match side {
        Side::Input => inference.input_commitment,
        Side::Output => inference.output_commitment,
    };
    let opening = match (&evidence.opening, commitment.is_hiding()) {
        (_, false) => None,
        (None, true) => {
            bail!("the evidence file has no opening (make it with evidence --openings)")
        }
        (Some(record), true) => {
            if record.request_id != *rid || record.request_id != inference.request_id {
                bail!(
                    "the evidence's opening is for request {:?}, not {:?}",
                    record.request_id.as_str(),
                    inference.request_id.as_str()
                );
            }
            Some(record.opening(side))
        }
    };
    if !commitment.opens(opening, side, bytes) {
        bail!("does not match the inference's {side} commitment {commitment}");
    }
    Ok(())
}

/// `modeltrail audit --log <url-or-dir> --policy <file>`.
#[derive(Args)]
pub(super) struct AuditArgs {
    /// The log: its URL, or a local tlog-tiles directory (or a data
    /// directory holding one in `tiles/`).
    #[arg(long)]
    log: String,
    /// A read token for a private log (sent as `Authorization: Bearer`).
    #[cfg(feature = "server")]
    #[arg(long = "token", env = "MODELTRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The c2sp.org/tlog-policy the checkpoint must satisfy.
    #[arg(long)]
    policy: PathBuf,
    /// Audit up to this checkpoint file instead of the log's own
    /// (`checkpoint.witnessed` when present, else `checkpoint`; for a URL,
    /// `GET /checkpoint`).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Skip what the log checked when it admitted each inference (its
    /// signature and canonical encoding); inferences stay authenticated by
    /// the tree, schema- and role-checked and replayed. Governance entries
    /// always get every check. See README "For auditors".
    #[arg(long)]
    fast: bool,
    /// Findings listed in full; more are only counted.
    #[arg(long, default_value_t = 1000)]
    max_findings: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

impl AuditArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let policy = read_policy(&self.policy)?;
        #[cfg(feature = "server")]
        let token = self.token.as_deref();
        #[cfg(not(feature = "server"))]
        let token = None;
        let (mut source, note) = open_source(&self.log, token, self.checkpoint.as_deref())?;
        let checkpoint = policy
            .verify_checkpoint(&note)
            .context("the checkpoint does not satisfy the policy")?;
        let bar = progress_bar(checkpoint.size)?;
        let options = AuditOptions {
            verify_all_signatures: !self.fast,
            max_findings: self.max_findings,
        };
        let report = scan::audit(&mut *source, &checkpoint, options, &mut |done| {
            bar.set_position(done)
        });
        bar.finish_and_clear();
        let report = report?;
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_summary(&report);
        }
        if !report.clean() {
            bail!(
                "the chain is broken: {} finding(s) in {} entries",
                report.findings_total,
                report.size
            );
        }
        Ok(())
    }
}

/// The entry-bundle source and the checkpoint note for `--log`.
fn open_source(
    log: &str,
    token: Option<&str>,
    checkpoint: Option<&Path>,
) -> anyhow::Result<(Box<dyn BundleSource + Send>, Vec<u8>)> {
    let given = checkpoint.map(read_input).transpose()?;
    if log.starts_with("http://") || log.starts_with("https://") {
        return http_source(log, token, given);
    }
    let mut root = PathBuf::from(log);
    if !root.join("checkpoint").exists() && root.join("tiles").join("checkpoint").exists() {
        root = root.join("tiles");
    }
    let note = match given {
        Some(note) => note,
        None => {
            let witnessed = root.join("checkpoint.witnessed");
            let file = if witnessed.exists() {
                witnessed
            } else {
                root.join("checkpoint")
            };
            std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
        }
    };
    Ok((Box::new(DirSource { root }), note))
}

#[cfg(feature = "server")]
fn http_source(
    log: &str,
    token: Option<&str>,
    given: Option<Vec<u8>>,
) -> anyhow::Result<(Box<dyn BundleSource + Send>, Vec<u8>)> {
    let client = super::client::LogClient::new(log, token)?;
    let note = match given {
        Some(note) => note,
        None => client.get("/checkpoint")?,
    };
    Ok((Box::new(super::fetch::HttpSource(client)), note))
}

#[cfg(not(feature = "server"))]
fn http_source(
    _log: &str,
    _token: Option<&str>,
    _given: Option<Vec<u8>>,
) -> anyhow::Result<(Box<dyn BundleSource + Send>, Vec<u8>)> {
    Err(anyhow::anyhow!(
        "reading a log over HTTP needs modeltrail built with the server feature; audit a local tiles directory instead"
    ))
}

/// A local tlog-tiles directory.
struct DirSource {
    root: PathBuf,
}

impl BundleSource for DirSource {
    fn read(&mut self, tile: &Tile) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(self.root.join(tile.path())) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A bar of entries audited, on a terminal only.
fn progress_bar(total: u64) -> anyhow::Result<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return Ok(ProgressBar::hidden());
    }
    Ok(
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{wide_bar} {human_pos}/{human_len} entries {per_sec} ETA {eta}",
            )?,
        ),
    )
}

fn print_summary(report: &Report) {
    println!(
        "Audited {} entries of {} against its checkpoint (root {}): every entry hashes to it.",
        report.size, report.origin, report.root
    );
    let kinds: Vec<String> = report
        .entries
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!("Entries: {}.", kinds.join(", "));
    println!(
        "Signatures verified: {} ({}).",
        report.signatures_verified,
        if report.signatures == "all" {
            "every entry"
        } else {
            "governance entries only; inferences read without signature and encoding checks (--fast)"
        }
    );
    let plain = report.plain_commitments;
    if let Some(first) = plain.first {
        println!(
            "Warning: {} inference(s) carry plain b3: commitments, not hiding ones (first at entry {first}): anyone who can read the log can confirm a guess of their input or output.",
            plain.count
        );
    }
    if report.clean() {
        println!("The chain is unbroken.");
        return;
    }
    println!("The chain is broken: {} finding(s).", report.findings_total);
    for (code, n) in &report.finding_counts {
        println!("  {code}: {n}");
    }
    for f in &report.findings {
        println!(
            "  entry {} ({}): {}: {}",
            f.index,
            f.kind.unwrap_or("invalid"),
            f.code,
            f.message
        );
    }
    if report.findings_total > report.findings.len() as u64 {
        println!(
            "  … and {} more (raise --max-findings)",
            report.findings_total - report.findings.len() as u64
        );
    }
}
