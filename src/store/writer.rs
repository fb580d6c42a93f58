//! The durable append path of a tlog-tiles log ([`TreeWriter`]) and reads of
//! committed trees from a [`TileStore`] ([`StoreHashReader`],
//! [`StoreTileReader`], [`read_entry`]), per C2SP tlog-tiles
//! (<https://c2sp.org/tlog-tiles>) and the stored-hash layout of
//! [`crate::tlog::hash`].
//!
//! # Appending without the tree
//!
//! A [`TreeWriter`] holds only the *right edge* of the tree: the partial hash
//! tile of each level (at most 8 × 255 hashes), the partial entry bundle (at
//! most 255 entries), and the hashes of the complete subtrees that make up
//! the tree (one per set bit of its size). Appending record `n` needs only
//! the latter: the left siblings [`stored_hashes`] reads are exactly those
//! subtrees. Memory and work per append are thus independent of the log's
//! size, and resuming reads O(1) tiles.
//!
//! # Crash protocol
//!
//! 1. [`TreeWriter::append`] writes every new or grown hash tile
//!    ([`new_tiles`]) and entry bundle ([`new_entry_bundles`]) with
//!    [`TileStore::put`], then makes them durable with [`TileStore::sync`],
//!    and only then returns the new size and root.
//! 2. The caller signs a checkpoint for that size and root and calls
//!    [`TileStore::replace_checkpoint`]; only after that returns may it
//!    acknowledge the entries.
//! 3. After a crash (or any error), the caller reopens with
//!    [`TreeWriter::open`] from the durable checkpoint's size and root. The
//!    writer loads the right edge at the widths that size implies, so
//!    anything written beyond it (partial tiles of larger sizes, tiles that
//!    became full in an uncommitted append) is ignored and later rewritten.
//!
//! `open` checks that the right edge hashes to the checkpoint's root and that
//! the partial entry bundle matches the leaf hashes of the partial level-0
//! tile, so a store that does not match its checkpoint is refused, not
//! extended.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};

use super::TileStore;
use crate::tlog::hash::{
    HASH_SIZE, Hash, HashReader, ReadError, leaf_hash, split_stored_hash_index, stored_hash_count,
    stored_hash_index, stored_hashes, tree_hash,
};
use crate::tlog::tile::{
    BundleError, ExpandedTile, MAX_ENTRY_SIZE, MAX_TREE_SIZE, TILE_HEIGHT, TILE_WIDTH, Tile,
    TileKind, TileReader, encode_bundle, entry_bundle_for, hash_from_tile, new_entry_bundles,
    new_tiles, parse_bundle_for, partial_tile_width, tile_for_index,
};

/// Tile levels a tree of at most [`MAX_TREE_SIZE`] records has.
const TILE_LEVELS: usize = 8;
/// Tree levels (heights of complete subtrees) such a tree has.
const TREE_LEVELS: usize = 64;

/// Why the tree could not be opened, appended to or read.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The store failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// An entry is longer than an entry bundle can hold; nothing was written.
    #[error("entry {index} of the batch has {len} bytes, more than 65535")]
    EntryTooLarge {
        /// The entry's position in the batch.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// The tree would exceed [`MAX_TREE_SIZE`] records.
    #[error("a tree of {0} records is beyond the largest supported tree")]
    TooLarge(u128),
    /// The store's tiles or bundles do not match the checkpoint being
    /// resumed from (or read against): missing, malformed or wrong data.
    #[error("the store does not match its checkpoint (tree size {size}): {reason}")]
    StoreMismatch {
        /// The checkpoint's tree size.
        size: u64,
        /// What is wrong, naming the path.
        reason: String,
    },
    /// The entry is not in the tree.
    #[error("entry {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested entry.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// Reading stored hashes failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// The hashes of the complete subtrees whose concatenation is the tree of
/// `size` records: for each set bit `L` of `size`, the subtree at level `L`
/// that ends where the next lower set bit's subtree begins.
///
/// Its [`HashReader`] answers exactly the reads [`stored_hashes`] makes
/// when appending record `size`, and those [`tree_hash`] makes for `size`.
#[derive(Clone, Debug)]
struct Frontier {
    size: u64,
    hashes: [Hash; TREE_LEVELS],
}

impl Frontier {
    /// Records the stored hashes of record `self.size`: the last one is the
    /// subtree that record completes, which replaces all lower subtrees.
    fn push(&mut self, stored: &[Hash]) {
        let level = stored.len() - 1;
        assert_eq!(
            level,
            (self.size + 1).trailing_zeros() as usize,
            "tlog: bad math in Frontier::push"
        );
        self.hashes[level] = stored[level];
        self.size += 1;
    }
}

impl HashReader for Frontier {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        indexes
            .iter()
            .map(|&index| {
                let (level, n) = split_stored_hash_index(index);
                let above = self.size >> level;
                if above & 1 == 1 && n == above - 1 {
                    Ok(self.hashes[usize::from(level)])
                } else {
                    Err(ReadError::new(format!(
                        "stored hash {index} is not on the right edge of the tree of size {} \
                         (bad math)",
                        self.size
                    )))
                }
            })
            .collect()
    }
}

/// Concatenated hashes: tile data.
fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

/// The durable append path of the log: appends batches of entries, writing
/// their tiles and bundles to a [`TileStore`], while holding only the tree's
/// right edge in memory. See the module docs for the crash protocol.
#[derive(Debug)]
pub struct TreeWriter<S> {
    store: S,
    root: Hash,
    frontier: Frontier,
    /// The hashes of the partial tile at each tile level (level `8t` tree
    /// hashes), `partial_tile_width(t, size)` of them.
    edge: Vec<Vec<Hash>>,
    /// The entries of the partial entry bundle, `size % 256` of them.
    bundle: Vec<Vec<u8>>,
}

impl<S: TileStore> TreeWriter<S> {
    /// Resumes the tree of `size` records with hash `root` (from the durable
    /// checkpoint; size 0 with the empty tree hash for a new log).
    ///
    /// Reads only the partial tile of each level and the partial entry bundle
    /// at the widths `size` implies, and refuses the store
    /// ([`TreeError::StoreMismatch`]) unless they hash to `root` and the
    /// bundle's entries hash to the level-0 tile.
    pub fn open(store: S, size: u64, root: Hash) -> Result<TreeWriter<S>, TreeError> {
        if size > MAX_TREE_SIZE {
            return Err(TreeError::TooLarge(u128::from(size)));
        }
        let mismatch = |reason: String| TreeError::StoreMismatch { size, reason };
        let mut edge = vec![Vec::new(); TILE_LEVELS];
        let mut edge_tiles = Vec::new();
        for (level, hashes) in edge.iter_mut().enumerate() {
            let level = level as u8;
            let width = partial_tile_width(level, size);
            if width == 0 {
                continue;
            }
            let index = (size >> (u32::from(TILE_HEIGHT) * u32::from(level))) / 256;
            let tile = Tile::hashes(level, index, width).expect("tlog: bad math (edge tile)");
            let data = store
                .get(&tile.path())?
                .ok_or_else(|| mismatch(format!("{tile} is missing")))?;
            if data.len() != usize::from(width) * HASH_SIZE {
                return Err(mismatch(format!(
                    "{tile} has {} bytes, want {}",
                    data.len(),
                    usize::from(width) * HASH_SIZE
                )));
            }
            *hashes = data
                .chunks_exact(HASH_SIZE)
                .map(|h| Hash::from_slice(h).expect("chunks are 32 bytes"))
                .collect();
            edge_tiles.push((tile, data));
        }

        // The frontier lies entirely in the partial tiles: the subtree at
        // level L (bit L of size set) covers the last hashes of the partial
        // tile at tile level L/8, as bit L%8 of that tile's width is set.
        let mut frontier = Frontier {
            size,
            hashes: [Hash::default(); TREE_LEVELS],
        };
        for level in 0..TREE_LEVELS {
            if (size >> level) & 1 == 0 {
                continue;
            }
            let index = stored_hash_index(level as u8, (size >> level) - 1);
            let t = (level / usize::from(TILE_HEIGHT)) as u8;
            let (tile, data) = edge_tiles
                .iter()
                .find(|(tile, _)| tile.level() == Some(t))
                .expect("tlog: bad math (frontier outside the edge)");
            frontier.hashes[level] = hash_from_tile(tile, data, index)
                .expect("tlog: bad math (frontier not in its edge tile)");
        }
        let got = tree_hash(size, &frontier)?;
        if got != root {
            return Err(mismatch(format!(
                "its tiles hash to {got}, the checkpoint's root is {root}"
            )));
        }

        let mut bundle = Vec::new();
        let width = (size % u64::from(TILE_WIDTH)) as u16;
        if width > 0 {
            let tile = Tile::entries(size / u64::from(TILE_WIDTH), width)
                .expect("tlog: bad math (edge bundle)");
            let data = store
                .get(&tile.path())?
                .ok_or_else(|| mismatch(format!("{tile} is missing")))?;
            let entries =
                parse_bundle_for(&tile, &data).map_err(|e| mismatch(format!("{tile}: {e}")))?;
            for (i, (entry, want)) in entries.iter().zip(&edge[0]).enumerate() {
                if leaf_hash(entry) != *want {
                    return Err(mismatch(format!(
                        "entry {i} of {tile} does not match its leaf hash"
                    )));
                }
            }
            bundle = entries.into_iter().map(<[u8]>::to_vec).collect();
        }
        Ok(TreeWriter {
            store,
            root,
            frontier,
            edge,
            bundle,
        })
    }

    /// The number of records in the tree (as of the last successful append).
    pub fn size(&self) -> u64 {
        self.frontier.size
    }

    /// The tree hash (as of the last successful append).
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The store the writer writes to, e.g. to replace the checkpoint.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Appends `entries` (each at most 65,535 bytes), writes and syncs every
    /// new or grown tile and bundle, and returns the new size and root.
    ///
    /// It does not write the checkpoint: the caller signs one for the
    /// returned size and root and calls [`TileStore::replace_checkpoint`].
    /// An empty batch writes nothing. On error the writer is unchanged
    /// (still at its previous size) and the store may hold leftovers beyond
    /// that size, which the next append overwrites; if the checkpoint could
    /// not be written, reopen from the durable checkpoint instead.
    pub fn append<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<(u64, Hash), TreeError> {
        if let Some((index, e)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.as_ref().len() > MAX_ENTRY_SIZE)
        {
            return Err(TreeError::EntryTooLarge {
                index,
                len: e.as_ref().len(),
            });
        }
        let old = self.size();
        let new = u128::from(old) + entries.len() as u128;
        if new > u128::from(MAX_TREE_SIZE) {
            return Err(TreeError::TooLarge(new));
        }
        let new = new as u64;
        if new == old {
            return Ok((old, self.root));
        }

        // Hash, on copies of the (small) right edge.
        let mut frontier = self.frontier.clone();
        let mut edge = self.edge.clone();
        let mut full_tiles: HashMap<Tile, Vec<u8>> = HashMap::new();
        for (n, entry) in (old..).zip(entries) {
            let hashes = stored_hashes(n, entry.as_ref(), &frontier)?;
            for (t, hash) in hashes.iter().step_by(usize::from(TILE_HEIGHT)).enumerate() {
                let tile_hashes = &mut edge[t];
                tile_hashes.push(*hash);
                if tile_hashes.len() == usize::from(TILE_WIDTH) {
                    // Position of this hash at tile level t.
                    let position = ((n + 1) >> (u32::from(TILE_HEIGHT) * t as u32)) - 1;
                    let tile = Tile::hashes(t as u8, position / 256, TILE_WIDTH)
                        .expect("tlog: bad math (full tile)");
                    full_tiles.insert(tile, tile_bytes(tile_hashes));
                    tile_hashes.clear();
                }
            }
            frontier.push(&hashes);
        }
        let root = tree_hash(new, &frontier)?;

        // Write every tile and bundle of the new tree the old one lacks.
        for tile in new_tiles(old, new) {
            let data = if tile.is_partial() {
                let hashes = &edge[usize::from(tile.level().expect("hash tile"))];
                assert_eq!(
                    hashes.len(),
                    usize::from(tile.width()),
                    "tlog: bad math (partial tile {tile})"
                );
                tile_bytes(hashes)
            } else {
                full_tiles
                    .remove(&tile)
                    .unwrap_or_else(|| panic!("tlog: bad math (full tile {tile} not built)"))
            };
            self.store.put(&tile.path(), &data)?;
        }
        assert!(
            full_tiles.is_empty(),
            "tlog: bad math (unwritten full tiles)"
        );
        let width = u64::from(TILE_WIDTH);
        for tile in new_entry_bundles(old, new) {
            let start = tile.index() * width;
            let items: Vec<&[u8]> = (start..start + u64::from(tile.width()))
                .map(|record| {
                    if record < old {
                        self.bundle[(record - start) as usize].as_slice()
                    } else {
                        entries[(record - old) as usize].as_ref()
                    }
                })
                .collect();
            let data = encode_bundle(&items).expect("entries were checked");
            self.store.put(&tile.path(), &data)?;
        }
        self.store.sync()?;

        // Commit: nothing below can fail.
        let new_start = new / width * width;
        if new_start > old / width * width {
            self.bundle = entries[(new_start - old) as usize..]
                .iter()
                .map(|e| e.as_ref().to_vec())
                .collect();
        } else {
            self.bundle
                .extend(entries.iter().map(|e| e.as_ref().to_vec()));
        }
        self.frontier = frontier;
        self.edge = edge;
        self.root = root;
        Ok((new, root))
    }
}

/// A bounded least-recently-used cache of hash tiles, so that hot proofs do
/// not read the store. Shared by readers (it locks internally).
///
/// Full tiles are immutable. A partial tile is immutable too once a durable
/// checkpoint covers its width (its hashes are then fixed), and readers with
/// a cache only read tree sizes a checkpoint committed to; the right edge of
/// the published tree, which every proof reads, is the hottest data there is.
#[derive(Debug)]
pub struct TileCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    tick: u64,
    tiles: HashMap<Tile, (Arc<ExpandedTile>, u64)>,
    by_use: BTreeMap<u64, Tile>,
    hits: u64,
    misses: u64,
}

impl TileCache {
    /// A cache of at most `capacity` tiles (16 KiB each for a full tile:
    /// its 8 KiB and the hashes above them, see [`ExpandedTile`]); 0
    /// disables it.
    pub fn new(capacity: usize) -> TileCache {
        TileCache {
            capacity,
            inner: Mutex::default(),
        }
    }

    /// `(hits, misses)` so far, for metrics.
    pub fn stats(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.hits, inner.misses)
    }

    /// How many tiles the cache holds.
    pub fn len(&self) -> usize {
        self.lock().tiles.len()
    }

    /// Whether the cache holds no tile.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, tile: &Tile) -> Option<Arc<ExpandedTile>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let Some((data, used)) = inner.tiles.get_mut(tile) else {
            inner.misses += 1;
            return None;
        };
        let (data, last) = (data.clone(), std::mem::replace(used, tick));
        inner.by_use.remove(&last);
        inner.by_use.insert(tick, *tile);
        inner.hits += 1;
        Some(data)
    }

    fn insert(&self, tile: Tile, data: Arc<ExpandedTile>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, last)) = inner.tiles.insert(tile, (data, tick)) {
            inner.by_use.remove(&last);
        }
        inner.by_use.insert(tick, tile);
        while inner.tiles.len() > self.capacity {
            let (_, oldest) = inner.by_use.pop_first().expect("cache is not empty");
            inner.tiles.remove(&oldest);
        }
    }
}

/// A [`TileReader`] over a [`TileStore`]: reads hash tiles by their
/// tlog-tiles paths, through an optional [`TileCache`]. A missing tile or one
/// of the wrong length is an error.
#[derive(Debug)]
pub struct StoreTileReader<'a, S: ?Sized> {
    store: &'a S,
    cache: Option<&'a TileCache>,
}

impl<S: ?Sized> Clone for StoreTileReader<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: ?Sized> Copy for StoreTileReader<'_, S> {}

impl<'a, S: TileStore + ?Sized> StoreTileReader<'a, S> {
    /// A reader of `store`'s tiles, uncached.
    pub fn new(store: &'a S) -> StoreTileReader<'a, S> {
        StoreTileReader { store, cache: None }
    }

    /// The same reader, keeping tiles in `cache`. Only for trees a durable
    /// checkpoint committed to (see [`TileCache`]).
    pub fn with_cache(self, cache: &'a TileCache) -> StoreTileReader<'a, S> {
        StoreTileReader {
            cache: Some(cache),
            ..self
        }
    }

    /// The data of one hash tile, `width × 32` bytes, from the store.
    fn read_raw(&self, tile: &Tile) -> Result<Vec<u8>, ReadError> {
        let data = self
            .store
            .get(&tile.path())
            .map_err(|e| ReadError::new(format!("reading {tile}: {e}")))?
            .ok_or_else(|| ReadError::new(format!("{tile} is missing from the store")))?;
        let want = usize::from(tile.width()) * HASH_SIZE;
        if data.len() != want {
            return Err(ReadError::new(format!(
                "{tile} has {} bytes, want {want}",
                data.len()
            )));
        }
        Ok(data)
    }

    /// One hash tile with the hashes above its data computed, from the
    /// cache, or read and expanded once and kept there.
    fn read_expanded(
        &self,
        tile: &Tile,
        cache: &TileCache,
    ) -> Result<Arc<ExpandedTile>, ReadError> {
        if let Some(expanded) = cache.get(tile) {
            return Ok(expanded);
        }
        let data = self.read_raw(tile)?;
        let expanded = Arc::new(ExpandedTile::new(tile, &data).map_err(ReadError::new)?);
        cache.insert(*tile, expanded.clone());
        Ok(expanded)
    }
}

impl<S: TileStore + ?Sized> TileReader for StoreTileReader<'_, S> {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        tiles
            .iter()
            .map(|tile| match self.cache {
                Some(cache) => self.read_expanded(tile, cache).map(|t| t.data().to_vec()),
                None => self.read_raw(tile),
            })
            .collect()
    }
}

/// A [`HashReader`] for the committed tree of `tree_size` records in a
/// [`TileStore`], for the server's inclusion and consistency proofs.
///
/// Each stored hash is recomputed from the tile holding it
/// ([`tile_for_index`], [`hash_from_tile`]), read at the width the tree of
/// `tree_size` publishes: O(log n) tile reads per proof, fewer with a
/// [`TileCache`]. The store is trusted (it is the log's own); use
/// [`crate::tlog::tile::TileHashReader`] over a [`StoreTileReader`] to
/// authenticate tiles against a root instead.
#[derive(Debug, Clone, Copy)]
pub struct StoreHashReader<'a, S: ?Sized> {
    tiles: StoreTileReader<'a, S>,
    tree_size: u64,
}

impl<'a, S: TileStore + ?Sized> StoreHashReader<'a, S> {
    /// A reader of the tree of `tree_size` records (a size some checkpoint
    /// committed to) in `store`, uncached.
    pub fn new(store: &'a S, tree_size: u64) -> StoreHashReader<'a, S> {
        StoreHashReader {
            tiles: StoreTileReader::new(store),
            tree_size,
        }
    }

    /// The same reader, keeping full tiles in `cache`.
    pub fn with_cache(self, cache: &'a TileCache) -> StoreHashReader<'a, S> {
        StoreHashReader {
            tiles: self.tiles.with_cache(cache),
            ..self
        }
    }

    /// The tree size this reader reads.
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }
}

impl<S: TileStore + ?Sized> HashReader for StoreHashReader<'_, S> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        if self.tree_size > MAX_TREE_SIZE {
            return Err(ReadError::new(format!(
                "tree size {} is beyond the largest supported tree",
                self.tree_size
            )));
        }
        let limit = stored_hash_count(self.tree_size);
        let tile_of = |index: u64| {
            if index >= limit {
                return Err(ReadError::new(format!(
                    "stored hash {index} is not in the tree of size {}",
                    self.tree_size
                )));
            }
            let narrow = tile_for_index(index).0;
            Ok(Tile::in_tree(narrow.kind(), narrow.index(), self.tree_size)
                .expect("tlog: bad math (stored hash outside its tree's tiles)"))
        };
        // A proof's hashes share a handful of tiles: read each once. With a
        // cache, tiles are kept expanded, so a hash above a tile's lowest
        // level is looked up rather than recomputed.
        match self.tiles.cache {
            Some(cache) => {
                let mut loaded: Vec<Arc<ExpandedTile>> = Vec::new();
                indexes
                    .iter()
                    .map(|&index| {
                        let tile = tile_of(index)?;
                        let expanded = match loaded.iter().find(|t| *t.tile() == tile) {
                            Some(t) => t.clone(),
                            None => {
                                let t = self.tiles.read_expanded(&tile, cache)?;
                                loaded.push(t.clone());
                                t
                            }
                        };
                        expanded.hash(index).map_err(ReadError::new)
                    })
                    .collect()
            }
            None => {
                let mut loaded: Vec<(Tile, Vec<u8>)> = Vec::new();
                indexes
                    .iter()
                    .map(|&index| {
                        let tile = tile_of(index)?;
                        let at = match loaded.iter().position(|(t, _)| *t == tile) {
                            Some(at) => at,
                            None => {
                                loaded.push((tile, self.tiles.read_raw(&tile)?));
                                loaded.len() - 1
                            }
                        };
                        hash_from_tile(&tile, &loaded[at].1, index).map_err(ReadError::new)
                    })
                    .collect()
            }
        }
    }
}

/// Reads entry bundle number `bundle` of the tree of `tree_size` records:
/// its entries, at the width that tree publishes.
pub fn read_bundle<S: TileStore + ?Sized>(
    store: &S,
    bundle: u64,
    tree_size: u64,
) -> Result<Vec<Vec<u8>>, TreeError> {
    let tile =
        Tile::in_tree(TileKind::Entries, bundle, tree_size).ok_or(TreeError::IndexOutOfRange {
            index: bundle.saturating_mul(u64::from(TILE_WIDTH)),
            size: tree_size,
        })?;
    let mismatch = |reason: String| TreeError::StoreMismatch {
        size: tree_size,
        reason,
    };
    let data = store
        .get(&tile.path())?
        .ok_or_else(|| mismatch(format!("{tile} is missing")))?;
    let entries = parse_bundle_for(&tile, &data)
        .map_err(|e: BundleError| mismatch(format!("{tile}: {e}")))?;
    Ok(entries.into_iter().map(<[u8]>::to_vec).collect())
}

/// Reads entry `index` of the tree of `tree_size` records from its entry
/// bundle. The entry is returned as stored: the caller checks it against
/// the leaf hash when it must be authenticated.
pub fn read_entry<S: TileStore + ?Sized>(
    store: &S,
    index: u64,
    tree_size: u64,
) -> Result<Vec<u8>, TreeError> {
    let (tile, position) =
        entry_bundle_for(index, tree_size).ok_or(TreeError::IndexOutOfRange {
            index,
            size: tree_size,
        })?;
    let mut entries = read_bundle(store, tile.index(), tree_size)?;
    Ok(entries.swap_remove(position))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(n: u64) -> Vec<Hash> {
        let mut stored = Vec::new();
        for i in 0..n {
            let h = stored_hashes(i, &i.to_be_bytes(), &stored).unwrap();
            stored.extend(h);
        }
        stored
    }

    #[test]
    fn frontier_answers_exactly_the_right_edge() {
        let stored = reference(1000);
        let mut frontier = Frontier {
            size: 0,
            hashes: [Hash::default(); TREE_LEVELS],
        };
        for n in 0..1000u64 {
            assert_eq!(
                tree_hash(n, &frontier).unwrap(),
                tree_hash(n, &stored).unwrap()
            );
            let h = stored_hashes(n, &n.to_be_bytes(), &frontier).unwrap();
            frontier.push(&h);
        }
        // Not a frontier hash of size 1000 (= 0b1111101000): leaf 0.
        assert!(frontier.read_hashes(&[0]).is_err());
    }

    #[test]
    fn cache_evicts_the_least_recently_used() {
        let cache = TileCache::new(2);
        let t = |n| Tile::hashes(0, n, 256).unwrap();
        let d = Arc::new(ExpandedTile::new(&t(0), &[0u8; 256 * 32]).unwrap());
        cache.insert(t(0), d.clone());
        cache.insert(t(1), d.clone());
        assert!(cache.get(&t(0)).is_some());
        cache.insert(t(2), d.clone());
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&t(1)).is_none(), "1 was least recently used");
        assert!(cache.get(&t(0)).is_some() && cache.get(&t(2)).is_some());
        cache.insert(Tile::hashes(0, 3, 5).unwrap(), d.clone());
        assert_eq!(cache.len(), 2, "partial tiles are not cached");
        assert_eq!(cache.stats(), (3, 1));
        let off = TileCache::new(0);
        off.insert(t(0), d);
        assert!(off.is_empty());
    }
}
