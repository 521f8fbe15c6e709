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
}

/// Rows stored before the model was an enum hold `"model": null` for the default.
fn model_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ReturnModelInput, D::Error> {
    Ok(Option::<ReturnModelInput>::deserialize(d)?.unwrap_or_default())
}

/// P1 … P99 (Hyndman–Fan type 7).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PercentilesOutput {
    pub p1: f64,
    pub p5: f64,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Equal-width histogram of terminal values: bin k covers `[edges[k], edges[k+1])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramOutput {
    /// `bins + 1` edges, currency units.
    pub edges: Vec<f64>,
    /// `bins` path counts.
    pub counts: Vec<u64>,
}

/// Terminal value statistics, currency units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalOutput {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std_dev: f64,
    /// Standard error of the mean.
    pub std_error: f64,
    /// Percentiles.
    pub percentiles: PercentilesOutput,
    /// Histogram.
    pub histogram: HistogramOutput,
}

/// Risk measures of the horizon (see the engine's `RiskStats` for the definitions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskOutput {
    /// Fraction of paths ending below initial value plus net contributions.
    pub probability_of_loss: f64,
    /// Fraction of paths that reached zero.
    pub probability_of_ruin: f64,
    /// 1 − probability of ruin.
    pub success_rate: f64,
    /// 95 % value at risk, loss fraction of the initial value.
    pub var_95: f64,
    /// 95 % CVaR (expected shortfall).
    pub cvar_95: f64,
    /// 99 % value at risk.
    pub var_99: f64,
    /// 99 % CVaR (expected shortfall).
    pub cvar_99: f64,
    /// Median maximum drawdown, fraction.
    pub max_drawdown_p50: f64,
    /// 95th percentile of the maximum drawdown.
    pub max_drawdown_p95: f64,
    /// Percentiles of the compound annual growth rate, decimal per year.
    pub cagr: PercentilesOutput,
}

/// Percentile band at a year end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct YearBandOutput {
    /// Year (1 … horizon).
    pub year: u32,
    /// Mean value.
    pub mean: f64,
    /// Percentiles of the value.
    pub percentiles: PercentilesOutput,
}

/// What the engine produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationOutput {
    /// Seed used.
    pub seed: u64,
    /// Engine version that produced it (`mc-engine/<version>`).
    pub engine_version: String,
    /// Paths simulated.
    pub paths: u64,
    /// Steps per path.
    pub steps: u64,
    /// Terminal value statistics.
    pub terminal: TerminalOutput,
    /// Risk measures.
    pub risk: RiskOutput,
    /// One band per year end.
    pub yearly: Vec<YearBandOutput>,
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
}
