//! The simulation API's request and response types, and their mapping to the stored forms
//! of `domain::simulation`.

use crate::domain::SimulationId;
use crate::domain::simulation as sim;
use crate::error::AppError;
use chrono::{DateTime, Utc};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};

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

/// A stored simulation.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct SimulationView {
    /// Id (`sim_…`).
    pub id: SimulationId,
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
    pub id: SimulationId,
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
    pub next_cursor: Option<SimulationId>,
}

fn model_input(model: Option<ReturnModelInput>) -> Result<sim::ReturnModelInput, AppError> {
    let Some(m) = model else {
        return Ok(sim::ReturnModelInput::Gbm);
    };
    if m.kind != ModelKind::StudentT && m.dof.is_some() {
        return Err(AppError::validation(
            "model.dof",
            "model.dof applies only to the student_t model",
        ));
    }
    Ok(match m.kind {
        ModelKind::Gbm => sim::ReturnModelInput::Gbm,
        ModelKind::StudentT => sim::ReturnModelInput::StudentT {
            dof: m.dof.ok_or_else(|| {
                AppError::validation(
                    "model.dof",
                    "model.dof (degrees of freedom, > 2) is required for student_t",
                )
            })?,
        },
        ModelKind::Bootstrap => sim::ReturnModelInput::Bootstrap {
            source: sim::BootstrapSourceFields {
                history: m.history.map(|h| match h {
                    HistorySource::ShillerUsMonthly => sim::HistorySource::ShillerUsMonthly,
                }),
                returns: m.returns,
            },
            block_length: m.block_length.unwrap_or(1),
        },
    })
}

fn model_view(model: &sim::ReturnModelInput) -> Option<ReturnModelInput> {
    let (kind, dof, history, returns, block_length) = match model {
        sim::ReturnModelInput::Gbm => return None,
        sim::ReturnModelInput::StudentT { dof } => {
            (ModelKind::StudentT, Some(*dof), None, None, None)
        }
        sim::ReturnModelInput::Bootstrap {
            source,
            block_length,
        } => (
            ModelKind::Bootstrap,
            None,
            source.history.map(|h| match h {
                sim::HistorySource::ShillerUsMonthly => HistorySource::ShillerUsMonthly,
            }),
            source.returns.clone(),
            Some(*block_length),
        ),
    };
    Some(ReturnModelInput {
        kind,
        dof,
        history,
        returns,
        block_length,
    })
}

impl TryFrom<SimulationRequest> for sim::SimulationInput {
    type Error = AppError;

    fn try_from(r: SimulationRequest) -> Result<Self, AppError> {
        Ok(Self {
            model: model_input(r.model)?,
            assets: r
                .assets
                .into_iter()
                .map(|a| sim::AssetInput {
                    name: a.name,
                    weight: a.weight,
                    drift: a.drift,
                    volatility: a.volatility,
                })
                .collect(),
            correlation: r.correlation,
            initial_value: r.initial_value,
            horizon_years: r.horizon_years,
            steps_per_year: r.steps_per_year,
            paths: r.paths,
            seed: r.seed,
            rebalancing: match r.rebalancing {
                RebalancingInput::Never => sim::RebalancingInput::Never,
                RebalancingInput::EveryStep => sim::RebalancingInput::EveryStep,
                RebalancingInput::Monthly => sim::RebalancingInput::Monthly,
                RebalancingInput::Quarterly => sim::RebalancingInput::Quarterly,
                RebalancingInput::Annually => sim::RebalancingInput::Annually,
            },
            rebalance_every_steps: r.rebalance_every_steps,
            cash_flow: r.cash_flow.map(|c| sim::CashFlowInput {
                amount: c.amount,
                frequency: match c.frequency {
                    CashFlowFrequencyInput::EveryStep => sim::CashFlowFrequencyInput::EveryStep,
                    CashFlowFrequencyInput::Annually => sim::CashFlowFrequencyInput::Annually,
                },
                annual_growth: c.annual_growth,
            }),
            antithetic: r.antithetic,
            histogram_bins: r.histogram_bins,
        })
    }
}

impl From<&sim::SimulationInput> for SimulationRequest {
    fn from(r: &sim::SimulationInput) -> Self {
        Self {
            assets: r
                .assets
                .iter()
                .map(|a| AssetInput {
                    name: a.name.clone(),
                    weight: a.weight,
                    drift: a.drift,
                    volatility: a.volatility,
                })
                .collect(),
            correlation: r.correlation.clone(),
            initial_value: r.initial_value,
            horizon_years: r.horizon_years,
            steps_per_year: r.steps_per_year,
            paths: r.paths,
            seed: r.seed,
            model: model_view(&r.model),
            rebalancing: match r.rebalancing {
                sim::RebalancingInput::Never => RebalancingInput::Never,
                sim::RebalancingInput::EveryStep => RebalancingInput::EveryStep,
                sim::RebalancingInput::Monthly => RebalancingInput::Monthly,
                sim::RebalancingInput::Quarterly => RebalancingInput::Quarterly,
                sim::RebalancingInput::Annually => RebalancingInput::Annually,
            },
            rebalance_every_steps: r.rebalance_every_steps,
            cash_flow: r.cash_flow.as_ref().map(|c| CashFlowInput {
                amount: c.amount,
                frequency: match c.frequency {
                    sim::CashFlowFrequencyInput::EveryStep => CashFlowFrequencyInput::EveryStep,
                    sim::CashFlowFrequencyInput::Annually => CashFlowFrequencyInput::Annually,
                },
                annual_growth: c.annual_growth,
            }),
            antithetic: r.antithetic,
            histogram_bins: r.histogram_bins,
        }
    }
}

impl From<&sim::PercentilesOutput> for PercentilesView {
    fn from(p: &sim::PercentilesOutput) -> Self {
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

impl From<&sim::SimulationOutput> for SimulationResultView {
    fn from(r: &sim::SimulationOutput) -> Self {
        Self {
            seed: r.seed,
            engine_version: r.engine_version.clone(),
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

impl From<&sim::Simulation> for SimulationView {
    fn from(s: &sim::Simulation) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            duration_ms: s.duration_ms,
            request: (&s.request).into(),
            result: (&s.result).into(),
        }
    }
}

impl From<&sim::SimulationSummary> for SimulationSummary {
    fn from(s: &sim::SimulationSummary) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            paths: s.paths,
            steps: s.steps,
            seed: s.seed,
            terminal_p50: s.terminal_p50,
            terminal_mean: s.terminal_mean,
        }
    }
}
