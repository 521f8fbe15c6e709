//! Signup, login, `me`, and tenant users.

use super::keys::NewApiKey;
use super::payload::{ApiJson, BodyLimit, Json};
use super::security::{Caller, UserAuth, app, client_of, named_tenant};
use super::tags::ApiTags;
use crate::app::App;
use crate::app::accounts::{NewUser, Signup};
use crate::db::users::UserRecord;
use crate::domain::{
    ApiKeyId, DisplayName, Email, Password, Role, SessionId, Tenant, TenantId, TenantSlug,
    TenantStatus, UserId,
};
use crate::error::AppError;
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

/// Account operations.
pub struct AccountsApi {
    /// The application.
    pub app: Arc<App>,
}

/// Sign up an organisation.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct SignupRequest {
    /// Organisation name (1–200 characters).
    pub organisation_name: DisplayName,
    /// Subdomain slug: `^[a-z][a-z0-9-]{2,39}$`, not reserved (www, api, admin, app, docs,
    /// static, public, platform, pg_*, information_schema).
    pub slug: TenantSlug,
    /// Owner's full name (1–200 characters).
    pub full_name: DisplayName,
    /// Owner's email.
    pub email: Email,
    /// Owner's password, 8–128 characters, not easy to guess (zxcvbn strength at least 3 of 4;
    /// a weak one is refused with 422 saying why).
    pub password: Password,
}

impl Example for SignupRequest {
    fn example() -> Self {
        Self {
            organisation_name: DisplayName::parse("Acme Capital").expect("valid example"),
            slug: TenantSlug::parse("acme").expect("valid example"),
            full_name: DisplayName::parse("Ada Lovelace").expect("valid example"),
            email: Email::parse("ada@acme.example").expect("valid example"),
            password: Password::parse("correct horse battery").expect("valid example"),
        }
    }
}

/// A tenant as its members see it.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct TenantView {
    /// Id (`ten_…`).
    pub id: TenantId,
    /// Slug / subdomain.
    pub slug: TenantSlug,
    /// Organisation name.
    pub name: String,
    /// Tier name.
    pub tier: String,
    /// Status.
    pub status: TenantStatus,
    /// End of the trial (trial tier only).
    pub trial_ends_at: Option<DateTime<Utc>>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        Self {
            id: t.id,
            slug: t.slug.clone(),
            name: t.display_name.clone(),
            tier: t.tier.name.clone(),
            status: t.status,
            trial_ends_at: t.trial_ends_at,
        }
    }
}

/// A user.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct UserView {
    /// Id (`usr_…`).
    pub id: UserId,
    /// Normalised email.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Role.
    pub role: Role,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// `false` once deactivated (in team listings and changes).
    pub active: Option<bool>,
    /// Two-factor authentication is enabled (in team listings and changes).
    pub two_factor_enabled: Option<bool>,
    /// When the user confirmed their address (absent: not yet; see
    /// `POST /api/v1/auth/verify-email`).
    pub email_verified_at: Option<DateTime<Utc>>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            role: u.role,
            created_at: u.created_at,
            active: None,
            two_factor_enabled: None,
            email_verified_at: u.email_verified_at,
        }
    }
}

impl UserView {
    /// The view of a user with their state (team listings and changes).
    pub fn with_state(u: &UserRecord, state: &crate::db::users::UserState) -> Self {
        Self {
            role: state.role,
            active: Some(state.status == crate::db::users::UserStatus::Active),
            two_factor_enabled: Some(state.two_factor),
            ..Self::from(u)
        }
    }
}

/// Signup result. The API key secrets are shown only here.
#[derive(Object, Debug)]
#[oai(example)]
pub struct SignupResponse {
    /// The new tenant (30-day trial).
    pub tenant: TenantView,
    /// The owner.
    pub user: UserView,
    /// Access token (HS256 JWT, 15 minutes).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access-token expiry.
    pub expires_at: DateTime<Utc>,
    /// Refresh token (opaque, `mrt_…`): exchange it at `POST /api/v1/auth/refresh`. Shown once.
    pub refresh_token: String,
    /// Two API keys, with their secrets (store them now: they are never shown again).
    pub api_keys: Vec<NewApiKey>,
}

/// Sign in.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example, skip_serializing_if_is_none)]
pub struct LoginRequest {
    /// Email.
    pub email: Email,
    /// Password.
    #[oai(validator(max_length = 128))]
    pub password: String,
    /// Second factor, for accounts with two-factor authentication: the 6-digit code from the
    /// authenticator app, or an unused recovery code (`XXXX-XXXX-XXXX-XXXX`). Without it such
    /// an account answers 401 with problem type `…/problems/two-factor-required`.
    #[oai(validator(max_length = 64))]
    pub otp: Option<String>,
}

impl Example for LoginRequest {
    fn example() -> Self {
        Self {
            email: Email::parse("ada@acme.example").expect("valid example"),
            password: "correct horse battery".into(),
            otp: None,
        }
    }
}

/// Tokens of a session.
#[derive(Object, Debug)]
#[oai(example)]
pub struct TokenResponse {
    /// HS256 JWT with claims iss, aud, sub, tid, sid (the session), iat, exp, jti. The role is
    /// not in the token: it is read on every request.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Expiry (15 minutes after issue).
    pub expires_at: DateTime<Utc>,
    /// Refresh token (opaque, `mrt_…`, 256 bits): exchange it at `POST /api/v1/auth/refresh`
    /// before `refresh_expires_at`. Each use returns a new one; presenting a used one again
    /// ends the session.
    pub refresh_token: String,
    /// When the refresh token stops working unless used (sliding: each refresh extends it).
    pub refresh_expires_at: DateTime<Utc>,
    /// The session (`ses_…`), as listed by `GET /api/v1/auth/sessions`.
    pub session_id: SessionId,
    /// The team requires two-factor authentication and this user has not enrolled: every
    /// operation but enrolment (`/api/v1/auth/2fa/…`), sessions and logout answers 403 until
    /// they do.
    pub two_factor_enrolment_required: bool,
    /// The signed-in user.
    pub user: UserView,
}

impl TokenResponse {
    /// The response for a signed-in user.
    pub fn of(s: &crate::app::sessions::SignedIn) -> Self {
        Self {
            access_token: s.tokens.access.token.clone(),
            token_type: "Bearer".into(),
            expires_at: s.tokens.access.expires_at,
            refresh_token: s.tokens.refresh_token.clone(),
            refresh_expires_at: s.tokens.refresh_expires_at,
            session_id: s.tokens.session,
            two_factor_enrolment_required: s.must_enrol_two_factor,
            user: (&s.user).into(),
        }
    }
}

/// Who is calling.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct MeResponse {
    /// The tenant.
    pub tenant: TenantView,
    /// The signed-in user (bearer token callers).
    pub user: Option<UserView>,
    /// The API key id (`key_…`, API-key callers).
    pub api_key_id: Option<ApiKeyId>,
}

/// Add a user to the tenant.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct CreateUserRequest {
    /// Email (unique within the tenant).
    pub email: Email,
    /// Full name (1–200 characters).
    pub full_name: DisplayName,
    /// Initial password, 8–128 characters.
    pub password: Password,
    /// `admin`, `member` or `viewer` (owners are made by changing a role or transferring
    /// ownership).
    pub role: MemberRole,
}

/// The roles a new user can be given.
#[derive(poem_openapi::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum MemberRole {
    /// Manages users and API keys.
    Admin,
    /// Runs simulations and reads results.
    Member,
    /// Reads simulations, jobs and usage.
    Viewer,
}

impl From<MemberRole> for Role {
    fn from(r: MemberRole) -> Self {
        match r {
            MemberRole::Admin => Role::Admin,
            MemberRole::Member => Role::Member,
            MemberRole::Viewer => Role::Viewer,
        }
    }
}

impl Example for CreateUserRequest {
    fn example() -> Self {
        Self {
            email: Email::parse("grace@acme.example").expect("valid example"),
            full_name: DisplayName::parse("Grace Hopper").expect("valid example"),
            password: Password::parse("another long secret").expect("valid example"),
            role: MemberRole::Member,
        }
    }
}

#[derive(ApiResponse)]
enum SignupCreated {
    /// Tenant provisioned on a 30-day trial.
    #[oai(status = 201)]
    Created(Json<SignupResponse>),
}

problem_responses!(SignupError { BadRequest = 400, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(LoginError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(MeError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, TooMany = 429, Unavailable = 503 });
problem_responses!(UsersError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });

/// Largest body of the account operations.
pub const ACCOUNT_BODY_LIMIT: usize = 8 * 1024;

impl BodyLimit for SignupRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}

impl BodyLimit for LoginRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}

impl BodyLimit for CreateUserRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}

ok_response!(
    TokenOk,
    TokenResponse,
    "Signed in: a 15-minute access token and a refresh token."
);
ok_response!(
    MeOk,
    MeResponse,
    "The tenant and the user or API key behind the request."
);
ok_response!(
    UsersOk,
    Vec<UserView>,
    "Every user of the tenant, oldest first."
);

#[derive(ApiResponse)]
enum UserCreated {
    /// User added.
    #[oai(status = 201)]
    Created(Json<UserView>),
}

/// The client's address: the peer, or the forwarded client behind a trusted proxy.
pub(super) fn client_ip(req: &Request) -> String {
    client_of(req).ip_or_unknown().to_string()
}

#[OpenApi(tag = "ApiTags::Accounts")]
impl AccountsApi {
    /// Sign up an organisation
    ///
    /// Provisions a tenant (its own PostgreSQL schema, migrated), its owner and two API keys,
    /// atomically, on a 30-day trial. Returns an access token and the API key secrets (shown
    /// only here). Throttled per client IP.
    #[oai(path = "/api/v1/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        req: &Request,
        body: ApiJson<SignupRequest>,
    ) -> Result<SignupCreated, SignupError> {
        let b = body.0;
        let done = self
            .app
            .accounts
            .signup(
                Signup {
                    organisation_name: b.organisation_name,
                    slug: b.slug,
                    full_name: b.full_name,
                    email: b.email,
                    password: b.password,
                },
                &client_of(req),
            )
            .await?;
        Ok(SignupCreated::Created(Json(SignupResponse {
            tenant: done.tenant.as_ref().into(),
            user: (&done.owner).into(),
            access_token: done.tokens.access.token,
            token_type: "Bearer".into(),
            expires_at: done.tokens.access.expires_at,
            refresh_token: done.tokens.refresh_token,
            api_keys: done.keys.iter().map(NewApiKey::from).collect(),
        })))
    }

    /// Sign in
    ///
    /// Exchanges email and password (and, with two-factor authentication, `otp`) for a
    /// 15-minute access token and a refresh token. The tenant comes from the subdomain or
    /// `X-Tenant-ID`. Throttled per IP and per account (5 per minute) with an exponential
    /// lockout after repeated failures. An account with two-factor authentication and no `otp`
    /// answers 401 with problem type `https://docs.montecarlo.dev/problems/two-factor-required`.
    #[oai(path = "/api/v1/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        body: ApiJson<LoginRequest>,
    ) -> Result<TokenOk, LoginError> {
        let named = named_tenant(req, &app(req)?.base_domain)?.ok_or_else(|| {
            AppError::bad_request(
                "name the tenant: use its subdomain (<slug>.<base domain>) or the X-Tenant-ID header",
            )
        })?;
        let b = body.0;
        let signed_in = self
            .app
            .sessions
            .login(&named, &b.email, b.password, b.otp, &client_of(req))
            .await?;
        Ok(TokenOk::Ok(Json(TokenResponse::of(&signed_in))))
    }

    /// Who am I
    ///
    /// The tenant and the signed-in user (bearer token) or API key behind the request.
    #[oai(path = "/api/v1/auth/me", method = "get", operation_id = "me")]
    async fn me(&self, caller: Caller) -> Result<MeOk, MeError> {
        let me = self.app.accounts.me(&caller.0).await?;
        Ok(MeOk::Ok(Json(MeResponse {
            tenant: me.tenant.as_ref().into(),
            user: me.user.as_ref().map(Into::into),
            api_key_id: me.api_key,
        })))
    }

    /// Add a user
    ///
    /// Owner or admin only. Adds an `admin`, `member` or `viewer` to the tenant (nobody gives
    /// a role above their own).
    #[oai(
        path = "/api/v1/users",
        method = "post",
        operation_id = "createUser",
        tag = "ApiTags::Users"
    )]
    async fn create_user(
        &self,
        auth: UserAuth,
        body: ApiJson<CreateUserRequest>,
    ) -> Result<UserCreated, UsersError> {
        let b = body.0;
        let user = self
            .app
            .accounts
            .create_user(
                &auth.0,
                NewUser {
                    email: b.email,
                    full_name: b.full_name,
                    password: b.password,
                    role: b.role.into(),
                },
            )
            .await?;
        Ok(UserCreated::Created(Json((&user).into())))
    }

    /// List users
    ///
    /// Every user of the tenant (removed users are hidden), oldest first, with their role,
    /// active flag and whether they use two-factor authentication.
    #[oai(
        path = "/api/v1/users",
        method = "get",
        operation_id = "listUsers",
        tag = "ApiTags::Users"
    )]
    async fn list_users(&self, auth: UserAuth) -> Result<UsersOk, UsersError> {
        let users = self.app.team.list(&auth.0).await?;
        Ok(UsersOk::Ok(Json(
            users
                .iter()
                .map(|(u, s)| UserView::with_state(u, s))
                .collect(),
        )))
    }
}
