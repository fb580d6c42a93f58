//! The chain rules as pure decisions (DESIGN "Entries", chain rules), shared
//! by the log's sequencer (`log::rules`, which refuses a break) and the
//! auditor (`audit`, which reports one found in a log).
//!
//! Each function takes the facts the rule needs — looked up by the caller in
//! its own state (the log's index, the auditor's in-memory replay) — and
//! answers the [`Break`] the entry would make, with the same code and message
//! in both places.

use std::collections::BTreeMap;

use super::{
    Approval, ArtefactId, Body, ContentHash, Inference, Kind, ModelVersion, PolicyBody, Transition,
};
use crate::tlog::note::VerifierKey;

/// A chain rule an entry breaks: a stable machine code, the HTTP status the
/// log refuses it with, and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Stable machine code, e.g. `insufficient_approvals`.
    pub code: &'static str,
    /// The status the log answers when it refuses the entry.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

impl Break {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Break {
        Break {
            code,
            status,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Every identifier of the body holds only the characters
/// [`super::identifier`] allows: 422 `invalid_identifier`, naming the field
/// and the code point.
pub fn check_identifiers(body: &Body) -> Result<(), Break> {
    super::identifier::check_body(body)
        .map_err(|e| Break::new(422, "invalid_identifier", e.to_string()))
}

/// A policy's roster holds no weak (small-order) Ed25519 key: 422
/// `invalid_policy`. `verify_strict` refuses signatures by such a key, but a
/// less strict verifier reading the same log would accept one signature
/// for many messages.
pub fn check_policy_keys(policy: &PolicyBody) -> Result<(), Break> {
    match policy.weak_keys().next() {
        Some(weak) => Err(Break::new(
            422,
            "invalid_policy",
            format!(
                "signer {weak} has a weak Ed25519 public key (a point of small order); a roster key must be a real public key"
            ),
        )),
        None => Ok(()),
    }
}

/// A version needs a logged card (`card_model`: the model of the card it
/// names, if that card is logged) of the same model.
pub fn check_version_card(version: &ModelVersion, card_model: Option<&str>) -> Result<(), Break> {
    let model = version.model.as_str();
    match card_model {
        None => Err(Break::new(
            409,
            "unknown_card",
            format!("no model card {} is logged", version.card),
        )),
        Some(card_model) if card_model != model => Err(Break::new(
            422,
            "card_model_mismatch",
            format!(
                "card {} is for model {card_model:?}, not {model:?}",
                version.card
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// A version hash is registered once (`existing`: the model it is already
/// registered for, if it is).
pub fn check_version_new(version: &ModelVersion, existing: Option<&str>) -> Result<(), Break> {
    match existing {
        Some(existing) => Err(Break::new(
            409,
            "version_exists",
            format!(
                "version {} is already registered (model {existing:?})",
                version.version_hash
            ),
        )),
        None => Ok(()),
    }
}

/// An approval needs a registered version, names the policy in force
/// (`policy_id`, logged at `policy_index`) and states exactly its criteria.
pub fn check_approval(
    approval: &Approval,
    version_registered: bool,
    policy_id: ArtefactId,
    policy_index: u64,
    policy: &PolicyBody,
) -> Result<(), Break> {
    if !version_registered {
        return Err(Break::new(
            409,
            "unknown_version",
            format!("version {} is not registered", approval.version_hash),
        ));
    }
    if approval.policy != policy_id {
        return Err(Break::new(
            409,
            "stale_policy",
            format!(
                "the approval names policy {} but {policy_id} (entry {policy_index}) is in force",
                approval.policy
            ),
        ));
    }
    check_criteria(&approval.criteria, policy)
}

/// The criteria an approval states are exactly `policy`'s.
pub fn check_criteria<V>(stated: &BTreeMap<String, V>, policy: &PolicyBody) -> Result<(), Break> {
    let wanted: Vec<&str> = policy.criteria().iter().map(|c| c.id.as_str()).collect();
    if let Some(missing) = wanted.iter().find(|id| !stated.contains_key(**id)) {
        return Err(Break::new(
            422,
            "criteria_incomplete",
            format!("the approval does not state criterion {missing:?} of the policy in force"),
        ));
    }
    if let Some(extra) = stated.keys().find(|id| !wanted.contains(&id.as_str())) {
        return Err(Break::new(
            422,
            "unknown_criterion",
            format!("criterion {extra:?} is not in the policy in force"),
        ));
    }
    Ok(())
}

/// A transition's `to` is a registered version (`to_model`: its model, if
/// registered) of the transition's model.
pub fn check_transition_target(
    transition: &Transition,
    to_model: Option<&str>,
) -> Result<(), Break> {
    let model = transition.model.as_str();
    match to_model {
        None => Err(Break::new(
            409,
            "unknown_version",
            format!("version {} is not registered", transition.to),
        )),
        Some(owner) if owner != model => Err(Break::new(
            422,
            "version_model_mismatch",
            format!(
                "version {} is a version of {owner:?}, not {model:?}",
                transition.to
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// A transition's `from` is the model's active version (`active`: the version
/// and its `at` in Unix ms) and its `at` is not before the previous one's.
pub fn check_transition_from(
    transition: &Transition,
    active: Option<(ContentHash, u64)>,
) -> Result<(), Break> {
    let model = transition.model.as_str();
    if active.map(|(v, _)| v) != transition.from {
        let current = active.map_or("none".to_owned(), |(v, _)| v.to_string());
        return Err(Break::new(
            409,
            "stale_transition",
            format!(
                "the transition's from is {} but the active version of {model:?} is {current}",
                transition.from.map_or("null".to_owned(), |v| v.to_string())
            ),
        ));
    }
    if let Some((_, previous)) = active
        && transition.at.unix_millis() < previous
    {
        return Err(Break::new(
            422,
            "transition_time",
            format!("at is before the previous transition of {model:?}"),
        ));
    }
    Ok(())
}

/// The distinct signers, approvers under `policy`, whose latest decision is
/// approve (`latest`: each signer's vkey text and latest decision), sorted.
pub fn approving_signers<'a>(
    latest: impl IntoIterator<Item = (&'a str, bool)>,
    policy: &PolicyBody,
) -> Vec<String> {
    let mut approvers: Vec<String> = latest
        .into_iter()
        .filter(|(signer, approve)| {
            *approve
                && VerifierKey::parse(signer).is_ok_and(|key| policy.allows(&key, Kind::Approval))
        })
        .map(|(signer, _)| signer.to_owned())
        .collect();
    approvers.sort();
    approvers.dedup();
    approvers
}

/// A transition's `to` has at least the approvals `policy` requires
/// (`approvers`: the count [`approving_signers`] gives).
pub fn check_transition_approvals(
    transition: &Transition,
    approvers: usize,
    policy: &PolicyBody,
) -> Result<(), Break> {
    let required = policy.approvals_required() as usize;
    if approvers < required {
        return Err(Break::new(
            409,
            "insufficient_approvals",
            format!(
                "version {} has {approvers} of the {required} approvals the policy requires",
                transition.to
            ),
        ));
    }
    Ok(())
}

/// What is irregular about an inference — it is logged anyway, as evidence:
/// its version is unregistered (`version_model`: the model it is registered
/// for) or registered for another model, or it is not the model's active
/// version (`active`).
pub fn inference_flags(
    inference: &Inference,
    version_model: Option<&str>,
    active: Option<ContentHash>,
) -> Vec<Break> {
    let model = inference.model.as_str();
    let version = inference.version_hash;
    let mut flags = Vec::new();
    match version_model {
        None => flags.push(Break::new(
            200,
            "unknown_version",
            format!("version {version} is not registered"),
        )),
        Some(owner) if owner != model => flags.push(Break::new(
            200,
            "version_model_mismatch",
            format!("version {version} is a version of {owner:?}, not {model:?}"),
        )),
        Some(_) => {}
    }
    match active {
        Some(active) if active == version => {}
        Some(active) => flags.push(Break::new(
            200,
            "inactive_version",
            format!("version {version} is not the active version of {model:?} (active: {active})"),
        )),
        None => flags.push(Break::new(
            200,
            "no_active_version",
            format!("{model:?} has no active version"),
        )),
    }
    flags
}
