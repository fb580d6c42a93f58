//! Offline verification of an evidence file ([`super::evidence`]) under the
//! auditor's tlog-policy. No network, no clock, no runtime: this is the path
//! that will run in a browser.
//!
//! 1. The checkpoint: signed by a log of the policy, every known signature
//!    valid, the witness quorum met (c2sp.org/tlog-policy).
//! 2. Every entry: its tlog-proof's checkpoint is exactly that checkpoint,
//!    its index is the entry's, and the inclusion proof of the entry's leaf
//!    hash verifies against the checkpoint's root (RFC 9162 §2.1.3.2).
//! 3. Every entry parses, its signature verifies, its kind fits its role, and
//!    its signer holds its kind's role under the policy in force at its index
//!    (the newest policy entry of the evidence logged before it; the log's
//!    first policy authorises itself).
//! 4. The chain: the inference names the version; the version names the card
//!    of its model; each approval names the version and a policy entry of the
//!    evidence whose criteria it states exactly; the approvers who approved
//!    before the transition in effect meet that transition's policy; the
//!    transition made the version active at or before the queried time and
//!    the next transition (if any) follows it after that time.
//!
//! What the evidence cannot prove: that no policy update was logged between
//! a policy entry it holds and an entry judged under it, nor that no other
//! transition was logged between `transition` and `next-transition` (though
//! the next one's `from` must be this one's `to`). `modeltrail audit`
//! replays the whole log and settles both.

use std::collections::BTreeMap;

use super::evidence::{Evidence, Query, Role};
use crate::entry::{
    Approval, ArtefactId, Body, ContentHash, Decision, Inference, Kind, ModelCard, ModelVersion,
    PolicyBody, SignedEntry, Timestamp, Transition, authorise, chain,
};
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::hash::leaf_hash;
use crate::tlog::policy::Policy;
use crate::tlog::proof::verify_inclusion;
use crate::tlog::tlog_proof::TlogProof;

/// Why evidence does not prove its answer: each names exactly what failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The checkpoint does not satisfy the policy.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::tlog::policy::PolicyError),
    /// One entry fails on its own (proof, signature, role, kind).
    #[error("entry {index} ({role}): {what}")]
    Entry {
        /// Its leaf index.
        index: u64,
        /// Its role.
        role: Role,
        /// What failed.
        what: String,
    },
    /// A piece the answer needs is not in the evidence.
    #[error("missing piece: {0}")]
    Missing(String),
    /// The entries do not fit together as the chain rules require.
    #[error("chain: {0}")]
    Chain(String),
}

/// One verified entry.
struct Verified {
    index: u64,
    role: Role,
    entry: SignedEntry,
    body: Body,
}

/// What the evidence proves: the checkpoint and a plain-language answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The checkpoint everything was proven against.
    pub checkpoint: Checkpoint,
    /// The answer, in sentences.
    pub text: String,
}

/// Verifies `evidence` under `policy` (module docs) and answers its question.
pub fn verify(evidence: &Evidence, policy: &Policy) -> Result<Answer, VerifyError> {
    let checkpoint = policy.verify_checkpoint(&evidence.checkpoint)?;
    let items = evidence
        .items
        .iter()
        .map(|item| verify_item(item, evidence, &checkpoint))
        .collect::<Result<Vec<_>, _>>()?;
    let chain = Chain::new(&items)?;
    let text = match &evidence.query {
        Query::Inference(rid) => chain.inference(rid.as_str())?,
        Query::Version(hash) => chain.version_answer(hash)?,
        Query::Model { at, model } => chain.model(*at, model)?,
    };
    Ok(Answer { checkpoint, text })
}

/// Checks one entry's proof, signature and kind.
fn verify_item(
    item: &super::evidence::Item,
    evidence: &Evidence,
    checkpoint: &Checkpoint,
) -> Result<Verified, VerifyError> {
    let fail = |what: String| VerifyError::Entry {
        index: item.index,
        role: item.role,
        what,
    };
    let proof = TlogProof::parse(&item.proof).map_err(|e| fail(e.to_string()))?;
    if proof.checkpoint != evidence.checkpoint {
        return Err(fail(
            "its tlog-proof is against another checkpoint than the evidence's".into(),
        ));
    }
    if proof.index != item.index {
        return Err(fail(format!(
            "its tlog-proof is for index {}, not {}",
            proof.index, item.index
        )));
    }
    verify_inclusion(
        &leaf_hash(&item.entry),
        item.index,
        checkpoint.size,
        &proof.proof,
        &checkpoint.root,
    )
    .map_err(|e| {
        fail(format!(
            "inclusion proof in the tree of size {}: {e}",
            checkpoint.size
        ))
    })?;
    let entry = SignedEntry::parse(&item.entry).map_err(|e| fail(e.to_string()))?;
    let body = entry.typed_body().map_err(|e| fail(e.to_string()))?;
    let want = match item.role {
        Role::Inference => Kind::Inference,
        Role::Version => Kind::ModelVersion,
        Role::Card => Kind::ModelCard,
        Role::Approval => Kind::Approval,
        Role::Transition | Role::NextTransition => Kind::Transition,
        Role::Policy => Kind::Policy,
    };
    if entry.kind() != want {
        return Err(fail(format!(
            "it is a {} entry, not a {want} entry",
            entry.kind()
        )));
    }
    Ok(Verified {
        index: item.index,
        role: item.role,
        entry,
        body,
    })
}

/// The verified entries, by role, with the policies by index.
struct Chain<'a> {
    items: &'a [Verified],
    /// Policy entries by leaf index.
    policies: BTreeMap<u64, (ArtefactId, &'a PolicyBody)>,
}

impl<'a> Chain<'a> {
    /// Indexes the policies and checks every signer's role.
    fn new(items: &'a [Verified]) -> Result<Chain<'a>, VerifyError> {
        let mut policies = BTreeMap::new();
        for v in items {
            if let Body::Policy(p) = &v.body {
                policies.insert(v.index, (v.entry.id(), p));
            }
        }
        let chain = Chain { items, policies };
        for v in items {
            let (policy_index, policy) = chain.policy_for(v)?;
            authorise(&v.entry, policy).map_err(|e| VerifyError::Entry {
                index: v.index,
                role: v.role,
                what: format!("under the policy in force (entry {policy_index}): {e}"),
            })?;
        }
        Ok(chain)
    }

    /// The policy in force at `index`: the newest policy entry before it.
    fn policy_at(&self, index: u64) -> Option<(u64, ArtefactId, &'a PolicyBody)> {
        self.policies
            .range(..index)
            .next_back()
            .map(|(i, (id, p))| (*i, *id, *p))
    }

    /// The policy that judges `v`'s signer (the log's first policy judges itself).
    fn policy_for(&self, v: &Verified) -> Result<(u64, &'a PolicyBody), VerifyError> {
        if let Some((index, _, p)) = self.policy_at(v.index) {
            return Ok((index, p));
        }
        match (&v.body, v.index) {
            (Body::Policy(_), 0) => Ok((0, self.policies[&0].1)),
            _ => Err(VerifyError::Missing(format!(
                "no policy entry logged before entry {} ({}), so its signer cannot be checked",
                v.index, v.role
            ))),
        }
    }

    fn with_role(&self, role: Role) -> impl Iterator<Item = &'a Verified> + 'a {
        self.items.iter().filter(move |v| v.role == role)
    }

    /// The one entry of `role`; missing or repeated is an error.
    fn one(&self, role: Role) -> Result<&'a Verified, VerifyError> {
        let mut found = self.with_role(role);
        let first = found
            .next()
            .ok_or_else(|| VerifyError::Missing(format!("no {role} entry")))?;
        if let Some(second) = found.next() {
            return Err(VerifyError::Chain(format!(
                "more than one {role} entry (entries {} and {})",
                first.index, second.index
            )));
        }
        Ok(first)
    }

    fn optional(&self, role: Role) -> Result<Option<&'a Verified>, VerifyError> {
        match self.with_role(role).count() {
            0 => Ok(None),
            _ => self.one(role).map(Some),
        }
    }

    /// The answer to "which version served request `rid`?".
    fn inference(&self, rid: &str) -> Result<String, VerifyError> {
        let v = self.one(Role::Inference)?;
        let inference: &Inference = body(v)?;
        if inference.request_id.as_str() != rid {
            return Err(VerifyError::Chain(format!(
                "the inference entry {} is for request {:?}, not {rid:?}",
                v.index,
                inference.request_id.as_str()
            )));
        }
        let model = inference.model.as_str();
        let (version, card) = self.version_and_card(&inference.version_hash, model)?;
        let (active, next) = self.in_effect(model, inference.served_at, &inference.version_hash)?;
        let approvals = self.approvals_met(&inference.version_hash, Some(active))?;
        Ok(format!(
            "Request {rid:?} at {} was served by model {model:?} version {}.\n{}{}{}",
            inference.served_at,
            inference.version_hash,
            describe_version(version, card),
            approvals,
            describe_transitions(active, next),
        ))
    }

    /// The answer to "which version of `model` was active at `at`?".
    fn model(&self, at: Timestamp, model: &str) -> Result<String, VerifyError> {
        let t = self.one(Role::Transition)?;
        let transition: &Transition = body(t)?;
        let (version, card) = self.version_and_card(&transition.to, model)?;
        let (active, next) = self.in_effect(model, at, &transition.to)?;
        let approvals = self.approvals_met(&transition.to, Some(active))?;
        Ok(format!(
            "At {at} model {model:?} was running version {}.\n{}{}{}",
            transition.to,
            describe_version(version, card),
            approvals,
            describe_transitions(active, next),
        ))
    }

    /// The answer to "what is version `hash`?".
    fn version_answer(&self, hash: &ContentHash) -> Result<String, VerifyError> {
        let v = self.one(Role::Version)?;
        let version: &ModelVersion = body(v)?;
        let model = version.model.as_str();
        let (version, card) = self.version_and_card(hash, model)?;
        let mut transitions = Vec::new();
        for t in self.with_role(Role::Transition) {
            let transition: &Transition = body(t)?;
            if transition.model.as_str() != model
                || (transition.to != *hash && transition.from != Some(*hash))
            {
                return Err(VerifyError::Chain(format!(
                    "transition entry {} neither activates nor replaces version {hash} of {model:?}",
                    t.index
                )));
            }
            transitions.push(t);
        }
        let activation = transitions
            .iter()
            .copied()
            .find(|t| matches!(&t.body, Body::Transition(tr) if tr.to == *hash));
        let approvals = self.approvals_met(hash, activation)?;
        let mut text = format!(
            "Version {hash} of model {model:?}.\n{}{}",
            describe_version(version, card),
            approvals
        );
        if transitions.is_empty() {
            text.push_str("No transition involving this version is in the evidence.\n");
        }
        for t in transitions {
            let tr: &Transition = body(t)?;
            let what = if tr.to == *hash {
                "activated"
            } else {
                "replaced by "
            };
            let target = if tr.to == *hash {
                String::new()
            } else {
                tr.to.to_string()
            };
            text.push_str(&format!(
                "{what}{target} at {} by transition entry {} signed by {} (reason: {:?}).\n",
                tr.at,
                t.index,
                t.entry.signer().name(),
                tr.reason
            ));
        }
        Ok(text)
    }

    /// The version entry for `hash` of `model` and its card.
    fn version_and_card(
        &self,
        hash: &ContentHash,
        model: &str,
    ) -> Result<(&'a Verified, &'a Verified), VerifyError> {
        let v = self.one(Role::Version)?;
        let version: &ModelVersion = body(v)?;
        if version.version_hash != *hash || version.model.as_str() != model {
            return Err(VerifyError::Chain(format!(
                "the version entry {} registers {} of {:?}, not {hash} of {model:?}",
                v.index,
                version.version_hash,
                version.model.as_str()
            )));
        }
        let c = self.one(Role::Card)?;
        let card: &ModelCard = body(c)?;
        if c.entry.id() != version.card {
            return Err(VerifyError::Chain(format!(
                "the version names card {}, but the card entry {} is {}",
                version.card,
                c.index,
                c.entry.id()
            )));
        }
        if card.model.as_str() != model || c.index >= v.index {
            return Err(VerifyError::Chain(format!(
                "the card entry {} is not a card of {model:?} logged before its version",
                c.index
            )));
        }
        Ok((v, c))
    }

    /// The transition in effect at `at` (which activated `version`) and the
    /// next one, if any.
    fn in_effect(
        &self,
        model: &str,
        at: Timestamp,
        version: &ContentHash,
    ) -> Result<(&'a Verified, Option<&'a Verified>), VerifyError> {
        let t = self.one(Role::Transition)?;
        let active: &Transition = body(t)?;
        if active.model.as_str() != model || active.to != *version || active.at > at {
            return Err(VerifyError::Chain(format!(
                "transition entry {} does not make version {version} of {model:?} active by {at} (it activates {} of {:?} at {})",
                t.index,
                active.to,
                active.model.as_str(),
                active.at
            )));
        }
        let next = self.optional(Role::NextTransition)?;
        if let Some(n) = next {
            let tr: &Transition = body(n)?;
            if tr.model.as_str() != model
                || tr.from != Some(active.to)
                || tr.at <= at
                || n.index <= t.index
            {
                return Err(VerifyError::Chain(format!(
                    "next-transition entry {} does not follow transition {} after {at}",
                    n.index, t.index
                )));
            }
        }
        Ok((t, next))
    }

    /// Checks every approval of the evidence and, given the activating
    /// transition, that the approvals before it meet its policy; describes them.
    fn approvals_met(
        &self,
        version: &ContentHash,
        activation: Option<&'a Verified>,
    ) -> Result<String, VerifyError> {
        let mut latest: BTreeMap<String, (bool, u64)> = BTreeMap::new();
        let mut lines = String::new();
        for a in self.with_role(Role::Approval) {
            let approval: &Approval = body(a)?;
            if approval.version_hash != *version {
                return Err(VerifyError::Chain(format!(
                    "approval entry {} is for version {}, not {version}",
                    a.index, approval.version_hash
                )));
            }
            let (index, id, policy) = self
                .policies
                .iter()
                .find(|(_, (id, _))| *id == approval.policy)
                .map(|(i, (id, p))| (*i, *id, *p))
                .ok_or_else(|| {
                    VerifyError::Missing(format!(
                        "the policy {} that approval entry {} names",
                        approval.policy, a.index
                    ))
                })?;
            chain::check_approval(approval, true, id, index, policy).map_err(|b| {
                VerifyError::Chain(format!("approval entry {}: {}", a.index, b.message))
            })?;
            if activation.is_none_or(|t| a.index < t.index) {
                latest.insert(
                    a.entry.signer().to_string(),
                    (approval.decision == Decision::Approve, a.index),
                );
            }
            let criteria: Vec<&str> = approval.criteria.keys().map(String::as_str).collect();
            lines.push_str(&format!(
                "{} by {} (entry {}) against criteria {} of policy entry {index}{}.\n",
                match approval.decision {
                    Decision::Approve => "Approved",
                    Decision::Reject => "Rejected",
                },
                a.entry.signer().name(),
                a.index,
                criteria.join(", "),
                if approval.comment.is_empty() {
                    String::new()
                } else {
                    format!(" (comment: {:?})", approval.comment)
                },
            ));
        }
        if let Some(t) = activation {
            let (policy_index, _, policy) = self.policy_at(t.index).ok_or_else(|| {
                VerifyError::Missing(format!("the policy in force at transition {}", t.index))
            })?;
            let approvers =
                chain::approving_signers(latest.iter().map(|(s, (a, _))| (s.as_str(), *a)), policy);
            let transition: &Transition = body(t)?;
            chain::check_transition_approvals(transition, approvers.len(), policy).map_err(
                |b| {
                    VerifyError::Chain(format!(
                        "transition entry {} under policy entry {policy_index}: {}",
                        t.index, b.message
                    ))
                },
            )?;
        }
        if lines.is_empty() {
            lines.push_str("No approval of this version is in the evidence.\n");
        }
        Ok(lines)
    }
}

/// The typed body of a verified entry whose kind its role fixed.
fn body<T: FromBody>(v: &Verified) -> Result<&T, VerifyError> {
    T::from_body(&v.body).ok_or_else(|| VerifyError::Entry {
        index: v.index,
        role: v.role,
        what: "unexpected body".into(),
    })
}

/// Borrowing one kind's body out of [`Body`].
trait FromBody {
    fn from_body(body: &Body) -> Option<&Self>;
}

macro_rules! from_body {
    ($variant:ident, $t:ty) => {
        impl FromBody for $t {
            fn from_body(body: &Body) -> Option<&$t> {
                match body {
                    Body::$variant(b) => Some(b),
                    _ => None,
                }
            }
        }
    };
}

from_body!(Inference, Inference);
from_body!(ModelVersion, ModelVersion);
from_body!(ModelCard, ModelCard);
from_body!(Approval, Approval);
from_body!(Transition, Transition);

fn describe_version(version: &Verified, card: &Verified) -> String {
    format!(
        "Registered at entry {} by {}; model card {} (entry {}).\n",
        version.index,
        version.entry.signer().name(),
        card.entry.id(),
        card.index
    )
}

fn describe_transitions(active: &Verified, next: Option<&Verified>) -> String {
    let mut text = String::new();
    if let Body::Transition(t) = &active.body {
        text.push_str(&format!(
            "Active since {} by transition entry {} authorised by {} (reason: {:?}).\n",
            t.at,
            active.index,
            active.entry.signer().name(),
            t.reason
        ));
    }
    match next.map(|n| (n, &n.body)) {
        Some((n, Body::Transition(t))) => text.push_str(&format!(
            "Replaced by {} at {} by transition entry {} authorised by {} (reason: {:?}).\n",
            t.to,
            t.at,
            n.index,
            n.entry.signer().name(),
            t.reason
        )),
        _ => text
            .push_str("No later transition is in the evidence: still active at its checkpoint.\n"),
    }
    text
}
