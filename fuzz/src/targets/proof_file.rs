//! The CLI's proof files (`proof verify-inclusion --proof F`,
//! `verify-consistency`): `cli::parse_proof_file` on arbitrary bytes.
//!
//! A file that parses has one hash per line; written back in canonical
//! form (standard base64, one per line) it parses to the same hashes; an
//! empty proof comes only from an empty file (or a lone newline, today).
//! Errors name the line or say the file is not text.

use modeltrail::cli::parse_proof_file;

/// The target: `fuzz_targets/proof_file.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    match parse_proof_file(data) {
        Ok(proof) => {
            let body = data.strip_suffix(b"\n").unwrap_or(data);
            if proof.is_empty() {
                assert!(body.is_empty());
            } else {
                assert_eq!(proof.len(), body.split(|&b| b == b'\n').count());
            }
            let text: String = proof
                .iter()
                .map(|h| format!("{}\n", h.to_base64()))
                .collect();
            assert_eq!(parse_proof_file(text.as_bytes()), Ok(proof));
        }
        Err(e) => assert!(e.starts_with("line ") || e == "is not UTF-8 text", "{e}"),
    }
}
