//! README.md, run top to bottom (issue 18, item 9): the README cannot rot.
//!
//! The shell blocks (Markdown code blocks indented by four spaces) between
//! `<!-- readme-test: start` and `<!-- readme-test: end` are taken from
//! README.md itself, in order, and run as one bash script (`set -euo
//! pipefail`, so any failing command fails the test) in one empty directory,
//! with the freshly built `modeltrail` and `modeltrail-witness` first on
//! PATH. A block right after `<!-- readme-test: skip -->` (placeholders such
//! as `<log vkey>`, installs) is left out. The servers the README has the
//! reader leave running in a terminal of their own (`modeltrail serve`,
//! `modeltrail-witness serve`) run in the background, each waited for until
//! it answers, and are stopped (SIGTERM) when the script ends; they listen
//! on free ports, which replace the README's `127.0.0.1:7480` (the log, also
//! through `MODELTRAIL_LISTEN`) and `7380` (the witness). At the end the
//! chain the README built must audit clean (`modeltrail audit` exits 0) and
//! `evidence --request-id req-42` must give a file that verifies.
//!
//! It needs `curl` and `jq` (the README uses them); `.ci/run` installs them.

#![cfg(feature = "server")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, free_port, scratch, witness_bin};

/// One runnable block: the README line it starts on and its text.
struct Block {
    line: usize,
    text: String,
}

/// The runnable blocks of a Markdown text, in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut in_region = false;
    let mut skip_next = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.contains("<!-- readme-test: start") {
            assert!(!in_region, "README.md:{}: nested readme-test: start", i + 1);
            in_region = true;
        } else if line.contains("<!-- readme-test: end") {
            assert!(
                in_region,
                "README.md:{}: readme-test: end without start",
                i + 1
            );
            in_region = false;
        } else if line.contains("<!-- readme-test: skip") {
            skip_next = true;
        } else if in_region && line.starts_with("    ") {
            // An indented block runs on across blank lines while indented
            // lines follow.
            let start = i;
            let mut text = String::new();
            while i < lines.len() {
                let l = lines[i];
                if let Some(code) = l.strip_prefix("    ") {
                    text.push_str(code);
                    text.push('\n');
                } else if l.trim().is_empty()
                    && lines[i + 1..]
                        .iter()
                        .find(|l| !l.trim().is_empty())
                        .is_some_and(|l| l.starts_with("    "))
                {
                    text.push('\n');
                } else {
                    break;
                }
                i += 1;
            }
            if !std::mem::take(&mut skip_next) {
                out.push(Block {
                    line: start + 1,
                    text,
                });
            }
            continue;
        }
        i += 1;
    }
    assert!(!in_region, "README.md: readme-test: start without end");
    out
}

#[test]
fn the_block_extraction_follows_the_markers() {
    let md = "intro\n\n    not run\n\n<!-- readme-test: start -->\n\n    a\n\n    b\ntext\n\
              <!-- readme-test: skip -->\n\n    skipped\n\ntext\n\n    c\n<!-- readme-test: end -->\n\n    d\n";
    let got: Vec<(usize, String)> = blocks(md).into_iter().map(|b| (b.line, b.text)).collect();
    assert_eq!(
        got,
        vec![(7, "a\n\nb\n".to_owned()), (17, "c\n".to_owned())]
    );
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_readme_runs_top_to_bottom_on_one_data_directory() {
    for tool in ["bash", "curl", "jq"] {
        assert!(
            have(tool),
            "the README test needs {tool} on PATH (.ci/run installs it)"
        );
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = blocks(&readme);
    assert!(
        blocks.len() >= 20,
        "only {} runnable README blocks: were the readme-test markers removed?",
        blocks.len()
    );

    let dir = scratch("readme");
    let log = format!("127.0.0.1:{}", free_port());
    let witness = format!("127.0.0.1:{}", free_port());

    // Servers start in the background and are stopped, gracefully, at the end.
    let mut script = String::from(
        "set -euo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n\
         wait_for() {\n\
           for _ in $(seq 300); do curl -s -o /dev/null \"http://$1/\" && return 0; sleep 0.1; done\n\
           echo \"nothing answers on $1\" >&2; return 1\n\
         }\n",
    );
    let mut servers = 0;
    for b in &blocks {
        script += &format!("echo '== README.md:{}' >&2\n", b.line);
        let text = b
            .text
            .replace("127.0.0.1:7480", &log)
            .replace("0.0.0.0:7380", &witness)
            .replace("127.0.0.1:7380", &witness);
        for line in text.lines() {
            let command = line.trim_start();
            let addr = if command.starts_with("modeltrail serve") {
                Some(&log)
            } else if command.starts_with("modeltrail-witness serve") {
                Some(&witness)
            } else {
                None
            };
            match addr {
                Some(addr) => {
                    servers += 1;
                    script += &format!("{line} &\nwait_for {addr}\n");
                }
                None => {
                    script += line;
                    script.push('\n');
                }
            }
        }
    }
    assert_eq!(servers, 2, "the README should start the log and a witness");
    // What the README promises at the end: the chain audits clean, and the
    // evidence for req-42 verifies offline.
    script += "echo '== after the README: audit and evidence' >&2\n\
               modeltrail audit --log \"$MODELTRAIL_LOG\" --policy auditor.policy\n\
               modeltrail evidence --log \"$MODELTRAIL_LOG\" --request-id req-42 --out final.evidence\n\
               modeltrail verify final.evidence --policy auditor.policy\n";
    std::fs::write(dir.join("readme.sh"), &script).unwrap();

    let bin_dir = Path::new(BIN).parent().unwrap();
    assert_eq!(witness_bin().parent(), Some(bin_dir));
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("readme.sh")
        .current_dir(&dir)
        .env("PATH", path)
        .env("MODELTRAIL_LISTEN", &log)
        .env("MODELTRAIL_LOG_LEVEL", "warn")
        .env_remove("MODELTRAIL_LOG")
        .env_remove("MODELTRAIL_KEY")
        .env_remove("MODELTRAIL_DATA")
        .env_remove("MODELTRAIL_ORIGIN")
        .env_remove("MODELTRAIL_WITNESS_POLICY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README failed ({}); the last `== README.md:N` line names the block\n\
         --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status,
    );
    assert!(stdout.contains("Request \"req-42\""), "{stdout}");
    // Nothing was logged between saving the committee's checkpoint and the
    // review, and the review says so (not "Entries 20 to 19").
    let review = std::fs::read_to_string(dir.join("q2-review.md")).unwrap();
    assert!(
        review.contains("\nNo new entries (checkpoint of size"),
        "{review}"
    );
    // The witness cosigned the checkpoint submitted by hand.
    assert!(
        stdout.contains("OK: cosigned by witness.regulator.example/w1"),
        "{stdout}"
    );
}
