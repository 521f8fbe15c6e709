//! The tenant's `simulations`: request and result as JSON (see `domain::simulation` for the
//! stored shapes).

use super::context::TenantTx;
use crate::domain::simulation::{Simulation, SimulationSummary};
use crate::domain::{ApiKeyId, SimulationId, UserId};
use crate::error::AppError;
use sqlx::Row;

/// Stores a simulation run by `api_key` or `user`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn insert(
    tx: &mut TenantTx,
    sim: &Simulation,
    api_key: Option<ApiKeyId>,
    user: Option<UserId>,
) -> Result<(), AppError> {
    // Serialized straight into the statement's buffer (no `serde_json::Value` tree first).
    let request = sqlx::types::Json(&sim.request);
    let result = sqlx::types::Json(&sim.result);
    sqlx::query(
        "INSERT INTO simulations (id, created_at, api_key_id, user_id, seed, paths, steps, duration_ms, request, result) \
         VALUES ($1, $2, $3, $4, $5::text::numeric, $6, $7, $8, $9, $10)",
    )
    .bind(sim.id.as_uuid())
    .bind(sim.created_at)
    .bind(api_key.map(|k| k.as_uuid()))
    .bind(user.map(|u| u.as_uuid()))
    .bind(sim.result.result.seed.to_string())
    .bind(i64::try_from(sim.result.result.paths).unwrap_or(i64::MAX))
    .bind(i64::try_from(sim.result.result.steps).unwrap_or(i64::MAX))
    .bind(sim.duration_ms)
    .bind(request)
    .bind(result)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A simulation by id.
///
/// # Errors
/// When PostgreSQL fails or the stored JSON does not parse.
pub async fn get(tx: &mut TenantTx, id: SimulationId) -> Result<Option<Simulation>, AppError> {
    let row = sqlx::query(
        "SELECT id, created_at, duration_ms, request, result FROM simulations WHERE id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let request: serde_json::Value = row.try_get("request")?;
    let result: serde_json::Value = row.try_get("result")?;
    Ok(Some(Simulation {
        id: SimulationId::from_uuid(row.try_get("id")?),
        created_at: row.try_get("created_at")?,
        duration_ms: row.try_get("duration_ms")?,
        request: serde_json::from_value(request).map_err(AppError::internal)?,
        result: serde_json::from_value(result).map_err(AppError::internal)?,
    }))
}

/// Up to `limit` simulations older than `before` (newest first), keyset-paginated on
/// `(created_at, id)`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn page(
    tx: &mut TenantTx,
    before: Option<SimulationId>,
    limit: u32,
) -> Result<Vec<SimulationSummary>, AppError> {
    let rows = sqlx::query(
        "SELECT id, created_at, paths, steps, seed::text AS seed, \
                (result->'terminal'->'percentiles'->>'p50')::float8 AS p50, (result->'terminal'->>'mean')::float8 AS mean \
         FROM simulations \
         WHERE $1::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM simulations WHERE id = $1) \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(before.map(|c| c.as_uuid()))
    .bind(i64::from(limit))
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|row| {
            let seed: String = row.try_get("seed")?;
            Ok(SimulationSummary {
                id: SimulationId::from_uuid(row.try_get("id")?),
                created_at: row.try_get("created_at")?,
                paths: u64::try_from(row.try_get::<i64, _>("paths")?).unwrap_or(0),
                steps: u64::try_from(row.try_get::<i64, _>("steps")?).unwrap_or(0),
                seed: seed
                    .parse()
                    .map_err(|_| AppError::internal(format!("bad stored seed {seed}")))?,
                terminal_p50: row.try_get::<Option<f64>, _>("p50")?.unwrap_or(f64::NAN),
                terminal_mean: row.try_get::<Option<f64>, _>("mean")?.unwrap_or(f64::NAN),
            })
        })
        .collect()
}
