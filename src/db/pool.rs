//! The two connection pools and the database itself: the request pool (sqlx) that every
//! repository query runs on, and the migration/provisioning pool (deadpool-postgres, because
//! refinery drives tokio-postgres).
//!
//! Least privilege: the two pools connect as different roles. The migration/provisioning pool is
//! the owner (`DATABASE_URL`): it creates schemas and tables and grants. The request pool is the
//! application role (`DATABASE_APP_URL`): it reads and writes rows and owns nothing; the grants
//! live in `migrate.rs`, beside the migrations whose tables they cover, and
//! [`Db::verify_app_privileges`] refuses to serve when the request role could create or alter
//! objects.

use super::statements::{RequestPool, StatementMode};
use crate::domain::slug::quote_ident;
use refinery::error::Error as RefineryError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Row};
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
    /// The request pool's role could create or alter objects.
    #[error(
        "the request connection (DATABASE_APP_URL) has more privilege than it may: {0}; \
         connect it as a role that owns nothing (see README, Production settings)"
    )]
    Privilege(String),
}

/// Both pools. Cheap to clone (each pool is a handle).
#[derive(Clone)]
pub struct Db {
    pub(super) pool: RequestPool,
    pub(super) migrations: deadpool_postgres::Pool,
    /// The request pool's role when it is not the owner: the role the grants name.
    pub(super) app_role: Option<String>,
}

impl Db {
    /// Both pools on one `url`, one role (tools, benchmarks and unit tests that need no split):
    /// `max_connections` request connections (opened lazily) and `migration_connections` for
    /// migrations and provisioning. No grants are made.
    ///
    /// # Errors
    /// When the URL does not parse.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        migration_connections: usize,
    ) -> Result<Self, DbError> {
        Self::connect_lazy_as(url, url, max_connections, migration_connections)
    }

    /// The service's pools: migrations and provisioning as the owner (`owner_url`), requests as
    /// the application role (`app_url`). When the two name different users, migrations and
    /// provisioning grant the application role what the request path needs.
    ///
    /// # Errors
    /// When a URL does not parse.
    pub fn connect_lazy_as(
        owner_url: &str,
        app_url: &str,
        max_connections: u32,
        migration_connections: usize,
    ) -> Result<Self, DbError> {
        Self::connect_lazy_with(
            owner_url,
            app_url,
            max_connections,
            migration_connections,
            StatementMode::Prepared,
        )
    }

    /// As [`Db::connect_lazy_as`], with the request pool sending statements the `statements`
    /// way (`DATABASE_STATEMENTS`; see [`StatementMode`]). The migration/provisioning pool
    /// (tokio-postgres, named statements, session-level transactions of refinery) needs a
    /// direct connection (or a session-pooling proxy) whatever the mode.
    ///
    /// # Errors
    /// When a URL does not parse.
    pub fn connect_lazy_with(
        owner_url: &str,
        app_url: &str,
        max_connections: u32,
        migration_connections: usize,
        statements: StatementMode,
    ) -> Result<Self, DbError> {
        let owner = PgConnectOptions::from_str(owner_url)?;
        let app = PgConnectOptions::from_str(app_url)?;
        let app_role =
            (app.get_username() != owner.get_username()).then(|| app.get_username().to_string());
        Ok(Self {
            pool: request_pool(app, max_connections, statements),
            migrations: migration_pool(owner_url, migration_connections)?,
            app_role,
        })
    }

    /// Request pool connections `(in use, idle, max)`. sqlx 0.9 does not expose how many
    /// tasks wait in `acquire`; `in use == max` is the saturation signal.
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (
            self.pool.size().saturating_sub(idle),
            idle,
            self.pool.max_connections(),
        )
    }

    /// Creates the application role `role` on the owner connection if it does not exist:
    /// `LOGIN`, no password (development's trust authentication), and no power beyond what it is
    /// granted (`NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS`). An
    /// existing role is left as it is ([`Db::verify_app_privileges`] checks it). Roles are
    /// cluster-wide: a concurrent creation by another instance (or test) is success.
    ///
    /// # Errors
    /// When the owner may not create roles (then create it, or set `DATABASE_APP_URL`).
    pub async fn ensure_app_role(&self, role: &str) -> Result<(), DbError> {
        let client = self.migrations.get().await?;
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[&role],
            )
            .await?
            .get(0);
        if exists {
            return Ok(());
        }
        let sql = format!(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS",
            quote_ident(role)
        );
        match client.batch_execute(&sql).await {
            Ok(()) => {
                tracing::info!(role, "created the application role");
                Ok(())
            }
            // duplicate_object, or unique_violation when the other creation was not yet
            // committed when ours checked.
            Err(e) if matches!(pg_code(&e), Some("42710" | "23505")) => Ok(()),
            Err(e) => Err(DbError::Config(format!(
                "cannot create the application role {role:?} ({e}); create it (LOGIN, no other \
                 attribute) or set DATABASE_APP_URL"
            ))),
        }
    }

    /// Checks, on the request pool, that its role cannot create or alter objects: not a
    /// superuser, no `CREATEROLE` / `CREATEDB` / `REPLICATION` / `BYPASSRLS`, no `CREATE` on the
    /// database, and in no schema outside PostgreSQL's own does it own (or belong to the owner
    /// of) the schema or a relation, or hold `CREATE`. Temporary tables are only warned about.
    ///
    /// # Errors
    /// [`DbError::Privilege`] naming every violation; other variants when PostgreSQL fails.
    pub async fn verify_app_privileges(&self) -> Result<(), DbError> {
        let row = sqlx::query(PRIVILEGE_CHECK).fetch_one(&self.pool).await?;
        let role: String = row.try_get("rolname")?;
        let mut violations = Vec::new();
        for (column, attribute) in [
            ("rolsuper", "SUPERUSER"),
            ("rolcreaterole", "CREATEROLE"),
            ("rolcreatedb", "CREATEDB"),
            ("rolreplication", "REPLICATION"),
            ("rolbypassrls", "BYPASSRLS"),
            (
                "db_create",
                "CREATE on the database (it could create schemas)",
            ),
        ] {
            if row.try_get::<bool, _>(column)? {
                violations.push(attribute.to_string());
            }
        }
        for (column, what) in [
            (
                "owned_schemas",
                "owns (or is a member of the owner of) schema",
            ),
            ("create_schemas", "has CREATE on schema"),
            ("owned_relations", "owns (or is a member of the owner of)"),
        ] {
            let names: Vec<String> = row.try_get(column)?;
            if !names.is_empty() {
                // Thousands of tenant schemas would make an unreadable message.
                let more = names.len().saturating_sub(SHOWN_NAMES);
                let mut list = names[..names.len().min(SHOWN_NAMES)].join(", ");
                if more > 0 {
                    list.push_str(&format!(" and {more} more"));
                }
                violations.push(format!("{what} {list}"));
            }
        }
        if row.try_get::<bool, _>("db_temp")? {
            tracing::warn!(
                role,
                "the request role may create temporary tables (TEMPORARY on the database): \
                 revoke it from PUBLIC or make the owner role the database's owner so start-up can"
            );
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(DbError::Privilege(format!(
                "role {role:?}: {}",
                violations.join("; ")
            )))
        }
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

/// A request-pool connection idle at least this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The request pool. In [`StatementMode::Unnamed`] sqlx's statement cache is off as well: a
/// query that slipped past the wrappers would then fail at once through a transaction pooler
/// instead of after a while.
fn request_pool(opts: PgConnectOptions, max_connections: u32, mode: StatementMode) -> RequestPool {
    let opts = opts.application_name("montecarlo-platform");
    let opts = match mode {
        StatementMode::Prepared => opts,
        StatementMode::Unnamed => opts.statement_cache_capacity(0),
    };
    // sqlx pings every connection it takes from the idle queue (a round trip per checkout);
    // only one that sat idle for a second or more is pinged here. A connection that broke while
    // in use more recently (a PostgreSQL restart) fails its next query instead, and is dropped.
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(opts);
    RequestPool::new(pool, mode)
}

pub(super) fn pg_code(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error().map(|e| e.code().code())
}

/// How many schema or relation names a privilege violation lists.
const SHOWN_NAMES: usize = 10;

/// What [`Db::verify_app_privileges`] reads, as the request role. "Outside PostgreSQL's own"
/// means every schema but `pg_*` and `information_schema`, so `public` is checked too.
/// `pg_has_role(…, 'MEMBER')` is true for the owner itself and for any role that may `SET ROLE`
/// to it.
const PRIVILEGE_CHECK: &str = "\
WITH ours AS (
    SELECT oid, nspname, nspowner FROM pg_namespace
     WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
)
SELECT r.rolname::text AS rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
       r.rolbypassrls,
       has_database_privilege(current_database(), 'CREATE') AS db_create,
       has_database_privilege(current_database(), 'TEMPORARY') AS db_temp,
       ARRAY(SELECT nspname::text FROM ours WHERE pg_has_role(nspowner, 'MEMBER')
              ORDER BY 1) AS owned_schemas,
       ARRAY(SELECT nspname::text FROM ours WHERE has_schema_privilege(oid, 'CREATE')
              ORDER BY 1) AS create_schemas,
       ARRAY(SELECT format('%I.%I', o.nspname, c.relname) FROM pg_class c
               JOIN ours o ON o.oid = c.relnamespace
              WHERE pg_has_role(c.relowner, 'MEMBER') ORDER BY 1) AS owned_relations
  FROM pg_roles r
 WHERE r.rolname = current_user";

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
