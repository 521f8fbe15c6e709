//! The team: change a user's role or active flag, remove a user, transfer ownership.
//!
//! Rules: owner and admin manage users; an admin cannot touch an owner; nobody gives a role
//! above their own; the last active owner cannot be demoted, deactivated or removed (the
//! active owners are locked while this is checked, so two concurrent demotions cannot both
//! pass). Deactivating or removing a user ends their sessions and revokes the API keys they
//! created, at once on every instance (`NOTIFY session_revoked`, `api_key_changed`).

use super::audit::record;
use super::key_cache::KeyCache;
use super::sessions::{EndReason, SessionService};
use crate::clock::SharedClock;
use crate::db::audit::AuditEvent;
use crate::db::users::{self, UserRecord, UserState, UserStatus};
use crate::db::{Db, TenantContext, TenantTx, api_keys, sessions};
use crate::domain::{Role, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A change of a user (validated).
#[derive(Debug, Clone, Copy, Default)]
pub struct UserChange {
    /// New role.
    pub role: Option<Role>,
    /// `false` deactivates, `true` reactivates.
    pub active: Option<bool>,
}

/// Team management.
pub struct TeamService {
    db: Db,
    sessions: Arc<SessionService>,
    keys: Arc<KeyCache>,
    clock: SharedClock,
}

fn manager(ctx: &TenantContext) -> Result<(UserId, Role), AppError> {
    let id = ctx.require_manager()?;
    let role = ctx.user().map_or(Role::Viewer, |(_, r)| r);
    Ok((id, role))
}

fn last_owner(what: &str) -> AppError {
    AppError::conflict(format!(
        "this user is the last active owner and cannot be {what}; make another user owner first (POST /api/v1/users/{{id}}/transfer-ownership)"
    ))
}

impl TeamService {
    /// The service.
    pub fn new(
        db: Db,
        sessions: Arc<SessionService>,
        keys: Arc<KeyCache>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            sessions,
            keys,
            clock,
        }
    }

    /// Locks the active owners and the target (not removed); checks that the caller may touch it.
    async fn target(
        &self,
        tx: &mut TenantTx,
        actor_role: Role,
        id: UserId,
    ) -> Result<(Vec<UserId>, UserRecord, UserState), AppError> {
        let owners = users::lock_active_owners(tx).await?;
        let (user, state) = users::get_for_update(tx, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no user {id} in this tenant")))?;
        if state.role == Role::Owner && actor_role != Role::Owner {
            return Err(AppError::forbidden(
                "only an owner can change or remove an owner",
            ));
        }
        Ok((owners, user, state))
    }

    /// Ends the user's sessions and revokes the keys they created, in `tx`.
    async fn end_access(
        &self,
        tx: &mut TenantTx,
        user: UserId,
        reason: EndReason,
        now: DateTime<Utc>,
    ) -> Result<(Vec<crate::domain::SessionId>, Vec<crate::domain::ApiKeyId>), AppError> {
        let ended = sessions::revoke_all_of_user(tx, user, reason.as_str(), now).await?;
        let keys = api_keys::revoke_created_by(tx, user, now).await?;
        Ok((ended, keys))
    }

    fn applied(
        &self,
        user: UserId,
        ended: &[crate::domain::SessionId],
        keys: &[crate::domain::ApiKeyId],
    ) {
        self.sessions.forget(ended);
        for k in keys {
            self.keys.forget_id(*k);
        }
        self.sessions.cache().forget_user(Some(user.as_uuid()));
    }

    /// Changes a user's role and/or active flag (owner or admin).
    ///
    /// # Errors
    /// 403 for other callers, for an admin touching an owner, or a role above the caller's;
    /// 404 when no such user; 409 for the last active owner or deactivating oneself; 422 for
    /// an empty change.
    pub async fn update(
        &self,
        ctx: &TenantContext,
        id: UserId,
        change: UserChange,
    ) -> Result<(UserRecord, UserState), AppError> {
        let (actor, actor_role) = manager(ctx)?;
        if actor == id && change.active == Some(false) {
            return Err(AppError::conflict(
                "you cannot deactivate yourself: another owner or admin can",
            ));
        }
        if change.role.is_none() && change.active.is_none() {
            return Err(AppError::validation(
                "role",
                "send role and/or active to change",
            ));
        }
        if let Some(role) = change.role
            && role.rank() > actor_role.rank()
        {
            return Err(AppError::forbidden(format!(
                "you cannot give the {} role: it is above your own ({})",
                role.as_str(),
                actor_role.as_str()
            )));
        }
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let (owners, mut user, mut state) = self.target(&mut tx, actor_role, id).await?;
        let sole_owner =
            state.role == Role::Owner && state.status == UserStatus::Active && owners.len() <= 1;
        if sole_owner && change.role.is_some_and(|r| r != Role::Owner) {
            return Err(last_owner("demoted"));
        }
        if sole_owner && change.active == Some(false) {
            return Err(last_owner("deactivated"));
        }
        let target = id.to_string();
        let mut revoked = (Vec::new(), Vec::new());
        if let Some(role) = change.role.filter(|r| *r != state.role) {
            users::set_role(&mut tx, id, role).await?;
            record(
                &mut tx,
                ctx,
                AuditEvent {
                    at: now,
                    actor: Some(actor),
                    action: "user.role_changed",
                    target: &target,
                    details: serde_json::json!({"from": state.role.as_str(), "to": role.as_str()}),
                },
            )
            .await?;
            state.role = role;
            user.role = role;
        }
        match (change.active, state.status) {
            (Some(false), UserStatus::Active) => {
                users::set_status(&mut tx, id, UserStatus::Deactivated).await?;
                revoked = self
                    .end_access(&mut tx, id, EndReason::Deactivated, now)
                    .await?;
                record(
                    &mut tx,
                    ctx,
                    AuditEvent {
                        at: now,
                        actor: Some(actor),
                        action: "user.deactivated",
                        target: &target,
                        details: serde_json::json!({"sessions_ended": revoked.0.len(), "keys_revoked": revoked.1.len()}),
                    },
                )
                .await?;
                state.status = UserStatus::Deactivated;
            }
            (Some(true), UserStatus::Deactivated) => {
                users::set_status(&mut tx, id, UserStatus::Active).await?;
                record(
                    &mut tx,
                    ctx,
                    AuditEvent {
                        at: now,
                        actor: Some(actor),
                        action: "user.reactivated",
                        target: &target,
                        details: serde_json::json!({}),
                    },
                )
                .await?;
                state.status = UserStatus::Active;
            }
            _ => {}
        }
        tx.commit().await?;
        self.applied(id, &revoked.0, &revoked.1);
        Ok((user, state))
    }

    /// Removes a user (owner or admin): the row stays for the foreign keys (their simulations,
    /// keys and audit rows), hidden from lists; their sessions end and their keys are revoked.
    ///
    /// # Errors
    /// 403 for other callers or an admin removing an owner; 404 when no such user; 409 for
    /// the last active owner or removing oneself.
    pub async fn remove(&self, ctx: &TenantContext, id: UserId) -> Result<(), AppError> {
        let (actor, actor_role) = manager(ctx)?;
        if actor == id {
            return Err(AppError::conflict(
                "you cannot remove yourself: another owner or admin can",
            ));
        }
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let (owners, _, state) = self.target(&mut tx, actor_role, id).await?;
        if state.role == Role::Owner && state.status == UserStatus::Active && owners.len() <= 1 {
            return Err(last_owner("removed"));
        }
        users::set_status(&mut tx, id, UserStatus::Removed).await?;
        let (ended, keys) = self
            .end_access(&mut tx, id, EndReason::Removed, now)
            .await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "user.removed",
                target: &id.to_string(),
                details: serde_json::json!({"role": state.role.as_str(), "sessions_ended": ended.len(), "keys_revoked": keys.len()}),
            },
        )
        .await?;
        tx.commit().await?;
        self.applied(id, &ended, &keys);
        Ok(())
    }

    /// Transfers ownership (owner only): the target becomes owner, the caller admin.
    ///
    /// # Errors
    /// 403 for other callers; 404 when no such user; 409 when the target is the caller or not
    /// active.
    pub async fn transfer_ownership(
        &self,
        ctx: &TenantContext,
        id: UserId,
    ) -> Result<(UserRecord, UserState), AppError> {
        let (actor, actor_role) = manager(ctx)?;
        if actor_role != Role::Owner {
            return Err(AppError::forbidden(format!(
                "only an owner can transfer ownership; you are {}",
                actor_role.as_str()
            )));
        }
        if actor == id {
            return Err(AppError::conflict("you already own this tenant"));
        }
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let (_, mut user, mut state) = self.target(&mut tx, actor_role, id).await?;
        if state.status != UserStatus::Active {
            return Err(AppError::conflict(
                "ownership can only go to an active user; reactivate them first",
            ));
        }
        users::set_role(&mut tx, id, Role::Owner).await?;
        users::set_role(&mut tx, actor, Role::Admin).await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(actor),
                action: "user.ownership_transferred",
                target: &id.to_string(),
                details: serde_json::json!({"from": actor.to_string(), "previous_role": state.role.as_str()}),
            },
        )
        .await?;
        tx.commit().await?;
        self.applied(id, &[], &[]);
        self.sessions.cache().forget_user(Some(actor.as_uuid()));
        state.role = Role::Owner;
        user.role = Role::Owner;
        Ok((user, state))
    }

    /// Every user but the removed ones with their state, oldest first.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn list(
        &self,
        ctx: &TenantContext,
    ) -> Result<Vec<(UserRecord, UserState)>, AppError> {
        let mut tx = ctx.begin(&self.db).await?;
        let list = users::list_with_state(&mut tx).await?;
        tx.commit().await?;
        Ok(list)
    }
}

/// Sign-in times, for the team page.
impl TeamService {
    /// Each user's latest sign-in (the newest session's start), owner or admin.
    ///
    /// # Errors
    /// 403 for other callers; when PostgreSQL fails.
    pub async fn last_sign_ins(
        &self,
        ctx: &TenantContext,
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, AppError> {
        ctx.require_manager()?;
        let mut tx = ctx.begin(&self.db).await?;
        let list = sessions::last_sign_ins(&mut tx).await?;
        tx.commit().await?;
        Ok(list)
    }
}
