//! Readiness: PostgreSQL reachable, every schema at the latest migration, quota store state.

use crate::db::{self, Db};
use crate::quota::{QuotaHealth, Quotas};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The state of each dependency.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// `ok` or the error.
    pub database: String,
    /// `current`, `behind` or `unknown`.
    pub platform_migrations: &'static str,
    /// `current` or `behind`.
    pub tenant_migrations: &'static str,
    /// The monthly quota store.
    pub quota_store: QuotaHealth,
}

impl Readiness {
    /// Serving with full guarantees or degraded ones (not `unavailable`).
    pub fn is_ready(&self) -> bool {
        self.database == "ok"
            && self.platform_migrations == "current"
            && self.tenant_migrations == "current"
    }
}

/// Health checks.
pub struct HealthService {
    db: Db,
    quotas: Arc<Quotas>,
    tenants_current: AtomicBool,
}

impl HealthService {
    /// The service; `tenants_current` says whether every tenant schema migrated at start-up.
    pub fn new(db: Db, quotas: Arc<Quotas>, tenants_current: bool) -> Self {
        Self {
            db,
            quotas,
            tenants_current: AtomicBool::new(tenants_current),
        }
    }

    /// Checks every dependency.
    pub async fn readiness(&self) -> Readiness {
        let (database, platform_migrations) = match db::platform_is_current(&self.db).await {
            Ok(true) => ("ok".to_string(), "current"),
            Ok(false) => ("ok".to_string(), "behind"),
            Err(e) => (format!("error: {e}"), "unknown"),
        };
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
        }
    }
}
