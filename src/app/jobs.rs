//! Background simulation jobs: submit (run now or enqueue), enqueue batches, read, list and
//! cancel jobs. The worker that runs them is [`super::job_worker`].
//!
//! Quota: a job is **checked** at enqueue (the tenant's used simulations plus its queued,
//! not-yet-charged jobs plus the new ones must fit the monthly quota, unless overage applies)
//! and **charged** when a worker starts it, once per job (recorded on the job row, so a re-run
//! after a crash does not charge again). A job that ends `failed` or `cancelled` after it was
//! charged is refunded; a charged job only ends `succeeded` with its simulation stored in the
//! same transaction. So every simulation charged is one that ran and was stored.

use super::idempotency::IdempotencyKey;
use super::simulations::{Prepared, RunOutcome, SimulationService};
use crate::config::JobSettings;
use crate::db::jobs::{self as job_rows, ChargeToRefund, NewJob};
use crate::db::{Db, TenantContext};
use crate::domain::job::{Job, JobProblem};
use crate::domain::simulation::SimulationInput;
use crate::domain::{BatchId, JobId, Tier};
use crate::error::AppError;
use crate::quota::{Counts, Period, QuotaGrant, Quotas};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Largest page of a job listing.
pub const MAX_PAGE: u32 = 100;

/// The largest batch any tier may send (the request schema's `maxItems`).
pub const MAX_BATCH: usize = 100;

/// Items one batch may hold on `tier`: trial 5, starter 20, professional 50, others 100.
pub fn batch_limit(tier: &Tier) -> usize {
    match tier.name.as_str() {
        "trial" => 5,
        "starter" => 20,
        "professional" => 50,
        _ => MAX_BATCH,
    }
}

/// What a simulation request became.
#[derive(Debug)]
pub enum Submitted {
    /// It ran and was stored (or replayed).
    Ran(Box<RunOutcome>),
    /// It was queued as a job; `by_size`: because its work is above the threshold (not
    /// because the caller asked).
    Queued {
        /// The job.
        job: Box<Job>,
        /// Queued because of its size rather than `Prefer: respond-async`.
        by_size: bool,
    },
}

/// A batch and its jobs.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Id.
    pub id: BatchId,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Its jobs, in submission order.
    pub jobs: Vec<Job>,
}

/// A page of jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// Items.
    pub items: Vec<Job>,
    /// The id to pass as `before` for the next page.
    pub next: Option<JobId>,
}

/// Enqueues, reads and cancels jobs.
pub struct JobService {
    pub(super) db: Db,
    pub(super) simulations: Arc<SimulationService>,
    pub(super) quotas: Arc<Quotas>,
    pub(super) settings: JobSettings,
    pub(super) fail_run: bool,
    /// Poked when a job is enqueued on this instance (other instances hear `NOTIFY`).
    pub(super) wake: Arc<Notify>,
    /// Cancel flags of the jobs running on this instance.
    pub(super) running: Mutex<HashMap<JobId, Arc<AtomicBool>>>,
}

impl JobService {
    /// The service.
    pub fn new(
        db: Db,
        simulations: Arc<SimulationService>,
        quotas: Arc<Quotas>,
        settings: JobSettings,
        fail_run: bool,
    ) -> Self {
        Self {
            db,
            simulations,
            quotas,
            settings,
            fail_run,
            wake: Arc::new(Notify::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Runs a simulation request now, or enqueues it as a job when `prefer_async` or its work
    /// is above the threshold. Checks are the same either way (402, 422, 403 before anything
    /// is queued).
    ///
    /// # Errors
    /// As [`SimulationService::run`]; 422 for an `Idempotency-Key` on a request that would be
    /// queued; 429 when the monthly quota cannot cover it.
    pub async fn submit(
        &self,
        ctx: &TenantContext,
        input: SimulationInput,
        idempotency_key: Option<IdempotencyKey>,
        prefer_async: bool,
    ) -> Result<Submitted, AppError> {
        ctx.require_runner()?;
        let hash = super::simulations::request_hash(&input)?;
        let prepared = self.simulations.prepare(ctx, input)?;
        let by_size = prepared.work() > self.settings.async_work_threshold;
        if !(prefer_async || by_size) {
            return self
                .simulations
                .run_prepared(ctx, prepared, &hash, idempotency_key)
                .await
                .map(|out| Submitted::Ran(Box::new(out)));
        }
        if idempotency_key.is_some() {
            return Err(AppError::validation(
                "Idempotency-Key",
                "Idempotency-Key applies to synchronous runs only; a queued job is already \
                 durable: retry by reading GET /api/v1/jobs instead",
            ));
        }
        self.check_quota(ctx, 1).await?;
        let mut jobs = self.insert(ctx, None, vec![prepared]).await?;
        Ok(Submitted::Queued {
            job: Box::new(jobs.remove(0)),
            by_size: !prefer_async,
        })
    }

    /// Enqueues one job per request as a batch. Bounded before any work: at most
    /// [`batch_limit`] items for the tenant's tier; every item is checked (422 naming
    /// `items[i].…`, 403 for size caps) and the monthly quota must cover the whole batch, or
    /// nothing is queued.
    ///
    /// # Errors
    /// 403 over the tier's batch size, 422, 429 as above.
    pub async fn enqueue_batch(
        &self,
        ctx: &TenantContext,
        inputs: Vec<SimulationInput>,
    ) -> Result<Batch, AppError> {
        ctx.require_runner()?;
        let tier = &ctx.tenant().tier;
        let limit = batch_limit(tier);
        if inputs.is_empty() {
            return Err(AppError::validation(
                "items",
                "a batch needs at least one item",
            ));
        }
        if inputs.len() > limit {
            return Err(AppError::limit(
                403,
                "batch",
                format!(
                    "a batch on tier {} holds at most {limit} simulations, got {}",
                    tier.name,
                    inputs.len()
                ),
                None,
                Vec::new(),
            ));
        }
        let mut prepared = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            prepared.push(
                self.simulations
                    .prepare(ctx, input)
                    .map_err(|e| prefix_field(e, i))?,
            );
        }
        self.check_quota(ctx, prepared.len() as u64).await?;
        let id = BatchId::new();
        let jobs = self.insert(ctx, Some(id), prepared).await?;
        let created_at = jobs.first().map_or_else(Utc::now, |j| j.created_at);
        Ok(Batch {
            id,
            created_at,
            jobs,
        })
    }

    async fn insert(
        &self,
        ctx: &TenantContext,
        batch: Option<BatchId>,
        prepared: Vec<Prepared>,
    ) -> Result<Vec<Job>, AppError> {
        let tenant = ctx.tenant();
        let rows = prepared
            .iter()
            .map(|p| {
                Ok(NewJob {
                    id: JobId::new(),
                    tenant: tenant.id,
                    principal: ctx.principal(),
                    request: serde_json::to_value(&p.input).map_err(AppError::internal)?,
                    work: p.work(),
                    max_attempts: self.settings.max_attempts,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let jobs = job_rows::enqueue(&self.db, batch, &rows).await?;
        self.wake.notify_waiters();
        Ok(jobs)
    }

    /// The monthly quota must cover the tenant's used simulations, its queued jobs not yet
    /// charged, and `n` more (unless overage applies).
    async fn check_quota(&self, ctx: &TenantContext, n: u64) -> Result<(), AppError> {
        let tenant = ctx.tenant();
        let tier = &tenant.tier;
        let Some(quota) = tier.monthly_simulations else {
            return Ok(());
        };
        if tenant.overage_enabled && tier.allows_overage() {
            return Ok(());
        }
        let usage = self
            .quotas
            .try_period_usage(tenant.id, tier)
            .await
            .map_err(|_| AppError::unavailable("the quota store"))?;
        let pending = job_rows::pending_uncharged(&self.db, tenant.id).await?;
        if usage.used + pending + n > quota {
            return Err(AppError::limit(
                429,
                "monthly",
                format!(
                    "monthly simulation quota of {quota} for tier {} cannot cover {n} more: \
                     {} used and {pending} queued; resets at {}",
                    tier.name,
                    usage.used,
                    usage.resets_at.to_rfc3339()
                ),
                Some(
                    u64::try_from((usage.resets_at - Utc::now()).num_seconds())
                        .unwrap_or(1)
                        .max(1),
                ),
                Vec::new(),
            ));
        }
        Ok(())
    }

    /// A job of this tenant.
    ///
    /// # Errors
    /// 404 when the tenant has none with this id.
    pub async fn get(&self, ctx: &TenantContext, id: JobId) -> Result<Job, AppError> {
        job_rows::get(&self.db, ctx.tenant().id, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no job {id} in this tenant")))
    }

    /// This tenant's jobs older than `before`, newest first.
    ///
    /// # Errors
    /// 422 for a limit outside 1–100.
    pub async fn list(
        &self,
        ctx: &TenantContext,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<JobPage, AppError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("limit must be 1 to {MAX_PAGE}, got {limit}"),
            ));
        }
        let mut items = job_rows::page(&self.db, ctx.tenant().id, before, limit + 1).await?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = more.then(|| items.last().map(|i| i.id)).flatten();
        Ok(JobPage { items, next })
    }

    /// A batch of this tenant with its jobs.
    ///
    /// # Errors
    /// 404 when the tenant has none with this id.
    pub async fn batch(&self, ctx: &TenantContext, id: BatchId) -> Result<Batch, AppError> {
        let (created_at, jobs) = job_rows::batch(&self.db, ctx.tenant().id, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no batch {id} in this tenant")))?;
        Ok(Batch {
            id,
            created_at,
            jobs,
        })
    }

    /// Cancels a job: a queued one ends `cancelled` now; a running one is stopped by its
    /// worker at the engine's next chunk (this instance's at once, another instance's when
    /// it hears `NOTIFY job_cancel`) and then ends `cancelled`. A finished job is returned
    /// unchanged.
    ///
    /// # Errors
    /// 404 when the tenant has no such job.
    pub async fn cancel(&self, ctx: &TenantContext, id: JobId) -> Result<Job, AppError> {
        ctx.require_runner()?;
        let (job, refund) = job_rows::cancel(&self.db, ctx.tenant().id, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no job {id} in this tenant")))?;
        if let Some(charge) = refund {
            self.refund(&charge).await;
        }
        self.cancel_local(id);
        Ok(job)
    }

    /// Sets the cancel flag of a job running on this instance.
    pub(crate) fn cancel_local(&self, id: JobId) {
        if let Some(flag) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Wakes this instance's idle workers.
    pub(crate) fn wake(&self) {
        self.wake.notify_waiters();
    }

    pub(super) async fn refund(&self, charge: &ChargeToRefund) {
        let grant = QuotaGrant {
            tenant: charge.tenant,
            period: Period::containing(charge.charged_at),
            overage: charge.overage,
            info: None,
            counts: Counts::default(),
        };
        self.quotas.refund_simulation(&grant).await;
    }
}

/// The problem a job shows for `err` (internal causes are logged, not shown).
pub fn problem_of(err: &AppError) -> JobProblem {
    match err {
        AppError::Client(p) => JobProblem {
            status: p.status,
            kind: p.kind.to_string(),
            detail: p.detail.clone(),
            field: p.field.clone(),
            policy: p.policy.clone(),
        },
        AppError::Internal(cause) => {
            tracing::error!(error = %crate::error::error_chain(cause.as_ref()), "job failed");
            JobProblem {
                status: 500,
                kind: "internal".into(),
                detail: "the job failed on our side on every attempt; it has been logged".into(),
                field: None,
                policy: None,
            }
        }
        AppError::Unavailable(what) => JobProblem {
            status: 503,
            kind: "unavailable".into(),
            detail: format!("{what} was unavailable on every attempt"),
            field: None,
            policy: None,
        },
    }
}

/// `items[i].` before the field of a validation problem of batch item `i`.
fn prefix_field(mut err: AppError, i: usize) -> AppError {
    if let AppError::Client(p) = &mut err {
        p.field = Some(match p.field.take() {
            Some(f) => format!("items[{i}].{f}"),
            None => format!("items[{i}]"),
        });
        p.detail = format!("items[{i}]: {}", p.detail);
    }
    err
}
