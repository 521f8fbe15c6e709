//! `GET /health` (liveness) and `GET /health/ready` (PostgreSQL reachable, migrations current,
//! quota store state). Readiness is unauthenticated, so it shows component states only, never
//! an error's text (causes are logged).

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
    /// `ok` or `unavailable` (the cause is logged, never shown).
    pub database: String,
    /// `current`, `behind` or `unknown`.
    pub platform_migrations: String,
    /// `current` when every tenant schema was migrated at start-up, else `behind`.
    pub tenant_migrations: String,
    /// `not_configured` (PostgreSQL counters), `up`, or `degraded` (Redis unreachable: monthly
    /// quotas enforced per instance; the cause is logged, never shown).
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

/// The quota store's state as shown; the outage's start and cause are in the logs (the Redis
/// store logs an outage when it begins, then at most once a minute).
fn quota_store_state(health: &QuotaHealth) -> &'static str {
    match health {
        QuotaHealth::RedisNotConfigured => "not_configured",
        QuotaHealth::RedisUp => "up",
        QuotaHealth::RedisDegraded { .. } => "degraded",
    }
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
        let quota_store = quota_store_state(&r.quota_store).to_string();
        let body = Readiness {
            status: if !ok {
                "unavailable"
            } else if degraded {
                "degraded"
            } else {
                "ready"
            }
            .into(),
            database: r.database.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_outage_is_a_state_not_its_cause() {
        let degraded = QuotaHealth::RedisDegraded {
            since: chrono::Utc::now(),
            last_error: "Connection refused (os error 111) redis://:hunter2@10.1.2.3:6379".into(),
        };
        assert_eq!(quota_store_state(&degraded), "degraded");
        assert_eq!(quota_store_state(&QuotaHealth::RedisUp), "up");
        assert_eq!(
            quota_store_state(&QuotaHealth::RedisNotConfigured),
            "not_configured"
        );
    }
}
