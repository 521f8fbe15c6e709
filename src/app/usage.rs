//! Usage: one row per authenticated call, and the report of calls per day and per key with the
//! current quota period.

use crate::clock::SharedClock;
use crate::db::usage::{self, CallRecord, DailyCalls, KeyCalls};
use crate::db::{Db, TenantContext};
use crate::domain::Principal;
use crate::error::AppError;
use crate::quota::{PeriodUsage, Quotas};
use std::sync::Arc;

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
}

impl UsageService {
    /// The service.
    pub fn new(db: Db, quotas: Arc<Quotas>, clock: SharedClock) -> Self {
        Self { db, quotas, clock }
    }

    /// Records one authenticated call.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn record_call(&self, ctx: &TenantContext, call: &Call<'_>) -> Result<(), AppError> {
        let (api_key, user) = match ctx.principal() {
            Principal::ApiKey(k) => (Some(k), None),
            Principal::User { id, .. } => (None, Some(id)),
        };
        let mut tx = ctx.begin(&self.db).await?;
        usage::insert_call(
            &mut tx,
            &CallRecord {
                at: self.clock.now(),
                api_key,
                user,
                method: call.method,
                endpoint: call.endpoint,
                status: call.status,
                duration_ms: call.duration_ms,
                units: call.units,
            },
        )
        .await?;
        tx.commit().await
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
