//! Accounts: signing up an organisation, signing in, who is calling, and the tenant's users.

use super::credentials::VERIFICATION_TOKEN_TTL;
use super::directory::TenantDirectory;
use super::keys::CreatedKey;
use super::mail::Mailer;
use super::passwords::{check_strength, hash_password};
use super::sessions::{SessionService, SessionTokens};
use super::tenants::{NewTenant, OwnerVerificationMail, TenantService};
use crate::clock::SharedClock;
use crate::db::audit::AuditEvent;
use crate::db::users::{self, UserRecord};
use crate::db::{Db, TenantContext};
use crate::domain::{
    Client, DisplayName, Email, OneTimeToken, Password, Principal, Role, Tenant, TenantSlug, UserId,
};
use crate::error::AppError;
use crate::quota::Quotas;
use std::sync::Arc;

/// Sign up an organisation (validated).
#[derive(Debug, Clone)]
pub struct Signup {
    /// Organisation name.
    pub organisation_name: DisplayName,
    /// Slug.
    pub slug: TenantSlug,
    /// Owner's full name.
    pub full_name: DisplayName,
    /// Owner's email.
    pub email: Email,
    /// Owner's password.
    pub password: Password,
}

/// A signed-up organisation.
#[derive(Debug, Clone)]
pub struct SignedUp {
    /// The tenant (on a trial).
    pub tenant: Arc<Tenant>,
    /// The owner.
    pub owner: UserRecord,
    /// The owner's first session: access and refresh tokens.
    pub tokens: SessionTokens,
    /// The initial API keys, with their secrets.
    pub keys: Vec<CreatedKey>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Me {
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// The signed-in user (bearer callers).
    pub user: Option<UserRecord>,
    /// The API key (key callers).
    pub api_key: Option<crate::domain::ApiKeyId>,
}

/// A user to add (validated).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email.
    pub email: Email,
    /// Full name.
    pub full_name: DisplayName,
    /// Initial password.
    pub password: Password,
    /// Role (`admin`, `member` or `viewer`).
    pub role: Role,
}

/// Account operations.
pub struct AccountService {
    db: Db,
    directory: Arc<TenantDirectory>,
    tenants: Arc<TenantService>,
    quotas: Arc<Quotas>,
    sessions: Arc<SessionService>,
    mailer: Arc<Mailer>,
    clock: SharedClock,
}

impl AccountService {
    /// The service.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        tenants: Arc<TenantService>,
        quotas: Arc<Quotas>,
        sessions: Arc<SessionService>,
        mailer: Arc<Mailer>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            directory,
            tenants,
            quotas,
            sessions,
            mailer,
            clock,
        }
    }

    /// Signs up an organisation: provisions its tenant on a trial with the owner and two API
    /// keys, and signs the owner in. Throttled per client address and per slug. The password
    /// must be strong (zxcvbn); the owner is sent an email-verification link (token and
    /// message written in the provisioning transaction).
    ///
    /// # Errors
    /// 409 when the slug is taken; 422 for a weak password; 429 when throttled.
    pub async fn signup(&self, s: Signup, client: &Client) -> Result<SignedUp, AppError> {
        let delay = self
            .quotas
            .login_throttle()
            .check(client.ip_or_unknown(), &format!("signup:{}", s.slug))?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.directory.by_slug(&s.slug).await?.is_some() {
            return Err(AppError::conflict(format!(
                "the slug {:?} is already taken",
                s.slug.as_str()
            )));
        }
        let inputs = vec![
            s.email.to_string(),
            s.slug.as_str().to_string(),
            s.organisation_name.to_string(),
            s.full_name.to_string(),
        ];
        check_strength("password", &s.password, inputs).await?;
        let hash = hash_password(s.password).await?;
        let token = OneTimeToken::generate();
        let expires_at = self.clock.now() + VERIFICATION_TOKEN_TTL;
        let mail = self.mailer.email_verification(
            &s.slug,
            s.organisation_name.as_str(),
            s.email.as_str(),
            &token,
            expires_at,
        );
        let p = self
            .tenants
            .provision(NewTenant {
                slug: s.slug,
                display_name: s.organisation_name,
                owner_name: s.full_name,
                owner_email: s.email,
                owner_password_hash: hash,
                verification: Some(OwnerVerificationMail {
                    token_hash: token.hash(),
                    expires_at,
                    mail,
                }),
            })
            .await?;
        self.mailer.wake();
        let tokens = self.sessions.start(&p.tenant, p.owner.id, client).await?;
        Ok(SignedUp {
            tenant: p.tenant,
            owner: p.owner,
            tokens,
            keys: p.keys,
        })
    }

    /// The tenant and the user or key behind the request.
    ///
    /// # Errors
    /// 401 when the token's user no longer exists.
    pub async fn me(&self, ctx: &TenantContext) -> Result<Me, AppError> {
        let user = match ctx.principal() {
            Principal::User { id, .. } => {
                let mut tx = ctx.begin(&self.db).await?;
                let user = users::get(&mut tx, id).await?;
                tx.commit().await?;
                Some(user.ok_or_else(|| {
                    AppError::unauthorized("the user of this token no longer exists")
                })?)
            }
            Principal::ApiKey(_) => None,
        };
        Ok(Me {
            tenant: ctx.tenant().clone(),
            user,
            api_key: ctx.api_key(),
        })
    }

    /// Adds an `admin`, `member` or `viewer` (owner or admin only).
    ///
    /// # Errors
    /// 403 for other callers or a role above the caller's; 409 when the email is taken; 422
    /// for the owner role.
    pub async fn create_user(
        &self,
        ctx: &TenantContext,
        new: NewUser,
    ) -> Result<UserRecord, AppError> {
        let actor = ctx.require_manager()?;
        if new.role == Role::Owner {
            return Err(AppError::validation(
                "role",
                "a new user cannot be an owner; add them, then transfer ownership or change their role",
            ));
        }
        if let Some((_, mine)) = ctx.user()
            && new.role.rank() > mine.rank()
        {
            return Err(AppError::forbidden(format!(
                "you cannot give the {} role: it is above your own ({})",
                new.role.as_str(),
                mine.as_str()
            )));
        }
        let hash = hash_password(new.password).await?;
        let now = self.clock.now();
        let user = UserRecord {
            id: UserId::new(),
            email: new.email.to_string(),
            full_name: new.full_name.to_string(),
            role: new.role,
            created_at: now,
            email_verified_at: None,
        };
        let mut tx = ctx.begin(&self.db).await?;
        if !users::insert(&mut tx, &user, &hash).await? {
            return Err(AppError::conflict(format!(
                "a user with email {} already exists in this tenant",
                new.email
            )));
        }
        super::audit::record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "user.created",
                target: &user.id.to_string(),
                details: serde_json::json!({"role": user.role.as_str()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Every user of the tenant, oldest first.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn list_users(&self, ctx: &TenantContext) -> Result<Vec<UserRecord>, AppError> {
        let mut tx = ctx.begin(&self.db).await?;
        let list = users::list(&mut tx).await?;
        tx.commit().await?;
        Ok(list)
    }
}
