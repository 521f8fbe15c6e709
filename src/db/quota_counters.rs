//! `platform.quota_counters`: monthly simulation counters, the quota store used when Redis is
//! not configured.
//!
//! Exact on any number of instances: the check and the increment are one
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING` statement. `DO UPDATE` locks the
//! conflicting row and evaluates its `WHERE` against the latest committed version, so two
//! concurrent requests can never both see `used = limit - 1`.

use super::pool::Db;
use crate::domain::TenantId;

// $3 = limit (NULL = unlimited), $4 = overage allowed. The INSERT branch (first simulation of the
// period) is only taken when a first simulation may be admitted at all (limit > 0 or overage).
const CONSUME_SQL: &str = "\
INSERT INTO platform.quota_counters AS c (tenant_id, period, used, overage)
SELECT $1, $2, 1, CASE WHEN $3::bigint = 0 THEN 1 ELSE 0 END
WHERE $3::bigint IS NULL OR $3::bigint > 0 OR $4::boolean
ON CONFLICT (tenant_id, period) DO UPDATE
   SET used = c.used + 1,
       overage = c.overage
               + CASE WHEN $3::bigint IS NOT NULL AND c.used >= $3::bigint THEN 1 ELSE 0 END
 WHERE $3::bigint IS NULL OR c.used < $3::bigint OR $4::boolean
RETURNING used, overage";

/// Counts one simulation if `used < limit` (or no limit), or else as overage when allowed.
/// Returns the counters `(used, overage)` after the increment, `None` when refused.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn consume(
    db: &Db,
    tenant: TenantId,
    period: &str,
    limit: Option<i64>,
    overage_allowed: bool,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(CONSUME_SQL)
        .bind(tenant.as_uuid())
        .bind(period)
        .bind(limit)
        .bind(overage_allowed)
        .fetch_optional(&db.pool)
        .await
}

/// Takes back one simulation (and one overage when `overage`), never below zero.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn refund(
    db: &Db,
    tenant: TenantId,
    period: &str,
    overage: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platform.quota_counters SET used = GREATEST(used - 1, 0), \
         overage = GREATEST(overage - CASE WHEN $3 THEN 1 ELSE 0 END, 0) \
         WHERE tenant_id = $1 AND period = $2",
    )
    .bind(tenant.as_uuid())
    .bind(period)
    .bind(overage)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The counters `(used, overage)` of a tenant in a period, if any were written.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn usage(
    db: &Db,
    tenant: TenantId,
    period: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT used, overage FROM platform.quota_counters WHERE tenant_id = $1 AND period = $2",
    )
    .bind(tenant.as_uuid())
    .bind(period)
    .fetch_optional(&db.pool)
    .await
}

/// Raises the stored counters of a tenant in a period to at least `(used, overage)` (copies of
/// the Redis counters; never lowers them).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn persist(
    db: &Db,
    tenant: TenantId,
    period: &str,
    used: i64,
    overage: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO platform.quota_counters AS c (tenant_id, period, used, overage) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, period) DO UPDATE \
            SET used = GREATEST(c.used, EXCLUDED.used), \
                overage = GREATEST(c.overage, EXCLUDED.overage)",
    )
    .bind(tenant.as_uuid())
    .bind(period)
    .bind(used)
    .bind(overage)
    .execute(&db.pool)
    .await?;
    Ok(())
}
