//! Reading a whole tenant schema for its export (GDPR Art. 20): one read-only, repeatable-read
//! transaction on the owner's pool, so every table is read from the same snapshot. Tables are
//! enumerated from the catalog (a table added by a later migration is exported without a code
//! change); each row is read as its JSON object (`to_jsonb(row)`) without the secret columns.

use super::pool::Db;
use crate::domain::{SchemaName, slug::quote_ident};
use crate::error::AppError;
use futures_util::{Stream, StreamExt};

/// A column whose name contains one of these is a secret and is left out of every exported row
/// (password, key and token hashes, TOTP secrets, recovery codes).
pub const SECRET_COLUMN_MARKERS: [&str; 5] =
    ["hash", "secret", "password", "token", "totp_pending"];

/// Tables never exported: the migration history (its version is in the manifest).
const SKIPPED_TABLES: [&str; 1] = ["refinery_schema_history"];

/// One table of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTable {
    /// Table name.
    pub name: String,
    /// Its columns left out as secrets.
    pub redacted: Vec<String>,
}

/// A consistent read of one tenant schema. Dropped without [`Snapshot::close`] (an export
/// abandoned by its client), its connection is taken out of the pool and closed, which rolls
/// the transaction back; it never returns to the pool inside a transaction.
pub struct Snapshot {
    client: Option<deadpool_postgres::Object>,
    schema: SchemaName,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

fn internal(e: tokio_postgres::Error) -> AppError {
    AppError::internal(e)
}

impl Snapshot {
    /// Begins the snapshot of `schema`.
    ///
    /// # Errors
    /// 503 when no connection can be had; 500 when PostgreSQL fails.
    pub async fn open(db: &Db, schema: &SchemaName) -> Result<Self, AppError> {
        let client = db
            .migrations
            .get()
            .await
            .map_err(|e| AppError::unavailable(format!("the database ({e})")))?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(internal)?;
        Ok(Self {
            client: Some(client),
            schema: schema.clone(),
        })
    }

    fn client(&self) -> &deadpool_postgres::Object {
        self.client.as_ref().expect("open until closed or dropped")
    }

    /// The schema's tables (by name) with their secret columns.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn tables(&self) -> Result<Vec<ExportTable>, AppError> {
        let rows = self
            .client()
            .query(
                "SELECT c.relname::text, \
                        COALESCE(array_agg(a.attname::text ORDER BY a.attnum) \
                          FILTER (WHERE a.attname::text ~ $2), '{}') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
                 GROUP BY c.relname ORDER BY c.relname",
                &[
                    &self.schema.as_str(),
                    &SECRET_COLUMN_MARKERS.join("|"),
                ],
            )
            .await
            .map_err(internal)?;
        Ok(rows
            .iter()
            .map(|r| ExportTable {
                name: r.get(0),
                redacted: r.get(1),
            })
            .filter(|t| !SKIPPED_TABLES.contains(&t.name.as_str()))
            .collect())
    }

    /// The latest tenant migration applied to the schema.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn schema_version(&self) -> Result<i32, AppError> {
        let sql = format!(
            "SELECT COALESCE(max(version), 0) FROM {}.refinery_schema_history",
            self.schema.quoted()
        );
        Ok(self
            .client()
            .query_one(&sql, &[])
            .await
            .map_err(internal)?
            .get(0))
    }

    fn select(&self, table: &ExportTable, what: &str) -> String {
        format!(
            "SELECT {what} FROM (SELECT (to_jsonb(t) - $1::text[])::text AS line FROM {}.{} t) x",
            self.schema.quoted(),
            quote_ident(&table.name)
        )
    }

    /// Rows of `table` and the bytes its JSON lines take (each line plus its `\n`).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn size(&self, table: &ExportTable) -> Result<(u64, u64), AppError> {
        let sql = self.select(
            table,
            "count(*), COALESCE(sum(octet_length(line) + 1), 0)::bigint",
        );
        let row = self
            .client()
            .query_one(&sql, &[&table.redacted])
            .await
            .map_err(internal)?;
        let (rows, bytes): (i64, i64) = (row.get(0), row.get(1));
        Ok((rows.max(0) as u64, bytes.max(0) as u64))
    }

    /// The rows of `table`, one JSON object each (without its secret columns), streamed from
    /// the server (never the whole table in memory).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn rows<'a>(
        &'a self,
        table: &ExportTable,
    ) -> Result<impl Stream<Item = Result<String, AppError>> + 'a, AppError> {
        let sql = self.select(table, "line");
        let stream = self
            .client()
            .query_raw(&sql, [&table.redacted])
            .await
            .map_err(internal)?;
        Ok(stream.map(|r| r.map(|row| row.get::<_, String>(0)).map_err(internal)))
    }

    /// Ends the snapshot.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn close(mut self) -> Result<(), AppError> {
        let client = self.client.take().expect("open until closed or dropped");
        client.batch_execute("COMMIT").await.map_err(internal)
    }
}
