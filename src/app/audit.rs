//! The audit log: the one way code records a security event ([`record`] for a request with a
//! context, [`record_from`] before authentication), and its reading by owners and admins.
//!
//! Both fill the row's origin: the acting user and API key from the context, the client's
//! address and user agent from the request (`TenantContext::client`).

use crate::db::audit::{self, AuditEvent, AuditFilter, AuditRow};
use crate::db::{Db, TenantContext, TenantTx};
use crate::domain::{Client, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};

/// Largest page of `GET /audit`.
pub const MAX_PAGE: u32 = 200;

/// Records `event` in the caller's transaction with the request's origin: the acting user
/// (the event's `actor`, else the context's user), the acting API key, address and user agent.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn record(
    tx: &mut TenantTx,
    ctx: &TenantContext,
    mut event: AuditEvent<'_>,
) -> Result<(), AppError> {
    if event.actor.is_none() {
        event.actor = ctx.user().map(|(id, _)| id);
    }
    audit::append_from(tx, event, ctx.api_key(), ctx.client()).await
}

/// Records `event` for a step before authentication (sign-in, refresh, a reset link) with the
/// client's address and user agent.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn record_from(
    tx: &mut TenantTx,
    client: &Client,
    event: AuditEvent<'_>,
) -> Result<(), AppError> {
    audit::append_from(tx, event, None, client).await
}

/// A query of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Exact action (`auth.login_failed`, `user.role_changed`, …).
    pub action: Option<String>,
    /// Acting user.
    pub actor: Option<UserId>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`].
    pub limit: u32,
}

/// A page of audit rows, newest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The rows.
    pub items: Vec<AuditRow>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Reading the audit log.
pub struct AuditService {
    db: Db,
}

impl AuditService {
    /// The service.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// A page of the tenant's audit log (owner or admin only), newest first.
    ///
    /// # Errors
    /// 403 for other callers; 422 for a malformed cursor, a page size out of range or a time
    /// range that ends before it starts.
    pub async fn list(&self, ctx: &TenantContext, q: AuditQuery) -> Result<AuditPage, AppError> {
        ctx.require_manager()?;
        if q.limit == 0 || q.limit > MAX_PAGE {
            return Err(AppError::validation(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        if let (Some(s), Some(u)) = (q.since, q.until)
            && u < s
        {
            return Err(AppError::validation("until", "until is before since"));
        }
        let before = q
            .cursor
            .as_deref()
            .map(|c| {
                c.strip_prefix("aud_")
                    .and_then(|n| n.parse::<i64>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        AppError::validation(
                            "cursor",
                            "cursor is not one this API returned (use next_cursor of the previous page)",
                        )
                    })
            })
            .transpose()?;
        let filter = AuditFilter {
            action: q.action,
            actor: q.actor,
            since: q.since,
            until: q.until,
            before,
            limit: i64::from(q.limit) + 1,
        };
        let mut tx = ctx.begin(&self.db).await?;
        let mut items = audit::list(&mut tx, &filter).await?;
        tx.commit().await?;
        let more = items.len() > q.limit as usize;
        items.truncate(q.limit as usize);
        let next_cursor = more
            .then(|| items.last().map(|r| format!("aud_{}", r.id)))
            .flatten();
        Ok(AuditPage { items, next_cursor })
    }
}
