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
}

const COLUMNS: &str = "id, email, full_name, role, created_at";

fn record(row: &sqlx::postgres::PgRow) -> Result<UserRecord, AppError> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: UserId::from_uuid(row.try_get("id")?),
        email: row.try_get("email")?,
        full_name: row.try_get("full_name")?,
        role: Role::parse(&role).map_err(AppError::internal)?,
        created_at: row.try_get("created_at")?,
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
