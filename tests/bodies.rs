//! Typed governance bodies (DESIGN "Entries"): a valid example of each kind
//! round-trips through parse, to_value and a signed entry; every rejection
//! class is refused with `invalid_body` (422); parsers never panic.

use modeltrail::entry::{
    Approval, Body, BodyError, Decision, EntryError, Inference, Kind, ModelCard, ModelVersion,
    PolicyBody, SignedEntry, Timestamp, Transition,
};
use modeltrail::tlog::note::{KeyType, SignerKey};
use proptest::prelude::*;
use serde_json::{Value, json};

const V1: &str = "b3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
const V2: &str = "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
const CARD: &str = "b3:1111111111111111111111111111111111111111111111111111111111111111";
const POLICY: &str = "b3:2222222222222222222222222222222222222222222222222222222222222222";

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, KeyType::Ed25519, &[seed; 32]).unwrap()
}

fn card() -> Value {
    json!({
        "model": "fraud-detector",
        "training_data": "12M card transactions, 2019-2024, EU region; see datasheet.",
        "evaluation": [
            {"metric": "auc", "value": 0.941, "dataset": "holdout-2024q4"},
            {"metric": "recall@1%fpr", "value": 62, "dataset": "holdout-2024q4"},
        ],
        "intended_use": "Scoring card transactions for manual fraud review.",
        "limitations": "Not evaluated on non-EU merchants.\nScores drift after 6 months.",
        "documents": [{"name": "bias-audit.pdf", "hash": V2}],
        "extensions": {"license": "proprietary", "tags": ["fraud", "tabular"]},
    })
}

fn version() -> Value {
    json!({
        "model": "fraud-detector",
        "version_hash": V1,
        "card": CARD,
        "registry_ref": "models:/fraud-detector/3",
        "git_sha": "0123456789abcdef0123456789abcdef01234567",
    })
}

fn approval() -> Value {
    json!({
        "version_hash": V1,
        "policy": POLICY,
        "criteria": {
            "evaluation-reviewed": {"met": true, "note": "AUC above 0.9 threshold"},
            "bias-audit": {"met": true},
        },
        "decision": "approve",
        "comment": "",
    })
}

fn transition() -> Value {
    json!({"model": "fraud-detector", "from": V1, "to": V2, "at": "2028-02-29T12:00:00.000Z", "reason": "Q1 retrain"})
}

fn inference() -> Value {
    json!({
        "model": "fraud-detector",
        "version_hash": V1,
        "request_id": "req-7f3a",
        "served_at": "2028-02-29T13:45:01.007Z",
        "input_commitment": V1,
        "output_commitment": V2,
    })
}

fn policy() -> Value {
    json!({
        "approvals_required": 1,
        "criteria": [{"description": "Evaluation reviewed", "id": "evaluation-reviewed"}],
        "signers": [{"roles": ["admin"], "vkey": key("admin", 1).verifier().to_string()}],
    })
}

fn examples() -> Vec<(Kind, Value)> {
    vec![
        (Kind::Policy, policy()),
        (Kind::ModelCard, card()),
        (Kind::ModelVersion, version()),
        (Kind::Approval, approval()),
        (Kind::Transition, transition()),
        (Kind::Inference, inference()),
    ]
}

/// `v` with the member at JSON pointer `path` replaced by `new`, or removed
/// if `new` is `None`.
fn edit(mut v: Value, path: &str, new: Option<Value>) -> Value {
    let (parent, last) = path.rsplit_once('/').unwrap();
    let obj = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match new {
        Some(x) => obj.insert(last.to_owned(), x),
        None => obj.remove(last),
    };
    v
}

fn reason(kind: Kind, body: &Value) -> String {
    match Body::parse(kind, body) {
        Err(e @ EntryError::InvalidBody { .. }) => {
            assert_eq!((e.code(), e.http_status()), ("invalid_body", 422));
            let EntryError::InvalidBody { kind: k, reason } = e else {
                unreachable!()
            };
            assert_eq!(k, kind);
            reason
        }
        other => panic!("{kind} {body}: expected invalid_body, got {other:?}"),
    }
}

#[test]
fn every_kind_round_trips() {
    for (kind, body) in examples() {
        let typed = Body::parse(kind, &body).unwrap();
        assert_eq!(typed.kind(), kind);
        // Exact: the typed body writes back the JSON it was read from.
        assert_eq!(typed.to_value(), body, "{kind}");
        assert_eq!(Body::parse(kind, &typed.to_value()).unwrap(), typed);

        let entry = SignedEntry::sign(kind, typed.to_value(), &key("k", 9)).unwrap();
        let again = SignedEntry::parse(entry.bytes()).unwrap();
        assert_eq!(again.typed_body().unwrap(), typed);
        let text = serde_json::to_vec(&body).unwrap();
        assert_eq!(Body::parse_json(kind, &text).unwrap(), typed);
    }
}

#[test]
fn typed_accessors() {
    let c = ModelCard::parse(&card()).unwrap();
    assert_eq!(c.model.as_str(), "fraud-detector");
    assert_eq!(c.evaluation[0].value.as_f64(), Some(0.941));
    assert_eq!(c.documents.as_ref().unwrap()[0].hash.to_string(), V2);
    let v = ModelVersion::parse(&version()).unwrap();
    assert_eq!(v.card.to_string(), CARD);
    let a = Approval::parse(&approval()).unwrap();
    assert_eq!(a.decision, Decision::Approve);
    assert_eq!(a.criteria["bias-audit"].note, None);
    let t = Transition::parse(&transition()).unwrap();
    assert!(!t.is_first_activation());
    let i = Inference::parse(&inference()).unwrap();
    assert_eq!(
        i.served_at,
        Timestamp::parse("2028-02-29T13:45:01.007Z").unwrap()
    );
    assert_eq!(i.served_at.unix_millis(), 1_835_444_701_007);
    assert_eq!(ModelCard::KIND, Kind::ModelCard);
}

#[test]
fn envelope_stays_generic() {
    // SignedEntry::parse checks the envelope only; the body schema is
    // typed_body's.
    let e = SignedEntry::sign(Kind::ModelCard, json!({"x": 1}), &key("k", 9)).unwrap();
    assert!(SignedEntry::parse(e.bytes()).is_ok());
    assert_eq!(e.typed_body().unwrap_err().code(), "invalid_body");
}

#[test]
fn minimal_bodies() {
    let mut c = edit(card(), "/documents", None);
    c = edit(c, "/extensions", None);
    assert!(ModelCard::parse(&c).is_ok());
    let v = edit(edit(version(), "/registry_ref", None), "/git_sha", None);
    assert!(ModelVersion::parse(&v).is_ok());
    let v = edit(version(), "/git_sha", Some(json!("ab".repeat(32))));
    assert!(ModelVersion::parse(&v).is_ok());
    // Reject with a failed criterion, or with all met; empty criteria.
    let a = edit(approval(), "/decision", Some(json!("reject")));
    assert!(Approval::parse(&a).is_ok());
    let a = edit(a, "/criteria/bias-audit/met", Some(json!(false)));
    assert!(Approval::parse(&a).is_ok());
    let a = edit(approval(), "/criteria", Some(json!({})));
    assert!(Approval::parse(&a).is_ok());
    let t = edit(transition(), "/from", Some(Value::Null));
    assert!(Transition::parse(&t).unwrap().is_first_activation());
    // Extensions are free-form, anywhere.
    for (kind, body) in examples() {
        let b = edit(
            body,
            "/extensions",
            Some(json!({"any": {"thing": [1, null]}})),
        );
        assert!(Body::parse(kind, &b).is_ok(), "{kind}");
    }
}

#[test]
fn missing_required_members() {
    let required: [(Kind, Value, &[&str]); 5] = [
        (
            Kind::ModelCard,
            card(),
            &[
                "model",
                "training_data",
                "evaluation",
                "intended_use",
                "limitations",
            ],
        ),
        (
            Kind::ModelVersion,
            version(),
            &["model", "version_hash", "card"],
        ),
        (
            Kind::Approval,
            approval(),
            &["version_hash", "policy", "criteria", "decision", "comment"],
        ),
        (
            Kind::Transition,
            transition(),
            &["model", "from", "to", "reason"],
        ),
        (
            Kind::Inference,
            inference(),
            &[
                "model",
                "version_hash",
                "request_id",
                "served_at",
                "input_commitment",
                "output_commitment",
            ],
        ),
    ];
    for (kind, body, members) in required {
        for m in members {
            let r = reason(kind, &edit(body.clone(), &format!("/{m}"), None));
            assert!(r.contains(m), "{kind} without {m}: {r}");
        }
    }
    let r = reason(Kind::ModelCard, &edit(card(), "/evaluation/0/value", None));
    assert!(r.contains("value"), "{r}");
    let r = reason(
        Kind::Approval,
        &edit(approval(), "/criteria/bias-audit/met", None),
    );
    assert!(r.contains("met"), "{r}");
}

#[test]
fn unknown_members_outside_extensions() {
    for (kind, body) in examples() {
        let r = reason(kind, &edit(body, "/surprise", Some(json!(1))));
        assert!(r.contains("surprise"), "{kind}: {r}");
    }
    for (kind, body, path) in [
        (Kind::ModelCard, card(), "/evaluation/0/split"),
        (Kind::ModelCard, card(), "/documents/0/url"),
        (Kind::Approval, approval(), "/criteria/bias-audit/score"),
    ] {
        reason(kind, &edit(body, path, Some(json!("x"))));
    }
    // The envelope-level body must be an object.
    reason(Kind::Inference, &json!([]));
    reason(Kind::Inference, &json!(null));
}

#[test]
fn wrong_types() {
    for (kind, body, path, v) in [
        (Kind::ModelCard, card(), "/model", json!(7)),
        (Kind::ModelCard, card(), "/training_data", json!(["a"])),
        (Kind::ModelCard, card(), "/evaluation", json!({})),
        (Kind::ModelCard, card(), "/evaluation/0/value", json!("0.9")),
        (Kind::ModelCard, card(), "/evaluation/0/value", Value::Null),
        (Kind::ModelCard, card(), "/documents", json!({})),
        (Kind::ModelCard, card(), "/extensions", json!([])),
        (Kind::ModelCard, card(), "/extensions", Value::Null),
        (Kind::ModelVersion, version(), "/registry_ref", Value::Null),
        (Kind::ModelVersion, version(), "/git_sha", json!(1)),
        (Kind::Approval, approval(), "/criteria", json!([])),
        (
            Kind::Approval,
            approval(),
            "/criteria/bias-audit/met",
            json!("true"),
        ),
        (
            Kind::Approval,
            approval(),
            "/criteria/bias-audit/note",
            Value::Null,
        ),
        (Kind::Approval, approval(), "/decision", json!("Approve")),
        (Kind::Approval, approval(), "/decision", json!("abstain")),
        (Kind::Approval, approval(), "/comment", Value::Null),
        (Kind::Transition, transition(), "/to", Value::Null),
        (Kind::Transition, transition(), "/reason", json!(1)),
        (
            Kind::Inference,
            inference(),
            "/served_at",
            json!(1_835_444_701_007u64),
        ),
        (Kind::Inference, inference(), "/request_id", json!(17)),
    ] {
        reason(kind, &edit(body, path, Some(v)));
    }
}

#[test]
fn bad_hashes() {
    let bads = [
        V1.to_uppercase(),
        V1.replace("b3:", "B3:"),
        V1[3..].to_owned(),
        V1.replace("b3:", "sha256:"),
        V1[..V1.len() - 1].to_owned(),
        format!("{V1}0"),
        V1.replacen('a', "A", 1),
        V1.replacen('6', "g", 1),
        String::new(),
    ];
    let fields = [
        (Kind::ModelCard, card(), "/documents/0/hash"),
        (Kind::ModelVersion, version(), "/version_hash"),
        (Kind::ModelVersion, version(), "/card"),
        (Kind::Approval, approval(), "/version_hash"),
        (Kind::Approval, approval(), "/policy"),
        (Kind::Transition, transition(), "/from"),
        (Kind::Transition, transition(), "/to"),
        (Kind::Inference, inference(), "/version_hash"),
        (Kind::Inference, inference(), "/input_commitment"),
        (Kind::Inference, inference(), "/output_commitment"),
    ];
    for (kind, body, path) in fields {
        for bad in &bads {
            reason(kind, &edit(body.clone(), path, Some(json!(bad))));
        }
    }
    for sha in [
        "0123456789ABCDEF0123456789abcdef01234567",
        "abc",
        &"a".repeat(50),
    ] {
        reason(
            Kind::ModelVersion,
            &edit(version(), "/git_sha", Some(json!(sha))),
        );
    }
}

#[test]
fn bad_names_and_text() {
    let with_model = [
        (Kind::ModelCard, card()),
        (Kind::ModelVersion, version()),
        (Kind::Transition, transition()),
        (Kind::Inference, inference()),
    ];
    for (kind, body) in with_model {
        for bad in [
            "",
            " fraud",
            "fraud\n",
            "fr\u{0}aud",
            "fr\u{1b}[31maud",
            &"m".repeat(201),
        ] {
            let r = reason(kind, &edit(body.clone(), "/model", Some(json!(bad))));
            assert!(r.contains("model name"), "{r}");
        }
        assert!(Body::parse(kind, &edit(body, "/model", Some(json!("m".repeat(200))))).is_ok());
    }
    for path in ["/training_data", "/intended_use", "/limitations"] {
        let r = reason(Kind::ModelCard, &edit(card(), path, Some(json!(" \n "))));
        assert!(r.contains(&path[1..]), "{r}");
    }
    for path in ["/evaluation/0/metric", "/evaluation/1/dataset"] {
        reason(Kind::ModelCard, &edit(card(), path, Some(json!(""))));
    }
    assert_eq!(
        ModelCard::parse(&edit(card(), "/evaluation", Some(json!([])))),
        Err(BodyError::NoEvaluation)
    );
    reason(
        Kind::ModelCard,
        &edit(card(), "/documents/0/name", Some(json!("a\u{7}"))),
    );
    reason(
        Kind::Transition,
        &edit(transition(), "/reason", Some(json!(""))),
    );
    reason(
        Kind::Approval,
        &edit(approval(), "/criteria/", Some(json!({"met": true}))),
    );
    for bad in ["models:/a b/3", ""] {
        reason(
            Kind::ModelVersion,
            &edit(version(), "/registry_ref", Some(json!(bad))),
        );
    }
}

#[test]
fn approve_against_failed_criterion() {
    let a = edit(approval(), "/criteria/bias-audit/met", Some(json!(false)));
    assert_eq!(
        Approval::parse(&a),
        Err(BodyError::ApprovedFailedCriterion {
            criterion: "bias-audit".into()
        })
    );
    let r = reason(Kind::Approval, &a);
    assert!(r.contains("bias-audit"), "{r}");
}

#[test]
fn transition_to_itself() {
    let t = edit(transition(), "/to", Some(json!(V1)));
    let r = reason(Kind::Transition, &t);
    assert!(r.contains("must change"), "{r}");
}

#[test]
fn served_at_variants() {
    for (s, ok) in [
        ("2028-02-29T00:00:00.000Z", true),
        ("2026-02-28T23:59:59.999Z", true),
        ("2026-02-29T00:00:00.000Z", false),
        ("2026-02-30T00:00:00.000Z", false),
        ("2026-06-01T12:00:00Z", false),
        ("2026-06-01T12:00:00.5Z", false),
        ("2026-06-01T12:00:00.000+02:00", false),
        ("2026-06-01T12:00:00.000+00:00", false),
        ("2026-06-01T12:00:00.000", false),
        ("2026-06-01T12:00:00.000z", false),
        ("2026-06-01t12:00:00.000Z", false),
        ("2026-06-01T12:00:60.000Z", false),
    ] {
        let b = edit(inference(), "/served_at", Some(json!(s)));
        assert_eq!(Body::parse(Kind::Inference, &b).is_ok(), ok, "{s}");
    }
}

#[test]
fn request_id_limits() {
    let ok = edit(inference(), "/request_id", Some(json!("r".repeat(256))));
    assert!(Inference::parse(&ok).is_ok());
    for bad in ["r".repeat(257), String::new(), "a\rb".into()] {
        reason(
            Kind::Inference,
            &edit(inference(), "/request_id", Some(json!(bad))),
        );
    }
}

#[test]
fn policy_errors_map_to_invalid_body() {
    let r = reason(
        Kind::Policy,
        &edit(policy(), "/approvals_required", Some(json!(0))),
    );
    assert!(r.contains("approvals_required"), "{r}");
    assert!(PolicyBody::parse(&policy()).is_ok());
}

#[test]
fn parse_json_errors() {
    let e = Body::parse_json(Kind::Inference, b"{").unwrap_err();
    assert_eq!(e.code(), "bad_json");
    let e = Body::parse_json(Kind::Inference, b"{}").unwrap_err();
    assert_eq!(e.code(), "invalid_body");
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(|n| json!(n)),
        "[a-z_:0-9 ]{0,12}".prop_map(Value::String),
        Just(json!(V1)),
        Just(json!("2026-01-01T00:00:00.000Z")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("from".to_owned()),
                    Just("to".to_owned()),
                    Just("criteria".to_owned()),
                    Just("met".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parsers_never_panic(v in arb_json(), bytes in prop::collection::vec(any::<u8>(), 0..64), s in ".{0,30}") {
        for kind in Kind::ALL {
            let _ = Body::parse(kind, &v);
            let _ = Body::parse_json(kind, &bytes);
        }
        let _ = Timestamp::parse(&s);
    }

    #[test]
    fn mutated_examples_never_panic(i in 0usize..6, key in "[a-z_]{1,12}", v in arb_json()) {
        let (kind, body) = examples().swap_remove(i);
        let _ = Body::parse(kind, &edit(body, &format!("/{key}"), Some(v)));
    }

    #[test]
    fn timestamps_round_trip(ms in 0u64..=Timestamp::MAX.unix_millis()) {
        let t = Timestamp::from_unix_millis(ms).unwrap();
        let s = t.to_string();
        prop_assert_eq!(s.len(), 24);
        prop_assert_eq!(Timestamp::parse(&s), Ok(t));
    }
}

#[test]
fn hand_built_bodies_sign_and_parse() {
    use modeltrail::entry::{ContentHash, ModelName, RequestId};
    // As a client would build an inference entry: commitments computed
    // locally, raw data never in the body.
    let inf = Inference {
        model: ModelName::parse("fraud-detector").unwrap(),
        version_hash: ContentHash::parse(V1).unwrap(),
        request_id: RequestId::parse("req-1").unwrap(),
        served_at: Timestamp::from_unix_millis(1_772_323_200_123).unwrap(),
        input_commitment: ContentHash::of(b"{\"amount\": 12.5}").into(),
        output_commitment: ContentHash::of(b"{\"score\": 0.02}").into(),
        extensions: None,
    };
    inf.validate().unwrap();
    assert_eq!(
        inf.to_value()["served_at"],
        json!("2026-03-01T00:00:00.123Z")
    );
    let e = SignedEntry::sign(Inference::KIND, inf.to_value(), &key("serving", 4)).unwrap();
    assert_eq!(e.typed_body().unwrap(), Body::Inference(inf));

    // A hand-built approval that approves against a failed criterion is
    // caught by validate (and by parse on the way back in).
    let mut a = Approval::parse(&approval()).unwrap();
    a.criteria.get_mut("bias-audit").unwrap().met = false;
    assert!(a.validate().is_err());
    let e = SignedEntry::sign(Kind::Approval, a.to_value(), &key("approver", 5)).unwrap();
    assert_eq!(e.typed_body().unwrap_err().code(), "invalid_body");
}
