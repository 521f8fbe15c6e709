//! Usage: the log of authenticated calls, and the report of calls per day and per key with the
//! current quota period.
//!
//! Calls are not written one row each: that would put a tenant transaction (and, over thousands
//! of schemas, a re-planned statement) on every request, and let a flood of refusals turn into
//! a flood of writes. They are counted in memory per (tenant, caller, method, endpoint, status)
//! and written as one row per group — its count, summed work units, mean duration, last call —
//! every [`CALL_FLUSH_INTERVAL`], before every usage report this instance serves, and at a clean
//! shutdown; counts a write could not store (PostgreSQL down) stay pending for the next flush.
//! A crash loses at most that interval's call counts; the monthly quota and billing
//! are counted apart (the quota store), so they lose nothing.

use crate::clock::SharedClock;
use crate::db::usage::{self, CallRecord, DailyCalls, KeyCalls};
use crate::db::{Db, TenantContext};
use crate::domain::{Principal, Tenant, TenantId};
use crate::error::AppError;
use crate::quota::{PeriodUsage, Quotas};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the calls counted in memory are written.
pub const CALL_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallKey {
    tenant: TenantId,
    principal: Principal,
    method: String,
    endpoint: String,
    status: u16,
}

#[derive(Debug, Clone)]
struct Counted {
    ctx: TenantContext,
    calls: i32,
    duration_ms: f64,
    units: i64,
    last_at: DateTime<Utc>,
}

/// Longest look-back of a usage report, days.
pub const MAX_DAYS: u32 = 366;

/// A usage report.
#[derive(Debug, Clone)]
pub struct UsageReport {
    /// The current quota period.
    pub period: PeriodUsage,
    /// Look-back in days.
    pub days: u32,
    /// Per UTC day, oldest first.
    pub daily: Vec<DailyCalls>,
    /// Per key, most calls first.
    pub per_key: Vec<KeyCalls>,
}

/// One finished call, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path pattern.
    pub endpoint: &'a str,
    /// Response status.
    pub status: u16,
    /// Duration, milliseconds.
    pub duration_ms: f64,
    /// Work units.
    pub units: i64,
}

/// Usage records and reports.
pub struct UsageService {
    db: Db,
    quotas: Arc<Quotas>,
    clock: SharedClock,
    pending: Mutex<HashMap<CallKey, Counted>>,
}

fn record<'a>(
    principal: Principal,
    at: DateTime<Utc>,
    call: &Call<'a>,
    calls: i32,
) -> CallRecord<'a> {
    let (api_key, user) = match principal {
        Principal::ApiKey(k) => (Some(k), None),
        Principal::User { id, .. } => (None, Some(id)),
    };
    CallRecord {
        at,
        api_key,
        user,
        method: call.method,
        endpoint: call.endpoint,
        status: call.status,
        duration_ms: call.duration_ms,
        units: call.units,
        calls,
    }
}

impl UsageService {
    /// The service.
    pub fn new(db: Db, quotas: Arc<Quotas>, clock: SharedClock) -> Self {
        Self {
            db,
            quotas,
            clock,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one authenticated call; written with its group at the next flush.
    ///
    /// # Errors
    /// None today (the signature keeps room for a store that can fail).
    pub async fn record_call(&self, ctx: &TenantContext, call: &Call<'_>) -> Result<(), AppError> {
        let now = self.clock.now();
        let key = CallKey {
            tenant: ctx.tenant().id,
            principal: ctx.principal(),
            method: call.method.to_string(),
            endpoint: call.endpoint.to_string(),
            status: call.status,
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(key).or_insert_with(|| Counted {
            ctx: ctx.clone(),
            calls: 0,
            duration_ms: 0.0,
            units: 0,
            last_at: now,
        });
        entry.calls = entry.calls.saturating_add(1);
        entry.duration_ms += call.duration_ms;
        entry.units = entry.units.saturating_add(call.units);
        entry.last_at = now;
        Ok(())
    }

    /// Writes the calls counted since the last flush: one row per group, one transaction per
    /// tenant. Returns the rows written. The groups of a tenant whose transaction failed (and of
    /// the tenants after it) are put back and written by the next flush, so an outage of
    /// PostgreSQL delays call counts instead of losing them; a commit whose answer was lost
    /// could count its calls twice.
    ///
    /// # Errors
    /// When PostgreSQL fails (the counts not written stay pending).
    pub async fn flush_calls(&self) -> Result<usize, AppError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut by_tenant: HashMap<TenantId, Vec<(CallKey, Counted)>> = HashMap::new();
        for (k, v) in taken {
            by_tenant.entry(k.tenant).or_default().push((k, v));
        }
        let mut written = 0;
        let mut failure = None;
        let mut unwritten = Vec::new();
        for groups in by_tenant.into_values() {
            if failure.is_some() {
                unwritten.extend(groups);
                continue;
            }
            match self.write_groups(&groups).await {
                Ok(n) => written += n,
                Err(err) => {
                    failure = Some(err);
                    unwritten.extend(groups);
                }
            }
        }
        if !unwritten.is_empty() {
            self.put_back(unwritten);
        }
        failure.map_or(Ok(written), Err)
    }

    /// One tenant's groups in one transaction.
    async fn write_groups(&self, groups: &[(CallKey, Counted)]) -> Result<usize, AppError> {
        let mut tx = groups[0].1.ctx.begin(&self.db).await?;
        for (k, v) in groups {
            let call = Call {
                method: &k.method,
                endpoint: &k.endpoint,
                status: k.status,
                duration_ms: v.duration_ms / f64::from(v.calls.max(1)),
                units: v.units,
            };
            let row = record(k.principal, v.last_at, &call, v.calls);
            usage::insert_call(&mut tx, &row).await?;
        }
        tx.commit().await?;
        Ok(groups.len())
    }

    /// Merges groups that could not be written into the pending counts.
    fn put_back(&self, groups: Vec<(CallKey, Counted)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in groups {
            match pending.entry(k) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let c = e.get_mut();
                    c.calls = c.calls.saturating_add(v.calls);
                    c.duration_ms += v.duration_ms;
                    c.units = c.units.saturating_add(v.units);
                    c.last_at = c.last_at.max(v.last_at);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
            }
        }
    }

    /// Retention: the call-log rows older than `keep` (counted from the start of that UTC day)
    /// of every tenant in `tenants` are rolled up into daily aggregates and deleted; usage
    /// reports read both, so their totals do not change. Returns the aggregate rows written.
    /// A tenant that fails is logged and retried at the next run.
    ///
    /// # Errors
    /// When the pending call counts cannot be written first.
    pub async fn apply_retention(
        &self,
        tenants: &[Arc<Tenant>],
        keep: chrono::Duration,
    ) -> Result<u64, AppError> {
        self.flush_calls().await?;
        let cutoff = (self.clock.now() - keep)
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or_else(|| self.clock.now() - keep, |t| t.and_utc());
        let mut rolled = 0;
        for tenant in tenants {
            match usage::roll_up_before(&self.db, tenant, cutoff).await {
                Ok(n) => rolled += n,
                Err(err) => {
                    tracing::warn!(tenant = %tenant.slug, error = ?err, "call-log retention failed");
                }
            }
        }
        Ok(rolled)
    }

    /// A platform report of `tenant` (CLI `usage report`): calls over the last `days` and the
    /// current quota period.
    ///
    /// # Errors
    /// 422 for `days` outside 1–366; when PostgreSQL fails.
    pub async fn report_for_tenant(
        &self,
        tenant: &Tenant,
        days: u32,
    ) -> Result<UsageReport, AppError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(AppError::validation(
                "days",
                format!("days must be 1 to {MAX_DAYS}, got {days}"),
            ));
        }
        self.flush_calls().await?;
        let since = self.clock.now() - chrono::Duration::days(i64::from(days));
        let (daily, per_key) = usage::report_for(&self.db, tenant, since).await?;
        let period = self.quotas.period_usage(tenant.id, &tenant.tier).await;
        Ok(UsageReport {
            period,
            days,
            daily,
            per_key,
        })
    }

    /// Calls over the last `days` (1–366) and the current quota period.
    ///
    /// # Errors
    /// 422 for `days` outside 1–366.
    pub async fn report(&self, ctx: &TenantContext, days: u32) -> Result<UsageReport, AppError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(AppError::validation(
                "days",
                format!("days must be 1 to {MAX_DAYS}, got {days}"),
            ));
        }
        // This instance's latest calls first, so a caller sees its own calls at once.
        self.flush_calls().await?;
        let since = self.clock.now() - chrono::Duration::days(i64::from(days));
        let mut tx = ctx.begin(&self.db).await?;
        let daily = usage::daily(&mut tx, since).await?;
        let per_key = usage::per_key(&mut tx, since).await?;
        tx.commit().await?;
        let tenant = ctx.tenant();
        let period = self.quotas.period_usage(tenant.id, &tenant.tier).await;
        Ok(UsageReport {
            period,
            days,
            daily,
            per_key,
        })
    }
}

/// Calls per UTC day and API key, for the usage page's chart.
impl UsageService {
    /// Calls per UTC day and key since `since` (at most [`MAX_DAYS`] back), oldest day first;
    /// this instance's pending calls are written first. Any signed-in user of the tenant.
    ///
    /// # Errors
    /// 422 when `since` is more than [`MAX_DAYS`] days back; when PostgreSQL fails.
    pub async fn daily_per_key(
        &self,
        ctx: &TenantContext,
        since: DateTime<Utc>,
    ) -> Result<Vec<usage::KeyDayCalls>, AppError> {
        if self.clock.now() - since > chrono::Duration::days(i64::from(MAX_DAYS)) {
            return Err(AppError::validation(
                "since",
                format!("since must be within {MAX_DAYS} days"),
            ));
        }
        self.flush_calls().await?;
        let mut tx = ctx.begin(&self.db).await?;
        let rows = usage::daily_per_key(&mut tx, since).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::domain::{ApiKeyId, Tenant, TenantSlug, TenantStatus, TierCatalog};
    use crate::quota::QuotaConfig;

    #[tokio::test]
    async fn counts_a_failed_flush_could_not_write_stay_pending() {
        // Nothing listens on port 1: every write fails at once.
        let db = Db::connect_lazy("postgres://postgres@127.0.0.1:1/none", 1, 1).unwrap();
        let tiers = Arc::new(TierCatalog::default());
        let clock: SharedClock = Arc::new(SystemClock);
        let quotas = Quotas::new(
            QuotaConfig::default(),
            db.clone(),
            clock.clone(),
            tiers.clone(),
        )
        .await;
        let usage = UsageService::new(db, Arc::new(quotas), clock);
        let slug = TenantSlug::parse("acme").unwrap();
        let tenant = Tenant {
            id: TenantId::new(),
            schema: slug.schema_name(),
            slug,
            display_name: "Acme".into(),
            tier: Arc::new(crate::domain::Tier {
                name: "trial".into(),
                display_name: "Trial".into(),
                price_cents_per_month: 0,
                monthly_simulations: Some(100),
                max_paths: 1000,
                max_work: 1000,
                burst_per_second: 1,
                burst_size: 1,
                max_concurrent_simulations: 1,
                max_api_keys: None,
                overage_cents_per_simulation: None,
                trial_days: None,
            }),
            status: TenantStatus::Active,
            trial_ends_at: None,
            overage_enabled: false,
            created_at: Utc::now(),
            billing_grace_until: None,
            billing_suspended: false,
            deleted_at: None,
            purge_after: None,
        };
        let ctx =
            TenantContext::authenticated(Arc::new(tenant), Principal::ApiKey(ApiKeyId::new()));
        let call = Call {
            method: "POST",
            endpoint: "/api/v1/simulations",
            status: 201,
            duration_ms: 2.0,
            units: 1000,
        };
        usage.record_call(&ctx, &call).await.unwrap();
        usage.record_call(&ctx, &call).await.unwrap();
        assert!(usage.flush_calls().await.is_err());
        // One more call while the database is away joins the group put back.
        usage.record_call(&ctx, &call).await.unwrap();
        let pending = usage.pending.lock().unwrap();
        assert_eq!(pending.len(), 1);
        let counted = pending.values().next().unwrap();
        assert_eq!((counted.calls, counted.units), (3, 3000));
        assert!((counted.duration_ms - 6.0).abs() < 1e-9);
    }
}
