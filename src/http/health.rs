//! `GET /health` (liveness) and `GET /health/ready` (PostgreSQL reachable, migrations current,
//! quota store state).

use super::payload::Json;
use super::tags::ApiTags;
use crate::app::App;
use crate::ok_response;
use crate::quota::QuotaHealth;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

/// Health operations.
pub struct HealthApi {
    /// The application.
    pub app: Arc<App>,
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

ok_response!(LivenessOk, Liveness, "The process is up.");

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
    async fn health(&self) -> LivenessOk {
        LivenessOk::Ok(Json(Liveness {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    /// Readiness
    ///
    /// 200 when PostgreSQL is reachable and every schema is at the latest migration;
    /// `status` is `degraded` while Redis is configured but unreachable (limits are then
    /// enforced per instance). 503 otherwise.
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self) -> ReadyResponse {
        let r = self.app.health.readiness().await;
        let ok = r.is_ready();
        let degraded = r.quota_store.is_degraded();
        let quota_store = match &r.quota_store {
            QuotaHealth::RedisNotConfigured => "not_configured".to_string(),
            QuotaHealth::RedisUp => "up".to_string(),
            QuotaHealth::RedisDegraded { since, last_error } => {
                format!("degraded since {}: {last_error}", since.to_rfc3339())
            }
        };
        let body = Readiness {
            status: if !ok {
                "unavailable"
            } else if degraded {
                "degraded"
            } else {
                "ready"
            }
            .into(),
            database: r.database,
            platform_migrations: r.platform_migrations.into(),
            tenant_migrations: r.tenant_migrations.into(),
            quota_store,
        };
        if ok {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}
