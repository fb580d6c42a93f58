//! Read access: a log is public (anyone may read it) or private (reading
//! entry content needs a bearer token the operator created).
//!
//! Tokens are `mt_` followed by 43 base64url characters (32 random bytes).
//! The log keeps only their SHA-256, in `<data>/tokens`, a text file:
//!
//! ```text
//! modeltrail tokens v1
//! <name> <created, Unix ms> <sha256 hex> <revoked, Unix ms | ->
//! ```
//!
//! one line per token, each name once. [`TokenFile::parse`] is strict (the
//! fuzz target `token_file` checks that whatever parses writes back
//! identically).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Who may read a log's content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAccess {
    /// Anyone who can reach the log (the default).
    #[default]
    Public,
    /// Only requests with a valid bearer token (checkpoints, hash tiles and
    /// proofs stay public).
    Token,
}

impl ReadAccess {
    /// `public` or `token`.
    pub fn parse(text: &str) -> Result<ReadAccess, String> {
        match text {
            "public" => Ok(ReadAccess::Public),
            "token" => Ok(ReadAccess::Token),
            other => Err(format!(
                "unknown read access {other:?}: want public or token"
            )),
        }
    }
}

/// The first line of a token file.
pub const HEADER: &str = "modeltrail tokens v1";

/// Every token starts with this, so a leaked one is recognisable (secret
/// scanners, logs).
pub const TOKEN_PREFIX: &str = "mt_";

/// Characters of a token after the prefix: 32 bytes in unpadded base64url.
const TOKEN_BODY_LEN: usize = 43;

/// Longest token name.
pub const MAX_NAME_LEN: usize = 64;

/// One token, as the log stores it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The operator's name for it (`[A-Za-z0-9._-]`, at most 64).
    pub name: String,
    /// When it was created, Unix milliseconds.
    pub created_ms: u64,
    /// SHA-256 of the token's text.
    pub hash: [u8; 32],
    /// When it was revoked, if it was.
    pub revoked_ms: Option<u64>,
}

/// The whole token file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFile {
    /// The tokens, in creation order.
    pub records: Vec<TokenRecord>,
}

/// Whether `name` may name a token.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `token` has the form of a token (prefix, 43 base64url characters).
pub fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|body| {
        body.len() == TOKEN_BODY_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// SHA-256 of a token's text.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token.
pub fn new_token() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A canonical decimal (no sign, no leading zero).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl TokenFile {
    /// Parses a token file's text; the error names the line.
    pub fn parse(text: &str) -> Result<TokenFile, String> {
        let body = text
            .strip_suffix('\n')
            .ok_or("the token file does not end with a newline")?;
        let mut lines = body.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(format!("the token file does not start with {HEADER:?}"));
        }
        let mut records: Vec<TokenRecord> = Vec::new();
        for (n, line) in lines.enumerate() {
            let lineno = n + 2;
            let bad = |what: &str| format!("token file line {lineno}: {what}");
            let fields: Vec<&str> = line.split(' ').collect();
            let [name, created, hash, revoked] = fields[..] else {
                return Err(bad(
                    "want <name> <created ms> <sha256 hex> <revoked ms or ->",
                ));
            };
            if !valid_name(name) {
                return Err(bad("the name is not 1-64 of A-Z a-z 0-9 . _ -"));
            }
            if records.iter().any(|r| r.name == name) {
                return Err(bad(&format!("the name {name:?} appears twice")));
            }
            let created_ms = parse_decimal(created).ok_or_else(|| bad("bad created time"))?;
            let hash = parse_hash(hash).ok_or_else(|| bad("the hash is not 64 lowercase hex"))?;
            let revoked_ms = match revoked {
                "-" => None,
                ms => Some(parse_decimal(ms).ok_or_else(|| bad("bad revoked time"))?),
            };
            records.push(TokenRecord {
                name: name.to_owned(),
                created_ms,
                hash,
                revoked_ms,
            });
        }
        Ok(TokenFile { records })
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        for r in &self.records {
            let revoked = r.revoked_ms.map_or("-".to_owned(), |ms| ms.to_string());
            text.push_str(&format!(
                "{} {} {} {revoked}\n",
                r.name,
                r.created_ms,
                hex(&r.hash)
            ));
        }
        text
    }

    /// Whether `token` is a current (not revoked) token. Compares the
    /// token's SHA-256 with every stored hash, each in full, without
    /// stopping at a match: the time taken depends on the number of tokens,
    /// not on which (or how much of one) matched.
    pub fn accepts(&self, token: &str) -> bool {
        let presented = hash_token(token);
        let mut found = false;
        for r in &self.records {
            let diff = r
                .hash
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= (diff == 0) & r.revoked_ms.is_none();
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_revocation_counts() {
        let token = new_token().unwrap();
        assert!(well_formed(&token), "{token}");
        let mut file = TokenFile::default();
        file.records.push(TokenRecord {
            name: "ci".into(),
            created_ms: 1,
            hash: hash_token(&token),
            revoked_ms: None,
        });
        assert!(file.accepts(&token));
        assert!(!file.accepts(&new_token().unwrap()));
        let text = file.to_text();
        assert_eq!(TokenFile::parse(&text).unwrap(), file);
        file.records[0].revoked_ms = Some(2);
        assert!(!file.accepts(&token));
        assert_eq!(TokenFile::parse(&file.to_text()).unwrap(), file);
    }

    #[test]
    fn bad_files_name_the_line() {
        let h = "0".repeat(64);
        for (text, want) in [
            ("", "newline"),
            ("nope\n", "start"),
            (&format!("{HEADER}\na 01 {h} -\n") as &str, "line 2"),
            (&format!("{HEADER}\na 1 {h} -\na 2 {h} -\n"), "twice"),
            (&format!("{HEADER}\na b 1 {h} -\n"), "line 2"),
            (&format!("{HEADER}\na 1 {} -\n", "A".repeat(64)), "hex"),
        ] {
            let err = TokenFile::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
