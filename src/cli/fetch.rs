//! The auditor's commands that talk to a log: `modeltrail evidence` (build
//! an evidence file) and `modeltrail review` (the committee's review), and
//! reading tlog-tiles over HTTP for `modeltrail audit --log <url>`.
//!
//! Nothing the log answers is trusted here beyond choosing what to fetch:
//! `evidence` writes what `verify` checks offline, and `review` verifies
//! the consistency of the two checkpoints and every entry against the new
//! one before it reports anything.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{ArgGroup, Args};
use serde_json::Value;

use super::audit::read_policy;
use super::client::LogClient;
use super::read_input;
use crate::audit::evidence::{Evidence, Item, Query, Role};
use crate::audit::replay::Parsed;
use crate::audit::review::Review;
use crate::audit::scan::{BundleSource, read_bundle};
use crate::entry::{ArtefactId, ContentHash, RequestId, SignedEntry, Timestamp};
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::hash::ReadError;
use crate::tlog::hash::{leaf_hash, stored_hash_index};
use crate::tlog::note::Note;
use crate::tlog::proof::verify_consistency;
use crate::tlog::tile::{TILE_WIDTH, Tile, TileHashReader, TileKind, TileReader, parse_bundle_for};
use crate::tlog::tlog_proof::TlogProof;

/// Entry bundles over HTTP (`GET <log>/tile/entries/...`).
pub(super) struct HttpSource(pub(super) LogClient);

impl BundleSource for HttpSource {
    fn read(&mut self, tile: &Tile) -> Result<Option<Vec<u8>>, String> {
        self.0
            .get_optional(&format!("/{}", tile.path()))
            .map_err(|e| crate::error_line(e.as_ref()))
    }
}

/// Hash tiles over HTTP, for a [`TileHashReader`], keeping the tiles it
/// authenticated: consecutive reads share their upper tiles.
struct HttpTiles<'a> {
    client: &'a LogClient,
    cache: RefCell<HashMap<Tile, Vec<u8>>>,
}

/// Authenticated tiles kept by [`HttpTiles`] before it starts afresh.
const TILE_CACHE: usize = 1024;

impl<'a> HttpTiles<'a> {
    fn new(client: &'a LogClient) -> HttpTiles<'a> {
        HttpTiles {
            client,
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn fetch(&self, tile: &Tile) -> anyhow::Result<Vec<u8>> {
        if let Some(data) = self.cache.borrow().get(tile) {
            return Ok(data.clone());
        }
        if let Some(data) = self.client.get_optional(&format!("/{}", tile.path()))? {
            return Ok(data);
        }
        // A log may delete a partial tile once the full one exists.
        let full = self
            .client
            .get_optional(&format!("/{}", tile.full().path()))?
            .ok_or_else(|| anyhow!("tile {} is missing", tile.path()))?;
        Ok(full
            .get(..usize::from(tile.width()) * 32)
            .unwrap_or(&full)
            .to_vec())
    }
}

impl TileReader for HttpTiles<'_> {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        tiles
            .iter()
            .map(|tile| self.fetch(tile))
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| ReadError::new(crate::error_line(e.as_ref())))
    }

    fn save_tiles(&self, tiles: &[Tile], data: &[Vec<u8>]) {
        let mut cache = self.cache.borrow_mut();
        if cache.len() > TILE_CACHE {
            cache.clear();
        }
        for (tile, data) in tiles.iter().zip(data) {
            cache.insert(*tile, data.clone());
        }
    }
}

/// `modeltrail evidence --log <url> (--request-id <id> | --version <hash> |
/// --model <m> --at <time>) --out <file>`.
#[derive(Args)]
#[command(group(ArgGroup::new("question").required(true).args(["request_id", "version", "model"])))]
pub(super) struct EvidenceArgs {
    /// The log's base URL.
    #[arg(long, env = "MODELTRAIL_LOG", default_value = "http://127.0.0.1:7480")]
    log: String,
    /// A read token for a private log (sent as `Authorization: Bearer`).
    #[arg(long = "token", env = "MODELTRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Which version served this request?
    #[arg(long)]
    request_id: Option<String>,
    /// Everything about this version (`b3:` hash).
    #[arg(long)]
    version: Option<String>,
    /// Which version of this model was active (with --at)?
    #[arg(long, requires = "at")]
    model: Option<String>,
    /// The time for --model, RFC 3339 UTC with milliseconds.
    #[arg(long, requires = "model")]
    at: Option<String>,
    /// Where to write the evidence file.
    #[arg(long)]
    out: PathBuf,
    /// Include the request's openings from this openings directory (with
    /// --request-id), so `verify --input/--output` can check raw files.
    #[arg(long, requires = "request_id")]
    openings: Option<PathBuf>,
}

impl EvidenceArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let client = LogClient::new(&self.log, self.token.as_deref())?;
        let query = self.query()?;
        let opening = match (&self.openings, &query) {
            (Some(dir), Query::Inference(rid)) => {
                Some(super::openings::read(dir, rid)?.ok_or_else(|| {
                    anyhow!(
                        "{} holds no openings for request {:?}",
                        dir.display(),
                        rid.as_str()
                    )
                })?)
            }
            _ => None,
        };
        let note = client.get("/checkpoint")?;
        let checkpoint = Checkpoint::from_note(&Note::parse(&note)?)
            .context("the log's /checkpoint is not a checkpoint")?;
        let wanted = Wanted::collect(&client, &query)?;
        let items = wanted
            .0
            .iter()
            .filter(|&&(index, role)| index < checkpoint.size || essential(&query, role))
            .map(|&(index, role)| fetch_item(&client, index, role, &checkpoint, &note))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let evidence = Evidence {
            query,
            checkpoint: note,
            items,
            opening,
        };
        write_atomically(&self.out, &evidence.to_bytes())?;
        println!(
            "wrote {} entries proven against checkpoint {} of size {} to {}",
            evidence.items.len(),
            checkpoint.origin,
            checkpoint.size,
            self.out.display()
        );
        Ok(())
    }

    fn query(&self) -> anyhow::Result<Query> {
        if let Some(rid) = &self.request_id {
            return Ok(Query::Inference(
                RequestId::parse(rid).map_err(|e| anyhow!("--request-id: {e}"))?,
            ));
        }
        if let Some(hash) = &self.version {
            return Ok(Query::Version(
                ContentHash::parse(hash).map_err(|e| anyhow!("--version: {e}"))?,
            ));
        }
        let (Some(model), Some(at)) = (&self.model, &self.at) else {
            bail!("give --request-id, --version, or --model with --at");
        };
        let at = Timestamp::parse(at).map_err(|e| anyhow!("--at: {e}"))?;
        crate::entry::ModelName::parse(model).map_err(|e| anyhow!("--model: {e}"))?;
        Ok(Query::Model {
            at,
            model: model.clone(),
        })
    }
}

/// The entries an answer needs: (leaf index, role), in index order.
struct Wanted(BTreeSet<(u64, Role)>);

impl Wanted {
    /// Asks the log's query API which entries answer `query`.
    fn collect(client: &LogClient, query: &Query) -> anyhow::Result<Wanted> {
        let mut wanted = Wanted(BTreeSet::new());
        match query {
            Query::Inference(rid) => {
                let answer =
                    client.get_json(&format!("/v1/inferences/{}", encode(rid.as_str())))?;
                let inference = answers::inference(&answer)?;
                wanted.0.insert((inference.index, Role::Inference));
                wanted.version(client, &inference.version_hash, false)?;
                wanted.transitions_at(client, &inference.model, inference.served_at)?;
            }
            Query::Version(hash) => wanted.version(client, &hash.to_string(), true)?,
            Query::Model { at, model } => {
                let to = wanted.transitions_at(client, model, *at)?.ok_or_else(|| {
                    anyhow!("the log shows no active version of {model:?} at {at}")
                })?;
                wanted.version(client, &to, false)?;
            }
        }
        wanted.policies(client)?;
        Ok(wanted)
    }

    fn add(&mut self, role: Role, index: &Value) -> anyhow::Result<()> {
        self.0.insert((answers::index(index)?, role));
        Ok(())
    }

    /// The version entry, its card, its approvals (and with `transitions`
    /// the transitions to or from it).
    fn version(&mut self, client: &LogClient, hash: &str, transitions: bool) -> anyhow::Result<()> {
        let answer = client.get_json(&format!("/v1/versions/{hash}"))?;
        self.0.extend(answers::version(&answer, transitions)?);
        Ok(())
    }

    /// The model's transition in effect at `at` and the next one; answers
    /// the version the one in effect activated.
    fn transitions_at(
        &mut self,
        client: &LogClient,
        model: &str,
        at: Timestamp,
    ) -> anyhow::Result<Option<String>> {
        let answer = client.get_json(&format!("/v1/models/{}", encode(model)))?;
        let Some(in_effect) = answers::transitions_at(&answer, at)? else {
            return Ok(None);
        };
        self.0.insert((in_effect.index, Role::Transition));
        if let Some(next) = in_effect.next {
            self.0.insert((next, Role::NextTransition));
        }
        Ok(Some(in_effect.to))
    }

    /// The log's first policy, the policies the approvals name, and the
    /// policy in force now.
    fn policies(&mut self, client: &LogClient) -> anyhow::Result<()> {
        self.0.insert((0, Role::Policy));
        let approvals: Vec<u64> = self
            .0
            .iter()
            .filter(|(_, r)| *r == Role::Approval)
            .map(|(i, _)| *i)
            .collect();
        for index in approvals {
            let entry = SignedEntry::parse(&client.get(&format!("/v1/entries/{index}"))?)?;
            if let Some(id) = entry.body()["policy"].as_str() {
                let id: ArtefactId = id.parse()?;
                let answer = client.get_json(&format!("/v1/artefacts/{id}"))?;
                self.add(Role::Policy, &answer["index"])?;
            }
        }
        let current = client.get_json("/v1/policy")?;
        self.add(Role::Policy, &current["index"])
    }
}

/// Whether the answer needs an entry of `role` even when it is newer than
/// the checkpoint (then `evidence` fails and asks to retry). Approvals, the
/// next transition and the newest policy logged after the checkpoint are
/// simply not part of the history that checkpoint proves.
/// For a version query every transition is optional too.
fn essential(query: &Query, role: Role) -> bool {
    match role {
        Role::Inference | Role::Version | Role::Card => true,
        Role::Transition => !matches!(query, Query::Version(_)),
        Role::Approval | Role::NextTransition | Role::Policy => false,
    }
}

/// One entry with its tlog-proof against the checkpoint `note` of `checkpoint`.
fn fetch_item(
    client: &LogClient,
    index: u64,
    role: Role,
    checkpoint: &Checkpoint,
    note: &[u8],
) -> anyhow::Result<Item> {
    if index >= checkpoint.size {
        bail!(
            "entry {index} ({role}) is not yet in the log's checkpoint of size {} (it may be waiting for witnesses); try again shortly",
            checkpoint.size
        );
    }
    let entry = client.get(&format!("/v1/entries/{index}"))?;
    let answer = client.get_json(&format!(
        "/v1/proof/inclusion?index={index}&size={}",
        checkpoint.size
    ))?;
    let proof = TlogProof {
        extra: None,
        index,
        proof: answers::proof_hashes(&answer, "inclusion")?,
        checkpoint: note.to_vec(),
    };
    Ok(Item {
        index,
        role,
        entry,
        proof: proof.to_bytes(),
    })
}

/// `modeltrail review --log <url> --since <checkpoint-file> --policy <file>`.
#[derive(Args)]
pub(super) struct ReviewArgs {
    /// The log's base URL.
    #[arg(long, env = "MODELTRAIL_LOG", default_value = "http://127.0.0.1:7480")]
    log: String,
    /// A read token for a private log (sent as `Authorization: Bearer`).
    #[arg(long = "token", env = "MODELTRAIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The checkpoint the committee saw last time (a signed note file).
    #[arg(long)]
    since: PathBuf,
    /// The c2sp.org/tlog-policy both checkpoints must satisfy.
    #[arg(long)]
    policy: PathBuf,
    /// Where to save the new checkpoint for next time (default: overwrite --since).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Write the Markdown report here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl ReviewArgs {
    pub(super) fn run(self) -> anyhow::Result<()> {
        let policy = read_policy(&self.policy)?;
        let old_note = read_input(&self.since)?;
        let old = policy
            .verify_checkpoint(&old_note)
            .with_context(|| format!("the saved checkpoint {}", self.since.display()))?;
        let client = LogClient::new(&self.log, self.token.as_deref())?;
        let new_note = client.get("/checkpoint")?;
        let new = policy
            .verify_checkpoint(&new_note)
            .context("the log's current checkpoint does not satisfy the policy")?;
        check_consistent(&client, &old, &new)?;
        let mut review = Review::new(old.clone(), new.clone());
        for_each_entry(&client, &new, old.size, |index, bytes| {
            review.add(index, parse_full(bytes));
        })?;
        let mut registered = BTreeMap::new();
        for hash in review.versions_to_look_up() {
            let answer = client.get_json(&format!("/v1/versions/{hash}"))?;
            if let Some(index) = answers::registered(&answer) {
                registered.insert(hash, index);
            }
        }
        let markdown = review.markdown(&registered);
        match &self.out {
            Some(path) => write_atomically(path, markdown.as_bytes())?,
            None => print!("{markdown}"),
        }
        let save = self.save.as_ref().unwrap_or(&self.since);
        write_atomically(save, &new_note)?;
        eprintln!(
            "reviewed entries {}..{}; saved the checkpoint of size {} to {}",
            old.size,
            new.size,
            new.size,
            save.display()
        );
        Ok(())
    }
}

/// The new checkpoint extends the old one (same log, RFC 9162 consistency).
fn check_consistent(client: &LogClient, old: &Checkpoint, new: &Checkpoint) -> anyhow::Result<()> {
    if old.origin != new.origin {
        bail!(
            "the saved checkpoint is of log {:?}, the current one of {:?}",
            old.origin,
            new.origin
        );
    }
    if new.size < old.size {
        bail!(
            "the log's checkpoint (size {}) is older than the saved one (size {}): the log went back",
            new.size,
            old.size
        );
    }
    let proof = if old.size > 0 && old.size < new.size {
        let answer = client.get_json(&format!(
            "/v1/proof/consistency?old={}&new={}",
            old.size, new.size
        ))?;
        answers::proof_hashes(&answer, "consistency")?
    } else {
        Vec::new()
    };
    verify_consistency(old.size, new.size, &old.root, &new.root, &proof).with_context(|| {
        format!(
            "the log's checkpoint of size {} is not consistent with the saved one of size {}: its history was rewritten",
            new.size, old.size
        )
    })
}

/// Calls `f` with every entry from `from` to the checkpoint's size, each
/// authenticated against the checkpoint's root through the hash tiles.
fn for_each_entry(
    client: &LogClient,
    checkpoint: &Checkpoint,
    from: u64,
    mut f: impl FnMut(u64, &[u8]),
) -> anyhow::Result<()> {
    let hashes = TileHashReader::new(checkpoint.size, checkpoint.root, HttpTiles::new(client));
    let mut source = HttpSource(client.again()?);
    let width = u64::from(TILE_WIDTH);
    for n in from / width..checkpoint.size.div_ceil(width) {
        let tile = Tile::in_tree(TileKind::Entries, n, checkpoint.size)
            .ok_or_else(|| anyhow!("bundle {n} beyond the tree"))?;
        let data = read_bundle(&mut source, &tile)?;
        let entries = parse_bundle_for(&tile, &data)?;
        let first = n * width;
        let wanted: Vec<u64> = (first.max(from)..first + entries.len() as u64).collect();
        let indexes: Vec<u64> = wanted.iter().map(|&i| stored_hash_index(0, i)).collect();
        let proven = hashes.read_verified(&indexes)?;
        for (&index, hash) in wanted.iter().zip(&proven) {
            let bytes = entries[(index - first) as usize];
            if leaf_hash(bytes) != *hash {
                bail!(
                    "entry {index} from {} does not match the checkpoint",
                    tile.path()
                );
            }
            f(index, bytes);
        }
    }
    Ok(())
}

/// Parses and verifies one entry for the review.
fn parse_full(bytes: &[u8]) -> Result<Parsed, crate::entry::EntryError> {
    let entry = SignedEntry::parse(bytes)?;
    let body = entry.typed_body()?;
    Ok(Parsed {
        id: Some(entry.id()),
        signer: entry.signer().clone(),
        body,
    })
}

/// Percent-encodes one URL path segment (everything but RFC 3986 unreserved,
/// so a `/` in a model name or request ID stays in its segment).
pub(super) fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Writes `data` to `path` via a temporary file, fsync, rename and an fsync
/// of the directory: the project's durable replace (evidence files,
/// openings, the token file).
pub(super) fn write_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    crate::store::fs::replace_file(path, data).map_err(anyhow::Error::new)
}

/// Reading the log's JSON answers, apart from fetching them, so that the
/// fuzz target `fetch_answers` can call it: nothing here trusts the answer
/// beyond choosing which entries to fetch (each is then proven against the
/// checkpoint), but a malformed answer must be an error, never a panic.
pub mod answers {
    use anyhow::anyhow;
    use serde_json::Value;

    use crate::audit::evidence::Role;
    use crate::entry::Timestamp;
    use crate::tlog::Hash;

    /// What `GET /v1/inferences/<id>` tells: the inference's index, its
    /// version and model, and when it was served.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct InferenceAnswer {
        /// Leaf index of the inference.
        pub index: u64,
        /// The version it names.
        pub version_hash: String,
        /// The model it names.
        pub model: String,
        /// Its `served_at`.
        pub served_at: Timestamp,
    }

    /// The transition of a model in effect at a time.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct InEffect {
        /// Its position in the answer's `history`.
        pub position: usize,
        /// Its leaf index.
        pub index: u64,
        /// The index of the transition after it, if any.
        pub next: Option<u64>,
        /// The version it activated.
        pub to: String,
    }

    /// An entry index member.
    pub fn index(v: &Value) -> anyhow::Result<u64> {
        v.as_u64()
            .ok_or_else(|| anyhow!("the log's answer has no entry index"))
    }

    /// `GET /v1/inferences/<id>`.
    pub fn inference(answer: &Value) -> anyhow::Result<InferenceAnswer> {
        Ok(InferenceAnswer {
            index: index(&answer["index"])?,
            version_hash: text(&answer["version_hash"])?.to_owned(),
            model: text(&answer["model"])?.to_owned(),
            served_at: Timestamp::parse(text(&answer["served_at"])?)
                .map_err(|e| anyhow!("served_at: {e}"))?,
        })
    }

    /// `GET /v1/versions/<hash>`: the version, its card, its approvals and,
    /// with `transitions`, the transitions to or from it.
    pub fn version(answer: &Value, transitions: bool) -> anyhow::Result<Vec<(u64, Role)>> {
        let mut wanted = vec![(index(&answer["version"]["index"])?, Role::Version)];
        if answer["card"].is_object() {
            wanted.push((index(&answer["card"]["index"])?, Role::Card));
        }
        for approval in answer["approvals"].as_array().into_iter().flatten() {
            wanted.push((index(&approval["index"])?, Role::Approval));
        }
        if transitions {
            for t in answer["transitions"].as_array().into_iter().flatten() {
                wanted.push((index(&t["index"])?, Role::Transition));
            }
        }
        Ok(wanted)
    }

    /// `GET /v1/models/<m>`: the transition in effect at `at` (the last
    /// one at or before it), the next one, and the version it activated.
    pub fn transitions_at(answer: &Value, at: Timestamp) -> anyhow::Result<Option<InEffect>> {
        let history = answer["history"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let in_effect = history
            .iter()
            .rposition(|t| when(t).is_some_and(|w| w <= at));
        let Some(i) = in_effect else {
            return Ok(None);
        };
        let next = match history.get(i + 1) {
            Some(next) => Some(index(&next["index"])?),
            None => None,
        };
        Ok(Some(InEffect {
            position: i,
            index: index(&history[i]["index"])?,
            next,
            to: text(&history[i]["body"]["to"])?.to_owned(),
        }))
    }

    /// When a transition of a model's history takes effect, if it says.
    pub fn when(transition: &Value) -> Option<Timestamp> {
        Timestamp::parse(transition["body"]["at"].as_str().unwrap_or("")).ok()
    }

    /// `GET /v1/versions/<hash>` for `review`: the version's index, if the
    /// log has it.
    pub fn registered(answer: &Value) -> Option<u64> {
        answer["version"]["index"].as_u64()
    }

    /// The hashes of a `/v1/proof/<kind>` answer.
    pub fn proof_hashes(answer: &Value, kind: &str) -> anyhow::Result<Vec<Hash>> {
        answer["proof"]
            .as_array()
            .ok_or_else(|| anyhow!("the {kind} proof answer has no proof"))?
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(|s| Hash::from_base64(s).ok())
                    .ok_or_else(|| anyhow!("the {kind} proof holds a malformed hash"))
            })
            .collect()
    }

    /// A JSON string member, or an error naming the answer as malformed.
    pub fn text(v: &Value) -> anyhow::Result<&str> {
        v.as_str()
            .ok_or_else(|| anyhow!("the log's answer is missing a field"))
    }
}
