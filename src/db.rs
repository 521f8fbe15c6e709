//! PostgreSQL: the request pool (sqlx), the migration pool (deadpool-postgres + refinery),
//! database creation, platform and tenant migrations, and the per-request tenant transaction.
//!
//! Rule: the tenant search_path is only ever set with
//! `set_config('search_path', $1, true)` — transaction-local, bound as a parameter — inside the
//! transaction that uses it. Nothing sets a session-level path on a pooled connection.

use crate::domain::SchemaName;
use crate::domain::slug::quote_ident;
use futures_util::{StreamExt, stream};
use refinery::error::Error as RefineryError;
use refinery::{AsyncMigrate, Migration};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

mod embedded {
    pub mod platform {
        refinery::embed_migrations!("platform_migrations");
    }
    pub mod tenant {
        refinery::embed_migrations!("tenant_migrations");
    }
}

/// Errors while preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// sqlx failed.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// tokio-postgres failed.
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The migration pool failed.
    #[error("migration pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A migration failed.
    #[error("migration: {0}")]
    Migration(#[from] RefineryError),
    /// The URL or options are unusable.
    #[error("database configuration: {0}")]
    Config(String),
}

/// The latest tenant migration version compiled into this binary.
pub fn latest_tenant_version() -> i32 {
    embedded::tenant::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
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

/// Creates the database named in `url` if it does not exist (connecting to `postgres`).
///
/// # Errors
/// When the server is unreachable or refuses.
pub async fn ensure_database(url: &str) -> Result<(), DbError> {
    let opts = PgConnectOptions::from_str(url)?;
    let name = opts
        .get_database()
        .ok_or_else(|| DbError::Config("DATABASE_URL names no database".into()))?
        .to_string();
    let mut conn = opts.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE {}", quote_ident(&name));
        if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            // Another instance may have created it concurrently.
            let dup = err
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if !dup {
                return Err(err.into());
            }
        }
        tracing::info!(database = %name, "created database");
    }
    Ok(())
}

/// The request pool.
///
/// # Errors
/// When the URL does not parse.
pub fn request_pool(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let opts = PgConnectOptions::from_str(url)?.application_name("montecarlo-platform");
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(opts))
}

/// The migration / provisioning pool (deadpool-postgres, `RecyclingMethod::Clean`).
///
/// # Errors
/// When the URL does not parse.
pub fn migration_pool(url: &str, size: usize) -> Result<deadpool_postgres::Pool, DbError> {
    let pg = tokio_postgres::Config::from_str(url)?;
    let mgr = deadpool_postgres::Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Clean,
        },
    );
    deadpool_postgres::Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// Creates the `platform` schema and applies the platform migrations, holding an advisory
/// lock so concurrently starting instances migrate one at a time.
///
/// # Errors
/// When PostgreSQL fails or a migration diverges from what was applied before.
pub async fn migrate_platform(pool: &deadpool_postgres::Pool) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
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
    tx.commit().await?;
    Ok(report.applied_migrations().len())
}

/// Applies the tenant migrations to `schema` inside the caller's transaction (which must have
/// set the search_path to the schema). Refinery's history table lives in the schema.
///
/// # Errors
/// When a migration fails; the caller's transaction is then aborted.
pub async fn migrate_tenant_in(
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
/// with several instances starting at once.
///
/// # Errors
/// When the tenant list cannot be read; per-tenant failures are reported in the summary.
pub async fn migrate_all_tenants(
    pool: &deadpool_postgres::Pool,
    concurrency: usize,
) -> Result<TenantMigrationSummary, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT slug, schema_name FROM platform.tenants ORDER BY created_at",
            &[],
        )
        .await?;
    drop(client);
    let tenants: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut summary = TenantMigrationSummary {
        tenants: tenants.len(),
        ..Default::default()
    };
    let results: Vec<(String, Result<usize, String>)> = stream::iter(tenants)
        .map(|(slug, schema)| async move {
            let result = async {
                let schema = SchemaName::parse(&schema).map_err(DbError::Config)?;
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[&schema.as_str()],
                )
                .await?;
                let n = migrate_tenant_in(&tx, &schema).await?;
                tx.commit().await?;
                Ok::<usize, DbError>(n)
            }
            .await;
            (slug, result.map_err(|e| e.to_string()))
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
pub async fn platform_is_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let version: Option<i32> =
        sqlx::query_scalar("SELECT max(version) FROM platform.refinery_schema_history")
            .fetch_one(pool)
            .await?;
    Ok(version == Some(latest_platform_version()))
}

/// Begins a request transaction whose search_path is `<tenant schema>, platform`, set
/// transaction-locally with a bind parameter.
///
/// # Errors
/// When no connection can be had or PostgreSQL fails.
pub async fn begin_tenant(
    pool: &PgPool,
    schema: &SchemaName,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(schema.search_path())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
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
