//! Migrations: `platform_migrations/` once into the `platform` schema, `tenant_migrations/`
//! into every tenant schema (refinery's history table kept per schema), run inside our own
//! transactions so provisioning is atomic and concurrent instances migrate one at a time.
//!
//! The application role's grants are made here too, in the transaction that migrated the
//! tables they cover (so a table added by a new migration is never visible without them):
//! [`PLATFORM_GRANTS`] after the platform migrations, [`TENANT_GRANTS`] after a tenant schema's.
//! Every statement is idempotent.

use super::pool::{Db, DbError};
use crate::domain::SchemaName;
use crate::domain::slug::quote_ident;
use futures_util::{StreamExt, stream};
use refinery::{AsyncMigrate, Migration};

mod embedded {
    pub mod platform {
        refinery::embed_migrations!("platform_migrations");
    }
    pub mod tenant {
        refinery::embed_migrations!("tenant_migrations");
    }
}

/// The latest platform migration version compiled into this binary.
pub fn latest_platform_version() -> i32 {
    embedded::platform::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// Creates the `platform` schema and applies the platform migrations, holding an advisory
/// lock so concurrently starting instances migrate one at a time.
///
/// # Errors
/// When PostgreSQL fails or a migration diverges from what was applied before.
pub async fn migrate_platform(db: &Db) -> Result<usize, DbError> {
    let mut client = db.migrations.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7283461001)", &[])
        .await?;
    tx.batch_execute("CREATE SCHEMA IF NOT EXISTS platform")
        .await?;
    tx.execute("SELECT set_config('search_path', 'platform', true)", &[])
        .await?;
    let report = embedded::platform::migrations::runner()
        .run_async(&mut TxMigrator(&tx))
        .await?;
    if let Some(role) = &db.app_role {
        grant_platform_in(&tx, role).await?;
    }
    tx.commit().await?;
    Ok(report.applied_migrations().len())
}

/// What the request path may do on the database and in `platform`, exactly what `src/db` runs
/// on the request pool: read tiers and tenants (directory), update the columns an admin may
/// change (never `id`, `slug` or `schema_name`), read and insert key-directory rows (key
/// lookup, key creation), read and upsert quota counters (PostgreSQL quota store), read the
/// platform migration history (readiness), enqueue and read jobs and batches, and change the
/// state columns of a job (never its tenant, principal or request), write mail to the outbox
/// and record its delivery (never rewrite a message). `{db}` and `{role}` are
/// quoted identifiers.
/// `TEMPORARY` is revoked from `PUBLIC` on the service's own database so no login role can
/// create temporary tables there (the owner keeps it as owner).
const PLATFORM_GRANTS: &str = "\
REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC;
REVOKE ALL ON DATABASE {db} FROM {role};
GRANT CONNECT ON DATABASE {db} TO {role};
REVOKE ALL ON SCHEMA platform FROM {role};
GRANT USAGE ON SCHEMA platform TO {role};
REVOKE ALL ON ALL TABLES IN SCHEMA platform FROM {role};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA platform FROM {role};
GRANT SELECT ON platform.tiers, platform.tenants, platform.api_key_directory,
                platform.quota_counters, platform.refinery_schema_history TO {role};
GRANT UPDATE (status, tier, trial_ends_at, overage_enabled, updated_at) ON platform.tenants TO {role};
GRANT INSERT ON platform.api_key_directory TO {role};
GRANT INSERT, UPDATE (used, overage) ON platform.quota_counters TO {role};
GRANT SELECT, INSERT, UPDATE ON platform.billing_accounts TO {role};
GRANT SELECT, INSERT ON platform.stripe_events, platform.billing_overage, platform.billing_audit TO {role};
GRANT UPDATE (invoice_item_id) ON platform.billing_overage TO {role};
GRANT UPDATE (tenant_id, outcome) ON platform.stripe_events TO {role};
GRANT USAGE ON SEQUENCE platform.billing_audit_id_seq TO {role};
GRANT SELECT, INSERT ON platform.jobs, platform.job_batches TO {role};
GRANT UPDATE (status, progress, attempts, not_before, lease_owner, lease_until, cancel_requested,
              charged_at, charged_overage, simulation_id, problem, started_at, finished_at,
              updated_at) ON platform.jobs TO {role};
GRANT SELECT, INSERT ON platform.mail_outbox TO {role};
GRANT UPDATE (attempts, next_attempt_at, sent_at, failed_at, last_error, body_text) ON platform.mail_outbox TO {role};
GRANT SELECT ON platform.admins TO {role};
GRANT UPDATE (totp_last_step) ON platform.admins TO {role};
GRANT SELECT, INSERT ON platform.admin_sessions TO {role};
GRANT UPDATE (revoked_at) ON platform.admin_sessions TO {role};
GRANT INSERT ON platform.admin_audit TO {role};
GRANT USAGE ON SEQUENCE platform.admin_audit_id_seq TO {role};
GRANT UPDATE (deleted_at, purge_after) ON platform.tenants TO {role};";

/// What the request path may do in a tenant schema: read and write rows of its tables and use
/// their sequences (`bigserial` ids), except that `audit_log` is append-only and refinery's
/// history is not the request path's business. `{schema}` and `{role}` are quoted identifiers.
const TENANT_GRANTS: &str = "\
REVOKE ALL ON SCHEMA {schema} FROM {role};
GRANT USAGE ON SCHEMA {schema} TO {role};
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
REVOKE ALL ON {schema}.refinery_schema_history FROM {role};
REVOKE UPDATE, DELETE ON {schema}.audit_log FROM {role};";

/// Grants `role` [`PLATFORM_GRANTS`] inside the platform migration's transaction.
async fn grant_platform_in(
    tx: &tokio_postgres::Transaction<'_>,
    role: &str,
) -> Result<(), tokio_postgres::Error> {
    let db: String = tx.query_one("SELECT current_database()", &[]).await?.get(0);
    tx.batch_execute(
        &PLATFORM_GRANTS
            .replace("{db}", &quote_ident(&db))
            .replace("{role}", &quote_ident(role)),
    )
    .await
}

/// Grants `role` [`TENANT_GRANTS`] on `schema` inside the caller's transaction (provisioning, or
/// a tenant's migration at start-up).
pub(super) async fn grant_tenant_in(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &SchemaName,
    role: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(
        &TENANT_GRANTS
            .replace("{schema}", &schema.quoted())
            .replace("{role}", &quote_ident(role)),
    )
    .await
}

/// Applies the tenant migrations to `schema` inside the caller's transaction (which must have
/// set the search_path to the schema). Refinery's history table lives in the schema.
///
/// # Errors
/// When a migration fails; the caller's transaction is then aborted.
pub(super) async fn migrate_tenant_in(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &SchemaName,
) -> Result<usize, DbError> {
    tx.execute(
        "SELECT set_config('search_path', $1, true)",
        &[&schema.search_path()],
    )
    .await?;
    let report = embedded::tenant::migrations::runner()
        .run_async(&mut TxMigrator(tx))
        .await?;
    Ok(report.applied_migrations().len())
}

/// Outcome of migrating every tenant schema.
#[derive(Debug, Default, Clone)]
pub struct TenantMigrationSummary {
    /// Tenant schemas seen.
    pub tenants: usize,
    /// Migrations applied in total.
    pub applied: usize,
    /// Schemas that failed (slug, error).
    pub failed: Vec<(String, String)>,
}

/// Migrates every tenant schema that is behind, `concurrency` at a time. Each schema migrates
/// in its own transaction under a per-schema advisory lock, so the run is resumable and safe
/// with several instances starting at once. The application role's grants are renewed in the
/// same transaction when a migration was applied or the role cannot use the schema yet (a new
/// role, or a schema from before grants existed); otherwise they are left alone, so a restart
/// does not rewrite every tenant's catalog rows.
///
/// # Errors
/// When the tenant list cannot be read; per-tenant failures are reported in the summary.
pub async fn migrate_all_tenants(
    db: &Db,
    concurrency: usize,
) -> Result<TenantMigrationSummary, DbError> {
    migrate_all_tenants_reporting(db, concurrency, &|_| {}).await
}

/// Progress of [`migrate_all_tenants_reporting`].
#[derive(Debug, Clone, Copy)]
pub enum MigrationProgress<'a> {
    /// The run starts over this many tenant schemas.
    Started {
        /// Tenant schemas to look at.
        tenants: usize,
    },
    /// One schema is done: migrations applied, or the failure.
    Finished {
        /// The tenant's slug.
        slug: &'a str,
        /// Migrations applied, or the error.
        outcome: Result<usize, &'a str>,
    },
}

/// [`migrate_all_tenants`], telling `progress` when it starts and as each schema finishes
/// (the CLI's progress bar).
///
/// # Errors
/// As [`migrate_all_tenants`].
pub async fn migrate_all_tenants_reporting(
    db: &Db,
    concurrency: usize,
    progress: &(dyn Fn(MigrationProgress<'_>) + Sync),
) -> Result<TenantMigrationSummary, DbError> {
    let client = db.migrations.get().await?;
    let rows = client
        .query(
            "SELECT slug, schema_name FROM platform.tenants ORDER BY created_at",
            &[],
        )
        .await?;
    drop(client);
    let tenants: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    progress(MigrationProgress::Started {
        tenants: tenants.len(),
    });
    let mut summary = TenantMigrationSummary {
        tenants: tenants.len(),
        ..Default::default()
    };
    let results: Vec<(String, Result<usize, String>)> = stream::iter(tenants)
        .map(|(slug, schema)| async move {
            let result = async {
                let schema = SchemaName::parse(&schema).map_err(DbError::Config)?;
                let mut client = db.migrations.get().await?;
                let tx = client.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[&schema.as_str()],
                )
                .await?;
                let n = migrate_tenant_in(&tx, &schema).await?;
                if let Some(role) = &db.app_role {
                    let usable: bool = tx
                        .query_one(
                            "SELECT has_schema_privilege($1::name, $2::text, 'USAGE')",
                            &[role, &schema.as_str()],
                        )
                        .await?
                        .get(0);
                    if n > 0 || !usable {
                        grant_tenant_in(&tx, &schema, role).await?;
                    }
                }
                tx.commit().await?;
                Ok::<usize, DbError>(n)
            }
            .await;
            let result = result.map_err(|e| e.to_string());
            progress(MigrationProgress::Finished {
                slug: &slug,
                outcome: result.as_ref().map(|n| *n).map_err(String::as_str),
            });
            (slug, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (slug, result) in results {
        match result {
            Ok(n) => summary.applied += n,
            Err(e) => {
                tracing::error!(tenant = %slug, error = %e, "tenant migration failed");
                summary.failed.push((slug, e));
            }
        }
    }
    Ok(summary)
}

/// Is the platform schema at the latest version compiled in?
///
/// # Errors
/// When PostgreSQL is unreachable.
pub async fn platform_is_current(db: &Db) -> Result<bool, sqlx::Error> {
    let version: Option<i32> =
        sqlx::query_scalar("SELECT max(version) FROM platform.refinery_schema_history")
            .fetch_one(&db.pool)
            .await?;
    Ok(version == Some(latest_platform_version()))
}

/// Runs refinery inside an existing tokio-postgres transaction (refinery's own driver opens
/// and commits a transaction per call, which would break atomic provisioning).
struct TxMigrator<'a, 'b>(&'a tokio_postgres::Transaction<'b>);

impl refinery_core::traits::r#async::AsyncTransaction for TxMigrator<'_, '_> {
    type Error = tokio_postgres::Error;

    async fn execute<'q, T: Iterator<Item = &'q str> + Send + 'q>(
        &'q mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut count = 0;
        for query in queries {
            self.0.batch_execute(query).await?;
            count += 1;
        }
        Ok(count)
    }
}

impl refinery_core::traits::r#async::AsyncQuery<Vec<Migration>> for TxMigrator<'_, '_> {
    async fn query<'q>(&'q mut self, query: &'q str) -> Result<Vec<Migration>, Self::Error> {
        let rows = self.0.query(query, &[]).await?;
        let mut applied = Vec::with_capacity(rows.len());
        for row in rows {
            let applied_on: String = row.get(2);
            let checksum: String = row.get(3);
            let applied_on = time::OffsetDateTime::parse(
                &applied_on,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            applied.push(Migration::applied(
                row.get(0),
                row.get(1),
                applied_on,
                checksum.parse::<u64>().unwrap_or_default(),
            ));
        }
        Ok(applied)
    }
}

impl AsyncMigrate for TxMigrator<'_, '_> {}
