//! The tenant's `users`.

use super::context::{TenantTx, begin_for};
use super::pool::Db;
use crate::domain::{Email, Role, Tenant, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A user as stored (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Normalised email.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Role.
    pub role: Role,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the user proved they receive mail at `email` (`None`: not yet).
    pub email_verified_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, email, full_name, role, created_at, email_verified_at";

fn record(row: &sqlx::postgres::PgRow) -> Result<UserRecord, AppError> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: UserId::from_uuid(row.try_get("id")?),
        email: row.try_get("email")?,
        full_name: row.try_get("full_name")?,
        role: Role::parse(&role).map_err(AppError::internal)?,
        created_at: row.try_get("created_at")?,
        email_verified_at: row.try_get("email_verified_at")?,
    })
}

/// The user with `email` and their password hash, for signing in (before any context exists).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn for_login(
    db: &Db,
    tenant: &Tenant,
    email: &Email,
) -> Result<Option<(UserRecord, String)>, AppError> {
    let mut tx = begin_for(db, tenant).await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE email = $1"
    )))
    .bind(email.as_str())
    .fetch_optional(tx.conn())
    .await?;
    tx.commit().await?;
    row.map(|r| Ok((record(&r)?, r.try_get("password_hash")?)))
        .transpose()
}

/// A user by id.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn get(tx: &mut TenantTx, id: UserId) -> Result<Option<UserRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(record).transpose()
}

/// The user with `email`, if any.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn by_email(tx: &mut TenantTx, email: &Email) -> Result<Option<UserRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE email = $1"
    )))
    .bind(email.as_str())
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(record).transpose()
}

/// The user `id` and their password hash, the row locked until the transaction ends.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn lock_with_hash(
    tx: &mut TenantTx,
    id: UserId,
) -> Result<Option<(UserRecord, String)>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE id = $1 FOR UPDATE"
    )))
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| Ok((record(&r)?, r.try_get("password_hash")?)))
        .transpose()
}

/// Replaces the password hash of `id`; `false` when there is no such user.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_password(tx: &mut TenantTx, id: UserId, hash: &str) -> Result<bool, AppError> {
    let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(hash)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that `id` receives mail at `email` (only while that is still their address);
/// `false` when it was already verified or the address changed.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn mark_verified(
    tx: &mut TenantTx,
    id: UserId,
    email: &str,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let done = sqlx::query(
        "UPDATE users SET email_verified_at = $3          WHERE id = $1 AND email = $2 AND email_verified_at IS NULL",
    )
    .bind(id.as_uuid())
    .bind(email)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the tenant's owner has verified their address (`false` without an owner).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn owner_verified(tx: &mut TenantTx) -> Result<bool, AppError> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(bool_and(email_verified_at IS NOT NULL), false) FROM users WHERE role = 'owner'",
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Every user, oldest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<UserRecord>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users ORDER BY created_at, id"
    )))
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(record).collect()
}

/// Inserts `user`; `false` when the email is taken in this tenant.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn insert(
    tx: &mut TenantTx,
    user: &UserRecord,
    password_hash: &str,
) -> Result<bool, AppError> {
    let done = sqlx::query(INSERT)
        .bind(user.id.as_uuid())
        .bind(&user.email)
        .bind(&user.full_name)
        .bind(password_hash)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The insert, shared with provisioning (which runs on the migration pool's driver).
pub(super) const INSERT: &str = "INSERT INTO users (id, email, full_name, password_hash, role, created_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING";
