//! Simulations: run one (engine on rayon via the blocking pool, off the async runtime; a tiny
//! plain run, at most [`INLINE_MAX_WORK`], on the request's own task), read one, list them.
//!
//! Order of checks for a run: trial end (402) → request validation (422 naming the field) →
//! tier size caps (403 naming the tier that allows it) → idempotency key (replay, 409, 422) →
//! tenant concurrency slot (waits briefly, then 429) → monthly quota (429) → run → store.
//! Nothing is stored unless the run completed, and a simulation is charged (quota, overage)
//! only when it was stored: the charge taken before the run is refunded when the run or the
//! store fails, or the request is abandoned midway ([`Charge`]).

use super::idempotency::{self, Claim, IdempotencyKey};
use super::simulation_spec::{check_size, precision_target, spec_error, to_spec};
use crate::clock::SharedClock;
use crate::db::idempotency as idempotency_rows;
use crate::db::simulations as simulation_rows;
use crate::db::{Db, TenantContext};
use crate::domain::simulation::{
    PrecisionReport, Simulation, SimulationInput, SimulationOutput, SimulationSummary,
};
use crate::domain::{SimulationId, TierCatalog};
use crate::error::AppError;
use crate::quota::{QuotaGrant, Quotas};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A simulation counted against the monthly quota that has not been stored yet: dropped
/// without [`Charge::keep`], it is refunded.
struct Charge {
    quotas: Arc<Quotas>,
    grant: Option<QuotaGrant>,
}

impl Charge {
    /// The simulation was stored: the charge stands.
    fn keep(mut self) -> QuotaGrant {
        self.grant.take().expect("a charge is kept once")
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let quotas = self.quotas.clone();
            runtime.spawn(async move { quotas.refund_simulation(&grant).await });
        }
    }
}

/// Stops the engine run (at its next chunk) when the request is dropped midway: a timeout or
/// a client gone.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The engine's work for one request: the run (to a precision target when given) and the
/// withdrawal-rate search when asked for; stops when `cancel` is set.
fn execute(
    sim: &engine::Simulation,
    target: Option<engine::PrecisionTarget>,
    rates: Option<f64>,
    cancel: &AtomicBool,
    progress: Option<&(dyn Fn(engine::Progress) + Sync)>,
) -> Result<SimulationOutput, AppError> {
    let mut control = engine::RunControl::new().with_cancel(cancel);
    if let Some(report) = progress {
        control = control.with_progress(report);
    }
    let (result, precision) = match target {
        Some(target) => {
            let o = sim.run_to_precision(&target, &control).map_err(run_error)?;
            let report = PrecisionReport {
                goals: Vec::new(),
                achieved: o.achieved,
                stop_reason: o.stop_reason,
                rounds: o.rounds,
            };
            (o.result, Some(report))
        }
        None => (sim.run_with(&control).map_err(run_error)?, None),
    };
    let withdrawal_rates = match rates {
        Some(q) => Some(sim.withdrawal_rates(q, &control).map_err(run_error)?),
        None => None,
    };
    Ok(SimulationOutput {
        result,
        precision,
        withdrawal_rates,
    })
}

fn run_error(e: engine::RunError) -> AppError {
    match e {
        engine::RunError::Cancelled { .. } => AppError::unavailable("the simulation was cancelled"),
        engine::RunError::RateSearchUnavailable { .. } => {
            AppError::validation("withdrawal_rates", e.to_string())
        }
        engine::RunError::InvalidTarget { .. } => AppError::validation("precision", e.to_string()),
        _ => AppError::internal(e),
    }
}

/// Runs with at most this much work (paths × steps × assets), and no precision target or
/// rate search, run on the request's own task instead of the blocking pool. Measured (release,
/// 2 busy cores): 1,000 paths × 10 steps × 1 asset takes 0.26–0.8 ms of engine time, 16,000
/// units about 0.4–0.6 ms: a pause of the async worker as short as one request's own network
/// and JSON work, and it saves two thread hand-offs per request (to a blocking thread and
/// back). Anything larger runs on the blocking pool (the engine on rayon), off the runtime.
pub const INLINE_MAX_WORK: u64 = 16_384;

/// A request that passed every check before running: its stored form (seed fixed) and the
/// engine's simulation.
pub struct Prepared {
    /// The request as it will be stored.
    pub input: SimulationInput,
    sim: engine::Simulation,
}

impl Prepared {
    /// paths × steps × assets, times the runs of a withdrawal-rate search when one is asked
    /// for (what the tier's `max_work` caps).
    pub fn work(&self) -> u64 {
        let work = self.sim.work();
        if self.input.withdrawal_rates.is_some() {
            work.saturating_mul(super::simulation_spec::RATE_SEARCH_RUNS)
        } else {
            work
        }
    }
}

/// The result of a run request.
#[derive(Debug)]
pub struct RunOutcome {
    /// The stored simulation.
    pub simulation: Simulation,
    /// Replayed from an earlier request with the same idempotency key (nothing ran or counted).
    pub replayed: bool,
    /// The monthly quota's state after this run (absent on replays).
    pub grant: Option<QuotaGrant>,
}

/// A page of simulations, newest first.
#[derive(Debug, Clone)]
pub struct SimulationPage {
    /// Items.
    pub items: Vec<SimulationSummary>,
    /// The id to pass as `before` for the next page; `None` on the last page.
    pub next: Option<SimulationId>,
}

/// Largest page of a listing.
pub const MAX_PAGE: u32 = 100;

/// Runs, stores and reads simulations.
pub struct SimulationService {
    db: Db,
    quotas: Arc<Quotas>,
    tiers: Arc<TierCatalog>,
    clock: SharedClock,
    fail_store: bool,
}

impl SimulationService {
    /// The service; `fail_store` is a test fault point (storing fails after the run).
    pub fn new(
        db: Db,
        quotas: Arc<Quotas>,
        tiers: Arc<TierCatalog>,
        clock: SharedClock,
        fail_store: bool,
    ) -> Self {
        Self {
            db,
            quotas,
            tiers,
            clock,
            fail_store,
        }
    }

    /// Runs `input` (its seed chosen at random when `None`) and stores it. With an idempotency
    /// key, a retry with the same key and body replays the first response.
    ///
    /// # Errors
    /// 402 after the trial; 422 naming the field; 403 over the tier's size caps; 409/422 for
    /// idempotency conflicts; 429 over the monthly quota or the concurrency cap.
    pub async fn run(
        &self,
        ctx: &TenantContext,
        input: SimulationInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<RunOutcome, AppError> {
        ctx.require_runner()?;
        let hash = request_hash(&input)?;
        let prepared = self.prepare(ctx, input)?;
        self.run_prepared(ctx, prepared, &hash, idempotency_key)
            .await
    }

    /// [`SimulationService::run`] after [`SimulationService::prepare`]: idempotency claim,
    /// slot, charge, run, store. `hash` is [`request_hash`] of the request as sent.
    ///
    /// # Errors
    /// As [`SimulationService::run`].
    pub async fn run_prepared(
        &self,
        ctx: &TenantContext,
        prepared: Prepared,
        hash: &[u8],
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<RunOutcome, AppError> {
        if let Some(key) = &idempotency_key
            && let Claim::Replay(simulation) =
                idempotency::claim(&self.db, &self.clock, ctx, key, hash).await?
        {
            return Ok(RunOutcome {
                simulation,
                replayed: true,
                grant: None,
            });
        }
        let outcome = self
            .run_and_store(ctx, prepared, idempotency_key.as_ref())
            .await;
        if let (Err(_), Some(key)) = (&outcome, &idempotency_key) {
            idempotency::release(&self.db, ctx, key).await;
        }
        outcome
    }

    /// Every check a run makes before it may run, in the order of the module docs up to the
    /// tier size caps: trial end (402), the request (422), the tier's caps (403). Fixes the
    /// seed (chosen at random when `None`), so a request prepared twice runs the same bits.
    /// Requests and the job worker both start here.
    ///
    /// # Errors
    /// 402, 422 or 403 as above.
    pub fn prepare(
        &self,
        ctx: &TenantContext,
        mut input: SimulationInput,
    ) -> Result<Prepared, AppError> {
        let tenant = ctx.tenant();
        if tenant.billing_suspended && tenant.trial_ended(self.clock.now()) {
            return Err(AppError::billing_suspended(format!(
                "billing of tenant {:?} is suspended: a payment failed and the grace period is over; \
                 an owner or admin can pay the open invoice in the Stripe Billing Portal \
                 (POST {} gives its URL; see the `portal` member), and simulations run again once it is paid",
                tenant.slug.as_str(),
                crate::error::BILLING_PORTAL_PATH
            )));
        }
        if tenant.trial_ended(self.clock.now()) {
            return Err(AppError::payment_required(format!(
                "the trial of tenant {:?} ended at {}; choose a paid tier to keep running simulations",
                tenant.slug.as_str(),
                tenant
                    .trial_ends_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            )));
        }
        let seed = input.seed.unwrap_or_else(|| rand::random::<u64>() >> 11);
        input.seed = Some(seed);
        let spec = to_spec(&input, seed)?;
        let sim = engine::Simulation::with_limits(spec, &engine::Limits::default())
            .map_err(|e| spec_error(&e))?;
        check_size(&self.tiers, &tenant.tier, &sim, &input)?;
        Ok(Prepared { input, sim })
    }

    /// Runs a prepared request on the blocking pool (the engine on rayon) and builds the
    /// simulation to store: the run, or the run to a precision target, then the
    /// withdrawal-rate search when asked for. Stops at the next chunk once `cancel` is set;
    /// `progress` is told the fraction of chunks done. Takes no slot and no charge: the
    /// callers do ([`SimulationService::run`] for requests, the job worker for jobs).
    ///
    /// # Errors
    /// 503 when cancelled, 422 when the rate search cannot run, 500 when the engine or the
    /// blocking pool fails.
    pub async fn compute(
        &self,
        ctx: &TenantContext,
        prepared: Prepared,
        cancel: Arc<AtomicBool>,
        progress: Option<Arc<dyn Fn(engine::Progress) + Send + Sync>>,
    ) -> Result<Simulation, AppError> {
        let Prepared {
            input: request,
            sim,
        } = prepared;
        let target = precision_target(&request, &ctx.tenant().tier, &sim);
        let rates = request.withdrawal_rates.map(|w| w.success_probability);
        let started = std::time::Instant::now();
        let inline = target.is_none() && rates.is_none() && sim.work() <= INLINE_MAX_WORK;
        let mut result = if inline {
            execute(
                &sim,
                None,
                None,
                &cancel,
                progress
                    .as_deref()
                    .map(|f| f as &(dyn Fn(engine::Progress) + Sync)),
            )?
        } else {
            tokio::task::spawn_blocking(move || {
                execute(
                    &sim,
                    target,
                    rates,
                    &cancel,
                    progress
                        .as_deref()
                        .map(|f| f as &(dyn Fn(engine::Progress) + Sync)),
                )
            })
            .await??
        };
        if let (Some(report), Some(p)) = (result.precision.as_mut(), &request.precision) {
            report.goals.clone_from(&p.goals);
        }
        Ok(Simulation {
            id: SimulationId::new(),
            created_at: self.clock.now(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            result,
            request,
        })
    }

    /// The test fault point: storing fails after the run.
    pub(crate) fn store_fails(&self) -> bool {
        self.fail_store
    }

    /// Concurrency slot, quota charge, engine run on rayon, and storage — with the idempotency
    /// response saved in the same transaction as the simulation row; the charge is refunded
    /// unless the row was committed.
    async fn run_and_store(
        &self,
        ctx: &TenantContext,
        prepared: Prepared,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<RunOutcome, AppError> {
        let tenant = ctx.tenant();
        let slot = self
            .quotas
            .acquire_simulation_slot(tenant.id, &tenant.tier)
            .await?;
        let charge = Charge {
            quotas: self.quotas.clone(),
            grant: Some(
                self.quotas
                    .consume_simulation(tenant.id, &tenant.tier, tenant.overage_enabled)
                    .await?,
            ),
        };
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let simulation = self.compute(ctx, prepared, cancel.0.clone(), None).await;
        drop(slot);
        drop(cancel);
        let simulation = simulation?;
        if self.fail_store {
            return Err(AppError::internal("fail point: simulation_store"));
        }
        let mut tx = ctx.begin(&self.db).await?;
        simulation_rows::insert(&mut tx, &simulation, ctx.api_key(), ctx.user().map(|u| u.0))
            .await?;
        if let Some(key) = idempotency_key {
            let response = serde_json::to_value(&simulation).map_err(AppError::internal)?;
            idempotency_rows::complete(&mut tx, key.as_str(), simulation.id, response).await?;
        }
        tx.commit().await?;
        Ok(RunOutcome {
            simulation,
            replayed: false,
            grant: Some(charge.keep()),
        })
    }

    /// A stored simulation of this tenant.
    ///
    /// # Errors
    /// 404 when the tenant has none with this id.
    pub async fn get(&self, ctx: &TenantContext, id: SimulationId) -> Result<Simulation, AppError> {
        let mut tx = ctx.begin(&self.db).await?;
        let sim = simulation_rows::get(&mut tx, id).await?;
        tx.commit().await?;
        sim.ok_or_else(|| AppError::not_found(format!("no simulation {id} in this tenant")))
    }

    /// This tenant's simulations older than `before`, newest first, `limit` (1–100) per page.
    ///
    /// # Errors
    /// 422 for a limit outside 1–100.
    pub async fn list(
        &self,
        ctx: &TenantContext,
        before: Option<SimulationId>,
        limit: u32,
    ) -> Result<SimulationPage, AppError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("limit must be 1 to {MAX_PAGE}, got {limit}"),
            ));
        }
        let mut tx = ctx.begin(&self.db).await?;
        let mut items = simulation_rows::page(&mut tx, before, limit + 1).await?;
        tx.commit().await?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = more.then(|| items.last().map(|i| i.id)).flatten();
        Ok(SimulationPage { items, next })
    }
}

/// SHA-256 of the request as sent (before a seed is chosen).
pub(crate) fn request_hash(input: &SimulationInput) -> Result<Vec<u8>, AppError> {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(input).map_err(AppError::internal)?;
    Ok(Sha256::digest(bytes).to_vec())
}
