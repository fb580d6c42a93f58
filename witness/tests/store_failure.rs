//! The witness's rule after a failed write or sync (`crate::store`): the
//! durable state is unknown, so the witness cosigns nothing more until it
//! is restarted and has re-read its state. Without the rule it could answer
//! from an in-memory state that is not the durable one, and cosign a fork.
//!
//! The failures are real: a directory in the way of the journal's
//! compaction (`state.tmp`), and a full tmpfs mounted by the test (root
//! only; skipped, and said so, where mounting is not allowed). In both, the
//! cause is then removed, so a witness that forgot the failure would
//! succeed: every later request must still be refused with no cosignature.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use modeltrail::tlog::note::VerifierKey;

const WITNESS: &str = "witness.example/w1";

/// A refusal for a failed store: 500 naming the failure, and no
/// cosignature line in the body.
fn assert_store_failed(reply: &Reply) {
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.contains("witness storage failed"),
        "{}",
        reply.body
    );
    assert!(
        !reply.body.contains('\u{2014}'),
        "a signature line: {}",
        reply.body
    );
}

/// After the failure: nothing is cosigned, for this log at any size or for
/// another log, though the cause of the failure is gone.
fn assert_refuses_everything(c: &Client, log: &TestLog, other: &TestLog, cosigned: u64) {
    // The size the witness last cosigned, again and one further.
    for (old, size) in [(cosigned, cosigned + 1), (cosigned, cosigned + 2)] {
        assert_store_failed(&c.add_checkpoint(&log.request(old, size)));
    }
    // A log the witness has never cosigned for.
    assert_store_failed(&c.add_checkpoint(&other.request(0, 3)));
}

fn setup(data: &Path) -> (VerifierKey, TestLog, TestLog) {
    let out = run_ok(&["init", "--data", data.to_str().unwrap(), "--name", WITNESS]);
    let wkey = VerifierKey::parse(out.trim_end()).unwrap();
    let log = TestLog::new("example.com/log", 1, 100);
    let other = TestLog::new("example.com/other", 2, 10);
    add_log(data, &log);
    add_log(data, &other);
    (wkey, log, other)
}

#[test]
fn a_failed_compaction_stops_all_cosigning_until_restart() {
    let data = scratch("compaction").join("data");
    let (wkey, log, other) = setup(&data);
    // Compact after every batch: every commit rewrites the journal through
    // `state.tmp`.
    let w = Witness::start(&data, &["--compact-bytes", "1"]);
    let c = w.client();
    cosign(&c, &log, 0, 1, &wkey);
    cosign(&c, &log, 1, 2, &wkey);

    // A directory where the compaction's temporary file goes: the next
    // commit appends (durably) and then fails to compact.
    let blocker = data.join("state.tmp");
    std::fs::create_dir(&blocker).unwrap();
    assert_store_failed(&c.add_checkpoint(&log.request(2, 3)));
    std::fs::remove_dir(&blocker).unwrap();

    // The journal could be written again; the witness still refuses.
    assert_refuses_everything(&c, &log, &other, 2);
    drop(w);

    // Restarted, it reads the durable state, which is size 3 (the append
    // before the failed compaction was synced), not the 2 it held in memory:
    // exactly the difference the rule protects against.
    let w = Witness::start(&data, &["--compact-bytes", "1"]);
    let c = w.client();
    assert_eq!(
        assert_refused(&c.add_checkpoint(&log.request(2, 4)), 409),
        "3\n"
    );
    cosign(&c, &log, 3, 4, &wkey);
    cosign(&c, &other, 0, 3, &wkey);
}

/// Unmounts on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_all_cosigning_until_restart() {
    let dir = scratch("full-disk");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!("skipped: cannot mount a tmpfs here (needs root): {other:?}");
            return;
        }
    }
    let _mount = Mount(mnt.clone());
    let data = mnt.join("data");
    let (wkey, log, other) = setup(&data);
    let w = Witness::start(&data, &[]);
    let c = w.client();
    cosign(&c, &log, 0, 1, &wkey);

    // Fill the file system to the last byte.
    let filler = mnt.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..1]).is_ok() {}
        let _ = f.sync_all();
    }
    // The journal's last page may still have room: cosign until an append
    // needs a new one and fails.
    let mut cosigned = 1;
    loop {
        let reply = c.add_checkpoint(&log.request(cosigned, cosigned + 1));
        if reply.status == 200 {
            assert_cosigned(&reply, &log, cosigned + 1, &wkey);
            cosigned += 1;
            assert!(cosigned < 90, "the full file system never refused a write");
            continue;
        }
        assert_store_failed(&reply);
        break;
    }
    std::fs::remove_file(&filler).unwrap();

    // Room again; the witness still refuses.
    assert_refuses_everything(&c, &log, &other, cosigned);
    drop(w);

    // Restarted, it cosigns from its durable state.
    let w = Witness::start(&data, &[]);
    let c = w.client();
    let latest = status(&data)["logs"][0]["latest"]["size"].as_u64().unwrap();
    assert!(latest == cosigned || latest == cosigned + 1, "{latest}");
    cosign(&c, &log, latest, 95, &wkey);
}
