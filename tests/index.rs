//! The derived index against real tiles on disk: a process that dies after
//! non-durable commits loses only those commits and the next open catches
//! up from the tiles; an index file that is corrupt, of another schema, or
//! ahead of the log is moved aside and rebuilt; a damaged ID map makes a
//! lookup miss but never answer with another entry. Every check compares
//! the index's answers with what the logged entries imply.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use modeltrail::entry::ArtefactId;
use modeltrail::store::index::{DURABLE_EVERY, Index, IndexOptions};
use modeltrail::store::{FsTileStore, TileStore, TreeWriter};
use modeltrail::tlog::hash::empty_tree_hash;

const ENTRIES: u64 = 1500;
/// Entries the crashing child makes durable before its non-durable commits.
const DURABLE: u64 = 300;
const CHILD_ENV: &str = "MODELTRAIL_TEST_INDEX_CRASH_DIR";

/// A fresh directory under Cargo's test temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("index-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The version hash inference `i` names: one of seven.
fn version(i: u64) -> String {
    format!("b3:{}", format!("{:x}", i % 7 + 1).repeat(64))
}

/// Entry `i` as the index reads it (it does not check signatures): a policy
/// first, then inferences whose request IDs repeat every 1000 entries.
fn entry(i: u64) -> Vec<u8> {
    if i == 0 {
        return br#"{"body":{},"kind":"policy","signer":"admin"}"#.to_vec();
    }
    format!(
        r#"{{"body":{{"model":"m","request_id":"req-{}","version_hash":"{}","x":{i}}},"kind":"inference","signer":"s"}}"#,
        i % 1000,
        version(i)
    )
    .into_bytes()
}

fn entries(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(entry).collect()
}

/// Writes the tiles of a log of `n` entries under `dir/tiles`.
fn write_log(dir: &Path, n: u64) -> Arc<dyn TileStore> {
    let store = tiles(dir);
    let mut writer = TreeWriter::open(store.clone(), 0, empty_tree_hash()).unwrap();
    for chunk in entries(n).chunks(400) {
        writer.append(chunk).unwrap();
    }
    store
}

/// The index at `index_dir` opened for the log of `size` entries, with the
/// default options.
fn open_for_log(index_dir: &Path, store: &Arc<dyn TileStore>, size: u64) -> Index {
    Index::open_for_log(index_dir, store.clone(), size, IndexOptions::default()).unwrap()
}

/// The tiles under `dir/tiles`.
fn tiles(dir: &Path) -> Arc<dyn TileStore> {
    Arc::new(FsTileStore::new(dir.join("tiles")).unwrap())
}

/// Checks every answer of an index of the first `size` entries.
fn assert_indexes(index: &Index, size: u64) {
    assert_eq!(index.indexed_size(), size);
    assert_eq!(index.current_policy().unwrap(), Some(0));
    for i in (0..ENTRIES).step_by(7).chain([size - 1, size]) {
        let expected = (i < size).then_some(i);
        assert_eq!(
            index.lookup_id(&ArtefactId::of(&entry(i))).unwrap(),
            expected,
            "entry {i}"
        );
    }
    for r in [1, 499, 999] {
        let first = (r < size).then_some(r);
        assert_eq!(index.lookup_request(&format!("req-{r}")).unwrap(), first);
    }
    for v in 1..size.min(8) {
        let counted = (1..size).filter(|i| i % 7 == v % 7).count() as u64;
        let hash = modeltrail::entry::ContentHash::parse(&version(v))
            .unwrap()
            .0;
        assert_eq!(
            index.inference_count(&hash).unwrap(),
            counted,
            "version {v}"
        );
    }
}

/// The directories moved aside next to `index_dir`.
fn moved_aside(index_dir: &Path) -> Vec<PathBuf> {
    let name = index_dir.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::read_dir(index_dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with(&format!("{name}.broken-"))
        })
        .collect()
}

/// Run as a child process by `a_crash_after_non_durable_commits_catches_up`:
/// records `DURABLE` entries durably, the rest in small non-durable commits,
/// reports, and aborts without any shutdown.
#[test]
#[ignore = "the child half of a crash test; does nothing on its own"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let index = Index::open(&dir.join("index"), tiles(dir)).unwrap();
    let all = entries(ENTRIES);
    index.record(0, &all[..DURABLE as usize]).unwrap();
    index.flush().unwrap();
    let start = Instant::now();
    let mut next = DURABLE as usize;
    while next < all.len() {
        let end = (next + 100).min(all.len());
        index.record(next as u64, &all[next..end]).unwrap();
        next = end;
    }
    let elapsed = start.elapsed();
    assert_eq!(index.indexed_size(), ENTRIES);
    println!(
        "CHILD recorded={ENTRIES} elapsed_ms={}",
        elapsed.as_millis()
    );
    std::process::abort();
}

#[test]
fn a_crash_after_non_durable_commits_catches_up() {
    let tmp = TempDir::new("crash");
    let store = write_log(&tmp.0, ENTRIES);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, &tmp.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child aborts: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CHILD "))
        .unwrap_or_else(|| panic!("child output: {stdout}"));
    let elapsed_ms: u128 = line.rsplit('=').next().unwrap().parse().unwrap();

    let index_dir = tmp.0.join("index");
    let reopened = Index::open(&index_dir, store.clone()).unwrap();
    let durable = reopened.indexed_size();
    assert!((DURABLE..=ENTRIES).contains(&durable), "{durable}");
    if elapsed_ms < DURABLE_EVERY.as_millis() {
        // No commit after the flush was durable: the crash lost them all.
        assert_eq!(durable, DURABLE, "{line}");
    }
    drop(reopened);

    let index = open_for_log(&index_dir, &store, ENTRIES);
    assert!(moved_aside(&index_dir).is_empty(), "caught up, not rebuilt");
    assert_indexes(&index, ENTRIES);
    // Recording what is already indexed again changes nothing.
    index.record(0, &entries(ENTRIES)).unwrap();
    assert_indexes(&index, ENTRIES);
}

#[test]
fn a_corrupt_index_file_is_moved_aside_and_rebuilt() {
    let tmp = TempDir::new("corrupt");
    let store = write_log(&tmp.0, ENTRIES);
    let index_dir = tmp.0.join("index");
    let index = open_for_log(&index_dir, &store, ENTRIES);
    assert_indexes(&index, ENTRIES);
    drop(index);

    let file = index_dir.join("index.redb");
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    std::fs::write(&file, vec![0x5a; len]).unwrap();
    assert!(
        Index::open(&index_dir, store.clone()).is_err(),
        "garbage does not open"
    );

    let index = open_for_log(&index_dir, &store, ENTRIES);
    let aside = moved_aside(&index_dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(aside[0].join("index.redb")).unwrap(),
        vec![0x5a; len]
    );
    assert_indexes(&index, ENTRIES);
}

#[test]
fn an_index_ahead_of_the_log_is_rebuilt() {
    let tmp = TempDir::new("ahead");
    let store = write_log(&tmp.0, ENTRIES);
    let index_dir = tmp.0.join("index");
    drop(open_for_log(&index_dir, &store, ENTRIES));

    // The log is shorter than the index says (an older checkpoint, at a
    // size the writer committed).
    let index = open_for_log(&index_dir, &store, 800);
    assert_eq!(moved_aside(&index_dir).len(), 1);
    assert_indexes(&index, 800);
}

#[test]
fn an_index_of_another_schema_is_rebuilt() {
    let tmp = TempDir::new("schema");
    let store = write_log(&tmp.0, ENTRIES);
    let index_dir = tmp.0.join("index");
    std::fs::create_dir_all(&index_dir).unwrap();
    {
        let db = redb::Database::create(index_dir.join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def = redb::TableDefinition::<&str, u64>::new("meta");
            let mut meta = txn.open_table(def).unwrap();
            meta.insert("schema", 1).unwrap();
            meta.insert("size", ENTRIES).unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(matches!(
        Index::open(&index_dir, store.clone()),
        Err(modeltrail::store::index::IndexError::Schema { found: 1 })
    ));
    let index = open_for_log(&index_dir, &store, ENTRIES);
    assert_eq!(moved_aside(&index_dir).len(), 1);
    assert_indexes(&index, ENTRIES);
}

/// The one run file of the ID map in `map_dir`.
fn only_run(map_dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(map_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "run"))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn a_damaged_id_map_misleads_no_lookup_and_a_failed_check_rebuilds_it() {
    let tmp = TempDir::new("idmap");
    let store = write_log(&tmp.0, ENTRIES);
    let index_dir = tmp.0.join("index");
    let index = open_for_log(&index_dir, &store, ENTRIES);
    // The shutdown flush writes each map's memtable out as a run.
    index.flush().unwrap();
    drop(index);
    let run = only_run(&index_dir.join("ids"));
    let mut bytes = std::fs::read(&run).unwrap();

    // The first pair's leaf now names entry 5: whichever entry that pair
    // was for is no longer found, and no lookup answers with another entry.
    bytes[8..16].copy_from_slice(&5u64.to_le_bytes());
    std::fs::write(&run, &bytes).unwrap();
    let index = open_for_log(&index_dir, &store, ENTRIES);
    assert!(
        moved_aside(&index_dir).is_empty(),
        "pairs are not checksummed"
    );
    let mut missing = 0;
    for i in 0..ENTRIES {
        match index.lookup_id(&ArtefactId::of(&entry(i))).unwrap() {
            Some(found) => assert_eq!(found, i),
            None => missing += 1,
        }
    }
    assert_eq!(missing, 1, "exactly the damaged pair's entry is missed");
    drop(index);

    // A flipped bit in the filter fails the run's checksum: rebuilt.
    let at = bytes.len() - 41;
    bytes[at] ^= 1;
    std::fs::write(&run, &bytes).unwrap();
    assert!(Index::open(&index_dir, store.clone()).is_err());
    let index = open_for_log(&index_dir, &store, ENTRIES);
    assert_eq!(moved_aside(&index_dir).len(), 1);
    assert_indexes(&index, ENTRIES);
}
