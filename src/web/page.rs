//! Rendering pages: the layout's data ([`Chrome`]), [`render`], the security headers of every
//! HTML response (Content-Security-Policy, `no-store`), the HTML error page (403/404/422/500,
//! with the request id), flash messages, and the [`layer`] every page route is wrapped in.

use super::assets;
use super::csrf;
use crate::error::AppError;
use askama::Template;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use std::sync::Arc;

/// The product's name, shown in the header and titles.
pub const PRODUCT: &str = "Montecarlo Cloud";

/// Content-Security-Policy of every page (no inline script or style, forms post to us only).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// [`CSP`] with `origins` (space-separated, e.g. `https://checkout.stripe.com`) added to
/// `form-action`, for a page whose form posts (or redirects) to another origin. Set it on the
/// response: `resp.headers_mut().insert("content-security-policy", page::csp_with_form_action(..))`.
pub fn csp_with_form_action(origins: &str) -> HeaderValue {
    let csp = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origins.trim()),
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(CSP))
}

/// Entries of the tenant navigation, in order (`Nav::None` on pages outside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`
    Home,
    /// `/keys`
    Keys,
    /// `/simulations/new`
    NewSimulation,
    /// `/simulations`
    Simulations,
    /// `/usage`
    Usage,
    /// `/team`
    Team,
    /// `/billing`
    Billing,
    /// `/audit`
    Audit,
    /// No entry is current (error pages, public pages).
    None,
}

/// One link of the navigation, as the layout draws it.
#[derive(Debug, Clone)]
pub struct NavLink {
    /// Path.
    pub href: &'static str,
    /// Label.
    pub label: &'static str,
    /// The current page.
    pub current: bool,
}

impl Nav {
    const ALL: [(Nav, &'static str, &'static str); 8] = [
        (Nav::Home, "/", "Home"),
        (Nav::Keys, "/keys", "API keys"),
        (Nav::NewSimulation, "/simulations/new", "New simulation"),
        (Nav::Simulations, "/simulations", "Simulations"),
        (Nav::Usage, "/usage", "Usage"),
        (Nav::Team, "/team", "Team"),
        (Nav::Billing, "/billing", "Billing"),
        (Nav::Audit, "/audit", "Audit"),
    ];
}

/// A one-time message shown on the next page (set with [`with_flash`] on a redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// `success`, `info`, `warning` or `error` (the banner's class).
    pub kind: &'static str,
    /// The message (escaped when shown).
    pub text: String,
}

/// Cookie carrying a flash message to the next page.
pub const FLASH_COOKIE: &str = "mc_flash";

/// The signed-in user as the layout shows them.
#[derive(Debug, Clone)]
pub struct ChromeUser {
    /// Full name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role (`owner`, `admin`, `member`, `viewer`).
    pub role: String,
}

/// What the layout (`templates/base.html`) needs: every page template has a field
/// `chrome: Chrome`. Build it with `SignedIn::chrome(Nav::…)` on tenant pages or
/// [`Chrome::public`] on signed-out ones.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The tenant's display name (tenant pages).
    pub tenant_name: Option<String>,
    /// The signed-in user (shows the navigation and the logout button).
    pub user: Option<ChromeUser>,
    /// The current navigation entry.
    pub nav: Nav,
    /// The CSRF token for forms on this page (`<input type="hidden" name="csrf" value="{{ chrome.csrf }}">`).
    pub csrf: String,
    /// A one-time message from the previous request.
    pub flash: Option<Flash>,
}

impl Chrome {
    /// The layout of a signed-out page (login, landing, errors): no navigation; `csrf` is the
    /// visitor's double-submit token.
    pub fn public(req: &Request) -> Self {
        Self {
            tenant_name: None,
            user: None,
            nav: Nav::None,
            csrf: csrf::visitor_token(req),
            flash: flash_of(req),
        }
    }

    /// The same layout naming `tenant` in the header (signed-out pages of a tenant's host).
    pub fn in_tenant(mut self, tenant: &crate::domain::Tenant) -> Self {
        self.tenant_name = Some(tenant.display_name.clone());
        self
    }

    /// The product's name.
    pub fn product(&self) -> &'static str {
        PRODUCT
    }

    /// The versioned URL of the static file `name` (e.g. `app.css`, `vendor/htmx/htmx-2.0.11.min.js`).
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    /// The navigation links (empty when signed out).
    pub fn nav_links(&self) -> Vec<NavLink> {
        if self.user.is_none() {
            return Vec::new();
        }
        Nav::ALL
            .iter()
            .map(|(nav, href, label)| NavLink {
                href,
                label,
                current: *nav == self.nav,
            })
            .collect()
    }
}

/// Renders `page` with `status` as an HTML response (the layer adds the security headers).
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    }
}

/// A 303 redirect to `location` (a path on this host).
pub fn redirect(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// `resp` (usually a [`redirect`]) carrying `flash` to the next page.
pub fn with_flash(mut resp: Response, kind: &'static str, text: &str) -> Response {
    use base64::Engine;
    let value = format!(
        "{FLASH_COOKIE}={kind}.{}; Path=/; HttpOnly; SameSite=Lax; Max-Age=120",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(text.chars().take(300).collect::<String>())
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The flash message the request carries, if any.
pub fn flash_of(req: &Request) -> Option<Flash> {
    use base64::Engine;
    let raw = cookie(req, FLASH_COOKIE)?;
    let (kind, text) = raw.split_once('.')?;
    let kind = ["success", "info", "warning", "error"]
        .into_iter()
        .find(|k| *k == kind)?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    Some(Flash { kind, text })
}

pub use super::cookies::cookie;

/// Errors of one form: a message per field name, and one for the whole form.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    /// (field, message) pairs.
    pub fields: Vec<(String, String)>,
    /// A message that names no field.
    pub form: Option<String>,
}

impl FieldErrors {
    /// The message for `field`, if any (`{% if let Some(e) = errors.get("email") %}`).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Adds a message for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.push((field.to_string(), message.into()));
    }

    /// Puts a service error next to the field it names (a 422's `field` when it is one of
    /// `fields`), else on the form. Internal errors show only a generic sentence.
    pub fn from_app_error(err: &AppError, fields: &[&str]) -> Self {
        let mut out = Self::default();
        match err {
            AppError::Client(p) => match p.field.as_deref().filter(|f| fields.contains(f)) {
                Some(f) => out.add(f, p.detail.clone()),
                None => out.form = Some(p.detail.clone()),
            },
            AppError::Unavailable(what) => {
                out.form = Some(format!("{what} is unavailable; try again shortly"));
            }
            AppError::Internal(_) => {
                out.form = Some("something went wrong on our side; try again".into());
            }
        }
        out
    }

    /// No errors at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_none()
    }
}

#[derive(Template)]
#[template(path = "errors/error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    heading: &'static str,
    detail: String,
    request_id: String,
}

/// The HTML error page for `status` (403, 404, 422, 500, …) with `detail` (a generic sentence
/// when `None`) and the request id.
pub fn error_page(status: StatusCode, detail: Option<String>) -> Response {
    let heading = match status.as_u16() {
        400 => "Bad request",
        401 => "Sign-in required",
        402 => "Payment required",
        403 => "Forbidden",
        404 => "Page not found",
        405 => "Method not allowed",
        409 => "Conflict",
        422 => "Check your input",
        429 => "Too many requests",
        503 => "Temporarily unavailable",
        s if s >= 500 => "Something went wrong",
        _ => "Request refused",
    };
    let detail = detail.unwrap_or_else(|| match status.as_u16() {
        403 => "You are not allowed to do that.".into(),
        404 => "There is nothing at this address.".into(),
        s if s >= 500 => {
            "The error was logged. Try again, or quote the request id to support.".into()
        }
        _ => "The request could not be completed.".into(),
    });
    let request_id = crate::http::scope::request_id_and_path()
        .map(|(id, _)| id)
        .unwrap_or_default();
    let page = ErrorPage {
        chrome: Chrome {
            tenant_name: None,
            user: None,
            nav: Nav::None,
            csrf: String::new(),
            flash: None,
        },
        status: status.as_u16(),
        heading,
        detail,
        request_id,
    };
    match page.render() {
        Ok(html) => Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(_) => Response::builder()
            .status(status)
            .content_type("text/plain; charset=utf-8")
            .body(heading),
    }
}

/// The error page of a service error: its status and (for client errors) its detail;
/// internal errors are logged and shown as a bare 500.
pub fn app_error_page(err: &AppError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = match err {
        AppError::Client(p) => Some(p.detail.clone()),
        AppError::Unavailable(what) => Some(format!("{what} is unavailable; try again shortly")),
        AppError::Internal(_) => {
            tracing::error!(error = ?err, "page failed");
            None
        }
    };
    let mut resp = error_page(status, detail);
    for (k, v) in err.headers() {
        if let (Ok(k), Ok(v)) = (
            poem::http::HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// A response carried as an error (an extractor's redirect or error page).
pub fn halt(resp: Response) -> poem::Error {
    poem::Error::from_response(resp)
}

/// An error page carried as an error, for `?` in extractors and handlers.
pub fn fail(status: StatusCode, detail: impl Into<String>) -> poem::Error {
    halt(error_page(status, Some(detail.into())))
}

/// Is the request's `Sec-Fetch-Site`/`Origin` from another site (or another host of ours)?
/// Browsers send at least one of them on a POST; a request with neither (a non-browser
/// client) is left to the CSRF token.
fn cross_origin(req: &Request) -> bool {
    let h = req.headers();
    // Fetch Metadata, when sent, decides: pages cannot forge it, and with our
    // `Referrer-Policy: no-referrer` Chromium sends `Origin: null` on same-origin form posts.
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        return origin_host.is_none_or(|o| !o.eq_ignore_ascii_case(host));
    }
    false
}

/// Wraps a page route: refuses cross-site state-changing requests (403 page), issues the
/// visitor's double-submit CSRF cookie, turns every error into an HTML error page, and puts
/// the page headers (CSP, `no-store`) on HTML responses and clears a shown flash message.
pub async fn layer<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let new_token = csrf::prepare(&mut req);
    let had_flash = cookie(&req, FLASH_COOKIE).is_some();
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut resp = if unsafe_method && cross_origin(&req) {
        error_page(
            StatusCode::FORBIDDEN,
            Some("cross-site form submissions are refused; use the form on this site".into()),
        )
    } else {
        match ep.call(req).await {
            Ok(r) => r.into_response(),
            Err(err) if err.is_from_response() && err.downcast_ref::<AppError>().is_none() => {
                err.into_response()
            }
            Err(err) => match err.downcast_ref::<AppError>() {
                Some(app_err) => app_error_page(app_err),
                None => {
                    let status = err.status();
                    let detail = (status.is_client_error()).then(|| err.to_string());
                    error_page(status, detail)
                }
            },
        }
    };
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = resp.headers_mut();
    if is_html {
        if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
        }
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        h.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        );
    }
    if had_flash && is_html {
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("mc_flash=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        );
    }
    if let Some(cookie) = new_token {
        h.append(header::SET_COOKIE, cookie);
    }
    Ok(resp)
}

/// Wraps every route: a browser (`Accept: text/html`) that reaches no page (404/405 outside
/// `/api/`) gets the HTML error page instead of the API's problem+json.
pub async fn browser_errors<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let browser = !req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    match ep.call(req).await {
        Ok(r) => Ok(r.into_response()),
        Err(err)
            if browser
                && matches!(
                    err.status(),
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                )
                && err.downcast_ref::<AppError>().is_none() =>
        {
            let mut resp = error_page(err.status(), None);
            resp.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        Err(err) => Err(err),
    }
}
