//! `modeltrail bench`: a load generator for a log's public HTTP API.
//!
//! Writers POST pre-signed, distinct entries (`POST /add`, or NDJSON batches
//! to `POST /v1/entries`) at a target rate or flat out; readers fetch the
//! checkpoint, tiles and entry bundles (c2sp.org/tlog-tiles) and verify an
//! inclusion proof for a random acknowledged entry against the checkpoint.
//! Only public endpoints are used, so `--raw` (arbitrary distinct payloads,
//! no modeltrail signing) drives any log with `POST /add` and tlog-tiles.
//!
//! Entries are signed before the clock starts, so signing is not measured; a
//! flat-out `--duration` run signs only what it could send (40,000 a second
//! of the run, at most 500,000). A log that refuses connections (down or
//! restarting) is retried with the same entries after a doubling wait (50 ms
//! to 2 s), counted as `unreachable`, and given up on after 30 s: no entry is
//! burnt on a connection that never carried it. Signed runs log inferences of
//! made-up versions, so `audit` of that log reports them `unknown_version`;
//! bench says so on stderr.
//! Integration latency is the time from sending a request to receiving its
//! index (a modeltrail log answers only once the entry is durable and in a
//! published checkpoint); a batch's latency counts for each of its entries.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::entry::canonical::to_canonical;
use crate::entry::{ENTRY_CONTEXT, Kind, PolicyBody, SignedEntry};
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::hash::ReadError;
use crate::tlog::note::{KeyType, Note, SignerKey, VerifierKey};
use crate::tlog::proof::{prove_inclusion, verify_inclusion};
use crate::tlog::tile::{
    Tile, TileHashReader, TileKind, TileReader, encode_bundle, entry_bundle_for, parse_bundle,
};

/// Most bytes of pre-signed entries held for one run.
const MAX_POOL_BYTES: usize = 512 << 20;
/// Most entries pre-signed for a flat-out `--duration` run without
/// `--presign`.
const DEFAULT_PRESIGN: usize = 500_000;
/// Entries per second no log on this hardware class reaches (the batched
/// figure is about 30k/s): a flat-out `--duration` run pre-signs this many
/// per second of the run, up to [`DEFAULT_PRESIGN`], so a short run does not
/// wait half a minute signing entries it cannot send.
const RATE_CEILING: f64 = 40_000.0;
/// First wait before retrying a log that refused the connection; doubled
/// on each refusal up to [`UNREACHABLE_MAX_WAIT`].
const UNREACHABLE_FIRST_WAIT: Duration = Duration::from_millis(50);
const UNREACHABLE_MAX_WAIT: Duration = Duration::from_secs(2);
/// A writer that could not connect for this long gives up (its entries are
/// reported as the write error `unreachable: gave up`) instead of waiting for
/// ever.
const UNREACHABLE_GIVE_UP: Duration = Duration::from_secs(30);

#[derive(Args)]
pub(super) struct BenchArgs {
    /// Base URL of the log, e.g. `http://127.0.0.1:7480`.
    #[arg(long)]
    url: String,
    /// A read token for a private log (sent as `Authorization: Bearer`).
    #[arg(long = "token", env = "MODELTRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Private key file of a signer with the `serving` role (signs inference entries).
    #[arg(long, conflicts_with_all = ["admin_key", "raw"])]
    key: Option<PathBuf>,
    /// Private key file of a policy admin: first log a policy update adding a
    /// fresh `serving` key, then sign with it. Finds the policy in force by
    /// scanning entry bundles backwards from the end for the last `policy` entry.
    #[arg(long, conflicts_with = "raw")]
    admin_key: Option<PathBuf>,
    /// With `--admin-key`: write the new serving key here (mode 0600), for `--key` next time.
    #[arg(long, requires = "admin_key")]
    save_key: Option<PathBuf>,
    /// Submit arbitrary distinct payloads instead of signed entries (for other logs).
    #[arg(long)]
    raw: bool,
    /// Size in bytes of each `--raw` payload.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(64..))]
    raw_size: u16,
    /// Concurrent writer tasks, each with one request in flight.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Target entries per second, all writers together; 0 = flat out.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Entries per request: 1 = `POST /add`, more = NDJSON `POST /v1/entries`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Run for this many seconds.
    #[arg(long, conflicts_with = "entries", required_unless_present = "entries")]
    duration: Option<f64>,
    /// Submit exactly this many entries, then stop (readers stop with the writers).
    #[arg(long)]
    entries: Option<usize>,
    /// Entries to pre-sign for a flat-out `--duration` run (the run ends early
    /// if they run out) [default: 40000 per second of --duration, at most 500000].
    #[arg(long)]
    presign: Option<usize>,
    /// Reader tasks verifying inclusion proofs from tiles.
    #[arg(long, default_value_t = 0)]
    readers: usize,
    /// The log's vkey: readers verify every checkpoint's signature with it
    /// (without it checkpoints are parsed unverified, and the report says so).
    #[arg(long)]
    log_vkey: Option<String>,
    /// Random request IDs (32 hex digits, like a UUID) instead of
    /// `bench-<run>-<n>`, which sort together in the log's request index:
    /// serving systems with random IDs cost the index a second random insert.
    #[arg(long, conflicts_with = "raw")]
    random_request_ids: bool,
    /// Sample this process's resident memory (VmRSS) every second.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<()> {
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            bail!("--rate must be a finite number >= 0");
        }
        if let Some(d) = self.duration
            && !(d > 0.0 && d.is_finite())
        {
            bail!("--duration must be a positive number of seconds");
        }
        if self.writers == 0 && self.readers == 0 {
            bail!("nothing to do: --writers and --readers are both 0");
        }
        if self.writers == 0 && self.duration.is_none() {
            bail!("a readers-only run needs --duration");
        }
        let base = self.url.trim_end_matches('/').to_owned();
        let log_vkey = self
            .log_vkey
            .as_deref()
            .map(VerifierKey::parse)
            .transpose()
            .context("--log-vkey")?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| anyhow::anyhow!("--token is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(self.writers + self.readers + 4)
            .build()
            .context("building the HTTP client")?;
        let run_id = random_u64()?;

        // Refuse an existing --save-key before the policy update is logged,
        // not after (keys are never overwritten).
        if let Some(out) = &self.save_key
            && out.exists()
        {
            bail!(
                "--save-key {} already exists (keys are never overwritten); pass --key {} to use it",
                out.display(),
                out.display()
            );
        }
        // The signer (and, with --admin-key, the policy update) before anything is timed.
        let payload = if self.writers == 0 {
            Payload::None
        } else if self.raw {
            Payload::Raw(usize::from(self.raw_size))
        } else if let Some(path) = &self.key {
            Payload::Signed(Box::new(read_key(path)?))
        } else if let Some(path) = &self.admin_key {
            let admin = read_key(path)?;
            let serving = bootstrap(&client, &base, log_vkey.as_ref(), &admin, run_id).await?;
            if let Some(out) = &self.save_key {
                super::write_private_key(out, &serving.to_private_string())?;
            }
            Payload::Signed(Box::new(serving))
        } else {
            bail!("writers need --key (a serving key), --admin-key (to make one) or --raw");
        };

        let count = match (self.entries, self.duration) {
            _ if self.writers == 0 => 0,
            (Some(n), _) => n,
            (None, Some(d)) if self.rate > 0.0 => {
                (self.rate * d * 1.05).ceil() as usize + self.writers * self.batch as usize
            }
            (None, Some(d)) => self.presign.unwrap_or(
                ((RATE_CEILING * d).ceil() as usize).min(DEFAULT_PRESIGN)
                    + self.writers * self.batch as usize,
            ),
            (None, None) => unreachable!("clap requires --duration or --entries"),
        };
        if matches!(payload, Payload::Signed(_)) {
            eprintln!(
                "modeltrail bench: note: bench logs inferences of made-up model versions; \
                 `modeltrail audit` of this log will report each as unknown_version. \
                 Bench a scratch log, not one you audit."
            );
        }
        let presign_start = Instant::now();
        let ids = if self.random_request_ids {
            RequestIds::Random
        } else {
            RequestIds::Clustered
        };
        let pool = Arc::new(Pool::build(&payload, count, run_id, ids)?);
        let presign_secs = presign_start.elapsed().as_secs_f64();
        if !self.json && count > 0 {
            eprintln!(
                "modeltrail bench: pre-signed {} entries ({} MB) in {:.1} s",
                pool.len(),
                pool.bytes() >> 20,
                presign_secs
            );
        }

        let ctx = Arc::new(Ctx {
            client,
            base,
            pool,
            batch: self.batch as usize,
            rate: self.rate,
            start: Instant::now(),
            deadline: self.duration.map(Duration::from_secs_f64),
            next: AtomicUsize::new(0),
            exhausted: AtomicBool::new(false),
            writers_done: AtomicBool::new(false),
            acked: Mutex::new(Vec::new()),
            vkey: log_vkey.clone(),
            readers_only: self.writers == 0,
        });
        let rss = self.server_pid.map(|pid| {
            let rss = Arc::new(RssSampler::default());
            tokio::spawn(rss.clone().sample(pid));
            rss
        });

        let readers: Vec<_> = (0..self.readers)
            .map(|i| tokio::spawn(reader(ctx.clone(), run_id ^ (i as u64 + 1))))
            .collect();
        let writers: Vec<_> = (0..self.writers)
            .map(|_| tokio::spawn(writer(ctx.clone())))
            .collect();
        let mut writes = WriteStats::default();
        for w in writers {
            writes.merge(w.await.context("a writer task failed")?);
        }
        if self.writers == 0
            && let Some(d) = ctx.deadline
        {
            tokio::time::sleep_until((ctx.start + d).into()).await;
        }
        let write_secs = ctx.start.elapsed().as_secs_f64();
        ctx.writers_done.store(true, Relaxed);
        let mut reads = ReadStats::default();
        for r in readers {
            reads.merge(r.await.context("a reader task failed")?);
        }
        let read_secs = ctx.start.elapsed().as_secs_f64();

        let mut acked = std::mem::take(&mut *ctx.acked.lock().expect("acked lock"));
        acked.sort_unstable();
        let collisions = acked.windows(2).filter(|w| w[0].0 == w[1].0).count();
        let mut report = Report {
            url: ctx.base.clone(),
            payload: payload.describe(),
            writers: self.writers,
            readers: self.readers,
            batch: self.batch as usize,
            rate: self.rate,
            requested: self.entries,
            presigned: ctx.pool.len(),
            presign_secs,
            exhausted: ctx.exhausted.load(Relaxed) && self.entries.is_none(),
            write_secs,
            read_secs,
            writes,
            reads,
            collisions,
            checkpoint_verified: log_vkey.is_some(),
            rss: rss.map(|r| r.snapshot()),
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report.render_json())?);
        } else {
            print!("{}", report.render_text());
        }
        if report.reads.failures() > 0 {
            bail!("{} inclusion verifications failed", report.reads.failures());
        }
        if report.collisions > 0 {
            bail!(
                "the log answered {} indexes more than once",
                report.collisions
            );
        }
        if self.writers > 0 && report.writes.acked == 0 {
            bail!("no entry was acknowledged");
        }
        Ok(())
    }
}

fn read_key(path: &std::path::Path) -> anyhow::Result<SignerKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SignerKey::parse(text.trim_end()).with_context(|| format!("{}", path.display()))
}

fn random_u64() -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("random bytes: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// What writers submit.
enum Payload {
    /// No writers.
    None,
    /// Inference entries signed by this serving key.
    Signed(Box<SignerKey>),
    /// Arbitrary distinct payloads of this size.
    Raw(usize),
}

impl Payload {
    fn describe(&self) -> String {
        match self {
            Payload::None => "none (readers only)".into(),
            Payload::Signed(key) => format!("inference entries signed by {}", key.verifier()),
            Payload::Raw(size) => format!("raw {size}-byte payloads"),
        }
    }
}

/// The pre-signed entries of a run, stored back to back.
struct Pool {
    chunks: Vec<Chunk>,
    chunk_len: usize,
}

#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Chunk {
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }
}

impl Pool {
    /// Signs (or makes) `count` distinct entries on every core.
    fn build(payload: &Payload, count: usize, run: u64, ids: RequestIds) -> anyhow::Result<Pool> {
        let estimate = match payload {
            Payload::None => 0,
            Payload::Raw(size) => *size,
            Payload::Signed(key) => make_entry(key, run, 0, "", ids)?.len(),
        };
        if count.saturating_mul(estimate) > MAX_POOL_BYTES {
            bail!(
                "{count} pre-signed entries of ~{estimate} bytes exceed the {} MB limit: \
                 lower --entries, --presign or --rate × --duration",
                MAX_POOL_BYTES >> 20
            );
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk_len = count.div_ceil(threads).max(1);
        let served_at = rfc3339_millis(SystemTime::now());
        let chunks = std::thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .step_by(chunk_len)
                .map(|first| {
                    let last = (first + chunk_len).min(count);
                    let served_at = &served_at;
                    s.spawn(move || -> anyhow::Result<Chunk> {
                        let mut chunk = Chunk {
                            data: Vec::with_capacity((last - first) * (estimate + 8)),
                            ends: Vec::with_capacity(last - first),
                        };
                        for n in first..last {
                            match payload {
                                Payload::Signed(key) => chunk
                                    .data
                                    .extend_from_slice(&make_entry(key, run, n, served_at, ids)?),
                                Payload::Raw(size) => raw_entry(&mut chunk.data, *size, run, n),
                                Payload::None => {}
                            }
                            chunk.ends.push(chunk.data.len());
                        }
                        Ok(chunk)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a signing thread panicked"))
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        let pool = Pool { chunks, chunk_len };
        // Entries are built by hand for speed: check that the log's parser accepts one.
        if let (Payload::Signed(_), true) = (payload, count > 0) {
            SignedEntry::parse(pool.get(0)).context("a pre-signed entry does not parse")?;
        }
        Ok(pool)
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.ends.len()).sum()
    }

    fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.data.len()).sum()
    }

    fn get(&self, i: usize) -> &[u8] {
        self.chunks[i / self.chunk_len].get(i % self.chunk_len)
    }
}

/// How the load generator names its inference requests.
#[derive(Debug, Clone, Copy)]
enum RequestIds {
    /// `bench-<run>-<n>`: one run's IDs sort together.
    Clustered,
    /// 32 hex digits of BLAKE3 of the clustered ID: spread like UUIDs.
    Random,
}

impl RequestIds {
    fn of(self, run: u64, n: usize) -> String {
        let clustered = format!("bench-{run:016x}-{n}");
        match self {
            RequestIds::Clustered => clustered,
            RequestIds::Random => blake3::hash(clustered.as_bytes()).to_hex()[..32].to_owned(),
        }
    }
}

/// Inference entry `n` of run `run`, signed by `key`: exactly what
/// [`SignedEntry::sign`] makes, without its verification pass.
fn make_entry(
    key: &SignerKey,
    run: u64,
    n: usize,
    served_at: &str,
    ids: RequestIds,
) -> anyhow::Result<Vec<u8>> {
    let commitment = |what: &str| {
        let hash = blake3::hash(format!("{what}/{run:016x}/{n}").as_bytes());
        format!("b3:{}", hash.to_hex())
    };
    let body = json!({
        "model": "bench-model",
        "version_hash": format!("b3:{}", blake3::hash(b"bench-model v1").to_hex()),
        "request_id": ids.of(run, n),
        "served_at": served_at,
        "input_commitment": commitment("input"),
        "output_commitment": commitment("output"),
    });
    let kind = Kind::Inference;
    let canonical_body = to_canonical(&body);
    let mut msg = Vec::with_capacity(ENTRY_CONTEXT.len() + 16 + canonical_body.len());
    msg.extend_from_slice(ENTRY_CONTEXT.as_bytes());
    msg.extend_from_slice(kind.as_str().as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(&canonical_body);
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD.encode(key.sign_raw(&msg));
    Ok(to_canonical(&json!({
        "body": body,
        "kind": kind.as_str(),
        "sig": sig,
        "signer": key.verifier().to_string(),
        "v": 1,
    })))
}

/// A distinct payload of exactly `size` bytes (no newline, for NDJSON).
fn raw_entry(out: &mut Vec<u8>, size: usize, run: u64, n: usize) {
    let head = format!("{{\"bench\":\"{run:016x}\",\"n\":{n},\"pad\":\"");
    let start = out.len();
    out.extend_from_slice(head.as_bytes());
    out.resize(start + size.max(head.len() + 2) - 2, b'x');
    out.extend_from_slice(b"\"}");
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-05-01T12:00:00.000Z`.
fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// What every writer and reader shares.
struct Ctx {
    client: reqwest::Client,
    base: String,
    pool: Arc<Pool>,
    batch: usize,
    rate: f64,
    start: Instant,
    deadline: Option<Duration>,
    /// The next pre-signed entry to claim.
    next: AtomicUsize,
    exhausted: AtomicBool,
    writers_done: AtomicBool,
    /// (leaf index, pool slot) of every acknowledged entry.
    acked: Mutex<Vec<(u64, usize)>>,
    vkey: Option<VerifierKey>,
    readers_only: bool,
}

impl Ctx {
    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| self.start.elapsed() >= d)
    }
}

#[derive(Default)]
struct WriteStats {
    acked: u64,
    requests: u64,
    pushback: u64,
    retries: u64,
    duplicates: u64,
    abandoned: u64,
    /// Requests that could not connect (retried with backoff; nothing sent).
    unreachable: u64,
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

impl WriteStats {
    fn merge(&mut self, o: WriteStats) {
        self.acked += o.acked;
        self.requests += o.requests;
        self.pushback += o.pushback;
        self.retries += o.retries;
        self.duplicates += o.duplicates;
        self.abandoned += o.abandoned;
        self.unreachable += o.unreachable;
        self.latencies_us.extend(o.latencies_us);
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn error(&mut self, what: String, n: u64) {
        *self.errors.entry(what).or_default() += n;
    }
}

/// The outcome of one write request.
enum Sent {
    /// Per entry: its index, or an error (`Err(None)` = pushback, retry it).
    Answered(Vec<Result<(u64, bool), Option<String>>>),
    /// The whole request was pushed back; retry after this long.
    Pushback(Duration),
    /// The whole request failed.
    Failed(String),
    /// No connection: nothing was sent, so the same entries are retried.
    Unreachable,
}

/// Claims slices of the pool and submits them until the pool, the entry
/// count or the duration runs out.
async fn writer(ctx: Arc<Ctx>) -> WriteStats {
    let mut stats = WriteStats::default();
    let total = ctx.pool.len();
    let mut down_since: Option<Instant> = None;
    let mut wait = UNREACHABLE_FIRST_WAIT;
    let mut gave_up = false;
    while !gave_up {
        if ctx.past_deadline() {
            break;
        }
        let first = ctx.next.fetch_add(ctx.batch, Relaxed);
        if first >= total {
            ctx.exhausted.store(true, Relaxed);
            break;
        }
        let mut slots: Vec<usize> = (first..(first + ctx.batch).min(total)).collect();
        if ctx.rate > 0.0 {
            let due = ctx.start + Duration::from_secs_f64(first as f64 / ctx.rate);
            tokio::time::sleep_until(due.into()).await;
            if ctx.past_deadline() {
                break;
            }
        }
        while !slots.is_empty() {
            let sent = Instant::now();
            let outcome = submit(&ctx, &slots).await;
            let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
            if let Sent::Unreachable = outcome {
                // The log is down (or restarting): wait, longer each time,
                // and send the same entries again; burn none.
                stats.unreachable += 1;
                let since = *down_since.get_or_insert(sent);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(UNREACHABLE_MAX_WAIT);
                if since.elapsed() >= UNREACHABLE_GIVE_UP {
                    stats.error("unreachable: gave up".into(), slots.len() as u64);
                    slots.clear();
                    gave_up = true;
                } else if ctx.past_deadline() {
                    stats.abandoned += slots.len() as u64;
                    slots.clear();
                }
                continue;
            }
            down_since = None;
            wait = UNREACHABLE_FIRST_WAIT;
            stats.requests += 1;
            let retry_after = match outcome {
                Sent::Answered(results) => {
                    let mut retry = Vec::new();
                    let mut acked = Vec::new();
                    for (slot, result) in slots.iter().zip(results) {
                        match result {
                            Ok((index, duplicate)) => {
                                stats.latencies_us.push(micros);
                                stats.duplicates += u64::from(duplicate);
                                acked.push((index, *slot));
                            }
                            Err(None) => retry.push(*slot),
                            Err(Some(code)) => stats.error(code, 1),
                        }
                    }
                    stats.acked += acked.len() as u64;
                    ctx.acked.lock().expect("acked lock").extend(acked);
                    slots = retry;
                    (!slots.is_empty()).then(|| Duration::from_secs(1))
                }
                Sent::Pushback(after) => Some(after),
                Sent::Unreachable => unreachable!("handled above"),
                Sent::Failed(what) => {
                    stats.error(what, slots.len() as u64);
                    slots.clear();
                    // Do not spin on a refusing or unreachable server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    None
                }
            };
            if let Some(after) = retry_after {
                stats.pushback += 1;
                tokio::time::sleep(after).await;
                if ctx.past_deadline() {
                    stats.abandoned += slots.len() as u64;
                    slots.clear();
                } else {
                    stats.retries += 1;
                }
            }
        }
    }
    stats
}

/// Sends one request for the entries in `slots`.
async fn submit(ctx: &Ctx, slots: &[usize]) -> Sent {
    let request = if slots.len() == 1 {
        ctx.client
            .post(format!("{}/add", ctx.base))
            .body(ctx.pool.get(slots[0]).to_vec())
    } else {
        let mut body = Vec::with_capacity(slots.len() * 512);
        for &slot in slots {
            body.extend_from_slice(ctx.pool.get(slot));
            body.push(b'\n');
        }
        ctx.client
            .post(format!("{}/v1/entries", ctx.base))
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Sent::Unreachable,
        Err(e) => return Sent::Failed(format!("transport: {}", error_kind(&e))),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs);
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return Sent::Failed(format!("transport: {}", error_kind(&e))),
    };
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Sent::Pushback(retry_after);
    }
    if !status.is_success() {
        return Sent::Failed(format!("{} {}", status.as_u16(), error_code(&body)));
    }
    if slots.len() == 1 {
        return match std::str::from_utf8(&body)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            Some(index) => Sent::Answered(vec![Ok((index, false))]),
            None => Sent::Failed("bad answer: not a decimal index".into()),
        };
    }
    let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
        return Sent::Failed("bad answer: not JSON".into());
    };
    let Some(results) = answer["results"]
        .as_array()
        .filter(|r| r.len() == slots.len())
    else {
        return Sent::Failed("bad answer: no results array of the batch's length".into());
    };
    Sent::Answered(
        results
            .iter()
            .map(
                |r| match (r["index"].as_u64(), r["error"]["code"].as_str()) {
                    (Some(index), _) => Ok((index, r["duplicate"].as_bool().unwrap_or(false))),
                    (None, Some("queue_full")) => Err(None),
                    (None, code) => Err(Some(format!("batch entry {}", code.unwrap_or("?")))),
                },
            )
            .collect(),
    )
}

/// The `code` of a JSON error answer, or `-`.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "-".into())
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    }
}

#[derive(Default)]
struct ReadStats {
    verified: u64,
    latencies_us: Vec<u32>,
    /// Verification failures: a wrong checkpoint signature, tile, entry or proof.
    failed: BTreeMap<String, u64>,
    /// HTTP or transport errors (nothing was checked).
    errors: BTreeMap<String, u64>,
}

impl ReadStats {
    fn merge(&mut self, o: ReadStats) {
        self.verified += o.verified;
        self.latencies_us.extend(o.latencies_us);
        for (k, v) in o.failed {
            *self.failed.entry(k).or_default() += v;
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn failures(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// Why one read iteration did not verify.
enum ReadFailure {
    /// Something fetched was wrong: a verification failure.
    Invalid(String),
    /// Something could not be fetched.
    Fetch(String),
}

/// Loops until the writers are done (or, readers only, the duration ends):
/// checkpoint, random acknowledged entry, tiles, inclusion proof.
async fn reader(ctx: Arc<Ctx>, seed: u64) -> ReadStats {
    let mut stats = ReadStats::default();
    let mut rng = seed | 1;
    let mut tries_after_writers = 0;
    loop {
        // Once the writers are done, each reader still verifies one entry
        // (a short run must not end with nothing read), within a few tries.
        if ctx.writers_done.load(Relaxed) {
            tries_after_writers += 1;
            if stats.verified > 0 || tries_after_writers > 3 {
                break;
            }
        }
        if ctx.readers_only && ctx.past_deadline() {
            break;
        }
        let started = Instant::now();
        match read_once(&ctx, &mut rng).await {
            Ok(true) => {
                stats.verified += 1;
                let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                stats.latencies_us.push(micros);
            }
            Ok(false) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(ReadFailure::Invalid(what)) => *stats.failed.entry(what).or_default() += 1,
            Err(ReadFailure::Fetch(what)) => {
                *stats.errors.entry(what).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One verification; `Ok(false)` if there was nothing to verify yet.
async fn read_once(ctx: &Ctx, rng: &mut u64) -> Result<bool, ReadFailure> {
    let note = get(&ctx.client, &format!("{}/checkpoint", ctx.base)).await?;
    let checkpoint = open_checkpoint(&note, ctx.vkey.as_ref()).map_err(ReadFailure::Invalid)?;
    let size = checkpoint.size;
    // A random acknowledged entry within the checkpoint (readers only: any entry).
    let pick = if ctx.readers_only {
        (size > 0).then(|| (xorshift(rng) % size, None))
    } else {
        let acked = ctx.acked.lock().expect("acked lock");
        (0..8).find_map(|_| {
            let (index, slot) = *acked.get((xorshift(rng) % acked.len().max(1) as u64) as usize)?;
            (index < size).then_some((index, Some(slot)))
        })
    };
    let Some((index, slot)) = pick else {
        return Ok(false);
    };

    // Which tiles the proof needs: ask a reader that only records the request.
    let recorder = Recorder::default();
    let _ = prove_inclusion(
        size,
        index,
        &TileHashReader::new(size, checkpoint.root, &recorder),
    );
    let mut wanted = recorder.0.into_inner().expect("recorder lock");
    let (bundle_tile, position) = entry_bundle_for(index, size).expect("index < size");
    wanted.push(bundle_tile);
    let mut fetches = tokio::task::JoinSet::new();
    for tile in wanted {
        let (client, base) = (ctx.client.clone(), ctx.base.clone());
        fetches.spawn(async move { (tile, fetch_tile(&client, &base, &tile).await) });
    }
    let mut tiles = HashMap::new();
    while let Some(done) = fetches.join_next().await {
        let (tile, data) = done.map_err(|e| ReadFailure::Fetch(format!("task: {e}")))?;
        tiles.insert(tile, data?);
    }

    let bundle_data = tiles.remove(&bundle_tile).expect("the bundle was fetched");
    let bundle = parse_bundle(&bundle_data)
        .map_err(|e| ReadFailure::Invalid(format!("entry bundle: {e}")))?;
    let entry = *bundle
        .get(position)
        .ok_or_else(|| ReadFailure::Invalid("entry bundle too short".into()))?;
    if let Some(slot) = slot
        && entry != ctx.pool.get(slot)
    {
        return Err(ReadFailure::Invalid(
            "the logged entry is not the one submitted".into(),
        ));
    }
    let reader = TileHashReader::new(size, checkpoint.root, TileMap(tiles));
    let proof = prove_inclusion(size, index, &reader)
        .map_err(|e| ReadFailure::Invalid(format!("tiles: {e}")))?;
    verify_inclusion(
        &crate::tlog::leaf_hash(entry),
        index,
        size,
        &proof,
        &checkpoint.root,
    )
    .map_err(|e| ReadFailure::Invalid(format!("inclusion: {e}")))?;
    Ok(true)
}

/// Parses a checkpoint note, verifying it with `vkey` if given.
fn open_checkpoint(note: &[u8], vkey: Option<&VerifierKey>) -> Result<Checkpoint, String> {
    match vkey {
        Some(vkey) => Checkpoint::open(note, vkey, &[])
            .map(|c| c.checkpoint)
            .map_err(|e| format!("checkpoint: {e}")),
        None => Note::parse(note)
            .map_err(|e| e.to_string())
            .and_then(|n| Checkpoint::from_note(&n).map_err(|e| e.to_string()))
            .map_err(|e| format!("checkpoint: {e}")),
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, ReadFailure> {
    get_status(client, url)
        .await?
        .map_err(|status| ReadFailure::Fetch(format!("GET {} {status}", url_kind(url))))
}

/// The body, or the HTTP status if it is not a success.
async fn get_status(
    client: &reqwest::Client,
    url: &str,
) -> Result<Result<Vec<u8>, u16>, ReadFailure> {
    let fail = |e: reqwest::Error| {
        ReadFailure::Fetch(format!(
            "GET {}: transport: {}",
            url_kind(url),
            error_kind(&e)
        ))
    };
    let response = client.get(url).send().await.map_err(fail)?;
    let status = response.status();
    let body = response.bytes().await.map_err(fail)?;
    Ok(if status.is_success() {
        Ok(body.to_vec())
    } else {
        Err(status.as_u16())
    })
}

/// A short name for error counts: `checkpoint`, `tile` or `entries`.
fn url_kind(url: &str) -> &'static str {
    if url.ends_with("/checkpoint") {
        "checkpoint"
    } else if url.contains("/tile/entries/") {
        "entries"
    } else {
        "tile"
    }
}

/// Fetches a tile; a partial tile the log no longer stores is cut from the
/// full tile (tlog-tiles allows logs to drop superseded partial tiles).
async fn fetch_tile(
    client: &reqwest::Client,
    base: &str,
    tile: &Tile,
) -> Result<Vec<u8>, ReadFailure> {
    let url = format!("{base}/{}", tile.path());
    match get_status(client, &url).await? {
        Ok(data) => Ok(data),
        Err(404) if tile.is_partial() => {
            let full = get(client, &format!("{base}/{}", tile.full().path())).await?;
            let width = usize::from(tile.width());
            match tile.kind() {
                TileKind::Entries => {
                    let entries = parse_bundle(&full)
                        .map_err(|e| ReadFailure::Invalid(format!("entry bundle: {e}")))?;
                    let prefix = entries.get(..width).ok_or_else(|| {
                        ReadFailure::Invalid("full entry bundle shorter than partial".into())
                    })?;
                    encode_bundle(prefix).map_err(|e| ReadFailure::Invalid(e.to_string()))
                }
                TileKind::Hash(_) => Ok(full[..(width * 32).min(full.len())].to_vec()),
            }
        }
        Err(status) => Err(ReadFailure::Fetch(format!(
            "GET {} {status}",
            url_kind(&url)
        ))),
    }
}

/// A [`TileReader`] that records what it is asked for and answers nothing.
#[derive(Default)]
struct Recorder(Mutex<Vec<Tile>>);

impl TileReader for Recorder {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        self.0
            .lock()
            .expect("recorder lock")
            .extend_from_slice(tiles);
        Err(ReadError::new("recording only"))
    }
}

/// A [`TileReader`] over tiles already fetched.
struct TileMap(HashMap<Tile, Vec<u8>>);

impl TileReader for TileMap {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        tiles
            .iter()
            .map(|t| {
                self.0
                    .get(t)
                    .cloned()
                    .ok_or_else(|| ReadError::new(format!("{} was not fetched", t.path())))
            })
            .collect()
    }
}

/// Logs a policy update that adds a fresh `serving` key to the policy in
/// force, signed by `admin`, and returns the new key. The policy in force is
/// taken to be the last `policy` entry, found by scanning entry bundles
/// backwards from the end of the tree.
async fn bootstrap(
    client: &reqwest::Client,
    base: &str,
    vkey: Option<&VerifierKey>,
    admin: &SignerKey,
    run: u64,
) -> anyhow::Result<SignerKey> {
    let fetch_failed = |f: ReadFailure| match f {
        ReadFailure::Invalid(s) | ReadFailure::Fetch(s) => anyhow!(s),
    };
    let note = get(client, &format!("{base}/checkpoint"))
        .await
        .map_err(fetch_failed)?;
    let checkpoint = open_checkpoint(&note, vkey).map_err(|e| anyhow!(e))?;
    let mut policy = None;
    let bundles = checkpoint.size.div_ceil(256);
    'scan: for n in (0..bundles).rev() {
        let tile =
            Tile::in_tree(TileKind::Entries, n, checkpoint.size).context("entry bundle math")?;
        let data = fetch_tile(client, base, &tile)
            .await
            .map_err(fetch_failed)?;
        for bytes in parse_bundle(&data)?.into_iter().rev() {
            if let Ok(entry) = SignedEntry::parse(bytes)
                && entry.kind() == Kind::Policy
            {
                policy = Some(PolicyBody::parse(entry.body())?);
                break 'scan;
            }
        }
    }
    let policy = policy.context("no policy entry found in the log")?;
    let serving = SignerKey::generate(&format!("bench/serving-{run:016x}"), KeyType::Ed25519)?;
    let mut body = policy.to_value();
    body["signers"]
        .as_array_mut()
        .context("policy without a signers array")?
        .push(json!({"roles": ["serving"], "vkey": serving.verifier().to_string()}));
    PolicyBody::parse(&body).context("the updated policy")?;
    let entry = SignedEntry::sign(Kind::Policy, body, admin)?;
    let response = client
        .post(format!("{base}/add"))
        .body(entry.into_bytes())
        .send()
        .await
        .context("POST /add (policy update)")?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the policy update was refused: {status}: {}", text.trim());
    }
    Ok(serving)
}

/// Samples a process's VmRSS every second.
#[derive(Default)]
struct RssSampler {
    max_kb: AtomicU64,
    last_kb: AtomicU64,
    samples: AtomicU64,
}

impl RssSampler {
    async fn sample(self: Arc<Self>, pid: u32) {
        let path = format!("/proc/{pid}/status");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(kb) = std::fs::read_to_string(&path).ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            }) else {
                continue;
            };
            self.max_kb.fetch_max(kb, Relaxed);
            self.last_kb.store(kb, Relaxed);
            self.samples.fetch_add(1, Relaxed);
        }
    }

    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.max_kb.load(Relaxed),
            self.last_kb.load(Relaxed),
            self.samples.load(Relaxed),
        )
    }
}

struct Report {
    url: String,
    payload: String,
    writers: usize,
    readers: usize,
    batch: usize,
    rate: f64,
    requested: Option<usize>,
    presigned: usize,
    presign_secs: f64,
    exhausted: bool,
    write_secs: f64,
    read_secs: f64,
    writes: WriteStats,
    reads: ReadStats,
    collisions: usize,
    checkpoint_verified: bool,
    /// (max kB, last kB, samples)
    rss: Option<(u64, u64, u64)>,
}

/// min, median, p99, max of `v` (sorted in place), in microseconds.
fn summary(v: &mut [u32]) -> Option<[u32; 4]> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some([v[0], at(0.5), at(0.99), v[v.len() - 1]])
}

fn ms(us: u32) -> String {
    format!("{:.1} ms", f64::from(us) / 1000.0)
}

impl Report {
    fn entries_per_sec(&self) -> f64 {
        self.writes.acked as f64 / self.write_secs
    }

    fn render_text(&mut self) -> String {
        let mut s = String::new();
        let mode = if self.rate > 0.0 {
            format!("{} entries/s target", self.rate)
        } else {
            "flat out".into()
        };
        s += &format!(
            "modeltrail bench: {} — {}\n  {} writers, batch {}, {mode}; {} readers\n",
            self.url, self.payload, self.writers, self.batch, self.readers
        );
        if self.writers > 0 {
            s += &format!(
                "writes: {} acknowledged in {:.2} s = {:.0} entries/s ({} requests, {} pre-signed in {:.1} s{})\n",
                self.writes.acked,
                self.write_secs,
                self.entries_per_sec(),
                self.writes.requests,
                self.presigned,
                self.presign_secs,
                if self.exhausted {
                    "; ran out of pre-signed entries before the duration"
                } else {
                    ""
                }
            );
            if let Some([min, med, p99, max]) = summary(&mut self.writes.latencies_us) {
                s += &format!(
                    "integration latency: min {}, median {}, p99 {}, max {}\n",
                    ms(min),
                    ms(med),
                    ms(p99),
                    ms(max)
                );
            }
            s += &format!(
                "pushback (503): {}, retries: {}, unreachable (retried): {}, abandoned at the deadline: {}, duplicates: {}, index collisions: {}\n",
                self.writes.pushback,
                self.writes.retries,
                self.writes.unreachable,
                self.writes.abandoned,
                self.writes.duplicates,
                self.collisions
            );
            s += &format!("write errors: {}\n", counts(&self.writes.errors));
        }
        if self.readers > 0 {
            s += &format!(
                "reads: {} inclusion proofs verified in {:.2} s = {:.1}/s; failures: {}; fetch errors: {}; checkpoints {}\n",
                self.reads.verified,
                self.read_secs,
                self.reads.verified as f64 / self.read_secs,
                counts(&self.reads.failed),
                counts(&self.reads.errors),
                if self.checkpoint_verified {
                    "signature-verified"
                } else {
                    "NOT signature-verified (no --log-vkey)"
                }
            );
            if let Some([min, med, p99, max]) = summary(&mut self.reads.latencies_us) {
                s += &format!(
                    "verification latency: min {}, median {}, p99 {}, max {}\n",
                    ms(min),
                    ms(med),
                    ms(p99),
                    ms(max)
                );
            }
        }
        if let Some((max, last, n)) = self.rss {
            s += &format!(
                "server RSS: max {:.1} MiB, last {:.1} MiB ({n} samples)\n",
                max as f64 / 1024.0,
                last as f64 / 1024.0
            );
        }
        s
    }

    fn render_json(&mut self) -> Value {
        let lat = |v: &mut Vec<u32>| {
            summary(v).map(|[min, median, p99, max]| {
                json!({"min_us": min, "median_us": median, "p99_us": p99, "max_us": max})
            })
        };
        json!({
            "url": &self.url,
            "payload": &self.payload,
            "writers": self.writers,
            "readers": self.readers,
            "batch": self.batch,
            "rate": self.rate,
            "requested": self.requested,
            "presigned": self.presigned,
            "presign_secs": self.presign_secs,
            "presigned_exhausted": self.exhausted,
            "write_secs": self.write_secs,
            "acked": self.writes.acked,
            "entries_per_sec": self.entries_per_sec(),
            "requests": self.writes.requests,
            "latency": lat(&mut self.writes.latencies_us),
            "pushback": self.writes.pushback,
            "retries": self.writes.retries,
            "abandoned": self.writes.abandoned,
            "unreachable": self.writes.unreachable,
            "duplicates": self.writes.duplicates,
            "index_collisions": self.collisions,
            "write_errors": &self.writes.errors,
            "read_secs": self.read_secs,
            "verified": self.reads.verified,
            "verifications_per_sec": self.reads.verified as f64 / self.read_secs,
            "verify_latency": lat(&mut self.reads.latencies_us),
            "verify_failures": &self.reads.failed,
            "read_errors": &self.reads.errors,
            "checkpoint_signature_verified": self.checkpoint_verified,
            "server_rss": self.rss.map(|(max, last, samples)| {
                json!({"max_kb": max, "last_kb": last, "samples": samples})
            }),
        })
    }
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339_millis(t), "2024-02-29T12:34:56.789Z");
        assert_eq!(
            rfc3339_millis(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn hand_built_entries_parse_and_are_distinct() {
        let key = SignerKey::from_seed("bench/serving", KeyType::Ed25519, &[7; 32]).unwrap();
        let a = make_entry(
            &key,
            1,
            0,
            "2024-01-01T00:00:00.000Z",
            RequestIds::Clustered,
        )
        .unwrap();
        let b = make_entry(&key, 1, 1, "2024-01-01T00:00:00.000Z", RequestIds::Random).unwrap();
        assert_ne!(a, b);
        let parsed = SignedEntry::parse(&a).unwrap();
        assert_eq!(parsed.kind(), Kind::Inference);
        assert_eq!(parsed.body()["request_id"], "bench-0000000000000001-0");
        let random = SignedEntry::parse(&b).unwrap().body()["request_id"].clone();
        let random = random.as_str().unwrap();
        assert_eq!(random.len(), 32);
        assert!(random.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(random, RequestIds::Random.of(1, 1));
        assert_ne!(RequestIds::Random.of(1, 1), RequestIds::Random.of(1, 2));
        let mut raw = Vec::new();
        raw_entry(&mut raw, 100, 1, 12);
        assert_eq!(raw.len(), 100);
        assert!(serde_json::from_slice::<Value>(&raw).is_ok());
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(summary(&mut v), Some([1, 50, 99, 100]));
        assert_eq!(summary(&mut []), None);
    }
}
