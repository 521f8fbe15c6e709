//! The HTTP layer (poem + poem-openapi): operations that parse the request into domain values,
//! authenticate it into a `TenantContext`, call one application service and map its domain
//! result or `AppError` to the wire (RFC 9457 problem details for every error). Nothing here
//! runs SQL or holds a rule of the product.

pub mod accounts;
pub mod admin;
mod examples;
pub mod health;
pub mod keys;
pub mod limits;
pub mod middleware;
pub mod payload;
pub mod problem;
pub mod scope;
pub mod security;
pub mod simulation_views;
pub mod simulations;
pub mod tags;
pub mod types;
pub mod usage;

use crate::app::App;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;
use std::sync::Arc;

/// All operation groups, for the OpenAPI service.
pub type Apis = (
    accounts::AccountsApi,
    keys::KeysApi,
    simulations::SimulationsApi,
    usage::UsageApi,
    admin::AdminApi,
    health::HealthApi,
);

/// Builds the OpenAPI service (the spec's single source of truth).
pub fn service(app: Arc<App>, server_url: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            accounts::AccountsApi { app: app.clone() },
            keys::KeysApi { app: app.clone() },
            simulations::SimulationsApi { app: app.clone() },
            usage::UsageApi { app: app.clone() },
            admin::AdminApi { app: app.clone() },
            health::HealthApi { app },
        ),
        "Monte Carlo Portfolio Simulation API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(include_str!("../../openapi/description.md"))
    .server(server_url)
}

/// Every route: the API, `/openapi.json`, `/docs`, wrapped in the request middleware.
pub fn routes(app: Arc<App>) -> impl Endpoint {
    let api = service(app.clone(), "/");
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .around(middleware::around)
        .data(app)
}
