//! Tenant provisioning: platform row, schema, tenant migrations, owner user and two API keys,
//! all in ONE PostgreSQL transaction on a migration-pool connection. PostgreSQL DDL is
//! transactional, so a failure at any step leaves nothing behind: no schema, no tenant row.

use crate::db;
use crate::domain::{ApiKeyId, ApiKeySecret, Email, GeneratedKey, TenantId, TenantSlug, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};

/// What signup asks for, validated.
pub struct NewTenant {
    /// Slug (subdomain).
    pub slug: TenantSlug,
    /// Organisation name.
    pub display_name: String,
    /// Owner's full name.
    pub owner_name: String,
    /// Owner's email.
    pub owner_email: Email,
    /// Owner's argon2id PHC hash.
    pub owner_password_hash: String,
}

/// A created API key, with its secret (shown once).
pub struct CreatedKey {
    /// Id.
    pub id: ApiKeyId,
    /// Name.
    pub name: String,
    /// Secret, hash and prefix.
    pub key: GeneratedKey,
    /// Expiry (30 days while on trial).
    pub expires_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The provisioned tenant.
pub struct Provisioned {
    /// Tenant id.
    pub tenant_id: TenantId,
    /// Owner's user id.
    pub owner_id: UserId,
    /// The two initial keys.
    pub keys: Vec<CreatedKey>,
    /// End of the trial.
    pub trial_ends_at: DateTime<Utc>,
}

/// Trial length for new tenants.
pub const TRIAL_DAYS: i64 = 30;

fn pg_code(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error().map(|e| e.code().code())
}

/// Provisions a tenant atomically.
///
/// # Errors
/// 409 when the slug (or its schema) is taken; 500/503 on database failure.
pub async fn provision(state: &AppState, new: NewTenant) -> Result<Provisioned, ApiError> {
    let now = state.clock.now();
    let tenant_id = TenantId::new();
    let owner_id = UserId::new();
    let schema = new.slug.schema_name();
    let trial_days = state
        .tenants
        .tier("trial")
        .and_then(|t| t.trial_days)
        .map_or(TRIAL_DAYS, i64::from);
    let trial_ends_at = now + Duration::days(trial_days);

    let mut client = state
        .migrations
        .get()
        .await
        .map_err(|e| ApiError::Unavailable(format!("the database ({e})")))?;
    let tx = client.transaction().await.map_err(ApiError::internal)?;

    let inserted = tx
        .execute(
            "INSERT INTO platform.tenants (id, slug, display_name, schema_name, tier, status, trial_ends_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'trial', 'active', $5, $6, $6)",
            &[&tenant_id.as_uuid(), &new.slug.as_str(), &new.display_name, &schema.as_str(), &trial_ends_at, &now],
        )
        .await;
    if let Err(err) = inserted {
        return Err(match pg_code(&err) {
            Some("23505") => {
                ApiError::conflict(format!("the slug {:?} is already taken", new.slug.as_str()))
            }
            _ => ApiError::internal(err),
        });
    }
    if let Err(err) = tx
        .batch_execute(&format!("CREATE SCHEMA {}", schema.quoted()))
        .await
    {
        return Err(match pg_code(&err) {
            Some("42P06") => {
                ApiError::conflict(format!("the slug {:?} is unavailable", new.slug.as_str()))
            }
            _ => ApiError::internal(err),
        });
    }
    db::migrate_tenant_in(&tx, &schema)
        .await
        .map_err(ApiError::internal)?;

    tx.execute(
        "INSERT INTO users (id, email, full_name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, 'owner', $5)",
        &[&owner_id.as_uuid(), &new.owner_email.as_str(), &new.owner_name, &new.owner_password_hash, &now],
    )
    .await
    .map_err(ApiError::internal)?;

    let mut keys = Vec::with_capacity(2);
    for name in ["default", "secondary"] {
        let key = ApiKeySecret::generate();
        let id = ApiKeyId::new();
        insert_key(
            &tx,
            tenant_id,
            id,
            name,
            &key,
            owner_id,
            now,
            Some(trial_ends_at),
        )
        .await?;
        keys.push(CreatedKey {
            id,
            name: name.to_string(),
            key,
            expires_at: Some(trial_ends_at),
            created_at: now,
        });
    }
    tx.execute(
        "INSERT INTO audit_log (created_at, actor_user_id, action, target, details) VALUES ($1, $2, 'tenant.created', $3, $4)",
        &[&now, &owner_id.as_uuid(), &tenant_id.to_string(), &serde_json::json!({"slug": new.slug.as_str(), "tier": "trial"})],
    )
    .await
    .map_err(ApiError::internal)?;

    if state.settings.fail_points.provisioning_before_commit {
        // Dropping `tx` rolls everything back.
        return Err(ApiError::internal("fail point: provisioning_before_commit"));
    }
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(Provisioned {
        tenant_id,
        owner_id,
        keys,
        trial_ends_at,
    })
}

/// Inserts a key into the tenant schema (search_path already set) and the platform directory.
#[allow(clippy::too_many_arguments)]
async fn insert_key(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: TenantId,
    id: ApiKeyId,
    name: &str,
    key: &GeneratedKey,
    created_by: UserId,
    now: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), ApiError> {
    let hash = key.hash.to_vec();
    tx.execute(
        "INSERT INTO api_keys (id, name, prefix, key_hash, status, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)",
        &[&id.as_uuid(), &name, &key.prefix, &hash, &created_by.as_uuid(), &now, &expires_at],
    )
    .await
    .map_err(ApiError::internal)?;
    tx.execute(
        "INSERT INTO platform.api_key_directory (key_hash, key_id, tenant_id) VALUES ($1, $2, $3)",
        &[&hash, &id.as_uuid(), &tenant.as_uuid()],
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(())
}
