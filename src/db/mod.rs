//! The data layer: the only place SQL lives. Pools and migrations, the tenant context and its
//! transaction type (the only door to a tenant schema), and one repository module per table
//! family. Functions take `&Db` (platform tables, or a credential check before a context
//! exists) or `&mut TenantTx` (a tenant's tables).
//!
//! Rule: a tenant's search_path is only ever set transaction-locally, inside the transaction
//! that uses it: by `TenantContext::begin` (`BEGIN; SET LOCAL search_path TO "t_…"` in one
//! round trip, the name a validated `SchemaName`, quoted) or `set_config('search_path', $1,
//! true)` with a bind parameter (migrations, lifecycle).

pub mod account_tokens;
pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod billing;
mod context;
pub mod export;
pub mod idempotency;
pub mod invitations;
pub mod jobs;
pub mod lifecycle;
pub mod listen;
mod migrate;
pub mod outbox;
mod pool;
pub mod provisioning;
pub mod quota_counters;
pub mod sessions;
pub mod simulations;
mod statements;
pub mod tenants;
pub mod tiers;
pub mod usage;
pub mod users;

pub use context::{TenantContext, TenantTx, begin_pre_auth};
pub use migrate::{
    MigrationProgress, TenantMigrationSummary, latest_platform_version, migrate_all_tenants,
    migrate_all_tenants_reporting, migrate_platform, platform_is_current,
};
pub use pool::{Db, DbError, ensure_database};
pub use statements::{Conn, RequestPool, RequestTx, StatementMode};
