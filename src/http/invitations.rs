//! Invitations: invite by email with a role, list, revoke, accept.

use super::accounts::{ACCOUNT_BODY_LIMIT, UserView};
use super::credentials::{parse_token, required_tenant};
use super::payload::{ApiJson, BodyLimit, Json};
use super::security::UserAuth;
use super::tags::ApiTags;
use crate::app::App;
use crate::app::invitations::InvitationStatus;
use crate::db::invitations::InvitationRecord;
use crate::domain::{DisplayName, Email, InvitationId, Password, Role, UserId};
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use std::sync::Arc;

/// Invitation operations.
pub struct InvitationsApi {
    /// The application.
    pub app: Arc<App>,
}

/// The roles an invitation can give.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum InvitedRole {
    /// Manages users and API keys.
    Admin,
    /// Runs simulations and reads results.
    Member,
    /// Reads simulations and usage.
    Viewer,
}

impl From<InvitedRole> for Role {
    fn from(r: InvitedRole) -> Self {
        match r {
            InvitedRole::Admin => Role::Admin,
            InvitedRole::Member => Role::Member,
            InvitedRole::Viewer => Role::Viewer,
        }
    }
}

/// Where an invitation stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum InvitationState {
    /// Can be accepted.
    Pending,
    /// Was accepted.
    Accepted,
    /// Was revoked, or replaced by a newer invitation of the same address.
    Revoked,
    /// Expired unaccepted.
    Expired,
}

impl From<InvitationStatus> for InvitationState {
    fn from(s: InvitationStatus) -> Self {
        match s {
            InvitationStatus::Pending => Self::Pending,
            InvitationStatus::Accepted => Self::Accepted,
            InvitationStatus::Revoked => Self::Revoked,
            InvitationStatus::Expired => Self::Expired,
        }
    }
}

/// Invite someone.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct CreateInvitationRequest {
    /// The address to invite (not yet a user of the tenant).
    pub email: Email,
    /// `admin`, `member` or `viewer`.
    pub role: InvitedRole,
}

impl Example for CreateInvitationRequest {
    fn example() -> Self {
        Self {
            email: Email::parse("grace@acme.example").expect("valid example"),
            role: InvitedRole::Member,
        }
    }
}

/// Accept an invitation.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct AcceptInvitationRequest {
    /// The token from the link in the invitation (43 characters).
    #[oai(validator(max_length = 64))]
    pub token: String,
    /// Your full name (1–200 characters).
    pub full_name: DisplayName,
    /// Your password: 8–128 characters, not easy to guess (zxcvbn strength at least 3 of 4).
    pub password: Password,
}

impl Example for AcceptInvitationRequest {
    fn example() -> Self {
        Self {
            token: "Qm9vdHN0cmFwLXJlc2V0LXRva2VuLWV4YW1wbGUtMDAw".into(),
            full_name: DisplayName::parse("Grace Hopper").expect("valid example"),
            password: Password::parse("quartz lantern meadow drift").expect("valid example"),
        }
    }
}

/// An invitation (never its token).
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct InvitationView {
    /// Id (`inv_…`).
    pub id: InvitationId,
    /// The invited address.
    pub email: String,
    /// The role the new user gets.
    pub role: Role,
    /// Where it stands now.
    pub status: InvitationState,
    /// Who invited.
    pub invited_by: Option<UserId>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry (7 days after creation).
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// The user it created.
    pub accepted_by: Option<UserId>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl InvitationView {
    fn of(inv: &InvitationRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: inv.id,
            email: inv.email.clone(),
            role: inv.role,
            status: InvitationStatus::of(inv, now).into(),
            invited_by: inv.invited_by,
            created_at: inv.created_at,
            expires_at: inv.expires_at,
            accepted_at: inv.accepted_at,
            accepted_by: inv.accepted_by,
            revoked_at: inv.revoked_at,
        }
    }
}

impl Example for InvitationView {
    fn example() -> Self {
        let created = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .expect("valid example")
            .with_timezone(&Utc);
        Self {
            id: InvitationId::parse("inv_0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
                .expect("valid example"),
            email: "grace@acme.example".into(),
            role: Role::Member,
            status: InvitationState::Pending,
            invited_by: UserId::parse("usr_0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c").ok(),
            created_at: created,
            expires_at: created + chrono::Duration::days(7),
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
        }
    }
}

impl BodyLimit for CreateInvitationRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}
impl BodyLimit for AcceptInvitationRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}

ok_response!(
    InvitationsOk,
    Vec<InvitationView>,
    "The tenant's invitations, newest first (at most 500)."
);
ok_response!(
    InvitationRevoked,
    InvitationView,
    "The invitation, now revoked."
);

#[derive(ApiResponse)]
enum InvitationCreated {
    /// Invitation stored; the message with its link is on its way.
    #[oai(status = 201)]
    Created(Json<InvitationView>),
}

#[derive(ApiResponse)]
enum InvitationAccepted {
    /// The user was created with the invited role; sign in with the new password.
    #[oai(status = 201)]
    Created(Json<UserView>),
}

problem_responses!(InvitationsError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(AcceptError { BadRequest = 400, Conflict = 409, Invalid = 422, Unavailable = 503 });

#[OpenApi(tag = "ApiTags::Users")]
impl InvitationsApi {
    /// Invite a user
    ///
    /// Owner or admin, and the owner's address must be verified. Emails a single-use link
    /// (7 days) to join with the role; inviting the same address again replaces the open
    /// invitation.
    #[oai(
        path = "/api/v1/invitations",
        method = "post",
        operation_id = "createInvitation"
    )]
    async fn create(
        &self,
        auth: UserAuth,
        body: ApiJson<CreateInvitationRequest>,
    ) -> Result<InvitationCreated, InvitationsError> {
        let b = body.0;
        let inv = self
            .app
            .invitations
            .create(&auth.0, b.email, b.role.into())
            .await?;
        Ok(InvitationCreated::Created(Json(InvitationView::of(
            &inv,
            self.app.invitations.now(),
        ))))
    }

    /// List invitations
    ///
    /// Owner or admin. Newest first, with their status.
    #[oai(
        path = "/api/v1/invitations",
        method = "get",
        operation_id = "listInvitations"
    )]
    async fn list(&self, auth: UserAuth) -> Result<InvitationsOk, InvitationsError> {
        let list = self.app.invitations.list(&auth.0).await?;
        let now = self.app.invitations.now();
        Ok(InvitationsOk::Ok(Json(
            list.iter().map(|i| InvitationView::of(i, now)).collect(),
        )))
    }

    /// Revoke an invitation
    ///
    /// Owner or admin. Its link stops working at once. Revoking twice is harmless; an accepted
    /// invitation cannot be revoked (409).
    #[oai(
        path = "/api/v1/invitations/:id",
        method = "delete",
        operation_id = "revokeInvitation"
    )]
    async fn revoke(
        &self,
        auth: UserAuth,
        /// Invitation id (`inv_…`).
        id: Path<InvitationId>,
    ) -> Result<InvitationRevoked, InvitationsError> {
        let inv = self.app.invitations.revoke(&auth.0, id.0).await?;
        Ok(InvitationRevoked::Ok(Json(InvitationView::of(
            &inv,
            self.app.invitations.now(),
        ))))
    }

    /// Accept an invitation
    ///
    /// With the token from the invitation's link (tenant from the subdomain or `X-Tenant-ID`):
    /// creates your user with the invited role and a verified address. Single use. Then sign
    /// in.
    #[oai(
        path = "/api/v1/invitations/accept",
        method = "post",
        operation_id = "acceptInvitation"
    )]
    async fn accept(
        &self,
        req: &Request,
        body: ApiJson<AcceptInvitationRequest>,
    ) -> Result<InvitationAccepted, AcceptError> {
        let named = required_tenant(req)?;
        let b = body.0;
        let token = parse_token(&b.token)?;
        let user = self
            .app
            .invitations
            .accept(
                &named,
                &token,
                b.full_name,
                b.password,
                &super::security::client_of(req),
            )
            .await?;
        Ok(InvitationAccepted::Created(Json((&user).into())))
    }
}
