//! The chain audit: read a whole log through its tlog-tiles entry bundles,
//! authenticate every entry against one checkpoint, and replay the chain.
//!
//! Entry bundles are read in order, [`GROUP`] bundles at a time (so memory
//! is bounded by two groups, not the log). A reader thread hashes and
//! parses each group's entries in parallel (rayon) while the calling thread
//! folds the previous group in order into a [`TreeHasher`] and replays it
//! ([`Replay`]). When the last bundle is in, the
//! recomputed tree hash must equal the checkpoint's root: that proves every
//! entry read is exactly the entry the checkpoint commits to, at its index,
//! with nothing missing — the hash tiles are not needed for that.
//!
//! Signatures: by default every entry's Ed25519 signature is verified.
//! With [`AuditOptions::verify_all_signatures`] off (`--fast`) inference
//! entries are read in one serde pass into their typed body, skipping their
//! signature and the canonical-form check, which the log made when it
//! admitted them (governance entries always get every check): they are
//! still authenticated by the tree and the log's signature, their body's
//! schema is checked and their signer's role is checked against the roster.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use rayon::prelude::*;

use super::replay::{Finding, Parsed, PlainCommitments, Replay};
use crate::entry::{ArtefactId, Body, EntryEnvelope, EntryError, Inference, Kind};
use crate::tlog::Hash;
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::compact::TreeHasher;
use crate::tlog::hash::leaf_hash;
use crate::tlog::note::VerifierKey;
use crate::tlog::tile::{TILE_WIDTH, Tile, TileKind, parse_bundle, parse_bundle_for};

/// Entry bundles read and processed together (256 entries each).
pub const GROUP: u64 = 64;

/// Where entry bundles come from: a local tiles directory or a log's URL.
pub trait BundleSource {
    /// The data at the tile's path, `None` if there is none.
    fn read(&mut self, tile: &Tile) -> Result<Option<Vec<u8>>, String>;
}

/// How thorough the audit is.
#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// Verify inference signatures too (governance entries always are).
    pub verify_all_signatures: bool,
    /// Findings listed in full; beyond this they are only counted.
    pub max_findings: usize,
}

/// What the audit found. Serialised as the `--json` report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The audited checkpoint's origin.
    pub origin: String,
    /// Its tree size: every entry below it was read.
    pub size: u64,
    /// Its root hash (base64), which the entries hash to.
    pub root: String,
    /// `all`, or `governance` when inference signatures were skipped.
    pub signatures: &'static str,
    /// Signatures verified.
    pub signatures_verified: u64,
    /// Entries per kind (`invalid`: entries that are not valid entries).
    pub entries: BTreeMap<&'static str, u64>,
    /// Findings per code.
    pub finding_counts: BTreeMap<&'static str, u64>,
    /// All findings.
    pub findings_total: u64,
    /// The first `max_findings` findings, in log order.
    pub findings: Vec<Finding>,
    /// Inferences with plain (non-hiding) commitments: reported, not a
    /// finding (the chain is not broken by them).
    pub plain_commitments: PlainCommitments,
}

impl Report {
    /// Whether the chain is unbroken.
    pub fn clean(&self) -> bool {
        self.findings_total == 0
    }
}

/// Why the audit could not finish: the log itself is unreadable or does not
/// match its checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading a bundle failed.
    #[error("reading {path}: {reason}")]
    Read {
        /// The bundle's path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A bundle the checkpoint implies is not there.
    #[error("entry bundle {0} is missing")]
    Missing(String),
    /// A bundle is malformed.
    #[error("entry bundle {path} is malformed: {reason}")]
    Bundle {
        /// The bundle's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The entries do not hash to the checkpoint's root.
    #[error(
        "the log's entries hash to {computed}, not to the checkpoint's root {expected}: the tiles were altered"
    )]
    RootMismatch {
        /// The recomputed root.
        computed: String,
        /// The checkpoint's.
        expected: String,
    },
}

/// One group's entries: leaf hash, parsed entry, signature verified.
type Group = Vec<(Hash, Result<Parsed, EntryError>, bool)>;

/// Signer keys by vkey text, shared from the replay with the parsers.
type Keys = RwLock<HashMap<String, VerifierKey>>;

/// Audits the log of `checkpoint` (already verified under the auditor's
/// policy) from `source`; `progress` is told the entries done so far.
///
/// A reader thread reads and parses each group (in parallel) while this
/// thread folds the previous one in order, one group ahead at most.
pub fn audit(
    source: &mut (dyn BundleSource + Send),
    checkpoint: &Checkpoint,
    options: AuditOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, AuditError> {
    let keys = Keys::default();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let keys = &keys;
        scope.spawn(move || {
            read_groups(source, checkpoint.size, options, keys, |group| {
                tx.send(group).is_ok()
            })
        });
        let mut fold = Fold::new(options);
        for group in rx {
            fold.group(group?, keys);
            progress(fold.hasher.size());
        }
        fold.finish(checkpoint, options)
    })
}

/// Reads and parses every group in order, handing each to `send` until it
/// answers `false`; a read error is sent as the last item.
fn read_groups(
    source: &mut (dyn BundleSource + Send),
    size: u64,
    options: AuditOptions,
    keys: &Keys,
    mut send: impl FnMut(Result<Group, AuditError>) -> bool,
) {
    let bundles = size.div_ceil(u64::from(TILE_WIDTH));
    let mut first = 0;
    while first < bundles {
        let last = bundles.min(first + GROUP);
        let group = read_group(source, first..last, size).and_then(|data| {
            let entries = split_group(&data)?;
            let keys = keys.read().map(|k| k.clone()).unwrap_or_default();
            Ok(entries
                .par_iter()
                .map(|bytes| {
                    let (entry, verified) = parse(bytes, &keys, options.verify_all_signatures);
                    (leaf_hash(bytes), entry, verified)
                })
                .collect())
        });
        let failed = group.is_err();
        if !send(group) || failed {
            return;
        }
        first = last;
    }
}

/// The in-order part of the audit: tree hash, replay, findings.
struct Fold {
    hasher: TreeHasher,
    replay: Replay,
    findings: Vec<Finding>,
    listed: Vec<Finding>,
    counts: BTreeMap<&'static str, u64>,
    total: u64,
    signatures: u64,
    max_findings: usize,
    keys_known: usize,
}

impl Fold {
    fn new(options: AuditOptions) -> Fold {
        Fold {
            hasher: TreeHasher::new(),
            replay: Replay::new(),
            findings: Vec::new(),
            listed: Vec::new(),
            counts: BTreeMap::new(),
            total: 0,
            signatures: 0,
            max_findings: options.max_findings,
            keys_known: 0,
        }
    }

    /// Folds one group in, and shares any new signer keys with the reader.
    fn group(&mut self, group: Group, keys: &Keys) {
        for (hash, entry, verified) in group {
            let index = self.hasher.size();
            self.hasher.push(hash);
            self.signatures += u64::from(verified);
            self.replay.apply(index, entry, &mut self.findings);
            for f in self.findings.drain(..) {
                self.total += 1;
                *self.counts.entry(f.code).or_default() += 1;
                if self.listed.len() < self.max_findings {
                    self.listed.push(f);
                }
            }
        }
        let known = self.replay.known_keys();
        if known.len() != self.keys_known
            && let Ok(mut shared) = keys.write()
        {
            *shared = known.clone();
            self.keys_known = known.len();
        }
    }

    /// The report, once every entry hashed to the checkpoint's root.
    fn finish(self, checkpoint: &Checkpoint, options: AuditOptions) -> Result<Report, AuditError> {
        let root = self.hasher.root();
        if self.hasher.size() != checkpoint.size || root != checkpoint.root {
            return Err(AuditError::RootMismatch {
                computed: root.to_base64(),
                expected: checkpoint.root.to_base64(),
            });
        }
        Ok(Report {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: root.to_base64(),
            signatures: if options.verify_all_signatures {
                "all"
            } else {
                "governance"
            },
            signatures_verified: self.signatures,
            entries: self.replay.counts().clone(),
            finding_counts: self.counts,
            findings_total: self.total,
            findings: self.listed,
            plain_commitments: self.replay.plain_commitments(),
        })
    }
}

/// Reads the bundles `range` of the tree of `size`, with the tree's widths.
fn read_group(
    source: &mut dyn BundleSource,
    range: std::ops::Range<u64>,
    size: u64,
) -> Result<Vec<(Tile, Vec<u8>)>, AuditError> {
    range
        .map(|n| {
            let tile = Tile::in_tree(TileKind::Entries, n, size)
                .expect("audit: bad math (bundle beyond the tree)");
            read_bundle(source, &tile).map(|data| (tile, data))
        })
        .collect()
}

/// The data of one entry bundle; a partial one may be read as the prefix of its full bundle
/// (tlog-tiles lets a log delete partial tiles once they are full).
pub fn read_bundle(source: &mut dyn BundleSource, tile: &Tile) -> Result<Vec<u8>, AuditError> {
    let read = |source: &mut dyn BundleSource, t: &Tile| {
        source.read(t).map_err(|reason| AuditError::Read {
            path: t.path(),
            reason,
        })
    };
    if let Some(data) = read(source, tile)? {
        return Ok(data);
    }
    if tile.is_partial()
        && let Some(full) = read(source, &tile.full())?
    {
        let entries = parse_bundle(&full).map_err(|e| AuditError::Bundle {
            path: tile.full().path(),
            reason: e.to_string(),
        })?;
        let prefix = entries
            .get(..usize::from(tile.width()))
            .ok_or_else(|| AuditError::Missing(tile.path()))?;
        return crate::tlog::tile::encode_bundle(prefix).map_err(|e| AuditError::Bundle {
            path: tile.path(),
            reason: e.to_string(),
        });
    }
    Err(AuditError::Missing(tile.path()))
}

/// The entries of each bundle, checked against the bundle's width.
fn split_group(data: &[(Tile, Vec<u8>)]) -> Result<Vec<&[u8]>, AuditError> {
    let mut entries = Vec::with_capacity(data.len() * usize::from(TILE_WIDTH));
    for (tile, bytes) in data {
        let bundle = parse_bundle_for(tile, bytes).map_err(|e| AuditError::Bundle {
            path: tile.path(),
            reason: e.to_string(),
        })?;
        entries.extend(bundle);
    }
    Ok(entries)
}

/// Parses one leaf; verifies its signature unless it is an inference and
/// `all` is off. Answers whether the signature was verified.
/// Reads one entry for the audit: with `all` off (`--fast`) an inference by
/// a known signer goes through [`bulk_inference`], anything else through
/// the full parser. Answers the entry and whether its signature was
/// verified. Public for the fuzz target `audit_fast`.
pub fn parse(
    bytes: &[u8],
    keys: &HashMap<String, VerifierKey>,
    all: bool,
) -> (Result<Parsed, EntryError>, bool) {
    if !all && let Some(parsed) = bulk_inference(bytes, keys) {
        return (Ok(parsed), false);
    }
    let envelope = match EntryEnvelope::parse(bytes, |t| keys.get(t).cloned()) {
        Ok(envelope) => envelope,
        Err(e) => return (Err(e), false),
    };
    let verify = all || envelope.kind != Kind::Inference;
    if verify && let Err(e) = envelope.verify_signature() {
        return (Err(e), false);
    }
    let parsed = Body::parse(envelope.kind, &envelope.body).map(|body| Parsed {
        id: (envelope.kind != Kind::Inference).then(|| ArtefactId::of(bytes)),
        signer: envelope.signer,
        body,
    });
    (parsed, verify)
}

/// The envelope of an inference entry, read straight into its typed body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkInference<'a> {
    body: Inference,
    #[serde(borrow)]
    kind: &'a str,
    #[serde(borrow, rename = "sig")]
    _sig: &'a str,
    #[serde(borrow)]
    signer: &'a str,
    v: u64,
}

/// `--fast`'s reading of an inference: one pass of serde into the typed
/// body, without the canonical-form check and the signature (the log made
/// both at admission; the tree proves this is the entry it admitted). Only
/// for an inference by a signer of a policy seen so far; anything else
/// (`None`) takes the full path, which also reports what is wrong with it.
pub fn bulk_inference(bytes: &[u8], keys: &HashMap<String, VerifierKey>) -> Option<Parsed> {
    let raw: BulkInference<'_> = serde_json::from_slice(bytes).ok()?;
    if raw.kind != Kind::Inference.as_str() || raw.v != 1 || raw.body.validate().is_err() {
        return None;
    }
    Some(Parsed {
        id: None,
        signer: keys.get(raw.signer)?.clone(),
        body: Body::Inference(raw.body),
    })
}
