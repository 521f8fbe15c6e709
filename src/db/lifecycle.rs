//! The tenant lifecycle in the database: soft delete and restore (`platform.tenants`), the
//! purge after the grace period (drop the schema and the platform rows), and the erasure of a
//! user's personal data (GDPR Art. 17). The purge and the erasure run on the owner's pool: the
//! request role may neither drop a schema nor rewrite the append-only `audit_log`.

use super::context::{TenantTx, begin_for};
use super::pool::Db;
use crate::domain::{SchemaName, Tenant, TenantId, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};

/// Marks tenant `id` deleted at `now`, purged after `purge_after`; `false` when it does not
/// exist or is already deleted. The trigger announces it to every instance on commit.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn soft_delete(
    db: &Db,
    id: TenantId,
    now: DateTime<Utc>,
    purge_after: DateTime<Utc>,
) -> Result<bool, AppError> {
    let done = sqlx::query(
        "UPDATE platform.tenants SET deleted_at = $2, purge_after = $3, updated_at = $2 \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.as_uuid())
    .bind(now)
    .bind(purge_after)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Clears the deletion of tenant `id` while its grace has not ended at `now`; `false` when it
/// is not deleted or its grace is over.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn restore(db: &Db, id: TenantId, now: DateTime<Utc>) -> Result<bool, AppError> {
    let done = sqlx::query(
        "UPDATE platform.tenants SET deleted_at = NULL, purge_after = NULL, updated_at = $2 \
         WHERE id = $1 AND deleted_at IS NOT NULL AND purge_after > $2",
    )
    .bind(id.as_uuid())
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Tenants whose grace ended at `now`: (id, slug, schema).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn due_for_purge(
    db: &Db,
    now: DateTime<Utc>,
) -> Result<Vec<(TenantId, String, String)>, AppError> {
    let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
        "SELECT id, slug, schema_name FROM platform.tenants \
         WHERE purge_after IS NOT NULL AND purge_after <= $1 ORDER BY purge_after",
    )
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, slug, schema)| (TenantId::from_uuid(id), slug, schema))
        .collect())
}

/// Purges tenant `id` when its grace ended at `now` (re-checked under a row lock, so a restore
/// racing the purge wins or loses whole): drops its schema and deletes its `platform.tenants`
/// row, which cascades to every platform row pointing at it (key directory, quota counters,
/// billing, jobs). One transaction. Returns whether it was purged.
///
/// # Errors
/// 503 when no connection can be had; 500 when PostgreSQL fails.
pub async fn purge(db: &Db, id: TenantId, now: DateTime<Utc>) -> Result<bool, AppError> {
    let mut client = db
        .migrations
        .get()
        .await
        .map_err(|e| AppError::unavailable(format!("the database ({e})")))?;
    let tx = client.transaction().await.map_err(AppError::internal)?;
    let row = tx
        .query_opt(
            "SELECT schema_name FROM platform.tenants \
             WHERE id = $1 AND purge_after IS NOT NULL AND purge_after <= $2 FOR UPDATE",
            &[&id.as_uuid(), &now],
        )
        .await
        .map_err(AppError::internal)?;
    let Some(row) = row else {
        return Ok(false);
    };
    let schema: String = row.get(0);
    let schema = SchemaName::parse(&schema).map_err(AppError::internal)?;
    tx.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        schema.quoted()
    ))
    .await
    .map_err(AppError::internal)?;
    tx.execute(
        "DELETE FROM platform.tenants WHERE id = $1",
        &[&id.as_uuid()],
    )
    .await
    .map_err(AppError::internal)?;
    tx.commit().await.map_err(AppError::internal)?;
    Ok(true)
}

/// The password hash and role of user `id` of `tenant` (an owner confirming a deletion).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn password_hash(
    db: &Db,
    tenant: &Tenant,
    id: UserId,
) -> Result<Option<String>, AppError> {
    let mut tx = begin_for(db, tenant).await?;
    let hash: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(hash)
}

/// What an erasure changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    /// Audit rows whose details named the user's email or name.
    pub audit_rows: u64,
}

/// Pseudonymises user `id` of `tenant` in one transaction (owner pool): the `users` row gets
/// `email`/`name` (the pseudonym) and an unusable password hash, and every JSON string value
/// equal to the old email or full name in `audit_log.details` is replaced by the pseudonym
/// (the event, its time and its ids are kept). `None` when the user does not exist.
///
/// # Errors
/// 503 when no connection can be had; 500 when PostgreSQL fails.
pub async fn erase_user(
    db: &Db,
    tenant: &Tenant,
    id: UserId,
    pseudonym_email: &str,
    pseudonym_name: &str,
    actor: Option<UserId>,
) -> Result<Option<Erased>, AppError> {
    let mut client = db
        .migrations
        .get()
        .await
        .map_err(|e| AppError::unavailable(format!("the database ({e})")))?;
    let tx = client.transaction().await.map_err(AppError::internal)?;
    tx.execute(
        "SELECT set_config('search_path', $1, true)",
        &[&tenant.schema.search_path()],
    )
    .await
    .map_err(AppError::internal)?;
    let Some(old) = tx
        .query_opt(
            "SELECT email, full_name FROM users WHERE id = $1 FOR UPDATE",
            &[&id.as_uuid()],
        )
        .await
        .map_err(AppError::internal)?
    else {
        return Ok(None);
    };
    let (email, name): (String, String) = (old.get(0), old.get(1));
    let last_owner = tx
        .query_one(
            "SELECT u.role = 'owner' AND u.status = 'active' AND NOT EXISTS \
               (SELECT 1 FROM users o WHERE o.id <> u.id AND o.role = 'owner' AND o.status = 'active') \
             FROM users u WHERE u.id = $1",
            &[&id.as_uuid()],
        )
        .await
        .map_err(AppError::internal)?;
    if last_owner.get::<_, bool>(0) {
        return Err(AppError::conflict(
            "this user is the tenant's last active owner: transfer the ownership first",
        ));
    }
    // Erasure removes the user: the row stays (foreign keys) without personal data or
    // secrets, their sessions and the API keys they created end at once (the triggers tell
    // every instance), and the address and user agent recorded with their sessions and
    // their own audit rows are cleared.
    tx.execute(
        "UPDATE users SET email = $2, full_name = $3, password_hash = '!erased', \
           status = 'removed', totp_pending = NULL, totp_secret = NULL WHERE id = $1",
        &[&id.as_uuid(), &pseudonym_email, &pseudonym_name],
    )
    .await
    .map_err(AppError::internal)?;
    for statement in [
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'erased' \
         WHERE user_id = $1 AND revoked_at IS NULL",
        "UPDATE sessions SET ip = NULL, user_agent = NULL WHERE user_id = $1",
        "UPDATE api_keys SET status = 'revoked', revoked_at = now() \
         WHERE created_by = $1 AND status = 'active'",
        "UPDATE audit_log SET ip = NULL, user_agent = NULL WHERE actor_user_id = $1",
        "DELETE FROM recovery_codes WHERE user_id = $1",
        "DELETE FROM account_tokens WHERE user_id = $1",
    ] {
        tx.execute(statement, &[&id.as_uuid()])
            .await
            .map_err(AppError::internal)?;
    }
    tx.execute(
        "UPDATE invitations SET email = $2 WHERE email = $1",
        &[&email, &pseudonym_email],
    )
    .await
    .map_err(AppError::internal)?;
    tx.execute(
        "UPDATE platform.mail_outbox SET recipient = $2 WHERE tenant_id = $3 AND recipient = $1",
        &[&email, &pseudonym_email, &tenant.id.as_uuid()],
    )
    .await
    .map_err(AppError::internal)?;
    // Whole JSON string values only: `to_json(text)::text` is the value's JSON spelling, so the
    // replacement keeps the document valid and never edits part of another value.
    let audit_rows = tx
        .execute(
            "UPDATE audit_log SET details = \
               replace(replace(details::text, to_json($1::text)::text, to_json($3::text)::text), \
                       to_json($2::text)::text, to_json($4::text)::text)::jsonb \
             WHERE strpos(details::text, to_json($1::text)::text) > 0 \
                OR strpos(details::text, to_json($2::text)::text) > 0",
            &[&email, &name, &pseudonym_email, &pseudonym_name],
        )
        .await
        .map_err(AppError::internal)?;
    // The erasure itself is an event of the tenant's log (its actor: the owner, or none for a
    // platform admin, whose own log records it).
    tx.execute(
        "INSERT INTO audit_log (created_at, actor_user_id, action, target, details) \
         VALUES (now(), $1, 'user.erased', $2, '{}'::jsonb)",
        &[&actor.map(|a| a.as_uuid()), &id.to_string()],
    )
    .await
    .map_err(AppError::internal)?;
    tx.commit().await.map_err(AppError::internal)?;
    Ok(Some(Erased { audit_rows }))
}

/// The owner's deletion of their own tenant inside the caller's tenant transaction: marks the
/// platform row deleted and appends `tenant.deleted` to the tenant's audit log, together.
///
/// # Errors
/// 409 when the tenant is already deleted; 500 when PostgreSQL fails.
pub async fn soft_delete_in(
    tx: &mut TenantTx,
    id: TenantId,
    actor: UserId,
    now: DateTime<Utc>,
    purge_after: DateTime<Utc>,
) -> Result<(), AppError> {
    let done = sqlx::query(
        "UPDATE platform.tenants SET deleted_at = $2, purge_after = $3, updated_at = $2 \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.as_uuid())
    .bind(now)
    .bind(purge_after)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() != 1 {
        return Err(AppError::conflict("the organisation is already deleted"));
    }
    super::audit::append(
        tx,
        super::audit::AuditEvent {
            at: now,
            actor: Some(actor),
            action: "tenant.deleted",
            target: &id.to_string(),
            details: serde_json::json!({"purge_after": purge_after}),
        },
    )
    .await
}
