//! Verifier and private key strings: `VerifierKey::parse` and
//! `SignerKey::parse` on arbitrary UTF-8.
//!
//! On success the key writes back to the input byte for byte and re-parses
//! to an equal key; a parsed private key's verifier round trips too and
//! verifies what the key signs. The input is also used as a key name for
//! `SignerKey::from_seed`, whose keys must round trip through both strings.

use modeltrail::tlog::cosignature;
use modeltrail::tlog::note::{KeyType, SignerKey, VerifierKey, is_valid_key_name};

const CHECKPOINT: &str = "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";

/// A private key round trips and its verifier matches.
fn check_signer(key: &SignerKey) {
    let private = key.to_private_string();
    let again = SignerKey::parse(&private).expect("to_private_string re-parses");
    assert_eq!(again.to_private_string(), private);
    assert_eq!(again.name(), key.name());
    assert_eq!(again.key_id(), key.key_id());
    assert_eq!(again.key_type(), key.key_type());
    assert_eq!(again.verifier(), key.verifier());

    let vkey = key.verifier();
    assert_eq!(vkey.name(), key.name());
    assert_eq!(vkey.key_id(), key.key_id());
    assert_eq!(vkey.key_type(), key.key_type());
    check_verifier(&vkey);
    assert_eq!(VerifierKey::parse(&vkey.to_string()), Ok(vkey.clone()));

    // What the key signs, its verifier verifies.
    match key.key_type() {
        KeyType::Ed25519 => {
            let sig = key.sign(CHECKPOINT).expect("Ed25519 key signs");
            assert_eq!(vkey.verify_signature(CHECKPOINT, &sig), Ok(None));
            assert!(cosignature::sign(key, CHECKPOINT, 1).is_err());
        }
        KeyType::CosignatureV1 => {
            let sig = cosignature::sign(key, CHECKPOINT, 1_700_000_000).expect("witness signs");
            assert_eq!(
                cosignature::verify(&vkey, CHECKPOINT, &sig),
                Ok(1_700_000_000)
            );
            assert!(key.sign(CHECKPOINT).is_err());
        }
    }
}

/// A verifier key round trips through its string form.
fn check_verifier(key: &VerifierKey) {
    let s = key.to_string();
    let again = VerifierKey::parse(&s).expect("Display output re-parses");
    assert_eq!(&again, key);
    assert_eq!(again.to_string(), s);
    assert_eq!(s.parse::<VerifierKey>().as_ref(), Ok(key));
    assert!(is_valid_key_name(key.name()));
}

/// The target: `fuzz_targets/keys.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(key) = VerifierKey::parse(s) {
        assert_eq!(key.to_string(), s, "vkey does not write back byte for byte");
        check_verifier(&key);
    }

    if let Ok(key) = SignerKey::parse(s) {
        assert_eq!(
            key.to_private_string(),
            s,
            "private key does not write back byte for byte"
        );
        check_signer(&key);
    }

    // The input as a key name: valid names make keys that round trip.
    let seed = [0x5a; 32];
    for key_type in [KeyType::Ed25519, KeyType::CosignatureV1] {
        let made = SignerKey::from_seed(s, key_type, &seed);
        assert_eq!(made.is_ok(), is_valid_key_name(s));
        if let Ok(key) = made {
            check_signer(&key);
        }
    }
}
