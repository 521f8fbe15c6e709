//! The two connection pools and the database itself: the request pool (sqlx) that every
//! repository query runs on, and the migration/provisioning pool (deadpool-postgres, because
//! refinery drives tokio-postgres).

use crate::domain::slug::quote_ident;
use refinery::error::Error as RefineryError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::time::Duration;

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

/// Both pools. Cheap to clone (each pool is a handle).
#[derive(Clone)]
pub struct Db {
    pub(super) pool: PgPool,
    pub(super) migrations: deadpool_postgres::Pool,
}

impl Db {
    /// Pools for `url`: `max_connections` request connections (opened lazily) and
    /// `migration_connections` for migrations and provisioning.
    ///
    /// # Errors
    /// When the URL does not parse.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        migration_connections: usize,
    ) -> Result<Self, DbError> {
        Ok(Self {
            pool: request_pool(url, max_connections)?,
            migrations: migration_pool(url, migration_connections)?,
        })
    }

    /// Runs an empty transaction on the provisioning pool (the provisioning benchmark's
    /// baseline).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn probe_provisioning_pool(&self) -> Result<(), DbError> {
        let mut client = self.migrations.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT 1", &[]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The request pool's size and idle connections (for metrics and tests).
    pub fn pool_status(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }
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
fn request_pool(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
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
fn migration_pool(url: &str, size: usize) -> Result<deadpool_postgres::Pool, DbError> {
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
