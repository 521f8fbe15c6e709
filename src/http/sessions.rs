//! Sessions and two-factor authentication: refresh, logout, the caller's sessions, TOTP
//! enrolment, and the team's two-factor rule.

use super::accounts::{ACCOUNT_BODY_LIMIT, TokenResponse};
use super::examples::EXAMPLE_REFRESH;
use super::payload::{ApiJson, BodyLimit, Json};
use super::security::{EnrollingUser, UserAuth, app, client_of, named_tenant};
use super::tags::ApiTags;
use crate::app::App;
use crate::db::sessions::SessionRecord;
use crate::domain::SessionId;
use crate::error::AppError;
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

/// Session and two-factor operations.
pub struct SessionsApi {
    /// The application.
    pub app: Arc<App>,
}

/// Exchange a refresh token.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct RefreshRequest {
    /// The refresh token from sign-in or the previous refresh (`mrt_…`).
    #[oai(validator(max_length = 128))]
    pub refresh_token: String,
}

impl Example for RefreshRequest {
    fn example() -> Self {
        Self {
            refresh_token: EXAMPLE_REFRESH.into(),
        }
    }
}

/// A signed-in session of the caller.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct SessionView {
    /// Id (`ses_…`).
    pub id: SessionId,
    /// User agent at the last sign-in or refresh (the device).
    pub user_agent: Option<String>,
    /// Client address at the last sign-in or refresh.
    pub ip: Option<String>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last sign-in or refresh.
    pub last_used_at: DateTime<Utc>,
    /// When its refresh token stops working unless used.
    pub expires_at: DateTime<Utc>,
    /// This is the session of the access token making the request.
    pub current: bool,
}

impl Example for SessionView {
    fn example() -> Self {
        let at = DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        Self {
            id: SessionId::parse("ses_01a1fe6e-2f4c-7b0a-9c1e-5d2f8a7b6c40")
                .expect("valid example id"),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into()),
            ip: Some("203.0.113.7".into()),
            created_at: at,
            last_used_at: at + chrono::Duration::hours(2),
            expires_at: at + chrono::Duration::days(30),
            current: true,
        }
    }
}

impl SessionView {
    fn of(s: &SessionRecord, current: Option<SessionId>) -> Self {
        Self {
            id: s.id,
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            current: current == Some(s.id),
        }
    }
}

/// A TOTP secret to confirm.
#[derive(Object, Debug)]
#[oai(example)]
pub struct TwoFactorSetup {
    /// The secret, base32 (type it into an authenticator app).
    pub secret: String,
    /// `otpauth://totp/…` URI (show it as a QR code).
    pub otpauth_uri: String,
}

impl Example for TwoFactorSetup {
    fn example() -> Self {
        Self {
            secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            otpauth_uri: "otpauth://totp/Monte%20Carlo%20Platform:ada%40acme.example%20%28acme%29?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Monte%20Carlo%20Platform".into(),
        }
    }
}

/// Confirm enrolment with a current code.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct TwoFactorEnable {
    /// The 6-digit code the app shows now.
    #[oai(validator(max_length = 6, pattern = "^[0-9]{6}$"))]
    pub code: String,
}

impl Example for TwoFactorEnable {
    fn example() -> Self {
        Self {
            code: "492039".into(),
        }
    }
}

/// Recovery codes, shown once.
#[derive(Object, Debug)]
#[oai(example)]
pub struct RecoveryCodes {
    /// 10 single-use codes (`XXXX-XXXX-XXXX-XXXX`); each signs in once in place of a TOTP code.
    pub recovery_codes: Vec<String>,
}

impl Example for RecoveryCodes {
    fn example() -> Self {
        Self {
            recovery_codes: vec!["K7QF-2M4X-PZ3N-WB6D".into(), "R2TE-9H5L-C4VY-QJ8A".into()],
        }
    }
}

/// Disable two-factor authentication: the password or a current code.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example, skip_serializing_if_is_none)]
pub struct TwoFactorDisable {
    /// Your password.
    #[oai(validator(max_length = 128))]
    pub password: Option<String>,
    /// A current TOTP code or an unused recovery code.
    #[oai(validator(max_length = 64))]
    pub code: Option<String>,
}

impl Example for TwoFactorDisable {
    fn example() -> Self {
        Self {
            password: Some("correct horse battery".into()),
            code: None,
        }
    }
}

/// The team's security rules.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct TeamSecurity {
    /// Every user must use two-factor authentication; users without it are asked to enrol
    /// (403, problem type `two-factor-enrolment-required`) on every operation but enrolment.
    pub require_two_factor: bool,
}

impl Example for TeamSecurity {
    fn example() -> Self {
        Self {
            require_two_factor: true,
        }
    }
}

impl BodyLimit for RefreshRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}
impl BodyLimit for TwoFactorEnable {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}
impl BodyLimit for TwoFactorDisable {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}
impl BodyLimit for TeamSecurity {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}

ok_response!(
    RefreshOk,
    TokenResponse,
    "A new access token and a new refresh token (the one sent is now used up)."
);
ok_response!(
    SessionsOk,
    Vec<SessionView>,
    "The caller's live sessions, most recently used first."
);
ok_response!(
    SetupOk,
    TwoFactorSetup,
    "A new secret; confirm it with POST /api/v1/auth/2fa/enable."
);
ok_response!(
    EnabledOk,
    RecoveryCodes,
    "Two-factor authentication is on; store the recovery codes now."
);
ok_response!(TeamSecurityOk, TeamSecurity, "The team's security rules.");

/// Done; nothing to return.
#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

problem_responses!(RefreshError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(SessionError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, TooMany = 429, Unavailable = 503 });
problem_responses!(TwoFactorError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });

#[OpenApi(tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// Refresh a session
    ///
    /// Exchanges a refresh token for a new 15-minute access token and a new refresh token
    /// (rotation: the one sent is used up, and the session's 30-day lifetime slides). The
    /// tenant comes from the subdomain or `X-Tenant-ID`, as for every call; another tenant's
    /// token is unknown (401). Presenting a used refresh token again revokes the whole session
    /// (both the thief's and the owner's copy) and is audited.
    #[oai(
        path = "/api/v1/auth/refresh",
        method = "post",
        operation_id = "refresh"
    )]
    async fn refresh(
        &self,
        req: &Request,
        body: ApiJson<RefreshRequest>,
    ) -> Result<RefreshOk, RefreshError> {
        let named = named_tenant(req, &app(req)?.base_domain)?.ok_or_else(|| {
            AppError::bad_request(
                "name the tenant: use its subdomain (<slug>.<base domain>) or the X-Tenant-ID header",
            )
        })?;
        let signed_in = self
            .app
            .sessions
            .refresh(&named, &body.0.refresh_token, &client_of(req))
            .await?;
        Ok(RefreshOk::Ok(Json(TokenResponse::of(&signed_in))))
    }

    /// Sign out
    ///
    /// Ends the session of the access token: the token and its refresh token stop working at
    /// once, on every instance.
    #[oai(path = "/api/v1/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: EnrollingUser) -> Result<Done, SessionError> {
        self.app.sessions.logout(&auth.0).await?;
        Ok(Done::NoContent)
    }

    /// List my sessions
    ///
    /// The caller's live sessions (devices), most recently used first, with the current one
    /// flagged.
    #[oai(
        path = "/api/v1/auth/sessions",
        method = "get",
        operation_id = "listSessions"
    )]
    async fn sessions(&self, auth: EnrollingUser) -> Result<SessionsOk, SessionError> {
        let list = self.app.sessions.list(&auth.0).await?;
        let current = auth.0.session();
        Ok(SessionsOk::Ok(Json(
            list.iter().map(|s| SessionView::of(s, current)).collect(),
        )))
    }

    /// Revoke one of my sessions
    ///
    /// Ends one of the caller's sessions (e.g. a lost device) at once. Another user's session
    /// answers 404.
    #[oai(
        path = "/api/v1/auth/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        auth: EnrollingUser,
        /// Session id (`ses_…`).
        id: Path<SessionId>,
    ) -> Result<Done, SessionError> {
        self.app.sessions.revoke(&auth.0, id.0).await?;
        Ok(Done::NoContent)
    }

    /// Start two-factor enrolment
    ///
    /// A new TOTP secret (RFC 6238: SHA-1, 6 digits, 30 s) and its `otpauth://` URI. Confirm
    /// it with a code at `POST /api/v1/auth/2fa/enable`.
    #[oai(
        path = "/api/v1/auth/2fa/setup",
        method = "post",
        operation_id = "setupTwoFactor"
    )]
    async fn setup(&self, auth: EnrollingUser) -> Result<SetupOk, TwoFactorError> {
        let e = self.app.two_factor.setup(&auth.0).await?;
        Ok(SetupOk::Ok(Json(TwoFactorSetup {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
        })))
    }

    /// Enable two-factor authentication
    ///
    /// Confirms the secret from setup with a current code. Returns 10 single-use recovery
    /// codes, once. From then on signing in needs `otp`.
    #[oai(
        path = "/api/v1/auth/2fa/enable",
        method = "post",
        operation_id = "enableTwoFactor"
    )]
    async fn enable(
        &self,
        auth: EnrollingUser,
        body: ApiJson<TwoFactorEnable>,
    ) -> Result<EnabledOk, TwoFactorError> {
        let codes = self.app.two_factor.enable(&auth.0, &body.0.code).await?;
        Ok(EnabledOk::Ok(Json(RecoveryCodes {
            recovery_codes: codes,
        })))
    }

    /// Disable two-factor authentication
    ///
    /// Needs the password or a current code (or an unused recovery code). Refused while the
    /// team requires two-factor authentication.
    #[oai(
        path = "/api/v1/auth/2fa/disable",
        method = "post",
        operation_id = "disableTwoFactor"
    )]
    async fn disable(
        &self,
        auth: UserAuth,
        body: ApiJson<TwoFactorDisable>,
    ) -> Result<Done, TwoFactorError> {
        let b = body.0;
        self.app
            .two_factor
            .disable(&auth.0, b.password, b.code)
            .await?;
        Ok(Done::NoContent)
    }

    /// Read the team's security rules
    ///
    /// Whether the team requires two-factor authentication.
    #[oai(
        path = "/api/v1/team/security",
        method = "get",
        operation_id = "getTeamSecurity",
        tag = "ApiTags::Users"
    )]
    async fn team_security(&self, auth: UserAuth) -> Result<TeamSecurityOk, TwoFactorError> {
        let required = self.app.two_factor.team_required(&auth.0).await?;
        Ok(TeamSecurityOk::Ok(Json(TeamSecurity {
            require_two_factor: required,
        })))
    }

    /// Change the team's security rules
    ///
    /// Owner only. Requiring two-factor authentication needs it on the owner's own account
    /// first; users without it are then asked to enrol on their next request.
    #[oai(
        path = "/api/v1/team/security",
        method = "put",
        operation_id = "setTeamSecurity",
        tag = "ApiTags::Users"
    )]
    async fn set_team_security(
        &self,
        auth: UserAuth,
        body: ApiJson<TeamSecurity>,
    ) -> Result<TeamSecurityOk, TwoFactorError> {
        let required = self
            .app
            .two_factor
            .set_team_required(&auth.0, body.0.require_two_factor)
            .await?;
        Ok(TeamSecurityOk::Ok(Json(TeamSecurity {
            require_two_factor: required,
        })))
    }
}
