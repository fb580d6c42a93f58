//! HTTP routes (to be written).
