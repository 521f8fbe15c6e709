//! The web dashboard: server-rendered pages on the same server as the API (issue #12). Pages
//! call the application services with the signed-in user's `TenantContext`, like the API
//! handlers; nothing here runs SQL.
//!
//! Hosts: a tenant's subdomain (`<slug>.<BASE_DOMAIN>`) serves the tenant pages; the apex
//! (`BASE_DOMAIN`, `localhost`, `127.0.0.1`, any other host) the public pages; a subdomain that
//! names no live tenant answers the 404 page. Every page route is wrapped in [`page::layer`]
//! (CSRF origin checks, HTML error pages, CSP); the request middleware (request id, edge
//! limits, logging, security headers) wraps it like the API.

pub mod account;
pub mod admin;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod cookies;
pub mod csrf;
pub mod home;
pub mod keys;
pub mod page;
pub mod public;
pub mod session;
pub mod simulations;
pub mod team;
pub mod usage;

use poem::{Endpoint, EndpointExt, Request, Response, Route, get, handler, post};
use session::Site;

/// A page endpoint: `ep` wrapped in [`page::layer`].
pub fn page<E: Endpoint + 'static>(ep: E) -> poem::endpoint::BoxEndpoint<'static> {
    ep.around(page::layer).boxed()
}

/// `GET /`: the landing page on the apex, the tenant's home (or `/login`) on a subdomain.
#[handler]
async fn root(req: &Request) -> poem::Result<Response> {
    match session::site(req).await? {
        Site::Apex => Ok(public::landing(req)),
        Site::Tenant(_) => home::root(req).await,
    }
}

/// `api` (nested at `/`), except that `GET /` is the web root page: poem's tree gives `/` to
/// the catch-all of a nest at `/`, so the root page is dispatched here.
pub fn with_root<E>(api: E) -> impl Endpoint
where
    E: poem::IntoEndpoint,
    E::Endpoint: 'static,
{
    let root_page = std::sync::Arc::new(page(get(root)));
    let api = std::sync::Arc::new(api.into_endpoint().map_to_response());
    poem::endpoint::make(move |req: Request| {
        let root_page = root_page.clone();
        let api = api.clone();
        async move {
            if req.uri().path() == "/" {
                root_page.call(req).await
            } else {
                api.call(req).await
            }
        }
    })
}

/// Adds the pages and `/static/…` to `route` (beside the API's routes; see [`with_root`]).
pub fn mount(route: Route) -> Route {
    route
        .at("/login", page(get(auth::login_form).post(auth::login)))
        .at("/logout", page(post(auth::logout)))
        .at("/keys", page(get(keys::list).post(keys::create)))
        .at("/keys/:id/revoke", page(post(keys::revoke)))
        .at("/simulations", page(get(simulations::list)))
        .at(
            "/simulations/new",
            page(get(simulations::new_form).post(simulations::run)),
        )
        .at("/simulations/:id", page(get(simulations::show)))
        .at(
            "/verification/resend",
            page(post(home::resend_verification)),
        )
        .at("/usage", page(get(usage::show)))
        .at("/team", page(get(team::show).post(team::act)))
        .at("/billing", page(get(billing::show).post(billing::act)))
        .at("/billing/success", page(get(billing::success)))
        .at("/billing/cancelled", page(get(billing::cancelled)))
        .at("/audit", page(get(audit::list)))
        .at("/static/:hash/*name", get(assets::serve))
        .at("/favicon.ico", get(public::favicon))
        .at("/pricing", page(get(public::pricing)))
        .at(
            "/signup",
            page(get(public::signup_form).post(public::signup)),
        )
        .at("/developers", page(get(public::developers)))
        .at(
            "/forgot-password",
            page(get(account::forgot_form).post(account::forgot)),
        )
        .at(
            "/reset-password",
            page(get(account::reset_form).post(account::reset)),
        )
        .at(
            "/verify-email",
            page(get(account::verify_form).post(account::verify)),
        )
        .at(
            "/accept-invitation",
            page(get(account::accept_form).post(account::accept)),
        )
        .at(
            "/admin/login",
            page(get(admin::login_form).post(admin::login)),
        )
        .at("/admin/logout", page(post(admin::logout)))
        .at("/admin", page(get(admin::tenants)))
        .at("/admin/revenue", page(get(admin::revenue)))
}
