//! The tenant's `audit_log` (append-only for the service's role).

use super::context::TenantTx;
use crate::domain::{ApiKeyId, Client, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// One audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// When.
    pub at: DateTime<Utc>,
    /// The acting user, if any.
    pub actor: Option<UserId>,
    /// What happened, e.g. `api_key.created`.
    pub action: &'a str,
    /// What it happened to (an id).
    pub target: &'a str,
    /// Details.
    pub details: serde_json::Value,
}

/// Appends `event` inside the caller's transaction, origin unknown (no address, user agent or
/// acting key). Request paths call `app::audit::record` instead, which fills them.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn append(tx: &mut TenantTx, event: AuditEvent<'_>) -> Result<(), AppError> {
    append_from(tx, event, None, &Client::default()).await
}

/// Appends `event` inside the caller's transaction with its origin: the acting API key (if
/// any) and the client's address and user agent.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn append_from(
    tx: &mut TenantTx,
    event: AuditEvent<'_>,
    actor_key: Option<ApiKeyId>,
    client: &Client,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO audit_log (created_at, actor_user_id, action, target, details, \
                                actor_api_key_id, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.at)
    .bind(event.actor.map(|a| a.as_uuid()))
    .bind(event.action)
    .bind(event.target)
    .bind(event.details)
    .bind(actor_key.map(|k| k.as_uuid()))
    .bind(client.ip())
    .bind(client.user_agent())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The insert, shared with provisioning (which runs on the migration pool's driver).
pub(super) const INSERT: &str = "INSERT INTO audit_log (created_at, actor_user_id, action, target, details) \
                                 VALUES ($1, $2, $3, $4, $5)";

/// A stored audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Id (increasing).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Acting user.
    pub actor: Option<UserId>,
    /// Acting API key.
    pub actor_key: Option<ApiKeyId>,
    /// Action.
    pub action: String,
    /// Target.
    pub target: Option<String>,
    /// Details (a JSON object).
    pub details: serde_json::Value,
    /// Client address.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
}

/// Which audit rows to read: newest first, ids below `before`, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action.
    pub action: Option<String>,
    /// Acting user.
    pub actor: Option<UserId>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only ids below this (the cursor).
    pub before: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// Audit rows matching `filter`, newest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn list(tx: &mut TenantTx, filter: &AuditFilter) -> Result<Vec<AuditRow>, AppError> {
    let rows = sqlx::query(
        "SELECT id, created_at, actor_user_id, actor_api_key_id, action, target, details, ip, \
                user_agent FROM audit_log \
         WHERE ($1::text IS NULL OR action = $1) AND ($2::uuid IS NULL OR actor_user_id = $2) \
           AND ($3::timestamptz IS NULL OR created_at >= $3) \
           AND ($4::timestamptz IS NULL OR created_at < $4) \
           AND ($5::bigint IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6",
    )
    .bind(&filter.action)
    .bind(filter.actor.map(|a| a.as_uuid()))
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.before)
    .bind(filter.limit)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRow {
                id: r.try_get("id")?,
                at: r.try_get("created_at")?,
                actor: r
                    .try_get::<Option<uuid::Uuid>, _>("actor_user_id")?
                    .map(UserId::from_uuid),
                actor_key: r
                    .try_get::<Option<uuid::Uuid>, _>("actor_api_key_id")?
                    .map(ApiKeyId::from_uuid),
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                details: r.try_get("details")?,
                ip: r.try_get("ip")?,
                user_agent: r.try_get("user_agent")?,
            })
        })
        .collect()
}
