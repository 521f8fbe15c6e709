//! Limits applied at the HTTP edge, before any handler runs.

/// Largest body of any operation (a simulation with caller-supplied bootstrap returns); each
/// operation has its own, smaller or equal, limit (`payload::BodyLimit`).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
