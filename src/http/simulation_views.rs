//! The simulation API's wire types: the request (closed: unknown fields are refused, every
//! array and string bounded), the parameters echoed back with every default applied, and the
//! result; and their mapping to the stored forms of `domain::simulation`.

use super::types::BoundedVec;
use crate::domain::SimulationId;
use crate::domain::simulation as sim;
use chrono::{DateTime, Utc};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object, Union};

/// Most rows of caller-supplied bootstrap returns (1,000 years of monthly data).
pub const MAX_RETURN_ROWS: usize = 12_000;

/// Largest seed: 2⁵³ − 1, so that every client's JSON numbers hold it exactly.
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// A correlation or returns row: one entry per asset.
pub type AssetRow = BoundedVec<f64, { engine::MAX_ASSETS }>;

/// One asset of the portfolio.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct AssetInput {
    /// Optional label, echoed back (e.g. `US equities`), at most 100 characters.
    #[oai(validator(max_length = 100))]
    pub name: Option<String>,
    /// Target weight, decimal in [0, 1]; weights sum to 1 (±1e-9).
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub weight: f64,
    /// Annualised drift μ, decimal in [−1, 1] (0.07 = 7 %). Required for `gbm` and
    /// `student_t`.
    #[oai(validator(minimum(value = "-1"), maximum(value = "1")))]
    pub drift: Option<f64>,
    /// Annualised volatility σ, decimal in [0, 2] (0.15 = 15 %). Required for `gbm` and
    /// `student_t`.
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub volatility: Option<f64>,
}

/// Tag of the GBM model.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GbmTag {
    /// Geometric Brownian motion.
    #[oai(rename = "gbm")]
    Gbm,
}

/// Tag of the Student-t model.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudentTTag {
    /// Student-t shocks.
    #[oai(rename = "student_t")]
    StudentT,
}

/// Tag of the bootstrap models.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapTag {
    /// Resampled history.
    #[oai(rename = "bootstrap")]
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

fn one() -> u32 {
    1
}

/// Geometric Brownian motion: correlated normal shocks, exact log step.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct GbmModel {
    /// `gbm`.
    #[oai(rename = "type")]
    pub kind: GbmTag,
}

/// Multivariate Student-t shocks scaled to unit variance (fat tails), same correlation.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct StudentTModel {
    /// `student_t`.
    #[oai(rename = "type")]
    pub kind: StudentTTag,
    /// Degrees of freedom ν > 2 (smaller = fatter tails).
    #[oai(validator(minimum(value = "2", exclusive), maximum(value = "1000000")))]
    pub dof: f64,
}

/// Resampled rows of a bundled history (i.i.d. or in blocks).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct BootstrapHistoryModel {
    /// `bootstrap`.
    #[oai(rename = "type")]
    pub kind: BootstrapTag,
    /// The bundled history.
    pub history: HistorySource,
    /// Block length in periods (1 = i.i.d. rows, the default; 12 keeps a year of serial
    /// dependence with monthly data); at most the number of periods.
    #[oai(
        default = "one",
        validator(minimum(value = "1"), maximum(value = "12000"))
    )]
    pub block_length: u32,
}

/// Resampled rows of your own history (i.i.d. or in blocks).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct BootstrapReturnsModel {
    /// `bootstrap`.
    #[oai(rename = "type")]
    pub kind: BootstrapTag,
    /// `periods × assets` simple returns per step, decimal in [−1, 10⁶] (0.01 = 1 % in that
    /// period); one row per period (1 to 12,000), one column per asset.
    #[oai(validator(min_items = 1, max_items = 12000))]
    pub returns: Vec<AssetRow>,
    /// Block length in periods (1 = i.i.d. rows, the default); at most the number of periods.
    #[oai(
        default = "one",
        validator(minimum(value = "1"), maximum(value = "12000"))
    )]
    pub block_length: u32,
}

/// Distribution of per-step returns, chosen by `type`: `gbm` (the default), `student_t` with
/// `dof`, or `bootstrap` with either `history` or `returns`.
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum ReturnModelInput {
    /// Geometric Brownian motion.
    Gbm(GbmModel),
    /// Student-t shocks.
    StudentT(StudentTModel),
    /// Bootstrap on a bundled history.
    BootstrapHistory(BootstrapHistoryModel),
    /// Bootstrap on your own returns.
    BootstrapReturns(BootstrapReturnsModel),
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
    /// Currency units per occurrence, within ±10¹⁵: > 0 contribution, < 0 withdrawal.
    #[oai(validator(minimum(value = "-1e15"), maximum(value = "1e15")))]
    pub amount: f64,
    /// `every_step` or `annually`.
    pub frequency: CashFlowFrequencyInput,
    /// Annual growth of the amount, decimal in (−1, 1] (0.02 = grows with 2 % inflation).
    /// Default 0.
    #[oai(
        default,
        validator(minimum(value = "-1", exclusive), maximum(value = "1"))
    )]
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
#[oai(deny_unknown_fields, example, skip_serializing_if_is_none)]
pub struct SimulationRequest {
    /// Assets, 1 to 50.
    #[oai(validator(min_items = 1, max_items = 50))]
    pub assets: Vec<AssetInput>,
    /// Correlation matrix, `assets × assets`: symmetric, unit diagonal, entries in [−1, 1],
    /// positive semi-definite. Default: identity (uncorrelated).
    #[oai(validator(max_items = 50))]
    pub correlation: Option<Vec<AssetRow>>,
    /// Initial portfolio value, currency units, in (0, 10¹⁵].
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1e15")))]
    pub initial_value: f64,
    /// Horizon in whole years, 1 to 100.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub horizon_years: u32,
    /// Steps per year, 1 to 252 (12 = monthly, the default).
    #[oai(
        default = "default_steps",
        validator(minimum(value = "1"), maximum(value = "252"))
    )]
    pub steps_per_year: u32,
    /// Number of simulated paths, 1 to 10,000,000 (default 10,000; the tier caps it further).
    #[oai(
        default = "default_paths",
        validator(minimum(value = "1"), maximum(value = "10000000"))
    )]
    pub paths: u64,
    /// Seed for the generator, 0 to 2⁵³ − 1; generated and returned when absent. Same inputs
    /// and seed give bit-identical results.
    #[oai(validator(maximum(value = "9007199254740991")))]
    pub seed: Option<u64>,
    /// Return model (default `gbm`).
    pub model: Option<ReturnModelInput>,
    /// Rebalancing schedule (default `never`).
    #[oai(default)]
    pub rebalancing: RebalancingInput,
    /// Rebalance every N steps (1 to 25,200) instead of a calendar schedule (overrides
    /// `rebalancing`).
    #[oai(validator(minimum(value = "1"), maximum(value = "25200")))]
    pub rebalance_every_steps: Option<u32>,
    /// Optional periodic contribution or withdrawal.
    pub cash_flow: Option<CashFlowInput>,
    /// Antithetic variates (pairs each path with its mirror; lowers the standard error; not
    /// with `bootstrap`).
    #[oai(default)]
    pub antithetic: bool,
    /// Histogram bins for terminal values, 1 to 10,000 (default 20).
    #[oai(
        default = "default_bins",
        validator(minimum(value = "1"), maximum(value = "10000"))
    )]
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
            correlation: Some(vec![BoundedVec(vec![1.0, 0.2]), BoundedVec(vec![0.2, 1.0])]),
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

/// An asset as it was simulated.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct AssetParameters {
    /// Label, when one was given.
    pub name: Option<String>,
    /// Target weight, decimal.
    pub weight: f64,
    /// Annualised drift μ, decimal (absent for `bootstrap` when not given).
    pub drift: Option<f64>,
    /// Annualised volatility σ, decimal (absent for `bootstrap` when not given).
    pub volatility: Option<f64>,
}

/// Kinds of return model.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ModelKind {
    /// Geometric Brownian motion.
    Gbm,
    /// Student-t shocks.
    StudentT,
    /// Resampled history.
    Bootstrap,
}

/// The return model as it was simulated.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ModelParameters {
    /// `gbm`, `student_t` or `bootstrap`.
    #[oai(rename = "type")]
    pub kind: ModelKind,
    /// `student_t`: degrees of freedom.
    pub dof: Option<f64>,
    /// `bootstrap` on a bundled history.
    pub history: Option<HistorySource>,
    /// `bootstrap` on your own returns: `periods × assets`.
    pub returns: Option<Vec<Vec<f64>>>,
    /// `bootstrap`: block length in periods.
    pub block_length: Option<u32>,
}

/// A cash flow as it was simulated.
#[derive(Object, Debug, Clone)]
pub struct CashFlowParameters {
    /// Currency units per occurrence.
    pub amount: f64,
    /// `every_step` or `annually`.
    pub frequency: CashFlowFrequencyInput,
    /// Annual growth of the amount, decimal.
    pub annual_growth: f64,
}

/// The parameters a simulation ran with: the request with every default applied (the
/// identity correlation, the model, the schedule, the seed chosen).
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct SimulationParameters {
    /// Assets.
    pub assets: Vec<AssetParameters>,
    /// Correlation matrix, `assets × assets`.
    pub correlation: Vec<Vec<f64>>,
    /// Initial portfolio value, currency units.
    pub initial_value: f64,
    /// Horizon in whole years.
    pub horizon_years: u32,
    /// Steps per year.
    pub steps_per_year: u32,
    /// Simulated paths.
    pub paths: u64,
    /// Seed used (pass it back to reproduce bit for bit).
    pub seed: u64,
    /// Return model.
    pub model: ModelParameters,
    /// Rebalancing schedule.
    pub rebalancing: RebalancingInput,
    /// Rebalance every N steps (overrides `rebalancing`), when given.
    pub rebalance_every_steps: Option<u32>,
    /// The periodic contribution or withdrawal, when given.
    pub cash_flow: Option<CashFlowParameters>,
    /// Antithetic variates.
    pub antithetic: bool,
    /// Histogram bins.
    pub histogram_bins: u32,
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
    /// The parameters it ran with (defaults applied, seed chosen).
    pub request: SimulationParameters,
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
#[oai(example, skip_serializing_if_is_none)]
pub struct SimulationPage {
    /// Items.
    pub items: Vec<SimulationSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<SimulationId>,
}

fn history_in(h: HistorySource) -> sim::HistorySource {
    match h {
        HistorySource::ShillerUsMonthly => sim::HistorySource::ShillerUsMonthly,
    }
}

fn history_out(h: sim::HistorySource) -> HistorySource {
    match h {
        sim::HistorySource::ShillerUsMonthly => HistorySource::ShillerUsMonthly,
    }
}

fn rebalancing_in(r: RebalancingInput) -> sim::RebalancingInput {
    match r {
        RebalancingInput::Never => sim::RebalancingInput::Never,
        RebalancingInput::EveryStep => sim::RebalancingInput::EveryStep,
        RebalancingInput::Monthly => sim::RebalancingInput::Monthly,
        RebalancingInput::Quarterly => sim::RebalancingInput::Quarterly,
        RebalancingInput::Annually => sim::RebalancingInput::Annually,
    }
}

fn rebalancing_out(r: sim::RebalancingInput) -> RebalancingInput {
    match r {
        sim::RebalancingInput::Never => RebalancingInput::Never,
        sim::RebalancingInput::EveryStep => RebalancingInput::EveryStep,
        sim::RebalancingInput::Monthly => RebalancingInput::Monthly,
        sim::RebalancingInput::Quarterly => RebalancingInput::Quarterly,
        sim::RebalancingInput::Annually => RebalancingInput::Annually,
    }
}

fn frequency_in(f: CashFlowFrequencyInput) -> sim::CashFlowFrequencyInput {
    match f {
        CashFlowFrequencyInput::EveryStep => sim::CashFlowFrequencyInput::EveryStep,
        CashFlowFrequencyInput::Annually => sim::CashFlowFrequencyInput::Annually,
    }
}

fn frequency_out(f: sim::CashFlowFrequencyInput) -> CashFlowFrequencyInput {
    match f {
        sim::CashFlowFrequencyInput::EveryStep => CashFlowFrequencyInput::EveryStep,
        sim::CashFlowFrequencyInput::Annually => CashFlowFrequencyInput::Annually,
    }
}

impl From<ReturnModelInput> for sim::ReturnModelInput {
    fn from(m: ReturnModelInput) -> Self {
        match m {
            ReturnModelInput::Gbm(_) => Self::Gbm,
            ReturnModelInput::StudentT(t) => Self::StudentT { dof: t.dof },
            ReturnModelInput::BootstrapHistory(b) => Self::Bootstrap {
                source: sim::BootstrapSource::History(history_in(b.history)).into(),
                block_length: b.block_length,
            },
            ReturnModelInput::BootstrapReturns(b) => Self::Bootstrap {
                source: sim::BootstrapSource::Returns(b.returns.into_iter().map(|r| r.0).collect())
                    .into(),
                block_length: b.block_length,
            },
        }
    }
}

impl From<SimulationRequest> for sim::SimulationInput {
    fn from(r: SimulationRequest) -> Self {
        Self {
            model: r.model.map(Into::into).unwrap_or_default(),
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
            correlation: r
                .correlation
                .map(|rows| rows.into_iter().map(|row| row.0).collect()),
            initial_value: r.initial_value,
            horizon_years: r.horizon_years,
            steps_per_year: r.steps_per_year,
            paths: r.paths,
            seed: r.seed,
            rebalancing: rebalancing_in(r.rebalancing),
            rebalance_every_steps: r.rebalance_every_steps,
            cash_flow: r.cash_flow.map(|c| sim::CashFlowInput {
                amount: c.amount,
                frequency: frequency_in(c.frequency),
                annual_growth: c.annual_growth,
            }),
            antithetic: r.antithetic,
            histogram_bins: r.histogram_bins,
        }
    }
}

fn model_parameters(model: &sim::ReturnModelInput) -> ModelParameters {
    let none = ModelParameters {
        kind: ModelKind::Gbm,
        dof: None,
        history: None,
        returns: None,
        block_length: None,
    };
    match model {
        sim::ReturnModelInput::Gbm => none,
        sim::ReturnModelInput::StudentT { dof } => ModelParameters {
            kind: ModelKind::StudentT,
            dof: Some(*dof),
            ..none
        },
        sim::ReturnModelInput::Bootstrap {
            source,
            block_length,
        } => ModelParameters {
            kind: ModelKind::Bootstrap,
            history: source.history.map(history_out),
            returns: source.returns.clone(),
            block_length: Some(*block_length),
            ..none
        },
    }
}

impl From<&sim::SimulationInput> for SimulationParameters {
    fn from(r: &sim::SimulationInput) -> Self {
        let n = r.assets.len();
        Self {
            assets: r
                .assets
                .iter()
                .map(|a| AssetParameters {
                    name: a.name.clone(),
                    weight: a.weight,
                    drift: a.drift,
                    volatility: a.volatility,
                })
                .collect(),
            correlation: r.correlation.clone().unwrap_or_else(|| {
                (0..n)
                    .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
                    .collect()
            }),
            initial_value: r.initial_value,
            horizon_years: r.horizon_years,
            steps_per_year: r.steps_per_year,
            paths: r.paths,
            seed: r.seed.unwrap_or_default(),
            model: model_parameters(&r.model),
            rebalancing: rebalancing_out(r.rebalancing),
            rebalance_every_steps: r.rebalance_every_steps,
            cash_flow: r.cash_flow.as_ref().map(|c| CashFlowParameters {
                amount: c.amount,
                frequency: frequency_out(c.frequency),
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
