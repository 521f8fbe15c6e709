//! The tenant's `sessions` (one per refresh-token family) and `refresh_tokens` (the SHA-256
//! of every token a family was given; all but the newest are rotated).

use super::context::{TenantTx, begin_for};
use super::pool::Db;
use super::users::{UserState, state};
use crate::domain::{Client, SessionId, Tenant, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// `NOTIFY` channel of a revoked session (payload: the session's uuid).
pub const SESSION_REVOKED_CHANNEL: &str = "session_revoked";

/// `NOTIFY` channel of a changed user (payload: the user's uuid, or `*` for every user of a
/// tenant whose team settings changed).
pub const USER_CHANGED_CHANNEL: &str = "user_changed";

/// A session as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Id (the access token's `sid`).
    pub id: SessionId,
    /// Its user.
    pub user: UserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last sign-in or refresh.
    pub last_used_at: DateTime<Utc>,
    /// When its refresh token stops working unless used.
    pub expires_at: DateTime<Utc>,
    /// Client address at the last use.
    pub ip: Option<String>,
    /// User agent at the last use.
    pub user_agent: Option<String>,
}

fn record(row: &sqlx::postgres::PgRow) -> Result<SessionRecord, AppError> {
    Ok(SessionRecord {
        id: SessionId::from_uuid(row.try_get("id")?),
        user: UserId::from_uuid(row.try_get("user_id")?),
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

const COLUMNS: &str = "id, user_id, created_at, last_used_at, expires_at, ip, user_agent";

/// Inserts a session and its first refresh token.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn insert(
    tx: &mut TenantTx,
    session: &SessionRecord,
    token_hash: &[u8; 32],
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $3, $4, $5, $6)",
    )
    .bind(session.id.as_uuid())
    .bind(session.user.as_uuid())
    .bind(session.created_at)
    .bind(session.expires_at)
    .bind(&session.ip)
    .bind(&session.user_agent)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash.as_slice())
    .bind(session.id.as_uuid())
    .bind(session.created_at)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A presented refresh token as stored, with its session (locked until the transaction ends).
#[derive(Debug, Clone, Copy)]
pub struct PresentedToken {
    /// Its session.
    pub session: SessionId,
    /// The session's user.
    pub user: UserId,
    /// The token was already rotated (a reuse).
    pub rotated: bool,
    /// The session was revoked.
    pub revoked: bool,
    /// The session's expiry.
    pub expires_at: DateTime<Utc>,
}

/// The refresh token with this hash and its session, which is locked (concurrent refreshes of
/// one family run one after the other).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn presented(
    tx: &mut TenantTx,
    hash: &[u8; 32],
) -> Result<Option<PresentedToken>, AppError> {
    let row = sqlx::query(
        "SELECT s.id, s.user_id, r.rotated_at IS NOT NULL AS rotated, \
                s.revoked_at IS NOT NULL AS revoked, s.expires_at \
         FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
         WHERE r.token_hash = $1 FOR UPDATE OF s",
    )
    .bind(hash.as_slice())
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| {
        Ok(PresentedToken {
            session: SessionId::from_uuid(r.try_get("id")?),
            user: UserId::from_uuid(r.try_get("user_id")?),
            rotated: r.try_get("rotated")?,
            revoked: r.try_get("revoked")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Rotates: the old token is marked used, the new one issued, the session's lifetime slides
/// to `expires_at` and its last use is recorded. Rotated tokens older than `forget_before`
/// are deleted (a family keeps a bounded history).
///
/// # Errors
/// When PostgreSQL fails.
#[allow(clippy::too_many_arguments)]
pub async fn rotate(
    tx: &mut TenantTx,
    session: SessionId,
    old_hash: &[u8; 32],
    new_hash: &[u8; 32],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    client: &Client,
    forget_before: DateTime<Utc>,
) -> Result<(), AppError> {
    sqlx::query("UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1")
        .bind(old_hash.as_slice())
        .bind(now)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)",
    )
    .bind(new_hash.as_slice())
    .bind(session.as_uuid())
    .bind(now)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "UPDATE sessions SET last_used_at = $2, expires_at = $3, \
         ip = COALESCE($4, ip), user_agent = COALESCE($5, user_agent) WHERE id = $1",
    )
    .bind(session.as_uuid())
    .bind(now)
    .bind(expires_at)
    .bind(client.ip())
    .bind(client.user_agent())
    .execute(tx.conn())
    .await?;
    sqlx::query("DELETE FROM refresh_tokens WHERE session_id = $1 AND rotated_at < $2")
        .bind(session.as_uuid())
        .bind(forget_before)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Revokes session `id` if it belongs to `user` (any user when `None`) and is not revoked
/// yet. `None` when there is no such session of that user; `Some(false)` when it was already
/// revoked.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revoke(
    tx: &mut TenantTx,
    id: SessionId,
    user: Option<UserId>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<bool>, AppError> {
    let row: Option<(bool,)> = sqlx::query_as(
        "WITH target AS (SELECT id, revoked_at IS NULL AS live FROM sessions \
                          WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) FOR UPDATE), \
              done AS (UPDATE sessions s SET revoked_at = $3, revoked_reason = $4 \
                       FROM target WHERE s.id = target.id AND target.live RETURNING s.id) \
         SELECT target.live FROM target",
    )
    .bind(id.as_uuid())
    .bind(user.map(|u| u.as_uuid()))
    .bind(now)
    .bind(reason)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|(live,)| live))
}

/// Revokes every live session of `user`; returns their ids.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revoke_all_of_user(
    tx: &mut TenantTx,
    user: UserId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<SessionId>, AppError> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
         WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(user.as_uuid())
    .bind(now)
    .bind(reason)
    .fetch_all(tx.conn())
    .await?;
    Ok(ids.into_iter().map(SessionId::from_uuid).collect())
}

/// The live (not revoked, not expired at `now`) sessions of `user`, most recently used first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list_live(
    tx: &mut TenantTx,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<Vec<SessionRecord>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
         AND expires_at > $2 ORDER BY last_used_at DESC, id DESC LIMIT 1000"
    )))
    .bind(user.as_uuid())
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(record).collect()
}

/// What an access token's session and user are now, read before any context exists: `None`
/// when `tenant` has no session `id` of user `user`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn auth_state(
    db: &Db,
    tenant: &Tenant,
    id: SessionId,
    user: UserId,
) -> Result<Option<(bool, UserState)>, AppError> {
    let mut tx = begin_for(db, tenant).await?;
    let revoked: Option<bool> = sqlx::query_scalar(
        "SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $1 AND user_id = $2",
    )
    .bind(id.as_uuid())
    .bind(user.as_uuid())
    .fetch_optional(tx.conn())
    .await?;
    let Some(revoked) = revoked else {
        tx.commit().await?;
        return Ok(None);
    };
    let user_state = state(&mut tx, user).await?;
    tx.commit().await?;
    Ok(user_state.map(|s| (revoked, s)))
}

/// The state of user `user` read before any context exists.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn user_state(
    db: &Db,
    tenant: &Tenant,
    user: UserId,
) -> Result<Option<UserState>, AppError> {
    let mut tx = begin_for(db, tenant).await?;
    let s = state(&mut tx, user).await?;
    tx.commit().await?;
    Ok(s)
}

/// Each user's latest sign-in (the newest session's start, ended sessions included).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn last_sign_ins(tx: &mut TenantTx) -> Result<Vec<(UserId, DateTime<Utc>)>, AppError> {
    let rows =
        sqlx::query("SELECT user_id, max(created_at) AS last FROM sessions GROUP BY user_id")
            .fetch_all(tx.conn())
            .await?;
    rows.iter()
        .map(|r| Ok((UserId::from_uuid(r.try_get("user_id")?), r.try_get("last")?)))
        .collect()
}
