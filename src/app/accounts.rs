//! Accounts: signing up an organisation, signing in, who is calling, and the tenant's users.

use super::credentials::VERIFICATION_TOKEN_TTL;
use super::directory::{NamedTenant, TenantDirectory};
use super::keys::CreatedKey;
use super::mail::Mailer;
use super::passwords::{check_strength, hash_password, verify_password};
use super::tenants::{NewTenant, OwnerVerificationMail, TenantService};
use super::tokens::JwtKeys;
use crate::clock::SharedClock;
use crate::db::audit::{self, AuditEvent};
use crate::db::users::{self, UserRecord};
use crate::db::{Db, TenantContext};
use crate::domain::{
    DisplayName, Email, OneTimeToken, Password, Principal, Role, Tenant, TenantSlug, TenantStatus,
    UserId,
};
use crate::error::AppError;
use crate::quota::Quotas;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A signed access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
}

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
    /// An access token for the owner.
    pub token: AccessToken,
    /// The initial API keys, with their secrets.
    pub keys: Vec<CreatedKey>,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user.
    pub user: UserRecord,
    /// Their access token.
    pub token: AccessToken,
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
    /// Role (`admin` or `member`).
    pub role: Role,
}

/// Account operations.
pub struct AccountService {
    db: Db,
    directory: Arc<TenantDirectory>,
    tenants: Arc<TenantService>,
    quotas: Arc<Quotas>,
    jwt: Arc<JwtKeys>,
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
        jwt: Arc<JwtKeys>,
        mailer: Arc<Mailer>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            directory,
            tenants,
            quotas,
            jwt,
            mailer,
            clock,
        }
    }

    fn issue(&self, user: UserId, tenant: &Tenant, role: Role) -> Result<AccessToken, AppError> {
        let (token, expires_at) = self.jwt.issue(user, tenant.id, role, self.clock.now())?;
        Ok(AccessToken { token, expires_at })
    }

    /// Signs up an organisation: provisions its tenant on a trial with the owner and two API
    /// keys, and signs the owner in. Throttled per client address and per slug. The password
    /// must be strong (zxcvbn); the owner is sent an email-verification link (token and
    /// message written in the provisioning transaction).
    ///
    /// # Errors
    /// 409 when the slug is taken; 422 for a weak password; 429 when throttled.
    pub async fn signup(&self, s: Signup, client: &str) -> Result<SignedUp, AppError> {
        let delay = self
            .quotas
            .login_throttle()
            .check(client, &format!("signup:{}", s.slug))?;
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
        let token = self.issue(p.owner.id, &p.tenant, Role::Owner)?;
        Ok(SignedUp {
            tenant: p.tenant,
            owner: p.owner,
            token,
            keys: p.keys,
        })
    }

    /// Signs a user in to the named tenant. Throttled per client address and per (account,
    /// address), locked per (account, address) after repeated failures, and slowed down
    /// progressively per account (see `quota::LoginThrottle`).
    ///
    /// The answer does not reveal which tenants or emails exist: an unknown tenant, an unknown
    /// email and a wrong password all answer the same 401 after the same work (a password hash
    /// is verified in every case). A suspended tenant answers 403 before any password is
    /// checked, so it confirms nothing about the password.
    ///
    /// # Errors
    /// 401 for a wrong tenant, email or password; 403 for a suspended tenant; 429 when
    /// throttled or locked out.
    pub async fn login(
        &self,
        named: &NamedTenant,
        email: &Email,
        password: String,
        client: &str,
    ) -> Result<SignedIn, AppError> {
        let tenant = self.directory.by_slug(&named.slug).await?;
        let account = format!("{}:{}", named.slug, email);
        let throttle = self.quotas.login_throttle();
        let delay = throttle.check(client, &account)?;
        if let Some(t) = tenant
            .as_ref()
            .filter(|t| t.status == TenantStatus::Suspended)
        {
            return Err(AppError::forbidden(format!(
                "tenant {:?} is suspended; contact the platform administrators",
                t.slug.as_str()
            )));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let found = match &tenant {
            Some(t) => users::for_login(&self.db, t, email).await?,
            None => None,
        };
        let (user, hash) = match found {
            Some((u, h)) => (Some(u), Some(h)),
            None => (None, None),
        };
        let (Some(tenant), true) = (tenant, verify_password(password, hash).await?) else {
            throttle.record_failure(client, &account);
            return Err(AppError::unauthorized("email or password is incorrect"));
        };
        throttle.record_success(client, &account);
        let user = user.ok_or_else(|| AppError::internal("verified user without row"))?;
        let token = self.issue(user.id, &tenant, user.role)?;
        Ok(SignedIn { user, token })
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

    /// Adds an `admin` or `member` (owner or admin only).
    ///
    /// # Errors
    /// 403 for other callers; 409 when the email is taken; 422 for the owner role.
    pub async fn create_user(
        &self,
        ctx: &TenantContext,
        new: NewUser,
    ) -> Result<UserRecord, AppError> {
        let actor = ctx.require_manager()?;
        if new.role == Role::Owner {
            return Err(AppError::validation(
                "role",
                "a tenant has exactly one owner; choose admin or member",
            ));
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
        audit::append(
            &mut tx,
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
