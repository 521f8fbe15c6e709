//! Monthly counters in PostgreSQL (`platform.quota_counters`, see `db::quota_counters`), used
//! when Redis is not configured. Exact on any number of instances.

use async_trait::async_trait;

use super::period::Period;
use super::store::{ConsumeOutcome, Counts, QuotaStore, StoreError};
use crate::db::{Db, quota_counters};
use crate::domain::TenantId;

/// [`QuotaStore`] over `platform.quota_counters`.
#[derive(Clone)]
pub struct PgQuotaStore {
    db: Db,
}

impl PgQuotaStore {
    /// A store using `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn counts((used, overage): (i64, i64)) -> Counts {
    Counts::from_signed(used, overage)
}

#[async_trait]
impl QuotaStore for PgQuotaStore {
    async fn consume(
        &self,
        tenant_id: TenantId,
        period: &Period,
        limit: Option<u64>,
        overage_allowed: bool,
    ) -> Result<ConsumeOutcome, StoreError> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let row =
            quota_counters::consume(&self.db, tenant_id, period.key(), limit, overage_allowed)
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

    async fn refund(
        &self,
        tenant_id: TenantId,
        period: &Period,
        overage: bool,
    ) -> Result<(), StoreError> {
        quota_counters::refund(&self.db, tenant_id, period.key(), overage).await?;
        Ok(())
    }

    async fn usage(&self, tenant_id: TenantId, period: &Period) -> Result<Counts, StoreError> {
        let row = quota_counters::usage(&self.db, tenant_id, period.key()).await?;
        Ok(row.map(counts).unwrap_or_default())
    }
}
