//! The browser session: the `mc_session` cookie (HttpOnly, SameSite=Lax, Path=/, Secure when
//! `PUBLIC_URL` is https) holds the refresh token of a session in the tenant's `sessions`
//! table — the same record the API's refresh tokens use, so the API's session list shows it
//! and revoking it there signs the browser out.
//!
//! Design: the cookie is checked with `SessionService::web_session`, which compares the
//! token's hash with the session's current refresh-token hash and never rotates it. A page's
//! parallel requests (htmx, assets) therefore never trip the refresh-reuse detector. The
//! session does not slide: it ends `SESSION_TTL_DAYS` after sign-in, at logout, or when
//! revoked (then every instance refuses it at once). A cookie is valid only on its tenant's
//! host: presented on another tenant's subdomain its hash is unknown there (→ /login).

use super::csrf;
use super::page::{self, Chrome, ChromeUser, Nav};
use crate::app::App;
use crate::app::sessions::WebSession;
use crate::db::TenantContext;
use crate::db::users::UserRecord;
use crate::domain::{Role, Tenant};
use poem::http::{HeaderValue, StatusCode, header};
use poem::{FromRequest, Request, RequestBody, Response};
use std::sync::Arc;

/// Cookie holding the session's token.
pub const SESSION_COOKIE: &str = "mc_session";

/// The application (attached to every request).
pub fn app(req: &Request) -> poem::Result<&Arc<App>> {
    Ok(crate::http::security::app(req)?)
}

pub use super::cookies::secure;

/// `Set-Cookie` for the session cookie holding `token` until `max_age_secs`.
pub fn session_cookie(req: &Request, token: &str, max_age_secs: i64) -> Option<HeaderValue> {
    let secure = if secure(req) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

/// `Set-Cookie` that deletes the session cookie.
pub fn clear_session_cookie(req: &Request) -> HeaderValue {
    session_cookie(req, "", 0)
        .unwrap_or_else(|| HeaderValue::from_static("mc_session=; Path=/; Max-Age=0"))
}

/// Which site the request's host names.
#[derive(Debug, Clone)]
pub enum Site {
    /// The apex (`BASE_DOMAIN`, `www.`, `127.0.0.1`, `localhost`, …): public pages.
    Apex,
    /// A live tenant's subdomain.
    Tenant(Arc<Tenant>),
}

/// The site of the request's `Host`.
///
/// # Errors
/// The 404 page for a subdomain that names no live tenant.
pub async fn site(req: &Request) -> poem::Result<Site> {
    use crate::app::directory::TenantSource;
    let app = app(req)?;
    let not_found = || {
        page::fail(
            StatusCode::NOT_FOUND,
            "There is no organisation at this address. Check the link, or sign up for a new one.",
        )
    };
    match crate::http::security::named_tenant(req, &app.base_domain) {
        Ok(Some(named)) if named.source == TenantSource::Subdomain => {
            match app.directory.by_slug(&named.slug).await? {
                Some(t) => Ok(Site::Tenant(t)),
                None => Err(not_found()),
            }
        }
        Ok(_) => Ok(Site::Apex),
        Err(_) => Err(not_found()),
    }
}

impl<'a> FromRequest<'a> for Site {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        site(req).await
    }
}

/// A tenant page's host: the tenant (404 page on the apex or an unknown subdomain).
#[derive(Debug, Clone)]
pub struct TenantSite(pub Arc<Tenant>);

impl<'a> FromRequest<'a> for TenantSite {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        match site(req).await? {
            Site::Tenant(t) => Ok(TenantSite(t)),
            Site::Apex => Err(page::fail(
                StatusCode::NOT_FOUND,
                "This page belongs to an organisation's own address (https://<organisation>.<domain>).",
            )),
        }
    }
}

/// The signed-in user of a tenant page. As an extractor it answers a redirect to `/login`
/// when there is no live session for this host (and a 403 page while the team requires
/// two-factor authentication the user has not set up).
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user's context: pass it to the app services (`app.keys.list(&s.ctx)`, …).
    pub ctx: TenantContext,
    /// The tenant (same as `ctx.tenant()`).
    pub tenant: Arc<Tenant>,
    /// The user.
    pub user: UserRecord,
    /// The user's current role (from the session cache, kept current across instances).
    pub role: Role,
    /// The session's CSRF token (put it in forms as `csrf`; [`SignedIn::check_csrf`]).
    pub csrf: String,
    /// The team requires two-factor authentication and the user has not enrolled.
    pub must_enrol_two_factor: bool,
    /// The flash message of the previous request.
    pub flash: Option<page::Flash>,
}

impl SignedIn {
    /// The layout's data for a page whose navigation entry is `nav`.
    pub fn chrome(&self, nav: Nav) -> Chrome {
        Chrome {
            tenant_name: Some(self.tenant.display_name.clone()),
            user: Some(ChromeUser {
                name: self.user.full_name.clone(),
                email: self.user.email.clone(),
                role: self.role.as_str().to_string(),
            }),
            nav,
            csrf: self.csrf.clone(),
            flash: self.flash.clone(),
        }
    }

    /// Checks a submitted form's `csrf` field against this session's token.
    ///
    /// # Errors
    /// The 403 page when it does not match.
    pub fn check_csrf(&self, submitted: &str) -> poem::Result<()> {
        csrf::check(&self.csrf, submitted)
    }
}

/// The outcome of looking for a session.
pub enum Current {
    /// A live session of this tenant.
    SignedIn(Box<SignedIn>),
    /// No cookie.
    Anonymous,
    /// A cookie that opens nothing here (ended, expired, another tenant's): clear it.
    Stale,
}

/// The request's session on a tenant host.
///
/// # Errors
/// The 404 page off a tenant host; the 403 page for a suspended tenant; 5xx when a store fails.
pub async fn current(req: &Request) -> poem::Result<Current> {
    let tenant = match site(req).await? {
        Site::Tenant(t) => t,
        Site::Apex => {
            return Err(page::fail(
                StatusCode::NOT_FOUND,
                "This page belongs to an organisation's own address.",
            ));
        }
    };
    let Some(token) = page::cookie(req, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(Current::Anonymous);
    };
    let app = app(req)?;
    let named = crate::app::directory::NamedTenant {
        slug: tenant.slug.clone(),
        source: crate::app::directory::TenantSource::Subdomain,
    };
    let client = crate::http::security::client_of(req);
    match app.sessions.web_session(&named, token, &client).await {
        Ok(WebSession {
            ctx,
            user,
            must_enrol_two_factor,
        }) => {
            let role = ctx.user().map_or(user.role, |(_, role)| role);
            Ok(Current::SignedIn(Box::new(SignedIn {
                tenant: ctx.tenant().clone(),
                ctx,
                user,
                role,
                csrf: csrf::session_token(token),
                must_enrol_two_factor,
                flash: page::flash_of(req),
            })))
        }
        Err(err) if err.status() == 401 => Ok(Current::Stale),
        Err(err) => Err(err.into()),
    }
}

/// A redirect to `/login` that also deletes the session cookie when `clear`.
pub fn to_login(req: &Request, clear: bool) -> Response {
    let mut resp = page::redirect("/login");
    if clear {
        resp.headers_mut()
            .append(header::SET_COOKIE, clear_session_cookie(req));
    }
    resp
}

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        match current(req).await? {
            Current::SignedIn(s) if s.must_enrol_two_factor => Err(page::fail(
                StatusCode::FORBIDDEN,
                "Your team requires two-factor authentication: set it up (POST /api/v1/auth/2fa/setup, then /api/v1/auth/2fa/enable) and sign in again.",
            )),
            Current::SignedIn(s) => Ok(*s),
            Current::Anonymous => Err(page::halt(to_login(req, false))),
            Current::Stale => Err(page::halt(to_login(req, true))),
        }
    }
}
