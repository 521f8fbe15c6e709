//! Idempotency keys (IETF draft-ietf-httpapi-idempotency-key-header): a key is a row, claimed
//! before the work with `INSERT … ON CONFLICT DO NOTHING`; the response is saved in the same
//! transaction as the work's result; a failed request releases its claim so it can be retried.

use crate::clock::SharedClock;
use crate::db::idempotency::{self, ClaimOutcome};
use crate::db::{Db, TenantContext};
use crate::error::AppError;
use serde::de::DeserializeOwned;

/// How long an idempotency key is remembered, hours.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// A validated idempotency key: 1 to 255 printable ASCII characters without spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks the key.
    ///
    /// # Errors
    /// 422 naming the `Idempotency-Key` header.
    pub fn parse(key: &str) -> Result<Self, AppError> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(AppError::validation(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces (a UUID is ideal)",
            ));
        }
        Ok(Self(key.to_string()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The outcome of claiming a key.
#[derive(Debug)]
pub enum Claim<T> {
    /// This request owns the key and must run.
    Owned,
    /// A completed request with the same key and body: replay its response.
    Replay(T),
}

/// Claims `key` for a request whose body hashes to `hash`, or finds the earlier request that
/// holds it.
///
/// # Errors
/// 422 when the key was used with another body; 409 while the first request is still running.
pub async fn claim<T: DeserializeOwned>(
    db: &Db,
    clock: &SharedClock,
    ctx: &TenantContext,
    key: &IdempotencyKey,
    hash: &[u8],
) -> Result<Claim<T>, AppError> {
    let now = clock.now();
    let expired_before = now - chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS);
    let mut tx = ctx.begin(db).await?;
    let outcome = idempotency::claim(&mut tx, key.as_str(), hash, now, expired_before).await?;
    tx.commit().await?;
    match outcome {
        ClaimOutcome::Claimed => Ok(Claim::Owned),
        ClaimOutcome::Held { request_hash, .. } if request_hash != hash => {
            Err(AppError::validation(
                "Idempotency-Key",
                "this Idempotency-Key was already used with a different request body; use a new key for a new request",
            ))
        }
        ClaimOutcome::Held {
            response: Some(body),
            ..
        } => Ok(Claim::Replay(
            serde_json::from_value(body).map_err(AppError::internal)?,
        )),
        ClaimOutcome::Held { response: None, .. } => Err(AppError::conflict(
            "a request with this Idempotency-Key is still being processed; retry after it completes",
        )),
    }
}

/// Releases a claimed key after the request failed, so the client can retry with it. Failures
/// are logged (the key then expires with its TTL).
pub async fn release(db: &Db, ctx: &TenantContext, key: &IdempotencyKey) {
    let result = async {
        let mut tx = ctx.begin(db).await?;
        idempotency::release(&mut tx, key.as_str()).await?;
        tx.commit().await
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(error = ?err, "could not release idempotency key");
    }
}
