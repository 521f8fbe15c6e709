//! Public pages of the apex host: the landing page `/`, `/pricing`, `/signup` and
//! `/developers`, and `/favicon.ico`.
//!
//! Signup creates the tenant through `AccountService::signup` (the same service as
//! `POST /api/v1/signup`). Its answer page shows the two API keys the signup creates, once:
//! they are secrets the service stores only as hashes, so a page that redirected straight to the
//! tenant's login would lose them (the owner would have to create new ones). The page then links
//! to `<PUBLIC_URL with the slug>/login?welcome=1`; the session the service also starts is not
//! carried over, since the apex cannot set a cookie for the tenant's host.

use super::csrf;
use super::page::{self, Chrome, FieldErrors};
use super::session;
use crate::app::accounts::Signup;
use crate::domain::{DisplayName, Email, Password, TenantSlug, Tier};
use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::Form;
use poem::{Request, Response, handler};
use serde::Deserialize;

/// Longest value of any signup field (longer input is refused before parsing).
const MAX_FIELD: usize = 1024;

#[derive(Template)]
#[template(path = "public/landing.html")]
struct Landing {
    chrome: Chrome,
}

/// `GET /` on the apex host.
pub fn landing(req: &Request) -> Response {
    page::render(
        StatusCode::OK,
        &Landing {
            chrome: Chrome::public(req),
        },
    )
}

/// A tier as the pricing page shows it.
pub struct TierRow {
    /// Name shown to people.
    pub name: String,
    /// `$49` or `Free`.
    pub price: String,
    /// Trial length, days (trial tiers).
    pub trial_days: Option<u32>,
    /// `1,000` or `Unlimited`.
    pub simulations: String,
    /// Requests per second per key.
    pub rate: u32,
    /// Burst size.
    pub burst: u32,
    /// Largest paths per simulation, `100,000`.
    pub max_paths: String,
    /// Simulations running at once.
    pub concurrent: u32,
    /// `$0.05 per simulation` or `—` (hard stop).
    pub overage: String,
    /// `3` or `Unlimited`.
    pub api_keys: String,
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// US cents → `$12.34` (`$12` for whole dollars).
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    if c.is_multiple_of(100) {
        format!("{sign}${}", thousands(c / 100))
    } else {
        format!("{sign}${}.{:02}", thousands(c / 100), c % 100)
    }
}

impl From<&Tier> for TierRow {
    fn from(t: &Tier) -> Self {
        Self {
            name: t.display_name.clone(),
            price: if t.price_cents_per_month == 0 {
                "Free".into()
            } else {
                dollars(t.price_cents_per_month)
            },
            trial_days: t.trial_days,
            simulations: t
                .monthly_simulations
                .map_or_else(|| "Unlimited".into(), thousands),
            rate: t.burst_per_second,
            burst: t.burst_size,
            max_paths: thousands(t.max_paths),
            concurrent: t.max_concurrent_simulations,
            overage: t.overage_cents_per_simulation.map_or_else(
                || "None: the quota is a hard stop".into(),
                |c| format!("{} per simulation", dollars(c)),
            ),
            api_keys: t
                .max_api_keys
                .map_or_else(|| "Unlimited".into(), |n| n.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "public/pricing.html")]
struct Pricing {
    chrome: Chrome,
    tiers: Vec<TierRow>,
}

/// `GET /pricing`: every tier of `platform.tiers` (through `TenantService::tiers`), cheapest
/// first.
#[handler]
pub async fn pricing(req: &Request) -> poem::Result<Response> {
    apex_only(req).await?;
    let app = session::app(req)?;
    let tiers = app
        .tenants
        .tiers()
        .iter()
        .map(|t| TierRow::from(t.as_ref()))
        .collect();
    Ok(page::render(
        StatusCode::OK,
        &Pricing {
            chrome: Chrome::public(req),
            tiers,
        },
    ))
}

#[derive(Template)]
#[template(path = "public/developers.html")]
struct Developers {
    chrome: Chrome,
    api: String,
}

/// `GET /developers`: links to the API reference and examples of creating a simulation in
/// curl, Python and JavaScript (the curl one is run by `tests/browser/test_public.py`).
#[handler]
pub async fn developers(req: &Request) -> poem::Result<Response> {
    apex_only(req).await?;
    let app = session::app(req)?;
    let api = app
        .mailer
        .public_url()
        .replace("{tenant}.", "")
        .replace("{tenant}", "");
    Ok(page::render(
        StatusCode::OK,
        &Developers {
            chrome: Chrome::public(req),
            api,
        },
    ))
}

/// The signup form's fields (as typed; kept to show the form again).
#[derive(Debug, Default, Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    organisation_name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Template)]
#[template(path = "public/signup.html")]
struct SignupPage {
    chrome: Chrome,
    form: SignupForm,
    errors: FieldErrors,
    base_domain: String,
}

/// A created key as the signup result shows it.
pub struct ShownKey {
    /// Name.
    pub name: String,
    /// The whole secret (shown once).
    pub secret: String,
    /// Expiry, `YYYY-MM-DD`.
    pub expires: Option<String>,
}

#[derive(Template)]
#[template(path = "public/signup_done.html")]
struct SignupDone {
    chrome: Chrome,
    organisation: String,
    email: String,
    login_url: String,
    keys: Vec<ShownKey>,
}

/// `GET /signup`: the signup form.
#[handler]
pub async fn signup_form(req: &Request) -> poem::Result<Response> {
    apex_only(req).await?;
    let app = session::app(req)?;
    Ok(page::render(
        StatusCode::OK,
        &SignupPage {
            chrome: Chrome::public(req),
            form: SignupForm::default(),
            errors: FieldErrors::default(),
            base_domain: app.base_domain.clone(),
        },
    ))
}

const SIGNUP_FIELDS: &[&str] = &[
    "organisation_name",
    "slug",
    "full_name",
    "email",
    "password",
];

/// `POST /signup`: validates each field (the domain's messages, next to the field), then
/// `AccountService::signup`; its errors go next to the field they name (a taken slug next to
/// the slug, a weak password next to the password) with 409/422/429. On success (201) the page
/// shows the API keys once and the link to the tenant's sign-in page.
#[handler]
pub async fn signup(req: &Request, Form(mut form): Form<SignupForm>) -> poem::Result<Response> {
    apex_only(req).await?;
    csrf::check_visitor(req, &form.csrf)?;
    let app = session::app(req)?;
    form.slug = form.slug.trim().to_ascii_lowercase();
    let show = |status: StatusCode, mut form: SignupForm, errors: FieldErrors| {
        form.password.clear();
        page::render(
            status,
            &SignupPage {
                chrome: Chrome::public(req),
                form,
                errors,
                base_domain: app.base_domain.clone(),
            },
        )
    };
    let mut errors = FieldErrors::default();
    let too_long = [
        &form.organisation_name,
        &form.slug,
        &form.full_name,
        &form.email,
        &form.password,
    ]
    .iter()
    .any(|f| f.len() > MAX_FIELD);
    if too_long {
        errors.form = Some(format!("fields are limited to {MAX_FIELD} characters"));
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, form, errors));
    }
    let organisation = DisplayName::parse(form.organisation_name.trim())
        .map_err(|e| errors.add("organisation_name", e))
        .ok();
    let slug = TenantSlug::parse(&form.slug)
        .map_err(|e| errors.add("slug", e))
        .ok();
    let full_name = DisplayName::parse(form.full_name.trim())
        .map_err(|e| errors.add("full_name", e))
        .ok();
    let email = Email::parse(form.email.trim())
        .map_err(|e| errors.add("email", e))
        .ok();
    let password = Password::parse(&form.password)
        .map_err(|e| errors.add("password", e))
        .ok();
    let (Some(organisation_name), Some(slug), Some(full_name), Some(email), Some(password)) =
        (organisation, slug, full_name, email, password)
    else {
        return Ok(show(StatusCode::UNPROCESSABLE_ENTITY, form, errors));
    };
    let client = crate::http::security::client_of(req);
    let done = match app
        .accounts
        .signup(
            Signup {
                organisation_name,
                slug,
                full_name,
                email,
                password,
            },
            &client,
        )
        .await
    {
        Ok(done) => done,
        Err(err @ crate::error::AppError::Client(_)) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut errors = FieldErrors::from_app_error(&err, SIGNUP_FIELDS);
            if status == StatusCode::CONFLICT
                && let Some(message) = errors.form.take()
            {
                errors.add("slug", message);
            }
            return Ok(show(status, form, errors));
        }
        Err(err) => return Err(err.into()),
    };
    let base = app
        .mailer
        .public_url()
        .replace("{tenant}", done.tenant.slug.as_str());
    let keys = done
        .keys
        .iter()
        .map(|k| ShownKey {
            name: k.name.as_str().to_string(),
            secret: k.key.secret.expose().to_string(),
            expires: k.expires_at.map(|t| t.format("%Y-%m-%d").to_string()),
        })
        .collect();
    let mut resp = page::render(
        StatusCode::CREATED,
        &SignupDone {
            chrome: Chrome::public(req),
            organisation: done.tenant.display_name.clone(),
            email: done.owner.email.clone(),
            login_url: format!("{base}/login?welcome=1"),
            keys,
        },
    );
    // The page holds secrets: never cached, never kept in history snapshots.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    Ok(resp)
}

/// `GET /favicon.ico`: the SVG icon (`static/favicon.svg`), for browsers that ask for it
/// before (or instead of) reading the page's `<link rel="icon">`.
#[handler]
pub fn favicon() -> Response {
    let bytes = super::assets::FILES
        .iter()
        .find(|(name, _)| *name == "favicon.svg")
        .map(|(_, b)| *b)
        .unwrap_or_default();
    Response::builder()
        .content_type("image/svg+xml")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .body(bytes)
}

/// The 404 page unless the request is for the apex host.
async fn apex_only(req: &Request) -> poem::Result<()> {
    match session::site(req).await? {
        session::Site::Apex => Ok(()),
        session::Site::Tenant(_) => Err(page::fail(
            StatusCode::NOT_FOUND,
            "This page is on the main site, not on an organisation's address.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_counts_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(dollars(4900), "$49");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(123_456), "$1,234.56");
    }
}
