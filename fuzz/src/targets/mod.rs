//! One module per fuzz target: `run(data)` is the target's body, called by
//! the libFuzzer binary `fuzz_targets/<name>.rs` and by `tests/replay.rs`.

pub mod audit_fast;
pub mod batch;
pub mod body;
pub mod canonical_json;
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod entry_bundle;
pub mod evidence;
pub mod fetch_answers;
pub mod http_params;
pub mod idmap;
pub mod keys;
pub mod log_config;
pub mod note;
pub mod openings_record;
pub mod proof_file;
pub mod tile_path;
pub mod tlog_policy;
pub mod tlog_proof;
pub mod token_file;
pub mod verify_consistency;
pub mod verify_inclusion;
pub mod witness_config;
pub mod witness_evidence;
pub mod witness_reply;
pub mod witness_request;
pub mod witness_state;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay test.
pub const ALL: &[(&str, Target)] = &[
    ("audit_fast", audit_fast::run),
    ("batch", batch::run),
    ("body", body::run),
    ("canonical_json", canonical_json::run),
    ("checkpoint", checkpoint::run),
    ("cosignature", cosignature::run),
    ("entry", entry::run),
    ("entry_bundle", entry_bundle::run),
    ("evidence", evidence::run),
    ("fetch_answers", fetch_answers::run),
    ("http_params", http_params::run),
    ("idmap", idmap::run),
    ("keys", keys::run),
    ("log_config", log_config::run),
    ("note", note::run),
    ("openings_record", openings_record::run),
    ("proof_file", proof_file::run),
    ("tile_path", tile_path::run),
    ("tlog_policy", tlog_policy::run),
    ("tlog_proof", tlog_proof::run),
    ("token_file", token_file::run),
    ("verify_consistency", verify_consistency::run),
    ("verify_inclusion", verify_inclusion::run),
    ("witness_config", witness_config::run),
    ("witness_evidence", witness_evidence::run),
    ("witness_reply", witness_reply::run),
    ("witness_request", witness_request::run),
    ("witness_state", witness_state::run),
];
