//! The `POST /v1/entries` batch splitter: `server::split_batch_body` on
//! arbitrary bytes (the first byte's low bit picks NDJSON or a JSON array;
//! its second bit sets a small entry limit, the rest of it the limit).
//!
//! Under a limit the splitter answers exactly what it answers without one
//! when that holds at most `max` entries, and refuses otherwise (it stops
//! at `max + 1` instead of splitting the whole body).
//! Every entry it returns is a slice of the body, in order and without
//! overlap. NDJSON entries are non-empty and hold no newline; each ended
//! with `\r\n` (the `\r` is dropped again) they split back to the same entries.
//! A JSON array's elements, rejoined as `[e1,e2,...]`, split back to the
//! same elements; NDJSON never fails.

use modeltrail::server::split_batch_body;

/// The target: `fuzz_targets/batch.rs` calls this with the fuzzer's input.
pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let ndjson = mode & 1 == 1;
    let max = if mode & 2 == 2 {
        usize::from(mode >> 2)
    } else {
        usize::MAX
    };
    let unlimited = split_batch_body(ndjson, body, usize::MAX);
    let pieces = match split_batch_body(ndjson, body, max) {
        Ok(pieces) => {
            assert!(pieces.len() <= max);
            assert_eq!(Ok(&pieces), unlimited.as_ref().map_err(|_| ()));
            pieces
        }
        Err(_) => {
            match unlimited {
                Ok(all) => assert!(all.len() > max, "refused a batch within the limit"),
                Err(_) => assert!(!ndjson, "NDJSON splitting never fails"),
            }
            return;
        }
    };
    let base = body.as_ptr() as usize;
    let mut end = 0;
    for piece in &pieces {
        let start = piece.as_ptr() as usize - base;
        assert!(start >= end && start + piece.len() <= body.len());
        end = start + piece.len();
    }
    let joined = if ndjson {
        for piece in &pieces {
            assert!(!piece.is_empty() && !piece.contains(&b'\n'));
        }
        // Every line ends in `\r\n`: the splitter drops one `\r` before
        // a newline or at the end of the body, so a piece ending in `\r`
        // keeps it only when another `\r` follows.
        pieces
            .iter()
            .flat_map(|p| [*p, b"\r\n"])
            .collect::<Vec<&[u8]>>()
            .concat()
    } else {
        [&b"["[..], &pieces.join(&b","[..]), b"]"].concat()
    };
    let again = split_batch_body(ndjson, &joined, usize::MAX).expect("rejoined entries split");
    assert_eq!(again, pieces);
}
