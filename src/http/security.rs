//! Security schemes and the extractors that turn credentials into a [`TenantContext`]: the
//! tenant named by the request (`Host` subdomain and/or `X-Tenant-ID`), then the credentials
//! checked against it by the authentication service, then the tier's burst limit.

use super::edge::Edge;
use super::scope;
use crate::app::App;
use crate::app::admins::AdminContext;
use crate::app::directory::{NamedTenant, TenantSource};
use crate::db::TenantContext;
use crate::domain::{Client, TenantSlug};
use crate::error::AppError;
use poem::Request;
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};
use std::sync::Arc;

#[derive(SecurityScheme)]
#[oai(
    rename = "ApiKey",
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header"
)]
#[allow(dead_code)]
/// Tenant API key (`mk_live_…`), from `POST /api/v1/signup` or `POST /api/v1/keys`.
struct ApiKeyScheme(poem_openapi::auth::ApiKey);

#[derive(SecurityScheme)]
#[oai(rename = "BearerJwt", ty = "bearer", bearer_format = "JWT")]
#[allow(dead_code)]
/// Access token from `POST /api/v1/auth/login` (HS256, 15 minutes).
struct BearerScheme(poem_openapi::auth::Bearer);

#[derive(SecurityScheme)]
#[oai(rename = "AdminJwt", ty = "bearer", bearer_format = "JWT")]
#[allow(dead_code)]
/// A named platform admin's token from `POST /api/v1/admin/auth/login` (password + TOTP;
/// 15 minutes; ends at logout).
struct AdminScheme(poem_openapi::auth::Bearer);

#[derive(SecurityScheme)]
#[oai(rename = "AdminBootstrapToken", ty = "bearer")]
#[allow(dead_code)]
/// The `ADMIN_TOKEN` bootstrap secret: accepted only by `POST /api/v1/admin/bootstrap`, which
/// creates the first platform admin.
struct BootstrapScheme(poem_openapi::auth::Bearer);

/// The application, attached to every request.
pub fn app(req: &Request) -> Result<&Arc<App>, AppError> {
    req.data::<Arc<App>>()
        .ok_or_else(|| AppError::internal("application missing from request"))
}

/// Where the request came from: the client's address (the peer, or the forwarded client
/// behind a trusted proxy) and its `User-Agent`.
pub fn client_of(req: &Request) -> Client {
    let ip = req.data::<Arc<Edge>>().map(|edge| edge.client_addr(req));
    let ua = req
        .headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Client::new(ip, ua)
}

fn bearer_token(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Subdomains of the base domain that never name a tenant.
const NON_TENANT_HOSTS: &[&str] = &["www", "api"];

/// The tenant a request names through its `Host` subdomain and/or `X-Tenant-ID` header.
///
/// # Errors
/// 400 when the header is not a valid slug or the two sources disagree; 404 when the
/// subdomain cannot be a tenant.
pub fn named_tenant(req: &Request, base_domain: &str) -> Result<Option<NamedTenant>, AppError> {
    let from_host = host_slug(req, base_domain)?;
    let from_header = match req.headers().get("x-tenant-id") {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| AppError::bad_request("X-Tenant-ID must be ASCII text"))?;
            let slug = TenantSlug::parse(text.trim()).map_err(|e| {
                AppError::bad_request(format!("X-Tenant-ID is not a valid tenant slug: {e}"))
            })?;
            Some(slug)
        }
    };
    match (from_host, from_header) {
        (Some(h), Some(x)) if h != x => Err(AppError::bad_request(format!(
            "the subdomain names tenant {h:?} but X-Tenant-ID names {x:?}; send one or make them agree"
        ))),
        (Some(h), _) => Ok(Some(NamedTenant {
            slug: h,
            source: TenantSource::Subdomain,
        })),
        (None, Some(x)) => Ok(Some(NamedTenant {
            slug: x,
            source: TenantSource::Header,
        })),
        (None, None) => Ok(None),
    }
}

fn host_slug(req: &Request, base_domain: &str) -> Result<Option<TenantSlug>, AppError> {
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some(label) = host
        .strip_suffix(base_domain)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Ok(None);
    };
    if NON_TENANT_HOSTS.contains(&label) {
        return Ok(None);
    }
    TenantSlug::parse(label).map(Some).map_err(|_| {
        AppError::not_found(format!(
            "no tenant at {host}: {label:?} is not a tenant subdomain"
        ))
    })
}

/// Records the caller on the span and request scope (for the usage row), then applies the
/// tier's burst limit (GCRA per API key or user).
fn admit(app: &App, req: &Request, ctx: &TenantContext) -> Result<(), AppError> {
    let tenant = ctx.tenant();
    tracing::Span::current().record("tenant", tenant.slug.as_str());
    scope::set_caller(ctx.clone(), endpoint_pattern(req.uri().path()));
    let info = app.quotas.check_burst(&ctx.principal(), &tenant.tier)?;
    scope::set_burst(info);
    if let Some(until) = tenant.billing_grace_until {
        scope::add_headers(vec![(
            "Warning".into(),
            format!(
                "299 - \"payment failed: the {} tier is kept until {}; pay the open invoice (POST /api/v1/billing/portal) to keep it\"",
                tenant.tier.name,
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )]);
    }
    Ok(())
}

/// The path with id segments (`sim_…`, `key_…`, `usr_…`, `ten_…`) replaced by `{id}`, so usage
/// rows aggregate by endpoint.
fn endpoint_pattern(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let is_id = ["sim_", "key_", "usr_", "ten_", "ses_"]
                .iter()
                .any(|p| seg.starts_with(p))
                && seg.len() > 20;
            if is_id { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Which credentials an operation accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accepts {
    /// An `X-API-Key` (preferred when both are sent) or a bearer token.
    KeyOrBearer,
    /// Only a bearer token (a signed-in user).
    Bearer,
    /// Only a bearer token, also of a user who must still enrol in two-factor authentication
    /// (enrolment, `me`, sessions, logout).
    BearerEnrolling,
}

/// Authenticates the request's credentials against the tenant it names, then admits it under
/// the burst limit.
async fn authenticate(req: &Request, accepts: Accepts) -> Result<TenantContext, AppError> {
    let app = app(req)?;
    let named = named_tenant(req, &app.base_domain)?;
    let key = req.headers().get("x-api-key");
    let ctx = match (key, bearer_token(req), accepts) {
        (Some(key), _, Accepts::KeyOrBearer) => {
            let key = key
                .to_str()
                .map_err(|_| AppError::unauthorized("malformed API key: not ASCII"))?;
            app.auth.api_key(named.as_ref(), key).await?
        }
        (_, Some(token), _) => {
            app.auth
                .bearer(named.as_ref(), token, accepts == Accepts::BearerEnrolling)
                .await?
        }
        (None, None, Accepts::KeyOrBearer) => {
            return Err(AppError::unauthorized(
                "missing credentials: send X-API-Key: mk_live_… or Authorization: Bearer <access token>",
            ));
        }
        (Some(_), None, Accepts::Bearer | Accepts::BearerEnrolling) => {
            return Err(AppError::unauthorized(
                "this endpoint needs a signed-in user: send Authorization: Bearer <access token> (API keys are not accepted here)",
            ));
        }
        (None, None, Accepts::Bearer | Accepts::BearerEnrolling) => {
            return Err(AppError::unauthorized(
                "missing credentials: send Authorization: Bearer <access token> from POST /api/v1/auth/login",
            ));
        }
    };
    let ctx = ctx.from_client(client_of(req));
    admit(app, req, &ctx)?;
    Ok(ctx)
}

/// Either credential: an `X-API-Key` or a bearer access token (for dashboards).
#[derive(Debug, Clone)]
pub struct Caller(pub TenantContext);

/// A signed-in user (bearer access token only).
#[derive(Debug, Clone)]
pub struct UserAuth(pub TenantContext);

/// A signed-in user who may still have to enrol in two-factor authentication (bearer only;
/// for enrolment, `me`, sessions and logout).
#[derive(Debug, Clone)]
pub struct EnrollingUser(pub TenantContext);

/// A signed-in platform administrator (`Authorization: Bearer <admin token>`, its session
/// live), with the address and user agent every audit row of the request records.
#[derive(Debug, Clone)]
pub struct AdminAuth(pub AdminContext);

/// The bootstrap secret as sent (`Authorization: Bearer <ADMIN_TOKEN>`); checked by
/// `AdminService::bootstrap`.
#[derive(Debug, Clone)]
pub struct BootstrapAuth(pub Option<String>);

/// The client's address: the peer, or the forwarded client behind a trusted proxy.
pub fn client_addr(req: &Request) -> String {
    req.data::<Arc<super::edge::Edge>>()
        .map_or_else(|| "unknown".into(), |edge| edge.client_addr(req))
}

/// The request's `User-Agent` (at most 256 characters; `unknown` when absent).
pub fn user_agent(req: &Request) -> String {
    req.headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "unknown".into(), |ua| ua.chars().take(256).collect())
}

/// The admin behind a request's bearer token, if its session is live (also `/metrics`).
///
/// # Errors
/// 401 for a missing, invalid, expired or revoked admin token.
pub async fn admin_context(req: &Request) -> Result<AdminContext, AppError> {
    let app = app(req)?;
    app.admins
        .authenticate(bearer_token(req), &client_addr(req), &user_agent(req))
        .await
}

/// Implements poem-openapi's security extractor for `$ty`, documenting `$schemes` (their
/// names listed in `$names`) and extracting with `$extract`.
macro_rules! security_extractor {
    ($ty:ty, [$($scheme:ty),+], [$($name:literal),+], $extract:expr) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                $(<$scheme as ApiExtractor>::register(registry);)+
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![$($name),+]
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut poem::RequestBody,
                _opts: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                Ok(($extract)(req).await?)
            }
        }
    };
}

security_extractor!(
    Caller,
    [ApiKeyScheme, BearerScheme],
    ["ApiKey", "BearerJwt"],
    |req| async move { authenticate(req, Accepts::KeyOrBearer).await.map(Caller) }
);
security_extractor!(UserAuth, [BearerScheme], ["BearerJwt"], |req| async move {
    authenticate(req, Accepts::Bearer).await.map(UserAuth)
});
security_extractor!(
    EnrollingUser,
    [BearerScheme],
    ["BearerJwt"],
    |req| async move {
        authenticate(req, Accepts::BearerEnrolling)
            .await
            .map(EnrollingUser)
    }
);
security_extractor!(AdminAuth, [AdminScheme], ["AdminJwt"], |req| async move {
    admin_context(req).await.map(AdminAuth)
});
security_extractor!(
    BootstrapAuth,
    [BootstrapScheme],
    ["AdminBootstrapToken"],
    |req: &Request| {
        let token = bearer_token(req).map(str::to_string);
        async move { Ok::<_, AppError>(BootstrapAuth(token)) }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, header: Option<&str>) -> Request {
        let mut b = Request::builder()
            .uri_str("/api/v1/auth/me")
            .header("host", host);
        if let Some(h) = header {
            b = b.header("x-tenant-id", h);
        }
        b.finish()
    }

    #[test]
    fn resolves_subdomain_and_header() {
        let n = named_tenant(&req("acme.example.com:8080", None), "example.com")
            .unwrap()
            .unwrap();
        assert_eq!(
            (n.slug.as_str(), n.source),
            ("acme", TenantSource::Subdomain)
        );
        let n = named_tenant(&req("example.com", Some("beta")), "example.com")
            .unwrap()
            .unwrap();
        assert_eq!((n.slug.as_str(), n.source), ("beta", TenantSource::Header));
        assert!(
            named_tenant(&req("www.example.com", None), "example.com")
                .unwrap()
                .is_none()
        );
        assert!(
            named_tenant(&req("acme.other.com", None), "example.com")
                .unwrap()
                .is_none()
        );
        let same = named_tenant(&req("acme.example.com", Some("acme")), "example.com").unwrap();
        assert_eq!(same.unwrap().slug.as_str(), "acme");
    }

    #[test]
    fn refuses_disagreement_and_bad_slugs() {
        let e = named_tenant(&req("acme.example.com", Some("beta")), "example.com").unwrap_err();
        assert_eq!(e.status(), 400);
        let e = named_tenant(&req("example.com", Some("Acme\";--")), "example.com").unwrap_err();
        assert_eq!(e.status(), 400);
        let e = named_tenant(&req("a.b.example.com", None), "example.com").unwrap_err();
        assert_eq!(e.status(), 404);
        let e = named_tenant(&req("pg_catalog.example.com", None), "example.com").unwrap_err();
        assert_eq!(e.status(), 404);
    }
}
