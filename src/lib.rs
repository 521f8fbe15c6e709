//! Multi-tenant Monte Carlo portfolio-simulation API.
//!
//! Layers, arrows only down (see `ARCHITECTURE.md`): `startup` (composition root) → `http`
//! (poem-openapi operations) → `app` (one service per capability) → `quota` → `db` (the only
//! SQL) → `domain`, `error`, `config`, `clock`.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod quota;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod web;
