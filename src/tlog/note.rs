//! C2SP signed-note (<https://c2sp.org/signed-note>): text signed by one or
//! more keys, with verifier keys ("vkeys") and Go-style private keys.
//!
//! # Format (signed-note §Format)
//!
//! ```text
//! <text, ending in a newline>
//!
//! — <key name> base64(32-bit big-endian key ID || signature)
//! — <key name> base64(32-bit big-endian key ID || signature)
//! ```
//!
//! A note is valid UTF-8 with no ASCII control characters other than newline.
//! The text includes its final newline; it is separated from the signature
//! lines by the *last* empty line of the note, so the text may itself contain
//! empty lines. Key names are non-empty and contain neither Unicode white
//! space nor `+`.
//!
//! # Keys (signed-note §Signatures, tlog-cosignature §Format)
//!
//! A key is identified by its name and its key ID,
//! `SHA-256(name || 0x0A || type || public key)[:4]`. Two signature types are
//! supported: `0x01` ([`KeyType::Ed25519`], an Ed25519 signature over the
//! text) and `0x04` ([`KeyType::CosignatureV1`], a timestamped Ed25519
//! witness cosignature, see [`super::cosignature`]).
//!
//! - A verifier key is written `<name>+<8 lowercase hex key ID>+<base64(type || 32-byte public key)>`
//!   ([`VerifierKey`]).
//! - A private key is written, as in Go's `golang.org/x/mod/sumdb/note`,
//!   `PRIVATE+KEY+<name>+<8 hex key ID>+<base64(type || 32-byte Ed25519 seed)>`
//!   ([`SignerKey`]). Go only defines this for type `0x01`; modeltrail uses the
//!   same form with type byte `0x04` for cosigner (witness) keys, so one parser
//!   handles every key file and the type byte says what the key signs.
//!
//! # Verification (signed-note §Signatures)
//!
//! [`Note::verify`] checks a note against a set of known keys: signatures by
//! unknown keys (no known key with the same name *and* key ID) are ignored; a
//! signature by a known key that does not verify rejects the whole note; and
//! the note is accepted only if at least one known key verified. Ed25519 is
//! always checked with `verify_strict`.
//!
//! # Limits
//!
//! A note is at most [`MAX_NOTE_SIZE`] (1 MiB) and carries at most
//! [`MAX_SIGNATURES`] (100) signature lines; the spec requires accepting at
//! least 16. Exceeding either is an error, never a panic.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::cosignature;

/// The largest note, in bytes, that [`Note::parse`] accepts (1 MiB).
pub const MAX_NOTE_SIZE: usize = 1 << 20;

/// The most signature lines a note may carry. The spec requires accepting at
/// least 16; 100 (as in Go) leaves room for large witness sets.
pub const MAX_SIGNATURES: usize = 100;

/// The prefix of every signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// The prefix of a Go-style private key string.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// Length of an Ed25519 public key or seed.
const KEY_LEN: usize = 32;

/// Length of an Ed25519 signature.
const ED25519_SIG_LEN: usize = 64;

/// A signature type identifier byte (signed-note §Signature types) that
/// modeltrail supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `0x01`: an Ed25519 signature over the note text (logs, approvers).
    Ed25519,
    /// `0x04`: a timestamped Ed25519 cosignature/v1 (c2sp.org/tlog-cosignature), made by witnesses.
    CosignatureV1,
}

impl KeyType {
    /// The identifier byte that goes into key IDs and encoded keys.
    pub fn byte(self) -> u8 {
        match self {
            KeyType::Ed25519 => 0x01,
            KeyType::CosignatureV1 => 0x04,
        }
    }

    /// The key type for an identifier byte, if modeltrail supports it.
    pub fn from_byte(b: u8) -> Result<KeyType, KeyError> {
        match b {
            0x01 => Ok(KeyType::Ed25519),
            0x04 => Ok(KeyType::CosignatureV1),
            other => Err(KeyError::UnsupportedType(other)),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Ed25519 => f.write_str("Ed25519 (0x01)"),
            KeyType::CosignatureV1 => f.write_str("cosignature/v1 (0x04)"),
        }
    }
}

/// Why a verifier or private key string is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key name is empty or contains white space or `+`.
    #[error(
        "key name {0:?} is invalid: it must be non-empty and contain no white space and no '+'"
    )]
    InvalidName(String),
    /// The string does not have the `<name>+<id>+<key>` shape.
    #[error("verifier key must have the form <name>+<8 hex digit key ID>+<base64 key>")]
    VerifierFormat,
    /// The string does not have the `PRIVATE+KEY+<name>+<id>+<key>` shape.
    #[error("private key must have the form PRIVATE+KEY+<name>+<8 hex digit key ID>+<base64 key>")]
    PrivateFormat,
    /// The key ID is not exactly 8 lowercase hexadecimal digits.
    #[error("key ID {0:?} is not 8 lowercase hexadecimal digits")]
    KeyIdHex(String),
    /// The key material is not standard, padded base64.
    #[error("key material is not valid standard base64")]
    Base64,
    /// The key material is empty, so it has no type byte.
    #[error("key material is empty: it must start with a signature type byte")]
    Empty,
    /// The type byte is not one modeltrail supports.
    #[error("unsupported signature type 0x{0:02x}: want 0x01 (Ed25519) or 0x04 (cosignature/v1)")]
    UnsupportedType(u8),
    /// The key after the type byte is not 32 bytes.
    #[error("key has {0} bytes after the type byte, want 32")]
    Length(usize),
    /// The stated key ID is not the one derived from the name, type and public key.
    #[error(
        "key ID {stated:08x} does not match the key (derived ID {derived:08x}): the key string is corrupt or was edited"
    )]
    KeyIdMismatch {
        /// The ID written in the key string.
        stated: u32,
        /// The ID computed from name, type and public key.
        derived: u32,
    },
    /// The 32 bytes are not a valid Ed25519 public key.
    #[error("public key is not a valid Ed25519 point")]
    InvalidPublicKey,
    /// The operating system's random number generator failed.
    #[error("generating a key: random number generator failed: {0}")]
    Random(String),
}

/// Why a note could not be parsed, built, signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_SIZE`].
    #[error("note is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8")]
    NotUtf8,
    /// The note contains an ASCII control character other than newline.
    #[error(
        "note contains control character 0x{byte:02x} at byte {offset}; only newline is allowed"
    )]
    ControlCharacter {
        /// The offending byte.
        byte: u8,
        /// Its offset in the note (or text).
        offset: usize,
    },
    /// There is no empty line separating the text from the signatures.
    #[error("note has no empty line separating the text from the signature lines")]
    MissingSeparator,
    /// The note text does not end in a newline.
    #[error("note text must end in a newline")]
    TextMissingNewline,
    /// There are no signature lines after the separator.
    #[error("note has no signature lines")]
    NoSignatures,
    /// The signature block does not end in a newline.
    #[error("the last signature line does not end in a newline")]
    MissingTrailingNewline,
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("note has {count} signature lines, more than the limit of {max}")]
    TooManySignatures {
        /// Number of signature lines.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A signature line is malformed.
    #[error("signature line {line}: {reason}")]
    MalformedSignature {
        /// 1-based number of the line within the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature's key name is invalid.
    #[error("signature line {line}: key name {name:?} is empty or contains white space or '+'")]
    InvalidKeyName {
        /// 1-based number of the line within the signature block (0 if built, not parsed).
        line: usize,
        /// The name.
        name: String,
    },
    /// [`Note::sign`] was given no signer.
    #[error("signing a note needs at least one key")]
    NoSigners,
    /// A key cannot produce this kind of signature this way.
    #[error("key {name} is a {key_type} key; {hint}")]
    WrongKeyType {
        /// The key's name.
        name: String,
        /// The key's type.
        key_type: KeyType,
        /// What to use instead.
        hint: &'static str,
    },
    /// A signature by a known key failed to verify: the note is rejected.
    #[error(
        "signature by known key {name}+{key_id:08x} does not verify ({reason}); the note is rejected"
    )]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
        /// Why it failed.
        reason: String,
    },
    /// Two different known keys share a name and key ID, so a signature cannot be attributed.
    #[error("two different known keys are named {name} with key ID {key_id:08x}; remove one")]
    AmbiguousKey {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No signature by any known key was found.
    #[error("note is not signed by any known key")]
    NoKnownSignature,
    /// [`VerifierKey::verify_signature`] was given another key's signature.
    #[error("signature is by {sig_name}+{sig_id:08x}, not by key {name}+{key_id:08x}")]
    KeyMismatch {
        /// The key's name.
        name: String,
        /// The key's ID.
        key_id: u32,
        /// The signature's key name.
        sig_name: String,
        /// The signature's key ID.
        sig_id: u32,
    },
}

/// Whether `name` is a valid key name: non-empty, with no Unicode white
/// space and no `+` (signed-note §Format), and no ASCII control character,
/// which no note may contain, so that every signature line parses.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < '\u{20}')
}

/// The key ID `SHA-256(name || 0x0A || type || public key)[:4]`, big-endian.
pub fn key_id(name: &str, key_type: KeyType, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', key_type.byte()]);
    h.update(public_key);
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Parses exactly 8 lowercase hexadecimal digits (the form keys are written in).
fn parse_key_id_hex(s: &str) -> Result<u32, KeyError> {
    let ok = s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(KeyError::KeyIdHex(s.to_owned()));
    }
    u32::from_str_radix(s, 16).map_err(|_| KeyError::KeyIdHex(s.to_owned()))
}

/// Decodes `base64(type || 32 bytes)` into its type and 32 key bytes.
fn decode_typed_key(b64: &str) -> Result<(KeyType, [u8; KEY_LEN]), KeyError> {
    let raw = BASE64.decode(b64).map_err(|_| KeyError::Base64)?;
    let (&type_byte, key) = raw.split_first().ok_or(KeyError::Empty)?;
    let key_type = KeyType::from_byte(type_byte)?;
    let key = <[u8; KEY_LEN]>::try_from(key).map_err(|_| KeyError::Length(key.len()))?;
    Ok((key_type, key))
}

/// Encodes `base64(type || key)`.
fn encode_typed_key(key_type: KeyType, key: &[u8; KEY_LEN]) -> String {
    let mut raw = Vec::with_capacity(1 + KEY_LEN);
    raw.push(key_type.byte());
    raw.extend_from_slice(key);
    BASE64.encode(raw)
}

/// Splits `<name>+<hex id>+<base64>` and checks the name and ID syntax.
fn split_key_string(s: &str, format_err: KeyError) -> Result<(&str, u32, &str), KeyError> {
    // The name cannot contain '+', but base64 can: split twice only.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format_err);
    };
    if !is_valid_key_name(name) {
        return Err(KeyError::InvalidName(name.to_owned()));
    }
    Ok((name, parse_key_id_hex(id)?, key))
}

/// A public key that verifies note signatures, parsed from or written as a
/// vkey string `<name>+<hex8 key ID>+<base64(type || public key)>`.
/// Hashable, so policies can collect distinct keys in sets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    name: String,
    key_type: KeyType,
    id: u32,
    public: VerifyingKey,
}

impl VerifierKey {
    /// Parses a vkey string, checking that the stated key ID matches the
    /// key. Never panics; this is a fuzzing entry point.
    pub fn parse(s: &str) -> Result<VerifierKey, KeyError> {
        let (name, stated, b64) = split_key_string(s, KeyError::VerifierFormat)?;
        let (key_type, public) = decode_typed_key(b64)?;
        let key = VerifierKey::new(name, key_type, &public)?;
        if key.id != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                derived: key.id,
            });
        }
        Ok(key)
    }

    /// Builds a key from its parts, deriving the key ID.
    pub fn new(
        name: &str,
        key_type: KeyType,
        public: &[u8; KEY_LEN],
    ) -> Result<VerifierKey, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName(name.to_owned()));
        }
        let verifying = VerifyingKey::from_bytes(public).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key_type,
            id: key_id(name, key_type, public),
            public: verifying,
        })
    }

    /// The key name, as it appears in signature lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key ID.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// What kind of signatures this key verifies.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Whether `sig` claims to be by this key (same name and key ID).
    pub fn matches(&self, sig: &NoteSignature) -> bool {
        self.name == sig.name && self.id == sig.key_id
    }

    /// Verifies one signature over `text` (the note text, final newline
    /// included). Returns the cosignature timestamp for
    /// [`KeyType::CosignatureV1`] keys and `None` for plain Ed25519 keys.
    /// Fails if the signature is by another key or does not verify.
    pub fn verify_signature(
        &self,
        text: &str,
        sig: &NoteSignature,
    ) -> Result<Option<u64>, NoteError> {
        if !self.matches(sig) {
            return Err(NoteError::KeyMismatch {
                name: self.name.clone(),
                key_id: self.id,
                sig_name: sig.name.clone(),
                sig_id: sig.key_id,
            });
        }
        let invalid = |reason: String| NoteError::InvalidSignature {
            name: self.name.clone(),
            key_id: self.id,
            reason,
        };
        match self.key_type {
            KeyType::Ed25519 => {
                verify_ed25519(&self.public, text.as_bytes(), &sig.signature)
                    .map_err(|r| invalid(r.into()))?;
                Ok(None)
            }
            KeyType::CosignatureV1 => cosignature::verify_bytes(&self.public, text, &sig.signature)
                .map(Some)
                .map_err(|e| invalid(e.to_string())),
        }
    }
}

/// Checks a 64-byte Ed25519 signature with `verify_strict`.
pub(crate) fn verify_ed25519(
    key: &VerifyingKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), &'static str> {
    let sig =
        <[u8; ED25519_SIG_LEN]>::try_from(sig).map_err(|_| "Ed25519 signature is not 64 bytes")?;
    key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| "Ed25519 signature is invalid")
}

impl fmt::Display for VerifierKey {
    /// Writes the vkey string; [`VerifierKey::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = encode_typed_key(self.key_type, self.public.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, b64)
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl std::str::FromStr for VerifierKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VerifierKey::parse(s)
    }
}

/// A private key that signs notes, written as the Go-style string
/// `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(type || 32-byte seed)>`.
///
/// Its `Debug` output never shows the seed; the seed is zeroed on drop.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key_type: KeyType,
    id: u32,
    signing: SigningKey,
}

impl SignerKey {
    /// Parses a private key string, checking that the stated key ID matches
    /// the derived public key. Never panics; this is a fuzzing entry point.
    pub fn parse(s: &str) -> Result<SignerKey, KeyError> {
        let rest = s
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(KeyError::PrivateFormat)?;
        let (name, stated, b64) = split_key_string(rest, KeyError::PrivateFormat)?;
        let (key_type, seed) = decode_typed_key(b64)?;
        let key = SignerKey::from_seed(name, key_type, &seed)?;
        if key.id != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                derived: key.id,
            });
        }
        Ok(key)
    }

    /// Builds a key from a 32-byte Ed25519 seed.
    pub fn from_seed(
        name: &str,
        key_type: KeyType,
        seed: &[u8; KEY_LEN],
    ) -> Result<SignerKey, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::InvalidName(name.to_owned()));
        }
        let signing = SigningKey::from_bytes(seed);
        let id = key_id(name, key_type, signing.verifying_key().as_bytes());
        Ok(SignerKey {
            name: name.to_owned(),
            key_type,
            id,
            signing,
        })
    }

    /// Generates a new key with a seed from the operating system's random
    /// number generator.
    pub fn generate(name: &str, key_type: KeyType) -> Result<SignerKey, KeyError> {
        let mut seed = [0u8; KEY_LEN];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let key = SignerKey::from_seed(name, key_type, &seed);
        seed.fill(0);
        key
    }

    /// The private key string, for writing to a key file (mode 0600).
    pub fn to_private_string(&self) -> String {
        let b64 = encode_typed_key(self.key_type, self.signing.as_bytes());
        format!("{PRIVATE_PREFIX}{}+{:08x}+{}", self.name, self.id, b64)
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_type: self.key_type,
            id: self.id,
            public: self.signing.verifying_key(),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key ID.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// What kind of signatures this key makes.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Signs `text` with a [`KeyType::Ed25519`] key. The text must be a valid
    /// note text (see [`check_text`]). Cosigner keys need a timestamp: use
    /// [`super::cosignature::sign`] for them.
    pub fn sign(&self, text: &str) -> Result<NoteSignature, NoteError> {
        if self.key_type != KeyType::Ed25519 {
            return Err(NoteError::WrongKeyType {
                name: self.name.clone(),
                key_type: self.key_type,
                hint: "cosigner keys sign with cosignature::sign, which takes a timestamp",
            });
        }
        check_text(text)?;
        let sig = self.sign_raw(text.as_bytes());
        Ok(NoteSignature::from_parts(
            self.name.clone(),
            self.id,
            sig.to_vec(),
        ))
    }

    /// The raw Ed25519 signature of `msg`, for the signature formats built on notes.
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; ED25519_SIG_LEN] {
        self.signing.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SignerKey({}+{:08x}, {})",
            self.name, self.id, self.key_type
        )
    }
}

/// One signature line of a note: the key name, the key ID and the signature
/// bytes that follow the key ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// Builds a signature line from its parts; the name must be a valid key name.
    pub fn new(name: &str, key_id: u32, signature: Vec<u8>) -> Result<NoteSignature, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName {
                line: 0,
                name: name.to_owned(),
            });
        }
        if signature.is_empty() {
            return Err(NoteError::MalformedSignature {
                line: 0,
                reason: "signature is empty",
            });
        }
        Ok(NoteSignature::from_parts(
            name.to_owned(),
            key_id,
            signature,
        ))
    }

    /// Builds a signature from parts already known to be valid.
    pub(crate) fn from_parts(name: String, key_id: u32, signature: Vec<u8>) -> NoteSignature {
        NoteSignature {
            name,
            key_id,
            signature,
        }
    }

    /// Parses one signature line, without its newline. `line` numbers errors.
    fn parse_line(s: &str, line: usize) -> Result<NoteSignature, NoteError> {
        let malformed = |reason| NoteError::MalformedSignature { line, reason };
        let rest = s
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| malformed("does not start with an em dash (U+2014) and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("no space between the key name and the signature"))?;
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName {
                line,
                name: name.to_owned(),
            });
        }
        let raw = BASE64
            .decode(b64)
            .map_err(|_| malformed("signature is not valid standard base64"))?;
        if raw.len() < 5 {
            return Err(malformed(
                "signature is shorter than a 4-byte key ID and 1 byte",
            ));
        }
        let (id, sig) = raw.split_at(4);
        let key_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        Ok(NoteSignature::from_parts(
            name.to_owned(),
            key_id,
            sig.to_vec(),
        ))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes after the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The signature line with its final newline: `— <name> <base64(id || sig)>\n`.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, BASE64.encode(raw))
    }
}

/// A key that verified a note signature, as returned by [`Note::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The known key that verified.
    pub key: VerifierKey,
    /// The cosignature timestamp (POSIX seconds) for [`KeyType::CosignatureV1`] keys.
    pub timestamp: Option<u64>,
}

/// Checks that `text` is a valid note text: it ends in a newline and has no
/// control characters other than newline.
pub fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextMissingNewline);
    }
    check_control(text.as_bytes())
}

/// Rejects ASCII control characters other than newline.
fn check_control(bytes: &[u8]) -> Result<(), NoteError> {
    match bytes.iter().position(|&b| b < 0x20 && b != b'\n') {
        Some(offset) => Err(NoteError::ControlCharacter {
            byte: bytes[offset],
            offset,
        }),
        None => Ok(()),
    }
}

/// A signed note: a text and one or more signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note. Enforces [`MAX_NOTE_SIZE`] and
    /// [`MAX_SIGNATURES`]; verifies nothing (see [`Note::verify`]). Never
    /// panics; this is a fuzzing entry point.
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: bytes.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        check_control(bytes)?;
        let split = s.rfind("\n\n").ok_or(NoteError::MissingSeparator)?;
        let (text, sigs) = (&s[..split + 1], &s[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let body = sigs
            .strip_suffix('\n')
            .ok_or(NoteError::MissingTrailingNewline)?;
        let count = body.split('\n').count();
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                count,
                max: MAX_SIGNATURES,
            });
        }
        let signatures = body
            .split('\n')
            .enumerate()
            .map(|(i, line)| NoteSignature::parse_line(line, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Builds a note from a text and at least one signature, checking the
    /// text and the limits, so that every `Note` serialises to a note that
    /// [`Note::parse`] accepts.
    pub fn new(text: &str, signatures: Vec<NoteSignature>) -> Result<Note, NoteError> {
        check_text(text)?;
        if signatures.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let note = Note {
            text: text.to_owned(),
            signatures: Vec::new(),
        };
        signatures.into_iter().try_fold(note, |mut note, sig| {
            note.add_signature(sig)?;
            Ok(note)
        })
    }

    /// Signs `text` with every Ed25519 signer, in order.
    pub fn sign(text: &str, signers: &[&SignerKey]) -> Result<Note, NoteError> {
        if signers.is_empty() {
            return Err(NoteError::NoSigners);
        }
        let sigs = signers
            .iter()
            .map(|k| k.sign(text))
            .collect::<Result<Vec<_>, _>>()?;
        Note::new(text, sigs)
    }

    /// Appends a signature line (e.g. a witness cosignature), enforcing the limits.
    pub fn add_signature(&mut self, sig: NoteSignature) -> Result<(), NoteError> {
        let count = self.signatures.len() + 1;
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                count,
                max: MAX_SIGNATURES,
            });
        }
        let size = self.encoded_len() + sig.to_line().len();
        if size > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size,
                max: MAX_NOTE_SIZE,
            });
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// The note text, final newline included: what the signatures sign.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// The serialised note: text, empty line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Length of the serialised note.
    fn encoded_len(&self) -> usize {
        self.text.len()
            + 1
            + self
                .signatures
                .iter()
                .map(|s| s.to_line().len())
                .sum::<usize>()
    }

    /// Verifies the note against the known `keys` (signed-note §Signatures).
    ///
    /// Signatures whose name and key ID match no known key are ignored. A
    /// signature by a known key that fails to verify rejects the whole note.
    /// Succeeds only if at least one known key verified, and returns each
    /// verifying key once (its first signature), in note order.
    pub fn verify(&self, keys: &[VerifierKey]) -> Result<Vec<VerifiedSignature>, NoteError> {
        let mut verified: Vec<VerifiedSignature> = Vec::new();
        for sig in &self.signatures {
            let Some(key) = find_key(keys, sig)? else {
                continue;
            };
            let timestamp = key.verify_signature(&self.text, sig)?;
            if !verified.iter().any(|v| v.key == *key) {
                verified.push(VerifiedSignature {
                    key: key.clone(),
                    timestamp,
                });
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        Ok(verified)
    }
}

/// The known key with the signature's name and key ID, if any; an error if
/// two different known keys collide on both.
fn find_key<'k>(
    keys: &'k [VerifierKey],
    sig: &NoteSignature,
) -> Result<Option<&'k VerifierKey>, NoteError> {
    let mut matching = keys.iter().filter(|k| k.matches(sig));
    let first = matching.next();
    if let Some(first) = first
        && matching.any(|k| k != first)
    {
        return Err(NoteError::AmbiguousKey {
            name: sig.name.clone(),
            key_id: sig.key_id,
        });
    }
    Ok(first)
}

impl fmt::Display for Note {
    /// Writes the note in its wire form; [`Note::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        self.signatures
            .iter()
            .try_for_each(|s| f.write_str(&s.to_line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: &str = "example.com/log\n7\nbm90IGEgcmVhbCByb290IGhhc2ggYnV0IDMyIGJ5dGU=\n";

    fn key(name: &str, key_type: KeyType, seed: u8) -> SignerKey {
        SignerKey::from_seed(name, key_type, &[seed; 32]).unwrap()
    }

    fn signed(text: &str, keys: &[&SignerKey]) -> String {
        Note::sign(text, keys).unwrap().to_string()
    }

    #[test]
    fn key_names() {
        assert!(is_valid_key_name("example.com/log"));
        assert!(is_valid_key_name("é"));
        for bad in ["", "a b", "a+b", "a\tb", "a\u{a0}b", "a\u{2003}b", "a\nb"] {
            assert!(!is_valid_key_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn vkey_round_trips_for_every_type() {
        for kt in [KeyType::Ed25519, KeyType::CosignatureV1] {
            let vkey = key("example.com/k", kt, 3).verifier();
            let s = vkey.to_string();
            let parsed = VerifierKey::parse(&s).unwrap();
            assert_eq!(parsed, vkey);
            assert_eq!(parsed.to_string(), s);
            assert_eq!(parsed.key_type(), kt);
            assert_eq!(s.parse::<VerifierKey>().unwrap(), vkey);
        }
    }

    #[test]
    fn key_id_depends_on_type() {
        let a = key("n", KeyType::Ed25519, 1).verifier();
        let b = key("n", KeyType::CosignatureV1, 1).verifier();
        assert_eq!(a.public_key(), b.public_key());
        assert_ne!(a.key_id(), b.key_id());
    }

    #[test]
    fn vkey_id_mismatch_is_rejected() {
        let vkey = key("example.com/k", KeyType::Ed25519, 3).verifier();
        let wrong = vkey.key_id() ^ 1;
        let b64 = vkey.to_string().splitn(3, '+').nth(2).unwrap().to_owned();
        let s = format!("example.com/k+{wrong:08x}+{b64}");
        assert_eq!(
            VerifierKey::parse(&s),
            Err(KeyError::KeyIdMismatch {
                stated: wrong,
                derived: vkey.key_id()
            })
        );
        // Same key material under another name: the ID no longer matches.
        let s = format!("example.com/other+{:08x}+{b64}", vkey.key_id());
        assert!(matches!(
            VerifierKey::parse(&s),
            Err(KeyError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn malformed_vkeys_are_rejected() {
        let good = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
        assert!(VerifierKey::parse(good).is_ok());
        let cases: &[(&str, KeyError)] = &[
            ("", KeyError::VerifierFormat),
            ("example.com/foo", KeyError::VerifierFormat),
            ("example.com/foo+530d903a", KeyError::VerifierFormat),
            (
                "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
                KeyError::InvalidName(String::new()),
            ),
            (
                "a b+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
                KeyError::InvalidName("a b".into()),
            ),
            (
                "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
                KeyError::KeyIdHex("530D903A".into()),
            ),
            (
                "example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
                KeyError::KeyIdHex("530d903".into()),
            ),
            ("example.com/foo+530d903a+!!!!", KeyError::Base64),
            // Missing padding is not standard base64.
            (
                "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",
                KeyError::Base64,
            ),
            ("example.com/foo+530d903a+", KeyError::Empty),
            ("example.com/foo+530d903a+AQID", KeyError::Length(2)),
            (
                "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
                KeyError::UnsupportedType(2),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(VerifierKey::parse(s).as_ref(), Err(want), "{s:?}");
        }
    }

    #[test]
    fn private_key_round_trips_for_every_type() {
        for kt in [KeyType::Ed25519, KeyType::CosignatureV1] {
            let k = SignerKey::generate("example.com/gen", kt).unwrap();
            let s = k.to_private_string();
            assert!(s.starts_with("PRIVATE+KEY+example.com/gen+"));
            let parsed = SignerKey::parse(&s).unwrap();
            assert_eq!(parsed.to_private_string(), s);
            assert_eq!(parsed.verifier(), k.verifier());
            assert_eq!(parsed.key_type(), kt);
            assert_eq!(parsed.key_id(), k.verifier().key_id());
            assert!(!format!("{k:?}").contains(s.splitn(5, '+').nth(4).unwrap()));
        }
        let a = SignerKey::generate("n", KeyType::Ed25519).unwrap();
        let b = SignerKey::generate("n", KeyType::Ed25519).unwrap();
        assert_ne!(a.verifier(), b.verifier(), "seeds are random");
    }

    #[test]
    fn generated_vkey_verifies_what_the_key_signs() {
        let k = SignerKey::generate("example.com/gen", KeyType::Ed25519).unwrap();
        let vkey = VerifierKey::parse(&k.verifier().to_string()).unwrap();
        let note = Note::parse(signed(TEXT, &[&k]).as_bytes()).unwrap();
        let verified = note.verify(std::slice::from_ref(&vkey)).unwrap();
        assert_eq!(
            verified,
            vec![VerifiedSignature {
                key: vkey,
                timestamp: None
            }]
        );
    }

    #[test]
    fn malformed_private_keys_are_rejected() {
        let k = key("example.com/k", KeyType::Ed25519, 9);
        let s = k.to_private_string();
        assert_eq!(
            SignerKey::parse(&s["PRIVATE+".len()..]).err(),
            Some(KeyError::PrivateFormat)
        );
        assert_eq!(
            SignerKey::parse("PRIVATE+KEY+x").err(),
            Some(KeyError::PrivateFormat)
        );
        // The vkey is not a private key.
        assert_eq!(
            SignerKey::parse(&k.verifier().to_string()).err(),
            Some(KeyError::PrivateFormat)
        );
        let wrong = s.replace(
            &format!("{:08x}", k.key_id()),
            &format!("{:08x}", k.key_id() ^ 0x100),
        );
        assert!(matches!(
            SignerKey::parse(&wrong),
            Err(KeyError::KeyIdMismatch { .. })
        ));
        let short = format!("PRIVATE+KEY+example.com/k+{:08x}+AQID", k.key_id());
        assert_eq!(SignerKey::parse(&short).err(), Some(KeyError::Length(2)));
    }

    #[test]
    fn note_round_trips_byte_identical() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let b = key("b.example/2", KeyType::Ed25519, 2);
        for text in [
            TEXT,
            "\n",
            "one\n\ntwo\n\n",
            "— looks like a signature line\n",
        ] {
            let s = signed(text, &[&a, &b]);
            let note = Note::parse(s.as_bytes()).unwrap();
            assert_eq!(note.text(), text);
            assert_eq!(note.signatures().len(), 2);
            assert_eq!(note.to_string(), s);
            assert_eq!(note.to_bytes(), s.as_bytes());
            assert_eq!(note.verify(&[a.verifier(), b.verifier()]).unwrap().len(), 2);
        }
    }

    /// Flips every bit of `good[range]` in turn; each must fail to parse or verify with `known`.
    fn assert_flips_rejected(good: &[u8], range: std::ops::Range<usize>, known: &[VerifierKey]) {
        assert!(Note::parse(good).unwrap().verify(known).is_ok());
        for i in range.start * 8..range.end * 8 {
            let mut bad = good.to_vec();
            bad[i / 8] ^= 1 << (i % 8);
            let result = Note::parse(&bad).and_then(|n| n.verify(known));
            assert!(result.is_err(), "flipping bit {i} was accepted");
        }
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let log = key("log.example/a", KeyType::Ed25519, 1);
        let witness = key("witness.example/w", KeyType::CosignatureV1, 2);
        let mut note = Note::sign(TEXT, &[&log]).unwrap();
        cosignature::cosign(&mut note, &witness, 1_700_000_000).unwrap();
        let good = note.to_bytes();
        let both = [log.verifier(), witness.verifier()];
        // The text and the separating empty line: every known signature breaks.
        let text_end = TEXT.len() + 1;
        assert_flips_rejected(&good, 0..text_end, &both);
        // Each signature line: a flip breaks it, or (in the name or ID) makes it
        // an unknown key's, which leaves no known signature.
        let log_end = text_end + note.signatures()[0].to_line().len();
        assert_flips_rejected(&good, text_end..log_end, &[log.verifier()]);
        assert_flips_rejected(&good, log_end..good.len(), &[witness.verifier()]);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let b = key("b.example/2", KeyType::Ed25519, 2);
        let note = Note::parse(signed(TEXT, &[&b, &a]).as_bytes()).unwrap();
        let verified = note.verify(&[a.verifier()]).unwrap();
        assert_eq!(verified.len(), 1);
        assert_eq!(verified[0].key, a.verifier());
        assert_eq!(
            note.verify(&[key("c", KeyType::Ed25519, 3).verifier()]),
            Err(NoteError::NoKnownSignature)
        );
        assert_eq!(note.verify(&[]), Err(NoteError::NoKnownSignature));
    }

    #[test]
    fn same_name_or_id_alone_is_an_unknown_key() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let sig = a.sign(TEXT).unwrap();
        // Same name, other ID; same ID, other name: both must be ignored, not fail.
        let other_id = NoteSignature::new("a.example/1", sig.key_id() ^ 1, vec![0; 64]).unwrap();
        let other_name = NoteSignature::new("a.example/2", sig.key_id(), vec![0; 64]).unwrap();
        let note = Note::new(TEXT, vec![other_id, other_name, sig]).unwrap();
        let note = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(note.verify(&[a.verifier()]).unwrap().len(), 1);
    }

    #[test]
    fn a_failing_known_key_rejects_the_note() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let b = key("b.example/2", KeyType::Ed25519, 2);
        let good_b = b.sign(TEXT).unwrap();
        let mut bad_sig = good_b.signature().to_vec();
        bad_sig[10] ^= 1;
        let bad_b = NoteSignature::new(b.name(), b.key_id(), bad_sig).unwrap();
        let note = Note::new(TEXT, vec![a.sign(TEXT).unwrap(), bad_b]).unwrap();
        assert!(note.verify(&[a.verifier()]).is_ok(), "b is unknown here");
        let err = note.verify(&[a.verifier(), b.verifier()]).unwrap_err();
        assert!(
            matches!(err, NoteError::InvalidSignature { ref name, .. } if name == "b.example/2"),
            "{err}"
        );
        // Wrong length from a known key also rejects.
        let short = NoteSignature::new(b.name(), b.key_id(), vec![1; 63]).unwrap();
        let note = Note::new(TEXT, vec![a.sign(TEXT).unwrap(), short]).unwrap();
        assert!(matches!(
            note.verify(&[a.verifier(), b.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn a_known_key_is_reported_once() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let sig = a.sign(TEXT).unwrap();
        let note = Note::new(TEXT, vec![sig.clone(), sig]).unwrap();
        assert_eq!(note.verify(&[a.verifier(), a.verifier()]).unwrap().len(), 1);
    }

    #[test]
    fn colliding_known_keys_are_ambiguous() {
        // Two known keys with the same name and ID cannot normally be built;
        // forge one by hand to check the guard.
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let mut evil = key("a.example/1", KeyType::Ed25519, 2).verifier();
        evil.id = a.key_id();
        let note = Note::sign(TEXT, &[&a]).unwrap();
        assert!(matches!(
            note.verify(&[a.verifier(), evil]),
            Err(NoteError::AmbiguousKey { .. })
        ));
    }

    #[test]
    fn sixteen_and_more_signatures_verify() {
        let keys: Vec<SignerKey> = (0..MAX_SIGNATURES as u8)
            .map(|i| key(&format!("w{i}.example"), KeyType::Ed25519, i))
            .collect();
        let refs: Vec<&SignerKey> = keys.iter().collect();
        for n in [16, 17, MAX_SIGNATURES] {
            let note = Note::parse(signed(TEXT, &refs[..n]).as_bytes()).unwrap();
            let vkeys: Vec<VerifierKey> = keys.iter().map(SignerKey::verifier).collect();
            assert_eq!(note.verify(&vkeys).unwrap().len(), n);
        }
    }

    #[test]
    fn too_many_signatures_are_rejected() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let line = a.sign(TEXT).unwrap().to_line();
        let s = format!("{TEXT}\n{}", line.repeat(MAX_SIGNATURES + 1));
        assert_eq!(
            Note::parse(s.as_bytes()),
            Err(NoteError::TooManySignatures {
                count: MAX_SIGNATURES + 1,
                max: MAX_SIGNATURES
            })
        );
        let mut note =
            Note::parse(format!("{TEXT}\n{}", line.repeat(MAX_SIGNATURES)).as_bytes()).unwrap();
        assert!(matches!(
            note.add_signature(a.sign(TEXT).unwrap()),
            Err(NoteError::TooManySignatures { .. })
        ));
    }

    #[test]
    fn oversized_notes_are_rejected() {
        let big = vec![b'a'; MAX_NOTE_SIZE + 1];
        assert!(matches!(Note::parse(&big), Err(NoteError::TooLarge { .. })));
        let text = format!("{}\n", "a".repeat(MAX_NOTE_SIZE));
        let a = key("a.example/1", KeyType::Ed25519, 1);
        assert!(matches!(
            Note::sign(&text, &[&a]),
            Err(NoteError::TooLarge { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let good = signed(TEXT, &[&a]);
        let (_, b64) = good.trim_end().rsplit_once(' ').unwrap();
        let cases: Vec<(Vec<u8>, NoteError)> = vec![
            (
                good.replace('\u{2014}', "-").into_bytes(),
                NoteError::MalformedSignature {
                    line: 1,
                    reason: "does not start with an em dash (U+2014) and a space",
                },
            ),
            (
                good.replace(&format!(" {b64}"), b64).into_bytes(),
                NoteError::MalformedSignature {
                    line: 1,
                    reason: "no space between the key name and the signature",
                },
            ),
            (
                good.replace(b64, "not*base64").into_bytes(),
                NoteError::MalformedSignature {
                    line: 1,
                    reason: "signature is not valid standard base64",
                },
            ),
            (
                good.replace(b64, "").into_bytes(),
                NoteError::MalformedSignature {
                    line: 1,
                    reason: "signature is shorter than a 4-byte key ID and 1 byte",
                },
            ),
            (
                good.replace(b64, "AAAAAA==").into_bytes(),
                NoteError::MalformedSignature {
                    line: 1,
                    reason: "signature is shorter than a 4-byte key ID and 1 byte",
                },
            ),
            (
                good.replace(b64, &b64[..b64.len() - 1]).into_bytes(),
                NoteError::MalformedSignature {
                    line: 1,
                    reason: "signature is not valid standard base64",
                },
            ),
            (
                good.replace("a.example/1", "a+example").into_bytes(),
                NoteError::InvalidKeyName {
                    line: 1,
                    name: "a+example".into(),
                },
            ),
            (
                good.trim_end().as_bytes().to_vec(),
                NoteError::MissingTrailingNewline,
            ),
            (format!("{good}\n").into_bytes(), NoteError::NoSignatures),
            (format!("{TEXT}\n").into_bytes(), NoteError::NoSignatures),
            (TEXT.as_bytes().to_vec(), NoteError::MissingSeparator),
            (
                good.replacen('\n', "\n\n", 1)
                    .replace("\n\n\u{2014}", "\n\u{2014}")
                    .into_bytes(),
                NoteError::MalformedSignature {
                    line: 1,
                    reason: "does not start with an em dash (U+2014) and a space",
                },
            ),
            (
                good.replacen("example.com", "exa\rmple.com", 1)
                    .into_bytes(),
                NoteError::ControlCharacter {
                    byte: b'\r',
                    offset: 3,
                },
            ),
            (
                good.replacen("example.com", "exa\tmple.com", 1)
                    .into_bytes(),
                NoteError::ControlCharacter {
                    byte: b'\t',
                    offset: 3,
                },
            ),
            ([&[0xff][..], good.as_bytes()].concat(), NoteError::NotUtf8),
            (Vec::new(), NoteError::MissingSeparator),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                Note::parse(&bytes),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn a_signature_line_needs_key_id_and_signature() {
        // Exactly 5 bytes (ID and one byte) parses; the key then fails to verify it.
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let sig = NoteSignature::new(a.name(), a.key_id(), vec![7]).unwrap();
        let note = Note::parse(&Note::new(TEXT, vec![sig]).unwrap().to_bytes()).unwrap();
        assert!(matches!(
            note.verify(&[a.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
        assert!(NoteSignature::new(a.name(), 1, Vec::new()).is_err());
        assert!(NoteSignature::new("bad name", 1, vec![1]).is_err());
    }

    #[test]
    fn signing_checks_text_and_key_type() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let w = key("w.example/1", KeyType::CosignatureV1, 1);
        assert_eq!(Note::sign(TEXT, &[]), Err(NoteError::NoSigners));
        assert_eq!(
            Note::sign("no newline", &[&a]),
            Err(NoteError::TextMissingNewline)
        );
        assert!(matches!(
            Note::sign("bell\u{7}\n", &[&a]),
            Err(NoteError::ControlCharacter { .. })
        ));
        assert!(matches!(
            Note::sign(TEXT, &[&w]),
            Err(NoteError::WrongKeyType { .. })
        ));
        assert!(matches!(
            Note::new("x", vec![]),
            Err(NoteError::TextMissingNewline)
        ));
        assert_eq!(Note::new(TEXT, vec![]), Err(NoteError::NoSignatures));
    }

    #[test]
    fn verify_signature_checks_the_key() {
        let a = key("a.example/1", KeyType::Ed25519, 1);
        let b = key("b.example/1", KeyType::Ed25519, 2);
        let sig = a.sign(TEXT).unwrap();
        assert_eq!(a.verifier().verify_signature(TEXT, &sig), Ok(None));
        assert!(matches!(
            b.verifier().verify_signature(TEXT, &sig),
            Err(NoteError::KeyMismatch { .. })
        ));
        assert!(matches!(
            a.verifier().verify_signature("other\n", &sig),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn cosigner_keys_verify_cosignatures_in_notes() {
        let log = key("log.example/a", KeyType::Ed25519, 1);
        let w = key("witness.example/w", KeyType::CosignatureV1, 2);
        let mut note = Note::sign(TEXT, &[&log]).unwrap();
        cosignature::cosign(&mut note, &w, 1234).unwrap();
        let note = Note::parse(&note.to_bytes()).unwrap();
        let verified = note.verify(&[log.verifier(), w.verifier()]).unwrap();
        assert_eq!(
            verified[1],
            VerifiedSignature {
                key: w.verifier(),
                timestamp: Some(1234)
            }
        );
        // A plain Ed25519 key with the cosigner's seed and name has another ID: ignored.
        let plain = key("witness.example/w", KeyType::Ed25519, 2);
        assert_eq!(
            note.verify(&[plain.verifier()]),
            Err(NoteError::NoKnownSignature)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Note::parse(&bytes);
        }

        #[test]
        fn parsed_notes_serialise_back(s in "[a-z\n ]{0,40}\n\n(\u{2014} [a-z.]{1,8} [A-Za-z0-9+/]{8,16}={0,2}\n){1,4}") {
            if let Ok(note) = Note::parse(s.as_bytes()) {
                prop_assert_eq!(note.to_string(), s);
            }
        }

        #[test]
        fn key_parsers_never_panic(s in "\\PC{0,80}") {
            let _ = VerifierKey::parse(&s);
            let _ = SignerKey::parse(&s);
            let _ = VerifierKey::parse(&format!("a+{s}"));
            let _ = SignerKey::parse(&format!("PRIVATE+KEY+a+00000000+{s}"));
        }

        #[test]
        fn signed_notes_verify(text in "[ -~\n]{0,200}\n", seed in any::<[u8; 32]>()) {
            let k = SignerKey::from_seed("p.example", KeyType::Ed25519, &seed).unwrap();
            let note = Note::sign(&text, &[&k]).unwrap();
            let parsed = Note::parse(&note.to_bytes()).unwrap();
            prop_assert_eq!(parsed.text(), text.as_str());
            prop_assert!(parsed.verify(&[k.verifier()]).is_ok());
        }
    }
}
