//! `platform.jobs` and `platform.job_batches`: the durable job queue every instance shares.
//!
//! * **Claim**: one statement picks the head of each tenant's queue, orders the tenants
//!   (fewest running jobs, then least recently served, then higher tier, then oldest job),
//!   skips tenants at their concurrency cap, and leases the first job (`FOR UPDATE SKIP
//!   LOCKED`). Claims take a transaction-scoped advisory lock, so two claimers never both
//!   count the same running jobs: the per-tenant cap and the fair order hold across
//!   instances (a claim is a few milliseconds; see ARCHITECTURE.md).
//! * **Lease**: a claimed job carries `lease_owner` and `lease_until`; the worker extends the
//!   lease by heartbeats. Every change a worker makes is guarded by `lease_owner`, so a worker
//!   that lost its lease (a pause longer than the visibility timeout) changes nothing.
//! * **Expiry**: [`sweep_expired`] moves jobs whose lease ran out back to `queued` (or to
//!   `failed` after the last attempt, or `cancelled` when a cancel was pending).

use super::context::TenantTx;
use super::pool::Db;
use crate::domain::job::{Job, JobProblem, JobStatus};
use crate::domain::{ApiKeyId, BatchId, JobId, Principal, Role, SimulationId, TenantId, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

const JOB_COLUMNS: &str = "id, batch_id, status, progress, attempts, max_attempts, cancel_requested, \
     simulation_id, problem, created_at, started_at, finished_at, now() AS read_at";

/// [`JOB_COLUMNS`] qualified by the alias `j`.
const JOB_COLUMNS_J: &str = "j.id, j.batch_id, j.status, j.progress, j.attempts, j.max_attempts, \
     j.cancel_requested, j.simulation_id, j.problem, j.created_at, j.started_at, j.finished_at, \
     now() AS read_at";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Id.
    pub id: JobId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Who enqueued it (the worker acts as them).
    pub principal: Principal,
    /// The stored request (`SimulationInput`, seed fixed).
    pub request: serde_json::Value,
    /// paths × steps × assets (× rate-search runs).
    pub work: u64,
    /// Attempts allowed.
    pub max_attempts: u32,
}

/// A job a worker leased.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Id.
    pub id: JobId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Who enqueued it.
    pub principal: Principal,
    /// The stored request.
    pub request: serde_json::Value,
    /// This attempt's number (1-based).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// When the quota was charged for it by an earlier attempt, and whether as overage.
    pub charged: Option<(DateTime<Utc>, bool)>,
    /// When it was enqueued (queue wait).
    pub created_at: DateTime<Utc>,
}

/// A job that ended without a stored simulation while its quota charge stood: refund it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargeToRefund {
    /// Tenant.
    pub tenant: TenantId,
    /// When it was charged (names the period).
    pub charged_at: DateTime<Utc>,
    /// Charged as overage.
    pub overage: bool,
}

fn job_of(row: &PgRow) -> Result<Job, AppError> {
    let status: String = row.try_get("status")?;
    let problem: Option<serde_json::Value> = row.try_get("problem")?;
    Ok(Job {
        id: JobId::from_uuid(row.try_get("id")?),
        batch_id: row
            .try_get::<Option<uuid::Uuid>, _>("batch_id")?
            .map(BatchId::from_uuid),
        status: JobStatus::parse(&status).map_err(AppError::internal)?,
        progress: row.try_get("progress")?,
        attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
        max_attempts: u32::try_from(row.try_get::<i32, _>("max_attempts")?).unwrap_or(1),
        cancel_requested: row.try_get("cancel_requested")?,
        simulation_id: row
            .try_get::<Option<uuid::Uuid>, _>("simulation_id")?
            .map(SimulationId::from_uuid),
        problem: problem
            .map(serde_json::from_value)
            .transpose()
            .map_err(AppError::internal)?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        read_at: row.try_get("read_at")?,
    })
}

fn principal_columns(p: Principal) -> (&'static str, uuid::Uuid, Option<&'static str>) {
    match p {
        Principal::ApiKey(k) => ("api_key", k.as_uuid(), None),
        Principal::User { id, role } => ("user", id.as_uuid(), Some(role.as_str())),
    }
}

fn principal_of(row: &PgRow) -> Result<Principal, AppError> {
    let kind: String = row.try_get("principal_kind")?;
    let id: uuid::Uuid = row.try_get("principal_id")?;
    match kind.as_str() {
        "api_key" => Ok(Principal::ApiKey(ApiKeyId::from_uuid(id))),
        _ => {
            let role: Option<String> = row.try_get("principal_role")?;
            let role =
                Role::parse(role.as_deref().unwrap_or("member")).map_err(AppError::internal)?;
            Ok(Principal::User {
                id: UserId::from_uuid(id),
                role,
            })
        }
    }
}

/// Enqueues `jobs` (and their batch, when given) in one transaction.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn enqueue(
    db: &Db,
    batch: Option<BatchId>,
    jobs: &[NewJob],
) -> Result<Vec<Job>, AppError> {
    let mut tx = db.pool.begin().await?;
    if let (Some(batch), Some(first)) = (batch, jobs.first()) {
        sqlx::query(
            "INSERT INTO platform.job_batches (id, tenant_id, size, created_at) VALUES ($1, $2, $3, now())",
        )
        .bind(batch.as_uuid())
        .bind(first.tenant.as_uuid())
        .bind(i32::try_from(jobs.len()).unwrap_or(i32::MAX))
        .execute(tx.conn())
        .await?;
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (kind, pid, role) = principal_columns(job.principal);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO platform.jobs (id, tenant_id, batch_id, principal_kind, principal_id, principal_role, \
                 request, work, max_attempts, not_before, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now(), now()) RETURNING {JOB_COLUMNS}"
        )))
        .bind(job.id.as_uuid())
        .bind(job.tenant.as_uuid())
        .bind(batch.map(|b| b.as_uuid()))
        .bind(kind)
        .bind(pid)
        .bind(role)
        .bind(&job.request)
        .bind(i64::try_from(job.work).unwrap_or(i64::MAX))
        .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
        .fetch_one(tx.conn())
        .await?;
        out.push(job_of(&row)?);
    }
    tx.commit().await?;
    Ok(out)
}

/// A job of `tenant`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn get(db: &Db, tenant: TenantId, id: JobId) -> Result<Option<Job>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM platform.jobs WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(job_of).transpose()
}

/// Up to `limit` jobs of `tenant` older than `before`, newest first.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn page(
    db: &Db,
    tenant: TenantId,
    before: Option<JobId>,
    limit: u32,
) -> Result<Vec<Job>, AppError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM platform.jobs \
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR (created_at, id) < \
               (SELECT created_at, id FROM platform.jobs WHERE tenant_id = $1 AND id = $2)) \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    )))
    .bind(tenant.as_uuid())
    .bind(before.map(|b| b.as_uuid()))
    .bind(i64::from(limit))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(job_of).collect()
}

/// The jobs of a batch of `tenant`, in enqueue order; `None` when the tenant has no such batch.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn batch(
    db: &Db,
    tenant: TenantId,
    id: BatchId,
) -> Result<Option<(DateTime<Utc>, Vec<Job>)>, AppError> {
    let created: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT created_at FROM platform.job_batches WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&db.pool)
    .await?;
    let Some(created) = created else {
        return Ok(None);
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM platform.jobs WHERE tenant_id = $1 AND batch_id = $2 \
         ORDER BY created_at, id"
    )))
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_all(&db.pool)
    .await?;
    Ok(Some((
        created,
        rows.iter().map(job_of).collect::<Result<_, _>>()?,
    )))
}

/// Jobs of `tenant` that will still charge the monthly quota when they run (queued or
/// running, not charged yet).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn pending_uncharged(db: &Db, tenant: TenantId) -> Result<u64, AppError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.jobs WHERE tenant_id = $1 \
         AND status IN ('queued', 'running') AND charged_at IS NULL",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&db.pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Cancels a job of `tenant`: a queued one at once (returning its charge when an earlier,
/// interrupted attempt had been charged), a running one by setting `cancel_requested` (its
/// worker stops it). Terminal jobs are left as they are. `None` when the tenant has no such job.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn cancel(
    db: &Db,
    tenant: TenantId,
    id: JobId,
) -> Result<Option<(Job, Option<ChargeToRefund>)>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH old AS (SELECT id, status, charged_at, charged_overage FROM platform.jobs \
                      WHERE tenant_id = $1 AND id = $2 FOR UPDATE) \
         UPDATE platform.jobs j SET \
             status = CASE WHEN old.status = 'queued' THEN 'cancelled' ELSE j.status END, \
             finished_at = CASE WHEN old.status = 'queued' THEN now() ELSE j.finished_at END, \
             cancel_requested = j.cancel_requested OR old.status = 'running', \
             updated_at = now() \
         FROM old WHERE j.id = old.id \
         RETURNING {JOB_COLUMNS_J}, old.status AS old_status, old.charged_at AS old_charged_at, \
                   old.charged_overage AS old_overage"
    )))
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let job = job_of(&row)?;
    let old: String = row.try_get("old_status")?;
    let charged: Option<DateTime<Utc>> = row.try_get("old_charged_at")?;
    let refund = match (old.as_str(), charged) {
        ("queued", Some(at)) => Some(ChargeToRefund {
            tenant,
            charged_at: at,
            overage: row.try_get("old_overage")?,
        }),
        _ => None,
    };
    Ok(Some((job, refund)))
}

const CLAIM_SQL: &str = "\
WITH heads AS (
    SELECT DISTINCT ON (q.tenant_id) q.id, q.tenant_id, q.created_at
      FROM platform.jobs q
     WHERE q.status = 'queued' AND q.not_before <= now()
     ORDER BY q.tenant_id, q.created_at, q.id
), pick AS (
    SELECT h.id
      FROM heads h
      JOIN platform.tenants t ON t.id = h.tenant_id AND t.status = 'active'
      JOIN platform.tiers ti ON ti.name = t.tier
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM platform.jobs r
                           WHERE r.tenant_id = h.tenant_id AND r.status = 'running') running
      CROSS JOIN LATERAL (SELECT max(s.started_at) AS at FROM platform.jobs s
                           WHERE s.tenant_id = h.tenant_id) served
     WHERE running.n < ti.max_concurrent_simulations
     ORDER BY running.n, served.at ASC NULLS FIRST, ti.sort_order DESC, h.created_at, h.id
     LIMIT 1
), locked AS (
    SELECT j.id FROM platform.jobs j JOIN pick ON pick.id = j.id
     WHERE j.status = 'queued'
       FOR UPDATE OF j SKIP LOCKED
)
UPDATE platform.jobs j
   SET status = 'running', lease_owner = $1, lease_until = now() + $2 * interval '1 millisecond',
       attempts = j.attempts + 1, started_at = now(), updated_at = now()
  FROM locked
 WHERE j.id = locked.id
RETURNING j.id, j.tenant_id, j.principal_kind, j.principal_id, j.principal_role, j.request,
          j.attempts, j.max_attempts, j.charged_at, j.charged_overage, j.created_at";

/// Leases the next job for `worker` for `lease_ms`, fairly across tenants (see the module
/// docs); `None` when nothing is runnable.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn claim(
    db: &Db,
    worker: uuid::Uuid,
    lease_ms: u64,
) -> Result<Option<ClaimedJob>, AppError> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('platform.jobs.claim'))")
        .execute(tx.conn())
        .await?;
    let row = sqlx::query(CLAIM_SQL)
        .bind(worker)
        .bind(i64::try_from(lease_ms).unwrap_or(i64::MAX) as f64)
        .fetch_optional(tx.conn())
        .await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(None) };
    let charged_at: Option<DateTime<Utc>> = row.try_get("charged_at")?;
    let overage: bool = row.try_get("charged_overage")?;
    Ok(Some(ClaimedJob {
        id: JobId::from_uuid(row.try_get("id")?),
        tenant: TenantId::from_uuid(row.try_get("tenant_id")?),
        principal: principal_of(&row)?,
        request: row.try_get("request")?,
        attempt: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(1),
        max_attempts: u32::try_from(row.try_get::<i32, _>("max_attempts")?).unwrap_or(1),
        charged: charged_at.map(|at| (at, overage)),
        created_at: row.try_get("created_at")?,
    }))
}

/// Jobs whose lease ran out (their worker died or stalled): back to `queued`, or `failed`
/// after their last attempt, or `cancelled` when a cancel was pending. Returns the charges of
/// the jobs that ended here (to refund).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn sweep_expired(db: &Db) -> Result<Vec<ChargeToRefund>, AppError> {
    let lost = serde_json::to_value(JobProblem {
        status: 500,
        kind: "worker-lost".into(),
        detail: "the worker running this job stopped responding on every attempt".into(),
        field: None,
        policy: None,
    })
    .map_err(AppError::internal)?;
    let rows = sqlx::query(
        "UPDATE platform.jobs SET \
             status = CASE WHEN cancel_requested THEN 'cancelled' \
                           WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
             problem = CASE WHEN NOT cancel_requested AND attempts >= max_attempts THEN $1 ELSE problem END, \
             finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN now() ELSE NULL END, \
             lease_owner = NULL, lease_until = NULL, progress = 0, updated_at = now() \
         WHERE status = 'running' AND lease_until < now() \
         RETURNING tenant_id, status, charged_at, charged_overage",
    )
    .bind(lost)
    .fetch_all(&db.pool)
    .await?;
    let mut refunds = Vec::new();
    for row in rows {
        let status: String = row.try_get("status")?;
        let charged: Option<DateTime<Utc>> = row.try_get("charged_at")?;
        if status != "queued"
            && let Some(at) = charged
        {
            refunds.push(ChargeToRefund {
                tenant: TenantId::from_uuid(row.try_get("tenant_id")?),
                charged_at: at,
                overage: row.try_get("charged_overage")?,
            });
        }
    }
    Ok(refunds)
}

/// Extends the lease of a running job and records its progress. `None` when `worker` no
/// longer holds it; else whether a cancel was asked for.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn heartbeat(
    db: &Db,
    id: JobId,
    worker: uuid::Uuid,
    lease_ms: u64,
    progress: f64,
) -> Result<Option<bool>, AppError> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "UPDATE platform.jobs SET lease_until = now() + $3 * interval '1 millisecond', \
             progress = GREATEST(progress, LEAST($4, 1.0)), updated_at = now() \
         WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING cancel_requested",
    )
    .bind(id.as_uuid())
    .bind(worker)
    .bind(i64::try_from(lease_ms).unwrap_or(i64::MAX) as f64)
    .bind(progress.clamp(0.0, 1.0))
    .fetch_optional(&db.pool)
    .await?;
    Ok(cancel)
}

/// Records that the job's quota was charged at `at` (once per job). `false` when `worker`
/// lost the lease.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn record_charge(
    db: &Db,
    id: JobId,
    worker: uuid::Uuid,
    at: DateTime<Utc>,
    overage: bool,
) -> Result<bool, AppError> {
    let n = sqlx::query(
        "UPDATE platform.jobs SET charged_at = $3, charged_overage = $4, updated_at = now() \
         WHERE id = $1 AND lease_owner = $2 AND status = 'running' AND charged_at IS NULL",
    )
    .bind(id.as_uuid())
    .bind(worker)
    .bind(at)
    .bind(overage)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// How a worker ends an attempt that did not store a simulation.
#[derive(Debug, Clone)]
pub enum AttemptEnd {
    /// Try again after `backoff_ms` (counts as an attempt).
    Retry {
        /// Delay.
        backoff_ms: u64,
    },
    /// Put it back without counting the attempt (no concurrency slot was free).
    Requeue {
        /// Delay.
        delay_ms: u64,
    },
    /// Failed for good.
    Fail(JobProblem),
    /// Stopped because its tenant cancelled it.
    Cancelled,
}

/// Ends an attempt of a job `worker` holds. Returns `None` when the lease was lost (nothing
/// changed), else the job's charge when it ended here without a simulation (to refund).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn end_attempt(
    db: &Db,
    id: JobId,
    worker: uuid::Uuid,
    end: &AttemptEnd,
) -> Result<Option<Option<ChargeToRefund>>, AppError> {
    let (status, delay_ms, uncount, problem) = match end {
        AttemptEnd::Retry { backoff_ms } => ("queued", *backoff_ms, false, None),
        AttemptEnd::Requeue { delay_ms } => ("queued", *delay_ms, true, None),
        AttemptEnd::Fail(p) => (
            "failed",
            0,
            false,
            Some(serde_json::to_value(p).map_err(AppError::internal)?),
        ),
        AttemptEnd::Cancelled => ("cancelled", 0, false, None),
    };
    let row = sqlx::query(
        "UPDATE platform.jobs SET status = $3, \
             not_before = now() + $4 * interval '1 millisecond', \
             attempts = attempts - CASE WHEN $5 THEN 1 ELSE 0 END, \
             problem = COALESCE($6, problem), \
             finished_at = CASE WHEN $3 IN ('failed', 'cancelled') THEN now() ELSE NULL END, \
             progress = CASE WHEN $3 = 'queued' THEN 0 ELSE progress END, \
             lease_owner = NULL, lease_until = NULL, updated_at = now() \
         WHERE id = $1 AND lease_owner = $2 AND status = 'running' \
         RETURNING tenant_id, charged_at, charged_overage",
    )
    .bind(id.as_uuid())
    .bind(worker)
    .bind(status)
    .bind(i64::try_from(delay_ms).unwrap_or(i64::MAX) as f64)
    .bind(uncount)
    .bind(problem)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let charged: Option<DateTime<Utc>> = row.try_get("charged_at")?;
    let refund = match (status, charged) {
        ("failed" | "cancelled", Some(at)) => Some(ChargeToRefund {
            tenant: TenantId::from_uuid(row.try_get("tenant_id")?),
            charged_at: at,
            overage: row.try_get("charged_overage")?,
        }),
        _ => None,
    };
    Ok(Some(refund))
}

/// Marks the job succeeded with its simulation, inside the transaction that stores the
/// simulation: both commit or neither. `false` when `worker` lost the lease (then roll back).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn complete(
    tx: &mut TenantTx,
    id: JobId,
    worker: uuid::Uuid,
    simulation: SimulationId,
) -> Result<bool, AppError> {
    let n = sqlx::query(
        "UPDATE platform.jobs SET status = 'succeeded', simulation_id = $3, progress = 1, \
             finished_at = now(), lease_owner = NULL, lease_until = NULL, updated_at = now() \
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id.as_uuid())
    .bind(worker)
    .bind(simulation.as_uuid())
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Jobs per status and the age of the oldest queued job in seconds (for metrics).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn depth(db: &Db) -> Result<(Vec<(String, i64)>, f64), AppError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM platform.jobs GROUP BY status")
            .fetch_all(&db.pool)
            .await?;
    let oldest: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM platform.jobs WHERE status = 'queued'",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok((rows, oldest.unwrap_or(0.0)))
}
