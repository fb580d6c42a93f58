//! The sequencer (to be written).
