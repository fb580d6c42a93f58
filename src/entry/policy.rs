//! The body of a `policy` entry (DESIGN "Entries"): the approval criteria,
//! the signer roster with roles, and the number of approvals a version needs.
//!
//! ```text
//! {"approvals_required": 2,
//!  "criteria": [{"description": "...", "id": "evaluation-reviewed"}],
//!  "extensions": {...},                                   (optional)
//!  "signers": [{"roles": ["admin"], "vkey": "<vkey>"}]}
//! ```
//!
//! Unknown members are refused everywhere except inside `extensions`, a
//! free-form object for deployment-specific rules. Validation: at least one
//! approval required; criterion IDs non-empty and unique; signer vkeys of type
//! Ed25519 (0x01), unique by public key and by (name, key ID); each signer has
//! at least one role and no role twice; at least one admin, so the policy can
//! always be replaced. An empty criteria list is allowed (approvals are then
//! plain sign-offs).

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tlog::note::{KeyType, VerifierKey};

/// What a signer may do; each entry kind needs one role
/// ([`super::Kind::required_role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs `policy` entries.
    Admin,
    /// Signs `model_card` and `model_version` entries.
    Registry,
    /// Signs `approval` and `transition` entries.
    Approver,
    /// Signs `inference` entries.
    Serving,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Registry => "registry",
            Role::Approver => "approver",
            Role::Serving => "serving",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One approval criterion: every approval reports a result for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// What the approver checks.
    pub description: String,
    /// A stable identifier, unique within the policy.
    pub id: String,
}

/// One member of the signer roster: a key and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySigner {
    vkey: VerifierKey,
    /// `vkey` as text, to match entries' `signer` members without parsing them.
    vkey_text: String,
    roles: Vec<Role>,
}

impl PolicySigner {
    /// The signer's key.
    pub fn vkey(&self) -> &VerifierKey {
        &self.vkey
    }

    /// The signer's roles, in policy order.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }
}

/// Why a policy body is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The body does not match the schema (missing, unknown or mistyped member).
    #[error("{0}")]
    Schema(String),
    /// `approvals_required` is 0.
    #[error("approvals_required must be at least 1")]
    NoApprovalsRequired,
    /// A criterion has an empty ID.
    #[error("criterion {index} has an empty id")]
    EmptyCriterionId {
        /// 0-based position in `criteria`.
        index: usize,
    },
    /// Two criteria share an ID.
    #[error("criterion id {0:?} appears more than once")]
    DuplicateCriterion(String),
    /// A roster vkey does not parse.
    #[error("signer {index}: invalid vkey: {reason}")]
    BadVkey {
        /// 0-based position in `signers`.
        index: usize,
        /// Why it does not parse.
        reason: String,
    },
    /// A roster key is not an Ed25519 (0x01) key.
    #[error("signer {index}: {vkey} is not an Ed25519 (0x01) key; entries are signed with Ed25519")]
    WrongKeyType {
        /// 0-based position in `signers`.
        index: usize,
        /// The key.
        vkey: String,
    },
    /// Two roster entries share a public key, or a name and key ID.
    #[error("signer {vkey} appears more than once (same public key, or same name and key ID)")]
    DuplicateSigner {
        /// The repeated key.
        vkey: String,
    },
    /// A signer has no roles.
    #[error("signer {vkey} has no roles")]
    NoRoles {
        /// The key.
        vkey: String,
    },
    /// A signer lists a role twice.
    #[error("signer {vkey} lists role {role} more than once")]
    DuplicateRole {
        /// The key.
        vkey: String,
        /// The repeated role.
        role: Role,
    },
    /// No signer has the admin role, so the policy could never be changed.
    #[error("the roster has no admin, so the policy could never be replaced")]
    NoAdmin,
}

/// The wire form, before validation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    approvals_required: u32,
    criteria: Vec<Criterion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extensions: Option<Map<String, Value>>,
    signers: Vec<RawSigner>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigner {
    roles: Vec<Role>,
    vkey: String,
}

/// A validated policy body. See the module docs for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyBody {
    approvals_required: u32,
    criteria: Vec<Criterion>,
    signers: Vec<PolicySigner>,
    extensions: Option<Map<String, Value>>,
}

/// The criterion of [`PolicyBody::initial`].
pub const INITIAL_CRITERION_ID: &str = "evaluation-reviewed";

impl PolicyBody {
    /// Parses and validates a policy body.
    pub fn parse(body: &Value) -> Result<PolicyBody, PolicyError> {
        let raw = RawPolicy::deserialize(body).map_err(|e| PolicyError::Schema(e.to_string()))?;
        PolicyBody::validate(raw)
    }

    fn validate(raw: RawPolicy) -> Result<PolicyBody, PolicyError> {
        if raw.approvals_required == 0 {
            return Err(PolicyError::NoApprovalsRequired);
        }
        let mut ids = HashSet::new();
        for (index, c) in raw.criteria.iter().enumerate() {
            if c.id.is_empty() {
                return Err(PolicyError::EmptyCriterionId { index });
            }
            if !ids.insert(c.id.as_str()) {
                return Err(PolicyError::DuplicateCriterion(c.id.clone()));
            }
        }
        let mut publics = HashSet::new();
        let mut names = HashSet::new();
        let mut signers = Vec::with_capacity(raw.signers.len());
        for (index, s) in raw.signers.into_iter().enumerate() {
            let vkey = VerifierKey::parse(&s.vkey).map_err(|e| PolicyError::BadVkey {
                index,
                reason: e.to_string(),
            })?;
            if vkey.key_type() != KeyType::Ed25519 {
                return Err(PolicyError::WrongKeyType {
                    index,
                    vkey: s.vkey,
                });
            }
            if !publics.insert(*vkey.public_key().as_bytes())
                || !names.insert((vkey.name().to_owned(), vkey.key_id()))
            {
                return Err(PolicyError::DuplicateSigner { vkey: s.vkey });
            }
            if s.roles.is_empty() {
                return Err(PolicyError::NoRoles { vkey: s.vkey });
            }
            let mut seen = HashSet::new();
            if let Some(&role) = s.roles.iter().find(|r| !seen.insert(**r)) {
                return Err(PolicyError::DuplicateRole { vkey: s.vkey, role });
            }
            signers.push(PolicySigner {
                vkey_text: vkey.to_string(),
                vkey,
                roles: s.roles,
            });
        }
        if !signers.iter().any(|s| s.roles.contains(&Role::Admin)) {
            return Err(PolicyError::NoAdmin);
        }
        Ok(PolicyBody {
            approvals_required: raw.approvals_required,
            criteria: raw.criteria,
            signers,
            extensions: raw.extensions,
        })
    }

    /// The policy `init` writes as the log's first entry: `admin` as the only
    /// signer, with the admin role only (separation of duties: the admin must
    /// publish a new policy naming registry, approver and serving keys before
    /// anything else can be logged); one criterion,
    /// [`INITIAL_CRITERION_ID`]; one approval required. Fails if `admin` is
    /// not an Ed25519 key.
    pub fn initial(admin: &VerifierKey) -> Result<PolicyBody, PolicyError> {
        PolicyBody::validate(RawPolicy {
            approvals_required: 1,
            criteria: vec![Criterion {
                description: "The model's evaluation results were reviewed against its intended use and known limitations.".to_owned(),
                id: INITIAL_CRITERION_ID.to_owned(),
            }],
            extensions: None,
            signers: vec![RawSigner {
                roles: vec![Role::Admin],
                vkey: admin.to_string(),
            }],
        })
    }

    /// The body as JSON, for signing; [`PolicyBody::parse`] reads it back.
    pub fn to_value(&self) -> Value {
        let raw = RawPolicy {
            approvals_required: self.approvals_required,
            criteria: self.criteria.clone(),
            extensions: self.extensions.clone(),
            signers: self
                .signers
                .iter()
                .map(|s| RawSigner {
                    roles: s.roles.clone(),
                    vkey: s.vkey.to_string(),
                })
                .collect(),
        };
        // Plain structs of strings, integers and maps always serialise.
        serde_json::to_value(raw).unwrap_or(Value::Null)
    }

    /// How many distinct approvals a version needs before activation.
    pub fn approvals_required(&self) -> u32 {
        self.approvals_required
    }

    /// The approval criteria, in policy order.
    pub fn criteria(&self) -> &[Criterion] {
        &self.criteria
    }

    /// The signer roster, in policy order.
    pub fn signers(&self) -> &[PolicySigner] {
        &self.signers
    }

    /// The roster's weak keys: Ed25519 public keys of small order, under
    /// which one signature verifies for many messages with a lenient
    /// verifier. Parsing accepts them (a log written before the rule still
    /// reads); the sequencer refuses a policy naming one and the auditor
    /// reports it (see [`super::chain::check_policy_keys`]).
    pub fn weak_keys(&self) -> impl Iterator<Item = &VerifierKey> {
        self.signers
            .iter()
            .map(|s| &s.vkey)
            .filter(|k| k.public_key().is_weak())
    }

    /// The free-form `extensions` object, if present.
    pub fn extensions(&self) -> Option<&Map<String, Value>> {
        self.extensions.as_ref()
    }

    /// The rostered key whose vkey text is exactly `vkey`, without parsing it.
    pub fn rostered_key(&self, vkey: &str) -> Option<&VerifierKey> {
        self.signers
            .iter()
            .find(|s| s.vkey_text == vkey)
            .map(|s| &s.vkey)
    }

    /// The roster member whose vkey is exactly `key` (name, key ID and public
    /// key), if any. A key rostered under another name does not match, so
    /// the name shown in a leaf is always the rostered one.
    pub fn signer(&self, key: &VerifierKey) -> Option<&PolicySigner> {
        self.signers.iter().find(|s| s.vkey == *key)
    }

    /// The roles of `key`; empty if it is not in the roster.
    pub fn roles_of(&self, key: &VerifierKey) -> &[Role] {
        self.signer(key).map_or(&[], |s| &s.roles)
    }

    /// Whether `key` may sign entries of `kind` under this policy.
    pub fn allows(&self, key: &VerifierKey, kind: super::Kind) -> bool {
        self.roles_of(key).contains(&kind.required_role())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Kind;
    use crate::tlog::note::SignerKey;
    use serde_json::json;

    fn vkey(name: &str, seed: u8) -> String {
        SignerKey::from_seed(name, KeyType::Ed25519, &[seed; 32])
            .unwrap()
            .verifier()
            .to_string()
    }

    fn base() -> Value {
        json!({
            "approvals_required": 2,
            "criteria": [
                {"description": "Evaluation reviewed", "id": "eval"},
                {"description": "Bias audit", "id": "bias"},
            ],
            "signers": [
                {"roles": ["admin"], "vkey": vkey("admin", 1)},
                {"roles": ["registry", "serving"], "vkey": vkey("ops", 2)},
                {"roles": ["approver"], "vkey": vkey("alice", 3)},
            ],
        })
    }

    fn with(path: &str, v: Value) -> Value {
        let mut b = base();
        *b.pointer_mut(path).unwrap() = v;
        b
    }

    #[test]
    fn valid_policy_round_trips() {
        let p = PolicyBody::parse(&base()).unwrap();
        assert_eq!(p.approvals_required(), 2);
        assert_eq!(p.criteria().len(), 2);
        assert_eq!(p.to_value(), base());
        let ops = VerifierKey::parse(&vkey("ops", 2)).unwrap();
        assert_eq!(p.roles_of(&ops), &[Role::Registry, Role::Serving]);
        assert!(p.allows(&ops, Kind::ModelCard));
        assert!(p.allows(&ops, Kind::Inference));
        assert!(!p.allows(&ops, Kind::Approval));
        let stranger = VerifierKey::parse(&vkey("x", 9)).unwrap();
        assert!(p.roles_of(&stranger).is_empty());

        let mut b = base();
        b["extensions"] = json!({"anything": {"goes": [1]}});
        let p = PolicyBody::parse(&b).unwrap();
        assert_eq!(p.to_value(), b);
        let mut b = base();
        b["criteria"] = json!([]);
        assert!(PolicyBody::parse(&b).is_ok());
    }

    #[test]
    fn initial_policy() {
        let admin = VerifierKey::parse(&vkey("admin", 1)).unwrap();
        let p = PolicyBody::initial(&admin).unwrap();
        assert_eq!(p.approvals_required(), 1);
        assert_eq!(p.criteria()[0].id, INITIAL_CRITERION_ID);
        assert_eq!(p.roles_of(&admin), &[Role::Admin]);
        assert_eq!(PolicyBody::parse(&p.to_value()).unwrap(), p);
        let w = SignerKey::from_seed("w", KeyType::CosignatureV1, &[1; 32]).unwrap();
        assert!(matches!(
            PolicyBody::initial(&w.verifier()),
            Err(PolicyError::WrongKeyType { .. })
        ));
    }

    #[test]
    fn invalid_policies() {
        let err = |v: Value| PolicyBody::parse(&v).unwrap_err();
        let schema = |v: Value| matches!(err(v), PolicyError::Schema(_));

        assert_eq!(
            err(with("/approvals_required", json!(0))),
            PolicyError::NoApprovalsRequired
        );
        assert!(schema(with("/approvals_required", json!(-1))));
        assert!(schema(with("/approvals_required", json!(1.5))));
        assert!(schema(with("/approvals_required", json!(1u64 << 32))));
        assert!(schema(with("/approvals_required", json!("1"))));
        assert!(schema(json!([])));
        let mut b = base();
        b.as_object_mut().unwrap().remove("signers");
        assert!(schema(b));
        let mut b = base();
        b["rules"] = json!({});
        assert!(schema(b));
        let mut b = base();
        b["extensions"] = json!([]);
        assert!(schema(b));
        let mut b = base();
        b["criteria"][0]["extra"] = json!(1);
        assert!(schema(b));
        let mut b = base();
        b["signers"][0]["extra"] = json!(1);
        assert!(schema(b));
        assert!(schema(with("/signers/0/roles/0", json!("root"))));
        assert!(schema(with("/signers/0/roles/0", json!("Admin"))));

        assert_eq!(
            err(with("/criteria/1/id", json!(""))),
            PolicyError::EmptyCriterionId { index: 1 }
        );
        assert_eq!(
            err(with("/criteria/1/id", json!("eval"))),
            PolicyError::DuplicateCriterion("eval".into())
        );
        assert!(matches!(
            err(with("/signers/1/vkey", json!("not a key"))),
            PolicyError::BadVkey { index: 1, .. }
        ));
        let cosigner = SignerKey::from_seed("w", KeyType::CosignatureV1, &[5; 32])
            .unwrap()
            .verifier()
            .to_string();
        assert!(matches!(
            err(with("/signers/1/vkey", json!(cosigner))),
            PolicyError::WrongKeyType { index: 1, .. }
        ));
        // Same public key under another name.
        assert!(matches!(
            err(with("/signers/2/vkey", json!(vkey("bob", 2)))),
            PolicyError::DuplicateSigner { .. }
        ));
        assert!(matches!(
            err(with("/signers/2/vkey", json!(vkey("ops", 2)))),
            PolicyError::DuplicateSigner { .. }
        ));
        assert!(matches!(
            err(with("/signers/1/roles", json!([]))),
            PolicyError::NoRoles { .. }
        ));
        assert!(matches!(
            err(with(
                "/signers/1/roles",
                json!(["serving", "registry", "serving"])
            )),
            PolicyError::DuplicateRole {
                role: Role::Serving,
                ..
            }
        ));
        assert_eq!(
            err(with("/signers/0/roles", json!(["approver"]))),
            PolicyError::NoAdmin
        );
        assert_eq!(err(with("/signers", json!([]))), PolicyError::NoAdmin);

        let e = crate::entry::EntryError::from(PolicyError::NoAdmin);
        assert_eq!((e.code(), e.http_status()), ("invalid_body", 422));
    }
}
