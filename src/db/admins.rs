//! `platform.admins`, `platform.admin_sessions` and `platform.admin_audit`: named platform
//! administrators, their sign-in sessions and the audit of their actions (platform V6).
//!
//! Accounts are created on the owner's pool (the request role may only read them and move their
//! TOTP step forward); sessions and audit rows are written by the request role.

use super::pool::{Db, pg_code};
use crate::domain::AdminId;
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A new administrator, ready to store.
#[derive(Debug, Clone)]
pub struct NewAdmin<'a> {
    /// Id.
    pub id: AdminId,
    /// Normalised email.
    pub email: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// RFC 6238 shared secret (raw bytes, ≥ 20).
    pub totp_secret: &'a [u8],
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Who created it: `bootstrap`, `cli:<os user>` or an admin's email.
    pub created_by: &'a str,
}

/// Why an administrator could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Stored.
    Created,
    /// The email is taken.
    EmailTaken,
    /// `only_if_none` was asked and an administrator exists.
    NotFirst,
}

/// Stores `admin` (owner pool). With `only_if_none`, only when no administrator exists yet
/// (the check and the insert hold a transaction-scoped advisory lock, so two bootstraps at once
/// cannot both win).
///
/// # Errors
/// 503 when no connection can be had; 500 when PostgreSQL fails.
pub async fn insert(
    db: &Db,
    admin: &NewAdmin<'_>,
    only_if_none: bool,
) -> Result<CreateOutcome, AppError> {
    let mut client = db
        .migrations
        .get()
        .await
        .map_err(|e| AppError::unavailable(format!("the database ({e})")))?;
    let tx = client.transaction().await.map_err(AppError::internal)?;
    tx.execute("SELECT pg_advisory_xact_lock(7283461006)", &[])
        .await
        .map_err(AppError::internal)?;
    if only_if_none {
        let n: i64 = tx
            .query_one("SELECT count(*) FROM platform.admins", &[])
            .await
            .map_err(AppError::internal)?
            .get(0);
        if n > 0 {
            return Ok(CreateOutcome::NotFirst);
        }
    }
    let inserted = tx
        .execute(
            "INSERT INTO platform.admins (id, email, password_hash, totp_secret, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &admin.id.as_uuid(),
                &admin.email,
                &admin.password_hash,
                &admin.totp_secret,
                &admin.created_at,
                &admin.created_by,
            ],
        )
        .await;
    match inserted {
        Ok(_) => {}
        Err(e) if pg_code(&e) == Some("23505") => return Ok(CreateOutcome::EmailTaken),
        Err(e) => return Err(AppError::internal(e)),
    }
    tx.commit().await.map_err(AppError::internal)?;
    Ok(CreateOutcome::Created)
}

/// An administrator as read for signing in.
#[derive(Debug, Clone)]
pub struct AdminLogin {
    /// Id.
    pub id: AdminId,
    /// Email.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// TOTP secret.
    pub totp_secret: Vec<u8>,
    /// Last accepted TOTP step.
    pub totp_last_step: i64,
}

/// The administrator with `email`, for signing in.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn for_login(db: &Db, email: &str) -> Result<Option<AdminLogin>, AppError> {
    let row = sqlx::query(
        "SELECT id, email, password_hash, totp_secret, totp_last_step FROM platform.admins WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(AdminLogin {
            id: AdminId::from_uuid(r.try_get("id")?),
            email: r.try_get("email")?,
            password_hash: r.try_get("password_hash")?,
            totp_secret: r.try_get("totp_secret")?,
            totp_last_step: r.try_get("totp_last_step")?,
        })
    })
    .transpose()
}

/// Moves the administrator's last accepted TOTP step to `step` when it is later than the one
/// stored; `false` when a code of this step (or a later one) was already used (a replay).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn claim_totp_step(db: &Db, id: AdminId, step: i64) -> Result<bool, AppError> {
    let done = sqlx::query(
        "UPDATE platform.admins SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
    )
    .bind(id.as_uuid())
    .bind(step)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every administrator: (id, email, created at, created by), oldest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list(db: &Db) -> Result<Vec<(AdminId, String, DateTime<Utc>, String)>, AppError> {
    let rows = sqlx::query(
        "SELECT id, email, created_at, created_by FROM platform.admins ORDER BY created_at, id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                AdminId::from_uuid(r.try_get("id")?),
                r.try_get("email")?,
                r.try_get("created_at")?,
                r.try_get("created_by")?,
            ))
        })
        .collect()
}

/// A new sign-in session.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// Session id (the token's `sid`).
    pub id: uuid::Uuid,
    /// The administrator.
    pub admin: AdminId,
    /// Start.
    pub created_at: DateTime<Utc>,
    /// End.
    pub expires_at: DateTime<Utc>,
    /// Client address.
    pub address: &'a str,
    /// Client user agent.
    pub user_agent: &'a str,
}

/// Stores a session.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn insert_session(db: &Db, s: &NewSession<'_>) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO platform.admin_sessions (id, admin_id, created_at, expires_at, address, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(s.id)
    .bind(s.admin.as_uuid())
    .bind(s.created_at)
    .bind(s.expires_at)
    .bind(s.address)
    .bind(s.user_agent)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The email of `admin` when session `sid` is theirs, not revoked and not expired at `now`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn live_session(
    db: &Db,
    sid: uuid::Uuid,
    admin: AdminId,
    now: DateTime<Utc>,
) -> Result<Option<String>, AppError> {
    let email = sqlx::query_scalar(
        "SELECT a.email FROM platform.admin_sessions s JOIN platform.admins a ON a.id = s.admin_id \
         WHERE s.id = $1 AND s.admin_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3",
    )
    .bind(sid)
    .bind(admin.as_uuid())
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    Ok(email)
}

/// Revokes session `sid` (`None` = every live session of `admin`); returns how many were
/// revoked.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revoke_sessions(
    db: &Db,
    admin: AdminId,
    sid: Option<uuid::Uuid>,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let done = sqlx::query(
        "UPDATE platform.admin_sessions SET revoked_at = $3 \
         WHERE admin_id = $1 AND ($2::uuid IS NULL OR id = $2) AND revoked_at IS NULL",
    )
    .bind(admin.as_uuid())
    .bind(sid)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// One audited administrator action.
#[derive(Debug, Clone)]
pub struct AuditRow<'a> {
    /// When.
    pub at: DateTime<Utc>,
    /// The administrator, when a named one acted.
    pub admin: Option<AdminId>,
    /// Who: the admin's email, `cli:<os user>`, `bootstrap` or `system`.
    pub actor: &'a str,
    /// What, e.g. `tenant.deleted`.
    pub action: &'a str,
    /// On what, e.g. a tenant slug.
    pub target: Option<&'a str>,
    /// Client address (`local` for the CLI).
    pub address: &'a str,
    /// Client user agent.
    pub user_agent: &'a str,
    /// Details.
    pub details: serde_json::Value,
}

/// Appends an audit row.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn audit(db: &Db, row: &AuditRow<'_>) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO platform.admin_audit (created_at, admin_id, actor, action, target, address, user_agent, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.at)
    .bind(row.admin.map(|a| a.as_uuid()))
    .bind(row.actor)
    .bind(row.action)
    .bind(row.target)
    .bind(row.address)
    .bind(row.user_agent)
    .bind(&row.details)
    .execute(&db.pool)
    .await?;
    Ok(())
}
