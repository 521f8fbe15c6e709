//! `platform.tiers`.

use super::pool::Db;
use crate::domain::Tier;
use sqlx::{Row, postgres::PgRow};

/// Every tier.
///
/// # Errors
/// Any database error, or [`sqlx::Error::Decode`] when a stored number does not fit the field's
/// unsigned type (the table's CHECK constraints make that impossible in practice).
pub async fn load_all(db: &Db) -> Result<Vec<Tier>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, display_name, price_cents_per_month, monthly_simulations, max_paths, \
                max_work, burst_per_second, burst_size, max_concurrent_simulations, \
                max_api_keys, overage_cents_per_simulation, trial_days \
         FROM platform.tiers ORDER BY sort_order, name",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
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
        max_api_keys: opt_unsigned32(row, "max_api_keys")?,
        overage_cents_per_simulation: row.try_get("overage_cents_per_simulation")?,
        trial_days: opt_unsigned32(row, "trial_days")?,
    })
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

fn opt_unsigned32(row: &PgRow, column: &str) -> Result<Option<u32>, sqlx::Error> {
    row.try_get::<Option<i32>, _>(column)?
        .map(|v| to_unsigned(column, v))
        .transpose()
}
