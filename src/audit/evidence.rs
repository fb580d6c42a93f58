//! The evidence file: everything needed to answer one question about the
//! log offline, each entry verbatim with a c2sp.org/tlog-proof against one
//! checkpoint. Text, line-oriented, readable with `less`:
//!
//! ```text
//! modeltrail/evidence/v1
//! query inference <request ID>              (or: query version <b3:hash>,
//!                                            or: query model <time> <model>)
//! checkpoint <n>
//! <n lines: the checkpoint note, with its log signature and cosignatures>
//!
//! entry <index> <role>
//! <the entry: its exact leaf bytes, canonical JSON on one line>
//! tlog-proof <n>
//! <n lines: the entry's c2sp.org/tlog-proof, whose checkpoint is the one above>
//!
//! entry <index> <role>
//! ...
//!
//! opening
//! <the request's openings record: one line of JSON; only for query inference>
//! ```
//!
//! The `opening` block is optional (`modeltrail evidence --openings`), at
//! most one, and follows the last entry; evidence without it is exactly as
//! before.
//!
//! Roles say what part of the answer an entry is: `inference`, `version`,
//! `card`, `approval`, `transition` (the transition in effect, or for a
//! version query each transition to or from it), `next-transition` (the
//! model's first transition after the queried time), `policy` (a policy
//! entry: the log's first, the one each approval names, the newest).
//!
//! The parser is strict: every line is exactly as above, counts are
//! canonical decimals, nothing follows the last proof. It checks form only;
//! [`super::verify`] decides whether the evidence proves anything.

use std::fmt;

use crate::entry::{ContentHash, OpeningsRecord, RequestId, Timestamp};
use crate::tlog::tlog_proof::parse_decimal;

/// The first line of every evidence file.
pub const HEADER: &str = "modeltrail/evidence/v1";

/// The largest evidence file accepted.
pub const MAX_EVIDENCE_BYTES: usize = 16 << 20;

/// The most entries one evidence file holds.
pub const MAX_ITEMS: usize = 4096;

/// The most lines of a checkpoint or a tlog-proof.
const MAX_BLOCK_LINES: u64 = 1024;

/// The question the evidence answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Which model version served this request?
    Inference(RequestId),
    /// Everything about one version.
    Version(ContentHash),
    /// Which version of a model was active at a time?
    Model {
        /// The time asked about.
        at: Timestamp,
        /// The model.
        model: String,
    },
}

/// What part of the answer an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The inference asked about.
    Inference,
    /// The version that answers.
    Version,
    /// That version's card.
    Card,
    /// An approval of the version.
    Approval,
    /// The transition in effect (or one involving the version).
    Transition,
    /// The model's next transition after the queried time.
    NextTransition,
    /// A policy entry.
    Policy,
}

impl Role {
    /// Every role, in the order they are described.
    pub const ALL: [Role; 7] = [
        Role::Inference,
        Role::Version,
        Role::Card,
        Role::Approval,
        Role::Transition,
        Role::NextTransition,
        Role::Policy,
    ];

    /// The role's name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inference => "inference",
            Role::Version => "version",
            Role::Card => "card",
            Role::Approval => "approval",
            Role::Transition => "transition",
            Role::NextTransition => "next-transition",
            Role::Policy => "policy",
        }
    }

    fn parse(s: &[u8]) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str().as_bytes() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The entry's leaf index.
    pub index: u64,
    /// Its part in the answer.
    pub role: Role,
    /// The leaf bytes.
    pub entry: Vec<u8>,
    /// Its c2sp.org/tlog-proof, as text.
    pub proof: Vec<u8>,
}

/// A parsed evidence file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The question.
    pub query: Query,
    /// The checkpoint note every proof is against, verbatim.
    pub checkpoint: Vec<u8>,
    /// The entries, in file order.
    pub items: Vec<Item>,
    /// The openings of the queried request's commitments, if included.
    pub opening: Option<OpeningsRecord>,
}

/// Why a file is not well-formed evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceParseError {
    /// Larger than [`MAX_EVIDENCE_BYTES`].
    #[error("evidence is larger than {MAX_EVIDENCE_BYTES} bytes")]
    TooLarge,
    /// A line is not what the format requires there.
    #[error("evidence line {line}: {want}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What the format wants there.
        want: &'static str,
    },
    /// The file ends early.
    #[error("evidence ends early: {want}")]
    Truncated {
        /// What was expected next.
        want: &'static str,
    },
    /// More than [`MAX_ITEMS`] entries.
    #[error("evidence holds more than {MAX_ITEMS} entries")]
    TooManyItems,
}

impl Evidence {
    /// Serialises the evidence in the format of the module docs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(HEADER.as_bytes());
        out.push(b'\n');
        let query = match &self.query {
            Query::Inference(rid) => format!("query inference {rid}\n"),
            Query::Version(hash) => format!("query version {hash}\n"),
            Query::Model { at, model } => format!("query model {at} {model}\n"),
        };
        out.extend_from_slice(query.as_bytes());
        push_block(&mut out, "checkpoint", &self.checkpoint);
        for item in &self.items {
            out.extend_from_slice(format!("\nentry {} {}\n", item.index, item.role).as_bytes());
            out.extend_from_slice(&item.entry);
            out.push(b'\n');
            push_block(&mut out, "tlog-proof", &item.proof);
        }
        if let Some(record) = &self.opening {
            out.extend_from_slice(b"\nopening\n");
            out.extend_from_slice(record.to_line().as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Parses an evidence file, refusing anything not exactly in the format.
    pub fn parse(text: &[u8]) -> Result<Evidence, EvidenceParseError> {
        if text.len() > MAX_EVIDENCE_BYTES {
            return Err(EvidenceParseError::TooLarge);
        }
        let mut lines = Lines {
            rest: text,
            number: 0,
        };
        let header = lines.next("the header line")?;
        if header != HEADER.as_bytes() {
            return Err(lines.bad("the first line must be \"modeltrail/evidence/v1\""));
        }
        let query = parse_query(lines.next("the query line")?).ok_or_else(|| {
            lines.bad(
                "want: query inference <id> | query version <hash> | query model <time> <model>",
            )
        })?;
        let checkpoint = lines.block("checkpoint")?;
        let mut items = Vec::new();
        let mut opening = None;
        while !lines.rest.is_empty() {
            if opening.is_some() {
                return Err(lines.bad("nothing may follow the opening"));
            }
            if items.len() == MAX_ITEMS {
                return Err(EvidenceParseError::TooManyItems);
            }
            if !lines.next("an empty line before an entry")?.is_empty() {
                return Err(lines.bad("want an empty line before each entry"));
            }
            let line = lines.next("an entry line")?;
            if line == b"opening" {
                if !matches!(query, Query::Inference(_)) {
                    return Err(lines.bad("only an inference query carries an opening"));
                }
                let line = lines.next("the openings record")?;
                let record = OpeningsRecord::parse(line)
                    .ok()
                    .filter(|r| r.to_line().as_bytes() == line)
                    .ok_or_else(|| lines.bad("the opening is not a canonical openings record"))?;
                opening = Some(record);
                continue;
            }
            let (index, role) = parse_entry_line(line)
                .ok_or_else(|| lines.bad("want: entry <index> <role> (or: opening)"))?;
            let entry = lines.next("the entry's JSON line")?.to_vec();
            if entry.is_empty() {
                return Err(lines.bad("the entry line is empty"));
            }
            let proof = lines.block("tlog-proof")?;
            items.push(Item {
                index,
                role,
                entry,
                proof,
            });
        }
        Ok(Evidence {
            query,
            checkpoint,
            items,
            opening,
        })
    }
}

/// `<name> <n>` and the block's `n` lines.
fn push_block(out: &mut Vec<u8>, name: &str, block: &[u8]) {
    let lines = block.iter().filter(|&&b| b == b'\n').count();
    out.extend_from_slice(format!("{name} {lines}\n").as_bytes());
    out.extend_from_slice(block);
}

fn parse_query(line: &[u8]) -> Option<Query> {
    let line = std::str::from_utf8(line).ok()?;
    if let Some(rid) = line.strip_prefix("query inference ") {
        return RequestId::parse(rid).ok().map(Query::Inference);
    }
    if let Some(hash) = line.strip_prefix("query version ") {
        return ContentHash::parse(hash).ok().map(Query::Version);
    }
    let rest = line.strip_prefix("query model ")?;
    let (at, model) = rest.split_once(' ')?;
    let at = Timestamp::parse(at).ok()?;
    let model = crate::entry::ModelName::parse(model).ok()?;
    Some(Query::Model {
        at,
        model: model.as_str().to_owned(),
    })
}

fn parse_entry_line(line: &[u8]) -> Option<(u64, Role)> {
    let rest = line.strip_prefix(b"entry ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let index = parse_decimal(&rest[..space])?;
    let role = Role::parse(&rest[space + 1..])?;
    Some((index, role))
}

/// Splits newline-terminated lines off the front of the file.
struct Lines<'a> {
    rest: &'a [u8],
    number: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self, want: &'static str) -> Result<&'a [u8], EvidenceParseError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(EvidenceParseError::Truncated { want })?;
        let line = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        self.number += 1;
        Ok(line)
    }

    fn bad(&self, want: &'static str) -> EvidenceParseError {
        EvidenceParseError::Line {
            line: self.number,
            want,
        }
    }

    /// `<name> <n>` then `n` lines, returned whole with their newlines.
    fn block(&mut self, name: &'static str) -> Result<Vec<u8>, EvidenceParseError> {
        let want = if name == "checkpoint" {
            "want: checkpoint <line count>"
        } else {
            "want: tlog-proof <line count>"
        };
        let count = self
            .next(want)?
            .strip_prefix(name.as_bytes())
            .and_then(|r| r.strip_prefix(b" "))
            .and_then(parse_decimal)
            .filter(|&n| (1..=MAX_BLOCK_LINES).contains(&n))
            .ok_or_else(|| self.bad(want))?;
        let start = self.rest;
        let mut len = 0;
        for _ in 0..count {
            len += self.next("the lines of a checkpoint or tlog-proof")?.len() + 1;
        }
        Ok(start[..len].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Evidence {
        Evidence {
            query: Query::Model {
                at: Timestamp::parse("2026-01-02T03:04:05.678Z").unwrap(),
                model: "fraud model v2".into(),
            },
            checkpoint: b"example.com/log\n3\nabc=\n\n\xe2\x80\x94 example.com/log AAAA\n".to_vec(),
            items: vec![
                Item {
                    index: 2,
                    role: Role::Transition,
                    entry: b"{\"a\":1}".to_vec(),
                    proof: b"c2sp.org/tlog-proof@v1\nindex 2\n\nx\n".to_vec(),
                },
                Item {
                    index: 0,
                    role: Role::Policy,
                    entry: b"{}".to_vec(),
                    proof: b"p\n".to_vec(),
                },
            ],
            opening: None,
        }
    }

    #[test]
    fn an_opening_round_trips_only_after_an_inference_query() {
        let mut e = sample();
        e.query = Query::Inference(RequestId::parse("req-1").unwrap());
        e.opening = Some(OpeningsRecord {
            request_id: RequestId::parse("req-1").unwrap(),
            input: crate::entry::Opening([7; 32]),
            output: crate::entry::Opening([8; 32]),
        });
        let bytes = e.to_bytes();
        assert_eq!(Evidence::parse(&bytes).unwrap(), e);
        let text = String::from_utf8(bytes).unwrap();
        let extra = format!(
            "{text}\nopening\n{}\n",
            e.opening.as_ref().unwrap().to_line()
        );
        assert!(Evidence::parse(extra.as_bytes()).is_err());
        let broken = text.replace(&"07".repeat(32), &"07".repeat(31));
        assert!(Evidence::parse(broken.as_bytes()).is_err());
        let mut m = e.clone();
        m.query = sample().query;
        assert!(Evidence::parse(&m.to_bytes()).is_err());
    }

    #[test]
    fn round_trips_byte_for_byte() {
        let e = sample();
        let bytes = e.to_bytes();
        assert_eq!(Evidence::parse(&bytes).unwrap(), e);
        let mut e2 = e.clone();
        e2.query = Query::Inference(RequestId::parse("req 42/α").unwrap());
        assert_eq!(Evidence::parse(&e2.to_bytes()).unwrap(), e2);
        e2.items.clear();
        assert_eq!(Evidence::parse(&e2.to_bytes()).unwrap(), e2);
    }

    #[test]
    fn malformed_files_are_refused_with_the_line() {
        let good = String::from_utf8(sample().to_bytes()).unwrap();
        let cases: Vec<(String, EvidenceParseError)> = vec![
            (
                good.replacen("/v1", "/v2", 1),
                EvidenceParseError::Line {
                    line: 1,
                    want: "the first line must be \"modeltrail/evidence/v1\"",
                },
            ),
            (
                good.replacen("query model 2026", "query model 2026x", 1),
                EvidenceParseError::Line {
                    line: 2,
                    want: "want: query inference <id> | query version <hash> | query model <time> <model>",
                },
            ),
            (
                good.replacen("checkpoint 5", "checkpoint 05", 1),
                EvidenceParseError::Line {
                    line: 3,
                    want: "want: checkpoint <line count>",
                },
            ),
            (
                good.replacen("checkpoint 5", "checkpoint 50", 1),
                EvidenceParseError::Truncated {
                    want: "the lines of a checkpoint or tlog-proof",
                },
            ),
            (
                good.replacen("entry 2 transition", "entry 2 transitions", 1),
                EvidenceParseError::Line {
                    line: 10,
                    want: "want: entry <index> <role> (or: opening)",
                },
            ),
            (
                good.replacen("\nentry 0", "entry 0", 1),
                EvidenceParseError::Line {
                    line: 17,
                    want: "want an empty line before each entry",
                },
            ),
            (
                good.trim_end().to_owned(),
                EvidenceParseError::Truncated {
                    want: "the lines of a checkpoint or tlog-proof",
                },
            ),
            (
                format!("{good}\n"),
                EvidenceParseError::Truncated {
                    want: "an entry line",
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Evidence::parse(text.as_bytes()), Err(want), "{text:?}");
        }
    }
}
