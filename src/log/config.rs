//! The log's configuration file (`<data>/config.toml`) and the data
//! directory layout.
//!
//! ```text
//! <data>/config.toml      this file; edit and restart to change settings
//! <data>/keys/log.key     the log's checkpoint signing key (mode 0600)
//! <data>/keys/admin.key   the initial policy's admin key (mode 0600)
//! <data>/tiles/           the tlog-tiles tree: the source of truth, servable statically
//! <data>/index/           the redb index: derived, rebuilt from tiles/ when missing or bad
//! <data>/tokens           read tokens' SHA-256 hashes (private logs; `modeltrail token`)
//! ```
//!
//! Precedence: command-line flags, then `MODELTRAIL_*` environment variables
//! (handled by the CLI), then this file, then the defaults below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default listen address: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";

/// Everything `modeltrail serve` reads from `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The checkpoint origin line, e.g. `log.example.com/modeltrail`.
    pub origin: String,
    /// Where the HTTP server listens.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Batching and pushback.
    #[serde(default)]
    pub sequencer: SequencerConfig,
    /// HTTP limits.
    #[serde(default)]
    pub http: HttpConfig,
    /// What inference and transition times the log accepts.
    #[serde(default)]
    pub time: TimeConfig,
    /// The witnesses that cosign the served checkpoint.
    #[serde(default)]
    pub witness: WitnessConfig,
    /// The derived index.
    #[serde(default)]
    pub index: IndexConfig,
    /// Who may read the log's content.
    #[serde(default)]
    pub access: AccessConfig,
}

/// Read access (`[access] read = "public" | "token"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `public` (anyone reads) or `token` (content needs a bearer token
    /// from `<data>/tokens`).
    pub read: super::access::ReadAccess,
}

/// The derived index's tuning.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Entries each ID map (artefact IDs, request IDs) holds in memory
    /// before writing them out as a sorted run: the most entries the index
    /// re-reads from the tiles after a crash, at ~40 bytes of memory each
    /// per map. At least 1.
    pub memtable_entries: usize,
}

impl IndexConfig {
    /// The options the index opens with.
    pub fn options(&self) -> crate::store::index::IndexOptions {
        crate::store::index::IndexOptions {
            memtable_pairs: self.memtable_entries,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            memtable_entries: crate::store::idmap::DEFAULT_FLUSH_PAIRS,
        }
    }
}

/// Witnessing (c2sp.org/tlog-witness): off unless `policy` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessConfig {
    /// A c2sp.org/tlog-policy file: `witness <name> <vkey> <url>` lines and
    /// the `quorum` the checkpoint served at `/checkpoint` must meet.
    /// A relative path is relative to the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    /// Longest a witnessing round waits for answers, in milliseconds.
    pub timeout_ms: u64,
    /// Longest a failing witness is skipped before the next try, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for WitnessConfig {
    fn default() -> Self {
        WitnessConfig {
            policy: None,
            timeout_ms: 5_000,
            max_backoff_ms: 30_000,
        }
    }
}

/// Bounds on the times entries state, relative to the log's clock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeConfig {
    /// How far ahead of the log's clock an inference's `served_at` or a
    /// transition's `at` may be (clock skew), in milliseconds.
    pub max_future_ms: u64,
    /// How far behind the log's clock an inference's `served_at` may be
    /// (late uploads of inference logs), in milliseconds.
    pub max_inference_age_ms: u64,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            max_future_ms: 5 * 60 * 1000,
            max_inference_age_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// How the sequencer batches submissions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SequencerConfig {
    /// Most entries integrated in one batch (one checkpoint).
    pub max_batch_entries: usize,
    /// Longest a batch waits for more entries after its first, in milliseconds.
    /// While a batch is being written, new submissions queue up anyway, so
    /// under load batches grow by themselves (group commit).
    pub max_batch_age_ms: u64,
    /// Submissions waiting for the sequencer beyond which `POST /add`
    /// answers 503 with `Retry-After` instead of queueing.
    pub queue_capacity: usize,
    /// Hash tiles kept in memory for serving proofs, expanded (16 KiB for a
    /// full tile: its hashes and the ones above them within the tile).
    pub tile_cache_tiles: usize,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            max_batch_entries: 4096,
            max_batch_age_ms: 2,
            queue_capacity: 65_536,
            tile_cache_tiles: 4096,
        }
    }
}

/// Request and connection limits (the front end, `src/front.rs`, and the
/// body limits, `src/server/limits.rs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest `POST /v1/entries` body, in bytes (413 `batch_too_large`).
    /// `POST /add` takes at most one entry (65,535 bytes); other routes no body.
    pub max_body_bytes: usize,
    /// Bytes of request bodies buffered at once across all requests; a body
    /// that would exceed it is answered 503 `server_busy` with `Retry-After`.
    pub body_budget_bytes: usize,
    /// Most entries in one `POST /v1/entries` batch.
    pub max_batch_entries: usize,
    /// Longest a request may take once its head is read, in milliseconds.
    pub request_timeout_ms: u64,
    /// Longest wait for a whole request head, in milliseconds; also how long
    /// a keep-alive connection may stay idle between requests.
    pub header_read_timeout_ms: u64,
    /// Most open connections (default: as many as the file-descriptor limit
    /// allows, less a reserve of 128 for the log's own files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// After SIGTERM, longest wait for requests in progress, in milliseconds;
    /// then the connections left are dropped.
    pub shutdown_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 8 << 20,
            body_budget_bytes: 32 << 20,
            max_batch_entries: 4096,
            request_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            max_connections: None,
            shutdown_timeout_ms: 10_000,
        }
    }
}

impl HttpConfig {
    /// The front end's limits.
    pub fn front(&self) -> crate::front::FrontConfig {
        crate::front::FrontConfig {
            header_read_timeout: std::time::Duration::from_millis(self.header_read_timeout_ms),
            max_connections: self.max_connections,
            shutdown_timeout: std::time::Duration::from_millis(self.shutdown_timeout_ms),
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address parses")
}

/// Why the configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, from the TOML parser.
        message: String,
    },
}

impl Config {
    /// A configuration with every default and the given origin.
    pub fn new(origin: &str) -> Config {
        Config {
            origin: origin.to_owned(),
            listen: default_listen(),
            sequencer: SequencerConfig::default(),
            http: HttpConfig::default(),
            time: TimeConfig::default(),
            witness: WitnessConfig::default(),
            index: IndexConfig::default(),
            access: AccessConfig::default(),
        }
    }

    /// Reads `<data>/config.toml`, or `None` if the data directory has none
    /// (it is not initialised).
    pub fn load(data: &Path) -> Result<Option<Config>, ConfigError> {
        let path = DataDir(data).config();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let mut config =
            Config::parse(&text).map_err(|message| ConfigError::Invalid { path, message })?;
        if let Some(policy) = config.witness.policy.as_mut() {
            *policy = data.join(&*policy);
        }
        Ok(Some(config))
    }

    /// Parses the text of a `config.toml` (the fuzz target `log_config`
    /// calls this); the error is the TOML parser's message.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The file's text, with a header explaining it.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("a Config always serialises");
        format!(
            "# modeltrail log configuration. Edit and restart `modeltrail serve`.\n\
             # Flags and MODELTRAIL_* environment variables override these values.\n\n{body}"
        )
    }
}

/// Paths inside a data directory.
#[derive(Debug, Clone, Copy)]
pub struct DataDir<'a>(pub &'a Path);

impl DataDir<'_> {
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    /// The key directory.
    pub fn keys(&self) -> PathBuf {
        self.0.join("keys")
    }
    /// The log's checkpoint signing key.
    pub fn log_key(&self) -> PathBuf {
        self.keys().join("log.key")
    }
    /// The initial admin key.
    pub fn admin_key(&self) -> PathBuf {
        self.keys().join("admin.key")
    }
    /// The tlog-tiles tree.
    pub fn tiles(&self) -> PathBuf {
        self.0.join("tiles")
    }
    /// The derived index (a directory: a redb file and the ID maps).
    pub fn index(&self) -> PathBuf {
        self.0.join("index")
    }
    /// The read tokens' hashes (`modeltrail token`).
    pub fn tokens(&self) -> PathBuf {
        self.0.join("tokens")
    }

    /// Takes the data directory's lock: one process (a running log,
    /// `reindex`, `init`) at a time. Held until the returned file is dropped.
    pub fn lock(&self) -> Result<std::fs::File, ConfigError> {
        let path = self.0.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(ConfigError::Io {
                path,
                source: std::io::Error::other(
                    "another modeltrail process (a running log?) is using this data directory",
                ),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(ConfigError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_toml() {
        let config = Config::new("log.example/test");
        let parsed: Config = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let parsed: Config = toml::from_str("origin = \"a/b\"\n").unwrap();
        assert_eq!(parsed, Config::new("a/b"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("origin = \"a\"\nlisten_addr = \"x\"\n").is_err());
        assert!(toml::from_str::<Config>("origin = \"a\"\n[sequencer]\nbatch = 1\n").is_err());
    }
}
