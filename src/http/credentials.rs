//! Passwords and email addresses: change, reset by email, email verification.

use super::accounts::{ACCOUNT_BODY_LIMIT, UserView, client_ip};
use super::payload::{ApiJson, BodyLimit, Json};
use super::security::{UserAuth, app, client_of, named_tenant};
use super::tags::ApiTags;
use crate::app::App;
use crate::app::directory::NamedTenant;
use crate::domain::{Email, OneTimeToken, Password};
use crate::error::AppError;
use crate::{ok_response, problem_responses};
use poem::Request;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

/// Password and email-address operations.
pub struct CredentialsApi {
    /// The application.
    pub app: Arc<App>,
}

/// A short confirmation.
#[derive(Object, Debug)]
#[oai(example)]
pub struct Notice {
    /// What happened (or, for a reset request, what happens if the address is known).
    pub message: String,
}

impl Example for Notice {
    fn example() -> Self {
        Self {
            message: "password changed; your other sessions were signed out".into(),
        }
    }
}

/// Change the signed-in user's password.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct ChangePasswordRequest {
    /// The current password.
    #[oai(validator(max_length = 128))]
    pub current_password: String,
    /// The new password: 8–128 characters, not easy to guess (zxcvbn strength at least 3 of
    /// 4), different from the current one.
    pub new_password: Password,
}

impl Example for ChangePasswordRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery".into(),
            new_password: Password::parse("quartz lantern meadow drift").expect("valid example"),
        }
    }
}

/// Ask for a password-reset link.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct PasswordResetRequest {
    /// The account's email.
    pub email: Email,
}

impl Example for PasswordResetRequest {
    fn example() -> Self {
        Self {
            email: Email::parse("ada@acme.example").expect("valid example"),
        }
    }
}

/// Set a new password with the token from the reset message.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct PasswordResetConfirm {
    /// The token from the link in the message (43 characters).
    #[oai(validator(max_length = 64))]
    pub token: String,
    /// The new password: 8–128 characters, not easy to guess (zxcvbn strength at least 3 of 4).
    pub new_password: Password,
}

impl Example for PasswordResetConfirm {
    fn example() -> Self {
        Self {
            token: "Qm9vdHN0cmFwLXJlc2V0LXRva2VuLWV4YW1wbGUtMDAw".into(),
            new_password: Password::parse("quartz lantern meadow drift").expect("valid example"),
        }
    }
}

/// Confirm an email address with the token from the verification message.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct VerifyEmailRequest {
    /// The token from the link in the message (43 characters).
    #[oai(validator(max_length = 64))]
    pub token: String,
}

impl Example for VerifyEmailRequest {
    fn example() -> Self {
        Self {
            token: "Qm9vdHN0cmFwLXJlc2V0LXRva2VuLWV4YW1wbGUtMDAw".into(),
        }
    }
}

impl BodyLimit for ChangePasswordRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}
impl BodyLimit for PasswordResetRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}
impl BodyLimit for PasswordResetConfirm {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}
impl BodyLimit for VerifyEmailRequest {
    const MAX_BODY_BYTES: usize = ACCOUNT_BODY_LIMIT;
}

ok_response!(
    PasswordChanged,
    Notice,
    "Password changed; other sessions end."
);
ok_response!(PasswordReset, Notice, "Password set; every session ends.");
ok_response!(EmailVerified, UserView, "The address is verified.");

#[derive(ApiResponse)]
enum ResetAccepted {
    /// Always this answer, whether or not the address belongs to an account: if it does, a
    /// single-use link (30 minutes) is on its way.
    #[oai(status = 202)]
    Accepted(Json<Notice>),
}

#[derive(ApiResponse)]
enum ResendAccepted {
    /// A new verification link is on its way.
    #[oai(status = 202)]
    Accepted(Json<Notice>),
}

problem_responses!(ChangeError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(ResetError { BadRequest = 400, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(TokenError { BadRequest = 400, Invalid = 422, Unavailable = 503 });
problem_responses!(ResendError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, TooMany = 429, Unavailable = 503 });

/// The tenant named by the subdomain or `X-Tenant-ID` (400 when none).
pub(super) fn required_tenant(req: &Request) -> Result<NamedTenant, AppError> {
    named_tenant(req, &app(req)?.base_domain)?.ok_or_else(|| {
        AppError::bad_request(
            "name the tenant: use its subdomain (<slug>.<base domain>) or the X-Tenant-ID header",
        )
    })
}

/// A token from a request body (422 naming `token` when malformed).
pub(super) fn parse_token(s: &str) -> Result<OneTimeToken, AppError> {
    OneTimeToken::parse(s).map_err(|e| AppError::validation("token", e))
}

#[OpenApi(tag = "ApiTags::Accounts")]
impl CredentialsApi {
    /// Change password
    ///
    /// The signed-in user changes their password: the current one is required, the new one
    /// must not be easy to guess (the problem's detail says why it is refused). The user's
    /// other sessions end. Wrong current passwords count towards the sign-in lockout.
    #[oai(
        path = "/api/v1/auth/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        req: &Request,
        auth: UserAuth,
        body: ApiJson<ChangePasswordRequest>,
    ) -> Result<PasswordChanged, ChangeError> {
        let b = body.0;
        self.app
            .credentials
            .change_password(&auth.0, b.current_password, b.new_password, &client_ip(req))
            .await?;
        Ok(PasswordChanged::Ok(Json(Notice {
            message: "password changed; your other sessions were signed out".into(),
        })))
    }

    /// Request a password reset
    ///
    /// Sends a single-use reset link (valid 30 minutes) to the address if it belongs to a user
    /// of the tenant (subdomain or `X-Tenant-ID`). The answer is the same, after the same time,
    /// whether or not it does. At most one message per user per minute; throttled like
    /// sign-in.
    #[oai(
        path = "/api/v1/auth/password-reset",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn request_reset(
        &self,
        req: &Request,
        body: ApiJson<PasswordResetRequest>,
    ) -> Result<ResetAccepted, ResetError> {
        let named = required_tenant(req)?;
        self.app
            .credentials
            .request_reset(&named, &body.0.email, &client_of(req))
            .await?;
        Ok(ResetAccepted::Accepted(Json(Notice {
            message: "if this address belongs to an account, a password-reset link valid for 30 minutes is on its way".into(),
        })))
    }

    /// Reset the password
    ///
    /// Sets a new password with the token from the reset message (single use, 30 minutes).
    /// Every session of the user ends. A weak password is refused (the token stays usable).
    #[oai(
        path = "/api/v1/auth/password-reset/confirm",
        method = "post",
        operation_id = "confirmPasswordReset"
    )]
    async fn confirm_reset(
        &self,
        req: &Request,
        body: ApiJson<PasswordResetConfirm>,
    ) -> Result<PasswordReset, TokenError> {
        let named = required_tenant(req)?;
        let b = body.0;
        let token = parse_token(&b.token)?;
        self.app
            .credentials
            .confirm_reset(&named, &token, b.new_password, &client_of(req))
            .await?;
        Ok(PasswordReset::Ok(Json(Notice {
            message: "password set; sign in with it (every session was signed out)".into(),
        })))
    }

    /// Verify an email address
    ///
    /// Confirms the address with the token from the verification message sent at signup (or
    /// resent). The tenant comes from the subdomain or `X-Tenant-ID`.
    #[oai(
        path = "/api/v1/auth/verify-email",
        method = "post",
        operation_id = "verifyEmail"
    )]
    async fn verify_email(
        &self,
        req: &Request,
        body: ApiJson<VerifyEmailRequest>,
    ) -> Result<EmailVerified, TokenError> {
        let named = required_tenant(req)?;
        let token = parse_token(&body.0.token)?;
        let user = self
            .app
            .credentials
            .verify_email(&named, &token, &client_of(req))
            .await?;
        Ok(EmailVerified::Ok(Json((&user).into())))
    }

    /// Resend the verification link
    ///
    /// Sends the signed-in user a new email-verification link (48 hours). At most one per
    /// minute (429 with `Retry-After`); 409 when the address is already verified.
    #[oai(
        path = "/api/v1/auth/verify-email/resend",
        method = "post",
        operation_id = "resendVerification"
    )]
    async fn resend(&self, auth: UserAuth) -> Result<ResendAccepted, ResendError> {
        self.app.credentials.resend_verification(&auth.0).await?;
        Ok(ResendAccepted::Accepted(Json(Notice {
            message: "a new verification link is on its way".into(),
        })))
    }
}
