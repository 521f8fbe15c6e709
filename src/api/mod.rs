//! The HTTP API (poem-openapi). Each submodule is one tag of the generated spec.

pub mod accounts;
pub mod admin;
mod examples;
pub mod health;
pub mod keys;
pub mod payload;
pub mod simulations;
pub mod usage;

use crate::state::AppState;
use poem_openapi::{OpenApiService, Tags};
use std::sync::Arc;

/// Tags grouping the operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Sign up an organisation, sign in, and see who you are.
    Accounts,
    /// Users of a tenant (owner/admin manage them).
    Users,
    /// API keys of a tenant (owner/admin manage them).
    Keys,
    /// Run and read correlated Monte Carlo portfolio simulations.
    Simulations,
    /// Usage records and the current quota period.
    Usage,
    /// Platform administration: tenants and tiers.
    Admin,
    /// Liveness and readiness.
    Health,
}

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
pub fn service(state: Arc<AppState>, server_url: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            accounts::AccountsApi {
                state: state.clone(),
            },
            keys::KeysApi {
                state: state.clone(),
            },
            simulations::SimulationsApi {
                state: state.clone(),
            },
            usage::UsageApi {
                state: state.clone(),
            },
            admin::AdminApi {
                state: state.clone(),
            },
            health::HealthApi { state },
        ),
        "Monte Carlo Portfolio Simulation API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(include_str!("../../openapi/description.md"))
    .server(server_url)
}
