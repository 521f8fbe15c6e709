//! Platform administrators' pages on the apex host: `/admin/login` (email, password and TOTP
//! code through `AdminService::login`), `/admin` (tenants with this period's usage) and
//! `/admin/revenue` (`BillingService::revenue`), and `POST /admin/logout`.
//!
//! The admin session is the app's admin session: the cookie `mc_admin` holds the admin token
//! `AdminService::login` issues and every page checks it with `AdminService::authenticate`
//! (a revoked session or an expired token signs the browser out). The cookie is separate from
//! the tenants' `mc_session`: set on the apex host only (no `Domain`), `Path=/admin`,
//! HttpOnly, SameSite=Strict, Secure when `PUBLIC_URL` is https. On a tenant's host every
//! admin page answers 404.

use super::csrf;
use super::page::{self, Chrome, FieldErrors};
use super::public::{dollars, thousands};
use super::session;
use crate::app::admins::AdminContext;
use crate::domain::Email;
use crate::error::AppError;
use crate::http::security::{client_addr, user_agent};
use askama::Template;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Form;
use poem::{Request, Response, handler};
use serde::Deserialize;

/// The admin session cookie.
pub const ADMIN_COOKIE: &str = "mc_admin";

/// Longest value of any field (longer input is refused at once).
const MAX_FIELD: usize = 1024;

fn admin_cookie(req: &Request, token: &str, max_age: i64) -> Option<HeaderValue> {
    let secure = if session::secure(req) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{ADMIN_COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

async fn apex_only(req: &Request) -> poem::Result<()> {
    match session::site(req).await? {
        session::Site::Apex => Ok(()),
        session::Site::Tenant(_) => Err(page::fail(
            StatusCode::NOT_FOUND,
            "There is nothing at this address.",
        )),
    }
}

/// The signed-in administrator, or a redirect to `/admin/login` (clearing a dead cookie).
async fn signed_in_admin(req: &Request) -> poem::Result<AdminContext> {
    apex_only(req).await?;
    let app = session::app(req)?;
    let token = page::cookie(req, ADMIN_COOKIE).filter(|t| !t.is_empty() && t.len() <= 4096);
    let Some(token) = token else {
        return Err(page::halt(page::redirect("/admin/login")));
    };
    match app
        .admins
        .authenticate(Some(token), &client_addr(req), &user_agent(req))
        .await
    {
        Ok(ctx) => Ok(ctx),
        Err(AppError::Client(p)) if p.status == 401 => {
            let mut resp = page::with_flash(page::redirect("/admin/login"), "info", &p.detail);
            if let Some(c) = admin_cookie(req, "", 0) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            Err(page::halt(resp))
        }
        Err(err) => Err(err.into()),
    }
}

/// The admin layout: the public chrome (no tenant navigation); the admin nav is in the
/// templates.
fn admin_chrome(req: &Request) -> Chrome {
    Chrome::public(req)
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    errors: FieldErrors,
}

/// The admin sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct AdminLoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp_code: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /admin/login`.
#[handler]
pub async fn login_form(req: &Request) -> poem::Result<Response> {
    apex_only(req).await?;
    Ok(page::render(
        StatusCode::OK,
        &LoginPage {
            chrome: admin_chrome(req),
            email: String::new(),
            errors: FieldErrors::default(),
        },
    ))
}

/// `POST /admin/login`: `AdminService::login`; success sets `mc_admin` and redirects to
/// `/admin` (303); a refusal shows the service's detail on the form (401/429).
#[handler]
pub async fn login(req: &Request, Form(form): Form<AdminLoginForm>) -> poem::Result<Response> {
    apex_only(req).await?;
    csrf::check_visitor(req, &form.csrf)?;
    let app = session::app(req)?;
    let email_text: String = form.email.trim().chars().take(MAX_FIELD).collect();
    let show = |status, errors| {
        page::render(
            status,
            &LoginPage {
                chrome: admin_chrome(req),
                email: email_text.clone(),
                errors,
            },
        )
    };
    let mut errors = FieldErrors::default();
    if form.password.len() > MAX_FIELD || form.totp_code.len() > MAX_FIELD {
        errors.form = Some(format!("fields are limited to {MAX_FIELD} characters"));
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let email = Email::parse(&email_text)
        .map_err(|e| errors.add("email", format!("enter a valid email address ({e})")))
        .ok();
    if form.password.is_empty() {
        errors.add("password", "enter your password");
    }
    if form.totp_code.trim().is_empty() {
        errors.add(
            "totp_code",
            "enter the 6-digit code from your authenticator app",
        );
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, errors));
    };
    match app
        .admins
        .login(
            &email,
            form.password,
            &form.totp_code,
            &client_addr(req),
            &user_agent(req),
        )
        .await
    {
        Ok(token) => {
            let max_age = (token.expires_at - app.clock.now()).num_seconds().max(0);
            let mut resp = page::redirect("/admin");
            if let Some(c) = admin_cookie(req, &token.token, max_age) {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            Ok(resp)
        }
        Err(err @ AppError::Client(_)) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            Ok(show(
                status,
                FieldErrors::from_app_error(&err, &["email", "password", "totp_code"]),
            ))
        }
        Err(err) => Err(err.into()),
    }
}

/// The logout form's field.
#[derive(Debug, Deserialize)]
pub struct AdminLogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/logout`: ends the admin session (`AdminService::logout`), clears the cookie.
#[handler]
pub async fn logout(req: &Request, Form(form): Form<AdminLogoutForm>) -> poem::Result<Response> {
    apex_only(req).await?;
    csrf::check_visitor(req, &form.csrf)?;
    if let Ok(ctx) = signed_in_admin(req).await {
        session::app(req)?.admins.logout(&ctx).await?;
    }
    let mut resp = page::with_flash(
        page::redirect("/admin/login"),
        "success",
        "You have been signed out.",
    );
    if let Some(c) = admin_cookie(req, "", 0) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

// ---------------------------------------------------------------- tenants

/// One row of the tenants list.
pub struct TenantRow {
    slug: String,
    name: String,
    status: String,
    status_class: &'static str,
    tier: String,
    used: String,
    quota: String,
    overage: u64,
    created: String,
}

#[derive(Template)]
#[template(path = "admin/tenants.html")]
struct TenantsPage {
    chrome: Chrome,
    admin: String,
    period: String,
    rows: Vec<TenantRow>,
}

/// `GET /admin`: every tenant with its slug, name, status, tier, this period's usage and
/// creation date.
#[handler]
pub async fn tenants(req: &Request) -> poem::Result<Response> {
    let ctx = signed_in_admin(req).await?;
    let app = session::app(req)?;
    let (period, list) = crate::app::revenue::tenants_with_usage(&app.tenants, &app.quotas).await?;
    let rows = list
        .into_iter()
        .map(|r| {
            let t = &r.tenant;
            let (status, status_class) = if t.is_deleted() {
                ("deleted".to_string(), "badge-error")
            } else if t.billing_suspended {
                ("billing suspended".to_string(), "badge-error")
            } else {
                match t.status {
                    crate::domain::TenantStatus::Active => {
                        (t.status.as_str().into(), "badge-success")
                    }
                    crate::domain::TenantStatus::Suspended => {
                        (t.status.as_str().into(), "badge-warning")
                    }
                }
            };
            TenantRow {
                slug: t.slug.as_str().to_string(),
                name: t.display_name.clone(),
                status,
                status_class,
                tier: t.tier.display_name.clone(),
                used: thousands(r.used),
                quota: t
                    .tier
                    .monthly_simulations
                    .map_or_else(|| "unlimited".into(), thousands),
                overage: r.overage,
                created: t.created_at.format("%Y-%m-%d").to_string(),
            }
        })
        .collect();
    Ok(page::render(
        StatusCode::OK,
        &TenantsPage {
            chrome: admin_chrome(req),
            admin: ctx.actor().to_string(),
            period,
            rows,
        },
    ))
}

// ---------------------------------------------------------------- revenue

/// One tier's revenue row.
pub struct RevenueRow {
    tier: String,
    price: String,
    active: i64,
    past_due: i64,
    mrr: String,
}

#[derive(Template)]
#[template(path = "admin/revenue.html")]
struct RevenuePage {
    chrome: Chrome,
    admin: String,
    period: String,
    rows: Vec<RevenueRow>,
    mrr: String,
    past_due: i64,
    overage_simulations: String,
    overage_amount: String,
    new_subscriptions: i64,
    upgrades: i64,
    downgrades: i64,
    churned: i64,
    by_status: Vec<(String, i64)>,
}

/// `GET /admin/revenue`: monthly recurring revenue per paid tier (price × active and past-due
/// subscriptions), this period's overage, the past-due count and this period's movements.
#[handler]
pub async fn revenue(req: &Request) -> poem::Result<Response> {
    let ctx = signed_in_admin(req).await?;
    let app = session::app(req)?;
    let r = app.billing.revenue().await?;
    let tiers = app.tenants.tiers();
    let rows = r
        .by_tier
        .iter()
        .map(|t| RevenueRow {
            tier: tiers
                .iter()
                .find(|x| x.name == t.tier)
                .map_or_else(|| t.tier.clone(), |x| x.display_name.clone()),
            price: dollars(t.price_cents),
            active: t.active,
            past_due: t.past_due,
            mrr: dollars(t.mrr_cents),
        })
        .collect();
    Ok(page::render(
        StatusCode::OK,
        &RevenuePage {
            chrome: admin_chrome(req),
            admin: ctx.actor().to_string(),
            period: r.period.clone(),
            rows,
            mrr: dollars(r.mrr_cents),
            past_due: r.by_tier.iter().map(|t| t.past_due).sum(),
            overage_simulations: thousands(r.overage_simulations),
            overage_amount: dollars(r.overage_amount_cents),
            new_subscriptions: r.new_subscriptions,
            upgrades: r.upgrades,
            downgrades: r.downgrades,
            churned: r.churned,
            by_status: r.tenants_by_status.clone(),
        },
    ))
}
