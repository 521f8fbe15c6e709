//! Sessions (OWASP ASVS 5.0 V7; RFC 9700 §4.14): signing in gives a 15-minute access token
//! and an opaque refresh token (256 bits from the OS, only its SHA-256 stored). A session is
//! one refresh-token family: each refresh rotates the token and slides the session's lifetime
//! ([`SESSION_TTL`] by default); presenting a token that was already rotated revokes the whole
//! family and is audited. Access tokens carry the session id (`sid`); every bearer request
//! checks the session and the user's current role and status through the [`SessionCache`], so
//! logout, revocation, deactivation and role changes apply on every instance at once.

use super::audit::{record, record_from};
use super::directory::{NamedTenant, TenantDirectory};
use super::passwords::verify_password;
use super::session_cache::SessionCache;
use super::tokens::JwtKeys;
use super::two_factor::{SecondFactor, verify_second_factor};
use crate::clock::SharedClock;
use crate::db::audit::AuditEvent;
use crate::db::sessions::{self, SessionRecord};
use crate::db::users::{self, UserRecord, UserState, UserStatus};
use crate::db::{Db, TenantContext, TenantTx, begin_pre_auth};
use crate::domain::{Client, Email, SessionId, Tenant, TenantStatus, UserId};
use crate::error::AppError;
use crate::quota::Quotas;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Default sliding lifetime of a session: a refresh token unused this long stops working.
pub const SESSION_TTL: Duration = Duration::days(30);

/// Prefix of a refresh token (`mrt_` + 43 base64url characters = 256 bits).
pub const REFRESH_PREFIX: &str = "mrt_";

/// Why sessions ended (stored with the session, and in audit details).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The user signed out.
    Logout,
    /// The user (or an admin) revoked it.
    Revoked,
    /// An already-rotated refresh token was presented.
    RefreshReuse,
    /// The user was deactivated.
    Deactivated,
    /// The user was removed.
    Removed,
    /// The password was changed.
    PasswordChanged,
    /// The password was reset.
    PasswordReset,
}

impl EndReason {
    /// Stored spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Revoked => "revoked",
            EndReason::RefreshReuse => "refresh_reuse",
            EndReason::Deactivated => "deactivated",
            EndReason::Removed => "removed",
            EndReason::PasswordChanged => "password_changed",
            EndReason::PasswordReset => "password_reset",
        }
    }
}

/// A signed access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Its expiry.
    pub expires_at: DateTime<Utc>,
}

/// What signing in or refreshing gives.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    /// The session.
    pub session: SessionId,
    /// A 15-minute access token.
    pub access: AccessToken,
    /// The refresh token (shown once; only its hash is stored).
    pub refresh_token: String,
    /// When the refresh token stops working unless used.
    pub refresh_expires_at: DateTime<Utc>,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user.
    pub user: UserRecord,
    /// Their tokens.
    pub tokens: SessionTokens,
    /// The team requires two-factor authentication and the user has not enrolled: every call
    /// but enrolment, `me`, sessions and logout answers 403 until they do.
    pub must_enrol_two_factor: bool,
}

/// A web page's signed-in user (see [`SessionService::web_session`]).
#[derive(Debug, Clone)]
pub struct WebSession {
    /// The user's context in the tenant (with the session and the client).
    pub ctx: TenantContext,
    /// The user (name, email, role as stored).
    pub user: UserRecord,
    /// The team requires two-factor authentication and the user has not enrolled.
    pub must_enrol_two_factor: bool,
}

fn new_refresh_token() -> Result<(String, [u8; 32]), AppError> {
    use base64::Engine;
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| AppError::internal(format!("OS randomness: {e}")))?;
    let token = format!(
        "{REFRESH_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = Sha256::digest(token.as_bytes()).into();
    Ok((token, hash))
}

fn ended() -> AppError {
    AppError::unauthorized(
        "this session has ended (signed out, revoked, or the user was deactivated); sign in again",
    )
}

/// Sessions: sign-in, refresh, logout, listing and revocation, and the per-request check.
pub struct SessionService {
    db: Db,
    directory: Arc<TenantDirectory>,
    quotas: Arc<Quotas>,
    jwt: Arc<JwtKeys>,
    cache: Arc<SessionCache>,
    clock: SharedClock,
    ttl: Duration,
}

impl SessionService {
    /// The service; `ttl` is the sliding session lifetime.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        quotas: Arc<Quotas>,
        jwt: Arc<JwtKeys>,
        cache: Arc<SessionCache>,
        clock: SharedClock,
        ttl: Duration,
    ) -> Self {
        Self {
            db,
            directory,
            quotas,
            jwt,
            cache,
            clock,
            ttl,
        }
    }

    /// Starts a session of `user` in the caller's transaction and issues its tokens.
    ///
    /// # Errors
    /// When PostgreSQL or signing fails.
    pub async fn start_in(
        &self,
        tx: &mut TenantTx,
        tenant: &Tenant,
        user: UserId,
        client: &Client,
    ) -> Result<SessionTokens, AppError> {
        let now = self.clock.now();
        let (refresh_token, hash) = new_refresh_token()?;
        let session = SessionRecord {
            id: SessionId::new(),
            user,
            created_at: now,
            last_used_at: now,
            expires_at: now + self.ttl,
            ip: client.ip().map(str::to_string),
            user_agent: client.user_agent().map(str::to_string),
        };
        sessions::insert(tx, &session, &hash).await?;
        let (token, expires_at) = self.jwt.issue(user, tenant.id, session.id, now)?;
        Ok(SessionTokens {
            session: session.id,
            access: AccessToken { token, expires_at },
            refresh_token,
            refresh_expires_at: session.expires_at,
        })
    }

    /// Starts a session of `user` (a new owner at signup).
    ///
    /// # Errors
    /// When PostgreSQL or signing fails.
    pub async fn start(
        &self,
        tenant: &Tenant,
        user: UserId,
        client: &Client,
    ) -> Result<SessionTokens, AppError> {
        let mut tx = begin_pre_auth(&self.db, tenant).await?;
        let tokens = self.start_in(&mut tx, tenant, user, client).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Signs a user in to the named tenant with the password and, when the user has two-factor
    /// authentication, `otp` (a TOTP code or a recovery code). Throttled per client address
    /// and per (account, address), locked per (account, address) after repeated failures,
    /// slowed progressively per account (see `quota::LoginThrottle`). Success, failure,
    /// lockout and a refused deactivated user are audited in the tenant (when it exists).
    ///
    /// The answer does not reveal which tenants or emails exist: an unknown tenant, an unknown
    /// email and a wrong password all answer the same 401 after the same work (a password hash
    /// is verified in every case). Only after the right password does the answer say that a
    /// second factor is needed (401, problem type `two-factor-required`) or that the account is
    /// deactivated (403).
    ///
    /// # Errors
    /// 401 for a wrong tenant, email, password or code, or a missing code; 403 for a
    /// suspended tenant or a deactivated user; 429 when throttled or locked out.
    pub async fn login(
        &self,
        named: &NamedTenant,
        email: &Email,
        password: String,
        otp: Option<String>,
        client: &Client,
    ) -> Result<SignedIn, AppError> {
        let ip = client.ip_or_unknown();
        let tenant = self.directory.by_slug(&named.slug).await?;
        let account = format!("{}:{}", named.slug, email);
        let throttle = self.quotas.login_throttle();
        let delay = throttle.check(ip, &account)?;
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
            Some(t) => {
                let mut tx = begin_pre_auth(&self.db, t).await?;
                let row = users::for_sign_in(&mut tx, email).await?;
                tx.commit().await?;
                row
            }
            None => None,
        };
        let hash = found.as_ref().map(|r| r.password_hash.clone());
        let verified = verify_password(password, hash).await?;
        let Some(tenant) = tenant else {
            throttle.record_failure(ip, &account);
            return Err(AppError::unauthorized("email or password is incorrect"));
        };
        let now = self.clock.now();
        let (row, true) = (found, verified) else {
            let lock = throttle.record_failure(ip, &account);
            self.audit_failure(&tenant, client, email, "password", lock, now)
                .await?;
            return Err(AppError::unauthorized("email or password is incorrect"));
        };
        let Some(row) = row else {
            return Err(AppError::internal("verified user without row"));
        };
        let user = row.user.id;
        let mut tx = begin_pre_auth(&self.db, &tenant).await?;
        let event = |action: &'static str, details: serde_json::Value| AuditEvent {
            at: now,
            actor: Some(user),
            action,
            target: "",
            details,
        };
        let target = user.to_string();
        if row.state.status != UserStatus::Active {
            record_from(
                &mut tx,
                client,
                AuditEvent {
                    target: &target,
                    ..event(
                        "auth.login_refused",
                        serde_json::json!({"reason": "deactivated"}),
                    )
                },
            )
            .await?;
            tx.commit().await?;
            return Err(AppError::forbidden(
                "this account is deactivated; ask an owner or admin of the team to reactivate it",
            ));
        }
        let mut method = "password";
        if row.state.two_factor {
            let Some(code) = otp.filter(|c| !c.trim().is_empty()) else {
                return Err(AppError::client_status(
                    401,
                    "two-factor-required",
                    "this account uses two-factor authentication: send the 6-digit code from the authenticator app, or a recovery code, in `otp` with the email and password",
                ));
            };
            let secret = users::totp_for_update(&mut tx, user)
                .await?
                .secret
                .ok_or_else(|| AppError::internal("two-factor enabled without a secret"))?;
            match verify_second_factor(&mut tx, user, &secret, &code, now).await {
                Ok(SecondFactor::Totp) => method = "totp",
                Ok(SecondFactor::RecoveryCode { left }) => {
                    method = "recovery_code";
                    record_from(
                        &mut tx,
                        client,
                        AuditEvent {
                            target: &target,
                            ..event(
                                "two_factor.recovery_code_used",
                                serde_json::json!({"codes_left": left}),
                            )
                        },
                    )
                    .await?;
                }
                Err(err) => {
                    drop(tx);
                    let lock = throttle.record_failure(ip, &account);
                    self.audit_failure(&tenant, client, email, "two_factor", lock, now)
                        .await?;
                    return Err(err);
                }
            }
        }
        throttle.record_success(ip, &account);
        let tokens = self.start_in(&mut tx, &tenant, user, client).await?;
        record_from(
            &mut tx,
            client,
            AuditEvent {
                target: &target,
                ..event(
                    "auth.login_succeeded",
                    serde_json::json!({"method": method, "session": tokens.session.to_string()}),
                )
            },
        )
        .await?;
        tx.commit().await?;
        Ok(SignedIn {
            must_enrol_two_factor: row.state.team_requires_two_factor && !row.state.two_factor,
            user: row.user,
            tokens,
        })
    }

    /// Audits a failed sign-in (and the lockout it caused).
    async fn audit_failure(
        &self,
        tenant: &Tenant,
        client: &Client,
        email: &Email,
        factor: &str,
        lock: Option<std::time::Duration>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let mut tx = begin_pre_auth(&self.db, tenant).await?;
        record_from(
            &mut tx,
            client,
            AuditEvent {
                at: now,
                actor: None,
                action: "auth.login_failed",
                target: email.as_str(),
                details: serde_json::json!({"factor": factor}),
            },
        )
        .await?;
        if let Some(lock) = lock {
            record_from(
                &mut tx,
                client,
                AuditEvent {
                    at: now,
                    actor: None,
                    action: "auth.locked_out",
                    target: email.as_str(),
                    details: serde_json::json!({"seconds": lock.as_secs()}),
                },
            )
            .await?;
        }
        tx.commit().await
    }

    /// Exchanges a refresh token for a new access token and a new refresh token (rotation).
    /// The tenant is the one the request names; another tenant's token is unknown here.
    /// Presenting a token that was already rotated revokes its whole session (audited).
    ///
    /// # Errors
    /// 401 for a malformed, unknown, rotated, revoked or expired token, or a user who is no
    /// longer active; 403 for a suspended tenant.
    pub async fn refresh(
        &self,
        named: &NamedTenant,
        token: &str,
        client: &Client,
    ) -> Result<SignedIn, AppError> {
        let token = token.trim();
        if !token.starts_with(REFRESH_PREFIX) || token.len() != REFRESH_PREFIX.len() + 43 {
            return Err(AppError::unauthorized(
                "malformed refresh token: expected mrt_ followed by 43 characters",
            ));
        }
        let unknown = || {
            AppError::unauthorized(format!(
                "unknown refresh token for tenant {:?} (named by the {})",
                named.slug.as_str(),
                named.source
            ))
        };
        let tenant = self
            .directory
            .by_slug(&named.slug)
            .await?
            .ok_or_else(unknown)?;
        if tenant.status == TenantStatus::Suspended {
            return Err(AppError::forbidden(format!(
                "tenant {:?} is suspended; contact the platform administrators",
                tenant.slug.as_str()
            )));
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.now();
        let mut tx = begin_pre_auth(&self.db, &tenant).await?;
        let p = sessions::presented(&mut tx, &hash)
            .await?
            .ok_or_else(unknown)?;
        if p.revoked {
            return Err(ended());
        }
        if p.rotated {
            sessions::revoke(
                &mut tx,
                p.session,
                None,
                EndReason::RefreshReuse.as_str(),
                now,
            )
            .await?;
            record_from(
                &mut tx,
                client,
                AuditEvent {
                    at: now,
                    actor: Some(p.user),
                    action: "session.refresh_reused",
                    target: &p.session.to_string(),
                    details: serde_json::json!({"revoked": "session"}),
                },
            )
            .await?;
            tx.commit().await?;
            self.cache.revoked(&[p.session]);
            return Err(AppError::unauthorized(
                "this refresh token was already used: the session has been revoked as a precaution; sign in again",
            ));
        }
        if p.expires_at <= now {
            return Err(AppError::unauthorized(format!(
                "the session expired at {} (unused for {} days); sign in again",
                p.expires_at.to_rfc3339(),
                self.ttl.num_days()
            )));
        }
        let user = users::get(&mut tx, p.user).await?;
        let state = users::state(&mut tx, p.user).await?;
        let (Some(user), Some(state)) = (user, state) else {
            return Err(ended());
        };
        if state.status != UserStatus::Active {
            return Err(ended());
        }
        let (refresh_token, new_hash) = new_refresh_token()?;
        let expires_at = now + self.ttl;
        sessions::rotate(
            &mut tx,
            p.session,
            &hash,
            &new_hash,
            now,
            expires_at,
            client,
            now - self.ttl,
        )
        .await?;
        tx.commit().await?;
        let (token, access_expires) = self.jwt.issue(user.id, tenant.id, p.session, now)?;
        Ok(SignedIn {
            must_enrol_two_factor: state.team_requires_two_factor && !state.two_factor,
            user,
            tokens: SessionTokens {
                session: p.session,
                access: AccessToken {
                    token,
                    expires_at: access_expires,
                },
                refresh_token,
                refresh_expires_at: expires_at,
            },
        })
    }

    /// The signed-in user behind a web session cookie (`mc_session`, which holds the session's
    /// refresh token), checked without rotating it: the token's SHA-256 must be the session's
    /// current refresh-token hash, the session live (not revoked, not expired) and the user
    /// active. Nothing is written, so a page's parallel requests never look like refresh-token
    /// reuse; the session's lifetime does not slide (it ends [`SESSION_TTL`] after sign-in, or
    /// earlier at logout or revocation). A token that was rotated (used at
    /// `POST /api/v1/auth/refresh`) no longer opens pages. Revocation, deactivation and role
    /// changes apply at once (the [`SessionCache`], as for bearer tokens).
    ///
    /// # Errors
    /// 401 for a malformed, unknown (another tenant's included), rotated, revoked or expired
    /// token, or a user who is not active; 403 for a suspended tenant.
    pub async fn web_session(
        &self,
        named: &NamedTenant,
        token: &str,
        client: &Client,
    ) -> Result<WebSession, AppError> {
        let token = token.trim();
        if !token.starts_with(REFRESH_PREFIX) || token.len() != REFRESH_PREFIX.len() + 43 {
            return Err(AppError::unauthorized("malformed session cookie"));
        }
        let unknown = || AppError::unauthorized("unknown session; sign in again");
        let tenant = self
            .directory
            .by_slug(&named.slug)
            .await?
            .ok_or_else(unknown)?;
        if tenant.status == TenantStatus::Suspended {
            return Err(AppError::forbidden(format!(
                "tenant {:?} is suspended; contact the platform administrators",
                tenant.slug.as_str()
            )));
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut tx = begin_pre_auth(&self.db, &tenant).await?;
        let p = sessions::presented(&mut tx, &hash)
            .await?
            .ok_or_else(unknown)?;
        let user = users::get(&mut tx, p.user).await?;
        tx.commit().await?;
        if p.revoked || p.rotated {
            return Err(ended());
        }
        if p.expires_at <= self.clock.now() {
            return Err(AppError::unauthorized(format!(
                "the session expired at {}; sign in again",
                p.expires_at.to_rfc3339()
            )));
        }
        let state = self.check(&tenant, p.session, p.user).await?;
        let user = user.ok_or_else(ended)?;
        Ok(WebSession {
            ctx: TenantContext::authenticated(
                tenant,
                crate::domain::Principal::User {
                    id: p.user,
                    role: state.role,
                },
            )
            .in_session(p.session)
            .from_client(client.clone()),
            user,
            must_enrol_two_factor: state.team_requires_two_factor && !state.two_factor,
        })
    }

    /// What a bearer token of session `session` and user `user` may do now: the session must
    /// be live and the user active. From memory when known (no query), else read and
    /// remembered.
    ///
    /// # Errors
    /// 401 when the session is unknown, ended or the user is not active.
    pub async fn check(
        &self,
        tenant: &Tenant,
        session: SessionId,
        user: UserId,
    ) -> Result<UserState, AppError> {
        let epoch = self.cache.epoch();
        let state = match (
            self.cache.session_revoked(session),
            self.cache.user(tenant.id, user),
        ) {
            (Some(true), _) => return Err(ended()),
            (Some(false), Some(state)) => state,
            (Some(false), None) => {
                let state = sessions::user_state(&self.db, tenant, user)
                    .await?
                    .ok_or_else(ended)?;
                self.cache.put_user(tenant.id, user, state, epoch);
                state
            }
            (None, _) => {
                let (revoked, state) = sessions::auth_state(&self.db, tenant, session, user)
                    .await?
                    .ok_or_else(|| {
                        AppError::unauthorized(
                            "bearer token names an unknown session; sign in again",
                        )
                    })?;
                self.cache.put_session(session, revoked, epoch);
                self.cache.put_user(tenant.id, user, state, epoch);
                if revoked {
                    return Err(ended());
                }
                state
            }
        };
        match state.status {
            UserStatus::Active => Ok(state),
            UserStatus::Deactivated => Err(AppError::unauthorized(
                "this account has been deactivated; ask an owner or admin of the team",
            )),
            UserStatus::Removed => Err(ended()),
        }
    }

    /// Signs the caller out: ends the session of its access token (and its refresh token).
    ///
    /// # Errors
    /// 403 for an API key (it has no session).
    pub async fn logout(&self, ctx: &TenantContext) -> Result<(), AppError> {
        let session = ctx.session().ok_or_else(|| {
            AppError::forbidden("an API key has no session to sign out of; revoke the key instead")
        })?;
        self.end(ctx, session, EndReason::Logout, "session.logout")
            .await
            .map(|_| ())
    }

    /// Revokes one of the caller's own sessions.
    ///
    /// # Errors
    /// 404 when the caller has no such session (another user's or tenant's included).
    pub async fn revoke(&self, ctx: &TenantContext, id: SessionId) -> Result<(), AppError> {
        if self
            .end(ctx, id, EndReason::Revoked, "session.revoked")
            .await?
            .is_none()
        {
            return Err(AppError::not_found(format!("you have no session {id}")));
        }
        Ok(())
    }

    async fn end(
        &self,
        ctx: &TenantContext,
        id: SessionId,
        reason: EndReason,
        action: &str,
    ) -> Result<Option<bool>, AppError> {
        let (user, _) = ctx.user().ok_or_else(|| {
            AppError::forbidden("sessions belong to signed-in users, not API keys")
        })?;
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let outcome = sessions::revoke(&mut tx, id, Some(user), reason.as_str(), now).await?;
        if outcome == Some(true) {
            record(
                &mut tx,
                ctx,
                AuditEvent {
                    at: now,
                    actor: Some(user),
                    action,
                    target: &id.to_string(),
                    details: serde_json::json!({"reason": reason.as_str()}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        if outcome.is_some() {
            self.cache.revoked(&[id]);
        }
        Ok(outcome)
    }

    /// The caller's live sessions, most recently used first.
    ///
    /// # Errors
    /// 403 for an API key.
    pub async fn list(&self, ctx: &TenantContext) -> Result<Vec<SessionRecord>, AppError> {
        let (user, _) = ctx.user().ok_or_else(|| {
            AppError::forbidden("sessions belong to signed-in users, not API keys")
        })?;
        let mut tx = ctx.begin(&self.db).await?;
        let list = sessions::list_live(&mut tx, user, self.clock.now()).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Logout everywhere: ends every session of `user` (the caller's included when it is
    /// theirs) in its own transaction, audited as `session.revoked_all` with `reason`. Applies
    /// on this instance at once and on the others when they hear the trigger's `NOTIFY`.
    /// Returns how many sessions ended.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn revoke_all_for_user(
        &self,
        ctx: &TenantContext,
        user: UserId,
        reason: EndReason,
    ) -> Result<usize, AppError> {
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let ids = sessions::revoke_all_of_user(&mut tx, user, reason.as_str(), now).await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: None,
                action: "session.revoked_all",
                target: &user.to_string(),
                details: serde_json::json!({"reason": reason.as_str(), "sessions": ids.len()}),
            },
        )
        .await?;
        tx.commit().await?;
        self.cache.revoked(&ids);
        Ok(ids.len())
    }

    /// [`SessionService::revoke_all_for_user`] inside the caller's transaction (e.g. a
    /// password reset that has no context), without an audit row of its own: the caller
    /// audits its event. Every instance applies it when the transaction commits (`NOTIFY`).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn revoke_all_for_user_in(
        &self,
        tx: &mut TenantTx,
        user: UserId,
        reason: EndReason,
    ) -> Result<Vec<SessionId>, AppError> {
        sessions::revoke_all_of_user(tx, user, reason.as_str(), self.clock.now()).await
    }

    /// Marks sessions ended on this instance at once (after a commit that revoked them).
    pub fn forget(&self, ids: &[SessionId]) {
        self.cache.revoked(ids);
    }

    /// The cache of sessions and users (team changes apply to it).
    pub fn cache(&self) -> &Arc<SessionCache> {
        &self.cache
    }
}
