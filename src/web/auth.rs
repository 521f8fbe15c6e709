//! Signing in and out of a tenant: `GET/POST /login`, `POST /logout`.

use super::csrf;
use super::page::{self, Chrome, FieldErrors};
use super::session::{self, Current, TenantSite};
use crate::domain::Email;
use crate::error::AppError;
use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::Form;
use poem::{Request, Response, handler};
use serde::Deserialize;

/// Longest email, password and code accepted by the form (longer input is refused at once).
const MAX_FIELD: usize = 1024;

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    chrome: Chrome,
    tenant_name: String,
    email: String,
    /// The service answered that a second factor is needed: show the code field.
    two_factor: bool,
    errors: FieldErrors,
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    otp: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /login`: the sign-in form (home when already signed in).
#[handler]
pub async fn login_form(req: &Request, TenantSite(tenant): TenantSite) -> poem::Result<Response> {
    if let Current::SignedIn(_) = session::current(req).await? {
        return Ok(page::redirect("/"));
    }
    let mut chrome = Chrome::public(req).in_tenant(&tenant);
    // `?welcome=1`: the signup page's link (the apex cannot set this host's flash cookie).
    if req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "welcome=1"))
    {
        chrome.flash = Some(page::Flash {
            kind: "info",
            text:
                "Your organisation is ready. Check your email to verify your address, then sign in."
                    .into(),
        });
    }
    Ok(page::render(
        StatusCode::OK,
        &LoginPage {
            chrome,
            tenant_name: tenant.display_name.clone(),
            email: String::new(),
            two_factor: false,
            errors: FieldErrors::default(),
        },
    ))
}

/// `POST /login`: signs in through `SessionService::login`; on success sets the session
/// cookie and redirects home (303); otherwise shows the form again with the error next to its
/// field (401 wrong credentials, 422 malformed email, 403/429 on the form).
#[handler]
pub async fn login(
    req: &Request,
    TenantSite(tenant): TenantSite,
    Form(form): Form<LoginForm>,
) -> poem::Result<Response> {
    csrf::check_visitor(req, &form.csrf)?;
    let app = session::app(req)?;
    let mut errors = FieldErrors::default();
    let email_text = form
        .email
        .trim()
        .chars()
        .take(MAX_FIELD)
        .collect::<String>();
    let show = |status: StatusCode, errors: FieldErrors, two_factor: bool| {
        page::render(
            status,
            &LoginPage {
                chrome: Chrome::public(req).in_tenant(&tenant),
                tenant_name: tenant.display_name.clone(),
                email: email_text.clone(),
                two_factor,
                errors,
            },
        )
    };
    if form.password.len() > MAX_FIELD || form.otp.len() > MAX_FIELD {
        errors.form = Some(format!("fields are limited to {MAX_FIELD} characters"));
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors, false));
    }
    let email = match Email::parse(&email_text) {
        Ok(e) => e,
        Err(why) => {
            errors.add("email", format!("enter a valid email address ({why})"));
            return Ok(show(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors,
                !form.otp.is_empty(),
            ));
        }
    };
    if form.password.is_empty() {
        errors.add("password", "enter your password");
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors, false));
    }
    let named = crate::app::directory::NamedTenant {
        slug: tenant.slug.clone(),
        source: crate::app::directory::TenantSource::Subdomain,
    };
    let otp = Some(form.otp.trim().to_string()).filter(|c| !c.is_empty());
    let had_otp = otp.is_some();
    let client = crate::http::security::client_of(req);
    match app
        .sessions
        .login(&named, &email, form.password, otp, &client)
        .await
    {
        Ok(signed_in) => {
            let max_age = (signed_in.tokens.refresh_expires_at - app.clock.now())
                .num_seconds()
                .max(0);
            let mut resp = page::redirect("/");
            if let Some(cookie) =
                session::session_cookie(req, &signed_in.tokens.refresh_token, max_age)
            {
                resp.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(resp)
        }
        Err(AppError::Client(p)) if p.kind == "two-factor-required" => {
            if had_otp {
                errors.add("otp", p.detail.clone());
            } else {
                errors.form = Some(
                    "Enter the 6-digit code from your authenticator app (or a recovery code)."
                        .into(),
                );
            }
            Ok(show(StatusCode::UNAUTHORIZED, errors, true))
        }
        Err(AppError::Client(p)) if p.status == 401 => {
            let field = if had_otp { "otp" } else { "password" };
            errors.add(field, p.detail.clone());
            Ok(show(StatusCode::UNAUTHORIZED, errors, had_otp))
        }
        Err(err @ AppError::Client(_)) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(show(
                status,
                FieldErrors::from_app_error(&err, &["email", "password", "otp"]),
                had_otp,
            ))
        }
        Err(err) => Err(err.into()),
    }
}

/// The logout form's field.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session (as the API's logout does), deletes the cookie and
/// redirects to `/login`.
#[handler]
pub async fn logout(req: &Request, Form(form): Form<LogoutForm>) -> poem::Result<Response> {
    match session::current(req).await? {
        Current::SignedIn(s) => {
            s.check_csrf(&form.csrf)?;
            session::app(req)?.sessions.logout(&s.ctx).await?;
            Ok(page::with_flash(
                session::to_login(req, true),
                "success",
                "You have been signed out.",
            ))
        }
        Current::Anonymous | Current::Stale => Ok(session::to_login(req, true)),
    }
}
