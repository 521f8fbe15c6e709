//! Tenant provisioning in ONE PostgreSQL transaction on a migration-pool connection (the owner
//! role): platform row, `CREATE SCHEMA`, the tenant migrations, the application role's grants,
//! the owner, the initial API keys and the audit row. PostgreSQL DDL (and `GRANT`) is
//! transactional, so a failure at any step leaves nothing behind, and a new tenant is usable by
//! the request pool the moment it commits.

use super::api_keys::{INSERT_DIRECTORY_ROW, INSERT_TENANT_ROW, NewKey};
use super::migrate::{grant_tenant_in, migrate_tenant_in};
use super::pool::{Db, pg_code};
use super::users::UserRecord;
use crate::domain::{DisplayName, TenantId, TenantSlug};
use crate::error::AppError;
use chrono::{DateTime, Utc};

/// Everything a new tenant starts with.
pub struct NewTenantRecord<'a> {
    /// Id.
    pub id: TenantId,
    /// Slug (the schema is derived from it).
    pub slug: &'a TenantSlug,
    /// Organisation name.
    pub display_name: &'a DisplayName,
    /// Tier name.
    pub tier: &'a str,
    /// Trial end.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// The owner.
    pub owner: &'a UserRecord,
    /// The owner's argon2id PHC hash.
    pub owner_password_hash: &'a str,
    /// Initial API keys.
    pub keys: &'a [NewKey<'a>],
    /// The audit row's details.
    pub audit_details: serde_json::Value,
    /// The owner's email-verification token (its hash and expiry) and the message that
    /// carries it, written in the same transaction.
    pub verification: Option<OwnerVerification<'a>>,
    /// Test fault injection: fail just before commit.
    pub fail_before_commit: bool,
}

/// The owner's verification token and its message.
pub struct OwnerVerification<'a> {
    /// SHA-256 of the token.
    pub token_hash: &'a [u8; 32],
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
    /// The message (its `tenant_id` is set to the new tenant's).
    pub mail: &'a super::outbox::NewMail,
}

/// Creates the tenant atomically.
///
/// # Errors
/// 409 when the slug (or its schema) is taken; 503 when no connection can be had; 500 on other
/// database failures.
pub async fn provision(db: &Db, t: NewTenantRecord<'_>) -> Result<(), AppError> {
    let schema = t.slug.schema_name();
    let now = t.owner.created_at;
    let mut client = db
        .migrations
        .get()
        .await
        .map_err(|e| AppError::unavailable(format!("the database ({e})")))?;
    let tx = client.transaction().await.map_err(AppError::internal)?;

    let inserted = tx
        .execute(
            "INSERT INTO platform.tenants (id, slug, display_name, schema_name, tier, status, trial_ends_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7)",
            &[&t.id.as_uuid(), &t.slug.as_str(), &t.display_name.as_str(), &schema.as_str(), &t.tier, &t.trial_ends_at, &now],
        )
        .await;
    if let Err(err) = inserted {
        return Err(match pg_code(&err) {
            Some("23505") => {
                AppError::conflict(format!("the slug {:?} is already taken", t.slug.as_str()))
            }
            _ => AppError::internal(err),
        });
    }
    if let Err(err) = tx
        .batch_execute(&format!("CREATE SCHEMA {}", schema.quoted()))
        .await
    {
        return Err(match pg_code(&err) {
            Some("42P06") => {
                AppError::conflict(format!("the slug {:?} is unavailable", t.slug.as_str()))
            }
            _ => AppError::internal(err),
        });
    }
    migrate_tenant_in(&tx, &schema)
        .await
        .map_err(AppError::internal)?;
    if let Some(role) = &db.app_role {
        grant_tenant_in(&tx, &schema, role)
            .await
            .map_err(AppError::internal)?;
    }

    let o = t.owner;
    tx.execute(
        super::users::INSERT,
        &[
            &o.id.as_uuid(),
            &o.email,
            &o.full_name,
            &t.owner_password_hash,
            &o.role.as_str(),
            &now,
        ],
    )
    .await
    .map_err(AppError::internal)?;
    for k in t.keys {
        let hash = k.hash.as_slice();
        tx.execute(
            INSERT_TENANT_ROW,
            &[
                &k.id.as_uuid(),
                &k.name.as_str(),
                &k.prefix,
                &hash,
                &k.created_by.as_uuid(),
                &k.created_at,
                &k.expires_at,
            ],
        )
        .await
        .map_err(AppError::internal)?;
        tx.execute(
            INSERT_DIRECTORY_ROW,
            &[&hash, &k.id.as_uuid(), &t.id.as_uuid()],
        )
        .await
        .map_err(AppError::internal)?;
    }
    let target = t.id.to_string();
    tx.execute(
        super::audit::INSERT,
        &[
            &now,
            &Some(o.id.as_uuid()),
            &"tenant.created",
            &target,
            &t.audit_details,
        ],
    )
    .await
    .map_err(AppError::internal)?;

    if let Some(v) = &t.verification {
        let hash = v.token_hash.as_slice();
        tx.execute(
            super::account_tokens::INSERT,
            &[
                &hash,
                &super::account_tokens::Purpose::EmailVerification.as_str(),
                &o.id.as_uuid(),
                &o.email,
                &now,
                &v.expires_at,
            ],
        )
        .await
        .map_err(AppError::internal)?;
        tx.execute(
            super::outbox::INSERT,
            &[
                &uuid::Uuid::now_v7(),
                &Some(t.id.as_uuid()),
                &v.mail.kind,
                &v.mail.recipient,
                &v.mail.subject,
                &v.mail.body_text,
                &now,
            ],
        )
        .await
        .map_err(AppError::internal)?;
    }

    if t.fail_before_commit {
        // Dropping `tx` rolls everything back.
        return Err(AppError::internal("fail point: provisioning_before_commit"));
    }
    tx.commit().await.map_err(AppError::internal)?;
    Ok(())
}
