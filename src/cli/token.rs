//! `modeltrail token create|revoke|list`: the read tokens of a private log
//! (`<data>/tokens`, hashes only). They work while the log runs: the server
//! re-reads the file when it changes (within 250 ms).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};

use crate::log::access::{self, TokenFile, TokenRecord};
use crate::log::config::{Config, DataDir};

#[derive(Args)]
pub(super) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (once: only its hash is kept).
    Create {
        #[command(flatten)]
        data: DataFlag,
        /// A name for the token (who or what uses it): 1-64 of A-Z a-z 0-9 . _ -
        #[arg(long)]
        name: String,
    },
    /// Revoke a token by name; a running log refuses it within a second.
    Revoke {
        #[command(flatten)]
        data: DataFlag,
        /// The token's name.
        #[arg(long)]
        name: String,
    },
    /// List the tokens: names, creation times, revoked or not (never the tokens).
    List {
        #[command(flatten)]
        data: DataFlag,
    },
}

#[derive(Args)]
struct DataFlag {
    /// The log's data directory.
    #[arg(long, env = "MODELTRAIL_DATA", default_value = "./modeltrail-data")]
    data: PathBuf,
}

impl TokenArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        match self.command {
            TokenCommand::Create { data, name } => create(&data.data, &name),
            TokenCommand::Revoke { data, name } => revoke(&data.data, &name),
            TokenCommand::List { data } => list(&data.data),
        }
    }
}

/// Reads the token file (an absent one has no tokens), after checking that
/// `data` is an initialised data directory.
pub(crate) fn read_tokens(data: &Path) -> anyhow::Result<TokenFile> {
    if Config::load(data)?.is_none() {
        bail!("{} is not an initialised data directory", data.display());
    }
    let path = DataDir(data).tokens();
    match std::fs::read_to_string(&path) {
        Ok(text) => TokenFile::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Runs `change` on the token file under `<data>/tokens.lock` (token
/// commands only; the log itself only reads the file) and replaces the file
/// durably.
fn edit<T>(
    data: &Path,
    change: impl FnOnce(&mut TokenFile) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let lock_path = data.join("tokens.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let mut file = read_tokens(data)?;
    let out = change(&mut file)?;
    super::fetch::write_atomically(&DataDir(data).tokens(), file.to_text().as_bytes())?;
    drop(lock);
    Ok(out)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn create(data: &Path, name: &str) -> anyhow::Result<()> {
    if !access::valid_name(name) {
        bail!("token name {name:?} is not 1-64 of A-Z a-z 0-9 . _ -");
    }
    let token = access::new_token().map_err(|e| anyhow!("generating a token: {e}"))?;
    edit(data, |file| {
        if file.records.iter().any(|r| r.name == name) {
            bail!("a token named {name:?} already exists (names are never reused)");
        }
        file.records.push(TokenRecord {
            name: name.to_owned(),
            created_ms: now_ms(),
            hash: access::hash_token(&token),
            revoked_ms: None,
        });
        Ok(())
    })?;
    if Config::load(data)?.is_some_and(|c| c.access.read == access::ReadAccess::Public) {
        eprintln!(
            "modeltrail: note: this log is public (config.toml [access] read = \"public\"): \
             tokens are not needed to read it"
        );
    }
    eprintln!("modeltrail: created token {name:?}; it is shown once, store it now");
    println!("{token}");
    Ok(())
}

fn revoke(data: &Path, name: &str) -> anyhow::Result<()> {
    edit(data, |file| {
        let record = file
            .records
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| anyhow!("no token named {name:?}"))?;
        if record.revoked_ms.is_some() {
            bail!("the token {name:?} is already revoked");
        }
        record.revoked_ms = Some(now_ms());
        Ok(())
    })?;
    println!("revoked token {name:?}");
    Ok(())
}

fn list(data: &Path) -> anyhow::Result<()> {
    let file = read_tokens(data)?;
    let time = |ms: u64| {
        crate::entry::Timestamp::from_unix_millis(ms).map_or(ms.to_string(), |t| t.to_string())
    };
    for r in &file.records {
        let state = r
            .revoked_ms
            .map_or("active".to_owned(), |ms| format!("revoked {}", time(ms)));
        println!("{} created {} {state}", r.name, time(r.created_ms));
    }
    Ok(())
}
