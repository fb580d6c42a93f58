//! Signed entries (DESIGN "Entries"): sign/parse round trips, every rejection
//! class with its machine code, artefact IDs, policy bodies and authorisation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use modeltrail::entry::canonical::to_canonical;
use modeltrail::entry::{
    ArtefactId, ENTRY_CONTEXT, EntryError, Kind, MAX_ENTRY_SIZE, PolicyBody, Role, SignedEntry,
    authorise,
};
use modeltrail::tlog::note::{KeyType, SignerKey};
use serde_json::{Map, Value, json};

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, KeyType::Ed25519, &[seed; 32]).unwrap()
}

/// Signs `kind` and `body` with the raw Ed25519 key of `seed`, whatever key
/// string is then put in `signer`: lets tests build envelopes `sign` refuses.
fn raw_sig(seed: u8, kind: &str, body: &Value) -> String {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let mut msg = format!("{ENTRY_CONTEXT}{kind}\n").into_bytes();
    msg.extend_from_slice(&to_canonical(body));
    BASE64.encode(sk.sign(&msg).to_bytes())
}

fn sample() -> SignedEntry {
    SignedEntry::sign(
        Kind::Approval,
        json!({"comment": "all criteria met", "decision": "approve", "version": "b3:00"}),
        &key("alice", 3),
    )
    .unwrap()
}

fn members(e: &SignedEntry) -> Map<String, Value> {
    serde_json::from_slice(e.bytes()).unwrap()
}

fn encode(m: &Map<String, Value>) -> Vec<u8> {
    to_canonical(&Value::Object(m.clone()))
}

fn code(bytes: &[u8]) -> &'static str {
    SignedEntry::parse(bytes).unwrap_err().code()
}

#[test]
fn round_trip_every_kind() {
    let k = key("k", 1);
    for kind in Kind::ALL {
        let body = json!({"kind_was": kind.as_str(), "n": [0, -1, 0.5, 1e-7], "s": "\u{1f600}\n"});
        let e = SignedEntry::sign(kind, body.clone(), &k).unwrap();
        let p = SignedEntry::parse(e.bytes()).unwrap();
        assert_eq!(p, e);
        assert_eq!(p.kind(), kind);
        assert_eq!(p.body(), &body);
        assert_eq!(p.signer(), &k.verifier());
        assert_eq!(p.id(), ArtefactId::of(p.bytes()));
        assert_eq!(
            p.id().to_string(),
            format!("b3:{}", blake3::hash(p.bytes()).to_hex())
        );
    }
}

#[test]
fn artefact_id_known_answers() {
    assert_eq!(
        ArtefactId::of(b"abc").to_string(),
        "b3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    );
    let fixed = b"{\"body\":{},\"kind\":\"policy\"}";
    assert_eq!(
        ArtefactId::of(fixed).0,
        *blake3::hash(fixed).as_bytes(),
        "the ID is plain BLAKE3 of the bytes"
    );
}

#[test]
fn rejects_non_canonical() {
    let e = sample();
    let text = std::str::from_utf8(e.bytes()).unwrap();
    let spaced = text.replacen(",\"kind\"", ", \"kind\"", 1);
    assert_eq!(code(spaced.as_bytes()), "not_canonical_json");
    let newline = format!("{text}\n");
    assert_eq!(code(newline.as_bytes()), "not_canonical_json");
    // Swap body and kind: same members, wrong order.
    let m = members(&e);
    let reordered = format!(
        "{{\"kind\":{},\"body\":{},\"sig\":{},\"signer\":{},\"v\":1}}",
        m["kind"], m["body"], m["sig"], m["signer"]
    );
    assert_eq!(
        serde_json::from_str::<Value>(&reordered).unwrap(),
        Value::Object(m)
    );
    let err = SignedEntry::parse(reordered.as_bytes()).unwrap_err();
    assert_eq!(err, EntryError::NotCanonical { offset: 2 });
    assert_eq!(err.http_status(), 400);
    // v written as 1.0.
    let v10 = text.replace("\"v\":1}", "\"v\":1.0}");
    assert_eq!(code(v10.as_bytes()), "not_canonical_json");
}

#[test]
fn rejects_bad_json() {
    let e = sample();
    let text = std::str::from_utf8(e.bytes()).unwrap();
    let dup = text.replacen("{\"body\":", "{\"body\":{},\"body\":", 1);
    assert_eq!(code(dup.as_bytes()), "bad_json");
    assert_eq!(code(format!("{text}{{}}").as_bytes()), "bad_json");
    assert_eq!(code(&e.bytes()[..e.bytes().len() - 1]), "bad_json");
    assert_eq!(code(b""), "bad_json");
    // Invalid UTF-8 inside a string.
    let mut bytes = e.bytes().to_vec();
    let at = text.find("approve").unwrap();
    bytes[at] = 0xff;
    assert_eq!(code(&bytes), "bad_json");
    let err = SignedEntry::parse(&bytes).unwrap_err();
    assert_eq!(err.http_status(), 400);
}

#[test]
fn rejects_bad_envelope() {
    let e = sample();
    let m = members(&e);
    assert_eq!(code(b"[]"), "bad_envelope");
    assert_eq!(code(b"\"entry\""), "bad_envelope");

    let mut extra = m.clone();
    extra.insert("note".into(), json!("x"));
    assert_eq!(code(&encode(&extra)), "bad_envelope");
    for missing in ["body", "kind", "sig", "signer", "v"] {
        let mut less = m.clone();
        less.remove(missing);
        let err = SignedEntry::parse(&encode(&less)).unwrap_err();
        assert_eq!(err.code(), "bad_envelope", "{missing}");
        assert!(err.to_string().contains(missing), "{err}");
        assert_eq!(err.http_status(), 422);
    }
    for v in [json!(2), json!(0), json!("1"), json!(null), json!(1.5)] {
        let mut bad = m.clone();
        bad.insert("v".into(), v.clone());
        assert_eq!(code(&encode(&bad)), "unsupported_entry_version", "{v}");
    }
    for kind in [json!("policies"), json!("Approval"), json!("")] {
        let mut bad = m.clone();
        bad.insert("kind".into(), kind);
        let err = SignedEntry::parse(&encode(&bad)).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("unknown_kind", 422));
    }
    let mut bad = m.clone();
    bad.insert("kind".into(), json!(1));
    assert_eq!(code(&encode(&bad)), "bad_envelope");
    for body in [json!([]), json!("x"), json!(null), json!(1)] {
        let mut bad = m.clone();
        bad.insert("body".into(), body);
        assert_eq!(code(&encode(&bad)), "bad_envelope");
    }
    for sig in [
        json!("not base64!"),
        json!(""),
        json!(BASE64.encode([0u8; 63])),
        json!(BASE64.encode([0u8; 65])),
        json!(1),
    ] {
        let mut bad = m.clone();
        bad.insert("sig".into(), sig.clone());
        assert_eq!(code(&encode(&bad)), "bad_envelope", "{sig}");
    }
    // Unpadded base64 of the right signature.
    let mut bad = m.clone();
    let unpadded = m["sig"].as_str().unwrap().trim_end_matches('=').to_owned();
    bad.insert("sig".into(), json!(unpadded));
    assert_eq!(code(&encode(&bad)), "bad_envelope");
}

#[test]
fn rejects_bad_signer() {
    let e = sample();
    let body = e.body().clone();
    let mut m = members(&e);
    m.insert("signer".into(), json!("alice+00000000+AAAA"));
    let err = SignedEntry::parse(&encode(&m)).unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("bad_signer", 401));

    // A cosignature (0x04) vkey over the same Ed25519 key, with a signature
    // that verifies under it: refused for its type alone.
    let witness = SignerKey::from_seed("alice", KeyType::CosignatureV1, &[3; 32]).unwrap();
    let mut m = members(&e);
    m.insert("signer".into(), json!(witness.verifier().to_string()));
    m.insert("sig".into(), json!(raw_sig(3, "approval", &body)));
    let err = SignedEntry::parse(&encode(&m)).unwrap_err();
    assert_eq!(err.code(), "bad_signer");
    assert!(err.to_string().contains("0x04"), "{err}");
}

#[test]
fn rejects_bad_signature() {
    let e = sample();
    let body = e.body().clone();
    // Signed by another key.
    let mut m = members(&e);
    m.insert("sig".into(), json!(raw_sig(4, "approval", &body)));
    let err = SignedEntry::parse(&encode(&m)).unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("bad_signature", 401));
    // Signed over another kind.
    let mut m = members(&e);
    m.insert("sig".into(), json!(raw_sig(3, "transition", &body)));
    assert_eq!(code(&encode(&m)), "bad_signature");
    // Signed without the context prefix.
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let mut m = members(&e);
    m.insert(
        "sig".into(),
        json!(BASE64.encode(sk.sign(&to_canonical(&body)).to_bytes())),
    );
    assert_eq!(code(&encode(&m)), "bad_signature");
    // One body byte changed, still canonical.
    let text = std::str::from_utf8(e.bytes()).unwrap();
    let tampered = text.replacen("approve", "apprové", 1);
    assert_eq!(code(tampered.as_bytes()), "bad_signature");
    let tampered = text.replacen("approve", "approvf", 1);
    assert_eq!(code(tampered.as_bytes()), "bad_signature");
}

#[test]
fn any_byte_flip_is_refused() {
    let e = sample();
    for i in 0..e.bytes().len() {
        for bit in [0x01u8, 0x20, 0x80] {
            let mut b = e.bytes().to_vec();
            b[i] ^= bit;
            assert!(SignedEntry::parse(&b).is_err(), "byte {i} bit {bit:#x}");
        }
    }
}

#[test]
fn size_limit() {
    let k = key("k", 1);
    let sized = |n: usize| {
        SignedEntry::sign(Kind::ModelCard, json!({"pad": "x".repeat(n)}), &k)
            .map(|e| e.bytes().len())
    };
    let overhead = sized(0).unwrap();
    let fits = MAX_ENTRY_SIZE - overhead;
    assert_eq!(sized(fits), Ok(MAX_ENTRY_SIZE));
    let err =
        SignedEntry::sign(Kind::ModelCard, json!({"pad": "x".repeat(fits + 1)}), &k).unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("entry_too_large", 413));

    // A correctly signed, canonical entry one byte too large.
    let body = json!({"pad": "x".repeat(fits + 1)});
    let m = json!({
        "body": body,
        "kind": "model_card",
        "sig": raw_sig(1, "model_card", &body),
        "signer": k.verifier().to_string(),
        "v": 1,
    });
    let bytes = to_canonical(&m);
    assert_eq!(bytes.len(), MAX_ENTRY_SIZE + 1);
    assert_eq!(
        SignedEntry::parse(&bytes).unwrap_err(),
        EntryError::TooLarge {
            size: MAX_ENTRY_SIZE + 1,
            max: MAX_ENTRY_SIZE
        }
    );
    // Garbage that is too large is refused for its size before parsing.
    assert_eq!(code(&vec![b'['; MAX_ENTRY_SIZE + 1]), "entry_too_large");
}

fn roster_policy(admin: &SignerKey, others: &[(&SignerKey, &[&str])]) -> PolicyBody {
    let mut signers = vec![json!({"roles": ["admin"], "vkey": admin.verifier().to_string()})];
    for (k, roles) in others {
        signers.push(json!({"roles": roles, "vkey": k.verifier().to_string()}));
    }
    PolicyBody::parse(&json!({
        "approvals_required": 2,
        "criteria": [{"description": "Evaluation reviewed", "id": "eval"}],
        "signers": signers,
    }))
    .unwrap()
}

#[test]
fn policy_entry_round_trip_and_authorise() {
    let admin = key("admin", 1);
    let registry = key("registry", 2);
    let approver = key("approver", 3);
    let serving = key("serving", 4);
    let policy = roster_policy(
        &admin,
        &[
            (&registry, &["registry"]),
            (&approver, &["approver"]),
            (&serving, &["serving"]),
        ],
    );
    let entry = SignedEntry::sign(Kind::Policy, policy.to_value(), &admin).unwrap();
    let parsed = PolicyBody::parse(SignedEntry::parse(entry.bytes()).unwrap().body()).unwrap();
    assert_eq!(parsed, policy);
    assert_eq!(authorise(&entry, &policy), Ok(()));

    let who = [
        (&admin, Role::Admin),
        (&registry, Role::Registry),
        (&approver, Role::Approver),
        (&serving, Role::Serving),
    ];
    for kind in Kind::ALL {
        for (k, role) in who {
            let e = SignedEntry::sign(kind, json!({}), k).unwrap();
            let got = authorise(&e, &policy);
            assert_eq!(policy.allows(&k.verifier(), kind), got.is_ok());
            if kind.required_role() == role {
                assert_eq!(got, Ok(()), "{kind} by {role}");
            } else {
                let err = got.unwrap_err();
                assert_eq!(
                    (err.code(), err.http_status()),
                    ("signer_not_authorised", 403)
                );
                assert!(err.to_string().contains(kind.required_role().as_str()));
            }
        }
    }
    let stranger = key("stranger", 9);
    let e = SignedEntry::sign(Kind::Inference, json!({}), &stranger).unwrap();
    let err = authorise(&e, &policy).unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("unknown_signer", 401));
}

#[test]
fn initial_policy_lets_only_the_admin_act() {
    let admin = key("admin", 1);
    let policy = PolicyBody::initial(&admin.verifier()).unwrap();
    let entry = SignedEntry::sign(Kind::Policy, policy.to_value(), &admin).unwrap();
    assert_eq!(authorise(&entry, &policy), Ok(()));
    assert_eq!(policy.approvals_required(), 1);
    assert_eq!(policy.criteria().len(), 1);
    let card = SignedEntry::sign(Kind::ModelCard, json!({}), &admin).unwrap();
    assert_eq!(
        authorise(&card, &policy).unwrap_err().code(),
        "signer_not_authorised"
    );
    let body_err: EntryError = PolicyBody::parse(&json!({})).unwrap_err().into();
    assert_eq!(body_err.code(), "invalid_body");
}

fn arb_body() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(|i| json!(i)),
        (-1e15f64..1e15).prop_map(|x| json!(x)),
        any::<String>().prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(any::<String>(), value, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever `sign` returns, `parse` accepts, with the same body and ID.
    #[test]
    fn sign_parse_round_trip(body in arb_body(), kind in 0usize..6, seed in 1u8..4) {
        let k = key("k", seed);
        let e = SignedEntry::sign(Kind::ALL[kind], body, &k).unwrap();
        let p = SignedEntry::parse(e.bytes()).unwrap();
        proptest::prop_assert_eq!(p.id(), e.id());
        proptest::prop_assert_eq!(p.body(), e.body());
        proptest::prop_assert_eq!(to_canonical(p.body()), to_canonical(e.body()));
    }

    /// Parsing arbitrary bytes never panics.
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = SignedEntry::parse(&bytes);
    }
}

#[test]
fn sign_refuses_what_parse_would() {
    let k = key("k", 1);
    let mut deep = json!({});
    for _ in 0..70 {
        deep = json!({ "d": deep });
    }
    assert_eq!(
        SignedEntry::sign(Kind::ModelCard, deep, &k)
            .unwrap_err()
            .code(),
        "bad_json"
    );
    // -0 and 2.0 are signed in their canonical forms, 0 and 2.
    let e = SignedEntry::sign(Kind::ModelCard, json!({"a": -0.0, "b": 2.0}), &k).unwrap();
    assert!(
        std::str::from_utf8(e.bytes())
            .unwrap()
            .starts_with("{\"body\":{\"a\":0,\"b\":2},")
    );
}
