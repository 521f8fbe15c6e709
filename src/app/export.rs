//! The tenant export (GDPR Art. 20): one `tar.gz` archive of every table of the tenant's
//! schema, as JSON lines, with a manifest.
//!
//! Why tar.gz: a tar entry's header needs its size before its bytes, and the export learns
//! every table's exact size from the database in the same snapshot it then streams
//! (`db::export::Snapshot`), so the archive is written front to back with nothing buffered but
//! one compression chunk — no temporary file, no seeking. Every Unix has `tar xzf`; zip would
//! need data descriptors to stream and brings no benefit here.
//!
//! Layout: `manifest.json` first (format, tenant, creation time, schema version, and per table
//! the file, row count, bytes and the columns left out), then `tables/<table>.jsonl`, one JSON
//! object per row. Secret columns (any column whose name contains `hash`, `secret`, `password`
//! or `token`: password hashes, API-key hashes, refresh/reset/invitation token hashes, TOTP
//! secrets and recovery codes) are left out, and listed as such in the manifest.

use super::lifecycle::require_owner;
use crate::clock::SharedClock;
use crate::db::export::{SECRET_COLUMN_MARKERS, Snapshot};
use crate::db::{Db, TenantContext};
use crate::domain::Tenant;
use crate::error::AppError;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// Exports running at once on one instance (each holds one owner-pool connection).
pub const MAX_CONCURRENT_EXPORTS: usize = 2;

/// Compressed bytes handed to the client at a time.
const CHUNK_BYTES: usize = 64 * 1024;

/// The archive format named in the manifest.
pub const FORMAT: &str = "montecarlo-tenant-export/1";

/// An export being streamed.
pub struct Archive {
    /// Suggested file name, `<slug>-export-<UTC time>.tar.gz`.
    pub filename: String,
    /// The archive's bytes, in order; an `Err` ends a broken archive.
    pub chunks: mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
}

/// Tenant exports.
pub struct ExportService {
    db: Db,
    clock: SharedClock,
    permits: Arc<Semaphore>,
}

struct Sink {
    gz: flate2::write::GzEncoder<Vec<u8>>,
    out: mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
}

impl Sink {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.gz.write_all(bytes)?;
        if self.gz.get_ref().len() >= CHUNK_BYTES {
            let chunk = std::mem::take(self.gz.get_mut());
            self.out
                .send(Ok(chunk))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "reader gone"))?;
        }
        Ok(())
    }

    async fn header(&mut self, path: &str, size: u64, mtime: DateTime<Utc>) -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(mtime.timestamp().max(0) as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        self.write(h.as_bytes()).await
    }

    async fn pad(&mut self, size: u64) -> std::io::Result<()> {
        let rest = (512 - size % 512) % 512;
        self.write(&vec![0u8; rest as usize]).await
    }

    async fn finish(mut self) -> std::io::Result<()> {
        self.write(&[0u8; 1024]).await?;
        let last = self.gz.finish()?;
        if !last.is_empty() {
            let _ = self.out.send(Ok(last)).await;
        }
        Ok(())
    }
}

struct Planned {
    name: String,
    redacted: Vec<String>,
    rows: u64,
    bytes: u64,
}

impl ExportService {
    /// The service.
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self {
            db,
            clock,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_EXPORTS)),
        }
    }

    /// The owner exports their tenant.
    ///
    /// # Errors
    /// 403 for a caller who is not the signed-in owner; 503 when this instance already runs
    /// [`MAX_CONCURRENT_EXPORTS`] exports or the database is unavailable.
    pub async fn export_own(&self, ctx: &TenantContext) -> Result<Archive, AppError> {
        require_owner(ctx, "export the organisation's data")?;
        self.export(ctx.tenant().clone()).await
    }

    /// Starts streaming `tenant`'s archive: the snapshot is opened and every table sized before
    /// this returns (so failures are problems, not broken archives); the rows then stream from
    /// a background task as the reader consumes them.
    ///
    /// # Errors
    /// 503 when the export slots are taken or the database is unavailable; 500 when PostgreSQL
    /// fails.
    pub async fn export(&self, tenant: Arc<Tenant>) -> Result<Archive, AppError> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            AppError::unavailable(format!(
                "an export slot ({MAX_CONCURRENT_EXPORTS} exports run at once per instance; try again in a minute)"
            ))
        })?;
        let now = self.clock.now();
        let snapshot = Snapshot::open(&self.db, &tenant.schema).await?;
        let version = snapshot.schema_version().await?;
        let mut planned = Vec::new();
        for table in snapshot.tables().await? {
            let (rows, bytes) = snapshot.size(&table).await?;
            planned.push(Planned {
                name: table.name,
                redacted: table.redacted,
                rows,
                bytes,
            });
        }
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "format": FORMAT,
            "tenant": {"id": tenant.id.to_string(), "slug": tenant.slug.as_str(), "name": tenant.display_name},
            "created_at": now,
            "schema_version": version,
            "secret_columns_rule": format!(
                "columns whose name contains one of {} are left out of every row",
                SECRET_COLUMN_MARKERS.join(", ")
            ),
            "tables": planned.iter().map(|t| serde_json::json!({
                "name": t.name,
                "file": format!("tables/{}.jsonl", t.name),
                "rows": t.rows,
                "bytes": t.bytes,
                "redacted_columns": t.redacted,
            })).collect::<Vec<_>>(),
        }))
        .map_err(AppError::internal)?;
        let (tx, rx) = mpsc::channel(4);
        let slug = tenant.slug.to_string();
        tokio::spawn(async move {
            let _permit = permit;
            let mut sink = Sink {
                gz: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()),
                out: tx.clone(),
            };
            let result = write_archive(&mut sink, &snapshot, &manifest, &planned, now).await;
            let result = match result {
                Ok(()) => sink.finish().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    let _ = snapshot.close().await;
                }
                Err(e) => {
                    tracing::warn!(tenant = %slug, error = %e, "export ended early");
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Ok(Archive {
            filename: format!(
                "{}-export-{}.tar.gz",
                tenant.slug,
                now.format("%Y%m%dT%H%M%SZ")
            ),
            chunks: rx,
        })
    }
}

async fn write_archive(
    sink: &mut Sink,
    snapshot: &Snapshot,
    manifest: &[u8],
    planned: &[Planned],
    now: DateTime<Utc>,
) -> std::io::Result<()> {
    let other = |e: AppError| std::io::Error::other(format!("{e:?}"));
    sink.header("manifest.json", manifest.len() as u64, now)
        .await?;
    sink.write(manifest).await?;
    sink.pad(manifest.len() as u64).await?;
    for t in planned {
        sink.header(&format!("tables/{}.jsonl", t.name), t.bytes, now)
            .await?;
        let table = crate::db::export::ExportTable {
            name: t.name.clone(),
            redacted: t.redacted.clone(),
        };
        let mut rows = Box::pin(snapshot.rows(&table).await.map_err(other)?);
        let mut written = 0u64;
        while let Some(line) = rows.next().await {
            let line = line.map_err(other)?;
            written += line.len() as u64 + 1;
            if written > t.bytes {
                break;
            }
            sink.write(line.as_bytes()).await?;
            sink.write(b"\n").await?;
        }
        if written != t.bytes {
            return Err(std::io::Error::other(format!(
                "table {} changed size within its snapshot ({written} ≠ {} bytes)",
                t.name, t.bytes
            )));
        }
        sink.pad(t.bytes).await?;
    }
    Ok(())
}
