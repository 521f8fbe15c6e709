//! The simulation API's request wire types: the request (closed: unknown fields are refused,
//! every array and string bounded) and the parameters echoed back with every default applied;
//! and their mapping to and from the stored forms of `domain::simulation`. The result's wire
//! types are in `simulation_results`.

use super::types::BoundedVec;
use crate::domain::SimulationId;
use crate::domain::simulation as sim;
use chrono::{DateTime, Utc};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object, Union};

/// Most rows of caller-supplied bootstrap returns (1,000 years of monthly data).
pub const MAX_RETURN_ROWS: usize = 12_000;

/// Most rows of a yearly glide path (one per year of the longest horizon).
pub const MAX_GLIDE_ROWS: usize = 100;

/// Largest seed: 2⁵³ − 1, so that every client's JSON numbers hold it exactly.
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// A correlation or returns row: one entry per asset.
pub type AssetRow = BoundedVec<f64, { engine::MAX_ASSETS }>;

/// One rate per row of a caller-supplied history.
pub type RateRow = BoundedVec<f64, MAX_RETURN_ROWS>;

/// A single-value enum: the `type` tag of one variant of a `oneOf`.
macro_rules! tag {
    ($(#[$doc:meta])* $name:ident = $value:tt) => {
        $(#[$doc])*
        #[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum $name {
            #[doc = $value]
            #[oai(rename = $value)]
            #[default]
            Tag,
        }
    };
}

tag!(
    /// Tag of the GBM model.
    GbmTag = "gbm"
);
tag!(
    /// Tag of the Student-t model.
    StudentTTag = "student_t"
);
tag!(
    /// Tag of the bootstrap models.
    BootstrapTag = "bootstrap"
);
tag!(
    /// Tag of the historical-cohort models.
    HistoricalCohortsTag = "historical_cohorts"
);
tag!(
    /// Tag of the linear glide path.
    LinearTag = "linear"
);
tag!(
    /// Tag of the yearly glide path.
    YearlyTag = "yearly"
);
tag!(
    /// Tag of the constant-amount withdrawal.
    ConstantAmountTag = "constant_amount"
);
tag!(
    /// Tag of the constant-percentage withdrawal.
    ConstantPercentageTag = "constant_percentage"
);
tag!(
    /// Tag of the Guyton–Klinger guardrails.
    GuardrailsTag = "guardrails"
);
tag!(
    /// Tag of the floor-and-ceiling withdrawal.
    FloorCeilingTag = "floor_ceiling"
);
tag!(
    /// Tag of variable percentage withdrawal.
    VpwTag = "vpw"
);
tag!(
    /// Tag of constant inflation.
    ConstantTag = "constant"
);
tag!(
    /// Tag of stochastic inflation.
    StochasticTag = "stochastic"
);
tag!(
    /// Tag of historical inflation.
    HistoricalTag = "historical"
);
tag!(
    /// Tag of pseudo-random sampling.
    PseudoRandomTag = "pseudo_random"
);
tag!(
    /// Tag of randomised quasi-Monte Carlo sampling.
    RqmcTag = "rqmc"
);

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
    /// Annual expense ratio (fund fees), decimal in [0, 1) (0.0003 = 0.03 % a year), charged
    /// every step as `(1 − e)^Δ`, so a full year charges exactly `e`. Default: no fee.
    #[oai(validator(minimum(value = "0"), maximum(value = "1", exclusive)))]
    pub expense_ratio: Option<f64>,
}

/// Bundled return histories for `bootstrap` and `historical_cohorts`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum HistorySource {
    /// Robert Shiller's monthly US data 1871-01 to 2023-06: asset 1 = S&P composite total
    /// return, asset 2 (optional) = 10-year Treasury total return; CPI for `historical`
    /// inflation. Needs `steps_per_year = 12`.
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

/// Every start period of a bundled history run as its own deterministic path (a *cohort*,
/// cFIREsim's and Bengen's method): `paths` and `seed` are ignored, and the result reports
/// every cohort.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct CohortsHistoryModel {
    /// `historical_cohorts`.
    #[oai(rename = "type")]
    pub kind: HistoricalCohortsTag,
    /// The bundled history.
    pub history: HistorySource,
    /// Periods between consecutive starts, 1 to 12,000 (default 1 = every month of a monthly
    /// history; 12 = one cohort a year, each starting in January).
    #[oai(
        default = "one",
        validator(minimum(value = "1"), maximum(value = "12000"))
    )]
    pub start_stride: u32,
}

/// Every start period of your own history run as its own deterministic path (a cohort).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct CohortsReturnsModel {
    /// `historical_cohorts`.
    #[oai(rename = "type")]
    pub kind: HistoricalCohortsTag,
    /// `periods × assets` simple returns per step, decimal in [−1, 10⁶]; at least as many
    /// rows as the horizon has steps (1 to 12,000 rows).
    #[oai(validator(min_items = 1, max_items = 12000))]
    pub returns: Vec<AssetRow>,
    /// Periods between consecutive starts, 1 to 12,000 (default 1).
    #[oai(
        default = "one",
        validator(minimum(value = "1"), maximum(value = "12000"))
    )]
    pub start_stride: u32,
}

/// Distribution of per-step returns, chosen by `type`: `gbm` (the default), `student_t` with
/// `dof`, `bootstrap` or `historical_cohorts` with either `history` or `returns`.
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
    /// Every cohort of a bundled history.
    CohortsHistory(CohortsHistoryModel),
    /// Every cohort of your own returns.
    CohortsReturns(CohortsReturnsModel),
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

/// Weights moving linearly from the assets' `weight`s to `end_weights` at the horizon
/// (`w(s) = w₀ + (w₁ − w₀) · s / N` at a rebalancing after step `s` of `N`).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct LinearGlidePath {
    /// `linear`.
    #[oai(rename = "type")]
    pub kind: LinearTag,
    /// Weights at the horizon, one per asset, each in [0, 1], summing to 1.
    pub end_weights: AssetRow,
}

/// A weight schedule: row `y` applies in year `y` (0-based); later years keep the last row.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct YearlyGlidePath {
    /// `yearly`.
    #[oai(rename = "type")]
    pub kind: YearlyTag,
    /// 1 to 100 rows of weights, one per asset, each in [0, 1], summing to 1.
    #[oai(validator(min_items = 1, max_items = 100))]
    pub weights: Vec<AssetRow>,
}

/// Target weights that change over the horizon (a target-date fund's glide path), applied at
/// every rebalancing date and to contributions; needs a `rebalancing` schedule to act.
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum GlidePathInput {
    /// Linear.
    Linear(LinearGlidePath),
    /// Yearly schedule.
    Yearly(YearlyGlidePath),
}

/// `initial_rate × initial value` withdrawn every year, raised with inflation: Bengen's
/// (1994) "4 % rule".
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct ConstantAmountWithdrawal {
    /// `constant_amount`.
    #[oai(rename = "type")]
    pub kind: ConstantAmountTag,
    /// Initial rate, decimal of the initial value in [0, 1] (0.04 = 4 %).
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub initial_rate: f64,
}

/// `rate × current value` withdrawn every year (never depletes).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct ConstantPercentageWithdrawal {
    /// `constant_percentage`.
    #[oai(rename = "type")]
    pub kind: ConstantPercentageTag,
    /// Rate, decimal of the current value in [0, 1).
    #[oai(validator(minimum(value = "0"), maximum(value = "1", exclusive)))]
    pub rate: f64,
}

fn gk_band() -> f64 {
    0.2
}
fn gk_adjustment() -> f64 {
    0.1
}
fn gk_final_years() -> u32 {
    15
}
fn yes() -> bool {
    true
}

/// Guyton & Klinger (2006), "Decision rules and maximum initial withdrawal rates", J.
/// Financial Planning 19(3): the inflation (freeze), capital-preservation and prosperity
/// rules. Defaults are the published values.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct GuardrailsWithdrawal {
    /// `guardrails`.
    #[oai(rename = "type")]
    pub kind: GuardrailsTag,
    /// Initial rate, decimal of the initial value in [0, 1] (0.05 = 5 %).
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub initial_rate: f64,
    /// Upper guardrail: a cut when the current rate exceeds `initial_rate × (1 + upper)`;
    /// decimal in [0, 10] (default 0.2).
    #[oai(
        default = "gk_band",
        validator(minimum(value = "0"), maximum(value = "10"))
    )]
    pub upper: f64,
    /// Lower guardrail: a raise when the current rate is below `initial_rate × (1 − lower)`;
    /// decimal in [0, 1] (default 0.2).
    #[oai(
        default = "gk_band",
        validator(minimum(value = "0"), maximum(value = "1"))
    )]
    pub lower: f64,
    /// Size of a cut or raise, decimal in [0, 1) (default 0.1).
    #[oai(
        default = "gk_adjustment",
        validator(minimum(value = "0"), maximum(value = "1", exclusive))
    )]
    pub adjustment: f64,
    /// No cut when this many years or fewer remain, 0 to 100 (default 15).
    #[oai(
        default = "gk_final_years",
        validator(minimum(value = "0"), maximum(value = "100"))
    )]
    pub no_cut_final_years: u32,
    /// Skip the inflation raise after a losing year (default true).
    #[oai(default = "yes")]
    pub inflation_rule: bool,
}

/// `rate × current value`, kept between `floor` and `ceiling` times the initial withdrawal
/// in real terms.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct FloorCeilingWithdrawal {
    /// `floor_ceiling`.
    #[oai(rename = "type")]
    pub kind: FloorCeilingTag,
    /// Rate, decimal of the current value in [0, 1).
    #[oai(validator(minimum(value = "0"), maximum(value = "1", exclusive)))]
    pub rate: f64,
    /// Floor, fraction of the initial real withdrawal in [0, 1] (0.9 = never below 90 %).
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub floor: f64,
    /// Ceiling, multiple of the initial real withdrawal in [1, 1000] (1.5 = at most 150 %).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub ceiling: f64,
}

/// Bogleheads variable percentage withdrawal: each year's rate from the VPW table for the
/// age and the stock share (spends the portfolio by age 100).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct VpwWithdrawal {
    /// `vpw`.
    #[oai(rename = "type")]
    pub kind: VpwTag,
    /// Age at the start of the horizon, 0 to 120.
    #[oai(validator(minimum(value = "0"), maximum(value = "120")))]
    pub start_age: u32,
    /// Stock share the table assumes, decimal in [0, 1] (the rest bonds).
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub stock_share: f64,
}

/// A withdrawal strategy, paid at the start of every year (before that year's returns).
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum WithdrawalInput {
    /// Inflation-adjusted constant amount.
    ConstantAmount(ConstantAmountWithdrawal),
    /// Constant percentage.
    ConstantPercentage(ConstantPercentageWithdrawal),
    /// Guyton–Klinger guardrails.
    Guardrails(GuardrailsWithdrawal),
    /// Floor and ceiling.
    FloorCeiling(FloorCeilingWithdrawal),
    /// Variable percentage withdrawal.
    Vpw(VpwWithdrawal),
}

/// A constant annual inflation rate: `I_t = (1 + π)^t`.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct ConstantInflation {
    /// `constant`.
    #[oai(rename = "type")]
    pub kind: ConstantTag,
    /// Annual rate π, decimal in (−1, 1] (0.025 = 2.5 %).
    #[oai(validator(minimum(value = "-1", exclusive), maximum(value = "1")))]
    pub rate: f64,
}

/// A lognormal price index correlated with the assets (`gbm`, `student_t`).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct StochasticInflation {
    /// `stochastic`.
    #[oai(rename = "type")]
    pub kind: StochasticTag,
    /// Annualised drift, decimal in [−1, 1].
    #[oai(validator(minimum(value = "-1"), maximum(value = "1")))]
    pub drift: f64,
    /// Annualised volatility, decimal in [0, 2].
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub volatility: f64,
    /// Correlation of the inflation shock with each asset's, one per asset in [−1, 1]; the
    /// extended matrix must be positive semi-definite.
    pub correlation: AssetRow,
}

/// Historical inflation from the same rows as the returns (`bootstrap`,
/// `historical_cohorts`): the bundled CPI with a bundled history, else your `rates`.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields, skip_serializing_if_is_none)]
pub struct HistoricalInflation {
    /// `historical`.
    #[oai(rename = "type")]
    pub kind: HistoricalTag,
    /// With your own `returns`: one simple inflation rate per returns row, decimal > −1.
    pub rates: Option<RateRow>,
}

/// A price-index model: real (today's money) results and inflation-adjusted withdrawals.
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum InflationInput {
    /// Constant rate.
    Constant(ConstantInflation),
    /// Lognormal, correlated.
    Stochastic(StochasticInflation),
    /// From the history.
    Historical(HistoricalInflation),
}

/// Pseudo-random numbers (PCG-64 streams, ziggurat normals).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct PseudoRandomSampling {
    /// `pseudo_random`.
    #[oai(rename = "type")]
    pub kind: PseudoRandomTag,
}

fn sixteen() -> u32 {
    16
}

/// Randomised quasi-Monte Carlo (`gbm`, `student_t`): Owen-scrambled Sobol points (Joe–Kuo
/// 2008 direction numbers) on a Brownian bridge; the intervals come from the spread between
/// independent scramblings. Typically 3–15× fewer paths for the same precision.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct RqmcSampling {
    /// `rqmc`.
    #[oai(rename = "type")]
    pub kind: RqmcTag,
    /// Independent scramblings, 2 to 1,024 (default 16); must divide `paths`.
    #[oai(
        default = "sixteen",
        validator(minimum(value = "2"), maximum(value = "1024"))
    )]
    pub scramblings: u32,
}

/// How the random shocks are sampled (default `pseudo_random`).
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum SamplingInput {
    /// Pseudo-random.
    PseudoRandom(PseudoRandomSampling),
    /// Randomised QMC.
    Rqmc(RqmcSampling),
}

/// A figure a precision goal bounds.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum PrecisionQuantity {
    /// Terminal mean (relative half-width).
    TerminalMean,
    /// Terminal P1 (relative half-width).
    TerminalP1,
    /// Terminal P5 (relative half-width).
    TerminalP5,
    /// Terminal P10 (relative half-width).
    TerminalP10,
    /// Terminal P25 (relative half-width).
    TerminalP25,
    /// Terminal median (relative half-width).
    TerminalP50,
    /// Terminal P75 (relative half-width).
    TerminalP75,
    /// Terminal P90 (relative half-width).
    TerminalP90,
    /// Terminal P95 (relative half-width).
    TerminalP95,
    /// Terminal P99 (relative half-width).
    TerminalP99,
    /// Success rate (absolute half-width: 0.005 = ±0.5 points).
    SuccessRate,
}

/// One goal: the half-width of `quantity`'s confidence interval at most `half_width`.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct PrecisionGoal {
    /// The figure.
    pub quantity: PrecisionQuantity,
    /// Largest acceptable half-width, in (0, 1]: relative to the estimate for values (0.005 =
    /// ±0.5 %), absolute for `success_rate`.
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1")))]
    pub half_width: f64,
}

/// Run until every goal is met instead of a fixed number of paths: `paths` is the first
/// batch, then batches grow (predicted from `1/√paths`) up to the tier's path and work caps.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct PrecisionInput {
    /// 1 to 11 goals, all of which must be met.
    #[oai(validator(min_items = 1, max_items = 11))]
    pub goals: Vec<PrecisionGoal>,
}

/// Also search the safe and perpetual withdrawal rates (bisection on the same paths), for a
/// `constant_amount`, `guardrails` or `floor_ceiling` withdrawal without contributions.
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct WithdrawalRatesInput {
    /// Required probability of success, decimal in (0, 1] (0.95 = 95 % of paths).
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1")))]
    pub success_probability: f64,
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
fn default_confidence() -> f64 {
    0.95
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
    /// With `precision`, the first batch.
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
    /// with `bootstrap`, `historical_cohorts` or `rqmc`).
    #[oai(default)]
    pub antithetic: bool,
    /// Histogram bins for terminal values, 1 to 10,000 (default 20).
    #[oai(
        default = "default_bins",
        validator(minimum(value = "1"), maximum(value = "10000"))
    )]
    pub histogram_bins: u32,
    /// Target weights changing over the horizon (default: the assets' weights throughout).
    pub glide_path: Option<GlidePathInput>,
    /// A withdrawal strategy for retirement planning (may be combined with `cash_flow`).
    pub withdrawal: Option<WithdrawalInput>,
    /// A price-index model: adds real (today's money) results and raises
    /// inflation-adjusted withdrawals.
    pub inflation: Option<InflationInput>,
    /// Confidence level of every reported interval, in [0.5, 0.999] (default 0.95).
    #[oai(
        default = "default_confidence",
        validator(minimum(value = "0.5"), maximum(value = "0.999"))
    )]
    pub confidence_level: f64,
    /// Sampling (default `pseudo_random`).
    pub sampling: Option<SamplingInput>,
    /// Control variates for the terminal mean and percentiles (`gbm`, `student_t`): the
    /// exactly known log-growth of the un-rebalanced portfolio as the control.
    #[oai(default)]
    pub control_variate: bool,
    /// Run to a precision target instead of a fixed number of paths.
    pub precision: Option<PrecisionInput>,
    /// Also report the safe and perpetual withdrawal rates.
    pub withdrawal_rates: Option<WithdrawalRatesInput>,
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
                    expense_ratio: None,
                },
                AssetInput {
                    name: Some("Bonds".into()),
                    weight: 0.4,
                    drift: Some(0.03),
                    volatility: Some(0.06),
                    expense_ratio: None,
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
            glide_path: None,
            withdrawal: None,
            inflation: None,
            confidence_level: 0.95,
            sampling: None,
            control_variate: false,
            precision: None,
            withdrawal_rates: None,
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
    /// Annualised drift μ, decimal (absent for history-based models when not given).
    pub drift: Option<f64>,
    /// Annualised volatility σ, decimal (absent for history-based models when not given).
    pub volatility: Option<f64>,
    /// Annual expense ratio, decimal, when one was given.
    pub expense_ratio: Option<f64>,
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
    /// Every cohort of a history.
    HistoricalCohorts,
}

/// The return model as it was simulated.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ModelParameters {
    /// `gbm`, `student_t`, `bootstrap` or `historical_cohorts`.
    #[oai(rename = "type")]
    pub kind: ModelKind,
    /// `student_t`: degrees of freedom.
    pub dof: Option<f64>,
    /// History-based models: the bundled history.
    pub history: Option<HistorySource>,
    /// History-based models on your own returns: `periods × assets`.
    pub returns: Option<Vec<Vec<f64>>>,
    /// `bootstrap`: block length in periods.
    pub block_length: Option<u32>,
    /// `historical_cohorts`: periods between starts.
    pub start_stride: Option<u32>,
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

/// The Guyton–Klinger guardrails as simulated (every parameter, defaults applied).
#[derive(Object, Debug, Clone)]
pub struct GuardrailsParameters {
    /// `guardrails`.
    #[oai(rename = "type")]
    pub kind: GuardrailsTag,
    /// Initial rate, decimal.
    pub initial_rate: f64,
    /// Upper guardrail, decimal above the initial rate.
    pub upper: f64,
    /// Lower guardrail, decimal below the initial rate.
    pub lower: f64,
    /// Size of a cut or raise, decimal.
    pub adjustment: f64,
    /// No cut when this many years or fewer remain.
    pub no_cut_final_years: u32,
    /// The inflation rule applied.
    pub inflation_rule: bool,
}

/// The withdrawal strategy as simulated.
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum WithdrawalParameters {
    /// Inflation-adjusted constant amount.
    ConstantAmount(ConstantAmountWithdrawal),
    /// Constant percentage.
    ConstantPercentage(ConstantPercentageWithdrawal),
    /// Guyton–Klinger guardrails.
    Guardrails(GuardrailsParameters),
    /// Floor and ceiling.
    FloorCeiling(FloorCeilingWithdrawal),
    /// Variable percentage withdrawal.
    Vpw(VpwWithdrawal),
}

/// Randomised QMC as simulated.
#[derive(Object, Debug, Clone)]
pub struct RqmcParameters {
    /// `rqmc`.
    #[oai(rename = "type")]
    pub kind: RqmcTag,
    /// Independent scramblings.
    pub scramblings: u32,
}

/// The sampling as simulated.
#[derive(Union, Debug, Clone)]
#[oai(one_of)]
pub enum SamplingParameters {
    /// Pseudo-random.
    PseudoRandom(PseudoRandomSampling),
    /// Randomised QMC.
    Rqmc(RqmcParameters),
}

/// The parameters a simulation ran with: the request with every default applied (the
/// identity correlation, the model, the schedule, the sampling, the seed chosen).
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
    /// Paths requested (with `precision`: the first batch; the result says how many ran).
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
    /// The glide path, when given.
    pub glide_path: Option<GlidePathInput>,
    /// The withdrawal strategy, when given.
    pub withdrawal: Option<WithdrawalParameters>,
    /// The price-index model, when given.
    pub inflation: Option<InflationInput>,
    /// Confidence level of every interval.
    pub confidence_level: f64,
    /// Sampling.
    pub sampling: SamplingParameters,
    /// Control variates.
    pub control_variate: bool,
    /// The precision target, when given.
    pub precision: Option<PrecisionInput>,
    /// The withdrawal-rate search, when asked for.
    pub withdrawal_rates: Option<WithdrawalRatesInput>,
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

fn rows_in(rows: Vec<AssetRow>) -> Vec<Vec<f64>> {
    rows.into_iter().map(|r| r.0).collect()
}

fn rows_out(rows: &[Vec<f64>]) -> Vec<AssetRow> {
    rows.iter().map(|r| BoundedVec(r.clone())).collect()
}

impl From<ReturnModelInput> for sim::ReturnModelInput {
    fn from(m: ReturnModelInput) -> Self {
        use sim::BootstrapSource as Source;
        match m {
            ReturnModelInput::Gbm(_) => Self::Gbm,
            ReturnModelInput::StudentT(t) => Self::StudentT { dof: t.dof },
            ReturnModelInput::BootstrapHistory(b) => Self::Bootstrap {
                source: Source::History(history_in(b.history)).into(),
                block_length: b.block_length,
            },
            ReturnModelInput::BootstrapReturns(b) => Self::Bootstrap {
                source: Source::Returns(rows_in(b.returns)).into(),
                block_length: b.block_length,
            },
            ReturnModelInput::CohortsHistory(c) => Self::HistoricalCohorts {
                source: Source::History(history_in(c.history)).into(),
                start_stride: c.start_stride,
            },
            ReturnModelInput::CohortsReturns(c) => Self::HistoricalCohorts {
                source: Source::Returns(rows_in(c.returns)).into(),
                start_stride: c.start_stride,
            },
        }
    }
}

impl From<GlidePathInput> for sim::GlidePathInput {
    fn from(g: GlidePathInput) -> Self {
        match g {
            GlidePathInput::Linear(l) => Self::Linear {
                end_weights: l.end_weights.0,
            },
            GlidePathInput::Yearly(y) => Self::Yearly {
                weights: rows_in(y.weights),
            },
        }
    }
}

impl From<&sim::GlidePathInput> for GlidePathInput {
    fn from(g: &sim::GlidePathInput) -> Self {
        match g {
            sim::GlidePathInput::Linear { end_weights } => Self::Linear(LinearGlidePath {
                kind: LinearTag::Tag,
                end_weights: BoundedVec(end_weights.clone()),
            }),
            sim::GlidePathInput::Yearly { weights } => Self::Yearly(YearlyGlidePath {
                kind: YearlyTag::Tag,
                weights: rows_out(weights),
            }),
        }
    }
}

impl From<WithdrawalInput> for sim::WithdrawalInput {
    fn from(w: WithdrawalInput) -> Self {
        match w {
            WithdrawalInput::ConstantAmount(c) => Self::ConstantAmount {
                initial_rate: c.initial_rate,
            },
            WithdrawalInput::ConstantPercentage(c) => Self::ConstantPercentage { rate: c.rate },
            WithdrawalInput::Guardrails(g) => Self::Guardrails {
                initial_rate: g.initial_rate,
                upper: g.upper,
                lower: g.lower,
                adjustment: g.adjustment,
                no_cut_final_years: g.no_cut_final_years,
                inflation_rule: g.inflation_rule,
            },
            WithdrawalInput::FloorCeiling(f) => Self::FloorCeiling {
                rate: f.rate,
                floor: f.floor,
                ceiling: f.ceiling,
            },
            WithdrawalInput::Vpw(v) => Self::Vpw {
                start_age: v.start_age,
                stock_share: v.stock_share,
            },
        }
    }
}

impl From<&sim::WithdrawalInput> for WithdrawalParameters {
    fn from(w: &sim::WithdrawalInput) -> Self {
        match *w {
            sim::WithdrawalInput::ConstantAmount { initial_rate } => {
                Self::ConstantAmount(ConstantAmountWithdrawal {
                    kind: ConstantAmountTag::Tag,
                    initial_rate,
                })
            }
            sim::WithdrawalInput::ConstantPercentage { rate } => {
                Self::ConstantPercentage(ConstantPercentageWithdrawal {
                    kind: ConstantPercentageTag::Tag,
                    rate,
                })
            }
            sim::WithdrawalInput::Guardrails {
                initial_rate,
                upper,
                lower,
                adjustment,
                no_cut_final_years,
                inflation_rule,
            } => Self::Guardrails(GuardrailsParameters {
                kind: GuardrailsTag::Tag,
                initial_rate,
                upper,
                lower,
                adjustment,
                no_cut_final_years,
                inflation_rule,
            }),
            sim::WithdrawalInput::FloorCeiling {
                rate,
                floor,
                ceiling,
            } => Self::FloorCeiling(FloorCeilingWithdrawal {
                kind: FloorCeilingTag::Tag,
                rate,
                floor,
                ceiling,
            }),
            sim::WithdrawalInput::Vpw {
                start_age,
                stock_share,
            } => Self::Vpw(VpwWithdrawal {
                kind: VpwTag::Tag,
                start_age,
                stock_share,
            }),
        }
    }
}

impl From<InflationInput> for sim::InflationInput {
    fn from(i: InflationInput) -> Self {
        match i {
            InflationInput::Constant(c) => Self::Constant { rate: c.rate },
            InflationInput::Stochastic(s) => Self::Stochastic {
                drift: s.drift,
                volatility: s.volatility,
                correlation: s.correlation.0,
            },
            InflationInput::Historical(h) => Self::Historical {
                rates: h.rates.map(|r| r.0),
            },
        }
    }
}

impl From<&sim::InflationInput> for InflationInput {
    fn from(i: &sim::InflationInput) -> Self {
        match i {
            sim::InflationInput::Constant { rate } => Self::Constant(ConstantInflation {
                kind: ConstantTag::Tag,
                rate: *rate,
            }),
            sim::InflationInput::Stochastic {
                drift,
                volatility,
                correlation,
            } => Self::Stochastic(StochasticInflation {
                kind: StochasticTag::Tag,
                drift: *drift,
                volatility: *volatility,
                correlation: BoundedVec(correlation.clone()),
            }),
            sim::InflationInput::Historical { rates } => Self::Historical(HistoricalInflation {
                kind: HistoricalTag::Tag,
                rates: rates.clone().map(BoundedVec),
            }),
        }
    }
}

impl From<SamplingInput> for sim::SamplingInput {
    fn from(s: SamplingInput) -> Self {
        match s {
            SamplingInput::PseudoRandom(_) => Self::PseudoRandom,
            SamplingInput::Rqmc(r) => Self::Rqmc {
                scramblings: r.scramblings,
            },
        }
    }
}

impl From<sim::SamplingInput> for SamplingParameters {
    fn from(s: sim::SamplingInput) -> Self {
        match s {
            sim::SamplingInput::PseudoRandom => Self::PseudoRandom(PseudoRandomSampling {
                kind: PseudoRandomTag::Tag,
            }),
            sim::SamplingInput::Rqmc { scramblings } => Self::Rqmc(RqmcParameters {
                kind: RqmcTag::Tag,
                scramblings,
            }),
        }
    }
}

/// Pairs of the wire and stored names of the precision quantities.
const QUANTITIES: [(PrecisionQuantity, sim::PrecisionQuantityInput); 11] = {
    use PrecisionQuantity as W;
    use sim::PrecisionQuantityInput as S;
    [
        (W::TerminalMean, S::TerminalMean),
        (W::TerminalP1, S::TerminalP1),
        (W::TerminalP5, S::TerminalP5),
        (W::TerminalP10, S::TerminalP10),
        (W::TerminalP25, S::TerminalP25),
        (W::TerminalP50, S::TerminalP50),
        (W::TerminalP75, S::TerminalP75),
        (W::TerminalP90, S::TerminalP90),
        (W::TerminalP95, S::TerminalP95),
        (W::TerminalP99, S::TerminalP99),
        (W::SuccessRate, S::SuccessRate),
    ]
};

fn quantity_in(q: PrecisionQuantity) -> sim::PrecisionQuantityInput {
    QUANTITIES
        .iter()
        .find(|(w, _)| *w == q)
        .map_or(sim::PrecisionQuantityInput::TerminalMean, |(_, s)| *s)
}

/// The wire name of a stored precision quantity.
pub fn quantity_out(q: sim::PrecisionQuantityInput) -> PrecisionQuantity {
    QUANTITIES
        .iter()
        .find(|(_, s)| *s == q)
        .map_or(PrecisionQuantity::TerminalMean, |(w, _)| *w)
}

impl From<PrecisionInput> for sim::PrecisionInput {
    fn from(p: PrecisionInput) -> Self {
        Self {
            goals: p
                .goals
                .into_iter()
                .map(|g| sim::PrecisionGoalInput {
                    quantity: quantity_in(g.quantity),
                    half_width: g.half_width,
                })
                .collect(),
        }
    }
}

impl From<&sim::PrecisionGoalInput> for PrecisionGoal {
    fn from(g: &sim::PrecisionGoalInput) -> Self {
        Self {
            quantity: quantity_out(g.quantity),
            half_width: g.half_width,
        }
    }
}

impl From<&sim::PrecisionInput> for PrecisionInput {
    fn from(p: &sim::PrecisionInput) -> Self {
        Self {
            goals: p.goals.iter().map(Into::into).collect(),
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
                    expense_ratio: a.expense_ratio,
                })
                .collect(),
            correlation: r.correlation.map(rows_in),
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
            glide_path: r.glide_path.map(Into::into),
            withdrawal: r.withdrawal.map(Into::into),
            inflation: r.inflation.map(Into::into),
            confidence_level: r.confidence_level,
            sampling: r.sampling.map(Into::into).unwrap_or_default(),
            control_variate: r.control_variate,
            precision: r.precision.map(Into::into),
            withdrawal_rates: r.withdrawal_rates.map(|w| sim::WithdrawalRatesInput {
                success_probability: w.success_probability,
            }),
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
        start_stride: None,
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
        sim::ReturnModelInput::HistoricalCohorts {
            source,
            start_stride,
        } => ModelParameters {
            kind: ModelKind::HistoricalCohorts,
            history: source.history.map(history_out),
            returns: source.returns.clone(),
            start_stride: Some(*start_stride),
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
                    expense_ratio: a.expense_ratio,
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
            glide_path: r.glide_path.as_ref().map(Into::into),
            withdrawal: r.withdrawal.as_ref().map(Into::into),
            inflation: r.inflation.as_ref().map(Into::into),
            confidence_level: r.confidence_level,
            sampling: r.sampling.into(),
            control_variate: r.control_variate,
            precision: r.precision.as_ref().map(Into::into),
            withdrawal_rates: r.withdrawal_rates.map(|w| WithdrawalRatesInput {
                success_probability: w.success_probability,
            }),
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
