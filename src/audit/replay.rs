//! Replays a log's entries in order under the chain rules
//! ([`crate::entry::chain`], the same decisions the sequencer makes) and
//! reports every break instead of refusing it.
//!
//! State is what the rules need and nothing per inference: the policy in
//! force, cards, versions, each approver's latest decision per version, and
//! each model's active version. It grows with governance entries, not with
//! inferences, so a log of 10^7 inferences replays in bounded memory.
//! Duplicate request IDs are therefore not reported (that needs a set of
//! every request ID).
//!
//! A broken entry still happened: a version registered without a card is
//! registered, a transition without approvals did make its version active
//! (later inferences are judged against it). Two exceptions, so that a
//! break cannot excuse later entries: a `policy` entry whose signer is not
//! an admin of the policy in force does not take effect, and an approval
//! the log would have refused (unauthorised signer, wrong policy or
//! criteria) does not count towards a transition.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::entry::{
    ArtefactId, Body, ContentHash, Decision, EntryError, Kind, PolicyBody, authorise_signer, chain,
};
use crate::tlog::note::VerifierKey;

/// One entry, parsed (and, unless the audit skips it, signature-checked).
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The artefact ID (BLAKE3 of the leaf). Entries reference policies and
    /// cards by it; a bulk audit skips hashing inferences (`None`).
    pub id: Option<ArtefactId>,
    /// The entry's signer.
    pub signer: VerifierKey,
    /// The typed body (its kind is the entry's).
    pub body: Body,
}

/// A chain break found at one entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The entry's leaf index.
    pub index: u64,
    /// The entry's kind, if it parsed.
    pub kind: Option<&'static str>,
    /// Stable code: the log's refusal code, or for inferences
    /// `unknown_version`, `version_model_mismatch`, `inactive_version`,
    /// `no_active_version`; `weak_key` for a policy rostering a weak key
    /// (the log refuses it as `invalid_policy`); `invalid_entry` codes are
    /// the entry error's.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The policy in force during the replay.
#[derive(Debug, Clone)]
struct InForce {
    index: u64,
    id: ArtefactId,
    body: Arc<PolicyBody>,
}

/// The replay state; feed it entries in log order with [`Replay::apply`].
#[derive(Default)]
pub struct Replay {
    policy: Option<InForce>,
    cards: HashMap<ArtefactId, String>,
    versions: HashMap<ContentHash, String>,
    approvals: HashMap<ContentHash, BTreeMap<String, bool>>,
    active: HashMap<String, (ContentHash, u64)>,
    /// Every rostered vkey seen, by its text: signers are few, and parsing a
    /// vkey costs a curve-point decompression.
    keys: HashMap<String, VerifierKey>,
    counts: BTreeMap<&'static str, u64>,
    plain: PlainCommitments,
}

/// Inferences whose commitments are plain `b3:` hashes, not hiding: a
/// notice, not a chain break (they were valid when logged), but anyone who
/// can read the log can confirm a guess of their input or output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlainCommitments {
    /// How many inferences have at least one plain commitment.
    pub count: u64,
    /// The first one's leaf index.
    pub first: Option<u64>,
}

impl Replay {
    /// An empty log's state.
    pub fn new() -> Replay {
        Replay::default()
    }

    /// The parsed key of every signer in any policy seen so far, by vkey text.
    pub fn known_keys(&self) -> &HashMap<String, VerifierKey> {
        &self.keys
    }

    /// Entries replayed, per kind (`invalid` for entries that did not parse).
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    /// The inferences replayed with plain (non-hiding) commitments.
    pub fn plain_commitments(&self) -> PlainCommitments {
        self.plain
    }

    /// Replays the entry at `index` (or the reason it is not a valid entry),
    /// adding what it breaks to `findings`.
    pub fn apply(
        &mut self,
        index: u64,
        entry: Result<Parsed, EntryError>,
        findings: &mut Vec<Finding>,
    ) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                *self.counts.entry("invalid").or_default() += 1;
                findings.push(Finding {
                    index,
                    kind: None,
                    code: err.code(),
                    message: err.to_string(),
                });
                return;
            }
        };
        let kind = entry.body.kind();
        *self.counts.entry(kind.as_str()).or_default() += 1;
        let mut report = |b: chain::Break| {
            findings.push(Finding {
                index,
                kind: Some(kind.as_str()),
                code: b.code,
                message: b.message,
            })
        };
        if let Err(b) = chain::check_identifiers(&entry.body) {
            report(b);
        }
        let authorised = self.authorise(&entry, kind);
        if let Err(err) = &authorised {
            report(chain::Break {
                code: err.code(),
                status: err.http_status(),
                message: err.to_string(),
            });
        }
        match &entry.body {
            Body::Policy(policy) => {
                if let Err(b) = chain::check_policy_keys(policy) {
                    report(chain::Break {
                        code: "weak_key",
                        ..b
                    });
                }
                if let (Ok(()), Some(id)) = (&authorised, entry.id) {
                    self.set_policy(index, id, policy.clone());
                }
            }
            Body::ModelCard(card) => {
                if let Some(id) = entry.id {
                    self.cards.insert(id, card.model.as_str().to_owned());
                }
            }
            Body::ModelVersion(version) => {
                let card_model = self.cards.get(&version.card).map(String::as_str);
                let existing = self.versions.get(&version.version_hash);
                if let Err(b) = chain::check_version_card(version, card_model) {
                    report(b);
                }
                match chain::check_version_new(version, existing.map(String::as_str)) {
                    Err(b) => report(b),
                    Ok(()) => {
                        self.versions
                            .insert(version.version_hash, version.model.as_str().to_owned());
                    }
                }
            }
            Body::Approval(approval) => {
                let registered = self.versions.contains_key(&approval.version_hash);
                let checked = match &self.policy {
                    Some(p) => chain::check_approval(approval, registered, p.id, p.index, &p.body),
                    None => Ok(()),
                };
                if let Err(b) = checked {
                    report(b);
                    return;
                }
                if authorised.is_err() {
                    return;
                }
                self.approvals
                    .entry(approval.version_hash)
                    .or_default()
                    .insert(
                        entry.signer.to_string(),
                        approval.decision == Decision::Approve,
                    );
            }
            Body::Transition(transition) => {
                let to_model = self.versions.get(&transition.to).map(String::as_str);
                if let Err(b) = chain::check_transition_target(transition, to_model) {
                    report(b);
                }
                let model = transition.model.as_str();
                if let Err(b) =
                    chain::check_transition_from(transition, self.active.get(model).copied())
                {
                    report(b);
                }
                if let Some(p) = &self.policy {
                    let approvers = self.approvers(&transition.to, &p.body);
                    if let Err(b) =
                        chain::check_transition_approvals(transition, approvers.len(), &p.body)
                    {
                        report(b);
                    }
                }
                self.active.insert(
                    model.to_owned(),
                    (transition.to, transition.at.unix_millis()),
                );
            }
            Body::Inference(inference) => {
                if !inference.input_commitment.is_hiding()
                    || !inference.output_commitment.is_hiding()
                {
                    self.plain.count += 1;
                    self.plain.first.get_or_insert(index);
                }
                let version_model = self
                    .versions
                    .get(&inference.version_hash)
                    .map(String::as_str);
                let active = self.active.get(inference.model.as_str()).map(|(v, _)| *v);
                for b in chain::inference_flags(inference, version_model, active) {
                    report(b);
                }
            }
        }
    }

    /// Distinct approvers (under `policy`) whose latest decision on
    /// `version` is approve.
    fn approvers(&self, version: &ContentHash, policy: &PolicyBody) -> Vec<String> {
        let latest = self.approvals.get(version);
        chain::approving_signers(
            latest.into_iter().flatten().map(|(s, a)| (s.as_str(), *a)),
            policy,
        )
    }

    /// Whether the entry's signer holds its kind's role in the policy in
    /// force; the log's first policy authorises itself.
    fn authorise(&self, entry: &Parsed, kind: Kind) -> Result<(), EntryError> {
        match (&self.policy, &entry.body) {
            (Some(p), _) => authorise_signer(&entry.signer, kind, &p.body),
            (None, Body::Policy(own)) => authorise_signer(&entry.signer, kind, own),
            (None, _) => Err(EntryError::UnknownSigner {
                signer: format!("{} (no policy is logged before this entry)", entry.signer),
            }),
        }
    }

    fn set_policy(&mut self, index: u64, id: ArtefactId, body: PolicyBody) {
        for signer in body.signers() {
            self.keys
                .insert(signer.vkey().to_string(), signer.vkey().clone());
        }
        self.policy = Some(InForce {
            index,
            id,
            body: Arc::new(body),
        });
    }
}
