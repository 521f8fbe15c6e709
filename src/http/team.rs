//! The team: change a user's role or active flag, remove a user, transfer ownership; and the
//! audit log.

use super::accounts::{ACCOUNT_BODY_LIMIT, UserView};
use super::payload::{ApiJson, BodyLimit, Json};
use super::security::UserAuth;
use super::sessions::Done;
use super::tags::ApiTags;
use crate::app::App;
use crate::app::audit::{AuditQuery, MAX_PAGE};
use crate::app::team::UserChange;
use crate::db::audit::AuditRow;
use crate::domain::{ApiKeyId, Role, UserId};
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Team and audit operations.
pub struct TeamApi {
    /// The application.
    pub app: Arc<App>,
}

/// Change a user: role and/or active flag.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example, skip_serializing_if_is_none)]
pub struct UpdateUserRequest {
    /// New role (not above your own; only an owner changes an owner).
    pub role: Option<Role>,
    /// `false` deactivates (their sessions end and the API keys they created are revoked at
    /// once); `true` reactivates (revoked keys stay revoked).
    pub active: Option<bool>,
}

impl Example for UpdateUserRequest {
    fn example() -> Self {
        Self {
            role: Some(Role::Viewer),
            active: None,
        }
    }
}

impl BodyLimit for UpdateUserRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}

/// One audit row.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct AuditEntry {
    /// Id (increasing).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// What happened, e.g. `auth.login_failed`, `user.role_changed`, `session.refresh_reused`.
    pub action: String,
    /// Acting user.
    pub actor_user_id: Option<UserId>,
    /// Acting API key.
    pub actor_api_key_id: Option<ApiKeyId>,
    /// What it happened to (an id, or the email of a failed sign-in).
    pub target: Option<String>,
    /// Details of the event.
    pub details: BTreeMap<String, serde_json::Value>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

impl Example for AuditEntry {
    fn example() -> Self {
        Self {
            id: 42,
            at: DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            action: "user.role_changed".into(),
            actor_user_id: UserId::parse("usr_01a1fe5c-8e2d-7c4b-a1f0-3b9d6e2c7a10").ok(),
            actor_api_key_id: None,
            target: Some("usr_01a1fe61-0c3b-7e9a-8d2f-4a6b1c9e5f23".into()),
            details: BTreeMap::from([
                ("from".to_string(), serde_json::json!("member")),
                ("to".to_string(), serde_json::json!("viewer")),
            ]),
            ip: Some("203.0.113.7".into()),
            user_agent: Some("curl/8.5.0".into()),
        }
    }
}

impl From<&AuditRow> for AuditEntry {
    fn from(r: &AuditRow) -> Self {
        Self {
            id: r.id,
            at: r.at,
            action: r.action.clone(),
            actor_user_id: r.actor,
            actor_api_key_id: r.actor_key,
            target: r.target.clone().filter(|t| !t.is_empty()),
            details: match &r.details {
                serde_json::Value::Object(m) => m.clone().into_iter().collect(),
                _ => BTreeMap::new(),
            },
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct AuditPageView {
    /// The rows.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl Example for AuditPageView {
    fn example() -> Self {
        Self {
            items: vec![AuditEntry::example()],
            next_cursor: Some("aud_42".into()),
        }
    }
}

ok_response!(UserOk, UserView, "The user as changed.");
ok_response!(
    AuditOk,
    AuditPageView,
    "A page of the audit log, newest first."
);

problem_responses!(TeamError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(AuditError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });

fn default_limit() -> u32 {
    50
}

#[OpenApi(tag = "ApiTags::Users")]
impl TeamApi {
    /// Change a user
    ///
    /// Owner or admin. Changes the role and/or the active flag. An admin cannot change an
    /// owner; nobody gives a role above their own; the last active owner cannot be demoted or
    /// deactivated. Deactivation ends the user's sessions and revokes the API keys they created,
    /// at once on every instance.
    #[oai(
        path = "/api/v1/users/:id",
        method = "patch",
        operation_id = "updateUser"
    )]
    async fn update(
        &self,
        auth: UserAuth,
        /// User id (`usr_…`).
        id: Path<UserId>,
        body: ApiJson<UpdateUserRequest>,
    ) -> Result<UserOk, TeamError> {
        let change = UserChange {
            role: body.0.role,
            active: body.0.active,
        };
        let (user, state) = self.app.team.update(&auth.0, id.0, change).await?;
        Ok(UserOk::Ok(Json(UserView::with_state(&user, &state))))
    }

    /// Remove a user
    ///
    /// Owner or admin. The user disappears from the team (their simulations and audit rows
    /// stay); their sessions end and the API keys they created are revoked at once. The last
    /// active owner cannot be removed; an admin cannot remove an owner.
    #[oai(
        path = "/api/v1/users/:id",
        method = "delete",
        operation_id = "removeUser"
    )]
    async fn remove(
        &self,
        auth: UserAuth,
        /// User id (`usr_…`).
        id: Path<UserId>,
    ) -> Result<Done, TeamError> {
        self.app.team.remove(&auth.0, id.0).await?;
        Ok(Done::NoContent)
    }

    /// Transfer ownership
    ///
    /// Owner only. The user becomes owner; the caller becomes admin.
    #[oai(
        path = "/api/v1/users/:id/transfer-ownership",
        method = "post",
        operation_id = "transferOwnership"
    )]
    async fn transfer(
        &self,
        auth: UserAuth,
        /// User id (`usr_…`) of the new owner.
        id: Path<UserId>,
    ) -> Result<UserOk, TeamError> {
        let (user, state) = self.app.team.transfer_ownership(&auth.0, id.0).await?;
        Ok(UserOk::Ok(Json(UserView::with_state(&user, &state))))
    }

    /// Read the audit log
    ///
    /// Owner or admin. Security events of the tenant, newest first: sign-ins (success,
    /// failure, lockout), refresh-token reuse, logout and session revocation, role changes,
    /// deactivation, removal, ownership transfer, two-factor changes, API keys. Filter by
    /// `action`, `actor` and time (`since` inclusive, `until` exclusive); `limit` per page
    /// (1–200, default 50); pass `next_cursor` back as `cursor`.
    #[oai(
        path = "/api/v1/audit",
        method = "get",
        operation_id = "listAudit",
        tag = "ApiTags::Audit"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        auth: UserAuth,
        /// Exact action, e.g. `auth.login_failed`.
        #[oai(validator(max_length = 64, pattern = "^[a-z0-9_.]{1,64}$"))]
        action: Query<Option<String>>,
        /// Acting user (`usr_…`).
        actor: Query<Option<UserId>>,
        /// At or after (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Before (RFC 3339).
        until: Query<Option<DateTime<Utc>>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(max_length = 32, pattern = "^aud_[1-9][0-9]{0,17}$"))]
        cursor: Query<Option<String>>,
        /// Page size, 1–200.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u32>,
    ) -> Result<AuditOk, AuditError> {
        let page = self
            .app
            .audit
            .list(
                &auth.0,
                AuditQuery {
                    action: action.0,
                    actor: actor.0,
                    since: since.0,
                    until: until.0,
                    cursor: cursor.0,
                    limit: limit.0.min(MAX_PAGE),
                },
            )
            .await?;
        Ok(AuditOk::Ok(Json(AuditPageView {
            items: page.items.iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }
}
