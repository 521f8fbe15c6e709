//! The tenant's `audit_log`.

use super::context::TenantTx;
use crate::domain::UserId;
use crate::error::AppError;
use chrono::{DateTime, Utc};

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

/// Appends `event` inside the caller's transaction.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn append(tx: &mut TenantTx, event: AuditEvent<'_>) -> Result<(), AppError> {
    sqlx::query(INSERT)
        .bind(event.at)
        .bind(event.actor.map(|a| a.as_uuid()))
        .bind(event.action)
        .bind(event.target)
        .bind(event.details)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The insert, shared with provisioning (which runs on the migration pool's driver).
pub(super) const INSERT: &str = "INSERT INTO audit_log (created_at, actor_user_id, action, target, details) \
                                 VALUES ($1, $2, $3, $4, $5)";
