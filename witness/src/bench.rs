//! `modeltrail-witness bench`: a load generator for a running witness.
//!
//! It makes `--logs` synthetic logs (fresh Ed25519 keys, origins
//! `bench.invalid/<run>/<i>`), registers them in the witness's `--data`
//! directory (the running witness re-reads its configuration), and then
//! drives `POST /add-checkpoint` from `--concurrency` workers for
//! `--duration-secs`. Each worker owns a share of the logs and, like a real
//! log, has one request in flight per log: it appends 1 to 4 leaves to the
//! log's in-memory tree, signs the new checkpoint, sends it with a real
//! consistency proof from the size the witness last cosigned, and checks
//! the cosignature under the witness's key. It reports requests per second,
//! latency percentiles and the witness's group-commit batch sizes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::hash::{Hash, stored_hashes, tree_hash};
use modeltrail::tlog::note::{KeyType, Note, SignerKey, VerifierKey};
use modeltrail::tlog::proof::prove_consistency;
use serde_json::json;

use crate::request::AddCheckpointRequest;
use crate::store::DataDir;

/// `bench` arguments.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// The witness's base URL (its submission prefix).
    #[arg(long, default_value = "http://127.0.0.1:7380")]
    url: String,
    /// The witness's data directory, where the synthetic logs are registered.
    #[arg(long, env = "MODELTRAIL_WITNESS_DATA")]
    data: PathBuf,
    /// Synthetic logs.
    #[arg(long, default_value_t = 1000)]
    logs: usize,
    /// Concurrent requests (at most one per log).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run, after every log's first checkpoint is cosigned.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Verify every n-th cosignature (1: all).
    #[arg(long, default_value_t = 1)]
    verify_every: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// One synthetic log: key, in-memory tree, what the witness cosigned.
struct SynthLog {
    key: SignerKey,
    stored: Vec<Hash>,
    size: u64,
    witnessed: u64,
}

impl SynthLog {
    fn new(origin: &str) -> anyhow::Result<SynthLog> {
        let key = SignerKey::generate(origin, KeyType::Ed25519)
            .map_err(|e| anyhow!("log key {origin}: {e}"))?;
        Ok(SynthLog {
            key,
            stored: Vec::new(),
            size: 0,
            witnessed: 0,
        })
    }

    /// Appends `n` leaves.
    fn grow(&mut self, n: u64) {
        for i in self.size..self.size + n {
            let leaf = format!("{} leaf {i}", self.key.name());
            let new = stored_hashes(i, leaf.as_bytes(), &self.stored).expect("in-memory tree");
            self.stored.extend(new);
        }
        self.size += n;
    }

    /// The checkpoint text and the request body for the current size.
    fn request(&self) -> anyhow::Result<(String, Vec<u8>)> {
        let checkpoint = Checkpoint {
            origin: self.key.name().to_owned(),
            size: self.size,
            root: tree_hash(self.size, &self.stored).expect("in-memory tree"),
            extensions: vec![],
        };
        let note: Note = checkpoint.sign(&self.key)?;
        let proof = if self.witnessed == 0 {
            vec![]
        } else {
            prove_consistency(self.witnessed, self.size, &self.stored).expect("in-memory tree")
        };
        let request = AddCheckpointRequest::new(self.witnessed, proof, note)?;
        Ok((checkpoint.to_text(), request.to_bytes()))
    }
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    verified: u64,
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.logs < args.concurrency || args.concurrency == 0 {
        bail!("--logs must be at least --concurrency, which must be at least 1");
    }
    let dir = DataDir::new(&args.data);
    let config = dir.read_config()?;
    let witness_key = dir.read_key(&config)?.verifier();
    let run_id = run_id()?;
    let logs = (0..args.logs)
        .map(|i| SynthLog::new(&format!("bench.invalid/{run_id}/{i}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let registrations: Vec<_> = logs
        .iter()
        .map(|l| (l.key.name().to_owned(), l.key.verifier()))
        .collect();
    dir.add_logs(&registrations)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(drive(args, logs, witness_key))
}

async fn drive(
    args: BenchArgs,
    logs: Vec<SynthLog>,
    witness_key: VerifierKey,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/add-checkpoint", args.url.trim_end_matches('/'));
    let metrics_url = format!("{}/metrics", args.url.trim_end_matches('/'));
    let mut shares: Vec<Vec<SynthLog>> = (0..args.concurrency).map(|_| Vec::new()).collect();
    for (i, log) in logs.into_iter().enumerate() {
        shares[i % args.concurrency].push(log);
    }
    // Warm-up: every log's first checkpoint, waiting for the witness to
    // pick up the new logs (404 until it re-reads its configuration).
    let mut warm = Vec::new();
    for share in shares {
        let (client, url) = (client.clone(), url.clone());
        warm.push(tokio::spawn(
            async move { warm_up(&client, &url, share).await },
        ));
    }
    let mut shares = Vec::new();
    for task in warm {
        shares.push(task.await??);
    }

    let before = fetch_metrics(&client, &metrics_url).await;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_secs);
    let mut workers = Vec::new();
    for (w, share) in shares.into_iter().enumerate() {
        let (client, url, key) = (client.clone(), url.clone(), witness_key.clone());
        let verify_every = args.verify_every.max(1);
        workers.push(tokio::spawn(async move {
            work(&client, &url, share, &key, verify_every, w as u64, deadline).await
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        let t = worker.await??;
        total.latencies_us.extend(t.latencies_us);
        for (s, n) in t.statuses {
            *total.statuses.entry(s).or_default() += n;
        }
        total.verified += t.verified;
    }
    let secs = start.elapsed().as_secs_f64();
    let after = fetch_metrics(&client, &metrics_url).await;
    report(&args, &mut total, secs, &before, &after);
    Ok(())
}

/// Sends each log's first checkpoint (old size 0), retrying 404s for 10 s.
async fn warm_up(
    client: &reqwest::Client,
    url: &str,
    mut logs: Vec<SynthLog>,
) -> anyhow::Result<Vec<SynthLog>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    for log in &mut logs {
        log.grow(1);
        loop {
            let (_, body) = log.request()?;
            let response = client.post(url).body(body).send().await?;
            match response.status().as_u16() {
                200 => break,
                404 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                s => bail!(
                    "warm-up of {}: status {s}: {}",
                    log.key.name(),
                    response.text().await.unwrap_or_default()
                ),
            }
        }
        log.witnessed = log.size;
    }
    Ok(logs)
}

/// One worker: round-robin over its logs until `deadline`.
async fn work(
    client: &reqwest::Client,
    url: &str,
    mut logs: Vec<SynthLog>,
    witness_key: &VerifierKey,
    verify_every: u64,
    seed: u64,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        let i = (n as usize) % logs.len();
        let log = &mut logs[i];
        log.grow(1 + (n.wrapping_mul(7).wrapping_add(seed)) % 4);
        let (text, body) = log.request()?;
        let sent = Instant::now();
        let response = client
            .post(url)
            .body(body)
            .send()
            .await
            .context("add-checkpoint")?;
        let status = response.status().as_u16();
        let answer = response.text().await?;
        let us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        tally.latencies_us.push(us);
        *tally.statuses.entry(status).or_default() += 1;
        match status {
            200 => {
                if n.is_multiple_of(verify_every) {
                    check_cosignature(&text, &answer, witness_key)?;
                    tally.verified += 1;
                }
                log.witnessed = log.size;
            }
            409 => {
                log.witnessed = answer.trim_end().parse().context("409 body")?;
            }
            _ => {}
        }
        n += 1;
    }
    Ok(tally)
}

/// The response must be a cosignature/v1 line by the witness on `text`.
fn check_cosignature(text: &str, answer: &str, key: &VerifierKey) -> anyhow::Result<()> {
    let note = Note::parse(format!("{text}\n{answer}").as_bytes())?;
    let sig = note
        .signatures()
        .iter()
        .find(|s| key.matches(s))
        .ok_or_else(|| anyhow!("no cosignature by the witness in {answer:?}"))?;
    cosignature::verify(key, text, sig)?;
    Ok(())
}

async fn fetch_metrics(client: &reqwest::Client, url: &str) -> BTreeMap<String, u64> {
    let Ok(response) = client.get(url).send().await else {
        return BTreeMap::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// Prints the figures.
fn report(
    args: &BenchArgs,
    total: &mut Tally,
    secs: f64,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) {
    let requests = total.latencies_us.len();
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    let (batches, commits) = (
        delta("witness_store_batches_total"),
        delta("witness_store_commits_total"),
    );
    let per_batch = if batches == 0 {
        0.0
    } else {
        commits as f64 / batches as f64
    };
    total.latencies_us.sort_unstable();
    let at = |q: f64| {
        let v = &total.latencies_us;
        if v.is_empty() {
            return 0.0;
        }
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        f64::from(v[i]) / 1000.0
    };
    let rate = requests as f64 / secs;
    let statuses: BTreeMap<String, u64> = total
        .statuses
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    if args.json {
        let out = json!({
            "logs": args.logs, "concurrency": args.concurrency, "seconds": secs,
            "requests": requests, "requests_per_sec": rate, "statuses": statuses,
            "verified": total.verified,
            "latency_ms": {"p50": at(0.5), "p99": at(0.99), "max": at(1.0)},
            "store": {"batches": batches, "commits": commits, "commits_per_batch": per_batch},
        });
        println!("{out}");
        return;
    }
    println!(
        "{requests} add-checkpoint requests in {secs:.1} s: {rate:.0} req/s ({} logs, concurrency {})",
        args.logs, args.concurrency
    );
    println!(
        "statuses: {statuses:?}; cosignatures verified: {}",
        total.verified
    );
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!(
        "witness store: {commits} commits in {batches} synced batches ({per_batch:.1} per fdatasync)"
    );
}

/// `bench-disk` arguments.
#[derive(clap::Args)]
pub struct DiskArgs {
    /// A directory on the disk to measure (files `probe.journal`, `probe.state` are left there).
    #[arg(long)]
    dir: PathBuf,
    /// Operations of each kind.
    #[arg(long, default_value_t = 2000)]
    count: usize,
}

/// Measures what the witness's two ways of making state durable cost on a
/// disk: appending a 512-byte record and `fdatasync` (the journal's group
/// commit), and an atomic replace (write, fsync, rename, fsync the
/// directory; what compaction does). Prints median and p99 of each.
pub fn disk(args: &DiskArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(&args.dir)?;
    let record = [&[b'x'; 511][..], b"\n"].concat();
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.dir.join("probe.journal"))?;
    let append = time_each(args.count, || {
        journal.write_all(&record)?;
        journal.sync_data()?;
        Ok(())
    })?;
    let state = args.dir.join("probe.state");
    let replace = time_each(args.count, || crate::store::write_atomic(&state, &record))?;
    for (name, mut times) in [
        ("append 512 B + fdatasync", append),
        ("atomic replace (write, fsync, rename, fsync dir)", replace),
    ] {
        times.sort_unstable();
        let at = |q: f64| times[((q * times.len() as f64) as usize).min(times.len() - 1)];
        let median = at(0.5);
        println!(
            "{name}: median {median} us, p99 {} us, {:.0}/s serial at the median",
            at(0.99),
            1e6 / median.max(1) as f64
        );
    }
    Ok(())
}

/// Runs `op` `count` times; each run's duration in microseconds.
fn time_each(count: usize, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<u64>> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let start = Instant::now();
        op()?;
        times.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(times)
}

/// A random run name: the ID of a fresh key (the core draws seeds from the OS).
fn run_id() -> anyhow::Result<String> {
    let key = SignerKey::generate("bench", KeyType::Ed25519).map_err(|e| anyhow!("{e}"))?;
    Ok(format!("{:08x}", key.key_id()))
}
