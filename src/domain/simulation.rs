//! Simulations as the service stores and returns them: the request with its defaults applied
//! ([`SimulationInput`]) and the engine's output ([`SimulationOutput`]). Both are kept as JSON
//! in the tenant's `simulations` table, so their serde shape is a storage format: fields may be
//! added with defaults, never renamed.

use super::ids::SimulationId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One asset of the portfolio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetInput {
    /// Optional label, echoed back (at most 100 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// Target weight, decimal in [0, 1]; weights sum to 1 (±1e-9).
    pub weight: f64,
    /// Annualised drift μ, decimal (0.07 = 7 %). Required for GBM and Student-t.
    #[serde(default)]
    pub drift: Option<f64>,
    /// Annualised volatility σ ≥ 0, decimal. Required for GBM and Student-t.
    #[serde(default)]
    pub volatility: Option<f64>,
    /// Annual expense ratio, decimal in [0, 1) (0.001 = 0.1 % a year); none = no fee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expense_ratio: Option<f64>,
}

/// Bundled return histories for the bootstrap model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    /// Robert Shiller's monthly US data 1871–2023: stocks, then 10-year Treasuries.
    ShillerUsMonthly,
}

/// Where bootstrap returns come from.
#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapSource {
    /// A bundled history.
    History(HistorySource),
    /// The caller's own `periods × assets` simple returns per step.
    Returns(Vec<Vec<f64>>),
}

/// Distribution of per-step returns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReturnModelInput {
    /// Geometric Brownian motion with correlated normal shocks.
    #[default]
    Gbm,
    /// Multivariate Student-t shocks scaled to unit variance.
    StudentT {
        /// Degrees of freedom ν > 2.
        dof: f64,
    },
    /// Resampled historical returns.
    Bootstrap {
        /// Bundled history or caller-supplied returns.
        #[serde(flatten)]
        source: BootstrapSourceFields,
        /// Block length in periods (1 = i.i.d. rows).
        #[serde(default = "one", deserialize_with = "one_if_null")]
        block_length: u32,
    },
    /// Every historical start period run as a deterministic sequence (cFIREsim's method).
    HistoricalCohorts {
        /// Bundled history or caller-supplied returns.
        #[serde(flatten)]
        source: BootstrapSourceFields,
        /// Periods between consecutive starts (12 = one cohort a year with monthly data).
        start_stride: u32,
    },
}

fn one() -> u32 {
    1
}

/// Rows stored before the model was an enum hold `"block_length": null` for the default.
fn one_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or(1))
}

/// The stored spelling of a [`BootstrapSource`]: exactly one of the two fields is set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BootstrapSourceFields {
    /// A bundled history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySource>,
    /// Caller-supplied `periods × assets` simple returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<Vec<Vec<f64>>>,
}

impl BootstrapSourceFields {
    /// The source these fields name, if exactly one is set.
    pub fn source(&self) -> Option<BootstrapSource> {
        match (&self.history, &self.returns) {
            (Some(h), None) => Some(BootstrapSource::History(*h)),
            (None, Some(r)) => Some(BootstrapSource::Returns(r.clone())),
            _ => None,
        }
    }
}

impl From<BootstrapSource> for BootstrapSourceFields {
    fn from(s: BootstrapSource) -> Self {
        match s {
            BootstrapSource::History(h) => Self {
                history: Some(h),
                returns: None,
            },
            BootstrapSource::Returns(r) => Self {
                history: None,
                returns: Some(r),
            },
        }
    }
}

/// When holdings are reset to the target weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebalancingInput {
    /// Buy and hold.
    #[default]
    Never,
    /// After every step.
    EveryStep,
    /// Every month.
    Monthly,
    /// Every quarter.
    Quarterly,
    /// At each year end.
    Annually,
}

/// How often a cash flow occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CashFlowFrequencyInput {
    /// At the end of every step.
    EveryStep,
    /// At each year end.
    Annually,
}

/// A periodic contribution (> 0) or withdrawal (< 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CashFlowInput {
    /// Currency units per occurrence.
    pub amount: f64,
    /// How often.
    pub frequency: CashFlowFrequencyInput,
    /// Annual growth of the amount, decimal.
    #[serde(default)]
    pub annual_growth: f64,
}

/// Target weights that change over the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GlidePathInput {
    /// Linearly from the assets' weights to `end_weights` at the horizon.
    Linear {
        /// Weights at the horizon, one per asset.
        end_weights: Vec<f64>,
    },
    /// One row of weights per year (the last row for later years).
    Yearly {
        /// Rows of weights, one per asset.
        weights: Vec<Vec<f64>>,
    },
}

/// How much is withdrawn each year (at the start of the year).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WithdrawalInput {
    /// `initial_rate × initial value`, adjusted for inflation (the "4 % rule").
    ConstantAmount {
        /// Initial rate, decimal.
        initial_rate: f64,
    },
    /// `rate × current value`.
    ConstantPercentage {
        /// Rate, decimal.
        rate: f64,
    },
    /// Guyton–Klinger (2006) guardrails.
    Guardrails {
        /// Initial rate, decimal.
        initial_rate: f64,
        /// Upper guardrail, fraction above the initial rate.
        upper: f64,
        /// Lower guardrail, fraction below the initial rate.
        lower: f64,
        /// Size of a cut or raise.
        adjustment: f64,
        /// No cut when this many years or fewer remain.
        no_cut_final_years: u32,
        /// Freeze the inflation adjustment after a losing year.
        inflation_rule: bool,
    },
    /// A percentage of the current value between a floor and a ceiling (real terms).
    FloorCeiling {
        /// Rate, decimal.
        rate: f64,
        /// Floor, fraction of the initial real withdrawal.
        floor: f64,
        /// Ceiling, multiple of the initial real withdrawal.
        ceiling: f64,
    },
    /// Variable percentage withdrawal from the Bogleheads table.
    Vpw {
        /// Age at the start.
        start_age: u32,
        /// Share of stocks the table assumes, decimal.
        stock_share: f64,
    },
}

/// How the price index evolves (real outputs, inflation-adjusted withdrawals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InflationInput {
    /// A constant annual rate.
    Constant {
        /// Annual rate, decimal.
        rate: f64,
    },
    /// A lognormal index correlated with the assets.
    Stochastic {
        /// Annualised drift, decimal.
        drift: f64,
        /// Annualised volatility, decimal.
        volatility: f64,
        /// Correlation with each asset's shock.
        correlation: Vec<f64>,
    },
    /// Historical inflation of the same rows as the returns: the bundled CPI with a bundled
    /// history, else one `rate` per row of the caller's returns.
    Historical {
        /// One rate per returns row (caller-supplied histories only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rates: Option<Vec<f64>>,
    },
}

/// How the random shocks are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SamplingInput {
    /// Pseudo-random numbers.
    #[default]
    PseudoRandom,
    /// Randomised quasi-Monte Carlo with this many independent scramblings.
    Rqmc {
        /// Scramblings.
        scramblings: u32,
    },
}

/// A figure a precision target bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrecisionQuantityInput {
    /// The terminal mean (relative half-width).
    TerminalMean,
    /// A terminal percentile (relative half-width).
    TerminalP1,
    #[allow(missing_docs)]
    TerminalP5,
    #[allow(missing_docs)]
    TerminalP10,
    #[allow(missing_docs)]
    TerminalP25,
    #[allow(missing_docs)]
    TerminalP50,
    #[allow(missing_docs)]
    TerminalP75,
    #[allow(missing_docs)]
    TerminalP90,
    #[allow(missing_docs)]
    TerminalP95,
    #[allow(missing_docs)]
    TerminalP99,
    /// The success rate (absolute half-width).
    SuccessRate,
}

impl PrecisionQuantityInput {
    /// The engine's quantity.
    pub fn to_engine(self) -> engine::PrecisionQuantity {
        use PrecisionQuantityInput as Q;
        let p = |p| engine::PrecisionQuantity::TerminalPercentile { p };
        match self {
            Q::TerminalMean => engine::PrecisionQuantity::TerminalMean,
            Q::TerminalP1 => p(0.01),
            Q::TerminalP5 => p(0.05),
            Q::TerminalP10 => p(0.10),
            Q::TerminalP25 => p(0.25),
            Q::TerminalP50 => p(0.50),
            Q::TerminalP75 => p(0.75),
            Q::TerminalP90 => p(0.90),
            Q::TerminalP95 => p(0.95),
            Q::TerminalP99 => p(0.99),
            Q::SuccessRate => engine::PrecisionQuantity::SuccessRate,
        }
    }
}

/// One precision goal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecisionGoalInput {
    /// The figure.
    pub quantity: PrecisionQuantityInput,
    /// The largest acceptable half-width of its interval.
    pub half_width: f64,
}

/// Run until every goal is met (or the tier's path cap), instead of a fixed path count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionInput {
    /// Goals, all of which must be met.
    pub goals: Vec<PrecisionGoalInput>,
}

/// Also search the safe and perpetual withdrawal rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WithdrawalRatesInput {
    /// The required probability of success.
    pub success_probability: f64,
}

fn default_confidence_level() -> f64 {
    0.95
}

/// A simulation request with every default applied (and, once run, the seed chosen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationInput {
    /// Assets, 1 to 50.
    pub assets: Vec<AssetInput>,
    /// Correlation matrix `assets × assets`; `None` = identity.
    #[serde(default)]
    pub correlation: Option<Vec<Vec<f64>>>,
    /// Initial portfolio value, currency units.
    pub initial_value: f64,
    /// Horizon in whole years.
    pub horizon_years: u32,
    /// Steps per year.
    pub steps_per_year: u32,
    /// Paths.
    pub paths: u64,
    /// Seed of the generator: `None` in a request that leaves the choice to the service;
    /// always set once stored.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Return model.
    #[serde(default, deserialize_with = "model_or_default")]
    pub model: ReturnModelInput,
    /// Rebalancing schedule.
    #[serde(default)]
    pub rebalancing: RebalancingInput,
    /// Rebalance every N steps instead of a calendar schedule.
    #[serde(default)]
    pub rebalance_every_steps: Option<u32>,
    /// Periodic contribution or withdrawal.
    #[serde(default)]
    pub cash_flow: Option<CashFlowInput>,
    /// Antithetic variates.
    #[serde(default)]
    pub antithetic: bool,
    /// Histogram bins for terminal values.
    pub histogram_bins: u32,
    /// Target weights over the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glide_path: Option<GlidePathInput>,
    /// Withdrawal strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal: Option<WithdrawalInput>,
    /// Price-index model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflation: Option<InflationInput>,
    /// Confidence level of every interval.
    #[serde(default = "default_confidence_level")]
    pub confidence_level: f64,
    /// Sampling.
    #[serde(default)]
    pub sampling: SamplingInput,
    /// Control variates.
    #[serde(default)]
    pub control_variate: bool,
    /// A precision target instead of a fixed path count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<PrecisionInput>,
    /// Also search the safe and perpetual withdrawal rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal_rates: Option<WithdrawalRatesInput>,
}

/// Rows stored before the model was an enum hold `"model": null` for the default.
fn model_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ReturnModelInput, D::Error> {
    Ok(Option::<ReturnModelInput>::deserialize(d)?.unwrap_or_default())
}

/// How a precision target ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionReport {
    /// The goals, as requested.
    pub goals: Vec<PrecisionGoalInput>,
    /// The half-width reached for each goal (same units; NaN, stored as `null`, when
    /// unbounded).
    #[serde(deserialize_with = "nan_for_null")]
    pub achieved: Vec<f64>,
    /// Why the run stopped.
    pub stop_reason: engine::StopReason,
    /// Batches run.
    pub rounds: u32,
}

/// JSON has no NaN or infinity (`serde_json` writes `null`): read `null` back as NaN.
fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|x| x.unwrap_or(f64::NAN))
        .collect())
}

/// What a simulation produced: the engine's result (its own types, serialised; results of
/// engines before 0.5 read back with unknown intervals), and the precision run's report and
/// the withdrawal-rate search when they were asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationOutput {
    /// The engine's result.
    #[serde(flatten)]
    pub result: engine::SimulationResult,
    /// How the precision target ended, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<PrecisionReport>,
    /// The safe and perpetual withdrawal rates, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal_rates: Option<engine::WithdrawalRates>,
}

/// A stored simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Simulation {
    /// Id.
    pub id: SimulationId,
    /// When it ran.
    pub created_at: DateTime<Utc>,
    /// Wall time of the engine run, milliseconds.
    pub duration_ms: f64,
    /// The request with defaults applied and the seed used.
    pub request: SimulationInput,
    /// The result.
    pub result: SimulationOutput,
}

/// One line of a simulation listing.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationSummary {
    /// Id.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_stored_by_the_flat_request_format() {
        // The shape written before the model became an enum (poem-openapi serialised every
        // optional field, absent ones as null).
        let stored = serde_json::json!({
            "assets": [{"name": null, "weight": 1.0, "drift": 0.05, "volatility": 0.1}],
            "correlation": null, "initial_value": 100.0, "horizon_years": 1, "steps_per_year": 12,
            "paths": 10, "seed": 7, "model": null, "rebalancing": "never",
            "rebalance_every_steps": null, "cash_flow": null, "antithetic": false,
            "histogram_bins": 20
        });
        let input: SimulationInput = serde_json::from_value(stored).unwrap();
        assert_eq!(input.model, ReturnModelInput::Gbm);
        let boot = serde_json::json!({"type": "bootstrap", "dof": null, "history": "shiller_us_monthly", "returns": null, "block_length": 12});
        let model: ReturnModelInput = serde_json::from_value(boot).unwrap();
        let ReturnModelInput::Bootstrap {
            source,
            block_length,
        } = &model
        else {
            panic!("{model:?}")
        };
        assert_eq!(*block_length, 12);
        assert_eq!(
            source.source(),
            Some(BootstrapSource::History(HistorySource::ShillerUsMonthly))
        );
        let t = serde_json::json!({"type": "student_t", "dof": 5.0, "history": null, "returns": null, "block_length": null});
        assert_eq!(
            serde_json::from_value::<ReturnModelInput>(t).unwrap(),
            ReturnModelInput::StudentT { dof: 5.0 }
        );
    }

    fn pct(x: f64) -> serde_json::Value {
        serde_json::json!({"p1": x, "p5": x, "p10": x, "p25": x, "p50": x, "p75": x, "p90": x, "p95": x, "p99": x})
    }

    #[test]
    fn reads_results_stored_before_engine_0_5_with_unknown_intervals() {
        let stored = serde_json::json!({
            "seed": 7, "engine_version": "mc-engine/0.4.0", "paths": 10, "steps": 12,
            "terminal": {"mean": 1.0, "std_dev": 0.1, "std_error": 0.01, "percentiles": pct(1.0),
                         "histogram": {"edges": [0.5, 1.5], "counts": [10]}},
            "risk": {"probability_of_loss": 0.1, "probability_of_ruin": 0.0, "success_rate": 1.0,
                     "var_95": 0.1, "cvar_95": 0.2, "var_99": 0.2, "cvar_99": 0.3,
                     "max_drawdown_p50": 0.1, "max_drawdown_p95": 0.2, "cagr": pct(0.05)},
            "yearly": [{"year": 1, "mean": 1.0, "percentiles": pct(1.0)}]
        });
        let out: SimulationOutput = serde_json::from_value(stored).unwrap();
        assert_eq!(out.result.engine_version, "mc-engine/0.4.0");
        assert!(!out.result.terminal.mean_interval.is_known());
        assert!(!out.result.risk.cvar_99_interval.is_known());
        assert!(!out.result.yearly[0].percentile_intervals.p50.is_known());
        assert_eq!(
            out.result.interval_method,
            engine::IntervalMethod::OrderStatistics
        );
        assert!(out.result.real.is_none() && out.precision.is_none());
    }

    #[test]
    fn unbounded_figures_survive_the_json_round_trip() {
        // JSON has no infinity: an unbounded interval is stored as null and read back unknown.
        let spec = engine::SimulationSpec {
            assets: vec![engine::Asset {
                weight: 1.0,
                drift: 0.05,
                volatility: 0.2,
            }],
            correlation: vec![vec![1.0]],
            paths: 3,
            horizon_years: 1,
            ..Default::default()
        };
        let mut result = engine::Simulation::new(spec).unwrap().run();
        result.terminal.mean_interval.upper = f64::INFINITY;
        let out = SimulationOutput {
            result,
            precision: Some(PrecisionReport {
                goals: vec![],
                achieved: vec![f64::INFINITY],
                stop_reason: engine::StopReason::PathCap,
                rounds: 1,
            }),
            withdrawal_rates: None,
        };
        let json = serde_json::to_value(&out).unwrap();
        assert!(json["terminal"]["mean_interval"]["upper"].is_null());
        let back: SimulationOutput = serde_json::from_value(json).unwrap();
        assert!(!back.result.terminal.mean_interval.is_known());
        assert!(back.precision.unwrap().achieved[0].is_nan());
        assert_eq!(
            back.result.terminal.percentiles,
            out.result.terminal.percentiles
        );
    }
}
