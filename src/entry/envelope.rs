//! The signed entry envelope (DESIGN "Entries"): parsing, signing and
//! signature verification of one leaf.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::bodies::Body;
use super::canonical::{parse_canonical, to_canonical};
use super::{ArtefactId, EntryError, Kind};
use crate::tlog::note::{KeyType, SignerKey, VerifierKey, verify_ed25519};

/// The largest entry, in bytes: the tlog-tiles entry bundle limit (a `u16`
/// length prefix).
pub const MAX_ENTRY_SIZE: usize = 65_535;

/// The domain-separation prefix of the signed message:
/// `modeltrail/entry/v1\n` + kind + `\n` + canonical(body).
pub const ENTRY_CONTEXT: &str = "modeltrail/entry/v1\n";

/// The members of the envelope, in canonical order.
const MEMBERS: [&str; 5] = ["body", "kind", "sig", "signer", "v"];

/// A verified signed entry: canonical, well-formed, and signed by its
/// `signer` (whether the signer is *authorised* is [`super::authorise`]'s
/// question). Holds the exact leaf bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEntry {
    bytes: Vec<u8>,
    id: ArtefactId,
    kind: Kind,
    signer: VerifierKey,
    body: Value,
    sig: [u8; 64],
}

/// An entry checked for everything [`SignedEntry::parse`] checks except its
/// signature: for an auditor that has authenticated the leaves against a
/// signed checkpoint and chooses not to pay ~36 µs per entry for the
/// signatures of bulk entries (`modeltrail audit --fast`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryEnvelope {
    /// The entry kind.
    pub kind: Kind,
    /// The key the entry names as its signer (type Ed25519), not verified.
    pub signer: VerifierKey,
    /// The body, always a JSON object.
    pub body: Value,
    /// The 64-byte signature, not verified.
    pub sig: [u8; 64],
}

impl EntryEnvelope {
    /// Parses one leaf as [`SignedEntry::parse_with_keys`] does, without
    /// verifying the signature.
    pub fn parse(
        bytes: &[u8],
        known: impl Fn(&str) -> Option<VerifierKey>,
    ) -> Result<EntryEnvelope, EntryError> {
        if bytes.len() > MAX_ENTRY_SIZE {
            return Err(EntryError::TooLarge {
                size: bytes.len(),
                max: MAX_ENTRY_SIZE,
            });
        }
        let Value::Object(mut m) = parse_canonical(bytes)? else {
            return Err(bad("an entry must be a JSON object"));
        };
        if let Some(extra) = m.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
            return Err(bad(format!(
                "unexpected member {extra:?}; an entry has exactly body, kind, sig, signer and v"
            )));
        }
        if let Some(missing) = MEMBERS.iter().find(|k| !m.contains_key(**k)) {
            return Err(bad(format!("missing member {missing:?}")));
        }
        if m["v"].as_u64() != Some(1) {
            // Canonical form: the member's own text is the canonical JSON.
            let v = String::from_utf8_lossy(&to_canonical(&m["v"])).into_owned();
            return Err(EntryError::UnsupportedVersion(v));
        }
        let kind = Kind::parse(take_str(&m, "kind")?)?;
        let Value::Object(_) = &m["body"] else {
            return Err(bad("member \"body\" must be a JSON object"));
        };
        let signer_text = take_str(&m, "signer")?;
        let signer = match known(signer_text) {
            Some(key) => key,
            None => VerifierKey::parse(signer_text).map_err(|e| EntryError::BadSigner {
                reason: e.to_string(),
            })?,
        };
        if signer.key_type() != KeyType::Ed25519 {
            return Err(EntryError::BadSigner {
                reason: format!(
                    "signer key is a {} key; entries are signed with Ed25519 (0x01) keys",
                    signer.key_type()
                ),
            });
        }
        let sig = BASE64
            .decode(take_str(&m, "sig")?)
            .ok()
            .and_then(|raw| <[u8; 64]>::try_from(raw).ok())
            .ok_or_else(|| bad("member \"sig\" must be standard base64 of 64 bytes"))?;
        let body = m.remove("body").unwrap_or(Value::Null);
        Ok(EntryEnvelope {
            kind,
            signer,
            body,
            sig,
        })
    }

    /// Verifies `sig` by `signer` over the kind and body (`verify_strict`).
    pub fn verify_signature(&self) -> Result<(), EntryError> {
        self.verify_signature_over(&to_canonical(&self.body))
    }

    /// [`EntryEnvelope::verify_signature`] given the body's canonical bytes.
    fn verify_signature_over(&self, canonical_body: &[u8]) -> Result<(), EntryError> {
        let msg = signed_message(self.kind, canonical_body);
        verify_ed25519(self.signer.public_key(), &msg, &self.sig).map_err(|_| {
            EntryError::BadSignature {
                signer: self.signer.to_string(),
            }
        })
    }

    /// The canonical bytes of the body inside `bytes`, the canonical entry
    /// this envelope was parsed from, found without serialising the body
    /// again: members are sorted, so a canonical entry is `{"body":` +
    /// canonical body + `,"kind":` …; `None` if `bytes` is not of that shape.
    fn canonical_body_in<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        const HEAD: &[u8] = b"{\"body\":";
        let rest = bytes.strip_prefix(HEAD)?;
        let end = object_end(rest)?;
        rest[end..]
            .starts_with(b",\"kind\":")
            .then_some(&rest[..end])
    }
}

/// The length of the JSON object at the start of `json`, which must be valid
/// JSON: the scan only tracks strings and nesting.
fn object_end(json: &[u8]) -> Option<usize> {
    if json.first() != Some(&b'{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in json.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The message `sig` covers.
fn signed_message(kind: Kind, canonical_body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(ENTRY_CONTEXT.len() + 16 + canonical_body.len());
    msg.extend_from_slice(ENTRY_CONTEXT.as_bytes());
    msg.extend_from_slice(kind.as_str().as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(canonical_body);
    msg
}

fn bad(what: impl Into<String>) -> EntryError {
    EntryError::BadEnvelope { what: what.into() }
}

fn take_str<'a>(m: &'a Map<String, Value>, name: &str) -> Result<&'a str, EntryError> {
    m[name]
        .as_str()
        .ok_or_else(|| bad(format!("member {name:?} must be a string")))
}

impl SignedEntry {
    /// Parses and verifies one leaf: size, canonical JSON, exactly the five
    /// envelope members, `v` 1, a known kind, an object body, an Ed25519
    /// signer vkey and a signature that verifies (`verify_strict`). Never
    /// panics; a fuzzing entry point.
    pub fn parse(bytes: &[u8]) -> Result<SignedEntry, EntryError> {
        SignedEntry::parse_with_keys(bytes, |_| None)
    }

    /// Like [`SignedEntry::parse`], taking the signer's parsed key from
    /// `known` (looked up by its exact vkey text) when it has it: parsing a
    /// vkey decompresses a curve point, a sizeable share of an entry's cost,
    /// and a log's signers are few and known in advance (the roster).
    pub fn parse_with_keys(
        bytes: &[u8],
        known: impl Fn(&str) -> Option<VerifierKey>,
    ) -> Result<SignedEntry, EntryError> {
        let envelope = EntryEnvelope::parse(bytes, known)?;
        match envelope.canonical_body_in(bytes) {
            Some(body) => {
                debug_assert_eq!(body, to_canonical(&envelope.body).as_slice());
                envelope.verify_signature_over(body)?;
            }
            None => envelope.verify_signature()?,
        }
        Ok(SignedEntry {
            bytes: bytes.to_vec(),
            id: ArtefactId::of(bytes),
            kind: envelope.kind,
            signer: envelope.signer,
            body: envelope.body,
            sig: envelope.sig,
        })
    }

    /// Signs `body` as an entry of `kind` with `key` and returns the entry
    /// with its canonical bytes. Fails if `key` is not an Ed25519 key, `body`
    /// is not an object, or the result would not be accepted by
    /// [`SignedEntry::parse`] (too large, numbers out of range, too deep):
    /// whatever this returns, `parse` accepts.
    pub fn sign(kind: Kind, body: Value, key: &SignerKey) -> Result<SignedEntry, EntryError> {
        if key.key_type() != KeyType::Ed25519 {
            return Err(EntryError::BadSigner {
                reason: format!(
                    "key {} is a {} key; entries are signed with Ed25519 (0x01) keys",
                    key.name(),
                    key.key_type()
                ),
            });
        }
        if !body.is_object() {
            return Err(bad("member \"body\" must be a JSON object"));
        }
        let sig = key.sign_raw(&signed_message(kind, &to_canonical(&body)));
        let envelope = json!({
            "body": body,
            "kind": kind.as_str(),
            "sig": BASE64.encode(sig),
            "signer": key.verifier().to_string(),
            "v": 1,
        });
        SignedEntry::parse(&to_canonical(&envelope))
    }

    /// The leaf bytes: exactly what is stored in the log and hashed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the entry, returning its leaf bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The artefact ID, `b3:` + BLAKE3 of [`SignedEntry::bytes`].
    pub fn id(&self) -> ArtefactId {
        self.id
    }

    /// The entry kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The key that signed the entry (verified, type Ed25519).
    pub fn signer(&self) -> &VerifierKey {
        &self.signer
    }

    /// The body, always a JSON object.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The body parsed and validated as its kind's typed body
    /// ([`Body::parse`]). [`SignedEntry::parse`] checks only the envelope and
    /// signature; call this where the body's schema matters.
    pub fn typed_body(&self) -> Result<Body, EntryError> {
        Body::parse(self.kind, &self.body)
    }

    /// The 64-byte Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, seed: u8) -> SignerKey {
        SignerKey::from_seed(name, KeyType::Ed25519, &[seed; 32]).unwrap()
    }

    fn envelope(entry: &SignedEntry) -> Map<String, Value> {
        serde_json::from_slice(entry.bytes()).unwrap()
    }

    fn reencode(m: Map<String, Value>) -> Vec<u8> {
        to_canonical(&Value::Object(m))
    }

    #[test]
    fn sign_parse_round_trip() {
        let k = key("registry", 7);
        let body = json!({"name": "fraud-detector", "z": [1, 2.5, null], "é": "ü"});
        let e = SignedEntry::sign(Kind::ModelCard, body.clone(), &k).unwrap();
        let again = SignedEntry::parse(e.bytes()).unwrap();
        assert_eq!(again, e);
        assert_eq!(e.kind(), Kind::ModelCard);
        assert_eq!(e.body(), &body);
        assert_eq!(e.signer(), &k.verifier());
        assert_eq!(e.id(), ArtefactId::of(e.bytes()));
        let text = std::str::from_utf8(e.bytes()).unwrap();
        assert!(text.starts_with("{\"body\":{\"name\":\"fraud-detector\",\"z\":[1,2.5,null],\"é\":\"ü\"},\"kind\":\"model_card\",\"sig\":\""));
        assert!(text.ends_with(&format!("\",\"signer\":\"{}\",\"v\":1}}", k.verifier())));
        // Ed25519 is deterministic: signing again gives the same leaf.
        let twice = SignedEntry::sign(Kind::ModelCard, body, &k).unwrap();
        assert_eq!(twice.id(), e.id());
    }

    #[test]
    fn signature_covers_kind_and_body() {
        let k = key("k", 1);
        let e = SignedEntry::sign(Kind::Approval, json!({"a": 1}), &k).unwrap();
        let mut m = envelope(&e);
        m.insert("kind".into(), json!("transition"));
        assert_eq!(
            SignedEntry::parse(&reencode(m)).unwrap_err().code(),
            "bad_signature"
        );
        let mut m = envelope(&e);
        m.insert("body".into(), json!({"a": 2}));
        assert_eq!(
            SignedEntry::parse(&reencode(m)).unwrap_err().code(),
            "bad_signature"
        );
    }

    #[test]
    fn sign_refuses() {
        let k = key("k", 1);
        let cosigner = SignerKey::from_seed("w", KeyType::CosignatureV1, &[1; 32]).unwrap();
        let err = SignedEntry::sign(Kind::Policy, json!({}), &cosigner).unwrap_err();
        assert_eq!(err.code(), "bad_signer");
        let err = SignedEntry::sign(Kind::Policy, json!([]), &k).unwrap_err();
        assert_eq!(err.code(), "bad_envelope");
        let err = SignedEntry::sign(Kind::Policy, json!({"n": 1u64 << 60}), &k).unwrap_err();
        assert_eq!(err.code(), "bad_json");
        let err = SignedEntry::sign(Kind::Policy, json!({"s": "x".repeat(MAX_ENTRY_SIZE)}), &k)
            .unwrap_err();
        assert_eq!(err.code(), "entry_too_large");
    }

    #[test]
    fn the_body_is_found_in_place_whatever_its_strings_hold() {
        let k = key("s", 7);
        let tricky = json!({
            "a": "} ] { [ \\\" ,\"kind\":",
            "b": [{"c": "\u{1}\u{7f}é"}, [], {}],
            "z": {"kind": "x"}
        });
        let entry = SignedEntry::sign(Kind::Inference, tricky.clone(), &k).unwrap();
        let envelope = EntryEnvelope::parse(entry.bytes(), |_| None).unwrap();
        assert_eq!(
            envelope.canonical_body_in(entry.bytes()),
            Some(to_canonical(&tricky).as_slice())
        );
        assert_eq!(object_end(b"{\"a\":\"}\"}x"), Some(9));
        assert_eq!(object_end(b"{\"a\":[}"), None);
        assert_eq!(object_end(b"[]"), None);
    }
}
