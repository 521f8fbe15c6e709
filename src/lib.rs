//! Multi-tenant Monte Carlo portfolio-simulation API.
//!
//! See `ARCHITECTURE.md` for the map of modules and the request flow.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod middleware;
pub mod provisioning;
pub mod quota;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tenancy;
