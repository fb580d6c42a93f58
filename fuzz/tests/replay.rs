//! Replays every committed seed, and any local corpus or crash artifact,
//! through its fuzz target, on stable Rust and without libFuzzer: the
//! corpora become regression tests that CI runs
//! (`cargo test --manifest-path fuzz/Cargo.toml`).
//!
//! For target `t` the inputs are every file under `seeds/t/`, `corpus/t/`
//! and `artifacts/t/` (the last two exist only where the fuzzer ran; they
//! are not committed). A target with no seeds still runs on the empty
//! input and a few fixed byte strings. A failing input is named.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use modeltrail_fuzz::targets::ALL;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["seeds", "corpus", "artifacts"] {
        let mut stack = vec![root.join(dir).join(target)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_target_replays_its_corpus() {
    let fixed: [&[u8]; 4] = [b"", b"\n", &[0; 64], &[0xff; 300]];
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, run) in ALL {
        let files = inputs(name);
        let mut cases: Vec<(String, Vec<u8>)> = fixed
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("fixed input {i}"), b.to_vec()))
            .collect();
        for f in &files {
            let data = std::fs::read(f).expect("read a corpus file");
            cases.push((f.display().to_string(), data));
        }
        for (what, data) in cases {
            total += 1;
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failures.push(format!("{name}: {what}"));
            }
        }
        println!("{name}: {} files", files.len());
    }
    assert!(total > ALL.len() * 4, "no corpus files found");
    assert!(
        failures.is_empty(),
        "failing inputs:\n{}",
        failures.join("\n")
    );
}

/// Every `[[bin]]` of Cargo.toml is in `targets::ALL` and has seeds or is
/// a structured target, so a new target cannot be left out of the replay.
#[test]
fn every_binary_is_replayed() {
    let manifest = include_str!("../Cargo.toml");
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "modeltrail-fuzz")
        .collect();
    let mut names: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
    let mut bins_sorted = bins.clone();
    names.sort();
    bins_sorted.sort();
    assert_eq!(bins_sorted, names);
}
