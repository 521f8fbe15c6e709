//! `GET /api/v1/usage`: calls per day and per key (from the tenant's `api_call_logs`) and the
//! current quota period.

use crate::api::ApiTags;
use crate::auth::Caller;
use crate::domain::ApiKeyId;
use crate::error::ApiError;
use crate::problem_responses;
use crate::state::AppState;
use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use sqlx::Row;
use std::sync::Arc;

/// Usage operations.
pub struct UsageApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Calls on one UTC day.
#[derive(Object, Debug)]
pub struct DailyUsage {
    /// UTC date.
    pub date: NaiveDate,
    /// Authenticated calls.
    pub calls: i64,
    /// Successful simulations.
    pub simulations: i64,
    /// Calls answered with an error status (≥ 400).
    pub errors: i64,
    /// Work units: Σ paths × steps of simulations.
    pub units: i64,
}

/// Calls made with one API key (or by signed-in users, `key_id` absent).
#[derive(Object, Debug)]
pub struct KeyUsage {
    /// Key id (`key_…`); absent for calls made with a bearer token.
    pub key_id: Option<String>,
    /// Key display prefix.
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

/// The current monthly quota period.
#[derive(Object, Debug)]
pub struct PeriodView {
    /// `YYYY-MM` (UTC calendar month).
    pub period: String,
    /// Tier.
    pub tier: String,
    /// Simulations allowed per month; absent = unlimited.
    pub quota: Option<u64>,
    /// Simulations admitted this period (including overage).
    pub used: u64,
    /// Simulations left within the quota; absent = unlimited.
    pub remaining: Option<u64>,
    /// Simulations admitted beyond the quota, billed as overage.
    pub overage: u64,
    /// When the period resets.
    pub resets_at: DateTime<Utc>,
}

/// Usage report.
#[derive(Object, Debug)]
#[oai(example)]
pub struct UsageReport {
    /// Current quota period.
    pub period: PeriodView,
    /// Days covered by `daily` and `per_key`.
    pub days: u32,
    /// Per UTC day, oldest first (days without calls omitted).
    pub daily: Vec<DailyUsage>,
    /// Per key, most calls first.
    pub per_key: Vec<KeyUsage>,
}

problem_responses!(UsageError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });

fn default_days() -> u32 {
    30
}

#[OpenApi(tag = "ApiTags::Usage")]
impl UsageApi {
    /// Usage report
    ///
    /// Calls per day and per API key over the last `days` (1–366, default 30), and the current
    /// monthly quota period (quota, used, remaining, overage, reset time).
    #[oai(path = "/api/v1/usage", method = "get", operation_id = "usage")]
    async fn usage(
        &self,
        caller: Caller,
        /// Look-back window in days, 1–366.
        #[oai(default = "default_days")]
        days: Query<u32>,
    ) -> Result<Json<UsageReport>, UsageError> {
        let ctx = caller.0;
        if !(1..=366).contains(&days.0) {
            return Err(ApiError::validation(
                "days",
                format!("days must be 1 to 366, got {}", days.0),
            )
            .into());
        }
        let since = self.state.clock.now() - chrono::Duration::days(i64::from(days.0));
        let mut tx = ctx.begin(&self.state.pool).await?;
        let daily = sqlx::query(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS calls, \
                    count(*) FILTER (WHERE endpoint = '/api/v1/simulations' AND method = 'POST' AND status = 201) AS sims, \
                    count(*) FILTER (WHERE status >= 400) AS errors, COALESCE(sum(units), 0)::bigint AS units \
             FROM api_call_logs WHERE created_at >= $1 GROUP BY day ORDER BY day",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let per_key = sqlx::query(
            "SELECT l.api_key_id, k.prefix, count(*) AS calls, \
                    count(*) FILTER (WHERE l.endpoint = '/api/v1/simulations' AND l.method = 'POST' AND l.status = 201) AS sims, \
                    COALESCE(sum(l.units), 0)::bigint AS units, max(l.created_at) AS last \
             FROM api_call_logs l LEFT JOIN api_keys k ON k.id = l.api_key_id \
             WHERE l.created_at >= $1 GROUP BY l.api_key_id, k.prefix ORDER BY calls DESC, last DESC",
        )
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let period = self
            .state
            .quotas
            .period_usage(ctx.tenant.id.as_uuid(), &ctx.tenant.tier)
            .await;
        Ok(Json(UsageReport {
            period: PeriodView {
                period: period.period,
                tier: ctx.tenant.tier.name.clone(),
                quota: period.quota,
                used: period.used,
                remaining: period.remaining,
                overage: period.overage,
                resets_at: period.resets_at,
            },
            days: days.0,
            daily: daily
                .iter()
                .map(|r| {
                    Ok(DailyUsage {
                        date: r.try_get("day")?,
                        calls: r.try_get("calls")?,
                        simulations: r.try_get("sims")?,
                        errors: r.try_get("errors")?,
                        units: r.try_get("units")?,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
            per_key: per_key
                .iter()
                .map(|r| {
                    Ok(KeyUsage {
                        key_id: r
                            .try_get::<Option<uuid::Uuid>, _>("api_key_id")?
                            .map(|k| ApiKeyId::from_uuid(k).to_string()),
                        prefix: r.try_get("prefix")?,
                        calls: r.try_get("calls")?,
                        simulations: r.try_get("sims")?,
                        units: r.try_get("units")?,
                        last_call_at: r.try_get("last")?,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        }))
    }
}
