//! `platform.mail_outbox`: the transactional outbox of email. A message is written inside the
//! transaction that creates the token it carries ([`enqueue`] in a tenant transaction,
//! [`INSERT`] in provisioning), so either both exist or neither. The sender claims due rows
//! with `FOR UPDATE SKIP LOCKED` ([`claim`]), which leases them by moving `next_attempt_at`
//! forward, delivers them outside any transaction, and records the outcome.

use super::context::TenantTx;
use super::pool::Db;
use crate::domain::TenantId;
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

/// A message to send.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The tenant it is about, if any.
    pub tenant_id: Option<TenantId>,
    /// What it is, e.g. `password_reset` (logs and tests).
    pub kind: &'static str,
    /// The recipient's address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body_text: String,
}

/// A claimed message, leased to this sender until it reports the outcome.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    /// Row id.
    pub id: Uuid,
    /// What it is.
    pub kind: String,
    /// The recipient's address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body_text: String,
    /// Attempts including this one.
    pub attempts: i32,
}

/// The insert, shared with provisioning (which runs on the migration pool's driver):
/// `$1` id, `$2` tenant, `$3` kind, `$4` recipient, `$5` subject, `$6` body, `$7` created
/// (also the first `next_attempt_at`).
pub(super) const INSERT: &str = "INSERT INTO platform.mail_outbox \
     (id, tenant_id, kind, recipient, subject, body_text, created_at, next_attempt_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";

/// Writes `mail` inside the caller's tenant transaction, due at `now`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn enqueue(
    tx: &mut TenantTx,
    mail: &NewMail,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    sqlx::query(INSERT)
        .bind(Uuid::now_v7())
        .bind(mail.tenant_id.map(|t| t.as_uuid()))
        .bind(mail.kind)
        .bind(&mail.recipient)
        .bind(&mail.subject)
        .bind(&mail.body_text)
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Claims up to `limit` due messages (oldest due first), skipping rows another sender holds,
/// and leases them until `now + lease`: their attempt count goes up and they are not due again
/// before the lease ends (a sender that dies mid-delivery leaves them to be retried then).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<ClaimedMail>, AppError> {
    let rows = sqlx::query(
        "UPDATE platform.mail_outbox o SET attempts = o.attempts + 1, next_attempt_at = $2 \
         FROM (SELECT id FROM platform.mail_outbox \
               WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
               ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) due \
         WHERE o.id = due.id \
         RETURNING o.id, o.kind, o.recipient, o.subject, o.body_text, o.attempts",
    )
    .bind(now)
    .bind(now + lease)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ClaimedMail {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                recipient: r.try_get("recipient")?,
                subject: r.try_get("subject")?,
                body_text: r.try_get("body_text")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// What a delivered message's body is replaced with (see [`mark_sent`]).
pub const REDACTED_BODY: &str =
    "[delivered; the body, which carried a single-use link, was removed]";

/// Records a delivery. With `redact`, the body is replaced by [`REDACTED_BODY`]: the link it
/// carried must not stay readable in the database once it left (only the token's hash is kept
/// elsewhere).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn mark_sent(
    db: &Db,
    id: Uuid,
    now: DateTime<Utc>,
    redact: bool,
) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE platform.mail_outbox SET sent_at = $2, last_error = NULL, \
             body_text = CASE WHEN $3 THEN $4 ELSE body_text END \
         WHERE id = $1 AND sent_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .bind(redact)
    .bind(REDACTED_BODY)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records a failed attempt: due again at `retry_at`, or given up (`failed_at = now`) when
/// `retry_at` is `None`. `error` is kept (at most 1000 characters).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn mark_failed(
    db: &Db,
    id: Uuid,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let error: String = error.chars().take(1000).collect();
    sqlx::query(
        "UPDATE platform.mail_outbox \
         SET last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at), \
             failed_at = CASE WHEN $3::timestamptz IS NULL THEN $4 END \
         WHERE id = $1 AND sent_at IS NULL",
    )
    .bind(id)
    .bind(error)
    .bind(retry_at)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}
