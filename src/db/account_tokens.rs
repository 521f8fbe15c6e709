//! The tenant's `account_tokens`: single-use tokens for password reset and email
//! verification, stored as their SHA-256 only.

use super::context::TenantTx;
use crate::domain::UserId;
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Sets a new password.
    PasswordReset,
    /// Confirms the user's address.
    EmailVerification,
}

impl Purpose {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "password_reset",
            Purpose::EmailVerification => "email_verification",
        }
    }
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// SHA-256 of the token.
    pub hash: &'a [u8; 32],
    /// What it is for.
    pub purpose: Purpose,
    /// Whose it is.
    pub user_id: UserId,
    /// The address it was sent to.
    pub email: &'a str,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Not valid from this instant on.
    pub expires_at: DateTime<Utc>,
}

/// A presented token as stored, locked for this transaction.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Whose it is.
    pub user_id: UserId,
    /// The address it was sent to.
    pub email: String,
    /// Not valid from this instant on.
    pub expires_at: DateTime<Utc>,
    /// When it was used, if it was.
    pub used_at: Option<DateTime<Utc>>,
}

/// The insert, shared with provisioning: `$1` hash, `$2` purpose, `$3` user, `$4` email,
/// `$5` created, `$6` expires.
pub(super) const INSERT: &str = "INSERT INTO account_tokens \
     (token_hash, purpose, user_id, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// Stores `t`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn insert(tx: &mut TenantTx, t: &NewToken<'_>) -> Result<(), AppError> {
    sqlx::query(INSERT)
        .bind(t.hash.as_slice())
        .bind(t.purpose.as_str())
        .bind(t.user_id.as_uuid())
        .bind(t.email)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// When the user was last sent a token for `purpose`, if ever.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn last_sent(
    tx: &mut TenantTx,
    user: UserId,
    purpose: Purpose,
) -> Result<Option<DateTime<Utc>>, AppError> {
    Ok(sqlx::query_scalar(
        "SELECT max(created_at) FROM account_tokens WHERE user_id = $1 AND purpose = $2",
    )
    .bind(user.as_uuid())
    .bind(purpose.as_str())
    .fetch_one(tx.conn())
    .await?)
}

/// The token with this hash and purpose, locked until the transaction ends (so two
/// concurrent uses serialise and only one finds it unused).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn lock(
    tx: &mut TenantTx,
    hash: &[u8; 32],
    purpose: Purpose,
) -> Result<Option<TokenRow>, AppError> {
    let row = sqlx::query(
        "SELECT user_id, email, expires_at, used_at FROM account_tokens \
         WHERE token_hash = $1 AND purpose = $2 FOR UPDATE",
    )
    .bind(hash.as_slice())
    .bind(purpose.as_str())
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| {
        Ok(TokenRow {
            user_id: UserId::from_uuid(r.try_get("user_id")?),
            email: r.try_get("email")?,
            expires_at: r.try_get("expires_at")?,
            used_at: r.try_get("used_at")?,
        })
    })
    .transpose()
}

/// Marks every unused token of the user for `purpose` used at `now` (the one just presented
/// and any other outstanding one).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn use_all(
    tx: &mut TenantTx,
    user: UserId,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let done = sqlx::query(
        "UPDATE account_tokens SET used_at = $3 \
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(user.as_uuid())
    .bind(purpose.as_str())
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// A transaction in `tenant`'s schema for a flow that has no authenticated caller: a reset
/// request (no credential at all) or the use of a token from mail (the token is the credential,
/// checked inside this transaction). Callers touch only the rows of the token's user.
///
/// # Errors
/// 503 when no connection can be had; 500 when PostgreSQL fails.
pub async fn begin_token_flow(
    db: &super::Db,
    tenant: &crate::domain::Tenant,
) -> Result<TenantTx, AppError> {
    super::context::begin_for(db, tenant).await
}
