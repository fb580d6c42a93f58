//! Signed entries (to be written).
