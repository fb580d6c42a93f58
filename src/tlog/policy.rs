//! c2sp.org/tlog-policy: which logs and witnesses are trusted, and the quorum
//! of witness cosignatures a checkpoint needs to be accepted.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <name>...
//! quorum <name>|none
//! ```
//!
//! Items are separated by spaces or tabs; blank lines and `#` comments are
//! ignored; a group or the quorum may only name witnesses and groups defined
//! on earlier lines, each at most once per group; exactly one quorum line.
//! Names are opaque octet strings. Duplicate logs or witnesses (the same
//! public key under any name) are refused.
//!
//! Limits: at most [`MAX_LOGS`] logs, [`MAX_WITNESSES`] witnesses and
//! [`MAX_GROUPS`] groups (the spec recommends supporting at least 32 of each),
//! and [`MAX_POLICY_BYTES`] bytes.

use super::checkpoint::{Checkpoint, CheckpointError};
use super::note::{KeyType, Note, NoteError, VerifierKey};

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Most `log` lines accepted.
pub const MAX_LOGS: usize = 64;
/// Most `witness` lines accepted.
pub const MAX_WITNESSES: usize = 256;
/// Most `group` lines accepted.
pub const MAX_GROUPS: usize = 256;

/// A trusted log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// The log's checkpoint key; its name is the log's origin.
    pub key: VerifierKey,
    /// Where to reach the log, if given.
    pub url: Option<String>,
}

/// A trusted witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    /// The policy-local name used by groups and the quorum.
    pub name: Vec<u8>,
    /// The witness's cosigning key.
    pub key: VerifierKey,
    /// The witness's submission prefix, if given.
    pub url: Option<String>,
}

/// What a group or the quorum refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// A witness, by position in [`Policy::witnesses`].
    Witness(usize),
    /// A group, by position in [`Policy::groups`].
    Group(usize),
}

/// A k-of-n group of witnesses and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The policy-local name.
    pub name: Vec<u8>,
    /// How many members must have witnessed (1 ≤ threshold ≤ members).
    pub threshold: usize,
    /// The members, each defined before this group.
    pub members: Vec<Member>,
}

/// A parsed tlog-policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Trusted logs: a checkpoint signed by any of them is acceptable.
    pub logs: Vec<PolicyLog>,
    /// Known witnesses.
    pub witnesses: Vec<PolicyWitness>,
    /// Groups, in definition order (members always precede their group).
    pub groups: Vec<Group>,
    /// What must have witnessed a checkpoint; `None` for `quorum none`.
    pub quorum: Option<Member>,
}

/// Why a policy file is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyParseError {
    /// Larger than [`MAX_POLICY_BYTES`].
    #[error("policy is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge,
    /// A control character other than tab or newline.
    #[error("policy line {line}: control characters other than tab and newline are not allowed")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
    },
    /// The last line does not end in a newline.
    #[error("policy does not end with a newline")]
    MissingFinalNewline,
    /// A line that is not `log`, `witness`, `group` or `quorum`, or has the wrong items.
    #[error("policy line {line}: {what}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// No `quorum` line.
    #[error("policy has no quorum line")]
    MissingQuorum,
}

/// Why a checkpoint does not satisfy a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The note or its signatures are malformed, or a known key's signature fails.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The note text is not a checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint's origin is not a log of the policy.
    #[error("checkpoint origin {0:?} is not a log in the policy")]
    UnknownLog(String),
    /// The log's own signature is missing.
    #[error("checkpoint is not signed by the log key {0}")]
    MissingLogSignature(String),
    /// Too few witnesses cosigned.
    #[error("witness quorum not met: {cosigned} of {known} known witnesses cosigned ({names})")]
    QuorumNotMet {
        /// Witnesses with a valid cosignature.
        cosigned: usize,
        /// Witnesses in the policy.
        known: usize,
        /// Names of the witnesses that did cosign.
        names: String,
    },
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(text: &[u8]) -> Result<Policy, PolicyParseError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyParseError::TooLarge);
        }
        if !text.is_empty() && !text.ends_with(b"\n") {
            return Err(PolicyParseError::MissingFinalNewline);
        }
        let mut builder = Builder::default();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            let number = i + 1;
            if line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return Err(PolicyParseError::ControlCharacter { line: number });
            }
            builder.line(line).map_err(|e| e.at(number))?;
        }
        builder.finish()
    }

    /// Looks up a name defined by a `witness` or `group` line.
    fn lookup(&self, name: &[u8]) -> Option<Member> {
        if let Some(i) = self.witnesses.iter().position(|w| w.name == name) {
            return Some(Member::Witness(i));
        }
        self.groups
            .iter()
            .position(|g| g.name == name)
            .map(Member::Group)
    }

    /// Whether the quorum is met when exactly the witnesses flagged in
    /// `cosigned` (indexed like [`Self::witnesses`]) have cosigned.
    pub fn quorum_met(&self, cosigned: &[bool]) -> bool {
        let Some(quorum) = self.quorum else {
            return true;
        };
        // Groups only name earlier groups, so one pass in order decides them all.
        let mut group_met = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let count = group
                .members
                .iter()
                .filter(|m| member_met(**m, cosigned, &group_met))
                .count();
            group_met.push(count >= group.threshold);
        }
        member_met(quorum, cosigned, &group_met)
    }

    /// Verifies a signed checkpoint under this policy: its origin is a
    /// policy log, that log signed it, no known key's signature fails, and
    /// the witnesses that validly cosigned meet the quorum.
    pub fn verify_checkpoint(&self, note: &[u8]) -> Result<Checkpoint, PolicyError> {
        let note = Note::parse(note)?;
        let checkpoint = Checkpoint::from_note(&note)?;
        // Every policy log named like the origin may have signed it (a log
        // rotating its key is listed twice under one name).
        let logs: Vec<&PolicyLog> = self
            .logs
            .iter()
            .filter(|l| l.key.name() == checkpoint.origin)
            .collect();
        if logs.is_empty() {
            return Err(PolicyError::UnknownLog(checkpoint.origin.clone()));
        }

        let mut keys = Vec::with_capacity(logs.len() + self.witnesses.len());
        keys.extend(logs.iter().map(|l| l.key.clone()));
        keys.extend(self.witnesses.iter().map(|w| w.key.clone()));
        let verified = note.verify(&keys)?;

        if !verified.iter().any(|v| logs.iter().any(|l| v.key == l.key)) {
            return Err(PolicyError::MissingLogSignature(logs[0].key.to_string()));
        }
        let cosigned: Vec<bool> = self
            .witnesses
            .iter()
            .map(|w| verified.iter().any(|v| v.key == w.key))
            .collect();
        if !self.quorum_met(&cosigned) {
            let names: Vec<String> = self
                .witnesses
                .iter()
                .zip(&cosigned)
                .filter(|(_, c)| **c)
                .map(|(w, _)| String::from_utf8_lossy(&w.name).into_owned())
                .collect();
            return Err(PolicyError::QuorumNotMet {
                cosigned: names.len(),
                known: self.witnesses.len(),
                names: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
        Ok(checkpoint)
    }
}

fn member_met(member: Member, cosigned: &[bool], group_met: &[bool]) -> bool {
    match member {
        Member::Witness(i) => cosigned.get(i).copied().unwrap_or(false),
        Member::Group(i) => group_met.get(i).copied().unwrap_or(false),
    }
}

/// A line-level error before the line number is known.
struct LineError(String);

impl LineError {
    fn at(self, line: usize) -> PolicyParseError {
        PolicyParseError::Syntax { line, what: self.0 }
    }
}

/// Accumulates a policy line by line, enforcing the ordering rules.
#[derive(Default)]
struct Builder {
    policy: Policy,
    quorum_seen: bool,
}

impl Builder {
    fn policy(&mut self) -> &mut Policy {
        &mut self.policy
    }

    fn line(&mut self, line: &[u8]) -> Result<(), LineError> {
        let items: Vec<&[u8]> = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|item| !item.is_empty())
            .collect();
        let Some((&keyword, args)) = items.split_first() else {
            return Ok(());
        };
        if keyword.starts_with(b"#") {
            return Ok(());
        }
        match keyword {
            b"log" => self.log(args),
            b"witness" => self.witness(args),
            b"group" => self.group(args),
            b"quorum" => self.quorum(args),
            _ => Err(LineError(format!(
                "unknown keyword {:?}",
                String::from_utf8_lossy(keyword)
            ))),
        }
    }

    fn log(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let (key, url) = match args {
            [key] => (parse_key(key, KeyType::Ed25519)?, None),
            [key, url] => (parse_key(key, KeyType::Ed25519)?, Some(text(url)?)),
            _ => return Err(LineError("want: log <vkey> [<url>]".into())),
        };
        let policy = self.policy();
        if policy.logs.len() == MAX_LOGS {
            return Err(LineError(format!("more than {MAX_LOGS} logs")));
        }
        if policy
            .logs
            .iter()
            .any(|l| l.key.public_key() == key.public_key())
        {
            return Err(LineError("duplicate log key".into()));
        }
        policy.logs.push(PolicyLog { key, url });
        Ok(())
    }

    fn witness(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let (name, key, url) = match args {
            [name, key] => (*name, parse_key(key, KeyType::CosignatureV1)?, None),
            [name, key, url] => (
                *name,
                parse_key(key, KeyType::CosignatureV1)?,
                Some(text(url)?),
            ),
            _ => return Err(LineError("want: witness <name> <vkey> [<url>]".into())),
        };
        self.check_new_name(name)?;
        let policy = self.policy();
        if policy.witnesses.len() == MAX_WITNESSES {
            return Err(LineError(format!("more than {MAX_WITNESSES} witnesses")));
        }
        if policy
            .witnesses
            .iter()
            .any(|w| w.key.public_key() == key.public_key())
        {
            return Err(LineError("duplicate witness key".into()));
        }
        policy.witnesses.push(PolicyWitness {
            name: name.to_vec(),
            key,
            url,
        });
        Ok(())
    }

    fn group(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let [name, threshold, members @ ..] = args else {
            return Err(LineError("want: group <name> all|any|<k> <name>...".into()));
        };
        if members.is_empty() {
            return Err(LineError("a group needs at least one member".into()));
        }
        self.check_new_name(name)?;
        let mut resolved = Vec::with_capacity(members.len());
        for member in members {
            let m = self.resolve(member)?;
            if resolved.contains(&m) {
                return Err(LineError(format!(
                    "{:?} is listed twice",
                    String::from_utf8_lossy(member)
                )));
            }
            resolved.push(m);
        }
        let threshold = match *threshold {
            b"all" => resolved.len(),
            b"any" => 1,
            k => super::tlog_proof::parse_decimal(k)
                .and_then(|k| usize::try_from(k).ok())
                .filter(|k| (1..=resolved.len()).contains(k))
                .ok_or_else(|| {
                    LineError(format!(
                        "threshold must be all, any or a decimal from 1 to {}",
                        resolved.len()
                    ))
                })?,
        };
        let policy = self.policy();
        if policy.groups.len() == MAX_GROUPS {
            return Err(LineError(format!("more than {MAX_GROUPS} groups")));
        }
        policy.groups.push(Group {
            name: name.to_vec(),
            threshold,
            members: resolved,
        });
        Ok(())
    }

    fn quorum(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let [name] = args else {
            return Err(LineError("want: quorum <name>".into()));
        };
        if self.quorum_seen {
            return Err(LineError("more than one quorum line".into()));
        }
        let quorum = match *name {
            b"none" => None,
            name => Some(self.resolve(name)?),
        };
        self.policy().quorum = quorum;
        self.quorum_seen = true;
        Ok(())
    }

    /// A witness or group defined on an earlier line.
    fn resolve(&mut self, name: &[u8]) -> Result<Member, LineError> {
        if name == b"none" {
            return Err(LineError("\"none\" cannot be a group member".into()));
        }
        self.policy().lookup(name).ok_or_else(|| {
            LineError(format!(
                "{:?} is not a witness or group defined on an earlier line",
                String::from_utf8_lossy(name)
            ))
        })
    }

    fn check_new_name(&mut self, name: &[u8]) -> Result<(), LineError> {
        if name == b"none" {
            return Err(LineError("\"none\" is a reserved name".into()));
        }
        if self.policy().lookup(name).is_some() {
            return Err(LineError(format!(
                "{:?} is already defined",
                String::from_utf8_lossy(name)
            )));
        }
        Ok(())
    }

    fn finish(self) -> Result<Policy, PolicyParseError> {
        if !self.quorum_seen {
            return Err(PolicyParseError::MissingQuorum);
        }
        Ok(self.policy)
    }
}

fn text(item: &[u8]) -> Result<String, LineError> {
    String::from_utf8(item.to_vec()).map_err(|_| LineError("URL is not valid UTF-8".into()))
}

/// Parses a vkey that must be of `want` type: logs sign checkpoints with
/// plain Ed25519 note keys, witnesses with cosignature/v1 keys.
fn parse_key(item: &[u8], want: KeyType) -> Result<VerifierKey, LineError> {
    let vkey =
        std::str::from_utf8(item).map_err(|_| LineError("vkey is not valid UTF-8".into()))?;
    let key = VerifierKey::parse(vkey).map_err(|e| LineError(format!("bad vkey: {e}")))?;
    if key.key_type() != want {
        return Err(LineError(format!(
            "vkey {} has type {}, want {}",
            key.name(),
            key.key_type(),
            want
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::cosignature::cosign;
    use crate::tlog::note::SignerKey;

    fn log_key() -> SignerKey {
        SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[1; 32]).unwrap()
    }

    fn witness_key(name: &str, seed: u8) -> SignerKey {
        SignerKey::from_seed(name, KeyType::CosignatureV1, &[seed; 32]).unwrap()
    }

    /// Two organisations' witnesses, as in the spec's example.
    fn example_policy() -> (Policy, Vec<SignerKey>) {
        let witnesses: Vec<SignerKey> = (0..6)
            .map(|i| witness_key(&format!("w{i}.example"), 10 + i))
            .collect();
        let mut text = format!("# example\nlog {}\n\n", log_key().verifier());
        for (i, w) in witnesses.iter().enumerate() {
            let org = if i < 3 { 'X' } else { 'Y' };
            text += &format!(
                "witness {org}{} {} https://w{i}.example/\n",
                i % 3 + 1,
                w.verifier()
            );
        }
        text += "group X-witnesses 2 X1 X2 X3\n\tgroup Y-witnesses any Y1 Y2 Y3  \n";
        text += "group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n";
        (Policy::parse(text.as_bytes()).unwrap(), witnesses)
    }

    fn checkpoint_note(size: u64, cosigners: &[&SignerKey]) -> Vec<u8> {
        let text = format!(
            "example.com/log\n{size}\n{}\n",
            crate::tlog::empty_tree_hash()
        );
        let mut note = Note::sign(&text, &[&log_key()]).unwrap();
        for w in cosigners {
            cosign(&mut note, w, 1_700_000_000).unwrap();
        }
        note.to_bytes()
    }

    #[test]
    fn parses_the_spec_example_shape() {
        let (policy, _) = example_policy();
        assert_eq!(policy.logs.len(), 1);
        assert_eq!(policy.witnesses.len(), 6);
        assert_eq!(
            policy.witnesses[0].url.as_deref(),
            Some("https://w0.example/")
        );
        assert_eq!(policy.groups[0].threshold, 2);
        assert_eq!(policy.groups[1].threshold, 1);
        assert_eq!(policy.groups[2].threshold, 2);
        assert_eq!(policy.quorum, Some(Member::Group(2)));
    }

    #[test]
    fn quorum_needs_two_x_and_one_y() {
        let (policy, _) = example_policy();
        let met = |set: &[usize]| {
            let mut cosigned = vec![false; 6];
            set.iter().for_each(|&i| cosigned[i] = true);
            policy.quorum_met(&cosigned)
        };
        assert!(met(&[0, 1, 3]));
        assert!(met(&[0, 2, 5]));
        assert!(met(&[0, 1, 2, 3, 4, 5]));
        assert!(!met(&[0, 3, 4, 5]));
        assert!(!met(&[0, 1, 2]));
        assert!(!met(&[]));
    }

    #[test]
    fn verifies_checkpoints_against_the_quorum() {
        let (policy, w) = example_policy();
        let good = checkpoint_note(5, &[&w[0], &w[2], &w[4]]);
        let cp = policy.verify_checkpoint(&good).unwrap();
        assert_eq!((cp.origin.as_str(), cp.size), ("example.com/log", 5));

        let short = checkpoint_note(5, &[&w[0], &w[4]]);
        assert!(matches!(
            policy.verify_checkpoint(&short),
            Err(PolicyError::QuorumNotMet { cosigned: 2, .. })
        ));

        // A cosignature by a witness the policy does not know counts for nothing.
        let stranger = witness_key("w0.example", 99);
        let unknown = checkpoint_note(5, &[&w[0], &stranger, &w[4]]);
        assert!(matches!(
            policy.verify_checkpoint(&unknown),
            Err(PolicyError::QuorumNotMet { .. })
        ));
    }

    #[test]
    fn a_failing_known_cosignature_rejects_the_checkpoint() {
        let (policy, w) = example_policy();
        let mut note = checkpoint_note(5, &[&w[0], &w[1], &w[3]]);
        // Corrupt the last cosignature's final base64 character.
        let at = note.len() - 3;
        note[at] = if note[at] == b'A' { b'B' } else { b'A' };
        assert!(matches!(
            policy.verify_checkpoint(&note),
            Err(PolicyError::Note(_))
        ));
    }

    #[test]
    fn quorum_none_needs_only_the_log() {
        let text = format!("log {}\nquorum none\n", log_key().verifier());
        let policy = Policy::parse(text.as_bytes()).unwrap();
        policy.verify_checkpoint(&checkpoint_note(0, &[])).unwrap();

        let other = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[2; 32]).unwrap();
        let text = "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
        let forged = Note::sign(text, &[&other]).unwrap().to_bytes();
        assert!(policy.verify_checkpoint(&forged).is_err());
    }

    #[test]
    fn a_second_log_key_under_the_same_name_is_accepted() {
        let old = log_key();
        let new = SignerKey::from_seed("example.com/log", KeyType::Ed25519, &[7; 32]).unwrap();
        let text = format!(
            "log {}\nlog {}\nquorum none\n",
            old.verifier(),
            new.verifier()
        );
        let policy = Policy::parse(text.as_bytes()).unwrap();
        let checkpoint = "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
        for key in [&old, &new] {
            let note = Note::sign(checkpoint, &[key]).unwrap().to_bytes();
            policy.verify_checkpoint(&note).unwrap();
        }
    }

    #[test]
    fn unknown_origin_is_refused() {
        let (policy, _) = example_policy();
        let key = SignerKey::from_seed("other.example/log", KeyType::Ed25519, &[1; 32]).unwrap();
        let text = "other.example/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
        let note = Note::sign(text, &[&key]).unwrap().to_bytes();
        assert!(matches!(
            policy.verify_checkpoint(&note),
            Err(PolicyError::UnknownLog(_))
        ));
    }

    #[test]
    fn malformed_policies_are_refused_with_their_line() {
        let log = log_key().verifier().to_string();
        let w1 = witness_key("a", 3).verifier().to_string();
        let w2 = witness_key("b", 4).verifier().to_string();
        let cases: Vec<(String, &str)> = vec![
            (format!("log {log}\n"), "no quorum"),
            (format!("log {log}\nquorum none"), "final newline"),
            (
                format!("log {log}\nquorum none\nquorum none\n"),
                "two quorums",
            ),
            (format!("log {log}\nquorum W\n"), "undefined quorum"),
            (
                format!("log {log}\nlog {log}\nquorum none\n"),
                "duplicate log",
            ),
            (
                format!("witness A {w1}\nwitness B {w1}\nquorum A\n"),
                "duplicate witness key",
            ),
            (
                format!("witness A {w1}\nwitness A {w2}\nquorum A\n"),
                "duplicate name",
            ),
            (format!("witness none {w1}\nquorum none\n"), "reserved name"),
            (format!("witness A {w1}\ngroup G 2 A\nquorum G\n"), "k > n"),
            (format!("witness A {w1}\ngroup G 0 A\nquorum G\n"), "k = 0"),
            (
                format!("witness A {w1}\ngroup G 01 A\nquorum G\n"),
                "leading zero",
            ),
            (
                format!("witness A {w1}\ngroup G any A A\nquorum G\n"),
                "member twice",
            ),
            (
                format!("witness A {w1}\ngroup G any\nquorum G\n"),
                "no members",
            ),
            (
                format!("witness A {w1}\ngroup G any none\nquorum G\n"),
                "none member",
            ),
            (
                format!("group G any A\nwitness A {w1}\nquorum G\n"),
                "forward reference",
            ),
            (format!("witness A {log}\nquorum A\n"), "log key as witness"),
            (format!("log {w1}\nquorum none\n"), "witness key as log"),
            (format!("log {log}\r\nquorum none\n"), "carriage return"),
            ("frobnicate\nquorum none\n".into(), "unknown keyword"),
            ("log not-a-key\nquorum none\n".into(), "bad vkey"),
        ];
        for (text, what) in cases {
            assert!(Policy::parse(text.as_bytes()).is_err(), "{what}: {text:?}");
        }
    }

    #[test]
    fn names_are_opaque_octets() {
        let w1 = witness_key("a", 3).verifier().to_string();
        let w2 = witness_key("b", 4).verifier().to_string();
        let text =
            format!("witness K {w1}\nwitness \u{212a} {w2}\ngroup G all K \u{212a}\nquorum G\n");
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(policy.groups[0].members.len(), 2);
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"# \xff\xfe comment\n");
        assert!(Policy::parse(&bytes).is_ok());
    }
}
