//! Simulations: run one (engine on rayon, off the async runtime), read one, list them.
//!
//! Order of checks for `POST /api/v1/simulations`: credentials → burst limit (GCRA per key)
//! → trial end → request validation (422 naming the field) → tier size caps (403 naming the
//! tier that allows it) → monthly quota (429) → tenant concurrency slot (waits briefly, then
//! 429) → run → store. Nothing is stored unless the run completed.

use crate::api::ApiTags;
use crate::api::payload::ApiJson;
use crate::auth::Caller;
use crate::domain::SimulationId;
use crate::error::ApiError;
use crate::middleware::RequestScope;
use crate::problem_responses;
use crate::quota::Rejection;
use crate::state::AppState;
use crate::tenancy::TenantContext;
use chrono::{DateTime, Utc};
use poem::Request;
use poem::http::StatusCode;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{Example, ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use sqlx::Row;
use std::sync::Arc;

/// Simulation operations.
pub struct SimulationsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// One asset of the portfolio.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct AssetInput {
    /// Optional label, echoed back (e.g. `US equities`).
    pub name: Option<String>,
    /// Target weight, decimal in [0, 1]; weights sum to 1 (±1e-9).
    pub weight: f64,
    /// Annualised drift μ, decimal (0.07 = 7 %). Required for `gbm` and `student_t`.
    pub drift: Option<f64>,
    /// Annualised volatility σ ≥ 0, decimal (0.15 = 15 %). Required for `gbm` and `student_t`.
    pub volatility: Option<f64>,
}

/// Distribution of per-step returns.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
pub enum ModelKind {
    /// Geometric Brownian motion, correlated normal shocks (exact log step).
    #[default]
    Gbm,
    /// Multivariate Student-t shocks scaled to unit variance (fat tails), same correlation.
    StudentT,
    /// Resample rows of historical periodic returns (i.i.d. or in blocks).
    Bootstrap,
}

/// Bundled return histories for `bootstrap`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum HistorySource {
    /// Robert Shiller's monthly US data 1871–2023: asset 1 = S&P composite total return,
    /// asset 2 (optional) = 10-year Treasury total return. Needs `steps_per_year = 12`.
    ShillerUsMonthly,
}

/// Return model.
#[derive(Object, Debug, Clone, Default)]
#[oai(deny_unknown_fields)]
pub struct ReturnModelInput {
    /// `gbm` (default), `student_t` or `bootstrap`.
    #[oai(rename = "type", default)]
    pub kind: ModelKind,
    /// `student_t`: degrees of freedom ν > 2.
    pub dof: Option<f64>,
    /// `bootstrap`: a bundled history (give this or `returns`).
    pub history: Option<HistorySource>,
    /// `bootstrap`: your own history, `periods × assets` simple returns per step, decimal
    /// (0.01 = 1 % in that period); one row per period, one column per asset.
    pub returns: Option<Vec<Vec<f64>>>,
    /// `bootstrap`: block length in periods (1 = i.i.d. rows, the default; 12 keeps a year of
    /// serial dependence with monthly data).
    pub block_length: Option<u32>,
}

/// When holdings are reset to the target weights.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
pub enum RebalancingInput {
    /// Buy and hold (default).
    #[default]
    Never,
    /// After every step.
    EveryStep,
    /// Every month (steps_per_year must be a multiple of 12).
    Monthly,
    /// Every quarter (steps_per_year must be a multiple of 4).
    Quarterly,
    /// At each year end.
    Annually,
}

/// How often a cash flow occurs.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum CashFlowFrequencyInput {
    /// At the end of every step.
    EveryStep,
    /// At each year end.
    Annually,
}

/// A periodic contribution (> 0) or withdrawal (< 0).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct CashFlowInput {
    /// Currency units per occurrence: > 0 contribution, < 0 withdrawal.
    pub amount: f64,
    /// `every_step` or `annually`.
    pub frequency: CashFlowFrequencyInput,
    /// Annual growth of the amount, decimal (0.02 = grows with 2 % inflation). Default 0.
    #[oai(default)]
    pub annual_growth: f64,
}

fn default_steps() -> u32 {
    12
}
fn default_paths() -> u64 {
    10_000
}
fn default_bins() -> u32 {
    20
}

/// A portfolio simulation to run.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields, example)]
pub struct SimulationRequest {
    /// Assets, 1 to 50.
    pub assets: Vec<AssetInput>,
    /// Correlation matrix, `assets × assets`: symmetric, unit diagonal, entries in [−1, 1],
    /// positive semi-definite. Default: identity (uncorrelated).
    pub correlation: Option<Vec<Vec<f64>>>,
    /// Initial portfolio value, currency units (> 0).
    pub initial_value: f64,
    /// Horizon in whole years, 1 to 100.
    pub horizon_years: u32,
    /// Steps per year, 1 to 252 (12 = monthly, the default).
    #[oai(default = "default_steps")]
    pub steps_per_year: u32,
    /// Number of simulated paths (default 10 000; the tier caps it).
    #[oai(default = "default_paths")]
    pub paths: u64,
    /// Seed for the generator; generated and returned when absent. Same inputs and seed give
    /// bit-identical results.
    pub seed: Option<u64>,
    /// Return model (default `gbm`).
    pub model: Option<ReturnModelInput>,
    /// Rebalancing schedule (default `never`).
    #[oai(default)]
    pub rebalancing: RebalancingInput,
    /// Rebalance every N steps instead of a calendar schedule (overrides `rebalancing`).
    pub rebalance_every_steps: Option<u32>,
    /// Optional periodic contribution or withdrawal.
    pub cash_flow: Option<CashFlowInput>,
    /// Antithetic variates (pairs each path with its mirror; lowers the standard error).
    #[oai(default)]
    pub antithetic: bool,
    /// Histogram bins for terminal values (default 20).
    #[oai(default = "default_bins")]
    pub histogram_bins: u32,
}

impl Example for SimulationRequest {
    fn example() -> Self {
        Self {
            assets: vec![
                AssetInput {
                    name: Some("Equities".into()),
                    weight: 0.6,
                    drift: Some(0.07),
                    volatility: Some(0.16),
                },
                AssetInput {
                    name: Some("Bonds".into()),
                    weight: 0.4,
                    drift: Some(0.03),
                    volatility: Some(0.06),
                },
            ],
            correlation: Some(vec![vec![1.0, 0.2], vec![0.2, 1.0]]),
            initial_value: 100_000.0,
            horizon_years: 10,
            steps_per_year: 12,
            paths: 10_000,
            seed: Some(42),
            model: None,
            rebalancing: RebalancingInput::Annually,
            rebalance_every_steps: None,
            cash_flow: Some(CashFlowInput {
                amount: 500.0,
                frequency: CashFlowFrequencyInput::EveryStep,
                annual_growth: 0.02,
            }),
            antithetic: false,
            histogram_bins: 20,
        }
    }
}

/// P1 … P99 (Hyndman–Fan type 7: linear interpolation between order statistics).
#[derive(Object, Debug, Clone)]
pub struct PercentilesView {
    /// 1st percentile.
    pub p1: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl From<&engine::Percentiles> for PercentilesView {
    fn from(p: &engine::Percentiles) -> Self {
        Self {
            p1: p.p1,
            p5: p.p5,
            p10: p.p10,
            p25: p.p25,
            p50: p.p50,
            p75: p.p75,
            p90: p.p90,
            p95: p.p95,
            p99: p.p99,
        }
    }
}

/// Equal-width histogram of terminal values: bin k covers `[edges[k], edges[k+1])`.
#[derive(Object, Debug, Clone)]
pub struct HistogramView {
    /// `bins + 1` edges, currency units.
    pub edges: Vec<f64>,
    /// `bins` path counts.
    pub counts: Vec<u64>,
}

/// Terminal portfolio value statistics (currency units).
#[derive(Object, Debug, Clone)]
pub struct TerminalView {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std_dev: f64,
    /// Standard error of the mean.
    pub std_error: f64,
    /// Percentiles.
    pub percentiles: PercentilesView,
    /// Histogram.
    pub histogram: HistogramView,
}

/// Risk measures of the horizon. VaR/CVaR are loss fractions of the initial value
/// (positive = loss) net of contributions.
#[derive(Object, Debug, Clone)]
pub struct RiskView {
    /// Fraction of paths ending below initial value plus net contributions.
    pub probability_of_loss: f64,
    /// Fraction of paths that reached zero.
    pub probability_of_ruin: f64,
    /// 1 − probability of ruin.
    pub success_rate: f64,
    /// 95 % value at risk.
    pub var_95: f64,
    /// 95 % CVaR (expected shortfall).
    pub cvar_95: f64,
    /// 99 % value at risk.
    pub var_99: f64,
    /// 99 % CVaR (expected shortfall).
    pub cvar_99: f64,
    /// Median maximum drawdown (fraction; monitored every step).
    pub max_drawdown_p50: f64,
    /// 95th percentile of the maximum drawdown.
    pub max_drawdown_p95: f64,
    /// Percentiles of the compound annual growth rate (decimal per year).
    pub cagr: PercentilesView,
}

/// Percentile band at a year end (fan chart).
#[derive(Object, Debug, Clone)]
pub struct YearBandView {
    /// Year (1 … horizon).
    pub year: u32,
    /// Mean value.
    pub mean: f64,
    /// Percentiles of the value.
    pub percentiles: PercentilesView,
}

/// Simulation output.
#[derive(Object, Debug, Clone)]
pub struct SimulationResultView {
    /// Seed used (pass it back to reproduce bit for bit).
    pub seed: u64,
    /// Engine version that produced this result.
    pub engine_version: String,
    /// Paths simulated.
    pub paths: u64,
    /// Steps per path (`horizon_years × steps_per_year`).
    pub steps: u64,
    /// Terminal value statistics.
    pub terminal: TerminalView,
    /// Risk measures.
    pub risk: RiskView,
    /// One band per year end.
    pub yearly: Vec<YearBandView>,
}

impl From<&engine::SimulationResult> for SimulationResultView {
    fn from(r: &engine::SimulationResult) -> Self {
        Self {
            seed: r.seed,
            engine_version: r.engine_version.to_string(),
            paths: r.paths,
            steps: r.steps,
            terminal: TerminalView {
                mean: r.terminal.mean,
                std_dev: r.terminal.std_dev,
                std_error: r.terminal.std_error,
                percentiles: (&r.terminal.percentiles).into(),
                histogram: HistogramView {
                    edges: r.terminal.histogram.edges.clone(),
                    counts: r.terminal.histogram.counts.clone(),
                },
            },
            risk: RiskView {
                probability_of_loss: r.risk.probability_of_loss,
                probability_of_ruin: r.risk.probability_of_ruin,
                success_rate: r.risk.success_rate,
                var_95: r.risk.var_95,
                cvar_95: r.risk.cvar_95,
                var_99: r.risk.var_99,
                cvar_99: r.risk.cvar_99,
                max_drawdown_p50: r.risk.max_drawdown_p50,
                max_drawdown_p95: r.risk.max_drawdown_p95,
                cagr: (&r.risk.cagr).into(),
            },
            yearly: r
                .yearly
                .iter()
                .map(|y| YearBandView {
                    year: y.year,
                    mean: y.mean,
                    percentiles: (&y.percentiles).into(),
                })
                .collect(),
        }
    }
}

/// A stored simulation.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct SimulationView {
    /// Id (`sim_…`).
    pub id: String,
    /// When it ran.
    pub created_at: DateTime<Utc>,
    /// Wall time of the engine run, milliseconds.
    pub duration_ms: f64,
    /// The request as received (with defaults filled in and the seed used).
    pub request: SimulationRequest,
    /// The result.
    pub result: SimulationResultView,
}

/// One line of the simulation list.
#[derive(Object, Debug, Clone)]
pub struct SimulationSummary {
    /// Id (`sim_…`).
    pub id: String,
    /// When it ran.
    pub created_at: DateTime<Utc>,
    /// Paths.
    pub paths: u64,
    /// Steps per path.
    pub steps: u64,
    /// Seed.
    pub seed: u64,
    /// Median terminal value.
    pub terminal_p50: f64,
    /// Mean terminal value.
    pub terminal_mean: f64,
}

/// A page of simulations, newest first.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct SimulationPage {
    /// Items.
    pub items: Vec<SimulationSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

// poem-openapi's `header(...)` list repeats `ty = …` per header, which clippy misreads.
#[allow(clippy::duplicated_attributes)]
#[derive(ApiResponse)]
#[oai(
    header(
        name = "RateLimit-Policy",
        ty = "String",
        description = "IETF draft-ietf-httpapi-ratelimit-headers: the burst and monthly policies, e.g. `\"burst\";q=10;w=2, \"monthly\";q=1000;w=2592000`"
    ),
    header(
        name = "RateLimit",
        ty = "String",
        description = "Remaining requests `r` and seconds to reset `t` per policy"
    ),
    header(
        name = "X-RateLimit-Limit",
        ty = "u64",
        description = "Legacy: limit of the most constrained policy"
    ),
    header(
        name = "X-RateLimit-Remaining",
        ty = "u64",
        description = "Legacy: requests left under that policy"
    ),
    header(
        name = "X-RateLimit-Reset",
        ty = "u64",
        description = "Legacy: seconds until that policy resets"
    )
)]
enum SimulationCreated {
    /// Simulation ran and was stored.
    #[oai(status = 201)]
    Created(Json<SimulationView>),
}

problem_responses!(CreateSimulationError {
    BadRequest = 400, Unauthorized = 401, PaymentRequired = 402, Forbidden = 403, NotFound = 404,
    Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503
});
problem_responses!(ReadSimulationError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });

/// Converts a quota rejection into the API error (status, policy, `Retry-After`, headers).
pub fn rejection_to_error(r: Rejection) -> ApiError {
    ApiError::limit(
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
        r.policy,
        r.detail,
        r.retry_after_secs,
        r.headers,
    )
}

/// Builds the engine spec from a request, naming the offending field on error.
pub(crate) fn to_spec(
    req: &SimulationRequest,
    seed: u64,
) -> Result<engine::SimulationSpec, ApiError> {
    let n = req.assets.len();
    let model_in = req.model.clone().unwrap_or_default();
    let needs_moments = model_in.kind != ModelKind::Bootstrap;
    let mut assets = Vec::with_capacity(n);
    for (i, a) in req.assets.iter().enumerate() {
        let (drift, volatility) = if needs_moments {
            (
                a.drift.ok_or_else(|| {
                    ApiError::validation(
                        format!("assets[{i}].drift"),
                        format!(
                            "assets[{i}].drift is required for the {:?} model",
                            model_in.kind
                        ),
                    )
                })?,
                a.volatility.ok_or_else(|| {
                    ApiError::validation(
                        format!("assets[{i}].volatility"),
                        format!(
                            "assets[{i}].volatility is required for the {:?} model",
                            model_in.kind
                        ),
                    )
                })?,
            )
        } else {
            (a.drift.unwrap_or(0.0), a.volatility.unwrap_or(0.0))
        };
        if let Some(name) = &a.name
            && name.chars().count() > 100
        {
            return Err(ApiError::validation(
                format!("assets[{i}].name"),
                "asset names are at most 100 characters",
            ));
        }
        assets.push(engine::Asset {
            weight: a.weight,
            drift,
            volatility,
        });
    }
    let correlation = req.correlation.clone().unwrap_or_else(|| {
        (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect()
    });
    let model = match model_in.kind {
        ModelKind::Gbm => engine::ReturnModel::Gbm,
        ModelKind::StudentT => engine::ReturnModel::StudentT {
            dof: model_in.dof.ok_or_else(|| {
                ApiError::validation(
                    "model.dof",
                    "model.dof (degrees of freedom, > 2) is required for student_t",
                )
            })?,
        },
        ModelKind::Bootstrap => {
            let block_length = model_in.block_length.unwrap_or(1) as usize;
            let returns = match (model_in.history, model_in.returns) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::validation(
                        "model",
                        "give either model.history or model.returns, not both",
                    ));
                }
                (None, None) => {
                    return Err(ApiError::validation(
                        "model",
                        "bootstrap needs model.history (e.g. shiller_us_monthly) or model.returns",
                    ));
                }
                (Some(HistorySource::ShillerUsMonthly), None) => {
                    if req.steps_per_year != 12 {
                        return Err(ApiError::validation(
                            "steps_per_year",
                            "the shiller_us_monthly history is monthly: set steps_per_year to 12",
                        ));
                    }
                    if !(1..=2).contains(&n) {
                        return Err(ApiError::validation(
                            "assets",
                            "shiller_us_monthly has 2 series: give 1 asset (stocks) or 2 (stocks, bonds)",
                        ));
                    }
                    engine::history::shiller_monthly()
                        .returns_matrix()
                        .into_iter()
                        .map(|row| row[..n].to_vec())
                        .collect()
                }
                (None, Some(rows)) => rows,
            };
            engine::ReturnModel::Bootstrap {
                returns,
                block_length,
            }
        }
    };
    if model_in.kind != ModelKind::StudentT && model_in.dof.is_some() {
        return Err(ApiError::validation(
            "model.dof",
            "model.dof applies only to the student_t model",
        ));
    }
    let rebalancing = match (req.rebalance_every_steps, req.rebalancing) {
        (Some(k), _) => engine::Rebalancing::EveryNSteps(k),
        (None, RebalancingInput::Never) => engine::Rebalancing::Never,
        (None, RebalancingInput::EveryStep) => engine::Rebalancing::EveryStep,
        (None, RebalancingInput::Monthly) => engine::Rebalancing::Monthly,
        (None, RebalancingInput::Quarterly) => engine::Rebalancing::Quarterly,
        (None, RebalancingInput::Annually) => engine::Rebalancing::Annually,
    };
    let cash_flow = req.cash_flow.as_ref().map(|c| engine::CashFlow {
        amount: c.amount,
        frequency: match c.frequency {
            CashFlowFrequencyInput::EveryStep => engine::CashFlowFrequency::EveryStep,
            CashFlowFrequencyInput::Annually => engine::CashFlowFrequency::Annually,
        },
        annual_growth: c.annual_growth,
    });
    Ok(engine::SimulationSpec {
        assets,
        correlation,
        initial_value: req.initial_value,
        horizon_years: req.horizon_years,
        steps_per_year: req.steps_per_year,
        paths: req.paths,
        seed,
        model,
        rebalancing,
        cash_flow,
        antithetic: req.antithetic,
        histogram_bins: req.histogram_bins,
    })
}

fn cheapest_tier_allowing(state: &AppState, ok: impl Fn(&crate::quota::Tier) -> bool) -> String {
    state
        .tenants
        .tiers()
        .into_iter()
        .find(|t| ok(t))
        .map_or_else(
            || "no tier allows it".to_string(),
            |t| format!("the {} tier allows it", t.name),
        )
}

/// Tier size caps, checked before any work starts.
fn check_size(
    state: &AppState,
    ctx: &TenantContext,
    sim: &engine::Simulation,
    paths: u64,
) -> Result<(), ApiError> {
    let tier = &ctx.tenant.tier;
    if paths > tier.max_paths {
        return Err(ApiError::limit(
            StatusCode::FORBIDDEN,
            "size",
            format!(
                "paths = {paths} exceeds the {} tier's limit of {} paths per simulation; {}",
                tier.name,
                tier.max_paths,
                cheapest_tier_allowing(state, |t| t.max_paths >= paths)
            ),
            None,
            Vec::new(),
        ));
    }
    let work = sim.work();
    if work > tier.max_work {
        return Err(ApiError::limit(
            StatusCode::FORBIDDEN,
            "size",
            format!(
                "paths × steps × assets = {work} exceeds the {} tier's limit of {}; {}",
                tier.name,
                tier.max_work,
                cheapest_tier_allowing(state, |t| t.max_work >= work)
            ),
            None,
            Vec::new(),
        ));
    }
    Ok(())
}

fn scope(req: &Request) -> Option<&Arc<RequestScope>> {
    req.data::<Arc<RequestScope>>()
}

fn view_from_row(row: &sqlx::postgres::PgRow) -> Result<SimulationView, ApiError> {
    let request: serde_json::Value = row.try_get("request")?;
    let result: serde_json::Value = row.try_get("result")?;
    Ok(SimulationView {
        id: SimulationId::from_uuid(row.try_get("id")?).to_string(),
        created_at: row.try_get("created_at")?,
        duration_ms: row.try_get("duration_ms")?,
        request: SimulationRequest::parse_from_json(Some(request))
            .map_err(|e| ApiError::internal(e.into_message()))?,
        result: SimulationResultView::parse_from_json(Some(result))
            .map_err(|e| ApiError::internal(e.into_message()))?,
    })
}

/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// The outcome of claiming an idempotency key.
enum Claim {
    /// This request owns the key and must run.
    Owned,
    /// A completed request with the same key and body: replay its response.
    Replay(Box<SimulationView>),
}

/// SHA-256 of the request body as sent (before a seed is generated).
fn request_hash(req: &SimulationRequest) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(req.to_json_string().as_bytes()).to_vec()
}

fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces (a UUID is ideal)",
        ));
    }
    Ok(())
}

/// Claims `key` for this request (`INSERT … ON CONFLICT DO NOTHING`), or finds the earlier
/// request that holds it.
async fn claim(
    state: &AppState,
    ctx: &TenantContext,
    key: &str,
    hash: &[u8],
) -> Result<Claim, ApiError> {
    let now = state.clock.now();
    let mut tx = ctx.begin(&state.pool).await?;
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now - chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS))
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (key, request_hash, status, created_at) VALUES ($1, $2, 'in_progress', $3) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 1 {
        tx.commit().await?;
        return Ok(Claim::Owned);
    }
    let row =
        sqlx::query("SELECT request_hash, status, response FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let stored_hash: Vec<u8> = row.try_get("request_hash")?;
    if stored_hash != hash {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "this Idempotency-Key was already used with a different request body; use a new key for a new request",
        ));
    }
    let status: String = row.try_get("status")?;
    match row.try_get::<Option<serde_json::Value>, _>("response")? {
        Some(body) if status == "completed" => Ok(Claim::Replay(Box::new(
            SimulationView::parse_from_json(Some(body))
                .map_err(|e| ApiError::internal(e.into_message()))?,
        ))),
        _ => Err(ApiError::conflict(
            "a request with this Idempotency-Key is still being processed; retry after it completes",
        )),
    }
}

/// Releases a claimed key after the request failed, so the client can retry with it.
async fn release(state: &AppState, ctx: &TenantContext, key: &str) {
    let result = async {
        let mut tx = ctx.begin(&state.pool).await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND status = 'in_progress'")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<(), ApiError>(())
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(error = ?err, "could not release idempotency key");
    }
}

impl SimulationsApi {
    /// Quota, concurrency slot, engine run on rayon, and storage — with the idempotency
    /// response saved in the same transaction as the simulation row.
    async fn run_and_store(
        &self,
        req: &Request,
        ctx: &TenantContext,
        request: SimulationRequest,
        sim: engine::Simulation,
        idempotency_key: Option<&str>,
    ) -> Result<SimulationView, ApiError> {
        let state = &self.state;
        let tenant = &ctx.tenant;
        let seed = request.seed.unwrap_or_default();
        let grant = state
            .quotas
            .consume_simulation(tenant.id.as_uuid(), &tenant.tier, tenant.overage_enabled)
            .await
            .map_err(rejection_to_error)?;
        if let Some(s) = scope(req)
            && let Some(burst) = s.burst()
        {
            s.add_headers(grant.headers_with(&burst));
        }
        let slot = state
            .quotas
            .acquire_simulation_slot(tenant.id.as_uuid(), &tenant.tier)
            .await
            .map_err(rejection_to_error)?;
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let r = sim.run();
            drop(slot);
            r
        })
        .await?;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(s) = scope(req) {
            s.set_units(
                i64::try_from(result.paths.saturating_mul(result.steps)).unwrap_or(i64::MAX),
            );
        }
        let view = SimulationView {
            id: SimulationId::new().to_string(),
            created_at: state.clock.now(),
            duration_ms,
            result: SimulationResultView::from(&result),
            request,
        };
        let id = SimulationId::parse(&view.id).map_err(ApiError::internal)?;
        let (key, user) = (
            ctx.api_key().map(|k| k.as_uuid()),
            ctx.user().map(|(u, _)| u.as_uuid()),
        );
        let mut tx = ctx.begin(&state.pool).await?;
        sqlx::query(
            "INSERT INTO simulations (id, created_at, api_key_id, user_id, seed, paths, steps, duration_ms, request, result) \
             VALUES ($1, $2, $3, $4, $5::text::numeric, $6, $7, $8, $9, $10)",
        )
        .bind(id.as_uuid())
        .bind(view.created_at)
        .bind(key)
        .bind(user)
        .bind(seed.to_string())
        .bind(i64::try_from(result.paths).unwrap_or(i64::MAX))
        .bind(i64::try_from(result.steps).unwrap_or(i64::MAX))
        .bind(duration_ms)
        .bind(view.request.to_json())
        .bind(view.result.to_json())
        .execute(&mut *tx)
        .await?;
        if let Some(ikey) = idempotency_key {
            sqlx::query("UPDATE idempotency_keys SET status = 'completed', simulation_id = $2, response = $3 WHERE key = $1")
                .bind(ikey)
                .bind(id.as_uuid())
                .bind(view.to_json())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(view)
    }
}

#[OpenApi(tag = "ApiTags::Simulations")]
impl SimulationsApi {
    /// Run a simulation
    ///
    /// Runs a correlated multi-asset Monte Carlo simulation in-process and stores the result.
    /// Counts against the tenant's monthly simulation quota; the tier caps paths and
    /// paths × steps × assets. Responses carry `RateLimit-Policy`, `RateLimit` and
    /// `X-RateLimit-*` headers.
    #[oai(
        path = "/api/v1/simulations",
        method = "post",
        operation_id = "createSimulation"
    )]
    async fn create(
        &self,
        req: &Request,
        caller: Caller,
        body: ApiJson<SimulationRequest>,
        /// Optional idempotency key (e.g. a UUID): a retried request with the same key and body
        /// runs once and replays the first response for 24 hours; the same key with another body
        /// answers 422, and while the first request is still running, 409.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
    ) -> Result<SimulationCreated, CreateSimulationError> {
        let state = &self.state;
        let ctx = caller.0;
        let tenant = ctx.tenant.clone();
        if tenant.trial_ended(state.clock.now()) {
            return Err(ApiError::payment_required(format!(
                "the trial of tenant {:?} ended at {}; choose a paid tier to keep running simulations",
                tenant.slug.as_str(),
                tenant.trial_ends_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ))
            .into());
        }
        let mut request = body.0;
        let hash = request_hash(&request);
        let seed = request.seed.unwrap_or_else(|| rand::random::<u64>() >> 11);
        request.seed = Some(seed);
        let spec = to_spec(&request, seed)?;
        let limits = engine::Limits::default();
        let sim = engine::Simulation::with_limits(spec, &limits)
            .map_err(|e| ApiError::validation(e.field().to_string(), e.to_string()))?;
        check_size(state, &ctx, &sim, request.paths)?;

        let key = idempotency_key.0;
        if let Some(key) = &key {
            check_idempotency_key(key)?;
            if let Claim::Replay(view) = claim(state, &ctx, key, &hash).await? {
                if let Some(s) = scope(req) {
                    s.add_headers(vec![("Idempotent-Replayed".into(), "true".into())]);
                }
                return Ok(SimulationCreated::Created(Json(*view)));
            }
        }
        let outcome = self
            .run_and_store(req, &ctx, request, sim, key.as_deref())
            .await;
        if let (Err(_), Some(key)) = (&outcome, &key) {
            release(state, &ctx, key).await;
        }
        Ok(SimulationCreated::Created(Json(outcome?)))
    }

    /// Get a simulation
    ///
    /// A stored simulation of this tenant. Another tenant's id answers 404.
    #[oai(
        path = "/api/v1/simulations/:id",
        method = "get",
        operation_id = "getSimulation"
    )]
    async fn get(
        &self,
        caller: Caller,
        /// Simulation id (`sim_…`).
        id: Path<String>,
    ) -> Result<Json<SimulationView>, ReadSimulationError> {
        let ctx = caller.0;
        let sim_id = SimulationId::parse(&id.0)
            .map_err(|e| ApiError::not_found(format!("no simulation {:?}: {e}", id.0)))?;
        let mut tx = ctx.begin(&self.state.pool).await?;
        let row = sqlx::query(
            "SELECT id, created_at, duration_ms, request, result FROM simulations WHERE id = $1",
        )
        .bind(sim_id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = row
            .ok_or_else(|| ApiError::not_found(format!("no simulation {sim_id} in this tenant")))?;
        Ok(Json(view_from_row(&row)?))
    }

    /// List simulations
    ///
    /// This tenant's simulations, newest first, `limit` per page (1–100, default 20); pass
    /// `next_cursor` back as `cursor` for the next page.
    #[oai(
        path = "/api/v1/simulations",
        method = "get",
        operation_id = "listSimulations"
    )]
    async fn list(
        &self,
        caller: Caller,
        /// Page size, 1–100.
        #[oai(default = "default_limit")]
        limit: Query<u32>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<SimulationPage>, ReadSimulationError> {
        let ctx = caller.0;
        if !(1..=100).contains(&limit.0) {
            return Err(ApiError::validation(
                "limit",
                format!("limit must be 1 to 100, got {}", limit.0),
            )
            .into());
        }
        let cursor = cursor
            .0
            .as_deref()
            .map(SimulationId::parse)
            .transpose()
            .map_err(|e| {
                ApiError::validation("cursor", format!("cursor is not a simulation id: {e}"))
            })?;
        let mut tx = ctx.begin(&self.state.pool).await?;
        let rows = sqlx::query(
            "SELECT id, created_at, paths, steps, seed::text AS seed, \
                    (result->'terminal'->'percentiles'->>'p50')::float8 AS p50, (result->'terminal'->>'mean')::float8 AS mean \
             FROM simulations \
             WHERE $1::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM simulations WHERE id = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(cursor.map(|c| c.as_uuid()))
        .bind(i64::from(limit.0) + 1)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(limit.0 as usize) {
            let seed: String = row.try_get("seed")?;
            items.push(SimulationSummary {
                id: SimulationId::from_uuid(row.try_get("id")?).to_string(),
                created_at: row.try_get("created_at")?,
                paths: row.try_get::<i64, _>("paths")? as u64,
                steps: row.try_get::<i64, _>("steps")? as u64,
                seed: seed
                    .parse()
                    .map_err(|_| ApiError::internal(format!("bad stored seed {seed}")))?,
                terminal_p50: row.try_get::<Option<f64>, _>("p50")?.unwrap_or(f64::NAN),
                terminal_mean: row.try_get::<Option<f64>, _>("mean")?.unwrap_or(f64::NAN),
            });
        }
        let next_cursor = (rows.len() > limit.0 as usize)
            .then(|| items.last().map(|i| i.id.clone()))
            .flatten();
        Ok(Json(SimulationPage { items, next_cursor }))
    }
}

fn default_limit() -> u32 {
    20
}
