//! The tenant's `api_call_logs`: one row per authenticated call, and the aggregates of the
//! usage report (over the call log and the daily aggregates retention rolls it into).

use super::context::{TenantTx, begin_for};
use super::pool::Db;
use crate::domain::{ApiKeyId, Tenant, UserId};
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

/// Calls per UTC day since `since`, oldest first: the call log plus the daily aggregates that
/// retention rolled older rows into (`api_call_daily`), so totals survive the purge.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn daily(tx: &mut TenantTx, since: DateTime<Utc>) -> Result<Vec<DailyCalls>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT x.day, sum(x.calls)::bigint AS calls, sum(x.sims)::bigint AS sims, \
                sum(x.errors)::bigint AS errors, COALESCE(sum(x.units), 0)::bigint AS units \
         FROM (SELECT (l.created_at AT TIME ZONE 'UTC')::date AS day, l.calls::bigint AS calls, \
                      (CASE WHEN {} THEN l.calls ELSE 0 END)::bigint AS sims, \
                      (CASE WHEN l.status >= 400 THEN l.calls ELSE 0 END)::bigint AS errors, l.units \
               FROM api_call_logs l WHERE l.created_at >= $1 \
               UNION ALL \
               SELECT d.day, d.calls, (CASE WHEN {} THEN d.calls ELSE 0 END)::bigint, \
                      (CASE WHEN d.status >= 400 THEN d.calls ELSE 0 END)::bigint, d.units \
               FROM api_call_daily d WHERE d.day >= ($1 AT TIME ZONE 'UTC')::date) x \
         GROUP BY x.day ORDER BY x.day",
        simulation_call("l"),
        simulation_call("d")
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

/// Calls per key since `since`, most calls first (call log plus daily aggregates).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn per_key(tx: &mut TenantTx, since: DateTime<Utc>) -> Result<Vec<KeyCalls>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT x.api_key_id, k.prefix, sum(x.calls)::bigint AS calls, sum(x.sims)::bigint AS sims, \
                COALESCE(sum(x.units), 0)::bigint AS units, max(x.last) AS last \
         FROM (SELECT l.api_key_id, l.calls::bigint AS calls, \
                      (CASE WHEN {} THEN l.calls ELSE 0 END)::bigint AS sims, l.units, l.created_at AS last \
               FROM api_call_logs l WHERE l.created_at >= $1 \
               UNION ALL \
               SELECT d.api_key_id, d.calls, (CASE WHEN {} THEN d.calls ELSE 0 END)::bigint, d.units, \
                      d.last_call_at \
               FROM api_call_daily d WHERE d.day >= ($1 AT TIME ZONE 'UTC')::date) x \
         LEFT JOIN api_keys k ON k.id = x.api_key_id \
         GROUP BY x.api_key_id, k.prefix ORDER BY calls DESC, last DESC",
        simulation_call("l"),
        simulation_call("d")
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

/// Retention: moves the call-log rows of `tenant` older than `cutoff` into the daily aggregates
/// (`api_call_daily`, one row per UTC day and call group, added to an existing row) and deletes
/// them, in one statement (a writable CTE: a row is aggregated exactly when it is deleted).
/// Returns the aggregate rows written or updated.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn roll_up_before(
    db: &Db,
    tenant: &Tenant,
    cutoff: DateTime<Utc>,
) -> Result<u64, AppError> {
    let mut tx = begin_for(db, tenant).await?;
    let done = sqlx::query(
        "WITH moved AS (DELETE FROM api_call_logs WHERE created_at < $1 RETURNING *) \
         INSERT INTO api_call_daily AS d (day, api_key_id, user_id, method, endpoint, status, calls, \
                                          units, duration_ms_sum, last_call_at) \
         SELECT (created_at AT TIME ZONE 'UTC')::date, api_key_id, user_id, method, endpoint, status, \
                sum(calls), sum(units), sum(duration_ms * calls), max(created_at) \
         FROM moved GROUP BY 1, 2, 3, 4, 5, 6 \
         ON CONFLICT (day, api_key_id, user_id, method, endpoint, status) DO UPDATE SET \
           calls = d.calls + EXCLUDED.calls, units = d.units + EXCLUDED.units, \
           duration_ms_sum = d.duration_ms_sum + EXCLUDED.duration_ms_sum, \
           last_call_at = GREATEST(d.last_call_at, EXCLUDED.last_call_at)",
    )
    .bind(cutoff)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// [`daily`] and [`per_key`] of `tenant` since `since`, for a platform report (no caller).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn report_for(
    db: &Db,
    tenant: &Tenant,
    since: DateTime<Utc>,
) -> Result<(Vec<DailyCalls>, Vec<KeyCalls>), AppError> {
    let mut tx = begin_for(db, tenant).await?;
    let d = daily(&mut tx, since).await?;
    let k = per_key(&mut tx, since).await?;
    tx.commit().await?;
    Ok((d, k))
}

/// Calls of one key (or of bearer callers, `key` absent) on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDayCalls {
    /// UTC date.
    pub date: NaiveDate,
    /// Key.
    pub key: Option<ApiKeyId>,
    /// Its display prefix.
    pub prefix: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Calls.
    pub calls: i64,
    /// Successful simulations.
    pub simulations: i64,
    /// Calls answered ≥ 400.
    pub errors: i64,
}

/// Calls per UTC day and key since `since` (call log plus daily aggregates), oldest day first,
/// then most calls first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn daily_per_key(
    tx: &mut TenantTx,
    since: DateTime<Utc>,
) -> Result<Vec<KeyDayCalls>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT x.day, x.api_key_id, k.prefix, k.name, sum(x.calls)::bigint AS calls, \
                sum(x.sims)::bigint AS sims, sum(x.errors)::bigint AS errors \
         FROM (SELECT (l.created_at AT TIME ZONE 'UTC')::date AS day, l.api_key_id, \
                      l.calls::bigint AS calls, \
                      (CASE WHEN {} THEN l.calls ELSE 0 END)::bigint AS sims, \
                      (CASE WHEN l.status >= 400 THEN l.calls ELSE 0 END)::bigint AS errors \
               FROM api_call_logs l WHERE l.created_at >= $1 \
               UNION ALL \
               SELECT d.day, d.api_key_id, d.calls::bigint, \
                      (CASE WHEN {} THEN d.calls ELSE 0 END)::bigint, \
                      (CASE WHEN d.status >= 400 THEN d.calls ELSE 0 END)::bigint \
               FROM api_call_daily d WHERE d.day >= ($1 AT TIME ZONE 'UTC')::date) x \
         LEFT JOIN api_keys k ON k.id = x.api_key_id \
         GROUP BY x.day, x.api_key_id, k.prefix, k.name ORDER BY x.day, calls DESC",
        simulation_call("l"),
        simulation_call("d")
    )))
    .bind(since)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyDayCalls {
                date: r.try_get("day")?,
                key: r
                    .try_get::<Option<uuid::Uuid>, _>("api_key_id")?
                    .map(ApiKeyId::from_uuid),
                prefix: r.try_get("prefix")?,
                name: r.try_get("name")?,
                calls: r.try_get("calls")?,
                simulations: r.try_get("sims")?,
                errors: r.try_get("errors")?,
            })
        })
        .collect()
}
