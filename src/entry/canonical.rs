//! RFC 8785 JSON Canonicalization Scheme (JCS), as DESIGN "Entries" requires
//! of every leaf: a leaf is accepted only if it is *exactly* the canonical
//! serialisation of the JSON value it parses to, so one value has one leaf
//! and one artefact ID.
//!
//! [`parse_canonical`] parses strictly (valid UTF-8, no duplicate object
//! member names, no lone surrogates, finite numbers in range, nothing after
//! the value), serialises the result with [`to_canonical`] and compares the
//! bytes. [`to_canonical`] follows RFC 8785 §3.2:
//!
//! - no insignificant white space;
//! - object members sorted by their names' UTF-16 code units (§3.2.3), not by
//!   UTF-8 bytes (the two orders differ for characters above U+FFFF against
//!   U+E000..U+FFFF);
//! - strings escape only `"`, `\` and the control characters below U+0020,
//!   using `\b \t \n \f \r` where they exist and lowercase `\u00xx` otherwise;
//!   everything else is written as literal UTF-8 (§3.2.2.2);
//! - numbers are IEEE-754 doubles written as ECMAScript's
//!   Number.prototype.toString does (§3.2.2.3): shortest round-trip digits,
//!   integers below 10^21 without fraction or exponent, `-0` as `0`, and
//!   exponents written `1e+21` / `1e-7`.
//!
//! # Number range
//!
//! RFC 8785 treats every number as a double. An integer beyond
//! 2^53 − 1 (ECMAScript's `Number.MAX_SAFE_INTEGER`) does not survive that:
//! `9007199254740993` becomes `9007199254740992`, so a submitter and a
//! verifier reading it as an integer could disagree about what was signed.
//! [`parse_canonical`] therefore refuses any number whose magnitude exceeds
//! [`MAX_SAFE_INTEGER`] ([`CanonicalError::NumberOutOfRange`]); fractions are
//! unaffected (every double above 2^53 is an integer anyway). Governance
//! entries have no use for such numbers; large counts or hashes are strings.
//!
//! Parsed numbers that are integers come back as integer
//! [`serde_json::Number`]s (so typed fields such as `u32` deserialise), all
//! others as `f64`.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// The largest magnitude a number may have: 2^53 − 1, the largest integer
/// that every IEEE-754 double reader agrees on (ECMAScript
/// `Number.MAX_SAFE_INTEGER`). See the module docs.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The deepest nesting of arrays and objects [`parse_canonical`] accepts.
/// Bounds recursion so hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not canonical JSON. Offsets are byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// The input is not valid UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// First invalid byte.
        offset: usize,
    },
    /// The input is not JSON (RFC 8259 grammar).
    #[error("invalid JSON at byte {offset}: {reason}")]
    Syntax {
        /// Where parsing failed.
        offset: usize,
        /// What was expected or found.
        reason: &'static str,
    },
    /// An object has two members with the same name (RFC 8785 requires I-JSON).
    #[error("duplicate object member name {key:?} at byte {offset}")]
    DuplicateKey {
        /// The repeated name.
        key: String,
        /// Where the second occurrence starts.
        offset: usize,
    },
    /// A `\u` escape encodes a UTF-16 surrogate that is not part of a pair.
    #[error("lone UTF-16 surrogate escape at byte {offset}")]
    LoneSurrogate {
        /// Where the escape starts.
        offset: usize,
    },
    /// A number is not finite as a double, or its magnitude exceeds [`MAX_SAFE_INTEGER`].
    #[error("number at byte {offset} is outside ±(2^53 − 1) or not a finite double")]
    NumberOutOfRange {
        /// Where the number starts.
        offset: usize,
    },
    /// Arrays and objects are nested deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep {
        /// Where the limit was exceeded.
        offset: usize,
    },
    /// Something other than white space follows the JSON value.
    #[error("unexpected data after the JSON value at byte {offset}")]
    TrailingData {
        /// Where the extra data starts.
        offset: usize,
    },
    /// The input is valid JSON but not its RFC 8785 canonical form.
    #[error(
        "JSON is not in RFC 8785 canonical form: first difference at byte {offset} (sorted keys, no white space, minimal escapes, ECMAScript numbers)"
    )]
    NotCanonical {
        /// First byte where the input differs from the canonical form.
        offset: usize,
    },
}

/// Parses `bytes` as JSON and accepts it only if it is exactly the RFC 8785
/// canonical serialisation of the value. Never panics; a fuzzing entry point.
pub fn parse_canonical(bytes: &[u8]) -> Result<Value, CanonicalError> {
    let value = parse_strict(bytes)?;
    let canonical = to_canonical(&value);
    if canonical != bytes {
        let offset = canonical
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(canonical.len().min(bytes.len()));
        return Err(CanonicalError::NotCanonical { offset });
    }
    Ok(value)
}

/// Parses `bytes` as strict JSON (RFC 8259 with the I-JSON restrictions of
/// RFC 8785 and the number range of the module docs) without requiring the
/// canonical form. Never panics.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, CanonicalError> {
    let text = std::str::from_utf8(bytes).map_err(|e| CanonicalError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
    };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(CanonicalError::TrailingData { offset: p.pos });
    }
    Ok(value)
}

/// The RFC 8785 canonical serialisation of `value`.
///
/// Integers beyond [`MAX_SAFE_INTEGER`] are written as the double they round
/// to, as any RFC 8785 implementation would; [`parse_canonical`] refuses the
/// result, so such values cannot be signed (see the module docs).
pub fn to_canonical(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, value);
    out.into_bytes()
}

/// Orders two strings by their UTF-16 code units (RFC 8785 §3.2.3).
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| cmp_utf16(a.0, b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    // Safe integers print identically as integers and as ES doubles.
    if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= MAX_SAFE_INTEGER
    {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64()
        && u <= MAX_SAFE_INTEGER
    {
        let _ = write!(out, "{u}");
    } else {
        // serde_json numbers are finite; as_f64 only fails with
        // arbitrary_precision for unrepresentable text, which cannot occur here.
        out.push_str(&format_es_number(n.as_f64().unwrap_or(f64::NAN)));
    }
}

/// Writes a finite double as ECMAScript's Number.prototype.toString does
/// (ECMA-262 §7.1.12.1 / RFC 8785 §3.2.2.3). Non-finite input, which JSON
/// cannot carry, gives `null`.
pub fn format_es_number(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned(); // also -0
    }
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest digits that round-trip: "d[.ddd]e<exp>".
    let (digits, exp) = shortest_digits(x.abs());
    let k = digits.len() as i32;
    // x = 0.d1d2...dk × 10^n
    let n = exp + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e > 0 { '+' } else { '-' }, e.abs());
    }
    out
}

/// The shortest round-trip decimal digits of a positive finite `x` and the
/// exponent of the first digit, with ECMAScript's tie rule.
///
/// Rust's `{:e}` gives the shortest digits that round-trip, choosing the
/// closest such digits to `x`, but when `x` lies exactly halfway between two
/// candidates it rounds up; ECMA-262 §7.1.12.1 picks the even one (as
/// RFC 8785 Appendix B's `1424953923781206.2` shows). A tie can only be `x`
/// being exactly the digits with the last one decremented followed by a `5`,
/// which is checked on `x`'s exact decimal expansion.
fn shortest_digits(x: f64) -> (String, i32) {
    let split = |sci: &str| -> (String, i32) {
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
        let digits = mantissa.chars().filter(|c| *c != '.').collect();
        (digits, exp.parse().unwrap_or(0))
    };
    let (mut digits, exp) = split(&format!("{x:e}"));
    let last = digits.as_bytes()[digits.len() - 1];
    if last % 2 == 1 && digits != "1" {
        // Every double's exact expansion has fewer than 770 significant digits.
        let (exact, exact_exp) = split(&format!("{x:.770e}"));
        let mut lower = digits.clone();
        lower.pop();
        lower.push((last - 1) as char);
        let midpoint = format!("{lower}5");
        if exact_exp == exp && exact.trim_end_matches('0') == midpoint {
            let candidate = format!("{}.{}e{exp}", &lower[..1], &lower[1..]);
            if candidate.parse::<f64>() == Ok(x) {
                digits = lower;
            }
        }
    }
    (digits, exp)
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Copy runs that need no escape whole: every byte to escape is ASCII,
    // so splitting at them never splits a character.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// A recursive-descent parser over text already known to be valid UTF-8.
struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn syntax(&self, reason: &'static str) -> CanonicalError {
        CanonicalError::Syntax {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), CanonicalError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(reason))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, CanonicalError> {
        match self.peek() {
            None => Err(self.syntax("unexpected end of input, expected a value")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(_) => Err(self.syntax("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static str, v: Value) -> Result<Value, CanonicalError> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.syntax("invalid literal"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep { offset: self.pos });
        }
        self.pos += 1; // '{'
        let mut map = Map::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            let key_at = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string member name"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':', "expected ':' after member name")?;
            self.skip_ws();
            let v = self.value(depth)?;
            if map.contains_key(&key) {
                return Err(CanonicalError::DuplicateKey {
                    key,
                    offset: key_at,
                });
            }
            map.insert(key, v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.syntax("expected ',' or '}' in object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep { offset: self.pos });
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.syntax("expected ',' or ']' in array")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, CanonicalError> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return Err(self.syntax("truncated \\u escape"));
        };
        let mut v = 0u32;
        for &b in h {
            let d = (b as char)
                .to_digit(16)
                .ok_or_else(|| self.syntax("\\u escape needs 4 hexadecimal digits"))?;
            v = v * 16 + d;
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, CanonicalError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            // Copy the run of unescaped characters in one go.
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run ends at an ASCII byte or the end, so it is a char boundary.
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc_at = self.pos;
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.syntax("unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{08}'),
                        b'f' => out.push('\u{0c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = match hi {
                                0xD800..=0xDBFF => {
                                    if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                        return Err(CanonicalError::LoneSurrogate {
                                            offset: esc_at,
                                        });
                                    }
                                    self.pos += 2;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return Err(CanonicalError::LoneSurrogate {
                                            offset: esc_at,
                                        });
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => {
                                    return Err(CanonicalError::LoneSurrogate { offset: esc_at });
                                }
                                cp => cp,
                            };
                            // Surrogates are excluded above, so this is a scalar value.
                            match char::from_u32(cp) {
                                Some(c) => out.push(c),
                                None => {
                                    return Err(CanonicalError::LoneSurrogate { offset: esc_at });
                                }
                            }
                        }
                        _ => {
                            self.pos = esc_at;
                            return Err(self.syntax("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.syntax("unescaped control character in string")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, CanonicalError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.syntax("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.syntax("expected a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax("expected a digit in the exponent"));
            }
        }
        let text = &self.text[start..self.pos];
        let out_of_range = CanonicalError::NumberOutOfRange { offset: start };
        let x: f64 = text.parse().map_err(|_| out_of_range.clone())?;
        if !x.is_finite() || x.abs() > MAX_SAFE_INTEGER as f64 {
            return Err(out_of_range);
        }
        if x.fract() == 0.0 {
            // Integral and |x| ≤ 2^53 − 1: exact as i64 (-0 becomes 0), so
            // typed integer fields deserialise from it.
            return Ok(Value::Number(Number::from(x as i64)));
        }
        Number::from_f64(x).map(Value::Number).ok_or(out_of_range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canon(s: &str) -> String {
        let v = parse_strict(s.as_bytes()).unwrap();
        String::from_utf8(to_canonical(&v)).unwrap()
    }

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
            // Further exact ties (round half to even), checked with Python's repr.
            (0x42e204f8c386bbc4, "158500501861854.12"),
            (0x42e3c5fd414c343c, "173928627200417.88"),
            (0x431f1ca27311d8a3, "2189302079714856.8"),
            (0x430c7950d5f4b3b2, "1001835930228342.2"),
            (0x42ef9c8518072e8c, "278056866429300.38"),
        ];
        for &(bits, want) in cases {
            let x = f64::from_bits(bits);
            assert_eq!(format_es_number(x), want, "bits {bits:016x}");
            // And through a Value.
            let v = Value::Number(Number::from_f64(x).unwrap());
            assert_eq!(to_canonical(&v), want.as_bytes(), "bits {bits:016x}");
        }
        assert_eq!(format_es_number(f64::NAN), "null");
        assert_eq!(format_es_number(f64::INFINITY), "null");
    }

    #[test]
    fn es_number_layout() {
        assert_eq!(format_es_number(1e21), "1e+21");
        assert_eq!(format_es_number(1e20), "100000000000000000000");
        assert_eq!(format_es_number(1e-7), "1e-7");
        assert_eq!(format_es_number(1.5e-7), "1.5e-7");
        assert_eq!(format_es_number(1e-6), "0.000001");
        assert_eq!(format_es_number(0.1), "0.1");
        assert_eq!(format_es_number(-1.25), "-1.25");
        assert_eq!(format_es_number(123.0), "123");
        assert_eq!(format_es_number(4.5), "4.5");
        assert_eq!(format_es_number(2e-3), "0.002");
    }

    /// RFC 8785 §3.2.3: members sorted by UTF-16 code units.
    #[test]
    fn rfc8785_sorting_example() {
        let input = "{\"\u{20ac}\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\"}";
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input), want);
        assert!(parse_canonical(want.as_bytes()).is_ok());
        // UTF-8 byte order would put U+FB33 before U+1F600.
        assert!("\u{fb33}".as_bytes() < "\u{1f600}".as_bytes());
        assert_eq!(cmp_utf16("\u{fb33}", "\u{1f600}"), Ordering::Greater);
    }

    /// RFC 8785 §3.2.2: the example of the canonicalisation of a whole value.
    #[test]
    fn rfc8785_main_example() {
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        let want = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        // 1E30 is beyond the safe range, which modeltrail refuses.
        assert!(matches!(
            parse_strict(input.as_bytes()),
            Err(CanonicalError::NumberOutOfRange { .. })
        ));
        let input = input.replace("1E30", "1E-30");
        let want = want.replace("1e+30", "1e-30");
        assert_eq!(canon(&input), want);
        assert!(parse_canonical(want.as_bytes()).is_ok());
    }

    #[test]
    fn strings_escape_minimally() {
        let v = json!("a\"b\\c\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}/é\u{7f}\u{2028}");
        assert_eq!(
            String::from_utf8(to_canonical(&v)).unwrap(),
            "\"a\\\"b\\\\c\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f/é\u{7f}\u{2028}\""
        );
    }

    #[test]
    fn accepts_canonical() {
        for s in [
            "null",
            "true",
            "0",
            "-1",
            "1.5",
            "[]",
            "{}",
            "\"\"",
            "{\"a\":[1,{\"b\":null}],\"b\":\"x\"}",
            "9007199254740991",
            "-9007199254740991",
            "1e-7",
            "\"\\u001f\"",
        ] {
            assert_eq!(parse_canonical(s.as_bytes()).map(|_| ()), Ok(()), "{s}");
        }
        assert_eq!(
            parse_canonical(b"-9007199254740991").unwrap(),
            json!(-9007199254740991i64)
        );
        assert!(parse_canonical(b"7").unwrap().as_u64() == Some(7));
    }

    fn not_canonical(s: &str) -> bool {
        matches!(
            parse_canonical(s.as_bytes()),
            Err(CanonicalError::NotCanonical { .. })
        )
    }

    #[test]
    fn rejects_non_canonical() {
        for s in [
            " {}",
            "{} ",
            "{\"a\": 1}",
            "{\"a\":1 }",
            "[1, 2]",
            "{\"b\":1,\"a\":2}",
            "1.0",
            "1E2",
            "1e2",
            "100e-2",
            "-0",
            "0.10",
            "\"\\/\"",
            "\"\\u00E9\"",
            "\"\\u00e9\"",
            "\"\\u0041\"",
            "\"\\u001F\"",
            "\"\\u0008\"",
            "1e-400",
            "\n",
        ] {
            if s == "\n" {
                assert!(matches!(
                    parse_canonical(s.as_bytes()),
                    Err(CanonicalError::Syntax { .. })
                ));
                continue;
            }
            assert!(not_canonical(s), "{s}: {:?}", parse_canonical(s.as_bytes()));
        }
        assert_eq!(
            parse_canonical(b"{\"b\":1,\"a\":2}"),
            Err(CanonicalError::NotCanonical { offset: 2 })
        );
    }

    #[test]
    fn rejects_invalid() {
        use CanonicalError::*;
        let err = |b: &[u8]| parse_canonical(b).unwrap_err();
        assert_eq!(err(b"\"\xff\""), InvalidUtf8 { offset: 1 });
        assert!(
            matches!(err(b"{\"a\":1,\"a\":1}"), DuplicateKey { ref key, offset: 7 } if key == "a")
        );
        assert!(matches!(
            err(b"{\"a\":1,\"\\u0061\":2}"),
            DuplicateKey { .. }
        ));
        assert!(matches!(err(b"\"\\ud800\""), LoneSurrogate { offset: 1 }));
        assert!(matches!(err(b"\"\\udc00\""), LoneSurrogate { .. }));
        assert!(matches!(err(b"\"\\ud800\\u0041\""), LoneSurrogate { .. }));
        assert!(matches!(err(b"\"\\ud83d\\ude00\""), NotCanonical { .. }));
        assert!(matches!(err(b"1e400"), NumberOutOfRange { .. }));
        assert!(matches!(err(b"9007199254740992"), NumberOutOfRange { .. }));
        assert!(matches!(err(b"-9007199254740992"), NumberOutOfRange { .. }));
        assert!(matches!(err(b"{}{}"), TrailingData { offset: 2 }));
        assert!(matches!(err(b"1 2"), TrailingData { .. }));
        assert!(matches!(err(b"01"), TrailingData { offset: 1 }));
        assert!(matches!(err(b"1e21"), NumberOutOfRange { offset: 0 }));
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"{\"a\"}",
            b"{\"a\":1,}",
            b"{a:1}",
            b"1.",
            b".5",
            b"+1",
            b"-",
            b"1e",
            b"NaN",
            b"Infinity",
            b"tru",
            b"\"abc",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"a\tb\"",
            b"'a'",
        ] {
            assert!(
                matches!(err(bad), Syntax { .. }),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn depth_is_bounded() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_canonical(ok.as_bytes()).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            parse_canonical(deep.as_bytes()),
            Err(CanonicalError::TooDeep { .. })
        ));
        let hostile = "[".repeat(100_000);
        assert!(parse_canonical(hostile.as_bytes()).is_err());
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(MAX_SAFE_INTEGER as i64)..=MAX_SAFE_INTEGER as i64).prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite, in range", |x| x.is_finite()
                    && x.abs() <= MAX_SAFE_INTEGER as f64)
                .prop_map(|x| Value::Number(Number::from_f64(x).unwrap())),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Compares values numerically, since 2.0 parses back as the integer 2.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn canonical_round_trip(v in arb_value()) {
            let bytes = to_canonical(&v);
            let back = parse_canonical(&bytes).unwrap();
            prop_assert!(same(&v, &back), "{v:?} vs {back:?}");
            prop_assert_eq!(to_canonical(&back), bytes);
        }

        #[test]
        fn es_numbers_round_trip(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
            let s = format_es_number(x);
            let back: f64 = s.parse().unwrap();
            prop_assert_eq!(back, if x == 0.0 { 0.0 } else { x });
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_canonical(&bytes);
        }
    }
}
