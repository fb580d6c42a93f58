//! Crash: `kill -9` the witness while concurrent clients stream
//! add-checkpoint requests, restart it, repeat. Each log has two branches
//! under one key (a split view from record 3), and clients push both. Every
//! cosignature a client receives is verified and kept; at the end, per log,
//! all cosigned checkpoints must lie on one branch (pairwise consistent,
//! equal size means equal root), and after every restart the witness's
//! state is at least the largest checkpoint it acknowledged before the kill.
//!
//! `WITNESS_CRASH_CYCLES` sets the number of cycles (default 5):
//! `WITNESS_CRASH_CYCLES=50 cargo test -p modeltrail-witness --test crash`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::*;
use modeltrail::tlog::hash::Hash;
use modeltrail::tlog::note::VerifierKey;

const LOGS: usize = 3;
const CLIENTS_PER_BRANCH: usize = 2;
const RECORDS: u64 = 4000;
const FORK_AT: u64 = 3;

/// What the clients received: per log, every cosigned (size, root).
type Received = Arc<Mutex<Vec<Vec<(u64, Hash)>>>>;

fn cycles() -> usize {
    std::env::var("WITNESS_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

/// A client pushing one branch of one log, from wherever the witness is,
/// until `stop`; it follows the witness across restarts through `base`.
fn client(
    base: Arc<RwLock<String>>,
    branch: Arc<TestLog>,
    log_index: usize,
    seed: u64,
    wkey: VerifierKey,
    received: Received,
    stop: Arc<AtomicBool>,
) {
    let mut old = 0;
    let mut size = 0;
    let mut n = seed;
    while !stop.load(SeqCst) {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        size = (size.max(old) + 1 + (n >> 60)).min(RECORDS);
        let body = branch.request(old, size);
        let client = Client::new(&base.read().unwrap());
        let Ok(reply) = client.try_post("/add-checkpoint", &body) else {
            std::thread::sleep(Duration::from_millis(20)); // down: retry
            continue;
        };
        match reply.status {
            200 => {
                assert_cosigned(&reply, &branch, size, &wkey);
                received.lock().unwrap()[log_index].push((size, branch.root(size)));
                old = size;
            }
            409 => old = reply.body.trim_end().parse().unwrap(),
            // The other branch is ahead: this one can only be refused.
            422 => old = 0,
            other => panic!("unexpected status {other}: {}", reply.body),
        }
        if size == RECORDS {
            size = 0;
        }
    }
}

#[test]
fn kill9_under_load_never_goes_back_or_cosigns_a_fork() {
    let (data, wkey) = init("crash", "witness.example/crash");
    let mut branches = Vec::new();
    for l in 0..LOGS {
        let a = TestLog::new(&format!("example.com/log{l}"), l as u8 + 1, RECORDS);
        let b = a.fork("fork", FORK_AT, RECORDS);
        add_log(&data, &a);
        branches.push([Arc::new(a), Arc::new(b)]);
    }
    let received: Received = Arc::new(Mutex::new(vec![Vec::new(); LOGS]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut witness = Witness::start(&data, &[]);
    let base = Arc::new(RwLock::new(witness.base.clone()));
    let mut threads = Vec::new();
    for (l, pair) in branches.iter().enumerate() {
        for (b, branch) in pair.iter().enumerate() {
            for c in 0..CLIENTS_PER_BRANCH {
                let args = (
                    base.clone(),
                    branch.clone(),
                    wkey.clone(),
                    received.clone(),
                    stop.clone(),
                );
                let seed = (l * 100 + b * 10 + c) as u64;
                threads.push(std::thread::spawn(move || {
                    client(args.0, args.1, l, seed, args.2, args.3, args.4)
                }));
            }
        }
    }

    let cycles = cycles();
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(300 + 97 * (cycle as u64 % 5)));
        witness.kill9();
        let acknowledged: Vec<u64> = received
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.iter().map(|(s, _)| *s).max().unwrap_or(0))
            .collect();
        let s = status(&data);
        for (l, &max) in acknowledged.iter().enumerate() {
            let size = s["logs"][l]["latest"]["size"].as_u64().unwrap_or(0);
            assert!(
                size >= max,
                "cycle {cycle}: log {l} went back from {max} to {size}"
            );
        }
        witness = Witness::start(&data, &[]);
        *base.write().unwrap() = witness.base.clone();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, SeqCst);
    for t in threads {
        t.join().unwrap();
    }

    let received = received.lock().unwrap();
    let mut total = 0;
    for (l, heads) in received.iter().enumerate() {
        total += heads.len();
        assert!(!heads.is_empty(), "log {l} was never cosigned");
        // Equal sizes, equal roots.
        let mut by_size = BTreeMap::new();
        for &(size, root) in heads {
            assert_eq!(
                *by_size.entry(size).or_insert(root),
                root,
                "log {l}: two roots at {size}"
            );
        }
        // All on one branch: pairwise consistent.
        let on = |b: usize| heads.iter().all(|&(s, r)| branches[l][b].root(s) == r);
        assert!(
            on(0) || on(1),
            "log {l}: the witness cosigned both branches"
        );
    }
    eprintln!("{cycles} kill -9 cycles, {total} cosignatures checked");
    assert!(total > cycles, "too few cosignatures to mean anything");
}
