//! The witness configuration file, `config.json`: the witness's name and the
//! logs it witnesses, each an origin and the log's trusted public keys
//! (tlog-witness §Introduction: "Each witness is configured with a list of
//! supported log public keys", each log "uniquely identified by its origin
//! line").
//!
//! ```json
//! {"logs":[{"keys":["example.com/log+0123abcd+AQ..."],"origin":"example.com/log"}],"name":"witness.example/w1","v":1}
//! ```
//!
//! [`Config::parse`] accepts exactly what [`Config::to_bytes`] could write:
//! unknown fields, an empty or control-character origin, a key that is not
//! an Ed25519 (`0x01`) note key, a repeated origin or a repeated key are
//! refused, so a typo never silently drops a log.

use modeltrail::tlog::note::{KeyType, VerifierKey};
use serde::{Deserialize, Serialize};

/// The largest configuration file read, in bytes (about 4,000 logs).
pub const MAX_CONFIG_SIZE: usize = 4 << 20;

/// The most keys one origin may list (a log rotating keys needs two).
pub const MAX_KEYS_PER_LOG: usize = 16;

/// The format version written in `v`.
const VERSION: u32 = 1;

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Larger than [`MAX_CONFIG_SIZE`].
    #[error("configuration is larger than {MAX_CONFIG_SIZE} bytes")]
    TooLarge,
    /// Not the JSON shape of a configuration.
    #[error("configuration is not valid: {0}")]
    Json(String),
    /// A `v` other than 1.
    #[error("configuration version {0} is not supported (expected 1)")]
    Version(u32),
    /// An origin that cannot be a checkpoint's first line.
    #[error("origin {0:?} is not a checkpoint origin (non-empty, no control characters)")]
    Origin(String),
    /// A key that does not parse, or is not an Ed25519 note key.
    #[error("log key {key:?}: {why}")]
    Key {
        /// The key as written.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// The same origin twice.
    #[error("origin {0:?} is listed twice")]
    DuplicateOrigin(String),
    /// The same key twice for one origin.
    #[error("log {origin:?} lists key {key} twice")]
    DuplicateKey {
        /// The origin.
        origin: String,
        /// The repeated key.
        key: String,
    },
    /// An origin without keys, or with more than [`MAX_KEYS_PER_LOG`].
    #[error("log {0:?} must have between 1 and {MAX_KEYS_PER_LOG} keys")]
    KeyCount(String),
}

/// One witnessed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The checkpoint origin line that identifies the log.
    pub origin: String,
    /// The log's Ed25519 note keys; a checkpoint needs a valid signature by one.
    pub keys: Vec<VerifierKey>,
}

/// The parsed `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The witness's name, also its key name (it appears on cosignature lines).
    pub name: String,
    /// The logs witnessed, in the order they were added.
    pub logs: Vec<LogConfig>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    v: u32,
    name: String,
    logs: Vec<RawLog>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    origin: String,
    keys: Vec<String>,
}

impl Config {
    /// A configuration with no logs.
    pub fn new(name: &str) -> Config {
        Config {
            name: name.to_owned(),
            logs: Vec::new(),
        }
    }

    /// Parses and validates `config.json`. Never panics; a fuzzing entry point.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.len() > MAX_CONFIG_SIZE {
            return Err(ConfigError::TooLarge);
        }
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        if raw.v != VERSION {
            return Err(ConfigError::Version(raw.v));
        }
        let mut config = Config::new(&raw.name);
        for log in raw.logs {
            let keys = log
                .keys
                .iter()
                .map(|k| parse_log_key(k))
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Err(ConfigError::KeyCount(log.origin));
            }
            if config.log(&log.origin).is_some() {
                return Err(ConfigError::DuplicateOrigin(log.origin));
            }
            for key in keys {
                config.add_log(&log.origin, key)?;
            }
        }
        Ok(config)
    }

    /// The file contents: JSON, one line, newline-terminated.
    pub fn to_bytes(&self) -> Vec<u8> {
        let raw = RawConfig {
            v: VERSION,
            name: self.name.clone(),
            logs: self
                .logs
                .iter()
                .map(|l| RawLog {
                    origin: l.origin.clone(),
                    keys: l.keys.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        };
        let mut out = serde_json::to_vec(&raw).expect("configuration serialises");
        out.push(b'\n');
        out
    }

    /// Adds `key` to the log `origin`, adding the log if new. Refuses a key
    /// the log already has, and keys that cannot sign checkpoints.
    pub fn add_log(&mut self, origin: &str, key: VerifierKey) -> Result<(), ConfigError> {
        check_origin(origin)?;
        if key.key_type() != KeyType::Ed25519 {
            return Err(ConfigError::Key {
                key: key.to_string(),
                why: "not an Ed25519 (type 0x01) note key; a log signs checkpoints with one".into(),
            });
        }
        match self.logs.iter_mut().find(|l| l.origin == origin) {
            Some(log) if log.keys.contains(&key) => Err(ConfigError::DuplicateKey {
                origin: origin.to_owned(),
                key: key.to_string(),
            }),
            Some(log) if log.keys.len() == MAX_KEYS_PER_LOG => {
                Err(ConfigError::KeyCount(origin.to_owned()))
            }
            Some(log) => {
                log.keys.push(key);
                Ok(())
            }
            None => {
                self.logs.push(LogConfig {
                    origin: origin.to_owned(),
                    keys: vec![key],
                });
                Ok(())
            }
        }
    }

    /// The log whose origin is `origin`.
    pub fn log(&self, origin: &str) -> Option<&LogConfig> {
        self.logs.iter().find(|l| l.origin == origin)
    }
}

/// Parses a vkey string as a log key (any type; [`Config::add_log`] checks it).
pub fn parse_log_key(text: &str) -> Result<VerifierKey, ConfigError> {
    VerifierKey::parse(text).map_err(|e| ConfigError::Key {
        key: text.to_owned(),
        why: e.to_string(),
    })
}

/// An origin must be a possible checkpoint first line: non-empty, no
/// control characters (tlog-checkpoint).
fn check_origin(origin: &str) -> Result<(), ConfigError> {
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return Err(ConfigError::Origin(origin.to_owned()));
    }
    Ok(())
}

/// The name under which the monitoring endpoint serves a log's latest
/// cosigned checkpoint: lowercase hex of SHA-256 of the origin.
pub fn origin_hash_hex(origin: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(origin.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
