//! The governance committee's periodic review: every governance entry
//! logged between the checkpoint the committee saw last time and the
//! current one, as Markdown (who, what, when, reason), with inferences
//! counted per model and version.
//!
//! The caller authenticates the entries (consistency of the two checkpoints,
//! then each entry against the new one) and feeds them in log order to
//! [`Review::add`]; only governance entries are kept, so memory does not
//! grow with inferences.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::replay::Parsed;
use crate::entry::{Body, ContentHash, Decision, EntryError};
use crate::tlog::checkpoint::Checkpoint;

/// What the review has collected.
pub struct Review {
    old: Checkpoint,
    new: Checkpoint,
    /// Governance entries, in log order.
    entries: Vec<(u64, Parsed)>,
    /// Entries that are not valid entries: index and reason.
    invalid: Vec<(u64, String)>,
    /// Inferences per (model, version).
    inferences: BTreeMap<(String, String), u64>,
    /// Versions registered in the window, by hash: their entry index.
    versions: BTreeMap<ContentHash, u64>,
}

impl Review {
    /// A review of the entries from `old.size` to `new.size`.
    pub fn new(old: Checkpoint, new: Checkpoint) -> Review {
        Review {
            old,
            new,
            entries: Vec::new(),
            invalid: Vec::new(),
            inferences: BTreeMap::new(),
            versions: BTreeMap::new(),
        }
    }

    /// Adds the entry at `index` (in log order).
    pub fn add(&mut self, index: u64, entry: Result<Parsed, EntryError>) {
        match entry {
            Err(e) => self.invalid.push((index, e.to_string())),
            Ok(p) => match &p.body {
                Body::Inference(i) => {
                    *self
                        .inferences
                        .entry((i.model.as_str().to_owned(), i.version_hash.to_string()))
                        .or_default() += 1;
                }
                body => {
                    if let Body::ModelVersion(v) = body {
                        self.versions.insert(v.version_hash, index);
                    }
                    self.entries.push((index, p));
                }
            },
        }
    }

    /// The hashes of every transition's `from` and `to` registered before
    /// the window: the caller looks up their registration index, so that a
    /// transition back to an older version is labelled a rollback.
    pub fn versions_to_look_up(&self) -> Vec<ContentHash> {
        let mut out: Vec<ContentHash> = self
            .entries
            .iter()
            .filter_map(|(_, p)| match &p.body {
                Body::Transition(t) => Some([Some(t.to), t.from]),
                _ => None,
            })
            .flatten()
            .flatten()
            .filter(|h| !self.versions.contains_key(h))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The Markdown report; `registered` gives the registration index of
    /// versions from before the window ([`Review::versions_to_look_up`]).
    pub fn markdown(&self, registered: &BTreeMap<ContentHash, u64>) -> String {
        let mut md = String::new();
        let (old, new) = (&self.old, &self.new);
        let _ = writeln!(md, "# Governance review of `{}`\n", new.origin);
        if new.size > old.size {
            let _ = writeln!(
                md,
                "Entries {} to {} (checkpoint of size {} → size {}; consistency verified).\n",
                old.size,
                new.size - 1,
                old.size,
                new.size
            );
        } else {
            let _ = writeln!(
                md,
                "No new entries (checkpoint of size {} → size {}; consistency verified).\n",
                old.size, new.size
            );
        }
        let _ = writeln!(md, "- previous root: `{}`", old.root.to_base64());
        let _ = writeln!(md, "- current root: `{}`\n", new.root.to_base64());
        self.section(
            &mut md,
            "Policy changes",
            |b| matches!(b, Body::Policy(_)),
            registered,
        );
        self.section(
            &mut md,
            "Model cards",
            |b| matches!(b, Body::ModelCard(_)),
            registered,
        );
        self.section(
            &mut md,
            "New versions",
            |b| matches!(b, Body::ModelVersion(_)),
            registered,
        );
        self.section(
            &mut md,
            "Approvals",
            |b| matches!(b, Body::Approval(_)),
            registered,
        );
        self.section(
            &mut md,
            "Transitions",
            |b| matches!(b, Body::Transition(_)),
            registered,
        );
        md.push_str("## Inferences\n\n");
        if self.inferences.is_empty() {
            md.push_str("None.\n\n");
        } else {
            md.push_str("| model | version | inferences |\n|---|---|---|\n");
            for ((model, version), n) in &self.inferences {
                let _ = writeln!(md, "| {} | `{version}` | {n} |", cell(model));
            }
            md.push('\n');
        }
        if !self.invalid.is_empty() {
            md.push_str("## Invalid entries\n\n");
            for (index, why) in &self.invalid {
                let _ = writeln!(md, "- entry {index}: {}", cell(why));
            }
            md.push('\n');
        }
        md
    }

    fn section(
        &self,
        md: &mut String,
        title: &str,
        wanted: impl Fn(&Body) -> bool,
        registered: &BTreeMap<ContentHash, u64>,
    ) {
        let _ = writeln!(md, "## {title}\n");
        let mut any = false;
        for (index, p) in self.entries.iter().filter(|(_, p)| wanted(&p.body)) {
            any = true;
            let who = cell(p.signer.name());
            let line = match &p.body {
                Body::Policy(policy) => {
                    let criteria: Vec<&str> =
                        policy.criteria().iter().map(|c| c.id.as_str()).collect();
                    let roster: Vec<String> = policy
                        .signers()
                        .iter()
                        .map(|s| {
                            let roles: Vec<&str> = s.roles().iter().map(|r| r.as_str()).collect();
                            format!("{} ({})", s.vkey().name(), roles.join(", "))
                        })
                        .collect();
                    format!(
                        "policy `{}` by {who}: {} approval(s) required; criteria: {}; signers: {}",
                        id(p),
                        policy.approvals_required(),
                        cell(&criteria.join(", ")),
                        cell(&roster.join("; "))
                    )
                }
                Body::ModelCard(card) => format!(
                    "card `{}` for **{}** by {who}; intended use: {}",
                    id(p),
                    cell(card.model.as_str()),
                    cell(&card.intended_use)
                ),
                Body::ModelVersion(v) => format!(
                    "**{}** version `{}` (card `{}`{}) registered by {who}",
                    cell(v.model.as_str()),
                    v.version_hash,
                    v.card,
                    v.registry_ref
                        .as_ref()
                        .map(|r| format!(", registry {}", cell(r.as_str())))
                        .unwrap_or_default()
                ),
                Body::Approval(a) => {
                    let criteria: Vec<String> = a
                        .criteria
                        .iter()
                        .map(|(id, r)| format!("{id}: {}", if r.met { "met" } else { "not met" }))
                        .collect();
                    format!(
                        "{} `{}` by {who} under policy `{}` ({}){}",
                        match a.decision {
                            Decision::Approve => "**approved**",
                            Decision::Reject => "**rejected**",
                        },
                        a.version_hash,
                        a.policy,
                        cell(&criteria.join(", ")),
                        if a.comment.is_empty() {
                            String::new()
                        } else {
                            format!(": “{}”", cell(&a.comment))
                        }
                    )
                }
                Body::Transition(t) => {
                    let index_of = |h: &ContentHash| {
                        self.versions.get(h).or_else(|| registered.get(h)).copied()
                    };
                    let rollback = t
                        .from
                        .and_then(|from| Some(index_of(&t.to)? < index_of(&from)?))
                        .unwrap_or(false);
                    format!(
                        "{} of **{}** at {}: {} → `{}` by {who}; reason: {}",
                        if rollback {
                            "**rollback**"
                        } else {
                            "transition"
                        },
                        cell(t.model.as_str()),
                        t.at,
                        t.from.map_or("(none)".to_owned(), |f| format!("`{f}`")),
                        t.to,
                        cell(&t.reason)
                    )
                }
                Body::Inference(_) => continue,
            };
            let _ = writeln!(md, "- entry {index}: {line}");
        }
        if !any {
            md.push_str("None.\n");
        }
        md.push('\n');
    }
}

/// The entry's artefact ID, or `?` where it was not computed.
fn id(p: &Parsed) -> String {
    p.id.map_or_else(|| "?".to_owned(), |id| id.to_string())
}

/// Text safe inside a Markdown list item or table cell: one line, no pipes.
fn cell(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('|', "\\|")
}
