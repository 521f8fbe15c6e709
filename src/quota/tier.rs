//! Subscription tiers as stored in `platform.tiers`.

use sqlx::{PgPool, Row, postgres::PgRow};

/// One subscription tier: its price and every limit the quota module enforces.
///
/// Loaded from `platform.tiers` ([`Tier::load_all`]); the caller passes the tenant's current tier
/// to every check, so a tier change takes effect on the next request without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// Stable identifier (`trial`, `starter`, `professional`, `enterprise`).
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// Monthly price in US cents.
    pub price_cents_per_month: i64,
    /// Simulations per calendar month (UTC); `None` = unlimited.
    pub monthly_simulations: Option<u64>,
    /// Largest number of Monte Carlo paths in one simulation.
    pub max_paths: u64,
    /// Largest `paths × steps × assets` of one simulation.
    pub max_work: u64,
    /// Sustained request rate per API key (or JWT user), requests per second.
    pub burst_per_second: u32,
    /// Requests a key may send at once before the sustained rate applies (GCRA burst).
    pub burst_size: u32,
    /// Simulations of one tenant running at once (per service instance).
    pub max_concurrent_simulations: u32,
    /// API keys a tenant may hold; `None` = unlimited.
    pub max_api_keys: Option<u32>,
    /// Price of one simulation beyond the monthly quota in US cents; `None` = the tier has no
    /// overage and its quota is a hard stop.
    pub overage_cents_per_simulation: Option<i64>,
    /// Length of the free trial in days, for trial tiers.
    pub trial_days: Option<u32>,
}

impl Tier {
    /// Whether this tier allows metered overage at all (the tenant must also have enabled it).
    pub fn allows_overage(&self) -> bool {
        self.overage_cents_per_simulation.is_some()
    }

    /// Every tier, ordered by `sort_order` (cheapest first).
    ///
    /// # Errors
    /// Any database error, or [`sqlx::Error::Decode`] when a stored number does not fit the
    /// field's unsigned type (the table's CHECK constraints make that impossible in practice).
    pub async fn load_all(pool: &PgPool) -> Result<Vec<Tier>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, display_name, price_cents_per_month, monthly_simulations, max_paths, \
                    max_work, burst_per_second, burst_size, max_concurrent_simulations, \
                    max_api_keys, overage_cents_per_simulation, trial_days \
             FROM platform.tiers ORDER BY sort_order, name",
        )
        .fetch_all(pool)
        .await?;
        rows.iter().map(Tier::from_row).collect()
    }

    fn from_row(row: &PgRow) -> Result<Tier, sqlx::Error> {
        Ok(Tier {
            name: row.try_get("name")?,
            display_name: row.try_get("display_name")?,
            price_cents_per_month: row.try_get("price_cents_per_month")?,
            monthly_simulations: opt_unsigned(row, "monthly_simulations")?,
            max_paths: unsigned(row, "max_paths")?,
            max_work: unsigned(row, "max_work")?,
            burst_per_second: unsigned32(row, "burst_per_second")?,
            burst_size: unsigned32(row, "burst_size")?,
            max_concurrent_simulations: unsigned32(row, "max_concurrent_simulations")?,
            max_api_keys: row
                .try_get::<Option<i32>, _>("max_api_keys")?
                .map(|v| to_unsigned("max_api_keys", v))
                .transpose()?,
            overage_cents_per_simulation: row.try_get("overage_cents_per_simulation")?,
            trial_days: row
                .try_get::<Option<i32>, _>("trial_days")?
                .map(|v| to_unsigned("trial_days", v))
                .transpose()?,
        })
    }
}

fn to_unsigned<S, U>(column: &str, v: S) -> Result<U, sqlx::Error>
where
    U: TryFrom<S>,
    S: Copy + std::fmt::Display,
{
    U::try_from(v).map_err(|_| {
        sqlx::Error::Decode(format!("platform.tiers.{column} = {v} is negative").into())
    })
}

fn unsigned(row: &PgRow, column: &str) -> Result<u64, sqlx::Error> {
    to_unsigned(column, row.try_get::<i64, _>(column)?)
}

fn opt_unsigned(row: &PgRow, column: &str) -> Result<Option<u64>, sqlx::Error> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| to_unsigned(column, v))
        .transpose()
}

fn unsigned32(row: &PgRow, column: &str) -> Result<u32, sqlx::Error> {
    to_unsigned(column, row.try_get::<i32, _>(column)?)
}
