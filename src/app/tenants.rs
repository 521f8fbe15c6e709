//! Tenants as a platform concern: provisioning a new tenant, and the platform admin's view and
//! changes (status, tier, trial end, overage). Changes reach every instance through the
//! directory's listener.

use super::admins::{AdminContext, AdminService};
use super::directory::TenantDirectory;
use super::keys::CreatedKey;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::db::provisioning::{self, NewTenantRecord};
use crate::db::tenants::{self, TenantChange};
use crate::db::users::UserRecord;
use crate::domain::{
    DisplayName, Email, KeyName, Role, Tenant, TenantId, TenantSlug, Tier, UserId,
};
use crate::error::AppError;
use chrono::Duration;
use std::sync::Arc;

/// Trial length when the trial tier names none.
pub const TRIAL_DAYS: i64 = 30;

/// Names of the API keys every tenant starts with.
pub const INITIAL_KEYS: [&str; 2] = ["default", "secondary"];

/// What a new tenant is made of (already validated).
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Slug (subdomain).
    pub slug: TenantSlug,
    /// Organisation name.
    pub display_name: DisplayName,
    /// Owner's full name.
    pub owner_name: DisplayName,
    /// Owner's email.
    pub owner_email: Email,
    /// Owner's argon2id PHC hash.
    pub owner_password_hash: String,
    /// The owner's email-verification token and the message carrying it, stored in the
    /// provisioning transaction.
    pub verification: Option<OwnerVerificationMail>,
}

/// An email-verification token for the new owner and its message.
#[derive(Debug, Clone)]
pub struct OwnerVerificationMail {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Its expiry.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The message.
    pub mail: crate::db::outbox::NewMail,
}

/// A provisioned tenant.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The tenant, as now cached.
    pub tenant: Arc<Tenant>,
    /// The owner.
    pub owner: UserRecord,
    /// The initial keys, with their secrets.
    pub keys: Vec<CreatedKey>,
}

/// Platform-level tenant operations.
pub struct TenantService {
    db: Db,
    directory: Arc<TenantDirectory>,
    admins: Arc<AdminService>,
    clock: SharedClock,
    fail_provisioning_before_commit: bool,
}

impl TenantService {
    /// The service; `fail_provisioning_before_commit` is a test fault point.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        admins: Arc<AdminService>,
        clock: SharedClock,
        fail_provisioning_before_commit: bool,
    ) -> Self {
        Self {
            db,
            directory,
            admins,
            clock,
            fail_provisioning_before_commit,
        }
    }

    /// Provisions a tenant on a trial, atomically: its schema (migrated), owner, two API keys
    /// and an audit row.
    ///
    /// # Errors
    /// 409 when the slug is taken; 500/503 on database failure (nothing is left behind).
    pub async fn provision(&self, new: NewTenant) -> Result<Provisioned, AppError> {
        let now = self.clock.now();
        let trial = self.directory.tiers().get("trial");
        let trial_days = trial
            .as_ref()
            .and_then(|t| t.trial_days)
            .map_or(TRIAL_DAYS, i64::from);
        let trial_ends_at = now + Duration::days(trial_days);
        let id = TenantId::new();
        let owner = UserRecord {
            id: UserId::new(),
            email: new.owner_email.to_string(),
            full_name: new.owner_name.to_string(),
            role: Role::Owner,
            created_at: now,
            email_verified_at: None,
        };
        let keys: Vec<CreatedKey> = INITIAL_KEYS
            .iter()
            .map(|name| {
                let name = KeyName::parse(name).expect("initial key names are valid");
                CreatedKey::generate(name, now, Some(trial_ends_at))
            })
            .collect();
        let rows: Vec<_> = keys.iter().map(|k| k.new_key(owner.id)).collect();
        let started = std::time::Instant::now();
        provisioning::provision(
            &self.db,
            NewTenantRecord {
                id,
                slug: &new.slug,
                display_name: &new.display_name,
                tier: "trial",
                trial_ends_at: Some(trial_ends_at),
                owner: &owner,
                owner_password_hash: &new.owner_password_hash,
                keys: &rows,
                audit_details: serde_json::json!({"slug": new.slug.as_str(), "tier": "trial"}),
                verification: new
                    .verification
                    .as_ref()
                    .map(|v| provisioning::OwnerVerification {
                        token_hash: &v.token_hash,
                        expires_at: v.expires_at,
                        mail: &v.mail,
                    }),
                fail_before_commit: self.fail_provisioning_before_commit,
            },
        )
        .await?;
        tracing::info!(tenant = %new.slug, ms = started.elapsed().as_secs_f64() * 1000.0, "tenant provisioned");
        let tenant = self
            .directory
            .refresh(id)
            .await?
            .ok_or_else(|| AppError::internal("provisioned tenant vanished"))?;
        Ok(Provisioned {
            tenant,
            owner,
            keys,
        })
    }

    /// Migrates every tenant schema that is behind, `concurrency` at a time, each in its own
    /// transaction (resumable: a schema already current is skipped), telling `progress` as
    /// schemas finish. Per-schema failures are in the summary.
    ///
    /// # Errors
    /// When the tenant list cannot be read.
    pub async fn migrate_all(
        &self,
        concurrency: usize,
        progress: &(dyn Fn(crate::db::MigrationProgress<'_>) + Sync),
    ) -> Result<crate::db::TenantMigrationSummary, AppError> {
        crate::db::migrate_all_tenants_reporting(&self.db, concurrency, progress)
            .await
            .map_err(AppError::internal)
    }

    /// Every tier, cheapest first.
    pub fn tiers(&self) -> Vec<Arc<Tier>> {
        self.directory.tiers().all().to_vec()
    }

    /// Every tenant, oldest first, soft-deleted ones included (read from PostgreSQL, so
    /// tenants created on other instances are included).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn list(&self) -> Result<Vec<Arc<Tenant>>, AppError> {
        self.directory.reload_all().await?;
        Ok(self.directory.cached())
    }

    /// A tenant by slug for a platform admin, soft-deleted or not.
    ///
    /// # Errors
    /// 404 for an unknown tenant.
    pub async fn show(&self, slug: &TenantSlug) -> Result<Arc<Tenant>, AppError> {
        self.directory
            .by_slug_including_deleted(slug)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no tenant named {:?}", slug.as_str())))
    }

    /// Applies an admin's change to the live tenant `slug` (a deleted tenant is restored
    /// first), audited as `ctx`.
    ///
    /// # Errors
    /// 404 for an unknown or deleted tenant; 422 for an unknown tier.
    pub async fn update(
        &self,
        ctx: &AdminContext,
        slug: &TenantSlug,
        change: TenantChange,
    ) -> Result<Arc<Tenant>, AppError> {
        let not_found = || AppError::not_found(format!("no tenant named {:?}", slug.as_str()));
        let tenant = self.directory.by_slug(slug).await?.ok_or_else(not_found)?;
        if let Some(tier) = &change.tier
            && self.directory.tiers().get(tier).is_none()
        {
            return Err(AppError::validation(
                "tier",
                format!(
                    "unknown tier {tier:?}; one of {}",
                    self.directory.tiers().names().join(", ")
                ),
            ));
        }
        if !tenants::update(&self.db, tenant.id, &change, self.clock.now()).await? {
            return Err(not_found());
        }
        let fresh = self
            .directory
            .refresh(tenant.id)
            .await?
            .ok_or_else(not_found)?;
        self.admins
            .audit(
                ctx,
                "tenant.updated",
                Some(slug.as_str()),
                serde_json::json!({
                    "status": change.status.map(|s| s.as_str()),
                    "tier": change.tier,
                    "trial_ends_at": change.trial_ends_at,
                    "overage_enabled": change.overage_enabled,
                }),
            )
            .await?;
        tracing::info!(tenant = %slug, actor = ctx.actor(), ?change, "tenant changed by admin");
        Ok(fresh)
    }
}
