//! The job worker: a background task beside the services (not inside a handler). Each of
//! `JOB_WORKERS` loops leases the next job fairly (see `db::jobs`), rebuilds the tenant
//! context from the job's tenant and stored principal, and runs it through the same
//! [`SimulationService`](super::simulations::SimulationService) path as a request:
//! `prepare` (402/422/403 re-checked), the tenant's concurrency slot, the quota charge (once
//! per job), `compute` (engine on rayon with a progress callback and a cancel flag), then the
//! simulation row and the job's `succeeded` in one transaction guarded by the lease.
//!
//! While a job runs, a heartbeat extends its lease and records its progress every
//! `min(visibility / 3, 250 ms)`; it also reads `cancel_requested` (a fallback for a missed
//! `NOTIFY job_cancel`). A worker that finds its lease lost stops the run and writes nothing.

use super::App;
use super::jobs::problem_of;
use crate::db::TenantContext;
use crate::db::jobs::{self as job_rows, AttemptEnd, ClaimedJob};
use crate::db::simulations as simulation_rows;
use crate::domain::TenantStatus;
pub use crate::domain::job::AttemptOutcome as Outcome;
use crate::domain::job::JobProblem;
use crate::domain::simulation::SimulationInput;
use crate::error::AppError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Starts `n` worker loops and the listener for `job_queued` / `job_cancel`. The loops end
/// when the application is dropped.
pub fn spawn(app: &Arc<App>, n: usize, listen_url: String) {
    let weak = Arc::downgrade(app);
    crate::db::listen::spawn_listener(listen_url, vec!["job_queued", "job_cancel"], {
        let weak = weak.clone();
        move |heard| {
            let weak = weak.clone();
            async move {
                let Some(app) = weak.upgrade() else {
                    return false;
                };
                match heard {
                    crate::db::listen::Heard::Notification { channel, payload }
                        if channel == "job_cancel" =>
                    {
                        if let Ok(uuid) = uuid::Uuid::parse_str(&payload) {
                            app.jobs.cancel_local(crate::domain::JobId::from_uuid(uuid));
                        }
                    }
                    _ => app.jobs.wake(),
                }
                true
            }
        }
    });
    for i in 0..n {
        let weak = weak.clone();
        tokio::spawn(async move { worker_loop(weak, i == 0).await });
    }
}

async fn worker_loop(app: Weak<App>, sweeper: bool) {
    let id = uuid::Uuid::now_v7();
    loop {
        let Some(a) = app.upgrade() else { return };
        let poll = Duration::from_millis(a.jobs.settings.poll_ms);
        let wake = a.jobs.wake.clone();
        let notified = wake.notified();
        if sweeper {
            match job_rows::sweep_expired(&a.jobs.db).await {
                Ok(refunds) => {
                    for r in refunds {
                        a.jobs.refund(&r).await;
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "job sweep failed"),
            }
        }
        let claimed = job_rows::claim(&a.jobs.db, id, a.jobs.settings.visibility_timeout_ms).await;
        match claimed {
            Ok(Some(job)) => {
                crate::metrics::job_started(&job);
                let started = std::time::Instant::now();
                let outcome = run_claimed(&a, id, job).await;
                crate::metrics::job_finished(outcome, started.elapsed());
                drop(a);
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "job claim failed"),
        }
        drop(a);
        tokio::select! {
            () = notified => {},
            () = tokio::time::sleep(poll) => {},
        }
    }
}

/// Runs one leased job to the end of this attempt.
pub async fn run_claimed(app: &App, worker: uuid::Uuid, job: ClaimedJob) -> Outcome {
    let jobs = &app.jobs;
    let ctx = match context_of(app, &job).await {
        Ok(ctx) => ctx,
        Err(end) => return end_attempt(app, worker, &job, end).await,
    };
    tracing::debug!(job_id = %job.id, tenant = %ctx.tenant().slug.as_str(), attempt = job.attempt, "job started");
    let input: SimulationInput = match serde_json::from_value(job.request.clone()) {
        Ok(i) => i,
        Err(e) => {
            return end_attempt(
                app,
                worker,
                &job,
                AttemptEnd::Fail(problem_of(&AppError::internal(e))),
            )
            .await;
        }
    };
    let prepared = match jobs.simulations.prepare(&ctx, input) {
        Ok(p) => p,
        Err(e) => return end_attempt(app, worker, &job, AttemptEnd::Fail(problem_of(&e))).await,
    };
    let tenant = ctx.tenant().clone();
    let slot = match jobs
        .quotas
        .acquire_simulation_slot(tenant.id, &tenant.tier)
        .await
    {
        Ok(slot) => slot,
        Err(_) => {
            return end_attempt(app, worker, &job, AttemptEnd::Requeue { delay_ms: 200 }).await;
        }
    };
    if job.charged.is_none() {
        let grant = match jobs
            .quotas
            .consume_simulation(tenant.id, &tenant.tier, tenant.overage_enabled)
            .await
        {
            Ok(g) => g,
            Err(rejection) => {
                let err: AppError = rejection.into();
                let end = if err.status() == 503 {
                    retry_or_fail(app, &job, &err)
                } else {
                    AttemptEnd::Fail(problem_of(&err))
                };
                return end_attempt(app, worker, &job, end).await;
            }
        };
        match job_rows::record_charge(&jobs.db, job.id, worker, app.clock.now(), grant.overage)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                jobs.quotas.refund_simulation(&grant).await;
                return Outcome::LeaseLost;
            }
            Err(e) => {
                jobs.quotas.refund_simulation(&grant).await;
                let end = retry_or_fail(app, &job, &e);
                return end_attempt(app, worker, &job, end).await;
            }
        }
    }

    let cancel = Arc::new(AtomicBool::new(false));
    jobs.running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id, cancel.clone());
    let progress = Arc::new(AtomicU64::new(0));
    let lease_lost = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat(
        jobs.db.clone(),
        job.id,
        worker,
        jobs.settings.visibility_timeout_ms,
        progress.clone(),
        cancel.clone(),
        lease_lost.clone(),
    ));
    let report = {
        let progress = progress.clone();
        Arc::new(move |p: engine::Progress| {
            let micro = (p.fraction() * 1_000_000.0) as u64;
            progress.fetch_max(micro, Ordering::Relaxed);
        }) as Arc<dyn Fn(engine::Progress) + Send + Sync>
    };
    let result = jobs
        .simulations
        .compute(&ctx, prepared, cancel.clone(), Some(report))
        .await;
    heartbeat.abort();
    drop(slot);
    jobs.running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    if lease_lost.load(Ordering::Relaxed) {
        return Outcome::LeaseLost;
    }
    let result = match result {
        Ok(_) if jobs.fail_run => Err(AppError::internal("fail point: job_run")),
        other => other,
    };
    match result {
        Ok(simulation) => match store(app, &ctx, &job, worker, &simulation).await {
            Ok(true) => {
                crate::metrics::simulation_ran(&simulation);
                Outcome::Succeeded
            }
            Ok(false) => Outcome::LeaseLost,
            Err(e) => {
                let end = retry_or_fail(app, &job, &e);
                end_attempt(app, worker, &job, end).await
            }
        },
        Err(_) if cancel.load(Ordering::Relaxed) => {
            end_attempt(app, worker, &job, AttemptEnd::Cancelled).await
        }
        Err(e) if e.status() < 500 => {
            end_attempt(app, worker, &job, AttemptEnd::Fail(problem_of(&e))).await
        }
        Err(e) => {
            let end = retry_or_fail(app, &job, &e);
            end_attempt(app, worker, &job, end).await
        }
    }
}

/// The simulation row and the job's `succeeded`, in one transaction, only while `worker`
/// holds the lease.
async fn store(
    app: &App,
    ctx: &TenantContext,
    job: &ClaimedJob,
    worker: uuid::Uuid,
    simulation: &crate::domain::simulation::Simulation,
) -> Result<bool, AppError> {
    if app.jobs.simulations.store_fails() {
        return Err(AppError::internal("fail point: simulation_store"));
    }
    let mut tx = ctx.begin(&app.jobs.db).await?;
    simulation_rows::insert(&mut tx, simulation, ctx.api_key(), ctx.user().map(|u| u.0)).await?;
    if !job_rows::complete(&mut tx, job.id, worker, simulation.id).await? {
        // Rolled back on drop: another worker holds the job now.
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// The tenant context the job runs in: its tenant as it is now, and the principal that
/// enqueued it.
async fn context_of(app: &App, job: &ClaimedJob) -> Result<TenantContext, AttemptEnd> {
    let tenant = match app.directory.by_id(job.tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(AttemptEnd::Fail(JobProblem {
                status: 404,
                kind: "not-found".into(),
                detail: "the job's tenant no longer exists".into(),
                field: None,
                policy: None,
            }));
        }
        Err(_) => return Err(AttemptEnd::Requeue { delay_ms: 1000 }),
    };
    if tenant.status == TenantStatus::Suspended {
        return Err(AttemptEnd::Fail(JobProblem {
            status: 403,
            kind: "forbidden".into(),
            detail: "the tenant was suspended before the job ran".into(),
            field: None,
            policy: None,
        }));
    }
    Ok(TenantContext::authenticated(tenant, job.principal))
}

fn retry_or_fail(app: &App, job: &ClaimedJob, err: &AppError) -> AttemptEnd {
    if job.attempt < job.max_attempts {
        AttemptEnd::Retry {
            backoff_ms: app
                .jobs
                .settings
                .retry_backoff_ms
                .saturating_mul(u64::from(job.attempt)),
        }
    } else {
        AttemptEnd::Fail(problem_of(err))
    }
}

async fn end_attempt(app: &App, worker: uuid::Uuid, job: &ClaimedJob, end: AttemptEnd) -> Outcome {
    let outcome = match &end {
        AttemptEnd::Retry { .. } | AttemptEnd::Requeue { .. } => Outcome::Retried,
        AttemptEnd::Fail(_) => Outcome::Failed,
        AttemptEnd::Cancelled => Outcome::Cancelled,
    };
    match job_rows::end_attempt(&app.jobs.db, job.id, worker, &end).await {
        Ok(Some(refund)) => {
            if let Some(charge) = refund {
                app.jobs.refund(&charge).await;
            }
            if matches!(end, AttemptEnd::Requeue { .. }) {
                app.jobs.wake();
            }
            outcome
        }
        Ok(None) => Outcome::LeaseLost,
        Err(e) => {
            // The lease runs out and the sweep takes the job back.
            tracing::warn!(error = ?e, job = %job.id, "could not end a job attempt");
            Outcome::LeaseLost
        }
    }
}

async fn heartbeat(
    db: crate::db::Db,
    id: crate::domain::JobId,
    worker: uuid::Uuid,
    lease_ms: u64,
    progress: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    lease_lost: Arc<AtomicBool>,
) {
    let every = Duration::from_millis((lease_ms / 3).clamp(20, 250));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let fraction = progress.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        match job_rows::heartbeat(&db, id, worker, lease_ms, fraction).await {
            Ok(Some(cancel_requested)) => {
                if cancel_requested {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            Ok(None) => {
                lease_lost.store(true, Ordering::Relaxed);
                cancel.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(error = ?e, job = %id, "job heartbeat failed"),
        }
    }
}
