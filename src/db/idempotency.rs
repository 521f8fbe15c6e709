//! The tenant's `idempotency_keys`: one row per key, claimed before the work with
//! `INSERT … ON CONFLICT DO NOTHING`, completed with the response in the work's transaction.

use super::context::TenantTx;
use crate::domain::SimulationId;
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// This request now owns the key.
    Claimed,
    /// Another request holds it: its body hash, and its stored response once completed.
    Held {
        /// SHA-256 of that request's body.
        request_hash: Vec<u8>,
        /// Its response, when completed.
        response: Option<serde_json::Value>,
    },
}

/// Forgets keys created before `expired_before`, then claims `key` for a request whose body
/// hashes to `hash`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn claim(
    tx: &mut TenantTx,
    key: &str,
    hash: &[u8],
    now: DateTime<Utc>,
    expired_before: DateTime<Utc>,
) -> Result<ClaimOutcome, AppError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(expired_before)
        .execute(tx.conn())
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (key, request_hash, status, created_at) VALUES ($1, $2, 'in_progress', $3) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(hash)
    .bind(now)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(ClaimOutcome::Claimed);
    }
    let row =
        sqlx::query("SELECT request_hash, status, response FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .fetch_one(tx.conn())
            .await?;
    let status: String = row.try_get("status")?;
    Ok(ClaimOutcome::Held {
        request_hash: row.try_get("request_hash")?,
        response: if status == "completed" {
            row.try_get("response")?
        } else {
            None
        },
    })
}

/// Marks `key` completed with `response`, in the transaction that stored the simulation.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn complete(
    tx: &mut TenantTx,
    key: &str,
    simulation: SimulationId,
    response: serde_json::Value,
) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = 'completed', simulation_id = $2, response = $3 WHERE key = $1",
    )
    .bind(key)
    .bind(simulation.as_uuid())
    .bind(response)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Releases a claim whose request failed, so the key can be retried.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn release(tx: &mut TenantTx, key: &str) -> Result<(), AppError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND status = 'in_progress'")
        .bind(key)
        .execute(tx.conn())
        .await?;
    Ok(())
}
