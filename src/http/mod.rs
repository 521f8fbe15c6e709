//! The HTTP layer (poem + poem-openapi): operations that parse the request into domain values,
//! authenticate it into a `TenantContext`, call one application service and map its domain
//! result or `AppError` to the wire (RFC 9457 problem details for every error). Nothing here
//! runs SQL or holds a rule of the product.

pub mod accounts;
pub mod admin;
pub mod billing;
pub mod contract;
pub mod credentials;
pub mod edge;
mod examples;
pub mod health;
pub mod invitations;
pub mod jobs;
pub mod keys;
pub mod lifecycle;
pub mod limits;
pub mod middleware;
pub mod payload;
pub mod prescan;
pub mod problem;
pub mod scope;
pub mod security;
pub mod sessions;
pub mod simulation_results;
pub mod simulation_views;
pub mod simulations;
pub mod tags;
pub mod team;
pub mod types;
pub mod usage;

use crate::app::App;
use contract::{AllowTable, Contract, finalize_spec};
use edge::{Edge, EdgeConfig};
use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route};
use poem_openapi::{OpenApiService, ServerObject};
use std::sync::Arc;

/// All operation groups, for the OpenAPI service.
pub type Apis = (
    accounts::AccountsApi,
    sessions::SessionsApi,
    team::TeamApi,
    credentials::CredentialsApi,
    invitations::InvitationsApi,
    keys::KeysApi,
    simulations::SimulationsApi,
    jobs::JobsApi,
    usage::UsageApi,
    lifecycle::LifecycleApi,
    admin::AdminApi,
    billing::BillingApi,
    billing::BillingSummaryApi,
    health::HealthApi,
);

/// Builds the OpenAPI service (the spec's single source of truth).
pub fn service(app: Arc<App>) -> OpenApiService<Contract<Apis>, ()> {
    OpenApiService::new(
        Contract((
            accounts::AccountsApi { app: app.clone() },
            sessions::SessionsApi { app: app.clone() },
            team::TeamApi { app: app.clone() },
            credentials::CredentialsApi { app: app.clone() },
            invitations::InvitationsApi { app: app.clone() },
            keys::KeysApi { app: app.clone() },
            simulations::SimulationsApi { app: app.clone() },
            jobs::JobsApi { app: app.clone() },
            usage::UsageApi { app: app.clone() },
            lifecycle::LifecycleApi { app: app.clone() },
            admin::AdminApi { app: app.clone() },
            billing::BillingApi { app: app.clone() },
            billing::BillingSummaryApi { app: app.clone() },
            health::HealthApi { app },
        )),
        "Monte Carlo Portfolio Simulation API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(include_str!("../../openapi/description.md"))
    .server(
        ServerObject::new("/")
            .description("This server (the tenant named by X-Tenant-ID, the API key or the token)"),
    )
    .server(
        ServerObject::new("{scheme}://{tenant}.{domain}")
            .description("A tenant's own subdomain")
            .enum_variable("scheme", "Scheme", "https", vec!["https", "http"])
            .variable("tenant", "The tenant's slug", "acme")
            .variable(
                "domain",
                "The service's base domain (BASE_DOMAIN) and port",
                "localhost:8080",
            ),
    )
}

/// The OpenAPI document as committed and served: poem-openapi's, finalized into a contract.
pub fn openapi_document(api: &OpenApiService<Contract<Apis>, ()>) -> String {
    finalize_spec(&api.spec()).0
}

/// `sha256-…` source of a CSP hash.
fn csp_hash(script: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes()))
    )
}

/// The Swagger UI page showing `spec`, and its Content-Security-Policy: its two inline scripts
/// allowed by hash, nothing else.
fn docs_page(api: &OpenApiService<Contract<Apis>, ()>, spec: &str) -> (String, String) {
    let raw = api.spec();
    let html = api.swagger_ui_html().replacen(&raw, spec, 1);
    let mut hashes = Vec::new();
    let mut rest = html.as_str();
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let body = &after[open_end + 1..];
        let Some(close) = body.find("</script>") else {
            break;
        };
        hashes.push(csp_hash(&body[..close]));
        rest = &body[close..];
    }
    let csp = format!(
        "default-src 'none'; script-src {}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes.join(" ")
    );
    (html, csp)
}

/// `GET /metrics`: the Prometheus text format, for a bearer of `METRICS_TOKEN` (compared in
/// constant time) or a signed-in platform admin's token; 401 otherwise.
#[poem::handler]
async fn metrics(req: &poem::Request, app: poem::web::Data<&Arc<App>>) -> Response {
    use poem::http::StatusCode;
    let given = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = |token: &str| {
        use sha2::{Digest, Sha256};
        let (a, b) = (
            Sha256::digest(given.as_bytes()),
            Sha256::digest(token.as_bytes()),
        );
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    };
    // Every token is compared (no early exit), so timing does not tell which one matched.
    let matched = app
        .metrics_tokens
        .iter()
        .fold(false, |ok, token| same(token) | ok);
    if !matched && security::admin_context(req).await.is_err() {
        let mut resp = problem::response_of(&crate::error::AppError::unauthorized(
            "GET /metrics needs Authorization: Bearer <METRICS_TOKEN> (or a platform admin's token)",
        ));
        resp.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return resp;
    }
    match app.metrics_text().await {
        Ok(text) => Response::builder()
            .status(StatusCode::OK)
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .header("cache-control", "no-store")
            .body(text),
        Err(e) => problem::response_of(&e),
    }
}

/// The API's routes: the OpenAPI operations (returned apart, for the caller to mount at `/`
/// beside its own pages), and `/webhooks/stripe`, `/openapi.json`, `/metrics`, `/docs`.
pub fn api_routes(app: Arc<App>) -> (OpenApiService<Contract<Apis>, ()>, Route) {
    let api = service(app);
    let spec = openapi_document(&api);
    let (docs, csp) = docs_page(&api, &spec);
    let rest = Route::new()
        // Stripe's webhook: signed by Stripe, no tenant credentials, outside the OpenAPI document.
        .at("/webhooks/stripe", poem::post(billing::stripe_webhook))
        .at(
            "/openapi.json",
            make_sync(move |_| {
                Response::builder()
                    .content_type(payload::JSON)
                    .header("cache-control", "no-cache")
                    .body(spec.clone())
            }),
        )
        .at("/metrics", poem::get(metrics))
        .at(
            "/docs",
            make_sync(move |_| {
                let mut resp = Html(docs.clone()).into_response();
                if let Ok(v) = poem::http::HeaderValue::from_str(&csp) {
                    resp.headers_mut().insert("content-security-policy", v);
                }
                resp
            }),
        );
    (api, rest)
}

/// `routes` wrapped in the request middleware (request id, edge limits, tracing, in-flight
/// bound), with the application and the edge limits as request data.
pub fn serve(routes: impl Endpoint + 'static, app: Arc<App>, edge: EdgeConfig) -> impl Endpoint {
    let edge = Arc::new(Edge::new(edge, AllowTable::of::<Contract<Apis>>()));
    routes.around(middleware::around).data(edge).data(app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::OpenApi;
    use poem_openapi::registry::Registry;

    /// Every array and string of every request body declares its maximum, so the prescan
    /// bounds all of them by the schema (not by the small caps for undeclared places).
    #[test]
    fn every_request_body_declares_its_maxima() {
        let mut registry = Registry::new();
        <Contract<Apis> as OpenApi>::register(&mut registry);
        let mut bodies = 0;
        for op in <Contract<Apis> as OpenApi>::meta()
            .into_iter()
            .flat_map(|a| a.paths)
            .flat_map(|p| p.operations)
        {
            for content in op.request.iter().flat_map(|r| &r.content) {
                bodies += 1;
                let missing = prescan::Shape::undeclared(&registry, &content.schema);
                assert!(
                    missing.is_empty(),
                    "{:?}: no maximum declared for {missing:?}",
                    op.operation_id
                );
            }
        }
        assert_eq!(
            bodies, 23,
            "signup, login, createUser, createKey, createSimulation, createBatch, adminUpdateTenant, \
             createCheckoutSession, changeSubscription, refresh, enableTwoFactor, disableTwoFactor, \
             setTeamSecurity, updateUser, changePassword, requestPasswordReset, \
             confirmPasswordReset, verifyEmail, createInvitation, acceptInvitation, adminBootstrap, \
             adminLogin, deleteOrganisation"
        );
    }
}
