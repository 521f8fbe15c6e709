//! Signed-out account pages of a tenant's host, reached from the links in our mail:
//! `/forgot-password`, `/reset-password?token=`, `/verify-email?token=` and
//! `/accept-invitation?token=`.
//!
//! A link in a message never changes state on GET: mail scanners and link previews fetch
//! links before the person does, so a GET that verified an address or used up a token would
//! act without them. Each GET shows a form carrying the token in a hidden field, and only its
//! POST (with the visitor's CSRF token) calls the service.

use super::csrf;
use super::page::{self, Chrome, FieldErrors};
use super::session::{self, TenantSite};
use crate::app::directory::{NamedTenant, TenantSource};
use crate::domain::{DisplayName, Email, OneTimeToken, Password, Tenant};
use crate::error::AppError;
use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::{Form, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

/// Longest value of any field (longer input is refused at once).
const MAX_FIELD: usize = 1024;

fn named(tenant: &Tenant) -> NamedTenant {
    NamedTenant {
        slug: tenant.slug.clone(),
        source: TenantSource::Subdomain,
    }
}

fn too_long(fields: &[&str]) -> bool {
    fields.iter().any(|f| f.len() > MAX_FIELD)
}

/// The status a service's client error answers with (422 for anything unexpected).
fn status_of(err: &AppError) -> StatusCode {
    StatusCode::from_u16(err.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}

/// `?token=` of the mail links.
#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

// ---------------------------------------------------------------- forgot password

#[derive(Template)]
#[template(path = "account/forgot.html")]
struct ForgotPage {
    chrome: Chrome,
    email: String,
    sent: bool,
    errors: FieldErrors,
}

/// The forgot-password form's fields.
#[derive(Debug, Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /forgot-password`: asks for the address.
#[handler]
pub async fn forgot_form(req: &Request, TenantSite(tenant): TenantSite) -> poem::Result<Response> {
    Ok(page::render(
        StatusCode::OK,
        &ForgotPage {
            chrome: Chrome::public(req).in_tenant(&tenant),
            email: String::new(),
            sent: false,
            errors: FieldErrors::default(),
        },
    ))
}

/// `POST /forgot-password`: `CredentialService::request_reset`, then always the same "if the
/// address exists, a mail is on its way" page (the service answers alike for unknown
/// addresses). A malformed address is shown next to the field (422); throttling is 429.
#[handler]
pub async fn forgot(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Form(form): Form<ForgotForm>,
) -> poem::Result<Response> {
    csrf::check_visitor(req, &form.csrf)?;
    let app = session::app(req)?;
    let email_text: String = form.email.trim().chars().take(MAX_FIELD).collect();
    let show = |status, sent, errors| {
        page::render(
            status,
            &ForgotPage {
                chrome: Chrome::public(req).in_tenant(&tenant),
                email: email_text.clone(),
                sent,
                errors,
            },
        )
    };
    let email = match Email::parse(&email_text) {
        Ok(e) => e,
        Err(why) => {
            let mut errors = FieldErrors::default();
            errors.add("email", format!("enter a valid email address ({why})"));
            return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, false, errors));
        }
    };
    let client = crate::http::security::client_of(req);
    match app
        .credentials
        .request_reset(&named(&tenant), &email, &client)
        .await
    {
        Ok(()) => Ok(show(StatusCode::OK, true, FieldErrors::default())),
        Err(err @ AppError::Client(_)) => Ok(show(
            status_of(&err),
            false,
            FieldErrors::from_app_error(&err, &["email"]),
        )),
        Err(err) => Err(err.into()),
    }
}

// ---------------------------------------------------------------- reset password

#[derive(Template)]
#[template(path = "account/reset.html")]
struct ResetPage {
    chrome: Chrome,
    token: String,
    errors: FieldErrors,
}

/// The reset form's fields.
#[derive(Debug, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /reset-password?token=`: the new-password form (the token is checked on POST).
#[handler]
pub async fn reset_form(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Query(q): Query<TokenQuery>,
) -> poem::Result<Response> {
    let mut errors = FieldErrors::default();
    if q.token.is_empty() {
        errors.form = Some(
            "This link has no token: open the link from the email again, or ask for a new one."
                .into(),
        );
    }
    Ok(page::render(
        StatusCode::OK,
        &ResetPage {
            chrome: Chrome::public(req).in_tenant(&tenant),
            token: q.token.chars().take(MAX_FIELD).collect(),
            errors,
        },
    ))
}

/// `POST /reset-password`: `CredentialService::confirm_reset`; success → `/login` with a
/// flash. A bad token or a weak password is shown again with the service's detail (422).
#[handler]
pub async fn reset(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Form(form): Form<ResetForm>,
) -> poem::Result<Response> {
    csrf::check_visitor(req, &form.csrf)?;
    let app = session::app(req)?;
    let show = |status, errors| {
        page::render(
            status,
            &ResetPage {
                chrome: Chrome::public(req).in_tenant(&tenant),
                token: form.token.chars().take(MAX_FIELD).collect(),
                errors,
            },
        )
    };
    let mut errors = FieldErrors::default();
    if too_long(&[&form.token, &form.new_password]) {
        errors.form = Some(format!("fields are limited to {MAX_FIELD} characters"));
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let token = OneTimeToken::parse(form.token.trim())
        .map_err(|e| {
            errors.form = Some(format!(
                "This reset link is not valid ({e}). Ask for a new one."
            ))
        })
        .ok();
    let password = Password::parse(&form.new_password)
        .map_err(|e| errors.add("new_password", e))
        .ok();
    let (Some(token), Some(password)) = (token, password) else {
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors));
    };
    let client = crate::http::security::client_of(req);
    match app
        .credentials
        .confirm_reset(&named(&tenant), &token, password, &client)
        .await
    {
        Ok(()) => Ok(page::with_flash(
            page::redirect("/login"),
            "success",
            "Your password was changed and every session signed out. Sign in with the new password.",
        )),
        Err(err @ AppError::Client(_)) => Ok(show(
            status_of(&err),
            FieldErrors::from_app_error(&err, &["new_password"]),
        )),
        Err(err) => Err(err.into()),
    }
}

// ---------------------------------------------------------------- verify email

#[derive(Template)]
#[template(path = "account/verify.html")]
struct VerifyPage {
    chrome: Chrome,
    token: String,
    errors: FieldErrors,
}

/// The verification form's fields.
#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /verify-email?token=`: a page with one button that POSTs the token. The GET changes
/// nothing: mail scanners prefetch links, and must not verify an address on the person's
/// behalf (or use the token up).
#[handler]
pub async fn verify_form(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Query(q): Query<TokenQuery>,
) -> poem::Result<Response> {
    let mut errors = FieldErrors::default();
    if q.token.is_empty() {
        errors.form = Some("This link has no token: open the link from the email again.".into());
    }
    Ok(page::render(
        StatusCode::OK,
        &VerifyPage {
            chrome: Chrome::public(req).in_tenant(&tenant),
            token: q.token.chars().take(MAX_FIELD).collect(),
            errors,
        },
    ))
}

/// `POST /verify-email`: `CredentialService::verify_email`; success → `/login` (or home when
/// signed in) with a flash; a bad token shows the service's detail (422).
#[handler]
pub async fn verify(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Form(form): Form<VerifyForm>,
) -> poem::Result<Response> {
    csrf::check_visitor(req, &form.csrf)?;
    let app = session::app(req)?;
    let show = |status, errors| {
        page::render(
            status,
            &VerifyPage {
                chrome: Chrome::public(req).in_tenant(&tenant),
                token: form.token.chars().take(MAX_FIELD).collect(),
                errors,
            },
        )
    };
    let token = match OneTimeToken::parse(form.token.trim()) {
        Ok(t) if form.token.len() <= MAX_FIELD => t,
        Ok(_) | Err(_) => {
            let errors = FieldErrors {
                form: Some(
                    "This verification link is not valid. Open the link from the latest email."
                        .into(),
                ),
                ..FieldErrors::default()
            };
            return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors));
        }
    };
    let client = crate::http::security::client_of(req);
    match app
        .credentials
        .verify_email(&named(&tenant), &token, &client)
        .await
    {
        Ok(user) => {
            let next = match session::current(req).await? {
                session::Current::SignedIn(_) => "/",
                _ => "/login",
            };
            Ok(page::with_flash(
                page::redirect(next),
                "success",
                &format!("Thank you: {} is verified.", user.email),
            ))
        }
        Err(err @ AppError::Client(_)) => Ok(show(
            status_of(&err),
            FieldErrors::from_app_error(&err, &[]),
        )),
        Err(err) => Err(err.into()),
    }
}

// ---------------------------------------------------------------- accept invitation

#[derive(Template)]
#[template(path = "account/accept.html")]
struct AcceptPage {
    chrome: Chrome,
    tenant_name: String,
    token: String,
    full_name: String,
    errors: FieldErrors,
}

/// The invitation form's fields.
#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /accept-invitation?token=`: the name and password form.
#[handler]
pub async fn accept_form(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Query(q): Query<TokenQuery>,
) -> poem::Result<Response> {
    let mut errors = FieldErrors::default();
    if q.token.is_empty() {
        errors.form =
            Some("This link has no token: open the link from the invitation email again.".into());
    }
    Ok(page::render(
        StatusCode::OK,
        &AcceptPage {
            chrome: Chrome::public(req).in_tenant(&tenant),
            tenant_name: tenant.display_name.clone(),
            token: q.token.chars().take(MAX_FIELD).collect(),
            full_name: String::new(),
            errors,
        },
    ))
}

/// `POST /accept-invitation`: `InvitationService::accept` creates the user, then
/// `SessionService::login` signs them in (session cookie, 303 home). When the sign-in step is
/// refused (e.g. throttled), the account exists: 303 to `/login` with a flash.
#[handler]
pub async fn accept(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Form(form): Form<AcceptForm>,
) -> poem::Result<Response> {
    csrf::check_visitor(req, &form.csrf)?;
    let app = session::app(req)?;
    let show = |status, errors| {
        page::render(
            status,
            &AcceptPage {
                chrome: Chrome::public(req).in_tenant(&tenant),
                tenant_name: tenant.display_name.clone(),
                token: form.token.chars().take(MAX_FIELD).collect(),
                full_name: form.full_name.chars().take(MAX_FIELD).collect(),
                errors,
            },
        )
    };
    let mut errors = FieldErrors::default();
    if too_long(&[&form.token, &form.full_name, &form.password]) {
        errors.form = Some(format!("fields are limited to {MAX_FIELD} characters"));
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let token = OneTimeToken::parse(form.token.trim())
        .map_err(|e| {
            errors.form = Some(format!(
                "This invitation link is not valid ({e}). Open the link from the latest invitation."
            ))
        })
        .ok();
    let full_name = DisplayName::parse(form.full_name.trim())
        .map_err(|e| errors.add("full_name", e))
        .ok();
    let password = Password::parse(&form.password)
        .map_err(|e| errors.add("password", e))
        .ok();
    let (Some(token), Some(full_name), Some(password)) = (token, full_name, password) else {
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors));
    };
    let client = crate::http::security::client_of(req);
    let named = named(&tenant);
    let user = match app
        .invitations
        .accept(&named, &token, full_name, password, &client)
        .await
    {
        Ok(user) => user,
        Err(err @ AppError::Client(_)) => {
            return Ok(show(
                status_of(&err),
                FieldErrors::from_app_error(&err, &["full_name", "password"]),
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let email = Email::parse(&user.email).map_err(|e| AppError::internal(e.to_string()))?;
    match app
        .sessions
        .login(&named, &email, form.password.clone(), None, &client)
        .await
    {
        Ok(signed_in) => {
            let max_age = (signed_in.tokens.refresh_expires_at - app.clock.now())
                .num_seconds()
                .max(0);
            let mut resp = page::with_flash(
                page::redirect("/"),
                "success",
                &format!("Welcome to {}.", tenant.display_name),
            );
            if let Some(cookie) =
                session::session_cookie(req, &signed_in.tokens.refresh_token, max_age)
            {
                resp.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(resp)
        }
        Err(_) => Ok(page::with_flash(
            page::redirect("/login"),
            "success",
            "Your account is ready. Sign in with your email and the password you chose.",
        )),
    }
}
