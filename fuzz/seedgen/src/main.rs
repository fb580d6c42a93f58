//! Writes the seed corpora in `fuzz/seeds/<target>/`: valid inputs signed by
//! the fixed keys of `fuzz/src/lib.rs` (same names and seeds), so that the
//! fuzzers start past the signature checks they cannot forge their way
//! through.
//!
//! Run from the repository root:
//! `cargo run --manifest-path fuzz/seedgen/Cargo.toml --target-dir fuzz/target/seedgen`

use std::fs;
use std::path::Path;

use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::hash::{stored_hashes, tree_hash};
use modeltrail::tlog::note::{KeyType, Note, SignerKey};
use modeltrail::tlog::policy::Policy;
use modeltrail::tlog::proof::prove_inclusion;
use modeltrail::tlog::tile::encode_bundle;
use modeltrail::tlog::tlog_proof::TlogProof;

const LOG_NAME: &str = "example.com/log";
const WITNESS_NAME: &str = "witness.example/w1";

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seeds")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), data).unwrap();
}

fn main() {
    let log = SignerKey::from_seed(LOG_NAME, KeyType::Ed25519, &[1; 32]).unwrap();
    let witness = SignerKey::from_seed(WITNESS_NAME, KeyType::CosignatureV1, &[4; 32]).unwrap();
    let other = SignerKey::from_seed("other.example/w2", KeyType::CosignatureV1, &[9; 32]).unwrap();

    // A tree of 13 records "entry i".
    let size = 13u64;
    let mut stored = Vec::new();
    for i in 0..size {
        stored.extend(stored_hashes(i, format!("entry {i}").as_bytes(), &stored).unwrap());
    }
    let checkpoint = Checkpoint {
        origin: LOG_NAME.into(),
        size,
        root: tree_hash(size, &stored).unwrap(),
        extensions: vec![],
    };
    let mut note = checkpoint.sign(&log).unwrap();
    let log_only = note.clone();
    cosignature::cosign(&mut note, &witness, 1_700_000_000).unwrap();
    let cosigned = note.clone();
    cosignature::cosign(&mut note, &other, 1_700_000_001).unwrap();
    let two_witnesses = note;

    // keys
    write("keys", "log-vkey", log.verifier().to_string().as_bytes());
    write("keys", "log-private", log.to_private_string().as_bytes());
    write(
        "keys",
        "witness-vkey",
        witness.verifier().to_string().as_bytes(),
    );
    write(
        "keys",
        "witness-private",
        witness.to_private_string().as_bytes(),
    );

    // checkpoint
    write("checkpoint", "plain", checkpoint.to_text().as_bytes());
    let mut ext = checkpoint.clone();
    ext.extensions = vec!["ext one".into(), "— two".into()];
    write("checkpoint", "extensions", ext.to_text().as_bytes());
    write(
        "checkpoint",
        "empty",
        b"example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
    );

    // note
    write("note", "log-only", &log_only.to_bytes());
    write("note", "cosigned", &cosigned.to_bytes());
    write("note", "two-witnesses", &two_witnesses.to_bytes());
    let multi = Note::sign("text\n\nwith an empty line\n", &[&log]).unwrap();
    write("note", "empty-line-in-text", &multi.to_bytes());

    // tlog_proof: every index of the tree, some with extra data.
    for index in 0..size {
        let proof = TlogProof {
            extra: (index % 3 == 0).then(|| format!("extra {index}").into_bytes()),
            index,
            proof: prove_inclusion(size, index, &stored).unwrap(),
            checkpoint: cosigned.to_bytes(),
        };
        // The seeds must verify under the fuzz targets' fixed policy.
        let policy = format!(
            "log {}\nwitness w1 {}\nquorum w1\n",
            log.verifier(),
            witness.verifier()
        );
        let policy = Policy::parse(policy.as_bytes()).unwrap();
        proof
            .verify(format!("entry {index}").as_bytes(), &policy)
            .expect("seed tlog-proof verifies");
        write("tlog_proof", &format!("index-{index}"), &proof.to_bytes());
    }
    let uncosigned = TlogProof {
        extra: None,
        index: 5,
        proof: prove_inclusion(size, 5, &stored).unwrap(),
        checkpoint: log_only.to_bytes(),
    };
    write("tlog_proof", "not-cosigned", &uncosigned.to_bytes());

    // tlog_policy
    let (lv, wv, ov) = (log.verifier(), witness.verifier(), other.verifier());
    write(
        "tlog_policy",
        "fixed",
        format!("log {lv}\nwitness w1 {wv}\nquorum w1\n").as_bytes(),
    );
    write(
        "tlog_policy",
        "groups",
        format!(
            "# two witnesses\nlog {lv} https://log.example/\n\nwitness w1 {wv} https://w1.example/\n\
             witness w2\t{ov}\ngroup g1 any w1 w2\ngroup g2 all g1 w2\ngroup g3 1 g2\nquorum g3\n\0\x01\x00"
        )
        .as_bytes(),
    );
    write(
        "tlog_policy",
        "none",
        format!("log {lv}\nquorum none\n").as_bytes(),
    );

    // tile_path: paths, some followed by NUL, a stored-hash index and data.
    for path in [
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
        "tile/entries/x001/x234/067.p/112",
        "tile/63/x018/x446/x744/x073/x709/x551/615",
    ] {
        write("tile_path", &path.replace('/', "_"), path.as_bytes());
    }
    let mut with_data = b"tile/0/000.p/2\0".to_vec();
    with_data.extend_from_slice(&2u64.to_le_bytes());
    with_data.extend_from_slice(&[7; 64]);
    write("tile_path", "with-data", &with_data);

    // entry_bundle
    let entries: Vec<Vec<u8>> = (0..size)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    write("entry_bundle", "entries", &encode_bundle(&entries).unwrap());
    write("entry_bundle", "one-empty", &encode_bundle(&[b""]).unwrap());
    write(
        "entry_bundle",
        "large",
        &encode_bundle(&[vec![0xab; 1000]]).unwrap(),
    );

    // cosignature and the Merkle targets take structured (arbitrary) input
    // and start from an empty corpus.
    println!("seeds written");
}
