//! The `modeltrail-witness` command line.
//!
//! Every command exits 0 on success, 1 with one line
//! `modeltrail-witness: <reason>` on stderr on failure, and 2 on a usage
//! error. Machine-readable output (the vkey of `init`, JSON) goes to stdout,
//! messages for people to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use modeltrail::entry::bodies::Timestamp;
use serde_json::{Value, json};

use crate::config::{origin_hash_hex, parse_log_key};
use crate::store::{DataDir, Store};

/// A C2SP tlog-witness (c2sp.org/tlog-witness) for modeltrail logs.
#[derive(Parser)]
#[command(name = "modeltrail-witness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The data directory argument every command takes.
#[derive(clap::Args)]
struct Data {
    /// The witness's data directory.
    #[arg(long, env = "MODELTRAIL_WITNESS_DATA")]
    data: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Create the witness key (cosignature/v1) and configuration; print the vkey.
    Init {
        #[command(flatten)]
        data: Data,
        /// The witness's name, e.g. `witness.regulator.example/w1`.
        #[arg(long)]
        name: String,
    },
    /// Witness a log: its checkpoint origin and one of its public keys.
    AddLog {
        #[command(flatten)]
        data: Data,
        /// The log's checkpoint origin (first line of its checkpoints).
        #[arg(long)]
        origin: String,
        /// The log's Ed25519 note verifier key (vkey). Repeat add-log to add more.
        #[arg(long)]
        key: String,
    },
    /// Serve POST /add-checkpoint and GET <prefix>/<origin hash>/checkpoint.
    Serve {
        #[command(flatten)]
        data: Data,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: SocketAddr,
        /// The monitoring prefix for GET <prefix>/<hex sha256(origin)>/checkpoint.
        #[arg(long, default_value = "/")]
        monitoring_prefix: String,
        /// Requests taking longer are answered 408.
        #[arg(long, default_value_t = 10_000)]
        request_timeout_ms: u64,
        /// A request head must arrive whole within this (also how long a
        /// keep-alive connection may stay idle), else the connection closes.
        #[arg(long, default_value_t = 10_000)]
        header_read_timeout_ms: u64,
        /// Most open connections (default: the file-descriptor limit, raised
        /// to its hard limit, less a reserve of 128). At the limit the oldest
        /// idle connection is closed; if none is idle the new one gets 503.
        #[arg(long)]
        max_connections: Option<usize>,
        /// After SIGTERM, longest wait for requests in progress; then the
        /// connections left are dropped.
        #[arg(long, default_value_t = 10_000)]
        shutdown_timeout_ms: u64,
        /// Rewrite the state journal with one record per log past this size.
        #[arg(long, default_value_t = 64 << 20, hide = true)]
        compact_bytes: u64,
    },
    /// Show the witnessed logs and the latest checkpoint cosigned for each.
    Status {
        #[command(flatten)]
        data: Data,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the evidence of log misbehaviour kept so far, as JSON.
    Evidence {
        #[command(flatten)]
        data: Data,
    },
    /// Load-test a running witness with synthetic logs (registers them in --data).
    Bench(crate::bench::BenchArgs),
    /// Measure what a synced append and an atomic replace cost on a disk.
    BenchDisk(crate::bench::DiskArgs),
}

/// Runs the command line; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output went away (`status | head -1`):
        // end quietly, with the status a shell gives a process SIGPIPE ended.
        Err(err) if is_broken_pipe(&err) => ExitCode::from(141),
        Err(err) => {
            eprintln!("modeltrail-witness: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error chain on one line, each cause once ([`modeltrail::error_line`]).
fn one_line(err: &anyhow::Error) -> String {
    modeltrail::error_line(err.as_ref()).replace('\n', " ")
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init { data, name } => {
            let vkey = DataDir::new(&data.data).init(&name)?;
            eprintln!(
                "modeltrail-witness: created the witness key in {}",
                data.data.display()
            );
            print_out(&vkey.to_string())
        }
        Command::AddLog { data, origin, key } => {
            let key = parse_log_key(&key)?;
            DataDir::new(&data.data).add_logs(&[(origin.clone(), key)])?;
            eprintln!(
                "modeltrail-witness: witnessing {origin} (a running witness picks this up within a second)"
            );
            Ok(())
        }
        Command::Serve {
            data,
            listen,
            monitoring_prefix,
            request_timeout_ms,
            header_read_timeout_ms,
            max_connections,
            shutdown_timeout_ms,
            compact_bytes,
        } => serve(
            DataDir::new(&data.data),
            listen,
            &normalise_prefix(&monitoring_prefix)?,
            Duration::from_millis(request_timeout_ms),
            modeltrail::front::FrontConfig {
                header_read_timeout: Duration::from_millis(header_read_timeout_ms),
                max_connections,
                shutdown_timeout: Duration::from_millis(shutdown_timeout_ms),
            },
            compact_bytes,
        ),
        Command::Status { data, json } => status(&DataDir::new(&data.data), json),
        Command::Evidence { data } => {
            let records = DataDir::new(&data.data).read_evidence()?;
            print_out(&serde_json::to_string_pretty(&records)?)
        }
        Command::Bench(args) => crate::bench::run(args),
        Command::BenchDisk(args) => crate::bench::disk(&args),
    }
}

/// `"/"` is the root (`""`); otherwise `/a/b` without a trailing slash.
fn normalise_prefix(prefix: &str) -> anyhow::Result<String> {
    let trimmed = prefix.trim_end_matches('/');
    if !prefix.starts_with('/') || trimmed.contains("//") || trimmed.contains(['{', '}', '*']) {
        bail!("monitoring prefix {prefix:?} must be a path starting with '/'");
    }
    Ok(trimmed.to_owned())
}

/// `serve`: open the state, start the writer and the HTTP server, run until
/// SIGINT/SIGTERM.
fn serve(
    dir: DataDir,
    listen: SocketAddr,
    monitoring_prefix: &str,
    timeout: Duration,
    front: modeltrail::front::FrontConfig,
    compact_bytes: u64,
) -> anyhow::Result<()> {
    init_tracing();
    let config = dir.read_config()?;
    let key = dir.read_key(&config)?;
    let _lock = dir.lock_server()?;
    let replay = dir.read_state()?;
    let (store, writer) = Store::open(&dir, &replay, compact_bytes)?;
    let witness = Arc::new(crate::server::Witness::new(
        dir,
        key,
        &config,
        replay.latest,
        store,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen on {listen}"))?;
        eprintln!(
            "modeltrail-witness: serving {} ({} logs, {} records) on http://{}",
            config.name,
            witness.log_count(),
            replay.records,
            listener.local_addr()?
        );
        tokio::spawn(crate::server::watch_config(witness.clone()));
        let app = crate::server::router(witness.clone(), monitoring_prefix, timeout);
        modeltrail::front::serve(listener, app, front, shutdown_signal())
            .await
            .context("serve")
    })?;
    drop(runtime);
    drop(witness);
    let _ = writer.join();
    eprintln!("modeltrail-witness: stopped");
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELTRAIL_WITNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `text` and a newline to standard output; unlike `println!`, a
/// closed pipe is an error (see [`is_broken_pipe`]), not a panic.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// `status`: the configured logs and their latest cosigned checkpoints.
fn status(dir: &DataDir, as_json: bool) -> anyhow::Result<()> {
    let config = dir.read_config()?;
    let vkey = dir.read_key(&config)?.verifier();
    let state = dir.read_state()?;
    let evidence = dir.read_evidence()?.len();
    let logs: Vec<Value> = config
        .logs
        .iter()
        .map(|log| {
            let latest = state.latest.get(&log.origin).map(|r| {
                json!({
                    "size": r.checkpoint.size,
                    "root": r.checkpoint.root.to_base64(),
                    "cosigned_at": format_secs(r.time),
                    "checkpoint": crate::journal::note_string(&r.note),
                })
            });
            json!({
                "origin": log.origin,
                "origin_hash": origin_hash_hex(&log.origin),
                "keys": log.keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "latest": latest,
            })
        })
        .collect();
    if as_json {
        let out = json!({"name": config.name, "vkey": vkey.to_string(), "logs": logs, "evidence": evidence});
        return print_out(&serde_json::to_string_pretty(&out)?);
    }
    let mut text = format!(
        "witness {} ({vkey})\n{} log(s), {evidence} evidence record(s)",
        config.name,
        logs.len()
    );
    for log in &logs {
        text += &format!("\n{}", log["origin"].as_str().unwrap_or_default());
        match log["latest"].as_object() {
            Some(l) => {
                text += &format!(
                    "\n  latest cosigned: size {}, root {}, at {}",
                    l["size"],
                    l["root"].as_str().unwrap_or_default(),
                    l["cosigned_at"].as_str().unwrap_or_default()
                )
            }
            None => text += "\n  latest cosigned: none yet",
        }
    }
    print_out(&text)
}

/// POSIX seconds as `YYYY-MM-DDTHH:MM:SS.000Z`.
fn format_secs(secs: u64) -> String {
    Timestamp::from_unix_millis(secs.saturating_mul(1000))
        .map(|t| t.to_string())
        .unwrap_or_else(|| secs.to_string())
}
