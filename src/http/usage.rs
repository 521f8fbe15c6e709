//! `GET /api/v1/usage`: calls per day and per key, and the current quota period.

use super::payload::Json;
use super::security::Caller;
use super::tags::ApiTags;
use crate::app::App;
use crate::domain::ApiKeyId;
use crate::{ok_response, problem_responses};
use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::param::Query;
use poem_openapi::{Object, OpenApi};
use std::sync::Arc;

/// Usage operations.
pub struct UsageApi {
    /// The application.
    pub app: Arc<App>,
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
#[oai(skip_serializing_if_is_none)]
pub struct KeyUsage {
    /// Key id (`key_…`); absent for calls made with a bearer token.
    pub key_id: Option<ApiKeyId>,
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
#[oai(skip_serializing_if_is_none)]
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

ok_response!(
    UsageOk,
    UsageReport,
    "Calls per day and per key, and the current quota period."
);

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
        #[oai(
            default = "default_days",
            validator(minimum(value = "1"), maximum(value = "366"))
        )]
        days: Query<u32>,
    ) -> Result<UsageOk, UsageError> {
        let ctx = caller.0;
        let r = self.app.usage.report(&ctx, days.0).await?;
        Ok(UsageOk::Ok(Json(UsageReport {
            period: PeriodView {
                period: r.period.period,
                tier: ctx.tenant().tier.name.clone(),
                quota: r.period.quota,
                used: r.period.used,
                remaining: r.period.remaining,
                overage: r.period.overage,
                resets_at: r.period.resets_at,
            },
            days: r.days,
            daily: r
                .daily
                .into_iter()
                .map(|d| DailyUsage {
                    date: d.date,
                    calls: d.calls,
                    simulations: d.simulations,
                    errors: d.errors,
                    units: d.units,
                })
                .collect(),
            per_key: r
                .per_key
                .into_iter()
                .map(|k| KeyUsage {
                    key_id: k.key,
                    prefix: k.prefix,
                    calls: k.calls,
                    simulations: k.simulations,
                    units: k.units,
                    last_call_at: k.last_call_at,
                })
                .collect(),
        })))
    }
}
