//! Named platform administrators: accounts (argon2id password + mandatory RFC 6238 TOTP),
//! sign-in into a revocable session named by a short-lived admin JWT (own audience), and the
//! audit of every admin action (`platform.admin_audit`: actor, action, target, address, user
//! agent, time).
//!
//! `ADMIN_TOKEN` is a bootstrap secret only: it can create the FIRST administrator
//! ([`AdminService::bootstrap`]) and nothing else. Any later administrator is created by an
//! operator with database access (`montecarlo-platform admin create`).

use super::passwords::{hash_password, verify_password};
use super::tokens::AdminJwt;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::db::admins::{self, AuditRow, CreateOutcome, NewAdmin, NewSession};
use crate::domain::{AdminId, Email, Password};
use crate::error::AppError;
use crate::quota::Quotas;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The `issuer` shown by authenticator apps.
pub const TOTP_ISSUER: &str = "montecarlo-platform";

/// TOTP shared-secret length, bytes (RFC 4226 recommends 160 bits).
pub const TOTP_SECRET_BYTES: usize = 20;

/// Who performs a platform action, and from where: a signed-in administrator (API), an
/// operator at the CLI, or the service itself (background tasks). Every audit row names one.
#[derive(Debug, Clone)]
pub struct AdminContext {
    admin: Option<AdminId>,
    actor: String,
    session: Option<uuid::Uuid>,
    address: String,
    user_agent: String,
}

impl AdminContext {
    /// An operator running the CLI (actor `cli:<$USER>`, address `local`).
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Self {
            admin: None,
            actor: format!("cli:{user}"),
            session: None,
            address: "local".into(),
            user_agent: concat!("montecarlo-platform-cli/", env!("CARGO_PKG_VERSION")).into(),
        }
    }

    /// The service's own background work (actor `system`).
    pub fn system() -> Self {
        Self {
            admin: None,
            actor: "system".into(),
            session: None,
            address: "local".into(),
            user_agent: "montecarlo-platform".into(),
        }
    }

    /// The actor as audited: the admin's email, `cli:<user>` or `system`.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The signed-in administrator, if any.
    pub fn admin(&self) -> Option<AdminId> {
        self.admin
    }
}

/// A new administrator and the TOTP enrolment shown once.
#[derive(Debug, Clone)]
pub struct CreatedAdmin {
    /// Id.
    pub id: AdminId,
    /// Email.
    pub email: String,
    /// The TOTP secret, base32 (RFC 4648, no padding).
    pub totp_secret: String,
    /// `otpauth://totp/…` URI for authenticator apps.
    pub otpauth_uri: String,
}

/// A signed-in administrator's token.
#[derive(Debug, Clone)]
pub struct AdminToken {
    /// The JWT.
    pub token: String,
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
}

/// Platform administrators.
pub struct AdminService {
    db: Db,
    jwt: AdminJwt,
    clock: SharedClock,
    quotas: Arc<Quotas>,
    bootstrap_token: Option<String>,
}

fn totp(secret: Vec<u8>, email: &str) -> Result<totp_rs::Totp, AppError> {
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(email.to_string())
        .with_issuer(Some(TOTP_ISSUER.to_string()))
        .build()
        .map_err(|e| AppError::internal(format!("totp: {e}")))
}

impl AdminService {
    /// The service; `bootstrap_token` is `ADMIN_TOKEN`.
    pub fn new(
        db: Db,
        jwt_secret: &[u8],
        clock: SharedClock,
        quotas: Arc<Quotas>,
        bootstrap_token: Option<String>,
    ) -> Self {
        Self {
            db,
            jwt: AdminJwt::new(jwt_secret),
            clock,
            quotas,
            bootstrap_token,
        }
    }

    /// Appends an audit row for `ctx` doing `action` on `target`.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn audit(
        &self,
        ctx: &AdminContext,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> Result<(), AppError> {
        admins::audit(
            &self.db,
            &AuditRow {
                at: self.clock.now(),
                admin: ctx.admin,
                actor: &ctx.actor,
                action,
                target,
                address: &ctx.address,
                user_agent: &ctx.user_agent,
                details,
            },
        )
        .await
    }

    async fn store(
        &self,
        email: &Email,
        password: Password,
        created_by: &str,
        only_if_none: bool,
    ) -> Result<CreatedAdmin, AppError> {
        let mut secret = vec![0u8; TOTP_SECRET_BYTES];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut secret);
        let otp = totp(secret.clone(), email.as_str())?;
        let hash = hash_password(password).await?;
        let id = AdminId::new();
        let outcome = admins::insert(
            &self.db,
            &NewAdmin {
                id,
                email: email.as_str(),
                password_hash: &hash,
                totp_secret: &secret,
                created_at: self.clock.now(),
                created_by,
            },
            only_if_none,
        )
        .await?;
        match outcome {
            CreateOutcome::Created => Ok(CreatedAdmin {
                id,
                email: email.to_string(),
                totp_secret: otp.secret().to_base32(),
                otpauth_uri: otp
                    .to_url()
                    .map_err(|e| AppError::internal(format!("totp url: {e}")))?,
            }),
            CreateOutcome::EmailTaken => Err(AppError::conflict(format!(
                "a platform administrator with email {email} already exists"
            ))),
            CreateOutcome::NotFirst => Err(AppError::conflict(
                "a platform administrator already exists: ADMIN_TOKEN only creates the first one; \
                 create more with `montecarlo-platform admin create`",
            )),
        }
    }

    /// Creates an administrator (CLI, or a signed-in administrator), audited as `ctx`.
    ///
    /// # Errors
    /// 409 when the email is taken; 500/503 when PostgreSQL fails.
    pub async fn create(
        &self,
        ctx: &AdminContext,
        email: &Email,
        password: Password,
    ) -> Result<CreatedAdmin, AppError> {
        let created = self.store(email, password, ctx.actor(), false).await?;
        self.audit(
            ctx,
            "admin.created",
            Some(&created.email),
            serde_json::json!({"admin_id": created.id.to_string()}),
        )
        .await?;
        Ok(created)
    }

    /// Creates the FIRST administrator with the bootstrap token (`ADMIN_TOKEN`).
    ///
    /// # Errors
    /// 403 when `ADMIN_TOKEN` is not configured; 401 for a missing or wrong token; 409 once an
    /// administrator exists.
    pub async fn bootstrap(
        &self,
        token: Option<&str>,
        email: &Email,
        password: Password,
        address: &str,
        user_agent: &str,
    ) -> Result<CreatedAdmin, AppError> {
        let Some(expected) = &self.bootstrap_token else {
            return Err(AppError::forbidden(
                "bootstrap is disabled: set ADMIN_TOKEN to create the first administrator over \
                 HTTP, or run `montecarlo-platform admin create`",
            ));
        };
        let Some(token) = token else {
            return Err(AppError::unauthorized(
                "missing credentials: send Authorization: Bearer <ADMIN_TOKEN>",
            ));
        };
        if !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            return Err(AppError::unauthorized(
                "invalid bootstrap token (ADMIN_TOKEN)",
            ));
        }
        let created = self.store(email, password, "bootstrap", true).await?;
        let ctx = AdminContext {
            admin: Some(created.id),
            actor: "bootstrap".into(),
            session: None,
            address: address.into(),
            user_agent: user_agent.into(),
        };
        self.audit(
            &ctx,
            "admin.bootstrapped",
            Some(&created.email),
            serde_json::json!({}),
        )
        .await?;
        Ok(created)
    }

    /// Signs an administrator in: password and a current TOTP code (each code once), then a
    /// session and its token. Throttled per address and per (account, address) like tenant
    /// sign-in. Failures are audited (`admin.login_failed`) and all answer alike.
    ///
    /// # Errors
    /// 401 for a wrong email, password or code, or a code already used; 429 when throttled.
    pub async fn login(
        &self,
        email: &Email,
        password: String,
        code: &str,
        address: &str,
        user_agent: &str,
    ) -> Result<AdminToken, AppError> {
        let account = format!("admin:{email}");
        let throttle = self.quotas.login_throttle();
        let delay = throttle.check(address, &account)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let now = self.clock.now();
        let row = admins::for_login(&self.db, email.as_str()).await?;
        let password_ok =
            verify_password(password, row.as_ref().map(|r| r.password_hash.clone())).await?;
        let step = match (&row, password_ok) {
            (Some(r), true) => {
                let otp = totp(r.totp_secret.clone(), &r.email)?;
                otp.check(code.trim(), now.timestamp().max(0) as u64)
                    .map(|s| i64::try_from(s).unwrap_or(i64::MAX))
            }
            _ => None,
        };
        let ctx = AdminContext {
            admin: row.as_ref().map(|r| r.id),
            actor: email.to_string(),
            session: None,
            address: address.into(),
            user_agent: user_agent.into(),
        };
        let (Some(row), Some(step)) = (row, step) else {
            throttle.record_failure(address, &account);
            self.audit(
                &ctx,
                "admin.login_failed",
                Some(email.as_str()),
                serde_json::json!({}),
            )
            .await?;
            return Err(AppError::unauthorized(
                "email, password or TOTP code is incorrect",
            ));
        };
        if !admins::claim_totp_step(&self.db, row.id, step).await? {
            throttle.record_failure(address, &account);
            self.audit(
                &ctx,
                "admin.login_failed",
                Some(email.as_str()),
                serde_json::json!({"reason": "totp code replayed"}),
            )
            .await?;
            return Err(AppError::unauthorized(
                "this TOTP code was already used; wait for the next one",
            ));
        }
        throttle.record_success(address, &account);
        let sid = uuid::Uuid::now_v7();
        let (token, expires_at) = self.jwt.issue(row.id, sid, now)?;
        admins::insert_session(
            &self.db,
            &NewSession {
                id: sid,
                admin: row.id,
                created_at: now,
                expires_at,
                address,
                user_agent,
            },
        )
        .await?;
        let ctx = AdminContext {
            session: Some(sid),
            ..ctx
        };
        self.audit(
            &ctx,
            "admin.login",
            Some(email.as_str()),
            serde_json::json!({"session": sid.to_string()}),
        )
        .await?;
        Ok(AdminToken { token, expires_at })
    }

    /// The administrator behind an admin token whose session is live.
    ///
    /// # Errors
    /// 401 for a missing, invalid, expired or revoked token.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        address: &str,
        user_agent: &str,
    ) -> Result<AdminContext, AppError> {
        let Some(token) = token else {
            return Err(AppError::unauthorized(
                "missing credentials: send Authorization: Bearer <admin token> from POST /api/v1/admin/auth/login",
            ));
        };
        let now = self.clock.now();
        let claims = self.jwt.verify(token, now)?;
        let malformed = || AppError::unauthorized("invalid admin token: malformed claims");
        let admin = AdminId::parse(&claims.sub).map_err(|_| malformed())?;
        let sid = uuid::Uuid::parse_str(&claims.sid).map_err(|_| malformed())?;
        let Some(email) = admins::live_session(&self.db, sid, admin, now).await? else {
            return Err(AppError::unauthorized(
                "this admin session has ended (signed out or revoked); sign in again",
            ));
        };
        Ok(AdminContext {
            admin: Some(admin),
            actor: email,
            session: Some(sid),
            address: address.into(),
            user_agent: user_agent.into(),
        })
    }

    /// Ends the caller's session: its token is refused from now on, on every instance.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn logout(&self, ctx: &AdminContext) -> Result<(), AppError> {
        if let (Some(admin), Some(sid)) = (ctx.admin, ctx.session) {
            admins::revoke_sessions(&self.db, admin, Some(sid), self.clock.now()).await?;
            self.audit(
                ctx,
                "admin.logout",
                Some(ctx.actor()),
                serde_json::json!({}),
            )
            .await?;
        }
        Ok(())
    }

    /// Revokes every session of the administrator with `email` (CLI: a lost device or a
    /// departure). Returns how many were live.
    ///
    /// # Errors
    /// 404 for an unknown administrator.
    pub async fn revoke_all(&self, ctx: &AdminContext, email: &Email) -> Result<u64, AppError> {
        let row = admins::for_login(&self.db, email.as_str())
            .await?
            .ok_or_else(|| AppError::not_found(format!("no platform administrator {email}")))?;
        let n = admins::revoke_sessions(&self.db, row.id, None, self.clock.now()).await?;
        self.audit(
            ctx,
            "admin.sessions_revoked",
            Some(email.as_str()),
            serde_json::json!({"sessions": n}),
        )
        .await?;
        Ok(n)
    }

    /// Every administrator: (id, email, created at, created by).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn list(&self) -> Result<Vec<(AdminId, String, DateTime<Utc>, String)>, AppError> {
        admins::list(&self.db).await
    }
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}
