//! Quotas and rate limits of the simulation API.
//!
//! | policy | what | scope | mechanism |
//! |---|---|---|---|
//! | `burst` | requests per API key (or JWT user) | per instance | governor keyed GCRA, one limiter per `(rate, burst)` ([`Quotas::check_burst`]) |
//! | `monthly` | simulations per tenant per calendar month (UTC) | all instances | one atomic Redis Lua script, or one PostgreSQL upsert without Redis ([`QuotaStore`]) |
//! | `concurrency` | simulations running at once per tenant | per instance | tokio semaphore; waits up to [`QuotaConfig::concurrency_wait`] |
//! | `login` | login/signup attempts per IP and per account; lockout | per instance | governor GCRA + exponential lockout ([`LoginThrottle`]) |
//!
//! The tier is passed to every call (the caller's tenant cache supplies it), so a tier change
//! applies to the next request. Periods come from the injected [`SharedClock`].
//!
//! Responses carry the headers of the IETF draft `draft-ietf-httpapi-ratelimit-headers-10`
//! (`RateLimit-Policy`, `RateLimit`) plus legacy `X-RateLimit-*`; see [`rate_limit_headers`].
//!
//! Redis outages never fail a request: see [`RedisQuotaStore`] for the fallback
//! (per-instance counters seeded from the last Redis totals, written back on recovery).

mod burst;
mod concurrency;
mod headers;
mod login;
mod period;
mod pg_store;
mod redis_store;
mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

pub use concurrency::SimulationSlot;
pub use headers::{
    POLICY_BURST, POLICY_CONCURRENCY, POLICY_LOGIN, POLICY_MONTHLY, RateLimitInfo, Rejection,
    rate_limit_headers,
};
pub use login::{LoginPolicy, LoginThrottle};
pub use period::Period;
pub use pg_store::PgQuotaStore;
pub use redis_store::{KEY_GRACE_SECS, RedisHealth, RedisQuotaStore, RedisTimeouts};
pub use store::{ConsumeOutcome, Counts, LocalQuotaStore, QuotaStore, StoreError};

use crate::clock::SharedClock;
use crate::db::Db;
use crate::domain::{Principal, TenantId, Tier, TierCatalog};

/// Configuration of [`Quotas`].
#[derive(Debug, Clone)]
pub struct QuotaConfig {
    /// `REDIS_URL`; `None` keeps the monthly counters in PostgreSQL.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, e.g. `"mc:"` (tests use a unique one each).
    pub key_prefix: String,
    /// How long a simulation over the tenant's concurrency cap waits for a slot before 429
    /// (`Duration::ZERO`: refuse at once).
    pub concurrency_wait: Duration,
}

impl Default for QuotaConfig {
    /// No Redis, prefix `mc:`, 2 s concurrency wait.
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: "mc:".to_owned(),
            concurrency_wait: Duration::from_secs(2),
        }
    }
}

/// Less common tunables of [`Quotas`] (see [`Quotas::with_options`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct QuotaOptions {
    /// Redis timeouts and probe interval.
    pub redis_timeouts: RedisTimeouts,
    /// Login/signup throttle and lockout.
    pub login: LoginPolicy,
}

/// A simulation admitted by the monthly quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaGrant {
    /// The tenant charged.
    pub tenant: TenantId,
    /// The period it was counted in.
    pub period: Period,
    /// Admitted beyond the quota as metered overage (billed later).
    pub overage: bool,
    /// The monthly policy's state for the headers; `None` for unlimited tiers (nothing to
    /// advertise).
    pub info: Option<RateLimitInfo>,
    /// Counters after this simulation.
    pub counts: Counts,
}

impl QuotaGrant {
    /// Headers of the monthly policy alone (none for unlimited tiers).
    pub fn headers(&self) -> Vec<(String, String)> {
        self.info
            .as_ref()
            .map(RateLimitInfo::headers)
            .unwrap_or_default()
    }

    /// Headers for `POST /simulations`: the burst policy and, unless unlimited, the monthly one.
    pub fn headers_with(&self, burst: &RateLimitInfo) -> Vec<(String, String)> {
        match &self.info {
            Some(m) => rate_limit_headers(&[burst, m]),
            None => rate_limit_headers(&[burst]),
        }
    }
}

/// Usage of a tenant in the current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodUsage {
    /// `YYYY-MM` (UTC).
    pub period: String,
    /// Simulations included per month; `None` = unlimited.
    pub quota: Option<u64>,
    /// Simulations admitted this period, overage included.
    pub used: u64,
    /// Simulations left within the quota; `None` = unlimited.
    pub remaining: Option<u64>,
    /// Simulations admitted beyond the quota (metered overage).
    pub overage: u64,
    /// When the quota resets: the first of next month, 00:00 UTC.
    pub resets_at: DateTime<Utc>,
}

/// Where the monthly counters live and whether that store is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaHealth {
    /// No `REDIS_URL`: counters in PostgreSQL (exact across instances).
    RedisNotConfigured,
    /// Redis reachable: counters shared and exact across instances.
    RedisUp,
    /// Redis unreachable: monthly quotas enforced per instance since `since`.
    RedisDegraded {
        /// Start of the outage.
        since: DateTime<Utc>,
        /// Most recent error.
        last_error: String,
    },
}

impl QuotaHealth {
    /// Whether limits are currently weaker than designed (Redis configured but unreachable).
    pub fn is_degraded(&self) -> bool {
        matches!(self, QuotaHealth::RedisDegraded { .. })
    }
}

/// Every limit of the service, shared by all requests (hold it in an `Arc`).
pub struct Quotas {
    cfg: QuotaConfig,
    clock: SharedClock,
    store: Arc<dyn QuotaStore>,
    redis: Option<Arc<RedisQuotaStore>>,
    burst: burst::BurstLimiters,
    concurrency: concurrency::ConcurrencyLimiter,
    login: LoginThrottle,
    tiers: Arc<TierCatalog>,
    /// With Redis: PostgreSQL, where [`Quotas::persist_totals`] copies the counters.
    db: Db,
    /// With Redis: tenants that consumed since the last [`Quotas::persist_totals`].
    seen: std::sync::Mutex<std::collections::HashSet<TenantId>>,
}

impl Quotas {
    /// Builds the limits with default [`QuotaOptions`]. With `cfg.redis_url` the monthly
    /// counters live in Redis (connecting waits at most 250 ms; an unreachable Redis only starts
    /// the service degraded); without it in PostgreSQL (`platform.quota_counters`). `tiers` is
    /// the service's tier catalogue, read for upgrade hints in rejection messages.
    pub async fn new(
        cfg: QuotaConfig,
        db: Db,
        clock: SharedClock,
        tiers: Arc<TierCatalog>,
    ) -> Self {
        Self::with_options(cfg, QuotaOptions::default(), db, clock, tiers).await
    }

    /// [`Quotas::new`] with explicit timeouts and login policy.
    pub async fn with_options(
        cfg: QuotaConfig,
        opts: QuotaOptions,
        db: Db,
        clock: SharedClock,
        tiers: Arc<TierCatalog>,
    ) -> Self {
        let (store, redis): (Arc<dyn QuotaStore>, _) = match &cfg.redis_url {
            Some(url) => {
                let r = Arc::new(
                    RedisQuotaStore::connect(
                        url,
                        cfg.key_prefix.clone(),
                        opts.redis_timeouts,
                        clock.clone(),
                    )
                    .await,
                );
                (r.clone(), Some(r))
            }
            None => (Arc::new(PgQuotaStore::new(db.clone())), None),
        };
        Self {
            login: LoginThrottle::new(opts.login, clock.clone()),
            cfg,
            clock,
            store,
            redis,
            burst: burst::BurstLimiters::default(),
            concurrency: concurrency::ConcurrencyLimiter::default(),
            tiers,
            db,
            seen: std::sync::Mutex::default(),
        }
    }

    /// The current quota period.
    pub fn current_period(&self) -> Period {
        Period::containing(self.clock.now())
    }

    /// Admits one request of `principal` (API key id, or user id for JWT callers) under the
    /// tier's burst policy: GCRA with `burst_size` requests at once, refilled at
    /// `burst_per_second`. Per instance, in memory, no I/O (about a microsecond).
    ///
    /// GCRA (generic cell rate algorithm) is a token bucket that stores one timestamp per key;
    /// implemented by the `governor` crate (keyed limiter), explained in Brandur Leach's
    /// "Rate Limiting, Cells, and GCRA". One limiter exists per `(burst_per_second, burst_size)`
    /// pair, so a tier change applies on the next request (the key starts fresh in the new
    /// tier's limiter). With N instances a key can get up to N × the burst.
    ///
    /// # Errors
    /// A 429 [`Rejection`] (policy `"burst"`) with `Retry-After` rounded up to whole seconds.
    pub fn check_burst(
        &self,
        principal: &Principal,
        tier: &Tier,
    ) -> Result<RateLimitInfo, Rejection> {
        self.burst.check(principal.limiter_key(), tier)
    }

    /// Counts one simulation against the tenant's monthly quota, atomically across instances.
    /// Below the quota it is admitted; at or above it, admitted as overage when the tier has an
    /// overage price and `overage_enabled`, refused otherwise. Unlimited tiers are counted too.
    ///
    /// # Errors
    /// A 429 [`Rejection`] (policy `"monthly"`, `Retry-After` = seconds until the period resets)
    /// when the quota is used up, or a 503 one when PostgreSQL (the store without Redis) fails.
    /// A Redis failure is never an error (per-instance fallback).
    pub async fn consume_simulation(
        &self,
        tenant_id: TenantId,
        tier: &Tier,
        overage_enabled: bool,
    ) -> Result<QuotaGrant, Rejection> {
        let now = self.clock.now();
        let period = Period::containing(now);
        let overage_allowed = overage_enabled && tier.allows_overage();
        if self.redis.is_some() {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(tenant_id);
        }
        let outcome = self
            .store
            .consume(
                tenant_id,
                &period,
                tier.monthly_simulations,
                overage_allowed,
            )
            .await
            .map_err(|e| store_unavailable(&e))?;
        let info = tier
            .monthly_simulations
            .map(|q| monthly_info(q, outcome.counts.used, &period, now));
        if outcome.admitted {
            return Ok(QuotaGrant {
                tenant: tenant_id,
                period,
                overage: outcome.overage,
                info,
                counts: outcome.counts,
            });
        }
        let quota = tier.monthly_simulations.unwrap_or(0);
        let retry = period.secs_until_reset(now).max(1);
        let detail = format!(
            "monthly simulation quota of {quota} for tier {} is used up; resets at {}{}",
            tier.name,
            period
                .resets_at()
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            self.upgrade_hint(tier, overage_enabled)
        );
        Err(Rejection::new(
            429,
            POLICY_MONTHLY,
            detail,
            Some(retry),
            info.as_ref(),
        ))
    }

    /// Takes back a simulation that was admitted but did not run and was not stored (an engine
    /// or database failure, a request abandoned midway): the tenant is charged, and billed
    /// overage, only for simulations that ran. Failures are logged (the count stays one high).
    pub async fn refund_simulation(&self, grant: &QuotaGrant) {
        if let Err(e) = self
            .store
            .refund(grant.tenant, &grant.period, grant.overage)
            .await
        {
            tracing::error!(error = ?e, tenant = %grant.tenant, "could not refund a simulation that did not run");
        }
    }

    fn upgrade_hint(&self, tier: &Tier, overage_enabled: bool) -> String {
        let higher = tier.monthly_simulations.and_then(|current| {
            self.tiers
                .upgrade(&tier.name, |t| {
                    t.monthly_simulations.is_none_or(|m| m > current)
                })
                .map(|t| t.name.clone())
        });
        let overage = tier.allows_overage() && !overage_enabled;
        match (higher, overage) {
            (Some(h), true) => format!("; upgrade to {h} or enable overage"),
            (Some(h), false) => format!("; upgrade to {h}"),
            (None, true) => "; enable overage".to_owned(),
            (None, false) => String::new(),
        }
    }

    /// Takes one of the tenant's `max_concurrent_simulations` slots (per instance), waiting up
    /// to [`QuotaConfig::concurrency_wait`] for one to free up. Hold the returned slot while the
    /// simulation runs.
    ///
    /// # Errors
    /// A 429 [`Rejection`] (policy `"concurrency"`) when no slot freed within the wait.
    pub async fn acquire_simulation_slot(
        &self,
        tenant_id: TenantId,
        tier: &Tier,
    ) -> Result<SimulationSlot, Rejection> {
        self.concurrency
            .acquire(tenant_id, tier, self.cfg.concurrency_wait)
            .await
    }

    /// Free simulation slots of a tenant on this instance (`None` before its first simulation).
    pub fn available_simulation_slots(&self, tenant_id: TenantId) -> Option<usize> {
        self.concurrency.available(tenant_id)
    }

    /// The tenant's usage in the current period. If the store fails (PostgreSQL down) the
    /// error is logged and zero usage is reported; use [`Quotas::try_period_usage`] to see it.
    pub async fn period_usage(&self, tenant_id: TenantId, tier: &Tier) -> PeriodUsage {
        match self.try_period_usage(tenant_id, tier).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = ?e, %tenant_id, "could not read quota usage");
                usage_from(&self.current_period(), tier, Counts::default())
            }
        }
    }

    /// The tenant's usage in the current period.
    ///
    /// # Errors
    /// [`StoreError`] when PostgreSQL (the store without Redis) fails; Redis failures fall back
    /// to this instance's view.
    pub async fn try_period_usage(
        &self,
        tenant_id: TenantId,
        tier: &Tier,
    ) -> Result<PeriodUsage, StoreError> {
        let period = self.current_period();
        let counts = self.store.usage(tenant_id, &period).await?;
        Ok(usage_from(&period, tier, counts))
    }

    /// The tenant's counters of any `period` (billing reads a finished period's overage).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn counts_in(
        &self,
        tenant_id: TenantId,
        period: &Period,
    ) -> Result<Counts, StoreError> {
        self.store.usage(tenant_id, period).await
    }

    /// With Redis: copies the current and previous period's counters of every tenant that
    /// consumed since the last call from Redis into `platform.quota_counters` (monotone:
    /// `GREATEST`), so the totals outlive the Redis keys (billing reads them). Without Redis the
    /// counters already live there: nothing to do. Returns the tenants copied; a tenant whose
    /// copy failed is kept for the next call.
    ///
    /// # Errors
    /// When Redis or PostgreSQL fails (the tenants not yet copied are kept).
    pub async fn persist_totals(&self) -> Result<usize, crate::error::AppError> {
        if self.redis.is_none() {
            return Ok(0);
        }
        let tenants: Vec<TenantId> = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        let current = self.current_period();
        let previous = Period::containing(current.starts_at() - chrono::Duration::seconds(1));
        for (i, tenant) in tenants.iter().enumerate() {
            let copy = async || -> Result<(), crate::error::AppError> {
                for period in [&previous, &current] {
                    let c = self
                        .store
                        .usage(*tenant, period)
                        .await
                        .map_err(crate::error::AppError::internal)?;
                    if c.used > 0 || c.overage > 0 {
                        crate::db::quota_counters::persist(
                            &self.db,
                            *tenant,
                            period.key(),
                            i64::try_from(c.used).unwrap_or(i64::MAX),
                            i64::try_from(c.overage).unwrap_or(i64::MAX),
                        )
                        .await?;
                    }
                }
                Ok(())
            };
            if let Err(e) = copy().await {
                self.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(tenants[i..].iter().copied());
                return Err(e);
            }
        }
        Ok(tenants.len())
    }

    /// The login and signup throttle.
    pub fn login_throttle(&self) -> &LoginThrottle {
        &self.login
    }

    /// Where the monthly counters live and whether it is healthy. While Redis is degraded this
    /// probes it (at most once per retry interval), so readiness checks see recovery.
    pub async fn health(&self) -> QuotaHealth {
        match &self.redis {
            None => QuotaHealth::RedisNotConfigured,
            Some(r) => match r.health().await {
                RedisHealth::Up => QuotaHealth::RedisUp,
                RedisHealth::Degraded { since, last_error } => {
                    QuotaHealth::RedisDegraded { since, last_error }
                }
            },
        }
    }
}

fn monthly_info(quota: u64, used: u64, period: &Period, now: DateTime<Utc>) -> RateLimitInfo {
    RateLimitInfo {
        policy: POLICY_MONTHLY.to_owned(),
        quota,
        window_secs: period.length_secs(),
        remaining: quota.saturating_sub(used),
        reset_secs: period.secs_until_reset(now),
    }
}

fn usage_from(period: &Period, tier: &Tier, counts: Counts) -> PeriodUsage {
    PeriodUsage {
        period: period.key().to_owned(),
        quota: tier.monthly_simulations,
        used: counts.used,
        remaining: tier
            .monthly_simulations
            .map(|q| q.saturating_sub(counts.used)),
        overage: counts.overage,
        resets_at: period.resets_at(),
    }
}

fn store_unavailable(e: &StoreError) -> Rejection {
    tracing::error!(error = ?e, "monthly quota store failed");
    Rejection::new(
        503,
        POLICY_MONTHLY,
        "the monthly quota could not be checked; retry shortly".to_owned(),
        Some(1),
        None,
    )
}
