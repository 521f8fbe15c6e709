//! How the request pool sends statements to PostgreSQL (`DATABASE_STATEMENTS`), so the service
//! can run behind a transaction-pooling proxy such as PgBouncer.
//!
//! sqlx 0.9 sends every query that has arguments through the extended protocol as a **named**
//! server-side statement (`sqlx_s_<n>`, numbered per client connection) and caches it per
//! connection (100 by default): each query text is parsed and planned once per connection.
//! A proxy that pools by transaction (PgBouncer before 1.21 in `pool_mode = transaction`) gives
//! each transaction whichever server connection is free, so a cached name is missing there
//! (`26000 prepared statement "sqlx_s_3" does not exist`) or already belongs to another client
//! (`42P05 prepared statement "sqlx_s_1" already exists`). `statement_cache_capacity(0)` does
//! not help: sqlx still names the statement, it only stops caching (and never closes) it.
//!
//! [`StatementMode::Unnamed`] makes every request-pool query the *unnamed* statement
//! (`persistent(false)`), and runs each query that is not already inside a transaction in one of
//! its own (`BEGIN` … `COMMIT`). The second part matters as much as the first: sqlx sends
//! `Parse/Describe/Sync` and then `Bind/Execute/Sync`, and outside a transaction PgBouncer may
//! release the server connection at the first `Sync`, so the `Bind` would reach a server where
//! the unnamed statement is absent, or is what another client parsed last. Inside a transaction
//! the client keeps its server until `COMMIT`/`ROLLBACK` (both simple queries, which also discard
//! the unnamed statement). The cost: every query is parsed and planned on every execution, and a
//! query outside a transaction takes two more round trips.
//!
//! The wrappers here are what `Db`'s request pool and transactions hand to repository code:
//! [`RequestPool`] (`&db.pool` is an executor, `db.pool.begin()` a [`RequestTx`]) and [`Conn`]
//! (what `tx.conn()` returns). In [`StatementMode::Prepared`] they pass every query through to
//! sqlx unchanged.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{
    Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres, SqlStr, Transaction,
};

/// How request-pool queries are sent (`DATABASE_STATEMENTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// `prepared` (default): named server-side statements, cached per connection (parsed and
    /// planned once per connection). Needs a direct connection or a session-pooling proxy.
    #[default]
    Prepared,
    /// `unnamed`: the unnamed statement only, and every query inside a transaction; for a
    /// transaction-pooling proxy (PgBouncer < 1.21 in transaction mode). No plan is reused.
    Unnamed,
}

impl StatementMode {
    /// Parses the setting's value (`prepared` or `unnamed`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "prepared" => Some(Self::Prepared),
            "unnamed" => Some(Self::Unnamed),
            _ => None,
        }
    }

    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepared => "prepared",
            Self::Unnamed => "unnamed",
        }
    }
}

/// A query with `persistent` forced off: sqlx sends it as the unnamed statement.
struct Unnamed<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> SqlStr {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.0.statement()
    }

    fn take_arguments(
        &mut self,
    ) -> Result<Option<sqlx::postgres::PgArguments>, sqlx::error::BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

/// The request pool: sqlx's pool and the statement mode.
#[derive(Debug, Clone)]
pub struct RequestPool {
    pool: PgPool,
    mode: StatementMode,
}

impl RequestPool {
    pub(super) fn new(pool: PgPool, mode: StatementMode) -> Self {
        Self { pool, mode }
    }

    /// The statement mode.
    pub fn mode(&self) -> StatementMode {
        self.mode
    }

    /// Begins a transaction on a pooled connection.
    ///
    /// # Errors
    /// When no connection can be had or `BEGIN` fails.
    pub async fn begin(&self) -> Result<RequestTx, sqlx::Error> {
        Ok(RequestTx {
            tx: self.pool.begin().await?,
            mode: self.mode,
        })
    }

    /// Begins a transaction whose `search_path` is `search_path` (a quoted, validated
    /// identifier: [`crate::domain::SchemaName::search_path`]), in one round trip: `BEGIN` and
    /// `SET LOCAL search_path` go as one simple query (no bind parameters there, hence the
    /// identifier in the text; it is transaction-local either way).
    ///
    /// # Errors
    /// When no connection can be had or PostgreSQL fails.
    pub async fn begin_with_search_path(
        &self,
        search_path: &str,
    ) -> Result<RequestTx, sqlx::Error> {
        let begin = format!("BEGIN; SET LOCAL search_path TO {search_path}");
        Ok(RequestTx {
            tx: self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?,
            mode: self.mode,
        })
    }

    /// Connections open (in use and idle).
    pub fn size(&self) -> u32 {
        self.pool.size()
    }

    /// Idle connections.
    pub fn num_idle(&self) -> usize {
        self.pool.num_idle()
    }

    /// The pool's most connections.
    pub fn max_connections(&self) -> u32 {
        self.pool.options().get_max_connections()
    }

    /// Closes every connection (waits for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A transaction of the request pool; dropping it without [`RequestTx::commit`] rolls back.
#[derive(Debug)]
pub struct RequestTx {
    tx: Transaction<'static, Postgres>,
    mode: StatementMode,
}

impl RequestTx {
    /// The connection, as an executor for repository queries.
    pub fn conn(&mut self) -> Conn<'_> {
        Conn {
            conn: &mut self.tx,
            mode: self.mode,
        }
    }

    /// Commits.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// A connection inside a [`RequestTx`], sending statements the pool's way.
#[derive(Debug)]
pub struct Conn<'a> {
    conn: &'a mut PgConnection,
    mode: StatementMode,
}

impl<'a> Executor<'a> for Conn<'a> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'a: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self.mode {
            StatementMode::Prepared => self.conn.fetch_many(query),
            StatementMode::Unnamed => self.conn.fetch_many(Unnamed(query)),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'a: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self.mode {
            StatementMode::Prepared => self.conn.fetch_optional(query),
            StatementMode::Unnamed => self.conn.fetch_optional(Unnamed(query)),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'a: 'e,
    {
        self.conn.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'a: 'e,
    {
        self.conn.describe(sql)
    }
}

impl<'p> Executor<'p> for &'_ RequestPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self.mode {
            StatementMode::Prepared => (&self.pool).fetch_many(query),
            StatementMode::Unnamed => {
                let pool = self.pool.clone();
                // The results are collected inside the transaction, then streamed: the
                // repository queries run on the pool return a few rows.
                futures_util::stream::once(async move {
                    let mut tx = pool.begin().await?;
                    let steps: Vec<_> = (&mut *tx).fetch_many(Unnamed(query)).try_collect().await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(futures_util::stream::iter(steps.into_iter().map(Ok)))
                })
                .try_flatten()
                .boxed()
            }
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self.mode {
            StatementMode::Prepared => (&self.pool).fetch_optional(query),
            StatementMode::Unnamed => {
                let pool = self.pool.clone();
                Box::pin(async move {
                    let mut tx = pool.begin().await?;
                    let row = (&mut *tx).fetch_optional(Unnamed(query)).await?;
                    tx.commit().await?;
                    Ok(row)
                })
            }
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.pool).describe(sql)
    }
}
