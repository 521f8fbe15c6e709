//! Monthly counters in PostgreSQL (`platform.quota_counters`), used when Redis is not configured.
//!
//! Exact on any number of instances: the check and the increment are one
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING` statement. `DO UPDATE` locks the
//! conflicting row and evaluates its `WHERE` against the latest committed version, so two
//! concurrent requests can never both see `used = limit - 1`.

use async_trait::async_trait;
use sqlx::PgPool;
use uuid::Uuid;

use super::period::Period;
use super::store::{ConsumeOutcome, Counts, QuotaStore, StoreError};

/// [`QuotaStore`] over `platform.quota_counters`.
#[derive(Clone)]
pub struct PgQuotaStore {
    pool: PgPool,
}

impl PgQuotaStore {
    /// A store using `pool` (which must reach the `platform` schema).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

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

const USAGE_SQL: &str =
    "SELECT used, overage FROM platform.quota_counters WHERE tenant_id = $1 AND period = $2";

fn counts((used, overage): (i64, i64)) -> Counts {
    Counts::from_signed(used, overage)
}

#[async_trait]
impl QuotaStore for PgQuotaStore {
    async fn consume(
        &self,
        tenant_id: Uuid,
        period: &Period,
        limit: Option<u64>,
        overage_allowed: bool,
    ) -> Result<ConsumeOutcome, StoreError> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let row: Option<(i64, i64)> = sqlx::query_as(CONSUME_SQL)
            .bind(tenant_id)
            .bind(period.key())
            .bind(limit)
            .bind(overage_allowed)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => {
                let c = counts(r);
                // Admitted as overage iff this increment took `used` past the limit.
                let overage = limit.is_some_and(|l| c.used as i64 > l);
                Ok(ConsumeOutcome {
                    admitted: true,
                    overage,
                    counts: c,
                })
            }
            None => Ok(ConsumeOutcome {
                admitted: false,
                overage: false,
                counts: self.usage(tenant_id, period).await?,
            }),
        }
    }

    async fn usage(&self, tenant_id: Uuid, period: &Period) -> Result<Counts, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(USAGE_SQL)
            .bind(tenant_id)
            .bind(period.key())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(counts).unwrap_or_default())
    }
}
