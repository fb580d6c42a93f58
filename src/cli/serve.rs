//! `modeltrail serve`, `modeltrail init` and `modeltrail reindex`: running
//! the log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use clap::Args;

use crate::log::access::ReadAccess;
use crate::log::config::{Config, DataDir};

/// Where a log keeps its state unless told otherwise.
const DEFAULT_DATA: &str = "./modeltrail-data";

#[derive(Args)]
pub(super) struct ServeArgs {
    /// The data directory; initialised on first start.
    #[arg(long, env = "MODELTRAIL_DATA", default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// Listen address (overrides config.toml).
    #[arg(long, env = "MODELTRAIL_LISTEN")]
    listen: Option<SocketAddr>,
    /// The checkpoint origin, used only when initialising.
    #[arg(long, env = "MODELTRAIL_ORIGIN")]
    origin: Option<String>,
    /// A c2sp tlog-policy file naming the witnesses (`witness <name> <vkey>
    /// <url>`) and the quorum `/checkpoint` must meet (overrides config.toml).
    #[arg(long, env = "MODELTRAIL_WITNESS_POLICY")]
    witness_policy: Option<PathBuf>,
}

#[derive(Args)]
pub(super) struct InitArgs {
    /// The data directory to create.
    #[arg(long, env = "MODELTRAIL_DATA", default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// The checkpoint origin, e.g. `log.example.com/modeltrail`: the log's
    /// public identity (default: a random `localhost/modeltrail-<hex>`).
    #[arg(long, env = "MODELTRAIL_ORIGIN")]
    origin: Option<String>,
    /// Who may read the log's content: `public` (anyone) or `token` (a
    /// bearer token from `modeltrail token create`; checkpoints, hash tiles
    /// and proofs stay public).
    #[arg(long, default_value = "public", value_parser = ReadAccess::parse)]
    read_access: ReadAccess,
}

#[derive(Args)]
pub(super) struct ReindexArgs {
    /// The data directory of a stopped log.
    #[arg(long, env = "MODELTRAIL_DATA", default_value = DEFAULT_DATA)]
    data: PathBuf,
}

/// Threads for blocking work (proofs, tile and entry reads, the sequencer's
/// batches). That work is CPU-bound or reads the page cache, so more threads
/// than a few per core add no throughput: tokio's default (512) let 32
/// concurrent proof readers spawn ~120 threads. Capped at 8, proofs at 10^7
/// entries ran at ~22,000 requests/s against ~14,400 uncapped (at load 3–6
/// against ~9 on the shared machine; BENCHMARKS.md).
const BLOCKING_THREADS: usize = 8;

/// The most malloc arenas glibc may create (its default is 8 per core).
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`] unless the operator set
/// `MALLOC_ARENA_MAX`. glibc gives each allocating thread an arena of its
/// own and keeps an arena's freed memory, so every blocking thread that ever
/// integrated a batch held that batch's peak: after proofs had started all
/// blocking threads, batched writes at 10^7 entries took the server from
/// 96 MiB to 290 MiB; with two arenas, 85 → 156 MiB (BENCHMARKS.md).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator and is called before the
        // runtime starts any thread; a refused value leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

impl InitArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        initialise(&self.data, self.origin, self.read_access)
    }
}

impl ServeArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        init_tracing();
        let mut config = match Config::load(&self.data)? {
            Some(config) => config,
            None => {
                initialise(&self.data, self.origin, ReadAccess::Public)?;
                Config::load(&self.data)?.context("config.toml missing right after init")?
            }
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(policy) = &self.witness_policy {
            let policy = std::path::absolute(policy)
                .with_context(|| format!("resolving {}", policy.display()))?;
            config.witness.policy = Some(policy);
        }
        limit_malloc_arenas();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async move {
            let listen = config.listen;
            let gate = crate::server::Gate::open(config.access.read, DataDir(&self.data).tokens())
                .map_err(|e| anyhow!("{e}"))?;
            let read = config.access.read;
            let data = self.data.clone();
            let opened = tokio::task::spawn_blocking(move || crate::log::open(&data, config))
                .await
                .context("opening the log")??;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let published = opened.log.published();
            eprintln!(
                "modeltrail: serving {} (size {}) on http://{}",
                opened.log.origin,
                published.size,
                listener.local_addr()?
            );
            if let Some(policy) = &opened.log.witness_policy {
                let names: Vec<&str> = policy.witnesses().iter().map(|w| w.name.as_str()).collect();
                eprintln!(
                    "modeltrail: checkpoints are witnessed by {}",
                    names.join(", ")
                );
            }
            if read == ReadAccess::Token {
                eprintln!("modeltrail: private log: content needs a bearer token");
            }
            crate::server::serve(listener, opened, gate)
                .await
                .context("serving")
        })
    }
}

impl ReindexArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        init_tracing();
        let config = Config::load(&self.data)?.ok_or_else(|| {
            anyhow!(
                "{} is not an initialised data directory",
                self.data.display()
            )
        })?;
        let dirs = DataDir(&self.data);
        let _lock = dirs.lock()?;
        let store = crate::store::fs::FsTileStore::new(dirs.tiles())?;
        let note =
            crate::store::TileStore::checkpoint(&store)?.context("tiles/checkpoint is missing")?;
        let key = std::fs::read_to_string(dirs.log_key()).context("reading keys/log.key")?;
        let key = crate::tlog::note::SignerKey::parse(key.trim_end())?;
        let checkpoint =
            crate::tlog::checkpoint::Checkpoint::open(&note, &key.verifier(), &[])?.checkpoint;
        anyhow::ensure!(
            checkpoint.origin == config.origin,
            "the checkpoint's origin is not the configured one"
        );
        let (index, replaced) = crate::store::index::Index::fresh_aside(
            &dirs.index(),
            std::sync::Arc::new(store),
            config.index.options(),
        )
        .context("creating a fresh index")?;
        index.catch_up(checkpoint.size)?;
        index.flush()?;
        drop(index);
        // The operator asked for a rebuild: the index it replaced is derived
        // data, deleted once the new one is complete (an index the server
        // sets aside on its own start is kept; ARCHITECTURE.md).
        if let Some(old) = replaced {
            std::fs::remove_dir_all(&old)
                .with_context(|| format!("removing the replaced index {}", old.display()))?;
        }
        println!("reindexed {} entries", checkpoint.size);
        Ok(())
    }
}

/// Initialises a data directory and tells the operator where the keys are.
fn initialise(data: &Path, origin: Option<String>, read: ReadAccess) -> anyhow::Result<()> {
    let origin = match origin {
        Some(origin) => origin,
        None => {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes).map_err(|e| anyhow!("random origin: {e}"))?;
            format!("localhost/modeltrail-{}", u32::from_be_bytes(bytes))
        }
    };
    let done = crate::log::init(data, &origin, read)?;
    let dirs = DataDir(data);
    eprintln!(
        "modeltrail: initialised {} for origin {}",
        data.display(),
        done.origin
    );
    println!("log vkey:   {}", done.log_vkey);
    println!("admin vkey: {}", done.admin_vkey);
    eprintln!(
        "log key:    {} (signs checkpoints; keep it secret)",
        dirs.log_key().display()
    );
    eprintln!(
        "admin key:  {} (signs policy updates; keep it secret)",
        dirs.admin_key().display()
    );
    eprintln!("config:     {}", dirs.config().display());
    if read == ReadAccess::Token {
        eprintln!(
            "read access: token (create one with `modeltrail token create --data {} --name NAME`)",
            data.display()
        );
    }
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELTRAIL_LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
