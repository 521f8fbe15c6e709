//! Shared application state, held in an `Arc` and attached to every request.

use crate::auth::JwtKeys;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::quota::Quotas;
use crate::tenancy::TenantDirectory;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Everything a handler needs.
pub struct AppState {
    /// Configuration.
    pub settings: Settings,
    /// Request pool (sqlx).
    pub pool: PgPool,
    /// Migration and provisioning pool (deadpool-postgres, for refinery).
    pub migrations: deadpool_postgres::Pool,
    /// Tenant and tier directory.
    pub tenants: TenantDirectory,
    /// Access-token keys.
    pub jwt: JwtKeys,
    /// Wall clock (manual in tests).
    pub clock: SharedClock,
    /// Quotas and rate limits.
    pub quotas: Arc<Quotas>,
    /// Every tenant schema was migrated to the latest version at start-up.
    pub tenants_current: AtomicBool,
}
