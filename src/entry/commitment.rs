//! Hiding commitments to an inference's input and output, and the openings
//! that open them (DESIGN "Commitments are hiding"; docs/ARCHITECTURE.md
//! "Hiding commitments").
//!
//! A hiding commitment is written `c1:` + 64 lowercase hex digits:
//!
//! ```text
//! c1:hex( BLAKE3-keyed(key = opening,
//!                      "modeltrail/commitment/v1\n" + role + "\n" + bytes) )
//! ```
//!
//! where `opening` is 32 fresh random bytes per record and `role` is
//! `input` or `output`. Without the opening, a commitment says nothing about
//! the bytes (BLAKE3's keyed mode is a PRF); with it, it binds them (BLAKE3
//! is collision resistant). The role keeps an input's commitment from
//! opening as an output. A plain commitment is `b3:` + BLAKE3(bytes), as
//! inferences logged before hiding commitments carry; it still verifies,
//! but anyone can confirm a guess of its bytes.
//!
//! An [`OpeningsRecord`] holds the two openings of one request, as one line
//! of JSON:
//!
//! ```text
//! {"v":1,"request_id":"<id>","input":"<64 hex>","output":"<64 hex>"}
//! ```
//!
//! Everything here is pure: no I/O (the caller supplies the randomness).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use super::bodies::{ContentHash, RequestId};

/// The domain-separation context of a hiding commitment.
pub const COMMITMENT_CONTEXT: &str = "modeltrail/commitment/v1";

/// The prefix of a hiding commitment.
pub const HIDING_PREFIX: &str = "c1:";

/// The longest openings record accepted, in bytes.
pub const MAX_OPENINGS_RECORD: usize = 4096;

/// Which side of an inference a commitment is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request input.
    Input,
    /// The response output.
    Output,
}

impl Side {
    /// `input` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Input => "input",
            Side::Output => "output",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 32-byte opening (the key of one commitment). Its `Debug` does not show
/// the bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Opening(pub [u8; 32]);

impl fmt::Debug for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opening(..)")
    }
}

impl Opening {
    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses exactly 64 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Opening> {
        parse_hex32(s).map(Opening)
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'a' + 10,
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *o = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Some(out)
}

fn hex(bytes: &[u8; 32]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An inference's commitment to its input or output: hiding (`c1:`) or, as
/// logged before hiding commitments, plain (`b3:`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Commitment {
    /// `b3:` + BLAKE3(bytes): binding, not hiding.
    Plain(ContentHash),
    /// `c1:` + the keyed hash of the module docs.
    Hiding([u8; 32]),
}

/// Why a string is not a [`Commitment`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid commitment {0:?}: must be \"c1:\" (hiding) or \"b3:\" (plain) followed by 64 lowercase hexadecimal digits"
)]
pub struct CommitmentError(String);

impl Commitment {
    /// The hiding commitment to `bytes` on `side` under `opening`.
    pub fn hiding(opening: &Opening, side: Side, bytes: &[u8]) -> Commitment {
        let mut h = blake3::Hasher::new_keyed(&opening.0);
        h.update(COMMITMENT_CONTEXT.as_bytes());
        h.update(b"\n");
        h.update(side.as_str().as_bytes());
        h.update(b"\n");
        h.update(bytes);
        Commitment::Hiding(*h.finalize().as_bytes())
    }

    /// Whether the commitment is hiding.
    pub fn is_hiding(&self) -> bool {
        matches!(self, Commitment::Hiding(_))
    }

    /// Whether `bytes` open this commitment on `side`: under `opening` for a
    /// hiding commitment (none given: no), by their plain hash for a plain
    /// one (the opening is not needed). Constant-time comparison.
    pub fn opens(&self, opening: Option<&Opening>, side: Side, bytes: &[u8]) -> bool {
        match self {
            Commitment::Plain(h) => blake3::Hash::from(h.0) == blake3::hash(bytes),
            Commitment::Hiding(c) => opening.is_some_and(|o| {
                let Commitment::Hiding(got) = Commitment::hiding(o, side, bytes) else {
                    return false;
                };
                blake3::Hash::from(*c) == blake3::Hash::from(got)
            }),
        }
    }

    /// Parses `c1:` or `b3:` + exactly 64 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Commitment, CommitmentError> {
        if let Some(hex) = s.strip_prefix(HIDING_PREFIX) {
            return parse_hex32(hex)
                .map(Commitment::Hiding)
                .ok_or_else(|| CommitmentError(s.to_owned()));
        }
        ContentHash::parse(s)
            .map(Commitment::Plain)
            .map_err(|_| CommitmentError(s.to_owned()))
    }
}

impl From<ContentHash> for Commitment {
    fn from(h: ContentHash) -> Commitment {
        Commitment::Plain(h)
    }
}

impl fmt::Display for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Commitment::Plain(h) => h.fmt(f),
            Commitment::Hiding(c) => write!(f, "{HIDING_PREFIX}{}", hex(c)),
        }
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({self})")
    }
}

impl FromStr for Commitment {
    type Err = CommitmentError;
    fn from_str(s: &str) -> Result<Commitment, CommitmentError> {
        Commitment::parse(s)
    }
}

impl Serialize for Commitment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Commitment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Commitment, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Commitment::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The openings of one request's input and output commitments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningsRecord {
    /// The request they belong to.
    pub request_id: RequestId,
    /// The input commitment's opening.
    pub input: Opening,
    /// The output commitment's opening.
    pub output: Opening,
}

/// Why bytes are not an openings record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid openings record: {0}")]
pub struct OpeningsError(String);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    v: u64,
    request_id: String,
    input: String,
    output: String,
}

impl OpeningsRecord {
    /// The opening of `side`.
    pub fn opening(&self, side: Side) -> &Opening {
        match side {
            Side::Input => &self.input,
            Side::Output => &self.output,
        }
    }

    /// The record as one line of JSON (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(&RawRecord {
            v: 1,
            request_id: self.request_id.as_str().to_owned(),
            input: self.input.to_hex(),
            output: self.output.to_hex(),
        })
        .expect("a record serialises")
    }

    /// Parses one record (a trailing newline is allowed), strictly: every
    /// member present, no other, `v` 1, openings 64 lowercase hex digits.
    /// Never panics; a fuzzing entry point.
    pub fn parse(bytes: &[u8]) -> Result<OpeningsRecord, OpeningsError> {
        let bad = |m: String| OpeningsError(m);
        if bytes.len() > MAX_OPENINGS_RECORD {
            return Err(bad(format!("longer than {MAX_OPENINGS_RECORD} bytes")));
        }
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let raw: RawRecord = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if raw.v != 1 {
            return Err(bad(format!("unknown version {}", raw.v)));
        }
        let request_id = RequestId::parse(&raw.request_id).map_err(|e| bad(e.to_string()))?;
        let opening = |s: &str, side: Side| {
            Opening::parse(s)
                .ok_or_else(|| bad(format!("the {side} opening is not 64 lowercase hex digits")))
        };
        Ok(OpeningsRecord {
            request_id,
            input: opening(&raw.input, Side::Input)?,
            output: opening(&raw.output, Side::Output)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_unrelated_commitments_and_roles_differ() {
        let (a, b) = (Opening([1; 32]), Opening([2; 32]));
        let ca = Commitment::hiding(&a, Side::Output, b"{\"fraud\": false}");
        let cb = Commitment::hiding(&b, Side::Output, b"{\"fraud\": false}");
        assert_ne!(ca, cb);
        assert!(ca.opens(Some(&a), Side::Output, b"{\"fraud\": false}"));
        assert!(!ca.opens(Some(&b), Side::Output, b"{\"fraud\": false}"));
        assert!(!ca.opens(Some(&a), Side::Input, b"{\"fraud\": false}"));
        assert!(!ca.opens(Some(&a), Side::Output, b"{\"fraud\": true}"));
        assert!(!ca.opens(None, Side::Output, b"{\"fraud\": false}"));
        let text = ca.to_string();
        assert!(text.starts_with("c1:"));
        assert_eq!(Commitment::parse(&text).unwrap(), ca);
    }

    #[test]
    fn plain_still_parses_and_opens_without_an_opening() {
        let p = Commitment::from(ContentHash::of(b"x"));
        assert!(!p.is_hiding());
        assert_eq!(Commitment::parse(&p.to_string()).unwrap(), p);
        assert!(p.opens(None, Side::Input, b"x"));
        assert!(!p.opens(None, Side::Input, b"y"));
        for bad in [
            "c1:",
            "c1:AB",
            "c2:00",
            "x",
            &format!("c1:{}", "A".repeat(64)),
        ] {
            assert!(Commitment::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_round_trips_and_is_strict() {
        let r = OpeningsRecord {
            request_id: RequestId::parse("req-1").unwrap(),
            input: Opening([3; 32]),
            output: Opening([4; 32]),
        };
        let line = r.to_line();
        assert_eq!(OpeningsRecord::parse(line.as_bytes()).unwrap(), r);
        assert_eq!(
            OpeningsRecord::parse(format!("{line}\n").as_bytes()).unwrap(),
            r
        );
        for bad in [
            line.replace("\"v\":1", "\"v\":2"),
            line.replace("\"v\":1", "\"v\":1,\"x\":1"),
            line.replace(&"03".repeat(32), &"03".repeat(31)),
            line.replace(&"03".repeat(32), &"0A".repeat(32)),
            String::new(),
        ] {
            assert!(OpeningsRecord::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
