//! The monthly-quota store abstraction and the in-process store.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::TenantId;
use async_trait::async_trait;

use super::period::Period;

/// Counters of one tenant in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Simulations admitted in the period, overage included.
    pub used: u64,
    /// Of `used`, how many were admitted beyond the quota as metered overage.
    pub overage: u64,
}

impl Counts {
    /// From a store's signed counters (PostgreSQL `bigint`, Redis integers); negatives read as 0.
    pub(crate) fn from_signed(used: i64, overage: i64) -> Self {
        Self {
            used: used.max(0) as u64,
            overage: overage.max(0) as u64,
        }
    }
}

/// Result of one atomic check-and-increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeOutcome {
    /// Whether the simulation was admitted (and counted).
    pub admitted: bool,
    /// Whether it was admitted as overage.
    pub overage: bool,
    /// The counters after the operation (unchanged when refused).
    pub counts: Counts,
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// PostgreSQL failed.
    #[error("quota counter database error")]
    Database(#[from] sqlx::Error),
    /// Redis failed or timed out.
    #[error("redis error: {0}")]
    Redis(String),
}

/// Where monthly simulation counters live. Implementations make [`QuotaStore::consume`] one
/// atomic check-and-increment, so concurrent callers (on any number of instances sharing the
/// store) never admit more than `limit` without overage.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Admits one simulation if `used < limit` (or `limit` is `None` = unlimited), or else as
    /// overage if `overage_allowed`; counts it. Refusals change nothing.
    ///
    /// # Errors
    /// [`StoreError`] when the backing store cannot be reached.
    async fn consume(
        &self,
        tenant_id: TenantId,
        period: &Period,
        limit: Option<u64>,
        overage_allowed: bool,
    ) -> Result<ConsumeOutcome, StoreError>;

    /// The counters of `tenant_id` in `period` (zero when none were written).
    ///
    /// # Errors
    /// [`StoreError`] when the backing store cannot be reached.
    async fn usage(&self, tenant_id: TenantId, period: &Period) -> Result<Counts, StoreError>;

    /// Takes back one simulation admitted by [`QuotaStore::consume`] in `period` (as overage
    /// when `overage`) that did not run: atomic, and never below zero.
    ///
    /// # Errors
    /// [`StoreError`] when the backing store cannot be reached.
    async fn refund(
        &self,
        tenant_id: TenantId,
        period: &Period,
        overage: bool,
    ) -> Result<(), StoreError>;
}

/// Decides one consume against in-memory counters; shared by the in-process store.
pub(crate) fn decide(
    counts: &mut Counts,
    limit: Option<u64>,
    overage_allowed: bool,
) -> ConsumeOutcome {
    let within = limit.is_none_or(|l| counts.used < l);
    if within || overage_allowed {
        counts.used += 1;
        if !within {
            counts.overage += 1;
        }
        ConsumeOutcome {
            admitted: true,
            overage: !within,
            counts: *counts,
        }
    } else {
        ConsumeOutcome {
            admitted: false,
            overage: false,
            counts: *counts,
        }
    }
}

/// Per-instance counters; exact only within one process. Used as the fallback while Redis is
/// unreachable (see `redis_store`).
#[derive(Default)]
pub struct LocalQuotaStore {
    pub(crate) entries: Mutex<HashMap<(TenantId, String), LocalEntry>>,
}

/// One tenant-period in the local store.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalEntry {
    /// Best known totals: the last values Redis returned plus what was admitted locally since.
    pub(crate) counts: Counts,
    /// Admitted locally and not yet written back to Redis.
    pub(crate) pending: Counts,
    /// Refunded locally of simulations counted in Redis, not yet taken back there.
    pub(crate) refunds: Counts,
    /// Unix seconds when the key should expire in Redis.
    pub(crate) expire_at: i64,
}

#[async_trait]
impl QuotaStore for LocalQuotaStore {
    async fn consume(
        &self,
        tenant_id: TenantId,
        period: &Period,
        limit: Option<u64>,
        overage_allowed: bool,
    ) -> Result<ConsumeOutcome, StoreError> {
        Ok(self.consume_local(tenant_id, period, limit, overage_allowed, 0))
    }

    async fn usage(&self, tenant_id: TenantId, period: &Period) -> Result<Counts, StoreError> {
        Ok(self.counts(tenant_id, period))
    }

    async fn refund(
        &self,
        tenant_id: TenantId,
        period: &Period,
        overage: bool,
    ) -> Result<(), StoreError> {
        self.refund_local(tenant_id, period, overage);
        Ok(())
    }
}

impl LocalQuotaStore {
    pub(crate) fn consume_local(
        &self,
        tenant_id: TenantId,
        period: &Period,
        limit: Option<u64>,
        overage_allowed: bool,
        expire_at: i64,
    ) -> ConsumeOutcome {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry((tenant_id, period.key().to_owned())).or_default();
        entry.expire_at = expire_at;
        let out = decide(&mut entry.counts, limit, overage_allowed);
        if out.admitted {
            entry.pending.used += 1;
            if out.overage {
                entry.pending.overage += 1;
            }
        }
        out
    }

    /// Takes one simulation back from the local view: from what is pending when something
    /// is (a local admission is simply not written back), else recorded as a refund for Redis.
    pub(crate) fn refund_local(&self, tenant_id: TenantId, period: &Period, overage: bool) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry((tenant_id, period.key().to_owned())).or_default();
        entry.counts.used = entry.counts.used.saturating_sub(1);
        if overage {
            entry.counts.overage = entry.counts.overage.saturating_sub(1);
        }
        if entry.pending.used > 0 {
            entry.pending.used -= 1;
            if overage {
                entry.pending.overage = entry.pending.overage.saturating_sub(1);
            }
        } else {
            entry.refunds.used += 1;
            if overage {
                entry.refunds.overage += 1;
            }
        }
    }

    pub(crate) fn counts(&self, tenant_id: TenantId, period: &Period) -> Counts {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(tenant_id, period.key().to_owned()))
            .map(|e| e.counts)
            .unwrap_or_default()
    }

    /// Records the authoritative totals Redis just returned (plus anything still pending),
    /// so a later fallback starts from them instead of from zero.
    pub(crate) fn observe(
        &self,
        tenant_id: TenantId,
        period: &Period,
        counts: Counts,
        expire_at: i64,
    ) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry((tenant_id, period.key().to_owned())).or_default();
        entry.counts = Counts {
            used: counts.used + entry.pending.used,
            overage: counts.overage + entry.pending.overage,
        };
        entry.expire_at = expire_at;
    }

    /// Drops entries of periods other than `current` that have nothing pending.
    pub(crate) fn prune(&self, current: &Period) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(_, p), e| {
            p == current.key() || e.pending != Counts::default() || e.refunds != Counts::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_hard_stop_and_overage() {
        let mut c = Counts::default();
        assert!(decide(&mut c, Some(1), false).admitted);
        assert!(!decide(&mut c, Some(1), false).admitted);
        let o = decide(&mut c, Some(1), true);
        assert!(o.admitted && o.overage);
        assert_eq!(
            c,
            Counts {
                used: 2,
                overage: 1
            }
        );
        let z = decide(&mut Counts::default(), Some(0), false);
        assert!(!z.admitted);
        assert!(decide(&mut c, None, false).admitted);
    }
}
