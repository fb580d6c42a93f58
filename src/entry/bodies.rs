//! Typed, strictly parsed bodies of the five governance kinds (DESIGN
//! "Entries"): `model_card`, `model_version`, `approval`, `transition` and
//! `inference`, plus [`Body`], which also covers `policy` ([`PolicyBody`]).
//!
//! Every body follows the style of [`PolicyBody`]: unknown members are
//! refused everywhere except inside the optional `extensions` object, which
//! is free-form. `parse` checks the schema (serde, `deny_unknown_fields`) and
//! then the semantic rules that need only the body itself; rules that need
//! log state (does the card exist, does the approval cover every criterion of
//! the policy, is `from` the active version) are the sequencer's. Everything
//! here is pure: no I/O, and nothing reads the clock.
//!
//! # Model card fields
//!
//! The card's fields follow Mitchell et al. 2019, "Model Cards for Model
//! Reporting", and the Hugging Face model-card metadata:
//!
//! | field           | Mitchell et al. 2019 section           | Hugging Face metadata        |
//! |-----------------|----------------------------------------|------------------------------|
//! | `model`         | Model Details (name)                   | `model-index[].name`         |
//! | `training_data` | Training Data                          | `datasets`                   |
//! | `evaluation`    | Quantitative Analyses / Evaluation Data | `model-index[].results[]`: `metrics[].type`, `metrics[].value`, `dataset.name` |
//! | `intended_use`  | Intended Use                           | card section "Uses"          |
//! | `limitations`   | Caveats and Recommendations, Ethical Considerations | card section "Bias, Risks, and Limitations" |
//! | `documents`     | (full reports, referenced by hash)     | —                            |
//! | `extensions`    | Factors, Metrics and anything else     | `license`, `tags`, …         |
//!
//! # Decisions
//!
//! - Free-text fields (`training_data`, `intended_use`, `limitations`,
//!   `reason`) must not be empty or only white space: a model-risk reviewer
//!   reads an empty "limitations" as a missing section, not as "none". They
//!   may contain newlines. `comment` on an approval may be empty.
//! - Names ([`ModelName`], document names, criterion IDs) and
//!   [`RequestId`]s refuse control characters and leading or trailing white
//!   space, so two names that print the same are the same name. Invisible
//!   and look-alike characters are refused by the identifier rule
//!   ([`super::identifier`]), which the sequencer applies to new entries and
//!   the auditor to logged ones: parsing accepts them so that a log written
//!   before the rule still reads.
//! - Optional members are either absent or present with a value: an explicit
//!   `null` is refused, so one meaning has one leaf. The exception is
//!   [`Transition::from`], which is required and is `null` for the first
//!   activation: an auditor sees "first activation" explicitly.
//! - An approval's criterion `note` is optional (`{"met": true}` is
//!   accepted); the contract's `{"met": …, "note": "…"}` is the usual form.
//! - `served_at` is [`Timestamp`]: exactly `YYYY-MM-DDTHH:MM:SS.mmmZ`
//!   (uppercase `T` and `Z`, three fraction digits, UTC, no leap second,
//!   years 1970–9999), so one instant has exactly one spelling.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

use super::canonical::parse_strict;
use super::commitment::Commitment;
use super::policy::PolicyBody;
use super::{ArtefactId, EntryError, Kind};

/// The longest [`ModelName`], in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 200;

/// The longest [`RequestId`], in characters (Unicode scalar values).
pub const MAX_REQUEST_ID_CHARS: usize = 256;

/// The longest `registry_ref`, in characters.
pub const MAX_REGISTRY_REF_CHARS: usize = 1024;

/// Why a body is invalid. Converted to [`EntryError::InvalidBody`] (422,
/// `invalid_body`) by [`Body::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body does not match the schema: missing, unknown or mistyped
    /// member, or a malformed name, hash or timestamp.
    #[error("{0}")]
    Schema(String),
    /// A required text member is empty or only white space.
    #[error("{field} must not be empty or only white space")]
    EmptyText {
        /// The member, e.g. `limitations` or `evaluation[1].metric`.
        field: String,
    },
    /// A name-like member is not a valid name (see [`ModelName`]).
    #[error("{field}: {reason}")]
    BadName {
        /// The member, e.g. `documents[0].name`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A model card has no evaluation results.
    #[error("evaluation must list at least one result")]
    NoEvaluation,
    /// An approval approves although a criterion is not met.
    #[error(
        "decision is \"approve\" but criterion {criterion:?} is not met; an approval must not approve against a failed criterion (decide \"reject\")"
    )]
    ApprovedFailedCriterion {
        /// The first failed criterion, by ID.
        criterion: String,
    },
    /// A transition's `from` and `to` are the same version.
    #[error("from and to are both {0}; a transition must change the active version")]
    NoChange(ContentHash),
}

impl From<serde_json::Error> for BodyError {
    fn from(e: serde_json::Error) -> BodyError {
        BodyError::Schema(e.to_string())
    }
}

/// Debug-quotes `s` for an error message, cut to 80 characters.
fn quote(s: &str) -> String {
    let mut q: String = s.chars().take(80).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    format!("{q:?}")
}

/// Checks a name-like string: non-empty, at most `max` characters, no
/// control characters, no leading or trailing white space.
fn check_name(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max {
        return Err(format!("{} is longer than {max} characters", quote(s)));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{} contains a control character", quote(s)));
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err(format!("{} has leading or trailing white space", quote(s)));
    }
    Ok(())
}

fn check_text(s: &str, field: impl Into<String>) -> Result<(), BodyError> {
    if s.trim().is_empty() {
        return Err(BodyError::EmptyText {
            field: field.into(),
        });
    }
    Ok(())
}

/// Deserialises a present optional member, refusing an explicit `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Deserialises a required member that may be `null`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// Implements `Display`, `FromStr`, `Serialize` and a validating
/// `Deserialize` for a string newtype with a `parse` function.
macro_rules! string_type {
    ($t:ident, $err:ty) => {
        impl FromStr for $t {
            type Err = $err;
            fn from_str(s: &str) -> Result<$t, $err> {
                $t::parse(s)
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $t::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A validated text newtype: `as_str`, `Display`, and the serde and
/// `FromStr` impls of [`string_type!`].
macro_rules! text_type {
    ($t:ident, $err:ty) => {
        impl $t {
            /// The text, as validated.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        string_type!($t, $err);
    };
}

/// A model name: non-empty, at most [`MAX_NAME_CHARS`] characters, no
/// control characters, no leading or trailing white space. `/` is allowed
/// (Hugging Face `org/model` names). Compared exactly (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(String);

/// Why a string is not a [`ModelName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model name: {0}")]
pub struct ModelNameError(String);

impl ModelName {
    /// Validates `s` as a model name.
    pub fn parse(s: &str) -> Result<ModelName, ModelNameError> {
        check_name(s, MAX_NAME_CHARS).map_err(ModelNameError)?;
        Ok(ModelName(s.to_owned()))
    }
}

text_type!(ModelName, ModelNameError);

/// The BLAKE3 hash of some content (a weights manifest, a document, an
/// inference input or output), written like an [`ArtefactId`]: `b3:` + 64
/// lowercase hex digits. Distinct from [`ArtefactId`], which hashes a leaf.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

/// Why a string is not a [`ContentHash`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid content hash {0}: must be \"b3:\" followed by 64 lowercase hexadecimal digits")]
pub struct ContentHashError(String);

impl ContentHash {
    /// The BLAKE3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// Parses `b3:` + exactly 64 lowercase hex digits; nothing else.
    pub fn parse(s: &str) -> Result<ContentHash, ContentHashError> {
        ArtefactId::parse(s)
            .map(|id| ContentHash(id.0))
            .map_err(|_| ContentHashError(quote(s)))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ArtefactId(self.0).fmt(f)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

string_type!(ContentHash, ContentHashError);

/// A git commit SHA: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
/// Informational only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GitSha(String);

/// Why a string is not a [`GitSha`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid git SHA {0}: must be 40 or 64 lowercase hexadecimal digits")]
pub struct GitShaError(String);

impl GitSha {
    /// Validates `s` as a git SHA.
    pub fn parse(s: &str) -> Result<GitSha, GitShaError> {
        let hex = s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hex && (s.len() == 40 || s.len() == 64) {
            Ok(GitSha(s.to_owned()))
        } else {
            Err(GitShaError(quote(s)))
        }
    }
}

text_type!(GitSha, GitShaError);

/// A model registry reference such as MLflow's `models:/name/3`: non-empty,
/// at most [`MAX_REGISTRY_REF_CHARS`] characters, no white space or control
/// characters. Its scheme is not interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryRef(String);

/// Why a string is not a [`RegistryRef`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid registry reference: {0}")]
pub struct RegistryRefError(String);

impl RegistryRef {
    /// Validates `s` as a registry reference.
    pub fn parse(s: &str) -> Result<RegistryRef, RegistryRefError> {
        check_name(s, MAX_REGISTRY_REF_CHARS).map_err(RegistryRefError)?;
        if s.contains(char::is_whitespace) {
            return Err(RegistryRefError(format!(
                "{} contains white space",
                quote(s)
            )));
        }
        Ok(RegistryRef(s.to_owned()))
    }
}

text_type!(RegistryRef, RegistryRefError);

/// The ID of one served request: non-empty, at most [`MAX_REQUEST_ID_CHARS`]
/// characters, no control characters, no leading or trailing white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(String);

/// Why a string is not a [`RequestId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request ID: {0}")]
pub struct RequestIdError(String);

impl RequestId {
    /// Validates `s` as a request ID.
    pub fn parse(s: &str) -> Result<RequestId, RequestIdError> {
        check_name(s, MAX_REQUEST_ID_CHARS).map_err(RequestIdError)?;
        Ok(RequestId(s.to_owned()))
    }
}

text_type!(RequestId, RequestIdError);

/// An instant in Unix milliseconds (UTC, no leap seconds), written in RFC
/// 3339 with milliseconds exactly: `YYYY-MM-DDTHH:MM:SS.mmmZ`. Years
/// 1970–9999. Reading the clock is the caller's business, not this type's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(u64);

/// Why a string or number is not a [`Timestamp`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0}: must be RFC 3339 UTC with milliseconds, YYYY-MM-DDTHH:MM:SS.mmmZ")]
pub struct TimestampError(String);

/// Days from 1970-01-01 to `y`-`m`-`d` (proleptic Gregorian; H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of `z` days after 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Timestamp {
    /// The latest representable instant, 9999-12-31T23:59:59.999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// The instant `ms` milliseconds after the Unix epoch, if at most
    /// [`Timestamp::MAX`].
    pub fn from_unix_millis(ms: u64) -> Option<Timestamp> {
        (ms <= Timestamp::MAX.0).then_some(Timestamp(ms))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> u64 {
        self.0
    }

    /// Parses exactly `YYYY-MM-DDTHH:MM:SS.mmmZ`: uppercase `T` and `Z`,
    /// month and day in range (leap years included), hour ≤ 23, minute and
    /// second ≤ 59, year ≥ 1970. Never panics.
    pub fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        let err = || TimestampError(quote(s));
        let b = s.as_bytes();
        if b.len() != 24 {
            return Err(err());
        }
        for (i, want) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
            if b[i] != want {
                return Err(err());
            }
        }
        if b[19] != b'.' || b[23] != b'Z' {
            return Err(err());
        }
        let num = |from: usize, to: usize| -> Result<u32, TimestampError> {
            b[from..to].iter().try_fold(0u32, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + u32::from(c - b'0'))
                } else {
                    Err(err())
                }
            })
        };
        let (year, month, day) = (i64::from(num(0, 4)?), num(5, 7)?, num(8, 10)?);
        let (hour, minute, second, milli) =
            (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
        if year < 1970
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(err());
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        // year ≥ 1970 makes `secs` non-negative.
        Ok(Timestamp(secs as u64 * 1000 + u64::from(milli)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let sod = secs % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )
    }
}

string_type!(Timestamp, TimestampError);

/// One evaluation result: `metric` measured on `dataset` gave `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationResult {
    /// The metric, e.g. `accuracy`, `auc`, `f1`.
    pub metric: String,
    /// The measured value, as written (kept as a JSON number so the body
    /// round-trips exactly).
    pub value: Number,
    /// The evaluation dataset, by name.
    pub dataset: String,
}

/// A large document referenced by hash rather than embedded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// What the document is, e.g. `bias-audit.pdf` (a name, see
    /// [`ModelName`] for the rules).
    pub name: String,
    /// BLAKE3 of the document's bytes.
    pub hash: ContentHash,
}

/// A `model_card` body. See the module docs for the field mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// The model the card describes.
    pub model: ModelName,
    /// Summary of the training data.
    pub training_data: String,
    /// Evaluation results, at least one.
    pub evaluation: Vec<EvaluationResult>,
    /// What the model is for (and not for).
    pub intended_use: String,
    /// Known limitations, risks and caveats.
    pub limitations: String,
    /// Large documents, referenced by BLAKE3 hash.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub documents: Option<Vec<Document>>,
    /// Free-form additions.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<Map<String, Value>>,
}

/// A `model_version` body: a version hash of a model's weights and the card
/// it is registered under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelVersion {
    /// The model (must match the card's, a chain rule).
    pub model: ModelName,
    /// BLAKE3 of the canonical weights manifest.
    pub version_hash: ContentHash,
    /// The artefact ID of the model card entry.
    pub card: ArtefactId,
    /// A model registry reference, e.g. `models:/name/3`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub registry_ref: Option<RegistryRef>,
    /// The source commit (informational).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub git_sha: Option<GitSha>,
    /// Free-form additions.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<Map<String, Value>>,
}

/// An approver's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The version may be activated (counts towards the policy's quorum).
    Approve,
    /// The version is rejected.
    Reject,
}

/// The result of one policy criterion in an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriterionResult {
    /// Whether the criterion is met.
    pub met: bool,
    /// The approver's note (optional; see the module docs).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub note: Option<String>,
}

/// An `approval` body: a verdict on a version under a policy.
///
/// Rule checked at parse: a `decision` of `approve` with any criterion
/// `met: false` is invalid. An approval must not approve against a failed
/// criterion: the policy's criteria are the conditions of approval, so such
/// an entry would count towards the activation quorum while recording that
/// a condition does not hold. The approver must `reject` (or fix the
/// version). Whether every criterion of the policy is covered is a chain
/// rule (it needs the policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The version judged.
    pub version_hash: ContentHash,
    /// The artefact ID of the policy entry judged against.
    pub policy: ArtefactId,
    /// The result of each criterion, by criterion ID.
    pub criteria: BTreeMap<String, CriterionResult>,
    /// Approve or reject.
    pub decision: Decision,
    /// The approver's comment (may be empty).
    pub comment: String,
    /// Free-form additions.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<Map<String, Value>>,
}

/// A `transition` body: an activation or a rollback (a forward transition to
/// an earlier version). `from` must differ from `to`.
///
/// `at` is when the change takes effect, as the authoriser states it: the
/// log's entries carry no time of their own (checkpoints have none), and
/// "which version was active at time T" must be answerable from the log
/// alone. The sequencer keeps it monotonic per model and near its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The model.
    pub model: ModelName,
    /// The active version this replaces; `null` for the first activation.
    /// Required (compare-and-swap against the active version, a chain rule).
    #[serde(deserialize_with = "nullable")]
    pub from: Option<ContentHash>,
    /// The version to activate.
    pub to: ContentHash,
    /// When the change takes effect (RFC 3339 UTC, milliseconds).
    pub at: Timestamp,
    /// Why (non-empty).
    pub reason: String,
    /// Free-form additions.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<Map<String, Value>>,
}

/// An `inference` body: evidence that a version served a request, with
/// commitments to input and output, never the raw data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inference {
    /// The model.
    pub model: ModelName,
    /// The version that served the request.
    pub version_hash: ContentHash,
    /// The request's ID.
    pub request_id: RequestId,
    /// When the request was served (UTC, ms).
    pub served_at: Timestamp,
    /// Commitment to the request input: hiding (`c1:`, see
    /// [`super::commitment`]) or, as logged before, plain BLAKE3 (`b3:`).
    pub input_commitment: Commitment,
    /// Commitment to the response output (as `input_commitment`).
    pub output_commitment: Commitment,
    /// Free-form additions.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensions: Option<Map<String, Value>>,
}

/// Implements `parse` and `to_value` for a body type with a `validate`.
macro_rules! body_impl {
    ($t:ident, $kind:expr) => {
        impl $t {
            /// The entry kind of this body.
            pub const KIND: Kind = $kind;

            /// Parses the body strictly and checks its semantic rules
            /// ([`Self::validate`]). Never panics; a fuzzing entry point.
            pub fn parse(body: &Value) -> Result<$t, BodyError> {
                let b = $t::deserialize(body)?;
                b.validate()?;
                Ok(b)
            }

            /// The body as JSON, for signing. For a body that passes
            /// [`Self::validate`], [`Self::parse`] reads it back equal.
            pub fn to_value(&self) -> Value {
                // Strings, numbers, booleans and maps always serialise.
                serde_json::to_value(self).unwrap_or(Value::Null)
            }
        }
    };
}

body_impl!(ModelCard, Kind::ModelCard);
body_impl!(ModelVersion, Kind::ModelVersion);
body_impl!(Approval, Kind::Approval);
body_impl!(Transition, Kind::Transition);
body_impl!(Inference, Kind::Inference);

impl ModelCard {
    /// Checks the rules beyond the schema: non-empty text members, at least
    /// one evaluation result with non-empty metric and dataset, valid
    /// document names. Call before signing a hand-built card.
    pub fn validate(&self) -> Result<(), BodyError> {
        check_text(&self.training_data, "training_data")?;
        check_text(&self.intended_use, "intended_use")?;
        check_text(&self.limitations, "limitations")?;
        if self.evaluation.is_empty() {
            return Err(BodyError::NoEvaluation);
        }
        for (i, r) in self.evaluation.iter().enumerate() {
            check_text(&r.metric, format!("evaluation[{i}].metric"))?;
            check_text(&r.dataset, format!("evaluation[{i}].dataset"))?;
        }
        for (i, d) in self.documents.iter().flatten().enumerate() {
            check_name(&d.name, MAX_NAME_CHARS).map_err(|reason| BodyError::BadName {
                field: format!("documents[{i}].name"),
                reason,
            })?;
        }
        Ok(())
    }
}

impl ModelVersion {
    /// Checks the rules beyond the schema; every field is validated by its
    /// type, so this always succeeds (kept for symmetry).
    pub fn validate(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

impl Approval {
    /// Checks the rules beyond the schema: criterion IDs are valid names, and
    /// an `approve` decision has no criterion with `met: false` (see the type
    /// docs). Call before signing a hand-built approval.
    pub fn validate(&self) -> Result<(), BodyError> {
        for id in self.criteria.keys() {
            check_name(id, MAX_NAME_CHARS).map_err(|reason| BodyError::BadName {
                field: "criteria".into(),
                reason: format!("criterion id {reason}"),
            })?;
        }
        if self.decision == Decision::Approve
            && let Some((id, _)) = self.criteria.iter().find(|(_, r)| !r.met)
        {
            return Err(BodyError::ApprovedFailedCriterion {
                criterion: id.clone(),
            });
        }
        Ok(())
    }
}

impl Transition {
    /// Checks the rules beyond the schema: `from` differs from `to`, and
    /// `reason` is not empty. Call before signing a hand-built transition.
    pub fn validate(&self) -> Result<(), BodyError> {
        if self.from == Some(self.to) {
            return Err(BodyError::NoChange(self.to));
        }
        check_text(&self.reason, "reason")
    }

    /// Whether this is a first activation (`from` is null).
    pub fn is_first_activation(&self) -> bool {
        self.from.is_none()
    }
}

impl Inference {
    /// Checks the rules beyond the schema; every field is validated by its
    /// type, so this always succeeds (kept for symmetry). Whether
    /// `served_at` is plausible needs the clock and is the sequencer's rule.
    pub fn validate(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

/// A typed body of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A `policy` body.
    Policy(PolicyBody),
    /// A `model_card` body.
    ModelCard(ModelCard),
    /// A `model_version` body.
    ModelVersion(ModelVersion),
    /// An `approval` body.
    Approval(Approval),
    /// A `transition` body.
    Transition(Transition),
    /// An `inference` body.
    Inference(Inference),
}

impl Body {
    /// Parses `body` as a body of `kind`, strictly and with its semantic
    /// rules. Failures are [`EntryError::InvalidBody`] (422, `invalid_body`).
    /// Never panics; a fuzzing entry point.
    pub fn parse(kind: Kind, body: &Value) -> Result<Body, EntryError> {
        let invalid = |e: BodyError| EntryError::InvalidBody {
            kind,
            reason: e.to_string(),
        };
        Ok(match kind {
            Kind::Policy => Body::Policy(PolicyBody::parse(body)?),
            Kind::ModelCard => Body::ModelCard(ModelCard::parse(body).map_err(invalid)?),
            Kind::ModelVersion => Body::ModelVersion(ModelVersion::parse(body).map_err(invalid)?),
            Kind::Approval => Body::Approval(Approval::parse(body).map_err(invalid)?),
            Kind::Transition => Body::Transition(Transition::parse(body).map_err(invalid)?),
            Kind::Inference => Body::Inference(Inference::parse(body).map_err(invalid)?),
        })
    }

    /// Parses JSON text (strict, not necessarily canonical) as a body of
    /// `kind`: [`Body::parse`] for raw bytes. Never panics; a fuzzing entry
    /// point.
    pub fn parse_json(kind: Kind, bytes: &[u8]) -> Result<Body, EntryError> {
        let value = parse_strict(bytes).map_err(EntryError::BadJson)?;
        Body::parse(kind, &value)
    }

    /// The body's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Policy(_) => Kind::Policy,
            Body::ModelCard(_) => Kind::ModelCard,
            Body::ModelVersion(_) => Kind::ModelVersion,
            Body::Approval(_) => Kind::Approval,
            Body::Transition(_) => Kind::Transition,
            Body::Inference(_) => Kind::Inference,
        }
    }

    /// The body as JSON, for signing.
    pub fn to_value(&self) -> Value {
        match self {
            Body::Policy(b) => b.to_value(),
            Body::ModelCard(b) => b.to_value(),
            Body::ModelVersion(b) => b.to_value(),
            Body::Approval(b) => b.to_value(),
            Body::Transition(b) => b.to_value(),
            Body::Inference(b) => b.to_value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const H: &str = "b3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";

    #[test]
    fn timestamp_known_answers() {
        for (s, ms) in [
            ("1970-01-01T00:00:00.000Z", 0),
            ("1970-01-01T00:00:01.001Z", 1001),
            ("2000-02-29T12:34:56.789Z", 951_827_696_789),
            ("2026-03-01T00:00:00.000Z", 1_772_323_200_000),
            ("2028-02-29T23:59:59.999Z", 1_835_481_599_999),
            ("9999-12-31T23:59:59.999Z", Timestamp::MAX.unix_millis()),
        ] {
            let t = Timestamp::parse(s).unwrap();
            assert_eq!(t.unix_millis(), ms, "{s}");
            assert_eq!(t.to_string(), s);
            assert_eq!(Timestamp::from_unix_millis(ms), Some(t));
        }
        assert_eq!(Timestamp::from_unix_millis(Timestamp::MAX.0 + 1), None);
    }

    #[test]
    fn timestamp_is_strict() {
        for bad in [
            "",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.00Z",
            "2026-01-01T00:00:00.0000Z",
            "2026-01-01T00:00:00.000+00:00",
            "2026-01-01T00:00:00.000z",
            "2026-01-01t00:00:00.000Z",
            "2026-01-01 00:00:00.000Z",
            "2026-02-29T00:00:00.000Z",
            "2100-02-29T00:00:00.000Z",
            "2026-02-30T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-00-01T00:00:00.000Z",
            "2026-01-00T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z",
            "2026-12-31T23:59:60.000Z",
            "1969-12-31T23:59:59.999Z",
            "+026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.-00Z",
            "２026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.000Z ",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Timestamp::parse("2000-02-29T00:00:00.000Z").is_ok());
    }

    #[test]
    fn timestamp_matches_day_count_every_day() {
        // Walk every day of 1970..2401 and check parse/format agree with a
        // plain day counter.
        let mut days = 0u64;
        for y in 1970..2401i64 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    let s = format!("{y:04}-{m:02}-{d:02}T00:00:00.000Z");
                    let t = Timestamp::parse(&s).unwrap();
                    assert_eq!(t.unix_millis(), days * 86_400_000, "{s}");
                    assert_eq!(t.to_string(), s);
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn names() {
        assert!(ModelName::parse("fraud-detector").is_ok());
        assert!(ModelName::parse("org/model v2 – ü").is_ok());
        assert!(ModelName::parse(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        for bad in [
            String::new(),
            "x".repeat(MAX_NAME_CHARS + 1),
            "a\nb".into(),
            "a\u{7f}b".into(),
            "a\u{85}b".into(),
            " a".into(),
            "a ".into(),
        ] {
            assert!(ModelName::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(RequestId::parse(&"r".repeat(MAX_REQUEST_ID_CHARS)).is_ok());
        assert!(RequestId::parse(&"r".repeat(MAX_REQUEST_ID_CHARS + 1)).is_err());
        assert!(RequestId::parse("req\t1").is_err());
        assert!(RegistryRef::parse("models:/fraud/3").is_ok());
        assert!(RegistryRef::parse("models:/fraud /3").is_err());
        assert!(GitSha::parse(&"a".repeat(40)).is_ok());
        assert!(GitSha::parse(&"a".repeat(64)).is_ok());
        for bad in [
            "a".repeat(39),
            "a".repeat(41),
            "A".repeat(40),
            "g".repeat(40),
        ] {
            assert!(GitSha::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_hash() {
        let h = ContentHash::parse(H).unwrap();
        assert_eq!(h, ContentHash::of(b"abc"));
        assert_eq!(h.to_string(), H);
        assert_eq!(serde_json::to_value(h).unwrap(), json!(H));
        assert!(ContentHash::parse(&H.to_uppercase()).is_err());
        assert!(ContentHash::parse(&H[3..]).is_err());
        assert!(ContentHash::parse(&H[..H.len() - 2]).is_err());
    }

    #[test]
    fn optional_members_refuse_null_transition_from_requires_it() {
        let t = json!({"model": "m", "from": null, "to": H, "at": "2026-11-27T10:00:00.000Z", "reason": "first"});
        let parsed = Transition::parse(&t).unwrap();
        assert!(parsed.is_first_activation());
        assert_eq!(parsed.to_value(), t);
        let mut missing = t.clone();
        missing.as_object_mut().unwrap().remove("from");
        assert!(matches!(
            Transition::parse(&missing),
            Err(BodyError::Schema(m)) if m.contains("from")
        ));
        let mut null_ext = t;
        null_ext["extensions"] = Value::Null;
        assert!(matches!(
            Transition::parse(&null_ext),
            Err(BodyError::Schema(_))
        ));
    }
}
