//! The characters an identifier may hold (DESIGN "Entries": two names that
//! print the same are the same name).
//!
//! Identifiers are the strings entries are found and compared by: model
//! names, request IDs, registry references, document names, criterion IDs,
//! and the names in the roster's vkeys. Each character must be
//!
//! - printable ASCII (U+0020 to U+007E; where a field allows no white space
//!   its own type says so), or
//! - a non-ASCII letter or digit: `char::is_alphabetic` or
//!   `char::is_numeric` (Unicode Alphabetic, general categories N*),
//!
//! and not one of the invisible characters of [`INVISIBLE`]; a model name
//! must also not be `.` or `..` (it is a URL path segment). Refused, with
//! the field and the code point named: control characters (Cc), format
//! characters (Cf: U+200B zero-width space, U+202E right-to-left override,
//! U+FEFF, …), separators other than the ASCII space (U+00A0, U+2028, …),
//! punctuation and symbols outside ASCII (U+2010 hyphen, which prints like
//! `-`), and invisible letters (the Hangul fillers).
//!
//! Confusables across scripts (Cyrillic `а` for Latin `a`) are not refused:
//! that needs the Unicode confusables table and a per-field script policy,
//! and would refuse legitimate names in other scripts. A name is compared
//! exactly, code point by code point (see docs/ARCHITECTURE.md).
//!
//! The rule is checked by the sequencer (new entries: 422
//! `invalid_identifier`) and by the auditor (entries already logged:
//! finding `invalid_identifier`); it is not part of body parsing, so that a
//! log written before the rule still reads.

use std::fmt;

use super::Body;

/// Characters that are letters by their Unicode properties but print as
/// nothing: the Hangul fillers (Lo, Alphabetic). Format characters need no
/// list: none of them is alphabetic or numeric.
pub const INVISIBLE: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];

/// The ranges of Unicode general category Cf (format) that are named as such
/// in errors (Unicode 15.1). Only for the message: they are refused anyway,
/// being neither letters nor digits.
const FORMAT: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is a format character (general category Cf).
pub fn is_format(c: char) -> bool {
    FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Why `c` may not appear in an identifier, or `None` if it may.
pub fn refused_char(c: char) -> Option<&'static str> {
    if (' '..='~').contains(&c) {
        return None;
    }
    if c.is_control() {
        return Some("a control character");
    }
    if is_format(c) {
        return Some("an invisible format character");
    }
    if INVISIBLE.contains(&c) {
        return Some("an invisible filler character");
    }
    if c.is_whitespace() {
        return Some("white space other than the ASCII space");
    }
    if c.is_alphabetic() || c.is_numeric() {
        return None;
    }
    Some("neither printable ASCII nor a letter or digit")
}

/// An identifier holding a character the rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IdentifierError {
    /// The field, e.g. `model` or `signers[2].vkey`.
    pub field: String,
    /// The refused character.
    pub char: char,
    /// Its position, in characters from 0.
    pub position: usize,
    /// Why it is refused.
    pub reason: &'static str,
}

/// The reason given for a model name that is a URL dot segment.
const DOT_SEGMENT: &str = "a URL dot segment";

impl fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason == DOT_SEGMENT {
            return write!(
                f,
                "{} is \".\" or \"..\", a URL dot segment, which URL parsers resolve away, so a query path cannot carry it",
                self.field
            );
        }
        write!(
            f,
            "{} holds U+{:04X} at character {}, {}; identifiers allow printable ASCII and non-ASCII letters and digits only, so that names that print the same are the same",
            self.field, self.char as u32, self.position, self.reason
        )
    }
}

/// Checks one identifier `value` of `field`.
pub fn check_identifier(field: &str, value: &str) -> Result<(), IdentifierError> {
    for (position, c) in value.chars().enumerate() {
        if let Some(reason) = refused_char(c) {
            return Err(IdentifierError {
                field: field.to_owned(),
                char: c,
                position,
                reason,
            });
        }
    }
    Ok(())
}

/// Checks every identifier of `body` (without allocating for the common
/// kinds: this runs on every entry the log admits and the audit reads);
/// the first one that breaks the rule.
pub fn check_body(body: &Body) -> Result<(), IdentifierError> {
    match body {
        Body::Policy(policy) => {
            for (i, c) in policy.criteria().iter().enumerate() {
                check_identifier(&format!("criteria[{i}].id"), &c.id)?;
            }
            for (i, s) in policy.signers().iter().enumerate() {
                check_identifier(&format!("signers[{i}].vkey name"), s.vkey().name())?;
            }
        }
        Body::ModelCard(card) => {
            check_model(card.model.as_str())?;
            for (i, d) in card.documents.iter().flatten().enumerate() {
                check_identifier(&format!("documents[{i}].name"), &d.name)?;
            }
        }
        Body::ModelVersion(version) => {
            check_model(version.model.as_str())?;
            if let Some(r) = &version.registry_ref {
                check_identifier("registry_ref", r.as_str())?;
            }
        }
        Body::Approval(approval) => {
            for id in approval.criteria.keys() {
                check_identifier("criteria (a criterion id)", id)?;
            }
        }
        Body::Transition(transition) => check_model(transition.model.as_str())?,
        Body::Inference(inference) => {
            check_model(inference.model.as_str())?;
            check_identifier("request_id", inference.request_id.as_str())?;
        }
    }
    Ok(())
}

/// A model name is an identifier and one URL path segment
/// (`/v1/models/<m>`): `.` and `..` are dot segments, which URL parsers
/// resolve away (even percent-encoded), so such a model could not be queried.
fn check_model(model: &str) -> Result<(), IdentifierError> {
    if model == "." || model == ".." {
        return Err(IdentifierError {
            field: "model".to_owned(),
            char: '.',
            position: 0,
            reason: DOT_SEGMENT,
        });
    }
    check_identifier("model", model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_not_model_names() {
        for bad in [".", ".."] {
            let err = check_model(bad).unwrap_err();
            assert!(err.to_string().contains("dot segment"), "{err}");
        }
        for ok in ["...", ".a", "a..", "v1.2"] {
            assert_eq!(check_model(ok), Ok(()));
        }
    }

    #[test]
    fn printable_ascii_and_letters_and_digits_pass() {
        for ok in [
            "fraud-detector",
            "org/model v2",
            "req-42_~!@#$%^&*()[]{}<>?,.;:'\"`|\\=+",
            "détecteur-de-fraude",
            "модель",
            "模型٣",
            "Ωmega²",
        ] {
            assert_eq!(check_identifier("model", ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn invisible_and_look_alike_characters_are_refused() {
        for (bad, c) in [
            ("fraud\u{200B}detector", '\u{200B}'),
            ("fraud\u{2010}detector", '\u{2010}'),
            ("req-\u{202E}24", '\u{202E}'),
            ("\u{FEFF}model", '\u{FEFF}'),
            ("soft\u{00AD}hyphen", '\u{00AD}'),
            ("a\u{2060}b", '\u{2060}'),
            ("a\u{00A0}b", '\u{00A0}'),
            ("a\u{2028}b", '\u{2028}'),
            ("a\u{3000}b", '\u{3000}'),
            ("a\u{3164}b", '\u{3164}'),
            ("a\u{0085}b", '\u{0085}'),
            ("a\tb", '\t'),
            ("tag\u{E0041}", '\u{E0041}'),
            ("a\u{2215}b", '\u{2215}'),
        ] {
            let err = check_identifier("model", bad).unwrap_err();
            assert_eq!((err.field.as_str(), err.char), ("model", c), "{bad:?}");
            assert!(
                err.to_string().contains(&format!("U+{:04X}", c as u32)),
                "{err}"
            );
        }
    }

    /// The format table: every listed character is refused as a format
    /// character, none of them is a letter or digit (so the table only
    /// names, never admits), and the neighbours of the common ranges pass
    /// through the general rule.
    #[test]
    fn the_format_table() {
        for &(lo, hi) in &FORMAT {
            assert!(lo <= hi);
            for c in lo..=hi {
                assert!(!c.is_alphabetic() && !c.is_numeric(), "U+{:04X}", c as u32);
                assert_eq!(refused_char(c), Some("an invisible format character"));
            }
        }
        for w in FORMAT.windows(2) {
            assert!(w[0].1 < w[1].0, "sorted and disjoint");
        }
        assert_eq!(
            refused_char('\u{200A}'),
            Some("white space other than the ASCII space")
        );
        assert_eq!(
            refused_char('\u{2010}'),
            Some("neither printable ASCII nor a letter or digit")
        );
        for c in INVISIBLE {
            assert!(
                c.is_alphabetic(),
                "the fillers are letters by their properties"
            );
            assert!(refused_char(c).is_some());
        }
    }
}
