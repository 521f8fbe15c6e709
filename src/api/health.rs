//! `GET /health` (liveness) and `GET /health/ready` (PostgreSQL reachable, migrations current,
//! quota store state).

use crate::api::ApiTags;
use crate::quota::QuotaHealth;
use crate::state::AppState;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Health operations.
pub struct HealthApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Liveness.
#[derive(Object)]
pub struct Liveness {
    /// Always `ok` while the process serves requests.
    pub status: String,
    /// Service version.
    pub version: String,
}

/// Readiness, component by component.
#[derive(Object)]
pub struct Readiness {
    /// `ready`, `degraded` (serving with reduced guarantees) or `unavailable`.
    pub status: String,
    /// `ok` or the error.
    pub database: String,
    /// `current`, `behind` or `unknown`.
    pub platform_migrations: String,
    /// `current` when every tenant schema was migrated at start-up, else `behind`.
    pub tenant_migrations: String,
    /// `not_configured` (PostgreSQL counters), `up`, or `degraded: …` (local limits only).
    pub quota_store: String,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Ready (possibly degraded: see `quota_store`).
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// Not ready: the database is unreachable or a schema lags.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// Answers while the process is up; touches no dependency.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Liveness> {
        Json(Liveness {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Readiness
    ///
    /// 200 when PostgreSQL is reachable and every schema is at the latest migration;
    /// `status` is `degraded` while Redis is configured but unreachable (limits are then
    /// enforced per instance). 503 otherwise.
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self) -> ReadyResponse {
        let (database, platform) = match crate::db::platform_is_current(&self.state.pool).await {
            Ok(true) => ("ok".to_string(), "current"),
            Ok(false) => ("ok".to_string(), "behind"),
            Err(e) => (format!("error: {e}"), "unknown"),
        };
        let tenants = if self.state.tenants_current.load(Ordering::Acquire) {
            "current"
        } else {
            "behind"
        };
        let (quota_store, degraded) = match self.state.quotas.health().await {
            QuotaHealth::RedisNotConfigured => ("not_configured".to_string(), false),
            QuotaHealth::RedisUp => ("up".to_string(), false),
            QuotaHealth::RedisDegraded { since, last_error } => (
                format!("degraded since {}: {last_error}", since.to_rfc3339()),
                true,
            ),
        };
        let ok = database == "ok" && platform == "current" && tenants == "current";
        let body = Readiness {
            status: if !ok {
                "unavailable"
            } else if degraded {
                "degraded"
            } else {
                "ready"
            }
            .into(),
            database,
            platform_migrations: platform.into(),
            tenant_migrations: tenants.into(),
            quota_store,
        };
        if ok {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}
