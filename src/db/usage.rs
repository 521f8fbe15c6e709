//! The tenant's `api_call_logs`: one row per authenticated call, and the aggregates of the
//! usage report.

use super::context::TenantTx;
use crate::domain::{ApiKeyId, UserId};
use crate::error::AppError;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

/// One authenticated call.
#[derive(Debug, Clone)]
pub struct CallRecord<'a> {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// The API key, for key callers.
    pub api_key: Option<ApiKeyId>,
    /// The user, for bearer callers.
    pub user: Option<UserId>,
    /// HTTP method.
    pub method: &'a str,
    /// Path pattern (ids replaced by `{id}`).
    pub endpoint: &'a str,
    /// Response status.
    pub status: u16,
    /// Duration, milliseconds.
    pub duration_ms: f64,
    /// Work units (paths × steps for simulations).
    pub units: i64,
    /// How many calls the row stands for (refusals are recorded in aggregate).
    pub calls: i32,
}

/// Appends a call row.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn insert_call(tx: &mut TenantTx, call: &CallRecord<'_>) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO api_call_logs (created_at, api_key_id, user_id, method, endpoint, status, duration_ms, units, calls) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(call.at)
    .bind(call.api_key.map(|k| k.as_uuid()))
    .bind(call.user.map(|u| u.as_uuid()))
    .bind(call.method)
    .bind(call.endpoint)
    .bind(i32::from(call.status))
    .bind(call.duration_ms)
    .bind(call.units)
    .bind(call.calls)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Calls on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCalls {
    /// UTC date.
    pub date: NaiveDate,
    /// Calls.
    pub calls: i64,
    /// Successful simulations.
    pub simulations: i64,
    /// Calls answered ≥ 400.
    pub errors: i64,
    /// Work units.
    pub units: i64,
}

/// Calls of one key (or of bearer callers, `key` absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCalls {
    /// Key.
    pub key: Option<ApiKeyId>,
    /// Its display prefix.
    pub prefix: Option<String>,
    /// Calls.
    pub calls: i64,
    /// Successful simulations.
    pub simulations: i64,
    /// Work units.
    pub units: i64,
    /// Last call.
    pub last_call_at: DateTime<Utc>,
}

/// What counts as one successful simulation in the call log (columns of `api_call_logs`
/// aliased as `t`).
fn simulation_call(t: &str) -> String {
    format!("{t}.endpoint = '/api/v1/simulations' AND {t}.method = 'POST' AND {t}.status = 201")
}

/// Calls per UTC day since `since`, oldest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn daily(tx: &mut TenantTx, since: DateTime<Utc>) -> Result<Vec<DailyCalls>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT (l.created_at AT TIME ZONE 'UTC')::date AS day, sum(l.calls)::bigint AS calls, \
                COALESCE(sum(l.calls) FILTER (WHERE {}), 0)::bigint AS sims, \
                COALESCE(sum(l.calls) FILTER (WHERE l.status >= 400), 0)::bigint AS errors, \
                COALESCE(sum(l.units), 0)::bigint AS units \
         FROM api_call_logs l WHERE l.created_at >= $1 GROUP BY day ORDER BY day",
        simulation_call("l")
    )))
    .bind(since)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DailyCalls {
                date: r.try_get("day")?,
                calls: r.try_get("calls")?,
                simulations: r.try_get("sims")?,
                errors: r.try_get("errors")?,
                units: r.try_get("units")?,
            })
        })
        .collect()
}

/// Calls per key since `since`, most calls first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn per_key(tx: &mut TenantTx, since: DateTime<Utc>) -> Result<Vec<KeyCalls>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT l.api_key_id, k.prefix, sum(l.calls)::bigint AS calls, \
                COALESCE(sum(l.calls) FILTER (WHERE {}), 0)::bigint AS sims, \
                COALESCE(sum(l.units), 0)::bigint AS units, max(l.created_at) AS last \
         FROM api_call_logs l LEFT JOIN api_keys k ON k.id = l.api_key_id \
         WHERE l.created_at >= $1 GROUP BY l.api_key_id, k.prefix ORDER BY calls DESC, last DESC",
        simulation_call("l")
    )))
    .bind(since)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyCalls {
                key: r
                    .try_get::<Option<uuid::Uuid>, _>("api_key_id")?
                    .map(ApiKeyId::from_uuid),
                prefix: r.try_get("prefix")?,
                calls: r.try_get("calls")?,
                simulations: r.try_get("sims")?,
                units: r.try_get("units")?,
                last_call_at: r.try_get("last")?,
            })
        })
        .collect()
}
