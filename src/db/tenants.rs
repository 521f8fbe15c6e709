//! `platform.tenants`: the tenant records behind the in-memory directory, and admin changes.
//! Every insert, update or delete announces itself with `NOTIFY tenant_changed` (a trigger,
//! platform migration V2), so every instance's directory hears of it whoever made the change.

use super::pool::Db;
use crate::domain::{SchemaName, TenantId, TenantSlug, TenantStatus};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// `NOTIFY` channel announcing a changed tenant (payload: the tenant's UUID).
pub const TENANT_CHANGED_CHANNEL: &str = "tenant_changed";

/// `NOTIFY` channel announcing a change of `platform.tiers` (empty payload).
pub const TIERS_CHANGED_CHANNEL: &str = "tiers_changed";

/// `NOTIFY` channel announcing a changed API key of any tenant (payload: its SHA-256, hex;
/// tenant migration V3).
pub const API_KEY_CHANGED_CHANNEL: &str = "api_key_changed";

/// A row of `platform.tenants`, validated as read.
#[derive(Debug, Clone)]
pub struct TenantRecord {
    /// Id.
    pub id: TenantId,
    /// Slug.
    pub slug: TenantSlug,
    /// Organisation name.
    pub display_name: String,
    /// Schema.
    pub schema: SchemaName,
    /// Tier name.
    pub tier: String,
    /// Status.
    pub status: TenantStatus,
    /// Trial end.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Overage enabled.
    pub overage_enabled: bool,
    /// Signup time.
    pub created_at: DateTime<Utc>,
    /// Billing: `past_due` until then (`platform.billing_accounts`), else `None`.
    pub billing_grace_until: Option<DateTime<Utc>>,
    /// Billing: `suspended` (grace over or unpaid).
    pub billing_suspended: bool,
    /// Soft-deleted at.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Purged after (set with `deleted_at`).
    pub purge_after: Option<DateTime<Utc>>,
}

const SELECT: &str = "SELECT id, slug, display_name, schema_name, tier, status, trial_ends_at, \
                      overage_enabled, created_at, deleted_at, purge_after, \
                      (SELECT b.grace_until FROM platform.billing_accounts b \
                        WHERE b.tenant_id = platform.tenants.id AND b.billing_status = 'past_due') \
                        AS billing_grace_until, \
                      EXISTS (SELECT 1 FROM platform.billing_accounts b \
                        WHERE b.tenant_id = platform.tenants.id AND b.billing_status = 'suspended') \
                        AS billing_suspended \
                      FROM platform.tenants";

fn record(row: &sqlx::postgres::PgRow) -> Result<TenantRecord, AppError> {
    let slug: String = row.try_get("slug")?;
    let schema: String = row.try_get("schema_name")?;
    let status: String = row.try_get("status")?;
    Ok(TenantRecord {
        id: TenantId::from_uuid(row.try_get("id")?),
        slug: TenantSlug::parse(&slug).map_err(AppError::internal)?,
        display_name: row.try_get("display_name")?,
        schema: SchemaName::parse(&schema).map_err(AppError::internal)?,
        tier: row.try_get("tier")?,
        status: TenantStatus::parse(&status).map_err(AppError::internal)?,
        trial_ends_at: row.try_get("trial_ends_at")?,
        overage_enabled: row.try_get("overage_enabled")?,
        created_at: row.try_get("created_at")?,
        billing_grace_until: row.try_get("billing_grace_until")?,
        billing_suspended: row.try_get("billing_suspended")?,
        deleted_at: row.try_get("deleted_at")?,
        purge_after: row.try_get("purge_after")?,
    })
}

/// Every tenant, oldest first.
///
/// # Errors
/// When PostgreSQL fails or a stored value is invalid.
pub async fn all(db: &Db) -> Result<Vec<TenantRecord>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} ORDER BY created_at, id"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(record).collect()
}

/// A tenant by slug.
///
/// # Errors
/// When PostgreSQL fails or a stored value is invalid.
pub async fn by_slug(db: &Db, slug: &TenantSlug) -> Result<Option<TenantRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE slug = $1")))
        .bind(slug.as_str())
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(record).transpose()
}

/// A tenant by id.
///
/// # Errors
/// When PostgreSQL fails or a stored value is invalid.
pub async fn by_id(db: &Db, id: TenantId) -> Result<Option<TenantRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = $1")))
        .bind(id.as_uuid())
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(record).transpose()
}

/// An admin's change to a tenant; `None` fields are left alone.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    /// New status.
    pub status: Option<TenantStatus>,
    /// New tier (must exist in `platform.tiers`).
    pub tier: Option<String>,
    /// New trial end.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Allow metered overage.
    pub overage_enabled: Option<bool>,
}

/// Applies `change` to tenant `id`; the trigger announces it to every instance on commit.
/// Returns whether the tenant exists.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn update(
    db: &Db,
    id: TenantId,
    change: &TenantChange,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let done = sqlx::query(
        "UPDATE platform.tenants SET status = COALESCE($2, status), tier = COALESCE($3, tier), \
         trial_ends_at = COALESCE($4, trial_ends_at), overage_enabled = COALESCE($5, overage_enabled), \
         updated_at = $6 WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(change.status.map(|s| s.as_str()))
    .bind(change.tier.as_deref())
    .bind(change.trial_ends_at)
    .bind(change.overage_enabled)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
