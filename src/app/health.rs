//! Readiness: PostgreSQL reachable, every schema at the latest migration, quota store state.
//! Component states only: a cause (which may name hosts, ports, users or databases) is logged
//! at `warn`, never returned, because readiness answers anyone who asks.

use crate::db::{self, Db};
use crate::quota::{QuotaHealth, Quotas};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The state of each dependency.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub database: &'static str,
    /// `current`, `behind` or `unknown`.
    pub platform_migrations: &'static str,
    /// `current` or `behind`.
    pub tenant_migrations: &'static str,
    /// The monthly quota store.
    pub quota_store: QuotaHealth,
    /// The instance is stopping (a stop signal arrived): not ready whatever the rest says.
    pub draining: bool,
}

impl Readiness {
    /// Serving with full guarantees or degraded ones (not `unavailable`).
    pub fn is_ready(&self) -> bool {
        !self.draining
            && self.database == "ok"
            && self.platform_migrations == "current"
            && self.tenant_migrations == "current"
    }
}

/// `(database, platform_migrations)` for the platform migration check's outcome; a failure is
/// logged with its cause and shown as `unavailable` / `unknown`.
pub fn database_state(checked: Result<bool, sqlx::Error>) -> (&'static str, &'static str) {
    match checked {
        Ok(true) => ("ok", "current"),
        Ok(false) => ("ok", "behind"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database check failed");
            ("unavailable", "unknown")
        }
    }
}

/// Health checks.
pub struct HealthService {
    db: Db,
    quotas: Arc<Quotas>,
    tenants_current: AtomicBool,
    draining: AtomicBool,
}

impl HealthService {
    /// The service; `tenants_current` says whether every tenant schema migrated at start-up.
    pub fn new(db: Db, quotas: Arc<Quotas>, tenants_current: bool) -> Self {
        Self {
            db,
            quotas,
            tenants_current: AtomicBool::new(tenants_current),
            draining: AtomicBool::new(false),
        }
    }

    /// The instance is stopping: from now on readiness fails (so a load balancer sends no new
    /// requests), while the listener still accepts and serves for the drain delay.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether [`HealthService::start_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Checks every dependency. Not ready while draining (the checks are skipped).
    pub async fn readiness(&self) -> Readiness {
        if self.is_draining() {
            return Readiness {
                database: "ok",
                platform_migrations: "current",
                tenant_migrations: "current",
                quota_store: self.quotas.health().await,
                draining: true,
            };
        }
        let (database, platform_migrations) =
            database_state(db::platform_is_current(&self.db).await);
        let tenant_migrations = if self.tenants_current.load(Ordering::Acquire) {
            "current"
        } else {
            "behind"
        };
        Readiness {
            database,
            platform_migrations,
            tenant_migrations,
            quota_store: self.quotas.health().await,
            draining: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_failure_is_a_state_not_its_cause() {
        let refused = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connect to 10.1.2.3:5432 as montecarlo_app: connection refused",
        ));
        assert_eq!(database_state(Err(refused)), ("unavailable", "unknown"));
        assert_eq!(
            database_state(Err(sqlx::Error::PoolTimedOut)),
            ("unavailable", "unknown")
        );
        assert_eq!(database_state(Ok(true)), ("ok", "current"));
        assert_eq!(database_state(Ok(false)), ("ok", "behind"));
    }
}
