//! The stateful rules the sequencer applies in log order.
//!
//! [`PolicyRules`] enforces the policy itself: every entry's signer must hold
//! the role its kind needs under the policy in force *at its index* (a policy
//! update earlier in the same batch counts), and a `policy` entry, signed by
//! an admin of the policy it replaces, takes effect from its own index on.
//! The governance chain rules (cards, versions, approvals, transitions)
//! build on this.

use std::sync::Arc;

use super::Log;
use super::sequencer::{ChainRules, Refused};
use crate::entry::PolicyBody;
use crate::entry::{Kind, SignedEntry, authorise};

/// Roster checks and policy updates.
pub struct PolicyRules {
    current: Arc<PolicyBody>,
    staged: Option<Arc<PolicyBody>>,
}

impl PolicyRules {
    /// Rules starting from the policy in force.
    pub fn new(current: Arc<PolicyBody>) -> PolicyRules {
        PolicyRules {
            current,
            staged: None,
        }
    }

    /// The policy an entry admitted now is judged by.
    fn in_force(&self) -> &PolicyBody {
        self.staged.as_deref().unwrap_or(&self.current)
    }
}

impl ChainRules for PolicyRules {
    fn admit(&mut self, entry: &SignedEntry, _index: u64) -> Result<Vec<String>, Refused> {
        authorise(entry, self.in_force())
            .map_err(|e| Refused::new(e.http_status(), e.code(), e.to_string()))?;
        if entry.kind() == Kind::Policy {
            let next = PolicyBody::parse(entry.body())
                .map_err(|e| Refused::new(422, "invalid_policy", e.to_string()))?;
            self.staged = Some(Arc::new(next));
        }
        Ok(Vec::new())
    }

    fn commit(&mut self, log: &Log) {
        if let Some(next) = self.staged.take() {
            log.set_policy(next.clone());
            self.current = next;
        }
    }

    fn abort(&mut self) {
        self.staged = None;
    }
}
