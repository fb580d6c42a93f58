//! Benchmarks of signed-note verification: a checkpoint signed by the log,
//! and the same checkpoint with a witness cosignature, against one bare
//! Ed25519 `verify_strict` — the target is that note verification costs
//! about one signature verification per known key and little else.
//!
//! Run with `cargo bench --bench note`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature::cosign;
use modeltrail::tlog::note::{KeyType, Note, SignerKey};
use modeltrail::tlog::policy::Policy;

const CHECKPOINT: &str =
    "example.com/log\n10000000\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n";

fn bench_note(c: &mut Criterion) {
    let log = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[1; 32]).unwrap();
    let witness =
        SignerKey::from_seed("witness.example", KeyType::CosignatureV1, &[2; 32]).unwrap();
    let signed = Note::sign(CHECKPOINT, &[&log]).unwrap();
    let mut cosigned = signed.clone();
    cosign(&mut cosigned, &witness, 1_764_236_400).unwrap();
    let (signed_bytes, cosigned_bytes) = (signed.to_bytes(), cosigned.to_bytes());
    let (log_vkey, witness_vkey) = (log.verifier(), witness.verifier());

    let raw = SigningKey::from_bytes(&[1; 32]);
    let raw_sig = raw.sign(CHECKPOINT.as_bytes());
    let raw_pub = raw.verifying_key();
    c.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| {
            raw_pub
                .verify_strict(black_box(CHECKPOINT.as_bytes()), &raw_sig)
                .unwrap()
        })
    });
    c.bench_function("note_parse_verify/log_signed", |b| {
        b.iter(|| {
            let note = Note::parse(black_box(&signed_bytes)).unwrap();
            note.verify(std::slice::from_ref(&log_vkey)).unwrap()
        })
    });
    c.bench_function("checkpoint_open/log_and_witness", |b| {
        b.iter(|| {
            Checkpoint::open(
                black_box(&cosigned_bytes),
                &log_vkey,
                std::slice::from_ref(&witness_vkey),
            )
            .unwrap()
        })
    });
    let policy =
        Policy::parse(format!("log {log_vkey}\nwitness w {witness_vkey}\nquorum w\n").as_bytes())
            .unwrap();
    c.bench_function("policy_verify_checkpoint/1_of_1", |b| {
        b.iter(|| {
            policy
                .verify_checkpoint(black_box(&cosigned_bytes))
                .unwrap()
        })
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_note
}
criterion_main!(benches);
