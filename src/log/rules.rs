//! The chain rules (DESIGN "Entries"), applied by the sequencer in log order,
//! atomically with the append.
//!
//! - Every identifier (model name, request ID, …) holds only the characters
//!   `entry::identifier` allows, and a policy's roster holds no weak key.
//! - Every entry's signer must hold the role its kind needs under the policy
//!   in force *at its index*; a `policy` entry, signed by an admin of the
//!   policy it replaces, takes effect from its own index on.
//! - A `model_version` needs an existing `model_card` of the same model, and
//!   a version hash is registered once.
//! - An `approval` needs a registered version and names the policy in force
//!   (its artefact ID); it covers exactly that policy's criteria. A signer's
//!   latest decision on a version is the one that counts.
//! - A `transition` needs `to` registered for the same model, `from` equal to
//!   the model's active version (compare-and-swap: a stale `from` is refused
//!   with the active version in the error), `at` not before the model's
//!   previous transition nor in the future, and at least
//!   `approvals_required` distinct approvers — holding the approver role in
//!   the policy in force — whose latest decision on `to` is approve. A
//!   rollback is a transition to an earlier version.
//! - An `inference` is evidence: it is never refused for naming an unknown or
//!   inactive version, only flagged (warnings); a `served_at` in the future
//!   or older than the configured bound is refused. A request ID logged
//!   before is flagged too; queries by request ID answer with the first.
//! - Approvals made under an earlier policy keep counting after a policy
//!   update as long as their signer is still an approver: an update adding a
//!   criterion applies to approvals made from then on (each approval states
//!   the policy it was judged against).
//!
//! Committed state lives in the derived index (re-derived on reindex), read
//! through the batch's index transaction; what a batch admits is staged here
//! until its checkpoint is durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Log;
use super::sequencer::{ChainRules, Refused, index_failure};
use crate::entry::{
    Approval, ArtefactId, Body, ContentHash, Decision, Inference, ModelVersion, PolicyBody,
    SignedEntry, Transition, authorise, chain,
};
use crate::store::index::{ActiveRecord, IndexUpdate};

/// The policy in force and which entry it is.
#[derive(Debug, Clone)]
pub struct PolicyInForce {
    /// The policy entry's leaf index.
    pub index: u64,
    /// The policy entry's artefact ID (approvals name it).
    pub id: ArtefactId,
    /// The policy.
    pub body: Arc<PolicyBody>,
}

/// Bounds on an inference's `served_at`, relative to the sequencer's clock.
#[derive(Debug, Clone, Copy)]
pub struct ServedAtBounds {
    /// How far ahead of the clock `served_at` (and a transition's `at`) may be.
    pub max_future_ms: u64,
    /// How far behind the clock `served_at` may be.
    pub max_age_ms: u64,
}

/// What a batch admitted, not yet durable.
#[derive(Default)]
struct Staged {
    policy: Option<PolicyInForce>,
    cards: HashMap<ArtefactId, String>,
    versions: HashMap<ContentHash, String>,
    /// (version, signer vkey) → approve?
    approvals: HashMap<(ContentHash, String), bool>,
    /// model → (active version, `at` in ms)
    active: HashMap<String, (ContentHash, u64)>,
    /// request ID → index of the first inference naming it
    requests: HashMap<String, u64>,
    /// What this batch read of the committed state: a batch of inferences
    /// naming one version and model looks each up in the index once.
    read_versions: HashMap<ContentHash, Option<String>>,
    read_active: HashMap<String, Option<(ContentHash, u64)>>,
}

/// The policy and chain rules.
pub struct GovernanceRules {
    log: Arc<Log>,
    policy: PolicyInForce,
    bounds: ServedAtBounds,
    staged: Staged,
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refused {
    Refused::new(status, code, message)
}

impl GovernanceRules {
    /// Rules starting from the committed state of `log`.
    pub fn new(log: Arc<Log>, policy: PolicyInForce, bounds: ServedAtBounds) -> GovernanceRules {
        GovernanceRules {
            log,
            policy,
            bounds,
            staged: Staged::default(),
        }
    }

    fn policy(&self) -> &PolicyInForce {
        self.staged.policy.as_ref().unwrap_or(&self.policy)
    }

    /// The model of a registered version (staged or committed).
    fn version_model(
        &mut self,
        state: &IndexUpdate<'_>,
        hash: &ContentHash,
    ) -> Result<Option<String>, Refused> {
        if let Some(model) = self.staged.versions.get(hash) {
            return Ok(Some(model.clone()));
        }
        if let Some(read) = self.staged.read_versions.get(hash) {
            return Ok(read.clone());
        }
        let record = state.version(&hash.0).map_err(index_failure)?;
        let model = record.map(|r| r.model);
        self.staged.read_versions.insert(*hash, model.clone());
        Ok(model)
    }

    /// The model of a logged card (staged or committed), checked against the entry.
    fn card_model(&self, id: &ArtefactId) -> Result<Option<String>, Refused> {
        if let Some(model) = self.staged.cards.get(id) {
            return Ok(Some(model.clone()));
        }
        let Some((_, bytes)) = self.log.artefact(id).map_err(index_failure)? else {
            return Ok(None);
        };
        let entry = SignedEntry::parse(&bytes).map_err(|e| index_failure(e.to_string()))?;
        Ok(match entry.typed_body() {
            Ok(Body::ModelCard(card)) => Some(card.model.as_str().to_owned()),
            _ => None,
        })
    }

    /// The model's active version and when it took effect.
    fn active(
        &mut self,
        state: &IndexUpdate<'_>,
        model: &str,
    ) -> Result<Option<(ContentHash, u64)>, Refused> {
        if let Some(active) = self.staged.active.get(model) {
            return Ok(Some(*active));
        }
        if let Some(read) = self.staged.read_active.get(model) {
            return Ok(*read);
        }
        let record = state.active(model).map_err(index_failure)?;
        let active = record.map(|ActiveRecord { version, at, .. }| (ContentHash(version), at));
        self.staged.read_active.insert(model.to_owned(), active);
        Ok(active)
    }

    /// Distinct approvers in the policy in force whose latest decision on
    /// `version` is approve.
    fn approvers(
        &self,
        state: &IndexUpdate<'_>,
        version: &ContentHash,
    ) -> Result<Vec<String>, Refused> {
        // In log order, so each signer's latest decision is the one kept.
        let mut latest: HashMap<String, bool> = state
            .approvals(&version.0)
            .map_err(index_failure)?
            .into_iter()
            .map(|a| (a.signer, a.approve))
            .collect();
        for ((v, signer), approve) in &self.staged.approvals {
            if v == version {
                latest.insert(signer.clone(), *approve);
            }
        }
        Ok(chain::approving_signers(
            latest.iter().map(|(s, a)| (s.as_str(), *a)),
            &self.policy().body,
        ))
    }

    fn admit_policy(&mut self, entry: &SignedEntry, body: PolicyBody, index: u64) {
        self.staged.policy = Some(PolicyInForce {
            index,
            id: entry.id(),
            body: Arc::new(body),
        });
    }

    fn admit_version(
        &mut self,
        state: &IndexUpdate<'_>,
        version: &ModelVersion,
    ) -> Result<(), Refused> {
        chain::check_version_card(version, self.card_model(&version.card)?.as_deref())
            .map_err(refused)?;
        chain::check_version_new(
            version,
            self.version_model(state, &version.version_hash)?.as_deref(),
        )
        .map_err(refused)?;
        self.staged
            .versions
            .insert(version.version_hash, version.model.as_str().to_owned());
        Ok(())
    }

    fn admit_approval(
        &mut self,
        state: &IndexUpdate<'_>,
        entry: &SignedEntry,
        approval: &Approval,
    ) -> Result<(), Refused> {
        let registered = self.version_model(state, &approval.version_hash)?.is_some();
        let policy = self.policy();
        chain::check_approval(approval, registered, policy.id, policy.index, &policy.body)
            .map_err(refused)?;
        self.staged.approvals.insert(
            (approval.version_hash, entry.signer().to_string()),
            approval.decision == Decision::Approve,
        );
        Ok(())
    }

    fn admit_transition(
        &mut self,
        state: &IndexUpdate<'_>,
        transition: &Transition,
    ) -> Result<(), Refused> {
        let target = self.version_model(state, &transition.to)?;
        chain::check_transition_target(transition, target.as_deref()).map_err(refused)?;
        let active = self.active(state, transition.model.as_str())?;
        chain::check_transition_from(transition, active).map_err(refused)?;
        let at = transition.at.unix_millis();
        if at > now_ms().saturating_add(self.bounds.max_future_ms) {
            return Err(refuse(422, "transition_time", "at is in the future"));
        }
        let approvers = self.approvers(state, &transition.to)?;
        chain::check_transition_approvals(transition, approvers.len(), &self.policy().body)
            .map_err(refused)?;
        self.staged
            .active
            .insert(transition.model.as_str().to_owned(), (transition.to, at));
        Ok(())
    }

    fn admit_inference(
        &mut self,
        state: &IndexUpdate<'_>,
        inference: &Inference,
        index: u64,
    ) -> Result<Vec<String>, Refused> {
        let served = inference.served_at.unix_millis();
        let now = now_ms();
        if served > now.saturating_add(self.bounds.max_future_ms) {
            return Err(refuse(
                422,
                "served_at_out_of_range",
                format!("served_at {} is in the future", inference.served_at),
            ));
        }
        if served < now.saturating_sub(self.bounds.max_age_ms) {
            return Err(refuse(
                422,
                "served_at_out_of_range",
                format!(
                    "served_at {} is older than the log accepts ({} ms)",
                    inference.served_at, self.bounds.max_age_ms
                ),
            ));
        }
        let version_model = self.version_model(state, &inference.version_hash)?;
        let active = self
            .active(state, inference.model.as_str())?
            .map(|(v, _)| v);
        let mut warnings: Vec<String> =
            chain::inference_flags(inference, version_model.as_deref(), active)
                .into_iter()
                .map(|flag| flag.message)
                .collect();
        let rid = inference.request_id.as_str();
        let earlier = match self.staged.requests.get(rid) {
            Some(&i) => Some(i),
            None => state.lookup_request(rid).map_err(index_failure)?,
        };
        match earlier {
            Some(first) => warnings.push(repeated_request(rid, first)),
            None => {
                self.staged.requests.insert(rid.to_owned(), index);
            }
        }
        Ok(warnings)
    }
}

impl ChainRules for GovernanceRules {
    fn admit(
        &mut self,
        state: &IndexUpdate<'_>,
        entry: &SignedEntry,
        body: &Body,
        index: u64,
    ) -> Result<Vec<String>, Refused> {
        authorise(entry, &self.policy().body)
            .map_err(|e| refuse(e.http_status(), e.code(), e.to_string()))?;
        chain::check_identifiers(body).map_err(refused)?;
        match body {
            Body::Policy(policy) => {
                chain::check_policy_keys(policy).map_err(refused)?;
                self.admit_policy(entry, policy.clone(), index)
            }
            Body::ModelCard(card) => {
                self.staged
                    .cards
                    .insert(entry.id(), card.model.as_str().to_owned());
            }
            Body::ModelVersion(version) => self.admit_version(state, version)?,
            Body::Approval(approval) => self.admit_approval(state, entry, approval)?,
            Body::Transition(transition) => self.admit_transition(state, transition)?,
            Body::Inference(inference) => return self.admit_inference(state, inference, index),
        }
        Ok(Vec::new())
    }

    fn commit(&mut self, log: &Log) {
        let staged = std::mem::take(&mut self.staged);
        if let Some(policy) = staged.policy {
            log.set_policy(policy.body.clone());
            self.policy = policy;
        }
    }

    fn abort(&mut self) {
        self.staged = Staged::default();
    }
}

/// The warning for an inference whose request ID was first logged at `first`.
fn repeated_request(rid: &str, first: u64) -> String {
    format!(
        "request ID {rid:?} was already logged at index {first}; queries by request ID answer with that first entry"
    )
}

/// The warnings the entry logged at `index` (its exact `bytes`) was given
/// when it was admitted, recomputed from the index as the state was at that
/// index: what an identical resubmission (a duplicate) answers, so a client
/// that retries still learns that its inference was flagged. Only
/// inferences are flagged. Costs a few index lookups and reads of the
/// model's transitions, on the duplicate's path only (the alternative,
/// storing every entry's warnings, would cost every inference a write).
///
/// `bytes` is an entry the handler verified (its signature is not checked
/// again).
pub fn warnings_at(log: &Log, bytes: &[u8], index: u64) -> Result<Vec<String>, String> {
    let envelope = crate::entry::canonical::parse_strict(bytes).map_err(|e| e.to_string())?;
    if envelope["kind"] != "inference" {
        return Ok(Vec::new());
    }
    let inference = Inference::parse(&envelope["body"]).map_err(|e| e.to_string())?;
    let model = inference.model.as_str();
    let version_model = log
        .index
        .version(&inference.version_hash.0)
        .map_err(|e| e.to_string())?
        .filter(|v| v.index < index)
        .map(|v| v.model);
    // The model's active version at `index`: its last transition before it.
    let mut active = None;
    let history = log.index.model_history(model).map_err(|e| e.to_string())?;
    for &i in history.iter().rev().filter(|&&i| i < index) {
        let bytes = log
            .entry(i)
            .ok_or_else(|| format!("entry {i} of {model:?}'s history is not readable"))?;
        let parsed = SignedEntry::parse(&bytes).and_then(|e| e.typed_body());
        if let Ok(Body::Transition(t)) = parsed
            && t.model.as_str() == model
        {
            active = Some(t.to);
            break;
        }
    }
    let mut warnings: Vec<String> =
        chain::inference_flags(&inference, version_model.as_deref(), active)
            .into_iter()
            .map(|flag| flag.message)
            .collect();
    let rid = inference.request_id.as_str();
    if let Some(first) = log.index.lookup_request(rid).map_err(|e| e.to_string())?
        && first < index
    {
        warnings.push(repeated_request(rid, first));
    }
    Ok(warnings)
}

/// The log's refusal of an entry that breaks a chain rule.
fn refused(b: chain::Break) -> Refused {
    refuse(b.status, b.code, b.message)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
