//! tlog-policy: `Policy::parse` on arbitrary bytes.
//!
//! Input: the policy text, optionally followed by a NUL byte and cosigned
//! flags (one per byte, low bit; a policy never contains NUL). On success:
//!
//! - the policy is well formed (names unique, members defined earlier,
//!   thresholds in range, limits respected);
//! - `quorum_met` agrees with a naive recursive evaluation, never panics for
//!   any flag slice, is monotone, is met with all witnesses cosigned, and
//!   with none cosigned is met only for `quorum none`;
//! - verifying a fixed signed and cosigned checkpoint never panics and only
//!   succeeds for a policy that names its log.

use std::sync::OnceLock;

use crate::{LOG_NAME, log_signer, witness_signer};
use modeltrail::tlog::checkpoint::Checkpoint;
use modeltrail::tlog::cosignature;
use modeltrail::tlog::empty_tree_hash;
use modeltrail::tlog::policy::{MAX_GROUPS, MAX_LOGS, MAX_WITNESSES, Member, Policy};

/// A checkpoint of the empty tree signed by the fixed log and cosigned by the fixed witness.
fn signed_checkpoint() -> &'static [u8] {
    static NOTE: OnceLock<Vec<u8>> = OnceLock::new();
    NOTE.get_or_init(|| {
        let checkpoint = Checkpoint {
            origin: LOG_NAME.into(),
            size: 0,
            root: empty_tree_hash(),
            extensions: vec![],
        };
        let mut note = checkpoint.sign(log_signer()).unwrap();
        cosignature::cosign(&mut note, witness_signer(), 1_700_000_000).unwrap();
        note.to_bytes()
    })
}

/// The naive, recursive reading of the quorum.
fn naive_met(policy: &Policy, member: Member, cosigned: &[bool]) -> bool {
    match member {
        Member::Witness(i) => cosigned.get(i).copied().unwrap_or(false),
        Member::Group(g) => {
            let group = &policy.groups[g];
            let count = group
                .members
                .iter()
                .filter(|m| naive_met(policy, **m, cosigned))
                .count();
            count >= group.threshold
        }
    }
}

fn naive_quorum(policy: &Policy, cosigned: &[bool]) -> bool {
    policy.quorum.is_none_or(|q| naive_met(policy, q, cosigned))
}

fn check_well_formed(policy: &Policy) {
    assert!(policy.logs.len() <= MAX_LOGS);
    assert!(policy.witnesses.len() <= MAX_WITNESSES);
    assert!(policy.groups.len() <= MAX_GROUPS);
    let mut names: Vec<&[u8]> = policy.witnesses.iter().map(|w| &w.name[..]).collect();
    names.extend(policy.groups.iter().map(|g| &g.name[..]));
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate names");
    assert!(!names.contains(&&b"none"[..]));
    for (g, group) in policy.groups.iter().enumerate() {
        assert!(!group.members.is_empty());
        assert!((1..=group.members.len()).contains(&group.threshold));
        for (i, m) in group.members.iter().enumerate() {
            assert!(!group.members[..i].contains(m), "member listed twice");
            match *m {
                Member::Witness(w) => assert!(w < policy.witnesses.len()),
                Member::Group(h) => assert!(h < g, "group member not defined earlier"),
            }
        }
    }
    match policy.quorum {
        Some(Member::Witness(w)) => assert!(w < policy.witnesses.len()),
        Some(Member::Group(g)) => assert!(g < policy.groups.len()),
        None => {}
    }
}

/// The target: `fuzz_targets/tlog_policy.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let (text, flags) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    assert_eq!(Policy::parse(text).as_ref(), Ok(&policy));
    check_well_formed(&policy);

    let n = policy.witnesses.len();
    let all = vec![true; n];
    let none = vec![false; n];
    assert!(policy.quorum_met(&all), "quorum not met with every witness");
    assert_eq!(policy.quorum_met(&none), policy.quorum.is_none());
    assert_eq!(policy.quorum_met(&[]), policy.quorum.is_none());

    if let Some(flags) = flags {
        let cosigned: Vec<bool> = flags.iter().map(|b| b & 1 == 1).collect();
        let met = policy.quorum_met(&cosigned);
        assert_eq!(met, naive_quorum(&policy, &cosigned));
        // Flags beyond the witnesses do not matter; missing ones are false.
        let mut fitted = cosigned.clone();
        fitted.resize(n, false);
        assert_eq!(policy.quorum_met(&fitted), met);
        // Monotone: one more cosignature never breaks a met quorum.
        if met {
            for i in 0..n.min(16) {
                let mut more = fitted.clone();
                more[i] = true;
                assert!(policy.quorum_met(&more));
            }
        }
    }

    // Verifying a real checkpoint never panics and needs its log.
    if let Ok(checkpoint) = policy.verify_checkpoint(signed_checkpoint()) {
        assert_eq!(checkpoint.origin, LOG_NAME);
        assert!(policy.logs.iter().any(|l| l.key == log_signer().verifier()));
    }
}
