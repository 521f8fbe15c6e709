//! Passwords and email addresses: change a password, reset a forgotten one by a token sent by
//! email, verify the address a user signed up with, and the rule that inviting members and
//! paying need a verified owner.
//!
//! Tokens are single-use, random (256 bits, `domain::OneTimeToken`), stored as their SHA-256
//! only, and written with the message that carries them in ONE transaction (the outbox row in
//! `platform.mail_outbox`), so a failed request leaves neither. A password change or reset
//! ends every session of the user, in the same transaction as the new password
//! ([`SessionService::revoke_all_for_user_in`]).

use super::audit::{record, record_from};
use super::directory::{NamedTenant, TenantDirectory};
use super::mail::Mailer;
use super::passwords::{check_strength, equalising_work, hash_password, verify_password};
use super::sessions::{EndReason, SessionService};
use crate::clock::SharedClock;
use crate::db::account_tokens::{self, NewToken, Purpose, TokenRow};
use crate::db::audit::AuditEvent;
use crate::db::users::{self, UserRecord};
use crate::db::{Db, TenantContext, TenantTx, outbox};
use crate::domain::{Client, Email, OneTimeToken, Password, Tenant};
use crate::error::AppError;
use crate::quota::Quotas;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// How long a password-reset token works.
pub const RESET_TOKEN_TTL: Duration = Duration::minutes(30);
/// How long an email-verification token works.
pub const VERIFICATION_TOKEN_TTL: Duration = Duration::hours(48);
/// At most one reset or verification message per user in this interval (mail bombing).
pub const RESEND_INTERVAL: Duration = Duration::seconds(60);
/// A reset request is answered no sooner than this after it arrived, whether the address
/// exists or not (together with equal argon2 work on both paths, so timing tells nothing).
pub const RESET_ANSWER_FLOOR: std::time::Duration = std::time::Duration::from_millis(250);

/// What an attacker would try first for this user: the address (and, in the strength check,
/// its local part), the person's name and the organisation's slug and name.
pub fn user_inputs(email: &str, full_name: &str, tenant: &Tenant) -> Vec<String> {
    let mut out = vec![
        email.to_string(),
        tenant.slug.as_str().to_string(),
        tenant.display_name.clone(),
    ];
    out.extend(full_name.split_whitespace().map(str::to_string));
    out.push(full_name.to_string());
    out
}

/// Checks the rule that inviting members and starting a paid plan need the tenant's owner to
/// have verified their address. `action` names what was refused (e.g. "invite members").
///
/// # Errors
/// 403 saying why and how to verify.
pub async fn require_verified_owner(
    db: &Db,
    ctx: &TenantContext,
    action: &str,
) -> Result<(), AppError> {
    let mut tx = ctx.begin(db).await?;
    let verified = users::owner_verified(&mut tx).await?;
    tx.commit().await?;
    if verified {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "the tenant owner's email address is not verified yet, so you cannot {action}: the owner \
             must follow the link sent at signup (POST /api/v1/auth/verify-email; a new link with \
             POST /api/v1/auth/verify-email/resend)"
        )))
    }
}

/// Password and email-address operations.
pub struct CredentialService {
    db: Db,
    directory: Arc<TenantDirectory>,
    quotas: Arc<Quotas>,
    mailer: Arc<Mailer>,
    sessions: Arc<SessionService>,
    clock: SharedClock,
}

/// Why a presented token is refused (422 naming `token`).
fn token_problem(detail: &str) -> AppError {
    AppError::validation("token", detail.to_string())
}

/// Checks a locked token row: unknown, used or expired tokens are refused, each saying so.
fn usable(row: Option<TokenRow>, now: DateTime<Utc>, what: &str) -> Result<TokenRow, AppError> {
    let row = row.ok_or_else(|| {
        token_problem(&format!(
            "this {what} token is unknown in this tenant; use the latest link you received"
        ))
    })?;
    if row.used_at.is_some() {
        return Err(token_problem(&format!(
            "this {what} token was already used; request a new one"
        )));
    }
    if now >= row.expires_at {
        return Err(token_problem(&format!(
            "this {what} token expired at {}; request a new one",
            row.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
        )));
    }
    Ok(row)
}

impl CredentialService {
    /// The service.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        quotas: Arc<Quotas>,
        mailer: Arc<Mailer>,
        sessions: Arc<SessionService>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            directory,
            quotas,
            mailer,
            sessions,
            clock,
        }
    }

    async fn token_tenant(&self, named: &NamedTenant, what: &str) -> Result<Arc<Tenant>, AppError> {
        self.directory.by_slug(&named.slug).await?.ok_or_else(|| {
            token_problem(&format!(
                "this {what} token is unknown in this tenant; use the latest link you received"
            ))
        })
    }

    /// Opens the transaction of a token flow: the tenant named by the request, the token row
    /// of `purpose` locked and checked usable, its user locked and still at the address the
    /// token was sent to. `what` names the token in refusals ("password-reset").
    ///
    /// # Errors
    /// 422 naming `token` for an unknown tenant or token, a used or expired token, a user who
    /// no longer exists or has changed address.
    async fn open_token(
        &self,
        named: &NamedTenant,
        token: &OneTimeToken,
        purpose: Purpose,
        what: &str,
    ) -> Result<(TenantTx, Arc<Tenant>, UserRecord, DateTime<Utc>), AppError> {
        let tenant = self.token_tenant(named, what).await?;
        let now = self.clock.now();
        let mut tx = account_tokens::begin_token_flow(&self.db, &tenant).await?;
        let row = usable(
            account_tokens::lock(&mut tx, &token.hash(), purpose).await?,
            now,
            what,
        )?;
        let Some((user, _)) = users::lock_with_hash(&mut tx, row.user_id).await? else {
            return Err(token_problem(&format!(
                "the user of this {what} token no longer exists"
            )));
        };
        if user.email != row.email {
            return Err(token_problem(&format!(
                "this {what} token was sent to an address the user no longer has; request a new one"
            )));
        }
        Ok((tx, tenant, user, now))
    }

    /// Changes the signed-in user's password after checking the current one, and ends their
    /// other sessions. Wrong current passwords count towards the sign-in lockout.
    ///
    /// # Errors
    /// 403 for an API key; 401 when the user no longer exists; 422 for a wrong current
    /// password (`current_password`), a weak new one or the same one (`new_password`); 429
    /// when throttled.
    pub async fn change_password(
        &self,
        ctx: &TenantContext,
        current: String,
        new: Password,
        client: &str,
    ) -> Result<(), AppError> {
        let (user_id, _) = ctx.user().ok_or_else(|| {
            AppError::forbidden(
                "changing a password needs the signed-in user (bearer token), not an API key",
            )
        })?;
        let tenant = ctx.tenant();
        let throttle = self.quotas.login_throttle();
        let account = format!("password:{}:{user_id}", tenant.slug);
        let delay = throttle.check(client, &account)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut tx = ctx.begin(&self.db).await?;
        let (user, hash) = users::lock_with_hash(&mut tx, user_id)
            .await?
            .ok_or_else(|| AppError::unauthorized("the user of this token no longer exists"))?;
        tx.commit().await?;
        if !verify_password(current, Some(hash.clone())).await? {
            throttle.record_failure(client, &account);
            return Err(AppError::validation(
                "current_password",
                "the current password is incorrect",
            ));
        }
        throttle.record_success(client, &account);
        if verify_password(new.expose().to_string(), Some(hash)).await? {
            return Err(AppError::validation(
                "new_password",
                "the new password must differ from the current one",
            ));
        }
        check_strength(
            "new_password",
            &new,
            user_inputs(&user.email, &user.full_name, tenant),
        )
        .await?;
        let new_hash = hash_password(new).await?;
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        if !users::set_password(&mut tx, user_id, &new_hash).await? {
            return Err(AppError::unauthorized(
                "the user of this token no longer exists",
            ));
        }
        let ended = self
            .sessions
            .revoke_all_for_user_in(&mut tx, user_id, EndReason::PasswordChanged)
            .await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(user_id),
                action: "password.changed",
                target: &user_id.to_string(),
                details: serde_json::json!({"sessions_ended": ended.len()}),
            },
        )
        .await?;
        tx.commit().await?;
        self.sessions.forget(&ended);
        Ok(())
    }

    /// Starts a password reset: when `email` is a user of the named tenant, stores a reset
    /// token (30 minutes) and its message in one transaction. The answer is the same whether
    /// or not the tenant or the address exists, after the same argon2 work and no sooner than
    /// [`RESET_ANSWER_FLOOR`]; at most one message per user per [`RESEND_INTERVAL`] (later
    /// requests are answered the same and send nothing). Throttled like sign-in.
    ///
    /// # Errors
    /// 429 when throttled; 503 when the database is unavailable.
    pub async fn request_reset(
        &self,
        named: &NamedTenant,
        email: &Email,
        client: &Client,
    ) -> Result<(), AppError> {
        let deadline = tokio::time::Instant::now() + RESET_ANSWER_FLOOR;
        let result = self.request_reset_inner(named, email, client).await;
        tokio::time::sleep_until(deadline).await;
        result
    }

    async fn request_reset_inner(
        &self,
        named: &NamedTenant,
        email: &Email,
        client: &Client,
    ) -> Result<(), AppError> {
        let account = format!("reset:{}:{email}", named.slug);
        let delay = self
            .quotas
            .login_throttle()
            .check(client.ip_or_unknown(), &account)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // The same argon2 work on every path: the known path does nothing heavier.
        equalising_work().await?;
        let Some(tenant) = self.directory.by_slug(&named.slug).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let mut tx = account_tokens::begin_token_flow(&self.db, &tenant).await?;
        let Some(user) = users::by_email(&mut tx, email).await? else {
            return Ok(());
        };
        if account_tokens::last_sent(&mut tx, user.id, Purpose::PasswordReset)
            .await?
            .is_some_and(|at| now - at < RESEND_INTERVAL)
        {
            return Ok(());
        }
        let token = OneTimeToken::generate();
        let expires_at = now + RESET_TOKEN_TTL;
        self.issue(
            &mut tx,
            &tenant,
            &user,
            Purpose::PasswordReset,
            &token,
            expires_at,
            now,
        )
        .await?;
        record_from(
            &mut tx,
            client,
            AuditEvent {
                at: now,
                actor: None,
                action: "password_reset.requested",
                target: &user.id.to_string(),
                details: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }

    /// Stores `token` for `user` and the message carrying it, in `tx`.
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        tx: &mut TenantTx,
        tenant: &Tenant,
        user: &UserRecord,
        purpose: Purpose,
        token: &OneTimeToken,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        account_tokens::insert(
            tx,
            &NewToken {
                hash: &token.hash(),
                purpose,
                user_id: user.id,
                email: &user.email,
                created_at: now,
                expires_at,
            },
        )
        .await?;
        let mut mail = match purpose {
            Purpose::PasswordReset => self.mailer.password_reset(
                &tenant.slug,
                &tenant.display_name,
                &user.email,
                token,
                expires_at,
            ),
            Purpose::EmailVerification => self.mailer.email_verification(
                &tenant.slug,
                &tenant.display_name,
                &user.email,
                token,
                expires_at,
            ),
        };
        mail.tenant_id = Some(tenant.id);
        outbox::enqueue(tx, &mail, now).await
    }

    /// Completes a reset: checks the token (single use, unexpired), refuses a weak password
    /// (the token stays usable), sets the new password, uses up every reset token of the user,
    /// marks the address verified (the user just read mail sent to it) and ends every session.
    ///
    /// # Errors
    /// 422 for an unknown, used or expired token (`token`) or a weak password
    /// (`new_password`).
    pub async fn confirm_reset(
        &self,
        named: &NamedTenant,
        token: &OneTimeToken,
        new: Password,
        client: &Client,
    ) -> Result<(), AppError> {
        let (mut tx, tenant, user, now) = self
            .open_token(named, token, Purpose::PasswordReset, "password-reset")
            .await?;
        check_strength(
            "new_password",
            &new,
            user_inputs(&user.email, &user.full_name, &tenant),
        )
        .await?;
        let hash = hash_password(new).await?;
        users::set_password(&mut tx, user.id, &hash).await?;
        account_tokens::use_all(&mut tx, user.id, Purpose::PasswordReset, now).await?;
        users::mark_verified(&mut tx, user.id, &user.email, now).await?;
        let ended = self
            .sessions
            .revoke_all_for_user_in(&mut tx, user.id, EndReason::PasswordReset)
            .await?;
        record_from(
            &mut tx,
            client,
            AuditEvent {
                at: now,
                actor: Some(user.id),
                action: "password_reset.completed",
                target: &user.id.to_string(),
                details: serde_json::json!({"sessions_ended": ended.len()}),
            },
        )
        .await?;
        tx.commit().await?;
        self.sessions.forget(&ended);
        Ok(())
    }

    /// Verifies a user's address with the token from the verification message.
    ///
    /// # Errors
    /// 422 for an unknown, used or expired token, or one sent to an address the user no
    /// longer has.
    pub async fn verify_email(
        &self,
        named: &NamedTenant,
        token: &OneTimeToken,
        client: &Client,
    ) -> Result<UserRecord, AppError> {
        let (mut tx, _, user, now) = self
            .open_token(named, token, Purpose::EmailVerification, "verification")
            .await?;
        let newly = users::mark_verified(&mut tx, user.id, &user.email, now).await?;
        account_tokens::use_all(&mut tx, user.id, Purpose::EmailVerification, now).await?;
        if newly {
            record_from(
                &mut tx,
                client,
                AuditEvent {
                    at: now,
                    actor: Some(user.id),
                    action: "email.verified",
                    target: &user.id.to_string(),
                    details: serde_json::json!({"email": user.email}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(UserRecord {
            email_verified_at: user.email_verified_at.or(Some(now)),
            ..user
        })
    }

    /// Sends the signed-in user a new verification link (the older ones stop working when one
    /// is used). At most one per [`RESEND_INTERVAL`].
    ///
    /// # Errors
    /// 403 for an API key; 409 when the address is already verified; 429 within a minute of
    /// the last message.
    pub async fn resend_verification(&self, ctx: &TenantContext) -> Result<(), AppError> {
        let (user_id, _) = ctx.user().ok_or_else(|| {
            AppError::forbidden("resending the verification needs the signed-in user (bearer token), not an API key")
        })?;
        let tenant = ctx.tenant();
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let user = users::get(&mut tx, user_id)
            .await?
            .ok_or_else(|| AppError::unauthorized("the user of this token no longer exists"))?;
        if let Some(at) = user.email_verified_at {
            return Err(AppError::conflict(format!(
                "{} was already verified at {}",
                user.email,
                at.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        if let Some(at) =
            account_tokens::last_sent(&mut tx, user.id, Purpose::EmailVerification).await?
            && now - at < RESEND_INTERVAL
        {
            let wait = (at + RESEND_INTERVAL - now).num_seconds().max(1) as u64;
            return Err(AppError::limit(
                429,
                "mail",
                format!(
                    "a verification message was sent to {} less than a minute ago; check the inbox or retry in {wait} s",
                    user.email
                ),
                Some(wait),
                Vec::new(),
            ));
        }
        let token = OneTimeToken::generate();
        self.issue(
            &mut tx,
            tenant,
            &user,
            Purpose::EmailVerification,
            &token,
            now + VERIFICATION_TOKEN_TTL,
            now,
        )
        .await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }
}
