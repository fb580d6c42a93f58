//! `add-checkpoint` request bodies: round trips, limits and malformed input.

use modeltrail::tlog::Hash;
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::note::{KeyType, MAX_NOTE_SIZE, Note, SignerKey};
use modeltrail::tlog::tile::MAX_TREE_SIZE;
use modeltrail_witness::{AddCheckpointRequest, MAX_PROOF_LINES, MAX_REQUEST_SIZE, RequestError};
use proptest::prelude::*;

/// The example request body of c2sp.org/tlog-witness, verbatim.
const SPEC_EXAMPLE: &str = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
";

/// A checkpoint note signed by a fixed log key.
fn note(size: u64) -> Note {
    let key = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[1; 32]).unwrap();
    Checkpoint {
        origin: "example.com/log".into(),
        size,
        root: Hash([7; 32]),
        extensions: vec![],
    }
    .sign(&key)
    .unwrap()
}

fn proof(n: usize) -> Vec<Hash> {
    (0..n).map(|i| Hash([i as u8; 32])).collect()
}

/// Which error a malformed body must produce.
type Expect = fn(&RequestError) -> bool;

fn body(old: &str, proof_lines: &[String], note: &Note) -> Vec<u8> {
    let mut s = format!("{old}\n");
    for l in proof_lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push('\n');
    let mut b = s.into_bytes();
    b.extend_from_slice(&note.to_bytes());
    b
}

#[test]
fn spec_example_parses_and_round_trips() {
    let req = AddCheckpointRequest::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(req.old_size(), 20852014);
    assert_eq!(req.proof().len(), 4);
    assert_eq!(
        req.proof()[0].to_base64(),
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw="
    );
    assert_eq!(req.checkpoint().origin, "example.com/behind-the-sofa");
    assert_eq!(req.checkpoint().size, 20852163);
    assert_eq!(req.note().signatures().len(), 2);
    assert_eq!(req.to_bytes(), SPEC_EXAMPLE.as_bytes());
}

#[test]
fn built_requests_round_trip() {
    for (old, n) in [(0, 0), (1, 1), (5, 3), (MAX_TREE_SIZE, MAX_PROOF_LINES)] {
        let req = AddCheckpointRequest::new(old, proof(n), note(10)).unwrap();
        let bytes = req.to_bytes();
        let back = AddCheckpointRequest::parse(&bytes).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.to_bytes(), bytes);
    }
}

#[test]
fn proof_line_limit_is_63() {
    let lines: Vec<String> = proof(64).iter().map(Hash::to_base64).collect();
    let ok = body("old 1", &lines[..63], &note(2));
    assert_eq!(AddCheckpointRequest::parse(&ok).unwrap().proof().len(), 63);
    let too_many = body("old 1", &lines, &note(2));
    assert_eq!(
        AddCheckpointRequest::parse(&too_many),
        Err(RequestError::TooManyProofLines)
    );
    assert_eq!(
        AddCheckpointRequest::new(1, proof(64), note(2)),
        Err(RequestError::TooManyProofLines)
    );
}

#[test]
fn size_limits() {
    let huge = vec![b'a'; MAX_REQUEST_SIZE + 1];
    assert_eq!(
        AddCheckpointRequest::parse(&huge),
        Err(RequestError::TooLarge {
            size: MAX_REQUEST_SIZE + 1,
            max: MAX_REQUEST_SIZE
        })
    );
    assert!(matches!(
        AddCheckpointRequest::new(MAX_TREE_SIZE + 1, vec![], note(1)),
        Err(RequestError::OldSize(_))
    ));
    assert_eq!(
        AddCheckpointRequest::new(0, vec![], note(MAX_TREE_SIZE + 1)),
        Err(RequestError::CheckpointSizeTooLarge(MAX_TREE_SIZE + 1))
    );
    // A note over the note limit is refused even when the body fits.
    let mut big = b"old 0\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_NOTE_SIZE + 1));
    assert!(big.len() <= MAX_REQUEST_SIZE);
    assert!(matches!(
        AddCheckpointRequest::parse(&big),
        Err(RequestError::Note(_))
    ));
}

#[test]
fn old_size_larger_than_checkpoint_parses() {
    // The spec answers it with 400 after the 404 and 403 checks, so the
    // parser must let it through.
    let req = AddCheckpointRequest::new(11, vec![], note(10)).unwrap();
    assert_eq!(AddCheckpointRequest::parse(&req.to_bytes()), Ok(req));
}

#[test]
fn malformed_bodies_are_refused() {
    let n = note(3);
    let h = Hash([9; 32]).to_base64();
    let ones = Hash([0xff; 32]).to_base64();
    assert!(ones.contains('/'));
    let text = String::from_utf8(n.to_bytes()).unwrap();
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        (b"".to_vec(), |e| matches!(e, RequestError::MissingOldLine)),
        (b"old 1".to_vec(), |e| {
            matches!(e, RequestError::MissingOldLine)
        }),
        (body("old", &[], &n), |e| {
            matches!(e, RequestError::MissingOldLine)
        }),
        (body("new 1", &[], &n), |e| {
            matches!(e, RequestError::MissingOldLine)
        }),
        (body("old 01", &[], &n), |e| {
            matches!(e, RequestError::OldSize(_))
        }),
        (body("old -1", &[], &n), |e| {
            matches!(e, RequestError::OldSize(_))
        }),
        (body("old 1 ", &[], &n), |e| {
            matches!(e, RequestError::OldSize(_))
        }),
        (body("old 1\r", &[], &n), |e| {
            matches!(e, RequestError::OldSize(_))
        }),
        // Proof hashes: unpadded, URL-safe, short, long, hex, trailing space.
        (body("old 1", &[h.trim_end_matches('=').into()], &n), |e| {
            matches!(e, RequestError::ProofLine { line: 1, .. })
        }),
        (
            body("old 1", &[h.clone(), ones.replace('/', "_")], &n),
            |e| matches!(e, RequestError::ProofLine { .. }),
        ),
        (body("old 1", &[h.clone(), h[4..].into()], &n), |e| {
            matches!(e, RequestError::ProofLine { line: 2, .. })
        }),
        (body("old 1", &[format!("AAAA{h}")], &n), |e| {
            matches!(e, RequestError::ProofLine { line: 1, .. })
        }),
        (body("old 1", &[Hash([9; 32]).to_hex()], &n), |e| {
            matches!(e, RequestError::ProofLine { .. })
        }),
        (body("old 1", &[format!("{h} ")], &n), |e| {
            matches!(e, RequestError::ProofLine { .. })
        }),
        // No empty line: the note's first line is read as a proof line.
        (format!("old 1\n{text}").into_bytes(), |e| {
            matches!(e, RequestError::ProofLine { line: 1, .. })
        }),
        (format!("old 1\n{h}").into_bytes(), |e| {
            matches!(e, RequestError::MissingSeparator)
        }),
        (b"old 0\n".to_vec(), |e| {
            matches!(e, RequestError::MissingSeparator)
        }),
        // Missing, truncated or extended note.
        (b"old 0\n\n".to_vec(), |e| {
            matches!(e, RequestError::Note(_))
        }),
        (body("old 0", &[], &n)[..40].to_vec(), |e| {
            matches!(e, RequestError::Note(_))
        }),
        ([body("old 0", &[], &n), b"x".to_vec()].concat(), |e| {
            matches!(e, RequestError::Note(_))
        }),
        // Two empty lines: the note would start with an empty line.
        (format!("old 0\n\n\n{text}").into_bytes(), |e| {
            matches!(e, RequestError::Checkpoint(_))
        }),
        // A signed note whose text is not a checkpoint.
        (
            {
                let key =
                    SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[1; 32]).unwrap();
                let not_cp = Note::sign("hello\n", &[&key]).unwrap();
                body("old 0", &[], &not_cp)
            },
            |e| matches!(e, RequestError::Checkpoint(_)),
        ),
        // Invalid UTF-8 in a proof line.
        (body("old 1", &["\u{fffd}".repeat(11)], &n), |e| {
            matches!(e, RequestError::ProofLine { .. })
        }),
        (
            [b"old 1\n\xff\xfe\n\n".to_vec(), n.to_bytes()].concat(),
            |e| matches!(e, RequestError::ProofLine { .. }),
        ),
    ];
    for (i, (input, want)) in cases.iter().enumerate() {
        match AddCheckpointRequest::parse(input) {
            Err(e) => assert!(want(&e), "case {i}: unexpected error {e:?}"),
            Ok(r) => panic!("case {i}: accepted {r:?}"),
        }
    }
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = AddCheckpointRequest::parse(&bytes);
        let with_header = [b"old 0\n\n".to_vec(), bytes].concat();
        let _ = AddCheckpointRequest::parse(&with_header);
    }

    #[test]
    fn accepted_bodies_round_trip(
        old in 0..=MAX_TREE_SIZE,
        n in 0..=MAX_PROOF_LINES,
        size in 0..=MAX_TREE_SIZE,
        flip in any::<prop::sample::Index>(),
        bit in 0..8u8,
    ) {
        let req = AddCheckpointRequest::new(old, proof(n), note(size)).unwrap();
        let bytes = req.to_bytes();
        prop_assert_eq!(AddCheckpointRequest::parse(&bytes), Ok(req));
        // Any single bit flip is either refused or parses to a body that
        // serialises back to exactly the flipped bytes.
        let mut flipped = bytes.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 1 << bit;
        if let Ok(other) = AddCheckpointRequest::parse(&flipped) {
            prop_assert_eq!(other.to_bytes(), flipped);
        }
    }
}
