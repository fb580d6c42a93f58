//! Regression tests for bugs the fuzz targets in `fuzz/` found (see
//! fuzz/README.md). Each is the smallest reproduction of a minimised crash.

use modeltrail::tlog::Hash;
use modeltrail::tlog::note::{Note, NoteSignature};
use modeltrail::tlog::proof::{
    VerifyError, consistency_proof_len, inclusion_proof_len, verify_consistency, verify_inclusion,
};

/// fuzz target `verify_inclusion`: for a tree size above 2^63 the leaf's
/// path and the last leaf's path split at the top bit, and
/// `inclusion_proof_len` shifted a u64 right by 64 ("attempt to shift right
/// with overflow" with overflow checks; a wrong length without).
#[test]
fn inclusion_proof_len_for_sizes_above_2_pow_63() {
    let size = (1u64 << 63) + 1;
    assert_eq!(inclusion_proof_len(0, size), 64);
    assert_eq!(inclusion_proof_len(1, size), 64);
    assert_eq!(inclusion_proof_len(size - 1, size), 1);
    let h = Hash::default();
    assert_eq!(
        verify_inclusion(&h, 1, size, &[], &h),
        Err(VerifyError::WrongLength { got: 0, want: 64 })
    );
}

/// fuzz target `verify_consistency`: the same shift by 64 in
/// `consistency_proof_len` when the new size is above 2^63.
#[test]
fn consistency_proof_len_for_sizes_above_2_pow_63() {
    let new = (1u64 << 63) + 1;
    assert_eq!(consistency_proof_len(1, new), 64);
    assert_eq!(consistency_proof_len(3, new), 65);
    let h = Hash::default();
    assert_eq!(
        verify_consistency(3, new, &h, &h, &[]),
        Err(VerifyError::WrongLength { got: 0, want: 65 })
    );
}

/// fuzz target `cosignature`: `NoteSignature::new` accepted a key name with
/// ASCII control characters, so `Note::new` built a note that
/// `Note::parse` refuses (its docs promise every `Note` serialises to a
/// note that parses).
#[test]
fn signature_names_with_control_characters_are_refused() {
    for name in ["\0", "a\u{1}b", "log\u{1b}[31m"] {
        let sig = NoteSignature::new(name, 0, vec![0; 64]);
        if let Ok(sig) = sig {
            let note = Note::new("text\n", vec![sig]).expect("built");
            assert_eq!(
                Note::parse(&note.to_bytes()).as_ref(),
                Ok(&note),
                "a built note does not parse"
            );
        }
    }
}
