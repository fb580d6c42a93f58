//! Signed governance entries: the leaves of the log (DESIGN "Entries").
//!
//! A leaf is exactly the bytes a submitter sent: one [`SignedEntry`], in
//! RFC 8785 canonical JSON ([`canonical`]), at most [`MAX_ENTRY_SIZE`] bytes:
//!
//! ```text
//! {"body":{...},"kind":"approval","sig":"<base64 Ed25519>","signer":"<vkey>","v":1}
//! ```
//!
//! `sig` is an Ed25519 signature (checked with `verify_strict`) by `signer`
//! over `modeltrail/entry/v1\n` + kind + `\n` + canonical(body). The
//! [`ArtefactId`] of an entry is `b3:` + BLAKE3(leaf bytes).
//!
//! This module checks what can be checked of one entry alone: the encoding,
//! the envelope, the signature ([`SignedEntry::parse`]), the typed body of
//! each kind ([`Body::parse`], [`SignedEntry::typed_body`]; see [`bodies`])
//! and whether the signer may submit the kind under a
//! policy ([`authorise`]). The chain rules that need log state are the
//! sequencer's. Everything here is pure: no I/O, no async.

pub mod bodies;
pub mod canonical;
pub mod chain;
pub mod commitment;
mod envelope;
pub mod identifier;
pub mod policy;

use std::fmt;
use std::str::FromStr;

pub use bodies::{
    Approval, Body, BodyError, ContentHash, CriterionResult, Decision, Document, EvaluationResult,
    GitSha, Inference, ModelCard, ModelName, ModelVersion, RegistryRef, RequestId, Timestamp,
    Transition,
};
pub use commitment::{Commitment, Opening, OpeningsRecord, Side};
pub use envelope::{ENTRY_CONTEXT, EntryEnvelope, MAX_ENTRY_SIZE, SignedEntry};
pub use policy::{Criterion, PolicyBody, PolicyError, PolicySigner, Role};

use canonical::CanonicalError;

/// The kind of a governance entry: the five artefacts of the chain, plus the
/// policy they are judged by (DESIGN "Entries").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The criteria, signer roster and rules. Signed by an admin.
    Policy,
    /// A model card. Signed by a registry key.
    ModelCard,
    /// A model version hash, referencing its card. Signed by a registry key.
    ModelVersion,
    /// An approval or rejection of a version. Signed by an approver.
    Approval,
    /// An activation or rollback. Signed by an approver.
    Transition,
    /// Evidence of one inference served. Signed by a serving key.
    Inference,
}

impl Kind {
    /// Every kind, in chain order.
    pub const ALL: [Kind; 6] = [
        Kind::Policy,
        Kind::ModelCard,
        Kind::ModelVersion,
        Kind::Approval,
        Kind::Transition,
        Kind::Inference,
    ];

    /// The wire name, as in the entry's `kind` member.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Policy => "policy",
            Kind::ModelCard => "model_card",
            Kind::ModelVersion => "model_version",
            Kind::Approval => "approval",
            Kind::Transition => "transition",
            Kind::Inference => "inference",
        }
    }

    /// The kind with wire name `s` (exact, case-sensitive).
    pub fn parse(s: &str) -> Result<Kind, EntryError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| EntryError::UnknownKind(s.to_owned()))
    }

    /// The role a signer needs to submit entries of this kind.
    pub fn required_role(self) -> Role {
        match self {
            Kind::Policy => Role::Admin,
            Kind::ModelCard | Kind::ModelVersion => Role::Registry,
            Kind::Approval | Kind::Transition => Role::Approver,
            Kind::Inference => Role::Serving,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Kind, EntryError> {
        Kind::parse(s)
    }
}

/// The ID of an artefact: BLAKE3 of its leaf bytes, written `b3:` + 64
/// lowercase hex digits. Entries reference each other by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtefactId(pub [u8; 32]);

/// Why a string is not an [`ArtefactId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("artefact ID must be \"b3:\" followed by 64 lowercase hexadecimal digits")]
pub struct ArtefactIdError;

impl ArtefactId {
    /// The ID of the leaf `bytes`: their BLAKE3 hash.
    pub fn of(bytes: &[u8]) -> ArtefactId {
        ArtefactId(*blake3::hash(bytes).as_bytes())
    }

    /// Parses `b3:` + exactly 64 lowercase hex digits; nothing else.
    pub fn parse(s: &str) -> Result<ArtefactId, ArtefactIdError> {
        let hex = s.strip_prefix("b3:").ok_or(ArtefactIdError)?.as_bytes();
        if hex.len() != 64 {
            return Err(ArtefactIdError);
        }
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            _ => Err(ArtefactIdError),
        };
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Ok(ArtefactId(out))
    }
}

impl fmt::Display for ArtefactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = *b"b3:0000000000000000000000000000000000000000000000000000000000000000";
        for (i, b) in self.0.iter().enumerate() {
            text[3 + 2 * i] = HEX[usize::from(b >> 4)];
            text[4 + 2 * i] = HEX[usize::from(b & 0xf)];
        }
        f.write_str(std::str::from_utf8(&text).expect("ASCII"))
    }
}

impl fmt::Debug for ArtefactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtefactId({self})")
    }
}

impl FromStr for ArtefactId {
    type Err = ArtefactIdError;
    fn from_str(s: &str) -> Result<ArtefactId, ArtefactIdError> {
        ArtefactId::parse(s)
    }
}

impl serde::Serialize for ArtefactId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ArtefactId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ArtefactId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ArtefactId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Why an entry is refused. Each variant has a stable machine code
/// ([`EntryError::code`]) and an HTTP status class
/// ([`EntryError::http_status`]); the message is for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The entry is larger than [`MAX_ENTRY_SIZE`].
    #[error("entry is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The entry is not valid JSON (or not I-JSON: duplicate names, lone
    /// surrogates, numbers out of range).
    #[error("entry is not valid JSON: {0}")]
    BadJson(CanonicalError),
    /// The entry is valid JSON but not RFC 8785 canonical.
    #[error(
        "entry is not RFC 8785 canonical JSON: first difference at byte {offset} (sort keys by UTF-16, no white space, minimal escapes, ECMAScript numbers)"
    )]
    NotCanonical {
        /// First byte where the input differs from its canonical form.
        offset: usize,
    },
    /// The envelope does not have the required shape.
    #[error("invalid entry envelope: {what}")]
    BadEnvelope {
        /// What is wrong.
        what: String,
    },
    /// `v` is not 1.
    #[error("unsupported entry version {0}: this log accepts v 1")]
    UnsupportedVersion(String),
    /// `kind` is not one of the known kinds.
    #[error(
        "unknown entry kind {0:?}: want policy, model_card, model_version, approval, transition or inference"
    )]
    UnknownKind(String),
    /// `signer` is not a valid Ed25519 (type 0x01) vkey.
    #[error("invalid signer: {reason}")]
    BadSigner {
        /// What is wrong with the vkey.
        reason: String,
    },
    /// `sig` does not verify for `signer` over the kind and body.
    #[error("signature does not verify for signer {signer} over this kind and body")]
    BadSignature {
        /// The signer's vkey.
        signer: String,
    },
    /// The body does not satisfy its kind's schema.
    #[error("invalid {kind} body: {reason}")]
    InvalidBody {
        /// The entry kind.
        kind: Kind,
        /// What is wrong.
        reason: String,
    },
    /// The signer is not in the policy's roster.
    #[error("signer {signer} is not in the current policy's signer roster")]
    UnknownSigner {
        /// The signer's vkey.
        signer: String,
    },
    /// The signer is in the roster but lacks the role for this kind.
    #[error("signer {signer} may not submit {kind} entries: that needs the {role} role")]
    SignerNotAuthorised {
        /// The signer's vkey.
        signer: String,
        /// The entry kind.
        kind: Kind,
        /// The role the kind needs.
        role: Role,
    },
}

impl EntryError {
    /// A stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            EntryError::TooLarge { .. } => "entry_too_large",
            EntryError::BadJson(_) => "bad_json",
            EntryError::NotCanonical { .. } => "not_canonical_json",
            EntryError::BadEnvelope { .. } => "bad_envelope",
            EntryError::UnsupportedVersion(_) => "unsupported_entry_version",
            EntryError::UnknownKind(_) => "unknown_kind",
            EntryError::BadSigner { .. } => "bad_signer",
            EntryError::BadSignature { .. } => "bad_signature",
            EntryError::InvalidBody { .. } => "invalid_body",
            EntryError::UnknownSigner { .. } => "unknown_signer",
            EntryError::SignerNotAuthorised { .. } => "signer_not_authorised",
        }
    }

    /// The HTTP status this error is meant to map to: 413 too large, 400 bad
    /// encoding, 422 well-formed JSON with invalid content, 401 signer or
    /// signature not acceptable, 403 signer not authorised for the kind.
    pub fn http_status(&self) -> u16 {
        match self {
            EntryError::TooLarge { .. } => 413,
            EntryError::BadJson(_) | EntryError::NotCanonical { .. } => 400,
            EntryError::BadEnvelope { .. }
            | EntryError::UnsupportedVersion(_)
            | EntryError::UnknownKind(_)
            | EntryError::InvalidBody { .. } => 422,
            EntryError::BadSigner { .. }
            | EntryError::BadSignature { .. }
            | EntryError::UnknownSigner { .. } => 401,
            EntryError::SignerNotAuthorised { .. } => 403,
        }
    }
}

impl From<CanonicalError> for EntryError {
    fn from(e: CanonicalError) -> EntryError {
        match e {
            CanonicalError::NotCanonical { offset } => EntryError::NotCanonical { offset },
            other => EntryError::BadJson(other),
        }
    }
}

impl From<PolicyError> for EntryError {
    fn from(e: PolicyError) -> EntryError {
        EntryError::InvalidBody {
            kind: Kind::Policy,
            reason: e.to_string(),
        }
    }
}

/// Checks that `entry`'s signer may submit its kind under `policy`: the
/// signer's vkey must be in the roster ([`EntryError::UnknownSigner`]
/// otherwise) with the role [`Kind::required_role`] names
/// ([`EntryError::SignerNotAuthorised`] otherwise).
pub fn authorise(entry: &SignedEntry, policy: &PolicyBody) -> Result<(), EntryError> {
    authorise_signer(entry.signer(), entry.kind(), policy)
}

/// [`authorise`] for a signer and kind known apart from a verified entry
/// (an auditor replaying a log it has already authenticated).
pub fn authorise_signer(
    signer: &crate::tlog::note::VerifierKey,
    kind: Kind,
    policy: &PolicyBody,
) -> Result<(), EntryError> {
    let Some(member) = policy.signer(signer) else {
        return Err(EntryError::UnknownSigner {
            signer: signer.to_string(),
        });
    };
    let role = kind.required_role();
    if member.roles().contains(&role) {
        Ok(())
    } else {
        Err(EntryError::SignerNotAuthorised {
            signer: signer.to_string(),
            kind,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::note::{KeyType, SignerKey};
    use serde_json::json;

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Ok(k));
            assert_eq!(k.to_string().parse::<Kind>(), Ok(k));
        }
        for bad in ["", "Policy", "model-card", "modelcard", "policy "] {
            assert_eq!(Kind::parse(bad), Err(EntryError::UnknownKind(bad.into())));
        }
        assert_eq!(Kind::Policy.required_role(), Role::Admin);
        assert_eq!(Kind::ModelCard.required_role(), Role::Registry);
        assert_eq!(Kind::ModelVersion.required_role(), Role::Registry);
        assert_eq!(Kind::Approval.required_role(), Role::Approver);
        assert_eq!(Kind::Transition.required_role(), Role::Approver);
        assert_eq!(Kind::Inference.required_role(), Role::Serving);
    }

    #[test]
    fn artefact_id_known_answer() {
        let id = ArtefactId::of(b"abc");
        let want = "b3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
        assert_eq!(id.to_string(), want);
        assert_eq!(want.parse::<ArtefactId>(), Ok(id));
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::Value::String(want.into())
        );
        assert_eq!(
            serde_json::from_value::<ArtefactId>(json!(want)).unwrap(),
            id
        );
    }

    #[test]
    fn artefact_id_parse_is_strict() {
        let good = "b3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
        for bad in [
            "".to_owned(),
            good[3..].to_owned(),
            good.to_uppercase(),
            good.replace("b3:", "B3:"),
            good.replace("b3:", "b2:"),
            good.replacen('d', "D", 1),
            good[..good.len() - 1].to_owned(),
            format!("{good}0"),
            format!("{good}\n"),
            format!(" {good}"),
            good.replacen('6', "g", 1),
            good.replacen('6', "+", 1),
            "b3:".to_owned() + &"é".repeat(32),
        ] {
            assert_eq!(bad.parse::<ArtefactId>(), Err(ArtefactIdError), "{bad:?}");
        }
    }

    #[test]
    fn error_codes_and_statuses() {
        let e = EntryError::from(CanonicalError::NotCanonical { offset: 3 });
        assert_eq!((e.code(), e.http_status()), ("not_canonical_json", 400));
        let e = EntryError::from(CanonicalError::TrailingData { offset: 3 });
        assert_eq!((e.code(), e.http_status()), ("bad_json", 400));
        let e = EntryError::TooLarge { size: 1, max: 0 };
        assert_eq!((e.code(), e.http_status()), ("entry_too_large", 413));
    }

    fn key(name: &str, seed: u8) -> SignerKey {
        SignerKey::from_seed(name, KeyType::Ed25519, &[seed; 32]).unwrap()
    }

    #[test]
    fn authorise_by_role() {
        let admin = key("admin", 1);
        let approver = key("approver", 2);
        let stranger = key("stranger", 3);
        let policy = PolicyBody::parse(&json!({
            "approvals_required": 1,
            "criteria": [],
            "signers": [
                {"roles": ["admin"], "vkey": admin.verifier().to_string()},
                {"roles": ["approver"], "vkey": approver.verifier().to_string()},
            ],
        }))
        .unwrap();
        let entry = |k: &SignerKey, kind| SignedEntry::sign(kind, json!({}), k).unwrap();

        assert_eq!(authorise(&entry(&admin, Kind::Policy), &policy), Ok(()));
        assert_eq!(
            authorise(&entry(&approver, Kind::Approval), &policy),
            Ok(())
        );
        assert_eq!(
            authorise(&entry(&approver, Kind::Transition), &policy),
            Ok(())
        );
        let e = authorise(&entry(&admin, Kind::Approval), &policy).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("signer_not_authorised", 403));
        let e = authorise(&entry(&approver, Kind::Policy), &policy).unwrap_err();
        assert_eq!(e.code(), "signer_not_authorised");
        let e = authorise(&entry(&stranger, Kind::Approval), &policy).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("unknown_signer", 401));
        // Same public key, different name: not the rostered vkey.
        let renamed = SignerKey::from_seed("admin2", KeyType::Ed25519, &[1; 32]).unwrap();
        let e = authorise(&entry(&renamed, Kind::Policy), &policy).unwrap_err();
        assert_eq!(e.code(), "unknown_signer");
    }
}
