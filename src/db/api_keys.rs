//! API keys: the tenant's `api_keys` and the platform-wide `api_key_directory` (key hash →
//! tenant), written together.

use super::context::{TenantTx, begin_for};
use super::pool::Db;
use crate::domain::{ApiKeyId, KeyName, Tenant, TenantId, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A key as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Id.
    pub id: ApiKeyId,
    /// Name.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Revoked (else active, unless past `expires_at`).
    pub revoked: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last successful use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, prefix, status, created_at, expires_at, last_used_at, revoked_at";

fn record(row: &sqlx::postgres::PgRow) -> Result<KeyRecord, AppError> {
    let status: String = row.try_get("status")?;
    Ok(KeyRecord {
        id: ApiKeyId::from_uuid(row.try_get("id")?),
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        revoked: status == "revoked",
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// The key and tenant a key hash belongs to (`platform.api_key_directory`).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn directory_lookup(
    db: &Db,
    hash: &[u8; 32],
) -> Result<Option<(ApiKeyId, TenantId)>, AppError> {
    let row: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT key_id, tenant_id FROM platform.api_key_directory WHERE key_hash = $1",
    )
    .bind(hash.as_slice())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|(k, t)| (ApiKeyId::from_uuid(k), TenantId::from_uuid(t))))
}

/// What the tenant's row says about a presented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAuthRow {
    /// Revoked.
    pub revoked: bool,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last recorded use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The state of key `id` with hash `hash` in `tenant`'s schema, if the tenant has it.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn auth_row(
    db: &Db,
    tenant: &Tenant,
    id: ApiKeyId,
    hash: &[u8; 32],
) -> Result<Option<KeyAuthRow>, AppError> {
    let mut tx = begin_for(db, tenant).await?;
    let row = sqlx::query(
        "SELECT status, expires_at, last_used_at FROM api_keys WHERE id = $1 AND key_hash = $2",
    )
    .bind(id.as_uuid())
    .bind(hash.as_slice())
    .fetch_optional(tx.conn())
    .await?;
    tx.commit().await?;
    row.map(|r| {
        Ok(KeyAuthRow {
            revoked: r.try_get::<String, _>("status")? != "active",
            expires_at: r.try_get("expires_at")?,
            last_used_at: r.try_get("last_used_at")?,
        })
    })
    .transpose()
}

/// Records a use of key `id` at `now`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn touch(
    db: &Db,
    tenant: &Tenant,
    id: ApiKeyId,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let mut tx = begin_for(db, tenant).await?;
    sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(now)
        .execute(tx.conn())
        .await?;
    tx.commit().await
}

/// Every key of the tenant, oldest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<KeyRecord>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
    )))
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(record).collect()
}

/// Serialises key creation within the tenant until the transaction ends, then counts the keys
/// that are active at `now` (so a cap check and the insert that follows are atomic).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn lock_and_count_active(
    tx: &mut TenantTx,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("keys:{tenant}"))
        .execute(tx.conn())
        .await?;
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE status = 'active' AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(now)
    .fetch_one(tx.conn())
    .await?;
    Ok(u64::try_from(active).unwrap_or(0))
}

/// A key to insert.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Id.
    pub id: ApiKeyId,
    /// Name.
    pub name: &'a KeyName,
    /// Display prefix.
    pub prefix: &'a str,
    /// SHA-256 of the whole key.
    pub hash: &'a [u8; 32],
    /// Creator.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts a key into the tenant's `api_keys` and the platform directory.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn insert(tx: &mut TenantTx, tenant: TenantId, key: &NewKey<'_>) -> Result<(), AppError> {
    sqlx::query(INSERT_TENANT_ROW)
        .bind(key.id.as_uuid())
        .bind(key.name.as_str())
        .bind(key.prefix)
        .bind(key.hash.as_slice())
        .bind(key.created_by.as_uuid())
        .bind(key.created_at)
        .bind(key.expires_at)
        .execute(tx.conn())
        .await?;
    sqlx::query(INSERT_DIRECTORY_ROW)
        .bind(key.hash.as_slice())
        .bind(key.id.as_uuid())
        .bind(tenant.as_uuid())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The two inserts of a key, shared with provisioning (which runs on the migration pool's
/// driver): the tenant's row, then the directory row.
pub(super) const INSERT_TENANT_ROW: &str = "INSERT INTO api_keys (id, name, prefix, key_hash, status, created_by, created_at, expires_at) \
                                            VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)";
pub(super) const INSERT_DIRECTORY_ROW: &str =
    "INSERT INTO platform.api_key_directory (key_hash, key_id, tenant_id) VALUES ($1, $2, $3)";

/// Revokes a key (idempotent: the first revocation time is kept); `None` when no such key.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revoke(
    tx: &mut TenantTx,
    id: ApiKeyId,
    now: DateTime<Utc>,
) -> Result<Option<KeyRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE api_keys SET status = 'revoked', revoked_at = COALESCE(revoked_at, $2) \
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id.as_uuid())
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(record).transpose()
}

/// Revokes every active key created by `user` (their user was deactivated or removed); returns
/// the ids. The `api_keys` trigger tells every instance's key cache.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revoke_created_by(
    tx: &mut TenantTx,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<Vec<ApiKeyId>, AppError> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET status = 'revoked', revoked_at = $2 \
         WHERE created_by = $1 AND status = 'active' RETURNING id",
    )
    .bind(user.as_uuid())
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    Ok(ids.into_iter().map(ApiKeyId::from_uuid).collect())
}

/// Every key of the tenant, oldest first, with the full name of the user who created it
/// (`None` when the key has no creator or the user is gone).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list_with_creators(
    tx: &mut TenantTx,
) -> Result<Vec<(KeyRecord, Option<String>)>, AppError> {
    let rows = sqlx::query(
        "SELECT k.id, k.name, k.prefix, k.status, k.created_at, k.expires_at, k.last_used_at, \
         k.revoked_at, u.full_name AS creator \
         FROM api_keys k LEFT JOIN users u ON u.id = k.created_by \
         ORDER BY k.created_at, k.id",
    )
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| Ok((record(r)?, r.try_get("creator")?)))
        .collect()
}
