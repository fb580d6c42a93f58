//! A log-structured multimap from 64-bit hash keys to leaf indexes: the
//! index's two large maps, artefact ID → leaf and request ID → leaf.
//!
//! **Why not a B-tree.** Both keys are hashes, so every insert lands on a
//! random page. In a copy-on-write B-tree (redb) each new entry then dirties
//! and rewrites a 4 KiB page of its own, and the cost per insert grows with
//! the log. Here inserts go to a sorted in-memory table (the *memtable*);
//! a full memtable is written out as an immutable sorted *run*, and a
//! background thread merges runs of similar size, so each pair is written
//! O(log n) times, sequentially, 16 bytes at a time.
//!
//! **Lookups return candidates**: every leaf index stored under a key. Keys
//! are 64-bit prefixes of BLAKE3 hashes, so two IDs can share one; the index
//! checks each candidate against the entry it names (as design decision 4
//! requires of every lookup anyway), so the map never needs to be exact. A
//! lookup reads the memtable, then each run's Bloom filter (in memory, ten
//! bits per key) and, only where the filter allows the key, one 4 KiB block
//! of the run with `pread`, located by the run's in-memory fence keys.
//!
//! **Durability.** Like the rest of the index, the map is derived from the
//! log's entry bundles and keeps no log of its own. The memtable is lost in
//! a crash; `MANIFEST` names the live runs and `covered`, the tree size below
//! which the runs hold every pair, and the index re-reads the entries from
//! there on start (at most the flush size, [`DEFAULT_FLUSH_PAIRS`] unless
//! configured, plus a batch). A run is
//! written to a temporary file, fsynced and renamed, and the directory
//! fsynced, before a manifest naming it atomically replaces the old one;
//! files no manifest names are deleted on open.
//!
//! **Run file** (integers little-endian): the pairs `(key u64, leaf u64)`
//! sorted by key then leaf; the fence keys (the first key of every block of
//! [`BLOCK_PAIRS`] pairs); the Bloom filter (512-bit blocks as eight u64);
//! then a 40-byte footer: `mtidrun1`, the pair count, the Bloom block count,
//! and the first 16 bytes of BLAKE3 over the fences, the filter and both
//! counts, checked on open.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use super::fs::fsync_dir;

/// Pairs the memtable holds by default before it is written out as a run:
/// the most entries the index re-reads from the tiles after a crash, and
/// ~5 MiB of memory per map.
pub const DEFAULT_FLUSH_PAIRS: usize = 1 << 17;

/// Pairs per block: one `pread` of 4 KiB per run a lookup cannot rule out.
pub const BLOCK_PAIRS: usize = 256;

const PAIR_BYTES: usize = 16;
const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_PROBES: u32 = 7;
const RUN_MAGIC: &[u8; 8] = b"mtidrun1";
const FOOTER_BYTES: usize = 40;
const MANIFEST: &str = "MANIFEST";
const MANIFEST_HEADER: &str = "modeltrail-idmap 1";

/// Why a map could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    /// Reading or writing its files failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A file is not what the map wrote: the index must be rebuilt.
    #[error("id map {path}: {what}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong with it.
        what: String,
    },
}

fn corrupt(path: &Path, what: impl Into<String>) -> IdMapError {
    IdMapError::Corrupt {
        path: path.display().to_string(),
        what: what.into(),
    }
}

/// A persistent multimap from hash keys to leaf indexes (see the module
/// docs). One thread inserts ([`IdMap::insert`], [`IdMap::flush`]); any
/// number look up concurrently.
pub struct IdMap {
    shared: Arc<Shared>,
    merger: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    /// Memtable pairs that trigger a flush.
    flush_pairs: usize,
    state: RwLock<State>,
    /// Held while the run list changes and its manifest is written, so
    /// flushes and merges write manifests in the order they take effect.
    /// Holds the next run's sequence number.
    runs_writer: Mutex<u64>,
    /// Whether a merge may be due and whether one runs; the merger sleeps
    /// on `wake` until one is due.
    merges: Mutex<Merges>,
    wake: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct Merges {
    /// A run was added (or the map opened) since the merger last looked.
    due: bool,
    /// The merger is merging.
    running: bool,
}

struct State {
    /// Pairs of leaves in `covered..size`, not yet in a run.
    memtable: BTreeSet<(u64, u64)>,
    /// Oldest first; a run only holds leaves below `covered`.
    runs: Arc<Vec<Arc<Run>>>,
    /// The runs hold every pair of a leaf below this size (the manifest's).
    covered: u64,
    /// The runs and the memtable hold every pair of a leaf below this size.
    size: u64,
}

impl IdMap {
    /// Opens the map in `dir` (created if missing), deleting files its
    /// manifest does not name, and starts its merger thread. The memtable
    /// is written out once it holds `flush_pairs` pairs (at least 1).
    pub fn open(dir: &Path, flush_pairs: usize) -> Result<IdMap, IdMapError> {
        fs::create_dir_all(dir)?;
        let manifest_path = dir.join(MANIFEST);
        let manifest = match fs::read(&manifest_path) {
            Ok(bytes) => parse_manifest(&bytes).map_err(|what| corrupt(&manifest_path, what))?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Manifest::default(),
            Err(err) => return Err(err.into()),
        };
        let mut runs = Vec::with_capacity(manifest.runs.len());
        for &(seq, pairs) in &manifest.runs {
            runs.push(Arc::new(Run::open(dir, seq, pairs)?));
        }
        remove_strays(dir, &manifest)?;
        let next_seq = manifest.runs.iter().map(|&(seq, _)| seq + 1).max();
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            flush_pairs: flush_pairs.max(1),
            state: RwLock::new(State {
                memtable: BTreeSet::new(),
                runs: Arc::new(runs),
                covered: manifest.covered,
                size: manifest.covered,
            }),
            runs_writer: Mutex::new(next_seq.unwrap_or(0)),
            merges: Mutex::new(Merges {
                due: true,
                running: false,
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let merger = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("idmap-merge".into())
                .spawn(move || shared.merge_loop())?
        };
        Ok(IdMap {
            shared,
            merger: Some(merger),
        })
    }

    /// The tree size below which the map holds every leaf's pairs.
    pub fn size(&self) -> u64 {
        self.shared.read().size
    }

    /// The tree size below which the map's files hold every leaf's pairs:
    /// what survives a crash.
    pub fn covered(&self) -> u64 {
        self.shared.read().covered
    }

    /// Every leaf stored under `key`, ascending.
    pub fn candidates(&self, key: u64) -> io::Result<Vec<u64>> {
        let (mut found, runs) = {
            let state = self.shared.read();
            let found: Vec<u64> = state
                .memtable
                .range((key, 0)..=(key, u64::MAX))
                .map(|&(_, leaf)| leaf)
                .collect();
            (found, state.runs.clone())
        };
        for run in runs.iter() {
            run.candidates(key, &mut found)?;
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    /// Adds `pairs` (of leaves from [`IdMap::size`] on) and moves the size to
    /// `size`; writes the memtable out as a run once it is full.
    pub fn insert(&self, pairs: &[(u64, u64)], size: u64) -> io::Result<()> {
        let full = {
            let mut state = self.shared.write();
            debug_assert!(pairs.iter().all(|&(_, leaf)| leaf >= state.size));
            state.memtable.extend(pairs.iter().copied());
            state.size = state.size.max(size);
            state.memtable.len() >= self.shared.flush_pairs
        };
        if full { self.flush() } else { Ok(()) }
    }

    /// Writes the memtable out as a run and records the size it covers, so
    /// a restart re-reads nothing.
    pub fn flush(&self) -> io::Result<()> {
        let shared = &self.shared;
        let (pairs, size, covered) = {
            let state = shared.read();
            let pairs: Vec<(u64, u64)> = state.memtable.iter().copied().collect();
            (pairs, state.size, state.covered)
        };
        if pairs.is_empty() && size == covered {
            return Ok(());
        }
        let mut next_seq = shared.runs_writer.lock().expect("lock poisoned");
        let mut runs: Vec<Arc<Run>> = shared.read().runs.iter().cloned().collect();
        if !pairs.is_empty() {
            let seq = *next_seq;
            *next_seq += 1;
            let run = Run::write(&shared.dir, seq, pairs.len() as u64, pairs.iter().copied())?;
            runs.push(Arc::new(run));
        }
        write_manifest(&shared.dir, size, &runs)?;
        {
            let mut state = shared.write();
            state.memtable.retain(|&(_, leaf)| leaf >= size);
            state.runs = Arc::new(runs);
            state.covered = size;
        }
        drop(next_seq);
        shared.request_merge();
        Ok(())
    }

    /// The number of runs: what a lookup may read beyond the memtable.
    pub fn runs(&self) -> usize {
        self.shared.read().runs.len()
    }

    /// Waits until no merge is due or running (for tests and benchmarks).
    pub fn wait_for_merges(&self) {
        let mut merges = self.shared.merges.lock().expect("lock poisoned");
        while merges.due || merges.running {
            merges = self.shared.wake.wait(merges).expect("lock poisoned");
        }
    }
}

impl Drop for IdMap {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(merger) = self.merger.take() {
            let _ = merger.join();
        }
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().expect("lock poisoned")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().expect("lock poisoned")
    }

    fn request_merge(&self) {
        self.merges.lock().expect("lock poisoned").due = true;
        self.wake.notify_all();
    }

    /// The merger thread: merges runs while [`pick_merge`] finds a pair,
    /// then sleeps until a flush adds a run.
    fn merge_loop(&self) {
        loop {
            {
                let mut merges = self.merges.lock().expect("lock poisoned");
                while !merges.due && !self.stop.load(Ordering::SeqCst) {
                    merges = self.wake.wait(merges).expect("lock poisoned");
                }
                // Taken now, so a run added while merging calls again.
                merges.due = false;
                merges.running = true;
            }
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            loop {
                let runs = self.read().runs.clone();
                let Some(older) = pick_merge(&runs) else {
                    break;
                };
                match self.merge(&runs[older], &runs[older + 1]) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(err) => {
                        // Lookups stay right with more runs; only slower.
                        tracing::error!(dir = %self.dir.display(), %err, "merging id map runs");
                        break;
                    }
                }
            }
            self.merges.lock().expect("lock poisoned").running = false;
            self.wake.notify_all();
        }
    }

    /// Merges two adjacent runs into one and swaps it in. `Ok(false)` if
    /// the map is closing.
    fn merge(&self, older: &Arc<Run>, newer: &Arc<Run>) -> Result<bool, IdMapError> {
        let seq = {
            let mut next_seq = self.runs_writer.lock().expect("lock poisoned");
            *next_seq += 1;
            *next_seq - 1
        };
        let pairs = older.pairs + newer.pairs;
        let merged = MergedPairs {
            a: older.pairs_in_order()?.peekable(),
            b: newer.pairs_in_order()?.peekable(),
            stop: &self.stop,
        };
        let run = match Run::write(&self.dir, seq, pairs, merged) {
            Ok(run) => run,
            Err(_) if self.stop.load(Ordering::SeqCst) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        let _writer = self.runs_writer.lock().expect("lock poisoned");
        let (mut runs, covered) = {
            let state = self.read();
            (
                state.runs.iter().cloned().collect::<Vec<_>>(),
                state.covered,
            )
        };
        let at = runs
            .iter()
            .position(|r| r.seq == older.seq)
            .filter(|&at| runs.get(at + 1).is_some_and(|r| r.seq == newer.seq))
            .expect("only the merger removes runs");
        runs.splice(at..at + 2, [Arc::new(run)]);
        write_manifest(&self.dir, covered, &runs)?;
        self.write().runs = Arc::new(runs);
        // Open handles (lookups in flight) keep reading the unlinked files.
        for gone in [older, newer] {
            let _ = fs::remove_file(run_path(&self.dir, gone.seq, false));
        }
        Ok(true)
    }
}

/// The older of the newest two adjacent runs of similar size (the older no
/// more than 1.5 times the newer), if any: runs then grow geometrically, so
/// a map of n pairs has O(log n) runs and writes each pair O(log n) times.
fn pick_merge(runs: &[Arc<Run>]) -> Option<usize> {
    (0..runs.len().saturating_sub(1))
        .rev()
        .find(|&i| runs[i].pairs * 2 <= runs[i + 1].pairs * 3)
}

/// Two sorted pair streams merged into one; fails once the map is closing.
struct MergedPairs<'a, A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
    stop: &'a AtomicBool,
}

impl<A, B> Iterator for MergedPairs<'_, A, B>
where
    A: Iterator<Item = io::Result<(u64, u64)>>,
    B: Iterator<Item = io::Result<(u64, u64)>>,
{
    type Item = io::Result<(u64, u64)>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(Ok(a)), Some(Ok(b))) => a <= b,
            (Some(_), None) | (Some(Err(_)), _) => true,
            (None, Some(_)) | (_, Some(Err(_))) => false,
        };
        let next = if take_a { self.a.next() } else { self.b.next() };
        if self.stop.load(Ordering::Relaxed) {
            return Some(Err(io::Error::other("closing")));
        }
        next
    }
}

/// One immutable sorted run: its file, and its fences and Bloom filter in
/// memory.
struct Run {
    seq: u64,
    file: File,
    pairs: u64,
    fences: Vec<u64>,
    bloom: Bloom,
}

impl Run {
    /// Writes `count` pairs (sorted by key, then leaf) as run `seq`,
    /// durably, and opens it. A failed write leaves no file behind, so
    /// retries (a full disk) do not pile up partial runs.
    fn write<I, P>(dir: &Path, seq: u64, count: u64, pairs: I) -> io::Result<Run>
    where
        I: IntoIterator<Item = P>,
        P: IntoPairResult,
    {
        let tmp = run_path(dir, seq, true);
        let written = Run::write_synced(&tmp, seq, count, pairs)
            .and_then(|run| fs::rename(&tmp, run_path(dir, seq, false)).map(|()| run));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let (file, fences, bloom) = written?;
        fsync_dir(dir)?;
        Ok(Run {
            seq,
            file,
            pairs: count,
            fences,
            bloom,
        })
    }

    /// Writes the run file at `tmp` and syncs it; its fences and filter.
    fn write_synced<I, P>(
        tmp: &Path,
        seq: u64,
        count: u64,
        pairs: I,
    ) -> io::Result<(File, Vec<u64>, Bloom)>
    where
        I: IntoIterator<Item = P>,
        P: IntoPairResult,
    {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let capacity = usize::try_from(count).map_err(io::Error::other)?;
        let mut fences = Vec::with_capacity(capacity.div_ceil(BLOCK_PAIRS));
        let mut bloom = Bloom::for_keys(capacity);
        let mut written = 0u64;
        let mut last = None;
        for pair in pairs {
            let (key, leaf) = pair.into_pair_result()?;
            if last.is_some_and(|last| last > (key, leaf)) {
                return Err(io::Error::other(format!(
                    "run {seq}: pairs out of order at {written}"
                )));
            }
            last = Some((key, leaf));
            if written.is_multiple_of(BLOCK_PAIRS as u64) {
                fences.push(key);
            }
            bloom.insert(key);
            out.write_all(&key.to_le_bytes())?;
            out.write_all(&leaf.to_le_bytes())?;
            written += 1;
        }
        if written != count {
            return Err(io::Error::other(format!(
                "run {seq}: {written} pairs, expected {count}"
            )));
        }
        let meta = encode_meta(&fences, &bloom, count);
        out.write_all(&meta)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((file, fences, bloom))
    }

    /// Opens run `seq` of `pairs` pairs, checking its footer and checksum.
    fn open(dir: &Path, seq: u64, pairs: u64) -> Result<Run, IdMapError> {
        let path = run_path(dir, seq, false);
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        let meta_len = len
            .checked_sub(pairs.saturating_mul(PAIR_BYTES as u64))
            .and_then(|m| usize::try_from(m).ok())
            .ok_or_else(|| corrupt(&path, "shorter than its pairs"))?;
        let mut meta = vec![0; meta_len];
        file.read_exact_at(&mut meta, pairs * PAIR_BYTES as u64)?;
        let RunMeta { fences, bloom } =
            parse_run_meta(&meta, pairs).map_err(|what| corrupt(&path, what))?;
        Ok(Run {
            seq,
            file,
            pairs,
            fences,
            bloom,
        })
    }

    /// Appends to `out` every leaf stored under `key` in this run.
    fn candidates(&self, key: u64, out: &mut Vec<u64>) -> io::Result<()> {
        if !self.bloom.may_contain(key) {
            return Ok(());
        }
        // The first block whose fence is not below `key` may be preceded by
        // one that ends with `key`.
        let mut block = self.fences.partition_point(|&f| f < key).saturating_sub(1);
        let mut buf = [0u8; BLOCK_PAIRS * PAIR_BYTES];
        while block < self.fences.len() {
            let first = (block * BLOCK_PAIRS) as u64;
            let count = (self.pairs - first).min(BLOCK_PAIRS as u64) as usize;
            let bytes = &mut buf[..count * PAIR_BYTES];
            self.file.read_exact_at(bytes, first * PAIR_BYTES as u64)?;
            for pair in bytes.chunks_exact(PAIR_BYTES) {
                let (k, leaf) = decode_pair(pair);
                if k > key {
                    return Ok(());
                }
                if k == key {
                    out.push(leaf);
                }
            }
            block += 1;
        }
        Ok(())
    }

    /// Every pair, in order, read sequentially. (Lookups use `pread`, which
    /// leaves the shared file offset alone.)
    fn pairs_in_order(&self) -> io::Result<impl Iterator<Item = io::Result<(u64, u64)>> + use<>> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        Ok((0..self.pairs).map(move |_| {
            let mut buf = [0u8; PAIR_BYTES];
            reader.read_exact(&mut buf)?;
            Ok(decode_pair(&buf))
        }))
    }
}

/// Items a run can be written from: plain pairs, or pairs read from disk.
trait IntoPairResult {
    fn into_pair_result(self) -> io::Result<(u64, u64)>;
}

impl IntoPairResult for (u64, u64) {
    fn into_pair_result(self) -> io::Result<(u64, u64)> {
        Ok(self)
    }
}

impl IntoPairResult for io::Result<(u64, u64)> {
    fn into_pair_result(self) -> io::Result<(u64, u64)> {
        self
    }
}

fn decode_pair(bytes: &[u8]) -> (u64, u64) {
    let key = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let leaf = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    (key, leaf)
}

/// A blocked Bloom filter: a key sets [`BLOOM_PROBES`] bits of one 512-bit
/// block, so a lookup touches one cache line.
struct Bloom {
    blocks: Vec<[u64; 8]>,
}

impl Bloom {
    fn for_keys(keys: usize) -> Bloom {
        let blocks = (keys.max(1) * BLOOM_BITS_PER_KEY).div_ceil(512);
        Bloom {
            blocks: vec![[0; 8]; blocks],
        }
    }

    /// Keys are uniform hashes: the block comes from the key's high bits,
    /// the probes from a multiplicative mix of all of them.
    fn block(&self, key: u64) -> usize {
        ((u128::from(key) * self.blocks.len() as u128) >> 64) as usize
    }

    fn probes(key: u64) -> impl Iterator<Item = usize> {
        let h = (key ^ (key >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (0..BLOOM_PROBES).map(move |i| ((h >> (i * 9)) & 511) as usize)
    }

    fn insert(&mut self, key: u64) {
        let block = self.block(key);
        let block = &mut self.blocks[block];
        for bit in Bloom::probes(key) {
            block[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, key: u64) -> bool {
        let block = &self.blocks[self.block(key)];
        Bloom::probes(key).all(|bit| block[bit / 64] >> (bit % 64) & 1 == 1)
    }
}

/// The fences, filter and footer of a run of `pairs` pairs.
fn encode_meta(fences: &[u64], bloom: &Bloom, pairs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(fences.len() * 8 + bloom.blocks.len() * 64 + FOOTER_BYTES);
    for fence in fences {
        out.extend_from_slice(&fence.to_le_bytes());
    }
    for word in bloom.blocks.iter().flatten() {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let blocks = bloom.blocks.len() as u64;
    let checksum = meta_checksum(&out, pairs, blocks);
    out.extend_from_slice(RUN_MAGIC);
    out.extend_from_slice(&pairs.to_le_bytes());
    out.extend_from_slice(&blocks.to_le_bytes());
    out.extend_from_slice(&checksum);
    out
}

fn meta_checksum(body: &[u8], pairs: u64, blocks: u64) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(body);
    hasher.update(&pairs.to_le_bytes());
    hasher.update(&blocks.to_le_bytes());
    let hash = hasher.finalize();
    hash.as_bytes()[..16].try_into().expect("16 bytes")
}

/// A run's in-memory part, parsed from the bytes after its pairs.
pub struct RunMeta {
    fences: Vec<u64>,
    bloom: Bloom,
}

impl RunMeta {
    /// How many blocks of pairs the fences locate.
    pub fn blocks(&self) -> usize {
        self.fences.len()
    }
}

/// Parses the bytes after a run's `pairs` pairs: fences, Bloom filter and
/// footer, checked against the footer's counts and checksum.
pub fn parse_run_meta(meta: &[u8], pairs: u64) -> Result<RunMeta, String> {
    let body_len = meta
        .len()
        .checked_sub(FOOTER_BYTES)
        .ok_or("shorter than a footer")?;
    let (body, footer) = meta.split_at(body_len);
    if &footer[..8] != RUN_MAGIC {
        return Err("not a run footer".into());
    }
    let word = |at: usize| u64::from_le_bytes(footer[at..at + 8].try_into().expect("8 bytes"));
    let (stored_pairs, blocks) = (word(8), word(16));
    if stored_pairs != pairs {
        return Err(format!("{stored_pairs} pairs, the manifest says {pairs}"));
    }
    let fences = usize::try_from(pairs.div_ceil(BLOCK_PAIRS as u64)).map_err(|e| e.to_string())?;
    let expected = usize::try_from(blocks)
        .ok()
        .and_then(|b| b.checked_mul(64))
        .and_then(|b| b.checked_add(fences * 8));
    if blocks == 0 || expected != Some(body_len) {
        return Err(format!(
            "{body_len} bytes of fences and filter, footer disagrees"
        ));
    }
    if meta_checksum(body, pairs, blocks) != footer[24..40] {
        return Err("checksum mismatch".into());
    }
    let (fence_bytes, bloom_bytes) = body.split_at(fences * 8);
    let fences: Vec<u64> = fence_bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if fences.windows(2).any(|w| w[0] > w[1]) {
        return Err("fences out of order".into());
    }
    let blocks = bloom_bytes
        .chunks_exact(64)
        .map(|block| {
            let mut words = [0u64; 8];
            for (word, bytes) in words.iter_mut().zip(block.chunks_exact(8)) {
                *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
            }
            words
        })
        .collect();
    Ok(RunMeta {
        fences,
        bloom: Bloom { blocks },
    })
}

/// What `MANIFEST` says: the size the runs cover and the live runs
/// (sequence number, pair count), oldest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The runs hold every pair of a leaf below this tree size.
    pub covered: u64,
    /// `(sequence number, pairs)` of each live run, oldest first.
    pub runs: Vec<(u64, u64)>,
}

impl Manifest {
    /// The manifest's text, as [`parse_manifest`] reads it.
    pub fn to_text(&self) -> String {
        let mut text = format!("{MANIFEST_HEADER}\ncovered {}\n", self.covered);
        for (seq, pairs) in &self.runs {
            text.push_str(&format!("run {seq:016x} {pairs}\n"));
        }
        text
    }
}

/// Parses a manifest: `modeltrail-idmap 1`, `covered <n>`, then one
/// `run <16 hex digits> <pairs>` line per run, each line ending in `\n`.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    let body = text.strip_suffix('\n').ok_or("truncated")?;
    let mut lines = body.split('\n');
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err("not an id map manifest".into());
    }
    let covered = lines
        .next()
        .and_then(|l| l.strip_prefix("covered "))
        .and_then(decimal)
        .ok_or("no covered size")?;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for line in lines {
        let run = line.strip_prefix("run ").and_then(|rest| {
            let (seq, pairs) = rest.split_once(' ')?;
            let seq = (seq.len() == 16
                && seq.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| u64::from_str_radix(seq, 16).ok())??;
            Some((seq, decimal(pairs)?))
        });
        let run = run.ok_or_else(|| format!("bad line {line:?}"))?;
        if runs.iter().any(|&(seq, _)| seq == run.0) {
            return Err(format!("run {:016x} listed twice", run.0));
        }
        runs.push(run);
    }
    Ok(Manifest { covered, runs })
}

/// A canonical decimal u64: digits only, no leading zero.
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok())?
}

/// Atomically and durably replaces the manifest.
fn write_manifest(dir: &Path, covered: u64, runs: &[Arc<Run>]) -> io::Result<()> {
    let runs = runs.iter().map(|run| (run.seq, run.pairs)).collect();
    let text = Manifest { covered, runs }.to_text();
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(MANIFEST))?;
    fsync_dir(dir)
}

fn run_path(dir: &Path, seq: u64, tmp: bool) -> PathBuf {
    let ext = if tmp { "tmp" } else { "run" };
    dir.join(format!("run-{seq:016x}.{ext}"))
}

/// Deletes run files and temporary files the manifest does not name: left
/// by a crash during a flush or merge, or inputs of a finished merge.
fn remove_strays(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    let live: Vec<PathBuf> = manifest
        .runs
        .iter()
        .map(|&(seq, _)| run_path(dir, seq, false))
        .collect();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = name.starts_with("run-") || name == "MANIFEST.tmp";
        if ours && !live.contains(&path) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("modeltrail-idmap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A uniform key for `i`, as the index derives them from hashes.
    fn key(i: u64) -> u64 {
        let hash = blake3::hash(&i.to_le_bytes());
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap())
    }

    #[test]
    fn finds_every_leaf_in_the_memtable_in_runs_and_after_reopening() {
        let dir = scratch("reopen");
        let map = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).unwrap();
        let pairs: Vec<(u64, u64)> = (0..1000).map(|i| (key(i), i)).collect();
        map.insert(&pairs[..600], 600).unwrap();
        map.flush().unwrap();
        map.insert(&pairs[600..], 1000).unwrap();
        // A key stored twice (a collision, or an entry logged again).
        map.insert(&[(key(7), 1000)], 1001).unwrap();
        for i in (0..1000).step_by(37) {
            let expected = if i == 7 { vec![7, 1000] } else { vec![i] };
            assert_eq!(map.candidates(key(i)).unwrap(), expected, "pair {i}");
        }
        assert_eq!(map.candidates(key(5000)).unwrap(), Vec::<u64>::new());
        assert_eq!((map.size(), map.covered()), (1001, 600));
        drop(map);

        // The memtable is gone with the process; the manifest says so.
        let map = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).unwrap();
        assert_eq!((map.size(), map.covered()), (600, 600));
        assert_eq!(map.candidates(key(599)).unwrap(), vec![599]);
        assert_eq!(map.candidates(key(600)).unwrap(), Vec::<u64>::new());
        assert_eq!(map.candidates(key(7)).unwrap(), vec![7]);
        drop(map);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn runs_of_similar_size_are_merged_and_nothing_is_lost() {
        let dir = scratch("merge");
        let map = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).unwrap();
        let mut size = 0;
        for _ in 0..9 {
            let pairs: Vec<(u64, u64)> = (size..size + 500).map(|i| (key(i % 1700), i)).collect();
            size += 500;
            map.insert(&pairs, size).unwrap();
            map.flush().unwrap();
        }
        map.wait_for_merges();
        // 9 flushes of 500 merge down to runs of geometrically falling
        // sizes (which ones depends on how the merger kept up).
        assert!(map.runs() <= 3, "{} runs", map.runs());
        for i in (0..1700).step_by(13) {
            let expected: Vec<u64> = (i..size).step_by(1700).collect();
            assert_eq!(map.candidates(key(i)).unwrap(), expected, "key of {i}");
        }
        drop(map);
        let map = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).unwrap();
        assert_eq!(map.covered(), 4500);
        assert_eq!(map.candidates(key(3)).unwrap(), vec![3, 1703, 3403]);
        let files = fs::read_dir(&dir).unwrap().count();
        assert_eq!(
            files,
            1 + map.runs(),
            "the manifest and the runs, nothing stray"
        );
        drop(map);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_spanning_blocks_is_found_whole() {
        let dir = scratch("span");
        let map = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).unwrap();
        let shared = key(1);
        let mut pairs: Vec<(u64, u64)> = (0..400).map(|i| (shared, i)).collect();
        pairs.extend((400..1200).map(|i| (key(i), i)));
        map.insert(&pairs, 1200).unwrap();
        map.flush().unwrap();
        assert_eq!(
            map.candidates(shared).unwrap(),
            (0..400).collect::<Vec<_>>()
        );
        assert_eq!(map.candidates(key(800)).unwrap(), vec![800]);
        drop(map);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_bloom_filter_rules_out_almost_every_absent_key() {
        let mut bloom = Bloom::for_keys(100_000);
        for i in 0..100_000 {
            bloom.insert(key(i));
        }
        assert!((0..100_000).all(|i| bloom.may_contain(key(i))));
        let false_positives = (100_000..200_000)
            .filter(|&i| bloom.may_contain(key(i)))
            .count();
        assert!(false_positives < 3_000, "{false_positives} in 100,000");
    }

    #[test]
    fn damaged_files_are_refused_and_strays_removed() {
        let dir = scratch("damaged");
        let map = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).unwrap();
        let pairs: Vec<(u64, u64)> = (0..300).map(|i| (key(i), i)).collect();
        map.insert(&pairs, 300).unwrap();
        map.flush().unwrap();
        drop(map);
        let run = run_path(&dir, 0, false);
        fs::write(run_path(&dir, 9, false), b"stray").unwrap();
        fs::write(run_path(&dir, 10, true), b"half-written").unwrap();
        drop(IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).unwrap());
        assert!(!run_path(&dir, 9, false).exists());
        assert!(!run_path(&dir, 10, true).exists());
        assert!(run.exists());

        // A flipped bit in the filter.
        let mut bytes = fs::read(&run).unwrap();
        let at = bytes.len() - FOOTER_BYTES - 1;
        bytes[at] ^= 1;
        fs::write(&run, &bytes).unwrap();
        let err = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).err().unwrap();
        assert!(matches!(err, IdMapError::Corrupt { .. }), "{err}");
        // A manifest that is not one.
        fs::write(dir.join(MANIFEST), b"covered 5\n").unwrap();
        let err = IdMap::open(&dir, DEFAULT_FLUSH_PAIRS).err().unwrap();
        assert!(err.to_string().contains("not an id map manifest"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_run_write_leaves_no_file() {
        let dir = scratch("failed-write");
        fs::create_dir_all(&dir).unwrap();
        let out_of_order = [(5u64, 0u64), (3, 1)];
        let err = Run::write(&dir, 0, 2, out_of_order).err().unwrap();
        assert!(err.to_string().contains("out of order"), "{err}");
        let short = Run::write(&dir, 1, 3, [(1u64, 0u64)]).err().unwrap();
        assert!(short.to_string().contains("expected 3"), "{short}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn manifests_parse_strictly() {
        let good =
            b"modeltrail-idmap 1\ncovered 12\nrun 000000000000000a 5\nrun 0000000000000003 7\n";
        assert_eq!(
            parse_manifest(good).unwrap(),
            Manifest {
                covered: 12,
                runs: vec![(10, 5), (3, 7)]
            }
        );
        for bad in [
            &b"modeltrail-idmap 1\ncovered 12"[..],
            b"modeltrail-idmap 1\ncovered 012\n",
            b"modeltrail-idmap 1\ncovered +1\n",
            b"modeltrail-idmap 2\ncovered 1\n",
            b"modeltrail-idmap 1\ncovered 1\nrun 00000000000000A0 1\n",
            b"modeltrail-idmap 1\ncovered 1\nrun a 1\n",
            b"modeltrail-idmap 1\ncovered 1\nrun 000000000000000a 1\nrun 000000000000000a 2\n",
            b"modeltrail-idmap 1\ncovered 1\n\n",
        ] {
            assert!(
                parse_manifest(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
