//! The tenant's `invitations`: an address invited with a role, by a token sent by email
//! (stored as its SHA-256 only), until it is accepted, revoked or expires.

use super::context::TenantTx;
use crate::domain::{InvitationId, Role, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// An invitation as stored (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    /// Id.
    pub id: InvitationId,
    /// Normalised address.
    pub email: String,
    /// The role the new user gets.
    pub role: Role,
    /// Who invited.
    pub invited_by: Option<UserId>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Not valid from this instant on.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// The user it created.
    pub accepted_by: Option<UserId>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, email, role, invited_by, created_at, expires_at, accepted_at, accepted_by, revoked_at";

fn record(row: &sqlx::postgres::PgRow) -> Result<InvitationRecord, AppError> {
    let role: String = row.try_get("role")?;
    Ok(InvitationRecord {
        id: InvitationId::from_uuid(row.try_get("id")?),
        email: row.try_get("email")?,
        role: Role::parse(&role).map_err(AppError::internal)?,
        invited_by: row
            .try_get::<Option<uuid::Uuid>, _>("invited_by")?
            .map(UserId::from_uuid),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        accepted_at: row.try_get("accepted_at")?,
        accepted_by: row
            .try_get::<Option<uuid::Uuid>, _>("accepted_by")?
            .map(UserId::from_uuid),
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Revokes the open (neither accepted nor revoked) invitation of `email`, if any; returns it.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revoke_open_for(
    tx: &mut TenantTx,
    email: &str,
    now: DateTime<Utc>,
) -> Result<Option<InvitationRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE invitations SET revoked_at = $2 \
         WHERE email = $1 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(email)
    .bind(now)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(record).transpose()
}

/// Stores `inv` with its token hash.
///
/// # Errors
/// When PostgreSQL fails (a concurrent open invitation of the same address is a unique
/// violation, answered as 409 by the caller's conversion).
pub async fn insert(
    tx: &mut TenantTx,
    inv: &InvitationRecord,
    token_hash: &[u8; 32],
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO invitations (id, email, role, token_hash, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(inv.id.as_uuid())
    .bind(&inv.email)
    .bind(inv.role.as_str())
    .bind(token_hash.as_slice())
    .bind(inv.invited_by.map(|u| u.as_uuid()))
    .bind(inv.created_at)
    .bind(inv.expires_at)
    .execute(tx.conn())
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
        Some(c) if c == "23505" => AppError::conflict(format!(
            "{} was invited at the same moment by another request; list the invitations",
            inv.email
        )),
        _ => AppError::from(e),
    })?;
    Ok(())
}

/// Invitations, newest first, at most `limit`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list(tx: &mut TenantTx, limit: i64) -> Result<Vec<InvitationRecord>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations ORDER BY created_at DESC, id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(record).collect()
}

/// The invitation `id`, locked until the transaction ends.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn lock(
    tx: &mut TenantTx,
    id: InvitationId,
) -> Result<Option<InvitationRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations WHERE id = $1 FOR UPDATE"
    )))
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(record).transpose()
}

/// The invitation whose token has this hash, locked until the transaction ends.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn lock_by_token(
    tx: &mut TenantTx,
    token_hash: &[u8; 32],
) -> Result<Option<InvitationRecord>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations WHERE token_hash = $1 FOR UPDATE"
    )))
    .bind(token_hash.as_slice())
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(record).transpose()
}

/// Marks `id` revoked at `now`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revoke(
    tx: &mut TenantTx,
    id: InvitationId,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    sqlx::query("UPDATE invitations SET revoked_at = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Marks `id` accepted at `now` by the new user `user`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn accept(
    tx: &mut TenantTx,
    id: InvitationId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    sqlx::query("UPDATE invitations SET accepted_at = $2, accepted_by = $3 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(now)
        .bind(user.as_uuid())
        .execute(tx.conn())
        .await?;
    Ok(())
}
