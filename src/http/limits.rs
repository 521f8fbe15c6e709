//! Limits applied at the HTTP edge, before any handler runs.

/// Largest accepted request body (a caller-supplied bootstrap history is the big one).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
