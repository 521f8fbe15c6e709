//! Invitations: an owner or admin invites an address with a role; the message carries a
//! single-use token (7 days, stored as its SHA-256 only, written with the message in one
//! transaction); accepting it creates the user with that role (address verified: they read the
//! message). Inviting again replaces the open invitation of that address; an invitation can be
//! revoked until it is accepted. Inviting needs a verified owner.

use super::audit::{record, record_from};
use super::credentials::{require_verified_owner, user_inputs};
use super::directory::{NamedTenant, TenantDirectory};
use super::mail::Mailer;
use super::passwords::{check_strength, hash_password};
use crate::clock::SharedClock;
use crate::db::account_tokens::begin_token_flow;
use crate::db::audit::AuditEvent;
use crate::db::invitations::{self, InvitationRecord};
use crate::db::users::{self, UserRecord};
use crate::db::{Db, TenantContext, outbox};
use crate::domain::{
    Client, DisplayName, Email, InvitationId, OneTimeToken, Password, Role, UserId,
};
use crate::error::AppError;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// How long an invitation works.
pub const INVITATION_TTL: Duration = Duration::days(7);

/// Most invitations listed.
pub const LIST_LIMIT: i64 = 500;

/// Where an invitation stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    /// Can be accepted.
    Pending,
    /// Was accepted.
    Accepted,
    /// Was revoked (or replaced by a newer invitation of the same address).
    Revoked,
    /// Expired unaccepted.
    Expired,
}

impl InvitationStatus {
    /// Every status.
    pub const ALL: [InvitationStatus; 4] = [
        InvitationStatus::Pending,
        InvitationStatus::Accepted,
        InvitationStatus::Revoked,
        InvitationStatus::Expired,
    ];

    /// The status of `inv` at `now`.
    pub fn of(inv: &InvitationRecord, now: DateTime<Utc>) -> Self {
        if inv.accepted_at.is_some() {
            Self::Accepted
        } else if inv.revoked_at.is_some() {
            Self::Revoked
        } else if now >= inv.expires_at {
            Self::Expired
        } else {
            Self::Pending
        }
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Parses the wire spelling.
    ///
    /// # Errors
    /// A message listing the statuses.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not an invitation status; one of pending, accepted, revoked, expired"
                )
            })
    }
}

/// Invitation operations.
pub struct InvitationService {
    db: Db,
    directory: Arc<TenantDirectory>,
    mailer: Arc<Mailer>,
    clock: SharedClock,
}

fn token_problem(detail: impl Into<String>) -> AppError {
    AppError::validation("token", detail)
}

impl InvitationService {
    /// The service.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        mailer: Arc<Mailer>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            directory,
            mailer,
            clock,
        }
    }

    /// The clock's now (for statuses).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Invites `email` with `role` (owner or admin; the owner verified): stores the
    /// invitation, its token and the message in one transaction. An open invitation of the
    /// same address is revoked (replaced).
    ///
    /// # Errors
    /// 403 for other callers or an unverified owner; 409 when the address is already a user;
    /// 422 for the owner role.
    pub async fn create(
        &self,
        ctx: &TenantContext,
        email: Email,
        role: Role,
    ) -> Result<InvitationRecord, AppError> {
        let actor = ctx.require_manager()?;
        if role == Role::Owner {
            return Err(AppError::validation(
                "role",
                "a tenant has exactly one owner; invite an admin, member or viewer",
            ));
        }
        require_verified_owner(&self.db, ctx, "invite members").await?;
        let tenant = ctx.tenant();
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        if users::by_email(&mut tx, &email).await?.is_some() {
            return Err(AppError::conflict(format!(
                "{email} is already a user of this tenant"
            )));
        }
        let inviter = users::get(&mut tx, actor)
            .await?
            .map_or_else(|| "A team member".to_string(), |u| u.full_name);
        let replaced = invitations::revoke_open_for(&mut tx, email.as_str(), now).await?;
        let token = OneTimeToken::generate();
        let inv = InvitationRecord {
            id: InvitationId::new(),
            email: email.to_string(),
            role,
            invited_by: Some(actor),
            created_at: now,
            expires_at: now + INVITATION_TTL,
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
        };
        invitations::insert(&mut tx, &inv, &token.hash()).await?;
        let mut mail = self.mailer.invitation(
            &tenant.slug,
            &tenant.display_name,
            &inviter,
            email.as_str(),
            role,
            &token,
            inv.expires_at,
        );
        mail.tenant_id = Some(tenant.id);
        outbox::enqueue(&mut tx, &mail, now).await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "invitation.created",
                target: &inv.id.to_string(),
                details: serde_json::json!({
                    "email": inv.email,
                    "role": role.as_str(),
                    "replaces": replaced.map(|r| r.id.to_string()),
                }),
            },
        )
        .await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(inv)
    }

    /// The tenant's invitations, newest first (at most [`LIST_LIMIT`]); owner or admin.
    ///
    /// # Errors
    /// 403 for other callers.
    pub async fn list(&self, ctx: &TenantContext) -> Result<Vec<InvitationRecord>, AppError> {
        ctx.require_manager()?;
        let mut tx = ctx.begin(&self.db).await?;
        let list = invitations::list(&mut tx, LIST_LIMIT).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Revokes an invitation that was not accepted (revoking twice is harmless); owner or
    /// admin.
    ///
    /// # Errors
    /// 403 for other callers; 404 for an unknown id (or another tenant's); 409 when it was
    /// accepted.
    pub async fn revoke(
        &self,
        ctx: &TenantContext,
        id: InvitationId,
    ) -> Result<InvitationRecord, AppError> {
        let actor = ctx.require_manager()?;
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let inv = invitations::lock(&mut tx, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no invitation {id} in this tenant")))?;
        if inv.accepted_at.is_some() {
            return Err(AppError::conflict(format!(
                "invitation {id} was already accepted; manage the user instead"
            )));
        }
        if inv.revoked_at.is_some() {
            tx.commit().await?;
            return Ok(inv);
        }
        invitations::revoke(&mut tx, id, now).await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "invitation.revoked",
                target: &id.to_string(),
                details: serde_json::json!({"email": inv.email}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(InvitationRecord {
            revoked_at: Some(now),
            ..inv
        })
    }

    /// Accepts an invitation of the named tenant with its token: creates the user with the
    /// invited role and a verified address. The password must be strong; a refused password
    /// leaves the invitation usable.
    ///
    /// # Errors
    /// 409 when the address became a user meanwhile; 422 for an unknown, used, revoked or
    /// expired token (`token`) or a weak password (`password`).
    pub async fn accept(
        &self,
        named: &NamedTenant,
        token: &OneTimeToken,
        full_name: DisplayName,
        password: Password,
        client: &Client,
    ) -> Result<UserRecord, AppError> {
        let unknown = || {
            token_problem(
                "this invitation token is unknown in this tenant; use the link of the latest invitation",
            )
        };
        let tenant = self
            .directory
            .by_slug(&named.slug)
            .await?
            .ok_or_else(unknown)?;
        let now = self.clock.now();
        let mut tx = begin_token_flow(&self.db, &tenant).await?;
        let inv = invitations::lock_by_token(&mut tx, &token.hash())
            .await?
            .ok_or_else(unknown)?;
        match InvitationStatus::of(&inv, now) {
            InvitationStatus::Pending => {}
            InvitationStatus::Accepted => {
                return Err(token_problem(
                    "this invitation was already accepted; sign in instead",
                ));
            }
            InvitationStatus::Revoked => {
                return Err(token_problem(
                    "this invitation was revoked (or replaced by a newer one); ask for a new invitation",
                ));
            }
            InvitationStatus::Expired => {
                return Err(token_problem(format!(
                    "this invitation expired at {}; ask for a new one",
                    inv.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
                )));
            }
        }
        check_strength(
            "password",
            &password,
            user_inputs(&inv.email, full_name.as_str(), &tenant),
        )
        .await?;
        let hash = hash_password(password).await?;
        let user = UserRecord {
            id: UserId::new(),
            email: inv.email.clone(),
            full_name: full_name.to_string(),
            role: inv.role,
            created_at: now,
            email_verified_at: Some(now),
        };
        if !users::insert(&mut tx, &user, &hash).await? {
            return Err(AppError::conflict(format!(
                "{} is already a user of this tenant; sign in instead",
                inv.email
            )));
        }
        users::mark_verified(&mut tx, user.id, &user.email, now).await?;
        invitations::accept(&mut tx, inv.id, user.id, now).await?;
        record_from(
            &mut tx,
            client,
            AuditEvent {
                at: now,
                actor: Some(user.id),
                action: "invitation.accepted",
                target: &inv.id.to_string(),
                details: serde_json::json!({"user": user.id.to_string(), "role": user.role.as_str()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }
}
