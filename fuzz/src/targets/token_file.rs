//! The read-token file (`<data>/tokens`): `log::access::TokenFile::parse`
//! on arbitrary UTF-8.
//!
//! A file that parses writes back byte for byte (the format is canonical),
//! and checking any token against it never panics; the token-format check
//! never panics either.

use modeltrail::log::access::{TokenFile, well_formed};

/// The target: `fuzz_targets/token_file.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = well_formed(text);
    let Ok(file) = TokenFile::parse(text) else {
        return;
    };
    assert_eq!(file.to_text(), text);
    let _ = file.accepts(text);
    let _ = file.accepts("mt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
}
