//! `modeltrail note verify`, `modeltrail keygen` and `modeltrail vkey`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use super::{read_input, stdin_path};
use crate::tlog::note::{KeyType, Note, SignerKey, VerifierKey};

#[derive(Subcommand)]
pub(super) enum NoteCommand {
    /// Verify a signed note. Succeeds only if at least one given key
    /// verifies it and no given key's signature fails; signatures by other
    /// keys are ignored.
    Verify(NoteVerifyArgs),
}

#[derive(Args)]
pub(super) struct NoteVerifyArgs {
    /// A trusted verifier key (vkey), e.g. the log's; repeat for witnesses.
    #[arg(long = "key", required = true, value_parser = parse_vkey)]
    keys: Vec<VerifierKey>,
    /// The note file, `-` or nothing for standard input.
    #[arg(default_value_os_t = stdin_path())]
    file: PathBuf,
}

impl NoteCommand {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let NoteCommand::Verify(a) = self;
        let bytes = read_input(&a.file)?;
        let note = Note::parse(&bytes).with_context(|| format!("note {}", a.file.display()))?;
        let verified = note.verify(&a.keys).context("note rejected")?;
        for v in verified {
            match v.timestamp {
                Some(t) => println!("OK: cosigned by {} at {t}", v.key),
                None => println!("OK: signed by {}", v.key),
            }
        }
        Ok(())
    }
}

#[derive(Args)]
pub(super) struct KeygenArgs {
    /// The key name: a log's origin (e.g. `example.com/modeltrail`) or a
    /// witness's or signer's name.
    #[arg(long)]
    name: String,
    /// Where to write the private key (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Make a witness cosigning key (cosignature/v1, type 0x04) instead of a
    /// note signing key (Ed25519, type 0x01).
    #[arg(long)]
    cosigner: bool,
}

impl KeygenArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let key_type = match self.cosigner {
            true => KeyType::CosignatureV1,
            false => KeyType::Ed25519,
        };
        if self.out.exists() {
            bail!(
                "{} already exists (keys are never overwritten); its vkey: modeltrail vkey {}",
                self.out.display(),
                self.out.display()
            );
        }
        let key = SignerKey::generate(&self.name, key_type).context("generating key")?;
        write_private_key(&self.out, &key.to_private_string())?;
        println!("{}", key.verifier());
        Ok(())
    }
}

#[derive(Args)]
pub(super) struct VkeyArgs {
    /// The private key file (as written by `keygen` or `init`).
    key: PathBuf,
}

impl VkeyArgs {
    /// Prints the vkey of an existing private key file, so that `keygen
    /// --out k` never has to be re-run (it refuses to overwrite) to get it.
    pub(super) fn run(self) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(&self.key)
            .with_context(|| format!("reading {}", self.key.display()))?;
        let key = SignerKey::parse(text.trim_end())
            .with_context(|| format!("key file {}", self.key.display()))?;
        println!("{}", key.verifier());
        Ok(())
    }
}

/// Parses a vkey argument for clap.
fn parse_vkey(text: &str) -> Result<VerifierKey, String> {
    VerifierKey::parse(text).map_err(|e| e.to_string())
}

/// Writes a private key file readable only by its owner, refusing to replace
/// an existing file, and syncs it to disk.
pub(crate) fn write_private_key(path: &Path, key: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
