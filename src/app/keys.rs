//! API keys of a tenant: list, create (the secret is returned once), revoke (effective on the
//! next request).

use super::key_cache::KeyCache;
use crate::clock::SharedClock;
use crate::db::api_keys::{self, KeyRecord, NewKey};
use crate::db::audit::AuditEvent;
use crate::db::{Db, TenantContext};
use crate::domain::{ApiKeyId, ApiKeySecret, GeneratedKey, KeyName, Tenant, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A newly created key with its secret: shown to the caller once, never stored.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// Id.
    pub id: ApiKeyId,
    /// Name.
    pub name: KeyName,
    /// The secret, its hash and display prefix.
    pub key: GeneratedKey,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry (the trial's end while on trial).
    pub expires_at: Option<DateTime<Utc>>,
}

impl CreatedKey {
    /// Generates a key named `name` at `now`, expiring at `expires_at` (see [`key_expiry`]).
    pub fn generate(name: KeyName, now: DateTime<Utc>, expires_at: Option<DateTime<Utc>>) -> Self {
        Self {
            id: ApiKeyId::new(),
            name,
            key: ApiKeySecret::generate(),
            created_at: now,
            expires_at,
        }
    }

    /// The row to insert.
    pub fn new_key(&self, created_by: UserId) -> NewKey<'_> {
        NewKey {
            id: self.id,
            name: &self.name,
            prefix: &self.key.prefix,
            hash: &self.key.hash,
            created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// When a tenant's new keys expire: with the trial while on a trial tier, else never.
pub fn key_expiry(tenant: &Tenant) -> Option<DateTime<Utc>> {
    tenant
        .tier
        .trial_days
        .is_some()
        .then_some(tenant.trial_ends_at)
        .flatten()
}

/// API-key management.
pub struct KeyService {
    db: Db,
    cache: Arc<KeyCache>,
    clock: SharedClock,
}

impl KeyService {
    /// The service; `cache` is the instance's key cache (a revoked key is forgotten at once).
    pub fn new(db: Db, cache: Arc<KeyCache>, clock: SharedClock) -> Self {
        Self { db, cache, clock }
    }

    /// Every key of the tenant (owner or admin only).
    ///
    /// # Errors
    /// 403 for other callers; 500/503 when PostgreSQL fails.
    pub async fn list(&self, ctx: &TenantContext) -> Result<Vec<KeyRecord>, AppError> {
        ctx.require_manager()?;
        let mut tx = ctx.begin(&self.db).await?;
        let keys = api_keys::list(&mut tx).await?;
        tx.commit().await?;
        Ok(keys)
    }

    /// Creates a key (owner or admin only); the tier caps the active keys.
    ///
    /// # Errors
    /// 403 for other callers or when the tier's key cap is reached.
    pub async fn create(&self, ctx: &TenantContext, name: KeyName) -> Result<CreatedKey, AppError> {
        let actor = ctx.require_manager()?;
        let now = self.clock.now();
        let tenant = ctx.tenant();
        let mut tx = ctx.begin(&self.db).await?;
        let active = api_keys::lock_and_count_active(&mut tx, tenant.id, now).await?;
        if let Some(max) = tenant.tier.max_api_keys
            && active >= u64::from(max)
        {
            return Err(AppError::limit(
                403,
                "api_keys",
                format!(
                    "tier {} allows {max} active API keys and you have {active}; revoke one or upgrade",
                    tenant.tier.name
                ),
                None,
                Vec::new(),
            ));
        }
        let created = CreatedKey::generate(name, now, key_expiry(tenant));
        api_keys::insert(&mut tx, tenant.id, &created.new_key(actor)).await?;
        super::audit::record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "api_key.created",
                target: &created.id.to_string(),
                details: serde_json::json!({"name": created.name.as_str()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Revokes a key (owner or admin only); revoking twice is harmless.
    ///
    /// # Errors
    /// 403 for other callers; 404 when the tenant has no such key.
    pub async fn revoke(&self, ctx: &TenantContext, id: ApiKeyId) -> Result<KeyRecord, AppError> {
        let actor = ctx.require_manager()?;
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let key = api_keys::revoke(&mut tx, id, now)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no API key {id} in this tenant")))?;
        super::audit::record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "api_key.revoked",
                target: &id.to_string(),
                details: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        // Other instances hear of it through the api_keys trigger; this one forgets it now.
        self.cache.forget_id(id);
        Ok(key)
    }
}

impl KeyService {
    /// [`KeyService::create`] with an expiry chosen by the caller (`None` = the tier's default,
    /// see [`key_expiry`]); on a trial the key never outlives the trial.
    ///
    /// # Errors
    /// 422 (`expires_at`) when the expiry is not in the future; otherwise as
    /// [`KeyService::create`].
    pub async fn create_expiring(
        &self,
        ctx: &TenantContext,
        name: KeyName,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedKey, AppError> {
        let actor = ctx.require_manager()?;
        let now = self.clock.now();
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(AppError::validation(
                "expires_at",
                format!("the expiry must be in the future, got {}", at.to_rfc3339()),
            ));
        }
        let tenant = ctx.tenant();
        let expiry = match (expires_at, key_expiry(tenant)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut tx = ctx.begin(&self.db).await?;
        let active = api_keys::lock_and_count_active(&mut tx, tenant.id, now).await?;
        if let Some(max) = tenant.tier.max_api_keys
            && active >= u64::from(max)
        {
            return Err(AppError::limit(
                403,
                "api_keys",
                format!(
                    "tier {} allows {max} active API keys and you have {active}; revoke one or upgrade",
                    tenant.tier.name
                ),
                None,
                Vec::new(),
            ));
        }
        let created = CreatedKey::generate(name, now, expiry);
        api_keys::insert(&mut tx, tenant.id, &created.new_key(actor)).await?;
        super::audit::record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "api_key.created",
                target: &created.id.to_string(),
                details: serde_json::json!({"name": created.name.as_str()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Every key of the tenant with the full name of the user who created it (owner or admin
    /// only).
    ///
    /// # Errors
    /// As [`KeyService::list`].
    pub async fn list_with_creators(
        &self,
        ctx: &TenantContext,
    ) -> Result<Vec<(KeyRecord, Option<String>)>, AppError> {
        ctx.require_manager()?;
        let mut tx = ctx.begin(&self.db).await?;
        let keys = api_keys::list_with_creators(&mut tx).await?;
        tx.commit().await?;
        Ok(keys)
    }
}
