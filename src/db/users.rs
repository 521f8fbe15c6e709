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
        "SELECT {COLUMNS}, password_hash FROM users WHERE email = $1 AND status <> 'removed'"
    )))
    .bind(email.as_str())
    .fetch_optional(tx.conn())
    .await?;
    tx.commit().await?;
    row.map(|r| Ok((record(&r)?, r.try_get("password_hash")?)))
        .transpose()
}

/// A user by id (a removed user too).
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
        "SELECT {COLUMNS} FROM users WHERE email = $1 AND status <> 'removed'"
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
        "SELECT COALESCE(bool_and(email_verified_at IS NOT NULL), false) FROM users WHERE role = 'owner' AND status = 'active'",
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Every user but the removed ones, oldest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<UserRecord>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE status <> 'removed' ORDER BY created_at, id"
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
                                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) WHERE status <> 'removed' DO NOTHING";

/// A user's standing: active, deactivated (may come back) or removed (hidden; the row stays
/// for the foreign keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// May sign in and act.
    Active,
    /// Refused until reactivated.
    Deactivated,
    /// Gone (hidden from lists).
    Removed,
}

impl UserStatus {
    /// The database spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Deactivated => "deactivated",
            UserStatus::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Result<Self, AppError> {
        match s {
            "active" => Ok(UserStatus::Active),
            "deactivated" => Ok(UserStatus::Deactivated),
            "removed" => Ok(UserStatus::Removed),
            other => Err(AppError::internal(format!("unknown user status {other:?}"))),
        }
    }
}

/// What decides what a signed-in user may do now: role, status, two-factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserState {
    /// Role.
    pub role: Role,
    /// Status.
    pub status: UserStatus,
    /// Two-factor authentication is enabled.
    pub two_factor: bool,
    /// The team requires two-factor authentication.
    pub team_requires_two_factor: bool,
}

const STATE_COLUMNS: &str = "u.role, u.status, u.totp_enabled_at IS NOT NULL AS two_factor, \
                             t.require_two_factor";

fn state_of(row: &sqlx::postgres::PgRow) -> Result<UserState, AppError> {
    let role: String = row.try_get("role")?;
    let status: String = row.try_get("status")?;
    Ok(UserState {
        role: Role::parse(&role).map_err(AppError::internal)?,
        status: UserStatus::parse(&status)?,
        two_factor: row.try_get("two_factor")?,
        team_requires_two_factor: row.try_get("require_two_factor")?,
    })
}

/// Every user but the removed ones with their state, oldest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list_with_state(tx: &mut TenantTx) -> Result<Vec<(UserRecord, UserState)>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT u.id, u.email, u.full_name, u.created_at, u.email_verified_at, {STATE_COLUMNS} \
         FROM users u CROSS JOIN team_settings t WHERE u.status <> 'removed' \
         ORDER BY u.created_at, u.id"
    )))
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| Ok((record(r)?, state_of(r)?)))
        .collect()
}

/// A user that is not removed, with their state, locked until the transaction ends.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn get_for_update(
    tx: &mut TenantTx,
    id: UserId,
) -> Result<Option<(UserRecord, UserState)>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT u.id, u.email, u.full_name, u.created_at, u.email_verified_at, {STATE_COLUMNS} \
         FROM users u CROSS JOIN team_settings t WHERE u.id = $1 AND u.status <> 'removed' \
         FOR UPDATE OF u"
    )))
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| Ok((record(&r)?, state_of(&r)?))).transpose()
}

/// The state of user `id` (removed users too).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn state(tx: &mut TenantTx, id: UserId) -> Result<Option<UserState>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {STATE_COLUMNS} FROM users u CROSS JOIN team_settings t WHERE u.id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(state_of).transpose()
}

/// Locks every active owner until the transaction ends and returns them, so a check that one
/// stays and the change that follows are atomic.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn lock_active_owners(tx: &mut TenantTx) -> Result<Vec<UserId>, AppError> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE role = 'owner' AND status = 'active' ORDER BY id FOR UPDATE",
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(ids.into_iter().map(UserId::from_uuid).collect())
}

/// Sets the role of user `id`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_role(tx: &mut TenantTx, id: UserId, role: Role) -> Result<(), AppError> {
    sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(role.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Sets the status of user `id`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_status(tx: &mut TenantTx, id: UserId, status: UserStatus) -> Result<(), AppError> {
    sqlx::query("UPDATE users SET status = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(status.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The team requires two-factor authentication.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn team_requires_two_factor(tx: &mut TenantTx) -> Result<bool, AppError> {
    Ok(
        sqlx::query_scalar("SELECT require_two_factor FROM team_settings")
            .fetch_optional(tx.conn())
            .await?
            .unwrap_or(false),
    )
}

/// Sets whether the team requires two-factor authentication.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_team_requires_two_factor(
    tx: &mut TenantTx,
    required: bool,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    sqlx::query("UPDATE team_settings SET require_two_factor = $1, updated_at = $2")
        .bind(required)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// What signing in needs to know of a user.
#[derive(Debug, Clone)]
pub struct SignInRow {
    /// The user.
    pub user: UserRecord,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// State.
    pub state: UserState,
}

/// The user with `email` (not removed) for signing in, with hash and state.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn for_sign_in(tx: &mut TenantTx, email: &Email) -> Result<Option<SignInRow>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT u.id, u.email, u.full_name, u.created_at, u.email_verified_at, u.password_hash, {STATE_COLUMNS} \
         FROM users u CROSS JOIN team_settings t WHERE u.email = $1 AND u.status <> 'removed'"
    )))
    .bind(email.as_str())
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| {
        Ok(SignInRow {
            user: record(&r)?,
            password_hash: r.try_get("password_hash")?,
            state: state_of(&r)?,
        })
    })
    .transpose()
}

/// The password hash of user `id`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn password_hash(tx: &mut TenantTx, id: UserId) -> Result<Option<String>, AppError> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(tx.conn())
            .await?,
    )
}

/// A user's TOTP columns.
#[derive(Debug, Clone, Default)]
pub struct TotpRow {
    /// Secret awaiting confirmation.
    pub pending: Option<Vec<u8>>,
    /// Enabled secret.
    pub secret: Option<Vec<u8>>,
    /// Last accepted time step.
    pub last_step: Option<i64>,
}

/// The TOTP columns of user `id`, locked until the transaction ends.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn totp_for_update(tx: &mut TenantTx, id: UserId) -> Result<TotpRow, AppError> {
    let row = sqlx::query(
        "SELECT totp_pending, totp_secret, totp_last_step FROM users WHERE id = $1 FOR UPDATE",
    )
    .bind(id.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| {
        Ok(TotpRow {
            pending: r.try_get("totp_pending")?,
            secret: r.try_get("totp_secret")?,
            last_step: r.try_get("totp_last_step")?,
        })
    })
    .transpose()
    .map(Option::unwrap_or_default)
}

/// Stores a TOTP secret awaiting confirmation.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_totp_pending(
    tx: &mut TenantTx,
    id: UserId,
    secret: &[u8],
) -> Result<(), AppError> {
    sqlx::query("UPDATE users SET totp_pending = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(secret)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Enables TOTP with `secret` (the pending one, confirmed at `step`).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn enable_totp(
    tx: &mut TenantTx,
    id: UserId,
    secret: &[u8],
    step: i64,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE users SET totp_secret = $2, totp_pending = NULL, totp_enabled_at = $3, \
         totp_last_step = $4 WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(secret)
    .bind(now)
    .bind(step)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Disables TOTP and deletes the recovery codes.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn disable_totp(tx: &mut TenantTx, id: UserId) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_enabled_at = NULL, \
         totp_last_step = NULL WHERE id = $1",
    )
    .bind(id.as_uuid())
    .execute(tx.conn())
    .await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(id.as_uuid())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Records that the code of time step `step` was used; `false` when that step (or a later
/// one) was already used (a code is accepted once, RFC 6238 §5.2).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn use_totp_step(tx: &mut TenantTx, id: UserId, step: i64) -> Result<bool, AppError> {
    let done = sqlx::query(
        "UPDATE users SET totp_last_step = $2 WHERE id = $1 \
         AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(id.as_uuid())
    .bind(step)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the user's recovery codes with these SHA-256 hashes.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn replace_recovery_codes(
    tx: &mut TenantTx,
    id: UserId,
    hashes: &[[u8; 32]],
) -> Result<(), AppError> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(id.as_uuid())
        .execute(tx.conn())
        .await?;
    let list: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
    sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])")
        .bind(id.as_uuid())
        .bind(list)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Uses the unused recovery code with this hash; `false` when there is none. Returns the
/// number of unused codes left.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn use_recovery_code(
    tx: &mut TenantTx,
    id: UserId,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<i64>, AppError> {
    let done = sqlx::query(
        "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 \
         AND used_at IS NULL",
    )
    .bind(id.as_uuid())
    .bind(hash.as_slice())
    .bind(now)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(id.as_uuid())
    .fetch_one(tx.conn())
    .await?;
    Ok(Some(left))
}
