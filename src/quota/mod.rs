//! Placeholder until the quota module lands: the tier type only.

/// A pricing tier's limits (row of `platform.tiers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    pub display_name: String,
    pub price_cents_per_month: i64,
    pub monthly_simulations: Option<u64>,
    pub max_paths: u64,
    pub max_work: u64,
    pub burst_per_second: u32,
    pub burst_size: u32,
    pub max_concurrent_simulations: u32,
    pub max_api_keys: Option<u32>,
    pub overage_cents_per_simulation: Option<i64>,
    pub trial_days: Option<u32>,
}

impl Tier {
    /// Loads every tier, ordered by `sort_order`.
    pub async fn load_all(pool: &sqlx::PgPool) -> Result<Vec<Tier>, sqlx::Error> {
        use sqlx::Row;
        let rows = sqlx::query("SELECT * FROM platform.tiers ORDER BY sort_order").fetch_all(pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| Tier {
                name: r.get("name"),
                display_name: r.get("display_name"),
                price_cents_per_month: r.get("price_cents_per_month"),
                monthly_simulations: r.get::<Option<i64>, _>("monthly_simulations").map(|v| v as u64),
                max_paths: r.get::<i64, _>("max_paths") as u64,
                max_work: r.get::<i64, _>("max_work") as u64,
                burst_per_second: r.get::<i32, _>("burst_per_second") as u32,
                burst_size: r.get::<i32, _>("burst_size") as u32,
                max_concurrent_simulations: r.get::<i32, _>("max_concurrent_simulations") as u32,
                max_api_keys: r.get::<Option<i32>, _>("max_api_keys").map(|v| v as u32),
                overage_cents_per_simulation: r.get("overage_cents_per_simulation"),
                trial_days: r.get::<Option<i32>, _>("trial_days").map(|v| v as u32),
            })
            .collect())
    }
}

// ---- temporary surface matching the quota contract (replaced by the real module) ----
/// Quota configuration.
pub struct QuotaConfig {
    pub redis_url: Option<String>,
    pub key_prefix: String,
    pub concurrency_wait: std::time::Duration,
}
/// A refused request.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    pub policy: String,
    pub detail: String,
    pub retry_after_secs: Option<u64>,
    pub headers: Vec<(String, String)>,
}
/// Burst info.
#[derive(Debug, Clone, Default)]
pub struct RateLimitInfo;
impl RateLimitInfo {
    pub fn headers(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
/// Monthly grant.
#[derive(Debug, Clone, Default)]
pub struct QuotaGrant {
    pub overage: bool,
}
impl QuotaGrant {
    pub fn headers(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
/// Slot.
pub struct SimulationSlot;
/// Usage.
#[derive(Debug, Clone)]
pub struct PeriodUsage {
    pub period: String,
    pub quota: Option<u64>,
    pub used: u64,
    pub remaining: Option<u64>,
    pub overage: u64,
    pub resets_at: chrono::DateTime<chrono::Utc>,
}
/// Health.
#[derive(Debug, Clone)]
pub enum QuotaHealth {
    RedisNotConfigured,
    RedisUp,
    RedisDegraded { since: chrono::DateTime<chrono::Utc>, last_error: String },
}
/// Login throttle.
pub struct LoginThrottle;
impl LoginThrottle {
    pub fn check(&self, _ip: &str, _account: &str) -> Result<(), Rejection> {
        Ok(())
    }
    pub fn record_failure(&self, _account: &str) {}
    pub fn record_success(&self, _account: &str) {}
}
/// Quotas.
pub struct Quotas {
    login: LoginThrottle,
    clock: crate::clock::SharedClock,
}
impl Quotas {
    pub async fn new(_cfg: QuotaConfig, _pool: sqlx::PgPool, clock: crate::clock::SharedClock) -> Self {
        Self { login: LoginThrottle, clock }
    }
    pub fn check_burst(&self, _principal: uuid::Uuid, _tier: &Tier) -> Result<RateLimitInfo, Rejection> {
        Ok(RateLimitInfo)
    }
    pub async fn consume_simulation(&self, _t: uuid::Uuid, _tier: &Tier, _o: bool) -> Result<QuotaGrant, Rejection> {
        Ok(QuotaGrant::default())
    }
    pub async fn acquire_simulation_slot(&self, _t: uuid::Uuid, _tier: &Tier) -> Result<SimulationSlot, Rejection> {
        Ok(SimulationSlot)
    }
    pub async fn period_usage(&self, _t: uuid::Uuid, tier: &Tier) -> PeriodUsage {
        PeriodUsage { period: String::new(), quota: tier.monthly_simulations, used: 0, remaining: tier.monthly_simulations, overage: 0, resets_at: self.clock.now() }
    }
    pub fn login_throttle(&self) -> &LoginThrottle {
        &self.login
    }
    pub async fn health(&self) -> QuotaHealth {
        QuotaHealth::RedisNotConfigured
    }
}
