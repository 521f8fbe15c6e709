//! The tenant lifecycle and GDPR erasure.
//!
//! Deletion is a soft delete with a grace period (`TENANT_DELETE_GRACE_DAYS`): at once the
//! tenant disappears from the directory's live lookups, so every API key, access token and
//! sign-in of it is refused like an unknown one on every instance (the `tenant_changed`
//! trigger), while its row keeps the slug taken. Until the grace ends a platform admin can
//! restore it; then the purge (a background task, or `tenants purge`) drops its schema and
//! deletes its platform row, which cascades to every platform row pointing at it.
//!
//! Erasure (Art. 17) pseudonymises a user: the `users` row gets a stable pseudonym for email and
//! name and can no longer sign in; the tenant's audit rows that named them keep the event with
//! the pseudonym.

use super::admins::{AdminContext, AdminService};
use super::directory::TenantDirectory;
use super::passwords::verify_password;
use crate::clock::SharedClock;
use crate::db::{Db, TenantContext, lifecycle};
use crate::domain::{Principal, Role, Tenant, TenantSlug, UserId};
use crate::error::AppError;
use chrono::Duration;
use std::sync::Arc;

/// Default grace period of a deleted tenant, days.
pub const DEFAULT_GRACE_DAYS: u32 = 30;

/// Tenant deletion, restoration, purge and user erasure.
pub struct LifecycleService {
    db: Db,
    directory: Arc<TenantDirectory>,
    admins: Arc<AdminService>,
    clock: SharedClock,
    grace: Duration,
}

/// The stable pseudonym of a user: derived from the tenant and the user id only, so erasing
/// twice gives the same value and nothing of the old email or name survives in it.
pub fn pseudonym(tenant: &Tenant, user: UserId) -> (String, String) {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}:{}", tenant.id, user).as_bytes());
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    (
        format!("erased-{tag}@erased.invalid"),
        format!("Erased user {tag}"),
    )
}

impl LifecycleService {
    /// The service; `grace` is how long a deleted tenant stays restorable.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        admins: Arc<AdminService>,
        clock: SharedClock,
        grace: Duration,
    ) -> Self {
        Self {
            db,
            directory,
            admins,
            clock,
            grace,
        }
    }

    fn not_found(slug: &TenantSlug) -> AppError {
        AppError::not_found(format!("no tenant named {:?}", slug.as_str()))
    }

    /// A tenant by slug for a platform admin: deleted ones included.
    ///
    /// # Errors
    /// 404 for an unknown tenant.
    pub async fn find(&self, slug: &TenantSlug) -> Result<Arc<Tenant>, AppError> {
        self.directory
            .by_slug_including_deleted(slug)
            .await?
            .ok_or_else(|| Self::not_found(slug))
    }

    async fn fresh(&self, tenant: &Tenant) -> Result<Arc<Tenant>, AppError> {
        self.directory
            .refresh(tenant.id)
            .await?
            .ok_or_else(|| Self::not_found(&tenant.slug))
    }

    /// A platform admin deletes `slug` (soft, restorable for the grace period).
    ///
    /// # Errors
    /// 404 for an unknown tenant; 409 when it is already deleted.
    pub async fn delete(
        &self,
        ctx: &AdminContext,
        slug: &TenantSlug,
    ) -> Result<Arc<Tenant>, AppError> {
        let tenant = self.find(slug).await?;
        let now = self.clock.now();
        let purge_after = now + self.grace;
        if !lifecycle::soft_delete(&self.db, tenant.id, now, purge_after).await? {
            return Err(AppError::conflict(format!(
                "tenant {:?} is already deleted; restore it or wait for its purge",
                slug.as_str()
            )));
        }
        self.admins
            .audit(
                ctx,
                "tenant.deleted",
                Some(slug.as_str()),
                serde_json::json!({"tenant_id": tenant.id.to_string(), "purge_after": purge_after}),
            )
            .await?;
        tracing::info!(tenant = %slug, actor = ctx.actor(), %purge_after, "tenant deleted");
        self.fresh(&tenant).await
    }

    /// The owner deletes their own tenant, confirming with their password. Recorded in the
    /// tenant's audit log in the same transaction as the deletion.
    ///
    /// # Errors
    /// 403 for a caller who is not the owner (or uses an API key) and for a wrong password.
    pub async fn delete_own(
        &self,
        ctx: &TenantContext,
        password: String,
    ) -> Result<Arc<Tenant>, AppError> {
        let owner = require_owner(ctx, "delete the organisation")?;
        let tenant = ctx.tenant().clone();
        let hash = lifecycle::password_hash(&self.db, &tenant, owner).await?;
        if !verify_password(password, hash).await? {
            return Err(AppError::forbidden(
                "password confirmation failed: send your current password to delete the organisation",
            ));
        }
        let now = self.clock.now();
        let purge_after = now + self.grace;
        let mut tx = ctx.begin(&self.db).await?;
        lifecycle::soft_delete_in(&mut tx, tenant.id, owner, now, purge_after).await?;
        tx.commit().await?;
        tracing::info!(tenant = %tenant.slug, %purge_after, "tenant deleted by its owner");
        self.fresh(&tenant).await
    }

    /// A platform admin restores a deleted tenant before its purge.
    ///
    /// # Errors
    /// 404 for an unknown (or already purged) tenant; 409 when it is not deleted or its grace
    /// is over.
    pub async fn restore(
        &self,
        ctx: &AdminContext,
        slug: &TenantSlug,
    ) -> Result<Arc<Tenant>, AppError> {
        let tenant = self.find(slug).await?;
        if !lifecycle::restore(&self.db, tenant.id, self.clock.now()).await? {
            return Err(AppError::conflict(format!(
                "tenant {:?} is not deleted, or its grace period is over",
                slug.as_str()
            )));
        }
        self.admins
            .audit(
                ctx,
                "tenant.restored",
                Some(slug.as_str()),
                serde_json::json!({"tenant_id": tenant.id.to_string()}),
            )
            .await?;
        tracing::info!(tenant = %slug, actor = ctx.actor(), "tenant restored");
        self.fresh(&tenant).await
    }

    /// Purges every deleted tenant whose grace has ended (drops the schema and the platform
    /// rows); returns the slugs purged. A failure is logged and the tenant retried next time.
    ///
    /// # Errors
    /// When the due tenants cannot be listed.
    pub async fn purge_expired(&self, ctx: &AdminContext) -> Result<Vec<String>, AppError> {
        let now = self.clock.now();
        let mut purged = Vec::new();
        for (id, slug, schema) in lifecycle::due_for_purge(&self.db, now).await? {
            match lifecycle::purge(&self.db, id, now).await {
                Ok(true) => {
                    self.directory.forget(id);
                    self.admins
                        .audit(
                            ctx,
                            "tenant.purged",
                            Some(&slug),
                            serde_json::json!({"tenant_id": id.to_string(), "schema": schema}),
                        )
                        .await?;
                    tracing::info!(tenant = %slug, "deleted tenant purged after its grace period");
                    purged.push(slug);
                }
                Ok(false) => {}
                Err(err) => tracing::error!(tenant = %slug, error = ?err, "tenant purge failed"),
            }
        }
        Ok(purged)
    }

    /// The owner erases a user of their tenant (GDPR Art. 17): see the module docs.
    ///
    /// # Errors
    /// 403 for a caller who is not the owner; 404 for an unknown user; 409 for the caller
    /// themselves (an owner's own data goes with the organisation's deletion).
    pub async fn erase_user(
        &self,
        ctx: &TenantContext,
        user: UserId,
    ) -> Result<(String, String), AppError> {
        let owner = require_owner(ctx, "erase a user")?;
        if owner == user {
            return Err(AppError::conflict(
                "you cannot erase yourself: transfer the ownership first, or delete the organisation",
            ));
        }
        self.erase(ctx.tenant(), user, Some(owner)).await
    }

    /// A platform admin (CLI) erases user `user` of tenant `slug`.
    ///
    /// # Errors
    /// 404 for an unknown tenant or user.
    pub async fn erase_user_as_admin(
        &self,
        ctx: &AdminContext,
        slug: &TenantSlug,
        user: UserId,
    ) -> Result<(String, String), AppError> {
        let tenant = self.find(slug).await?;
        let done = self.erase(&tenant, user, None).await?;
        self.admins
            .audit(
                ctx,
                "user.erased",
                Some(slug.as_str()),
                serde_json::json!({"user_id": user.to_string()}),
            )
            .await?;
        Ok(done)
    }

    async fn erase(
        &self,
        tenant: &Tenant,
        user: UserId,
        actor: Option<UserId>,
    ) -> Result<(String, String), AppError> {
        let (email, name) = pseudonym(tenant, user);
        let erased = lifecycle::erase_user(&self.db, tenant, user, &email, &name, actor)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no user {user} in this tenant")))?;
        tracing::info!(tenant = %tenant.slug, %user, audit_rows = erased.audit_rows, "user erased");
        Ok((email, name))
    }
}

/// The signed-in owner.
///
/// # Errors
/// 403 otherwise.
pub(super) fn require_owner(ctx: &TenantContext, what: &str) -> Result<UserId, AppError> {
    match ctx.principal() {
        Principal::User {
            id,
            role: Role::Owner,
        } => Ok(id),
        Principal::User { role, .. } => Err(AppError::forbidden(format!(
            "only the owner may {what}; you are {}",
            role.as_str()
        ))),
        Principal::ApiKey(_) => Err(AppError::forbidden(format!(
            "only the signed-in owner (bearer token) may {what}, not an API key"
        ))),
    }
}
