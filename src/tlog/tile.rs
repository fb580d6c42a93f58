//! Tiled transparency logs, as specified by C2SP tlog-tiles
//! (<https://c2sp.org/tlog-tiles>): tile coordinates and paths, the tile
//! math of Go's `golang.org/x/mod/sumdb/tlog` (`tile.go`) at the fixed
//! height 8, authenticated hash reads from untrusted tiles, and entry bundles.
//!
//! # Tiles
//!
//! A tile is a sequence of consecutive Merkle tree hashes at one height. The
//! `n`-th tile at level `l` is, with `i` from 0 to 255 (RFC 6962 §2.1):
//!
//! ```text
//! MTH(D[(n·256 + i)·256^l : (n·256 + i + 1)·256^l])
//! ```
//!
//! so level-0 tiles hold leaf hashes and each hash of a level-`l+1` tile is
//! the hash of a *full* level-`l` tile. A full tile is 256 hashes (8,192
//! bytes); the rightmost tile of each level may be *partial*, with
//! `floor(s / 256^l) mod 256` hashes for a tree of size `s`. Empty tiles do
//! not exist. Inside a tile, the subtree hashes between its level and the
//! next are recomputed by hashing its hashes.
//!
//! In the stored-hash layout of [`super::hash`], a tile at level `l` holds the
//! stored hashes of tree levels `8l ..= 8l+7` over its range.
//!
//! # Paths
//!
//! ```text
//! tile/<L>/<N>[.p/<W>]          a hash tile
//! tile/entries/<N>[.p/<W>]      an entry bundle
//! ```
//!
//! - `<L>` is a decimal level in `0..=63`, with no leading zeros.
//! - `<N>` is the tile index, split into zero-padded 3-digit path elements,
//!   all but the last prefixed with `x`: 1234067 is `x001/x234/067`, 5 is
//!   `005`. There are no leading all-zero elements.
//! - `.p/<W>` is present only for partial tiles: `<W>` is the width, a
//!   decimal in `1..=255` with no leading zeros. A full tile never has it.
//!
//! [`Tile::parse_path`] accepts exactly the paths [`Tile::path`] produces.
//!
//! # Entry bundles
//!
//! The bundle `tile/entries/<N>` holds the entries whose leaf hashes are in
//! the level-0 tile `tile/0/<N>`, each as a big-endian `u16` length followed
//! by that many bytes ([`encode_bundle`], [`parse_bundle`]).

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use super::hash::{
    HASH_SIZE, Hash, HashReader, ReadError, node_hash, read_exact, split_stored_hash_index,
    stored_hash_index, sub_tree_index,
};

/// The height of every tile: each tile spans 8 levels of the tree.
pub const TILE_HEIGHT: u8 = 8;

/// The number of hashes (or entries) in a full tile: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;

/// The highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;

/// The largest tree size the tile math supports (`2^63 - 1`, as in Go's
/// `int64` tlog): beyond it stored-hash indexes overflow `u64`.
pub const MAX_TREE_SIZE: u64 = (1 << 63) - 1;

/// The largest entry an entry bundle can hold: its length is a `u16`.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// Tile indexes are written in groups of this many decimal digits.
const PATH_GROUP: u64 = 1000;

/// What a tile holds: hashes at a level, or log entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// A hash tile at the given level (`0..=63`); level 0 holds leaf hashes.
    Hash(u8),
    /// An entry bundle (path level `entries`): the entries of the level-0
    /// tile with the same index.
    Entries,
}

/// The coordinates of a tile or entry bundle: kind, index `N` within its
/// level and width `W` (`1..=256`; 256 is a full tile).
///
/// A `Tile` is always valid: its level is at most [`MAX_TILE_LEVEL`] and its
/// width is in `1..=TILE_WIDTH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    kind: TileKind,
    index: u64,
    width: u16,
}

/// Why tile coordinates are invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTile {
    /// The level is above [`MAX_TILE_LEVEL`].
    #[error("tile level {0} is above 63")]
    Level(u8),
    /// The width is 0 or above [`TILE_WIDTH`].
    #[error("tile width {0} is not in 1..=256")]
    Width(u16),
}

/// Why a string is not a canonical tile path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    /// The path does not start with `tile/<level>/`.
    #[error("tile path does not start with tile/<level>/")]
    Prefix,
    /// The level is not `entries` or a canonical decimal in `0..=63`.
    #[error("tile path has a malformed level")]
    Level,
    /// The index is not a canonical sequence of 3-digit elements, or overflows `u64`.
    #[error("tile path has a malformed index")]
    Index,
    /// The `.p/<W>` suffix is not a canonical decimal in `1..=255`.
    #[error("tile path has a malformed partial width")]
    Width,
    /// The path parses but is not the canonical path of its tile.
    #[error("tile path is not canonical")]
    NotCanonical,
}

/// Failures of the tile math and of authenticated tile reads.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// An entry bundle was given where a hash tile is needed.
    #[error("{0} is an entry bundle, not a hash tile")]
    NotHashTile(Tile),
    /// Tile data is not exactly `width × 32` bytes.
    #[error("data for {tile} has {got} bytes, want {want}")]
    DataLength {
        /// The tile.
        tile: Tile,
        /// The length of the data given.
        got: usize,
        /// `width × 32`.
        want: usize,
    },
    /// The stored hash is not in the given tile (or the tile is too narrow).
    #[error("stored hash {index} is in {actual}, not {tile}")]
    IndexNotInTile {
        /// The stored-hash index.
        index: u64,
        /// The tile given.
        tile: Tile,
        /// The narrowest tile that holds `index`.
        actual: Tile,
    },
    /// The stored hash is not part of the tree.
    #[error("stored hash {index} is not in a tree of size {tree_size}")]
    IndexNotInTree {
        /// The stored-hash index.
        index: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// The tile or tree lies beyond [`MAX_TREE_SIZE`].
    #[error("{0} is beyond the largest supported tree")]
    OutOfRange(String),
    /// The tile reader returned the wrong number of tiles.
    #[error("tile reader returned {got} tiles for {want}")]
    TileCount {
        /// Tiles returned.
        got: usize,
        /// Tiles requested.
        want: usize,
    },
    /// The tiles needed for the tree hash do not hash to the trusted root:
    /// at least one of them is wrong.
    #[error("tiles do not match the tree root")]
    RootMismatch,
    /// A full tile does not hash to the hash its (authenticated) parent tile
    /// holds for it.
    #[error("{0} does not match its parent tile")]
    ParentMismatch(Tile),
    /// The tile reader failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Why bytes are not a valid entry bundle, or entries cannot be bundled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// A bundle holds at least one entry.
    #[error("entry bundle is empty")]
    Empty,
    /// A bundle holds at most 256 entries.
    #[error("entry bundle has more than 256 entries")]
    TooManyEntries,
    /// An entry is longer than [`MAX_ENTRY_SIZE`].
    #[error("entry {index} has {len} bytes, more than 65535")]
    EntryTooLarge {
        /// The entry's position in the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// The data ends inside a length prefix or an entry.
    #[error("entry bundle is truncated at byte {0}")]
    Truncated(usize),
    /// The bundle does not have its tile's width in entries.
    #[error("entry bundle has {got} entries, want {want}")]
    Count {
        /// Entries found.
        got: usize,
        /// The tile's width.
        want: usize,
    },
    /// A hash tile was given where an entry bundle is needed.
    #[error("{0} is not an entry bundle")]
    NotEntryBundle(Tile),
}

impl Tile {
    /// Validated coordinates of a tile of `kind`.
    pub fn new(kind: TileKind, index: u64, width: u16) -> Result<Tile, InvalidTile> {
        if let TileKind::Hash(level) = kind
            && level > MAX_TILE_LEVEL
        {
            return Err(InvalidTile::Level(level));
        }
        if width == 0 || width > TILE_WIDTH {
            return Err(InvalidTile::Width(width));
        }
        Ok(Tile { kind, index, width })
    }

    /// A hash tile at `level`: `tile/<level>/<index>[.p/<width>]`.
    pub fn hashes(level: u8, index: u64, width: u16) -> Result<Tile, InvalidTile> {
        Tile::new(TileKind::Hash(level), index, width)
    }

    /// An entry bundle: `tile/entries/<index>[.p/<width>]`.
    pub fn entries(index: u64, width: u16) -> Result<Tile, InvalidTile> {
        Tile::new(TileKind::Entries, index, width)
    }

    /// Coordinates produced by the tile math, which keeps them valid.
    fn from_math(kind: TileKind, index: u64, width: u64) -> Tile {
        let width = u16::try_from(width).expect("tlog: bad tile math (width)");
        Tile::new(kind, index, width).expect("tlog: bad tile math")
    }

    /// The tile `(kind, index)` as published for a tree of `tree_size`
    /// records: full, or partial with the tree's width at that level. `None`
    /// if the tree does not reach it.
    pub fn in_tree(kind: TileKind, index: u64, tree_size: u64) -> Option<Tile> {
        let level = match kind {
            TileKind::Hash(level) if level > MAX_TILE_LEVEL => return None,
            TileKind::Hash(level) => level,
            TileKind::Entries => 0,
        };
        let count = hashes_at_level(level, tree_size);
        let start = index.checked_mul(u64::from(TILE_WIDTH))?;
        if start >= count {
            return None;
        }
        let width = (count - start).min(u64::from(TILE_WIDTH));
        Some(Tile::from_math(kind, index, width))
    }

    /// What the tile holds.
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// The level of a hash tile; `None` for an entry bundle.
    pub fn level(&self) -> Option<u8> {
        match self.kind {
            TileKind::Hash(level) => Some(level),
            TileKind::Entries => None,
        }
    }

    /// The index `N` of the tile within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of hashes (or entries) `W`, in `1..=256`.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile has fewer than 256 hashes (or entries).
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The same tile at full width.
    pub fn full(&self) -> Tile {
        Tile {
            width: TILE_WIDTH,
            ..*self
        }
    }

    /// The spec's *start index* `N·256^(l+1)`: the first entry the tile's
    /// hashes cover (an entry bundle counts as level 0). `None` beyond `u64`.
    pub fn start_index(&self) -> Option<u64> {
        mul_pow2(self.index, self.span_shift())
    }

    /// The spec's *end index* `(N+1)·256^(l+1)`, one past the last entry
    /// the full tile covers. `None` beyond `u64`.
    pub fn end_index(&self) -> Option<u64> {
        mul_pow2(self.index.checked_add(1)?, self.span_shift())
    }

    /// log2 of the entries a full tile spans: `8·(l+1)`.
    fn span_shift(&self) -> u32 {
        let level = self.level().unwrap_or(0);
        u32::from(TILE_HEIGHT) * (u32::from(level) + 1)
    }

    /// The canonical path: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let mut path = String::with_capacity(40);
        path.push_str("tile/");
        match self.kind {
            TileKind::Hash(level) => {
                let _ = write!(path, "{level}");
            }
            TileKind::Entries => path.push_str("entries"),
        }
        path.push('/');
        push_index(&mut path, self.index);
        if self.is_partial() {
            let _ = write!(path, ".p/{}", self.width);
        }
        path
    }

    /// Parses a tile path, accepting exactly the canonical form [`Tile::path`]
    /// produces.
    pub fn parse_path(path: &str) -> Result<Tile, TilePathError> {
        let rest = path.strip_prefix("tile/").ok_or(TilePathError::Prefix)?;
        let (level, rest) = rest.split_once('/').ok_or(TilePathError::Prefix)?;
        let kind = match level {
            "entries" => TileKind::Entries,
            _ => TileKind::Hash(parse_level(level)?),
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => (index, parse_width(width)?),
            None => (rest, TILE_WIDTH),
        };
        let index = parse_index(index)?;
        let tile = Tile::new(kind, index, width).map_err(|_| TilePathError::NotCanonical)?;
        // Every element was checked above; this guards the grammar as a whole.
        if tile.path() != path {
            return Err(TilePathError::NotCanonical);
        }
        Ok(tile)
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// `x · 2^shift`, or `None` if it does not fit in `u64`.
fn mul_pow2(x: u64, shift: u32) -> Option<u64> {
    match x {
        0 => Some(0),
        _ if shift >= u64::BITS => None,
        _ => x.checked_mul(1 << shift),
    }
}

/// Appends `n` as 3-digit groups, all but the last prefixed with `x`.
fn push_index(path: &mut String, n: u64) {
    let mut groups = vec![n % PATH_GROUP];
    let mut rest = n / PATH_GROUP;
    while rest > 0 {
        groups.push(rest % PATH_GROUP);
        rest /= PATH_GROUP;
    }
    for (i, group) in groups.iter().rev().enumerate() {
        if i + 1 < groups.len() {
            let _ = write!(path, "x{group:03}/");
        } else {
            let _ = write!(path, "{group:03}");
        }
    }
}

/// A decimal of ASCII digits with no leading zeros (except `0` itself), at
/// most `max_digits` long.
fn parse_decimal(s: &str, max_digits: usize) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= max_digits
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.bytes().fold(0, |n, b| n * 10 + u64::from(b - b'0')))
}

/// A level in `0..=63`.
fn parse_level(s: &str) -> Result<u8, TilePathError> {
    parse_decimal(s, 2)
        .filter(|&l| l <= u64::from(MAX_TILE_LEVEL))
        .map(|l| l as u8)
        .ok_or(TilePathError::Level)
}

/// A partial width in `1..=255`.
fn parse_width(s: &str) -> Result<u16, TilePathError> {
    parse_decimal(s, 3)
        .filter(|&w| (1..u64::from(TILE_WIDTH)).contains(&w))
        .map(|w| w as u16)
        .ok_or(TilePathError::Width)
}

/// `xDDD/…/xDDD/DDD`, without a leading `x000` element.
fn parse_index(s: &str) -> Result<u64, TilePathError> {
    let elements: Vec<&str> = s.split('/').collect();
    if elements.len() > 1 && elements[0] == "x000" {
        return Err(TilePathError::Index);
    }
    let last = elements.len() - 1;
    elements
        .iter()
        .enumerate()
        .try_fold(0u64, |n, (i, element)| {
            let digits = if i < last {
                element.strip_prefix('x')
            } else {
                Some(*element)
            };
            let group = digits
                .filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()))
                .map(|d| d.bytes().fold(0, |g, b| g * 10 + u64::from(b - b'0')))
                .ok_or(TilePathError::Index)?;
            n.checked_mul(PATH_GROUP)
                .and_then(|n| n.checked_add(group))
                .ok_or(TilePathError::Index)
        })
}

/// How many hashes tree level `8·level` (tile level `level`) has in a tree
/// of `tree_size` records: `floor(tree_size / 256^level)`.
fn hashes_at_level(level: u8, tree_size: u64) -> u64 {
    tree_size
        .checked_shr(u32::from(TILE_HEIGHT) * u32::from(level))
        .unwrap_or(0)
}

/// The width of the partial tile at `level` for a tree of `tree_size`
/// records, `floor(s / 256^l) mod 256`; 0 if that level has no partial tile.
pub fn partial_tile_width(level: u8, tree_size: u64) -> u16 {
    (hashes_at_level(level, tree_size) % u64::from(TILE_WIDTH)) as u16
}

/// One past the last stored-hash index of a tree of [`MAX_TREE_SIZE`] records.
fn stored_hash_limit() -> u64 {
    stored_hash_index(0, MAX_TREE_SIZE)
}

/// The narrowest tile holding the stored hash at `index`, and the byte
/// range `start..end` of the tile data from which [`hash_from_tile`]
/// recomputes that hash (the hash itself, or the tile hashes below it).
///
/// Panics if `index` is not a stored hash of a tree of at most
/// [`MAX_TREE_SIZE`] records (the last 64 values of `u64`);
/// [`hash_from_tile`] checks this first.
pub fn tile_for_index(index: u64) -> (Tile, usize, usize) {
    assert!(
        index < stored_hash_limit(),
        "tile_for_index: stored hash {index} is beyond MAX_TREE_SIZE"
    );
    let (level, n) = split_stored_hash_index(index);
    let tile_level = level / TILE_HEIGHT;
    let level_in_tile = level % TILE_HEIGHT;
    let tile_index = (n << level_in_tile) >> TILE_HEIGHT;
    // n within the tile, at its own level.
    let n = n - ((tile_index << TILE_HEIGHT) >> level_in_tile);
    let start = n << level_in_tile;
    let end = (n + 1) << level_in_tile;
    let tile = Tile::from_math(TileKind::Hash(tile_level), tile_index, end);
    (tile, start as usize * HASH_SIZE, end as usize * HASH_SIZE)
}

/// The stored hash at `index`, from the data of `tile`, which must be the
/// tile [`tile_for_index`] names or a wider version of it, with exactly
/// `width × 32` bytes of data.
pub fn hash_from_tile(tile: &Tile, data: &[u8], index: u64) -> Result<Hash, TileError> {
    check_hash_tile(tile, data.len())?;
    let (start, end) = range_in_tile(tile, index)?;
    Ok(tile_hash(&data[start..end]))
}

/// Refuses anything but a hash tile with `width × 32` bytes of data.
fn check_hash_tile(tile: &Tile, len: usize) -> Result<(), TileError> {
    if tile.level().is_none() {
        return Err(TileError::NotHashTile(*tile));
    }
    let want = usize::from(tile.width) * HASH_SIZE;
    if len != want {
        return Err(TileError::DataLength {
            tile: *tile,
            got: len,
            want,
        });
    }
    Ok(())
}

/// The byte range of `tile`'s data below the stored hash at `index`
/// ([`tile_for_index`]), if `tile` holds it.
fn range_in_tile(tile: &Tile, index: u64) -> Result<(usize, usize), TileError> {
    if index >= stored_hash_limit() {
        return Err(TileError::IndexNotInTree {
            index,
            tree_size: MAX_TREE_SIZE,
        });
    }
    let (actual, start, end) = tile_for_index(index);
    if actual.kind != tile.kind || actual.index != tile.index || actual.width > tile.width {
        return Err(TileError::IndexNotInTile {
            index,
            tile: *tile,
            actual,
        });
    }
    Ok((start, end))
}

/// A hash tile with every stored hash it determines computed once: its
/// `width` hashes (the tile's lowest level), then, at each of the
/// [`TILE_HEIGHT`] − 1 levels above, the node hash of each complete pair
/// below. [`ExpandedTile::hash`] answers what [`hash_from_tile`] answers
/// without hashing, so a reader that keeps tiles (the server's tile cache)
/// pays the up to 255 node hashes of a tile once instead of per proof.
#[derive(Debug, Clone)]
pub struct ExpandedTile {
    tile: Tile,
    /// Level 0 (`width` hashes), then level 1 (`width / 2`), …, level 7.
    hashes: Vec<u8>,
}

impl ExpandedTile {
    /// Expands `data`, the `width × 32` bytes of hash tile `tile`.
    pub fn new(tile: &Tile, data: &[u8]) -> Result<ExpandedTile, TileError> {
        check_hash_tile(tile, data.len())?;
        let width = usize::from(tile.width);
        let mut hashes = Vec::with_capacity(2 * width * HASH_SIZE);
        hashes.extend_from_slice(data);
        let (mut below, mut count) = (0, width);
        for _ in 1..TILE_HEIGHT {
            let start = hashes.len();
            for pair in 0..count / 2 {
                let left = below + 2 * pair * HASH_SIZE;
                let l = Hash::from_slice(&hashes[left..left + HASH_SIZE]).expect("32 bytes");
                let r = Hash::from_slice(&hashes[left + HASH_SIZE..left + 2 * HASH_SIZE])
                    .expect("32 bytes");
                hashes.extend_from_slice(&node_hash(&l, &r).0);
            }
            (below, count) = (start, count / 2);
        }
        Ok(ExpandedTile {
            tile: *tile,
            hashes,
        })
    }

    /// The tile it expands.
    pub fn tile(&self) -> &Tile {
        &self.tile
    }

    /// The tile's own data, as stored and served.
    pub fn data(&self) -> &[u8] {
        &self.hashes[..usize::from(self.tile.width) * HASH_SIZE]
    }

    /// The stored hash at `index`, as [`hash_from_tile`] computes it.
    pub fn hash(&self, index: u64) -> Result<Hash, TileError> {
        let (start, end) = range_in_tile(&self.tile, index)?;
        let below = (end - start) / HASH_SIZE;
        let level = below.trailing_zeros();
        let width = usize::from(self.tile.width);
        let offset: usize = (0..level).map(|k| width >> k).sum();
        let at = (offset + ((start / HASH_SIZE) >> level)) * HASH_SIZE;
        Ok(Hash::from_slice(&self.hashes[at..at + HASH_SIZE])
            .expect("tlog: bad math in ExpandedTile"))
    }
}

/// The Merkle hash of the `2^k` hashes in `data`.
fn tile_hash(data: &[u8]) -> Hash {
    assert!(
        data.len() >= HASH_SIZE && (data.len() / HASH_SIZE).is_power_of_two(),
        "tlog: bad math in tile_hash"
    );
    if data.len() == HASH_SIZE {
        return Hash::from_slice(data).expect("tlog: bad math in tile_hash");
    }
    let (left, right) = data.split_at(data.len() / 2);
    node_hash(&tile_hash(left), &tile_hash(right))
}

/// The hash tiles a log must write when it grows from `old_size` to
/// `new_size` records: every tile of the new tree that the old tree did not
/// have (tiles that became full, and the new partial tile of each level
/// that changed), by level, full tiles first. Empty if `new_size <= old_size`.
pub fn new_tiles(old_size: u64, new_size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    if new_size <= old_size {
        return tiles;
    }
    let full = u64::from(TILE_WIDTH);
    for level in 0..TILES_LEVELS {
        let new_n = hashes_at_level(level, new_size);
        if new_n == 0 {
            break;
        }
        let old_n = hashes_at_level(level, old_size);
        for n in old_n / full..new_n / full {
            tiles.push(Tile::from_math(TileKind::Hash(level), n, full));
        }
        if !new_n.is_multiple_of(full) && new_n != old_n {
            tiles.push(Tile::from_math(
                TileKind::Hash(level),
                new_n / full,
                new_n % full,
            ));
        }
    }
    tiles
}

/// Tile levels a `u64` tree size can reach: `256^8 = 2^64`.
const TILES_LEVELS: u8 = 64 / TILE_HEIGHT;

/// The entry bundles a log must write when it grows from `old_size` to
/// `new_size` records (all of them when `old_size` is 0): bundles that
/// became full, then the new partial bundle, if any. Empty if
/// `new_size <= old_size`.
pub fn new_entry_bundles(old_size: u64, new_size: u64) -> impl Iterator<Item = Tile> {
    let full = u64::from(TILE_WIDTH);
    let grows = new_size > old_size;
    let full_range = if grows {
        old_size / full..new_size / full
    } else {
        0..0
    };
    let partial = (grows && !new_size.is_multiple_of(full))
        .then(|| Tile::from_math(TileKind::Entries, new_size / full, new_size % full));
    full_range
        .map(move |n| Tile::from_math(TileKind::Entries, n, full))
        .chain(partial)
}

/// The entry bundle holding record `record` in a tree of `tree_size`
/// records, and the record's position in it. `None` if `record >= tree_size`.
pub fn entry_bundle_for(record: u64, tree_size: u64) -> Option<(Tile, usize)> {
    if record >= tree_size {
        return None;
    }
    let full = u64::from(TILE_WIDTH);
    let tile = Tile::in_tree(TileKind::Entries, record / full, tree_size)?;
    Some((tile, (record % full) as usize))
}

/// The data of hash tile `tile` (its hashes, concatenated), read from the
/// stored hashes of a tree that contains it.
pub fn read_tile_data(tile: &Tile, r: &impl HashReader) -> Result<Vec<u8>, TileError> {
    let Some(level) = tile.level() else {
        return Err(TileError::NotHashTile(*tile));
    };
    let first = tile.index * u64::from(TILE_WIDTH);
    // The tree must reach the tile's last hash, within MAX_TREE_SIZE.
    let records_needed = tile
        .index
        .checked_mul(u64::from(TILE_WIDTH))
        .and_then(|n| n.checked_add(u64::from(tile.width)))
        .and_then(|n| n.checked_mul(1u64.checked_shl(u32::from(TILE_HEIGHT) * u32::from(level))?));
    if records_needed.is_none_or(|n| n > MAX_TREE_SIZE) {
        return Err(TileError::OutOfRange(tile.path()));
    }
    let indexes: Vec<u64> = (0..u64::from(tile.width))
        .map(|i| stored_hash_index(level * TILE_HEIGHT, first + i))
        .collect();
    let hashes = read_exact(r, &indexes)?;
    Ok(hashes.iter().flat_map(|h| h.0).collect())
}

/// The tiles a [`TileHashReader`] for a tree of `tree_size` records fetches
/// to return the stored hashes at `indexes`: the tiles needed to recompute
/// the tree hash (which authenticates them), the tiles holding the hashes,
/// and the parent tiles authenticating those. Parents come before children.
/// None if `indexes` is empty.
pub fn tiles_to_fetch(tree_size: u64, indexes: &[u64]) -> Result<Vec<Tile>, TileError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Plan::new(tree_size, indexes)?.tiles)
}

/// The tile `k` levels above `tile`, as published for a tree of `tree_size`.
fn tile_parent(tile: &Tile, k: u8, tree_size: u64) -> Option<Tile> {
    let level = tile.level()? + k;
    let index = tile
        .index
        .checked_shr(u32::from(TILE_HEIGHT) * u32::from(k))
        .unwrap_or(0);
    Tile::in_tree(TileKind::Hash(level), index, tree_size)
}

/// Which tiles to fetch for one read, in authentication order.
struct Plan {
    /// The tiles, parents before children; the first `root_tiles` of them
    /// hold the hashes of the tree hash.
    tiles: Vec<Tile>,
    root_tiles: usize,
    /// The stored hashes whose fold is the tree hash, and each one's tile.
    root_indexes: Vec<u64>,
    root_index_tile: Vec<usize>,
    /// The tile holding each requested index.
    index_tile: Vec<usize>,
}

impl Plan {
    fn new(tree_size: u64, indexes: &[u64]) -> Result<Plan, TileError> {
        if tree_size > MAX_TREE_SIZE {
            return Err(TileError::OutOfRange(format!("tree size {tree_size}")));
        }
        let limit = stored_hash_index(0, tree_size);
        if let Some(&index) = indexes.iter().find(|&&i| i >= limit) {
            return Err(TileError::IndexNotInTree { index, tree_size });
        }
        let mut plan = Plan {
            tiles: Vec::new(),
            root_tiles: 0,
            root_indexes: Vec::new(),
            root_index_tile: Vec::new(),
            index_tile: Vec::with_capacity(indexes.len()),
        };
        let mut order = HashMap::new();
        if tree_size > 0 {
            sub_tree_index(0, tree_size, &mut plan.root_indexes);
        }
        for &index in &plan.root_indexes {
            let tile = tile_parent(&tile_for_index(index).0, 0, tree_size)
                .expect("tlog: bad math in Plan (root tile)");
            let position = *order.entry(tile).or_insert_with(|| {
                plan.tiles.push(tile);
                plan.tiles.len() - 1
            });
            plan.root_index_tile.push(position);
        }
        plan.root_tiles = plan.tiles.len();
        for &index in indexes {
            let position = plan.add_index_tiles(index, tree_size, &mut order);
            plan.index_tile.push(position);
        }
        Ok(plan)
    }

    /// Adds the tile holding `index` and the parents needed to authenticate
    /// it, up to the first one already planned; returns the tile's position.
    fn add_index_tiles(
        &mut self,
        index: u64,
        tree_size: u64,
        order: &mut HashMap<Tile, usize>,
    ) -> usize {
        let tile = tile_for_index(index).0;
        let parent = |k| tile_parent(&tile, k, tree_size).expect("tlog: bad math in Plan (parent)");
        // Walk up until a planned tile: it is (or will be) authenticated.
        let mut k = 0;
        while !order.contains_key(&parent(k)) {
            k += 1;
        }
        // Walk back down, planning children after their parents. Every tile
        // with a parent is full.
        for k in (0..k).rev() {
            let p = parent(k);
            assert!(!p.is_partial(), "tlog: bad math in Plan (partial child)");
            order.insert(p, self.tiles.len());
            self.tiles.push(p);
        }
        order[&parent(0)]
    }
}

/// Read access to raw tile data, typically from a tile server or a cache.
pub trait TileReader {
    /// Returns the data of each (hash) tile, in order: exactly `tiles.len()`
    /// items, each supposedly `width × 32` bytes. The data may come from an
    /// untrusted source; [`TileHashReader`] checks it. A partial tile's data
    /// is the prefix of the full tile's, so a reader whose partial tile is
    /// gone may answer with the first `width × 32` bytes of the full tile.
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError>;

    /// Called with tiles [`read_tiles`](TileReader::read_tiles) returned once
    /// they are authenticated, so they may be cached. Does nothing by default.
    fn save_tiles(&self, tiles: &[Tile], data: &[Vec<u8>]) {
        let _ = (tiles, data);
    }
}

impl<R: TileReader + ?Sized> TileReader for &R {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        (**self).read_tiles(tiles)
    }

    fn save_tiles(&self, tiles: &[Tile], data: &[Vec<u8>]) {
        (**self).save_tiles(tiles, data)
    }
}

/// A [`HashReader`] for a tree of known size and root that reads hashes from
/// tiles, and returns only hashes proven to be in that tree.
///
/// Each read fetches, in one [`TileReader::read_tiles`] call, the tiles that
/// hold the tree hash's subtree hashes, checks that they fold to the root,
/// then checks every other tile against the hash its parent tile holds for
/// it, before extracting any requested hash. A wrong tile is an error
/// ([`TileError::RootMismatch`], [`TileError::ParentMismatch`]). It only
/// asks for tiles the trusted tree publishes, as the spec requires of
/// clients, with the widths of that tree ([`Tile::in_tree`]).
///
/// Unlike Go's `tileHashReader`, which starts the parent checks at
/// `len(stx)` (the number of root *hashes*), this checks every tile after
/// the root *tiles*: root hashes often share a tile, and a tile planned in
/// that gap would otherwise go unchecked.
#[derive(Debug, Clone)]
pub struct TileHashReader<R> {
    tree_size: u64,
    root: Hash,
    reader: R,
}

impl<R: TileReader> TileHashReader<R> {
    /// A reader for the tree of `tree_size` records with hash `root`, which
    /// the caller trusts (e.g. from a verified checkpoint).
    pub fn new(tree_size: u64, root: Hash, reader: R) -> TileHashReader<R> {
        TileHashReader {
            tree_size,
            root,
            reader,
        }
    }

    /// Like [`HashReader::read_hashes`], with a typed error.
    pub fn read_verified(&self, indexes: &[u64]) -> Result<Vec<Hash>, TileError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let plan = Plan::new(self.tree_size, indexes)?;
        let data = self.fetch(&plan.tiles)?;
        self.authenticate(&plan, &data)?;
        self.reader.save_tiles(&plan.tiles, &data);
        Ok(indexes
            .iter()
            .zip(&plan.index_tile)
            .map(|(&index, &j)| known_hash(&plan.tiles[j], &data[j], index))
            .collect())
    }

    /// Reads `tiles` and checks the shape of the answer.
    fn fetch(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, TileError> {
        let data = self.reader.read_tiles(tiles)?;
        if data.len() != tiles.len() {
            return Err(TileError::TileCount {
                got: data.len(),
                want: tiles.len(),
            });
        }
        for (tile, data) in tiles.iter().zip(&data) {
            let want = usize::from(tile.width) * HASH_SIZE;
            if data.len() != want {
                return Err(TileError::DataLength {
                    tile: *tile,
                    got: data.len(),
                    want,
                });
            }
        }
        Ok(data)
    }

    /// Checks the root tiles against the tree hash, then every other tile
    /// against its (already checked) parent.
    fn authenticate(&self, plan: &Plan, data: &[Vec<u8>]) -> Result<(), TileError> {
        let mut hashes = plan
            .root_indexes
            .iter()
            .zip(&plan.root_index_tile)
            .rev()
            .map(|(&index, &j)| known_hash(&plan.tiles[j], &data[j], index));
        let last = hashes.next().expect("tlog: bad math (no root tiles)");
        let root = hashes.fold(last, |right, left| node_hash(&left, &right));
        if root != self.root {
            return Err(TileError::RootMismatch);
        }
        let order: HashMap<Tile, usize> = plan
            .tiles
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i))
            .collect();
        for (tile, tile_data) in plan.tiles.iter().zip(data).skip(plan.root_tiles) {
            let parent =
                tile_parent(tile, 1, self.tree_size).expect("tlog: bad math (lost parent)");
            let j = order[&parent];
            let level = parent.level().expect("tlog: bad math (parent kind)") * TILE_HEIGHT;
            let want = known_hash(&parent, &data[j], stored_hash_index(level, tile.index));
            if tile_hash(tile_data) != want {
                return Err(TileError::ParentMismatch(*tile));
            }
        }
        Ok(())
    }
}

/// [`hash_from_tile`] where the plan guarantees success.
fn known_hash(tile: &Tile, data: &[u8], index: u64) -> Hash {
    hash_from_tile(tile, data, index).expect("tlog: bad math (planned hash not in tile)")
}

impl<R: TileReader> HashReader for TileHashReader<R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        self.read_verified(indexes).map_err(|err| match err {
            TileError::Read(err) => err,
            err => ReadError::new(err),
        })
    }
}

/// Encodes entries as an entry bundle: each entry as a big-endian `u16`
/// length followed by its bytes. A bundle has 1 to 256 entries of at most
/// 65,535 bytes each.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, BundleError> {
    if entries.is_empty() {
        return Err(BundleError::Empty);
    }
    if entries.len() > usize::from(TILE_WIDTH) {
        return Err(BundleError::TooManyEntries);
    }
    let total = entries.iter().map(|e| 2 + e.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for (index, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| BundleError::EntryTooLarge {
            index,
            len: entry.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Parses an entry bundle into its entries (1 to 256 of them), rejecting
/// truncated data and trailing bytes.
pub fn parse_bundle(data: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if entries.len() == usize::from(TILE_WIDTH) {
            return Err(BundleError::TooManyEntries);
        }
        let offset = data.len() - rest.len();
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(BundleError::Truncated(offset))?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(BundleError::Truncated(offset));
        }
        let (entry, tail) = tail.split_at(len);
        entries.push(entry);
        rest = tail;
    }
    if entries.is_empty() {
        return Err(BundleError::Empty);
    }
    Ok(entries)
}

/// Parses the data of entry bundle `tile`, which must hold exactly `width`
/// entries.
pub fn parse_bundle_for<'a>(tile: &Tile, data: &'a [u8]) -> Result<Vec<&'a [u8]>, BundleError> {
    if tile.kind != TileKind::Entries {
        return Err(BundleError::NotEntryBundle(*tile));
    }
    let entries = parse_bundle(data)?;
    if entries.len() != usize::from(tile.width) {
        return Err(BundleError::Count {
            got: entries.len(),
            want: usize::from(tile.width),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::hash::{leaf_hash, stored_hash_count};

    fn hash_tile(level: u8, index: u64, width: u16) -> Tile {
        Tile::hashes(level, index, width).unwrap()
    }

    #[test]
    fn paths_follow_the_spec() {
        let cases = [
            (hash_tile(0, 0, 256), "tile/0/000"),
            (hash_tile(0, 5, 256), "tile/0/005"),
            (hash_tile(1, 999, 256), "tile/1/999"),
            (hash_tile(2, 1000, 256), "tile/2/x001/000"),
            (hash_tile(0, 1234067, 256), "tile/0/x001/x234/067"),
            (hash_tile(0, 1234067, 1), "tile/0/x001/x234/067.p/1"),
            (hash_tile(63, 0, 255), "tile/63/000.p/255"),
            (
                hash_tile(7, u64::MAX, 256),
                "tile/7/x018/x446/x744/x073/x709/x551/615",
            ),
            (Tile::entries(0, 256).unwrap(), "tile/entries/000"),
            (
                Tile::entries(1234067, 112).unwrap(),
                "tile/entries/x001/x234/067.p/112",
            ),
        ];
        for (tile, path) in cases {
            assert_eq!(tile.path(), path);
            assert_eq!(tile.to_string(), path);
            assert_eq!(Tile::parse_path(path), Ok(tile), "{path}");
        }
    }

    #[test]
    fn non_canonical_paths_are_rejected() {
        let bad = [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "Tile/0/000",
            "tiles/0/000",
            "tile//000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/255/000",
            "tile/256/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/ 1/000",
            "tile/data/000",
            "tile/Entries/000",
            "tile/entries/",
            "tile/0/0",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/1234",
            "tile/0/x001",
            "tile/0/001/234",
            "tile/0/x000/001",
            "tile/0/x000/x001/001",
            "tile/0/x01/000",
            "tile/0/x0001/000",
            "tile/0/X001/000",
            "tile/0/xx001/000",
            "tile/0/x001//000",
            "tile/0/x01a/000",
            "tile/0/00a",
            "tile/0/+12",
            "tile/0/-12",
            "tile/0/١٢٣",
            "tile/0/000/",
            "tile/0/000 ",
            "tile/0/000\n",
            "tile/0/000.p",
            "tile/0/000.p/",
            "tile/0/000.p/0",
            "tile/0/000.p/00",
            "tile/0/000.p/05",
            "tile/0/000.p/+5",
            "tile/0/000.p/256",
            "tile/entries/000.p/256",
            "tile/0/000.p/1000",
            "tile/0/000.p/5/",
            "tile/0/000.p/5/6",
            "tile/0/000.p/5.p/6",
            "tile/0/000.P/5",
            "tile/0/000.q/5",
            "tile/0/.p/5",
            "tile/0/x001/.p/5",
            "tile/0/x001.p/5",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
            "tile/0/x000/x000/x000/x000/x000/x000/x000/x000/x000/000",
        ];
        for path in bad {
            assert!(Tile::parse_path(path).is_err(), "accepted {path:?}");
        }
    }

    #[test]
    fn constructors_validate() {
        assert_eq!(Tile::hashes(64, 0, 1), Err(InvalidTile::Level(64)));
        assert_eq!(Tile::hashes(0, 0, 0), Err(InvalidTile::Width(0)));
        assert_eq!(Tile::entries(0, 257), Err(InvalidTile::Width(257)));
        let t = hash_tile(1, 3, 17);
        assert!(t.is_partial() && !t.full().is_partial());
        assert_eq!((t.level(), t.index(), t.width()), (Some(1), 3, 17));
        assert_eq!(Tile::entries(3, 1).unwrap().level(), None);
    }

    #[test]
    fn start_and_end_indexes() {
        let t = hash_tile(1, 2, 256);
        assert_eq!(t.start_index(), Some(2 * 65536));
        assert_eq!(t.end_index(), Some(3 * 65536));
        let e = Tile::entries(2, 5).unwrap();
        assert_eq!((e.start_index(), e.end_index()), (Some(512), Some(768)));
        assert_eq!(hash_tile(7, 0, 256).start_index(), Some(0));
        assert_eq!(hash_tile(7, 0, 256).end_index(), None);
        assert_eq!(hash_tile(63, 1, 256).start_index(), None);
        assert_eq!(hash_tile(6, 254, 256).end_index(), Some(255 << 56));
        assert_eq!(hash_tile(6, 255, 256).end_index(), None);
        assert_eq!(hash_tile(0, u64::MAX, 256).end_index(), None);
    }

    #[test]
    fn partial_widths_follow_the_spec() {
        // "a tree of size 70,000 will be represented by 273 full level 0
        // tiles, one partial level 0 tile of width 112, one full level 1
        // tile, one partial level 1 tile of width 17, and one partial level
        // 2 tile of width 1."
        assert_eq!(partial_tile_width(0, 70_000), 112);
        assert_eq!(partial_tile_width(1, 70_000), 17);
        assert_eq!(partial_tile_width(2, 70_000), 1);
        assert_eq!(partial_tile_width(3, 70_000), 0);
        assert_eq!(partial_tile_width(63, u64::MAX), 0);
        let tiles = new_tiles(0, 70_000);
        let full0 = tiles
            .iter()
            .filter(|t| t.level() == Some(0) && !t.is_partial());
        assert_eq!(full0.count(), 273);
        assert!(tiles.contains(&hash_tile(0, 273, 112)));
        assert!(tiles.contains(&hash_tile(1, 0, 256)));
        assert!(tiles.contains(&hash_tile(1, 1, 17)));
        assert!(tiles.contains(&hash_tile(2, 0, 1)));
        assert_eq!(tiles.len(), 273 + 4);
        // "a tree of size 256 will be represented by a full level 0 tile and
        // a partial level 1 tile of width 1."
        assert_eq!(
            new_tiles(0, 256),
            [hash_tile(0, 0, 256), hash_tile(1, 0, 1)]
        );
        assert!(new_tiles(0, 0).is_empty());
        assert!(new_tiles(5, 5).is_empty());
        assert!(new_tiles(6, 5).is_empty());
        assert_eq!(new_tiles(u64::MAX - 1, u64::MAX).len(), 1);
    }

    #[test]
    fn in_tree_widths() {
        assert_eq!(Tile::in_tree(TileKind::Hash(0), 0, 0), None);
        assert_eq!(
            Tile::in_tree(TileKind::Hash(0), 0, 5),
            Some(hash_tile(0, 0, 5))
        );
        assert_eq!(Tile::in_tree(TileKind::Hash(0), 1, 256), None);
        assert_eq!(
            Tile::in_tree(TileKind::Hash(1), 0, 256),
            Some(hash_tile(1, 0, 1))
        );
        assert_eq!(Tile::in_tree(TileKind::Hash(64), 0, u64::MAX), None);
        assert_eq!(Tile::in_tree(TileKind::Hash(0), u64::MAX, u64::MAX), None);
        assert_eq!(
            Tile::in_tree(TileKind::Entries, 1, 700),
            Some(Tile::entries(1, 256).unwrap())
        );
    }

    #[test]
    fn entry_bundles() {
        let all: Vec<Tile> = new_entry_bundles(0, 600).collect();
        let want = [(0, 256), (1, 256), (2, 88)].map(|(n, w)| Tile::entries(n, w).unwrap());
        assert_eq!(all, want);
        let grown: Vec<Tile> = new_entry_bundles(300, 513).collect();
        let want = [(1, 256), (2, 1)].map(|(n, w)| Tile::entries(n, w).unwrap());
        assert_eq!(grown, want);
        assert_eq!(new_entry_bundles(10, 10).count(), 0);
        assert_eq!(new_entry_bundles(11, 10).count(), 0);
        assert_eq!(new_entry_bundles(256, 512).count(), 1);
        assert_eq!(entry_bundle_for(5, 5), None);
        assert_eq!(
            entry_bundle_for(4, 5),
            Some((Tile::entries(0, 5).unwrap(), 4))
        );
        assert_eq!(
            entry_bundle_for(300, 700),
            Some((Tile::entries(1, 256).unwrap(), 44))
        );
    }

    /// Brute force: the tile of least width that holds `index`, found by
    /// scanning the stored hashes every tile covers.
    #[test]
    fn tile_for_index_matches_stored_hash_layout() {
        for index in 0..stored_hash_count(70_000) {
            let (tile, start, end) = tile_for_index(index);
            let (level, n) = split_stored_hash_index(index);
            let tile_level = tile.level().unwrap();
            assert_eq!(tile_level, level / 8);
            let within = level % 8;
            // The hash covers tile hashes [n·2^within, (n+1)·2^within) of
            // its tile level, which must be data[start..end].
            let first = n << within;
            assert_eq!(tile.index(), first / 256, "index {index}");
            assert_eq!(start / 32, (first % 256) as usize);
            assert_eq!(end / 32, (first % 256) as usize + (1 << within));
            assert_eq!(usize::from(tile.width()), end / 32);
        }
    }

    #[test]
    fn tile_math_never_overflows() {
        let limit = stored_hash_limit();
        for index in [0, 1 << 63, (1 << 63) - 1, limit - 2, limit - 1] {
            let (tile, start, end) = tile_for_index(index);
            assert!(start < end && end <= 256 * 32, "{tile}");
            let data = vec![0; usize::from(tile.width()) * 32];
            assert!(hash_from_tile(&tile, &data, index).is_ok());
        }
        let tile = hash_tile(0, 0, 256);
        for index in [limit, u64::MAX] {
            assert!(matches!(
                hash_from_tile(&tile, &[0; 8192], index),
                Err(TileError::IndexNotInTree { .. })
            ));
        }
    }

    #[test]
    fn an_expanded_tile_answers_what_hash_from_tile_computes() {
        let hashes: Vec<u8> = (0..256u32)
            .flat_map(|i| leaf_hash(&i.to_be_bytes()).0)
            .collect();
        for (level, index) in [(0u8, 0u64), (0, 3), (1, 2)] {
            for width in [1u16, 2, 7, 100, 255, 256] {
                let tile = hash_tile(level, index, width);
                let data = &hashes[..usize::from(width) * 32];
                let expanded = ExpandedTile::new(&tile, data).unwrap();
                assert_eq!(expanded.data(), data);
                let mut answered = 0;
                // Every stored hash at the tile's 8 levels, inside and around it.
                for l in 0..8u8 {
                    let first = (index << (8 - l)).saturating_sub(1);
                    for n in first..=first + (256 >> l) + 1 {
                        let at = stored_hash_index(8 * level + l, n);
                        let want = hash_from_tile(&tile, data, at);
                        let got = expanded.hash(at);
                        match (&want, &got) {
                            (Ok(w), Ok(g)) => {
                                assert_eq!(w, g, "{tile} level {l} n {n}");
                                answered += 1;
                            }
                            (
                                Err(TileError::IndexNotInTile { .. }),
                                Err(TileError::IndexNotInTile { .. }),
                            ) => {}
                            _ => panic!("{tile} level {l} n {n}: {want:?} vs {got:?}"),
                        }
                    }
                }
                let complete: usize = (0..8).map(|l| usize::from(width) >> l).sum();
                assert_eq!(answered, complete, "{tile}");
            }
        }
        assert!(matches!(
            ExpandedTile::new(&hash_tile(0, 0, 256), &hashes[..100]),
            Err(TileError::DataLength { got: 100, .. })
        ));
    }

    #[test]
    fn hash_from_tile_checks_its_inputs() {
        let leaves: Vec<Hash> = (0..256u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let data: Vec<u8> = leaves.iter().flat_map(|h| h.0).collect();
        let full = hash_tile(0, 0, 256);
        assert_eq!(
            hash_from_tile(&full, &data, stored_hash_index(0, 7)).unwrap(),
            leaves[7]
        );
        let pair = node_hash(&leaves[6], &leaves[7]);
        assert_eq!(
            hash_from_tile(&full, &data, stored_hash_index(1, 3)).unwrap(),
            pair
        );
        let narrow = hash_tile(0, 0, 7);
        assert!(matches!(
            hash_from_tile(&narrow, &data[..7 * 32], stored_hash_index(0, 7)),
            Err(TileError::IndexNotInTile { .. })
        ));
        assert!(matches!(
            hash_from_tile(&full, &data[..100], 0),
            Err(TileError::DataLength {
                got: 100,
                want: 8192,
                ..
            })
        ));
        assert!(matches!(
            hash_from_tile(&hash_tile(1, 0, 256), &data, 0),
            Err(TileError::IndexNotInTile { .. })
        ));
        assert!(matches!(
            hash_from_tile(&hash_tile(0, 1, 256), &data, 0),
            Err(TileError::IndexNotInTile { .. })
        ));
        assert!(matches!(
            hash_from_tile(&Tile::entries(0, 256).unwrap(), &data, 0),
            Err(TileError::NotHashTile(_))
        ));
        // The hash of the whole tile lives in the tile above.
        assert!(matches!(
            hash_from_tile(&full, &data, stored_hash_index(8, 0)),
            Err(TileError::IndexNotInTile { .. })
        ));
    }

    #[test]
    fn read_tile_data_rejects_bundles_and_huge_tiles() {
        let stored: Vec<Hash> = Vec::new();
        assert!(matches!(
            read_tile_data(&Tile::entries(0, 1).unwrap(), &stored),
            Err(TileError::NotHashTile(_))
        ));
        assert!(matches!(
            read_tile_data(&hash_tile(7, 0, 256), &stored),
            Err(TileError::OutOfRange(_))
        ));
        assert!(matches!(
            read_tile_data(&hash_tile(0, 0, 1), &stored),
            Err(TileError::Read(_))
        ));
    }

    #[test]
    fn bundles_round_trip() {
        let entries: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![7; 65535], vec![0; 300]];
        let data = encode_bundle(&entries).unwrap();
        assert_eq!(&data[..5], &[0, 0, 0, 1, b'a']);
        let parsed = parse_bundle(&data).unwrap();
        assert_eq!(
            parsed,
            entries.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        let tile = Tile::entries(0, 4).unwrap();
        assert_eq!(parse_bundle_for(&tile, &data).unwrap().len(), 4);
        let full: Vec<[u8; 1]> = (0..=255u8).map(|i| [i]).collect();
        assert_eq!(
            parse_bundle(&encode_bundle(&full).unwrap()).unwrap().len(),
            256
        );
    }

    #[test]
    fn bad_bundles_are_rejected() {
        let empty: [&[u8]; 0] = [];
        assert_eq!(encode_bundle(&empty), Err(BundleError::Empty));
        assert_eq!(
            encode_bundle(&[vec![0u8; 1], vec![0u8; 65536]]),
            Err(BundleError::EntryTooLarge {
                index: 1,
                len: 65536
            })
        );
        assert_eq!(
            encode_bundle(&vec![[0u8]; 257]),
            Err(BundleError::TooManyEntries)
        );
        assert_eq!(parse_bundle(&[]), Err(BundleError::Empty));
        assert_eq!(parse_bundle(&[0]), Err(BundleError::Truncated(0)));
        assert_eq!(parse_bundle(&[0, 2, 1]), Err(BundleError::Truncated(0)));
        assert_eq!(parse_bundle(&[0, 1, 1, 0]), Err(BundleError::Truncated(3)));
        assert_eq!(
            parse_bundle(&[0, 1, 1, 0, 1]),
            Err(BundleError::Truncated(3))
        );
        assert_eq!(
            parse_bundle(&[0, 0, 0, 0, 0]),
            Err(BundleError::Truncated(4))
        );
        assert_eq!(parse_bundle(&[0xff, 0xff]), Err(BundleError::Truncated(0)));
        assert_eq!(
            parse_bundle(&[0; 2 * 257]),
            Err(BundleError::TooManyEntries)
        );
        assert_eq!(parse_bundle(&[0; 2 * 256]).unwrap().len(), 256);
        let data = encode_bundle(&[b"x"]).unwrap();
        assert_eq!(
            parse_bundle_for(&Tile::entries(0, 2).unwrap(), &data),
            Err(BundleError::Count { got: 1, want: 2 })
        );
        assert!(matches!(
            parse_bundle_for(&hash_tile(0, 0, 1), &data),
            Err(BundleError::NotEntryBundle(_))
        ));
    }
}
