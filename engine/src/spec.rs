//! Simulation inputs, limits and validation.

// Index loops over lanes/assets mirror the formulas and vectorise well.
#![allow(clippy::needless_range_loop)]

use crate::SpecError;
use crate::linalg::cholesky_psd;

/// Maximum number of assets in one simulation.
pub const MAX_ASSETS: usize = 50;
/// Maximum horizon in years.
pub const MAX_HORIZON_YEARS: u32 = 100;
/// Maximum number of histogram bins.
pub const MAX_HISTOGRAM_BINS: u32 = 10_000;
/// Maximum `paths × horizon_years`: the engine keeps one `f64` per path and
/// year end (for the fan-chart bands), i.e. at most 400 MB.
pub const MAX_STORED_VALUES: u64 = 50_000_000;
/// Largest accepted |annualised drift| (decimal, 1.0 = 100 % a year).
pub const MAX_ABS_DRIFT: f64 = 1.0;
/// Largest accepted annualised volatility (decimal, 2.0 = 200 % a year).
pub const MAX_VOLATILITY: f64 = 2.0;
/// Largest accepted initial value and |cash-flow amount| (currency units).
pub const MAX_AMOUNT: f64 = 1e15;

/// One asset of the portfolio.
///
/// Units: `weight` is a fraction of the portfolio (decimal, the weights sum
/// to 1); `drift` μ and `volatility` σ are annualised decimals
/// (0.07 = 7 % a year) of the asset's GBM; they are ignored by the
/// bootstrap model (but still validated).
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// Target weight in `[0, 1]`; all weights sum to 1 (±1e-9).
    pub weight: f64,
    /// Annualised drift μ (decimal), `|μ| ≤ MAX_ABS_DRIFT`.
    pub drift: f64,
    /// Annualised volatility σ (decimal), `0 ≤ σ ≤ MAX_VOLATILITY`.
    pub volatility: f64,
}

/// How per-step asset returns are generated.
#[derive(Debug, Clone, PartialEq)]
pub enum ReturnModel {
    /// Correlated geometric Brownian motion with normal shocks.
    Gbm,
    /// Multivariate Student-t shocks: `y = L z · √((ν−2)/W)`, `W ~ χ²_ν`
    /// (one `W` per path and step, so all assets share it), scaled to unit
    /// variance; ν > 2.
    StudentT {
        /// Degrees of freedom ν > 2.
        dof: f64,
    },
    /// Resample historical periodic returns (one row per step).
    Bootstrap {
        /// periods × assets matrix of simple periodic returns (decimal,
        /// ≥ −1); one period must correspond to one simulation step.
        returns: Vec<Vec<f64>>,
        /// Block length in periods (1 = i.i.d. rows); blocks wrap around the
        /// end of the history (circular block bootstrap).
        block_length: usize,
    },
}

/// When holdings are reset to the target weights.
///
/// Calendar frequencies map to step intervals: `Monthly` = every
/// `max(1, round(steps_per_year / 12))` steps, `Quarterly` = every
/// `max(1, round(steps_per_year / 4))`, `Annually` = every `steps_per_year`
/// steps. With 252 steps a year this is 21 and 63 steps exactly; with fewer
/// steps than months (e.g. annual steps) `Monthly` rebalances every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebalancing {
    /// Buy and hold: holdings drift with returns.
    Never,
    /// After every step.
    EveryStep,
    /// Calendar monthly (see the type docs for the step mapping).
    Monthly,
    /// Calendar quarterly.
    Quarterly,
    /// Once a year.
    Annually,
    /// Every `n ≥ 1` steps.
    EveryNSteps(u32),
}

/// How often a cash flow occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CashFlowFrequency {
    /// At the end of every step.
    EveryStep,
    /// At the end of every year (after the year's last step).
    Annually,
}

/// A periodic contribution (> 0) or withdrawal (< 0).
///
/// An occurrence in year `y` (0-based: the first year is 0) has the amount
/// `amount · (1 + annual_growth)^y`. Contributions are invested at the target
/// weights; withdrawals sell every holding pro rata. A withdrawal that would
/// take the value to or below zero ruins the path: its value is 0 from then
/// on, and later cash flows are not applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CashFlow {
    /// Currency units per occurrence; > 0 contribution, < 0 withdrawal.
    pub amount: f64,
    /// When the flow occurs.
    pub frequency: CashFlowFrequency,
    /// Annual growth of the amount (decimal, e.g. inflation 0.02), > −1.
    pub annual_growth: f64,
}

/// Everything a simulation needs. Validate it with [`crate::Simulation::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationSpec {
    /// Assets (1..=MAX_ASSETS).
    pub assets: Vec<Asset>,
    /// Correlation matrix of the shocks, assets × assets, symmetric, unit
    /// diagonal, PSD (validated even for the bootstrap model, which ignores it).
    pub correlation: Vec<Vec<f64>>,
    /// Initial portfolio value V₀ (currency units, > 0).
    pub initial_value: f64,
    /// Horizon T in whole years (1..=MAX_HORIZON_YEARS).
    pub horizon_years: u32,
    /// Steps per year (1..=252); Δ = 1 / steps_per_year years.
    pub steps_per_year: u32,
    /// Number of simulated paths (≥ 1, ≤ Limits::max_paths).
    pub paths: u64,
    /// Seed of the run; the result is a pure function of the spec.
    pub seed: u64,
    /// Return model.
    pub model: ReturnModel,
    /// Rebalancing policy.
    pub rebalancing: Rebalancing,
    /// Optional periodic cash flow.
    pub cash_flow: Option<CashFlow>,
    /// Use antithetic variates (paths in pairs `z`, `−z`); not for bootstrap.
    pub antithetic: bool,
    /// Number of equal-width bins of the terminal-value histogram.
    pub histogram_bins: u32,
}

impl Default for SimulationSpec {
    /// A starting point for struct-update syntax
    /// (`SimulationSpec { assets, correlation, ..Default::default() }`):
    /// **no assets** (invalid until `assets` and `correlation` are set),
    /// initial value 100 000, 30 years of monthly steps, 10 000 paths,
    /// seed 0, GBM, no rebalancing, no cash flow, no antithetics, 50
    /// histogram bins; every optional feature off.
    fn default() -> Self {
        SimulationSpec {
            assets: Vec::new(),
            correlation: Vec::new(),
            initial_value: 100_000.0,
            horizon_years: 30,
            steps_per_year: 12,
            paths: 10_000,
            seed: 0,
            model: ReturnModel::Gbm,
            rebalancing: Rebalancing::Never,
            cash_flow: None,
            antithetic: false,
            histogram_bins: 50,
        }
    }
}

/// Resource caps applied by [`crate::Simulation::with_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of paths.
    pub max_paths: u64,
    /// Maximum `paths × assets × total steps`.
    pub max_work: u64,
}

impl Default for Limits {
    /// 10 000 000 paths and 5·10¹⁰ asset-steps (minutes of CPU at most).
    fn default() -> Self {
        Limits {
            max_paths: 10_000_000,
            max_work: 50_000_000_000,
        }
    }
}

/// Internal, validated and pre-computed form of the return model.
#[derive(Debug, Clone)]
pub(crate) enum Model {
    Gbm,
    StudentT {
        dof: f64,
    },
    Bootstrap {
        /// periods × assets growth factors `1 + r`, row-major.
        growth: Vec<f64>,
        periods: usize,
        block_length: usize,
    },
}

/// The validated simulation, ready to run.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub(crate) spec: SimulationSpec,
    pub(crate) n_assets: usize,
    pub(crate) weights: Vec<f64>,
    /// Per-step log drift `(μᵢ − σᵢ²/2) Δ`.
    pub(crate) log_drift: Vec<f64>,
    /// `σᵢ √Δ · L[i][j]`, row-major n × n lower triangle.
    pub(crate) shock_matrix: Vec<f64>,
    pub(crate) model: Model,
    /// Rebalancing interval in steps (`None` = never).
    pub(crate) rebalance_every: Option<u32>,
    /// Cash flow per step (0 where none), length = total steps.
    pub(crate) flows: Vec<f64>,
    pub(crate) has_flows: bool,
    pub(crate) total_steps: u64,
}

fn finite(field: impl Into<String>, value: f64) -> Result<f64, SpecError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(SpecError::NotFinite {
            field: field.into(),
            value,
        })
    }
}

fn in_range(
    field: impl Into<String>,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), SpecError> {
    if ok {
        Ok(())
    } else {
        Err(SpecError::OutOfRange {
            field: field.into(),
            expected,
            value,
        })
    }
}

/// Steps between rebalancing dates, `None` for never.
pub(crate) fn rebalance_interval(r: Rebalancing, steps_per_year: u32) -> Option<u32> {
    let per = |parts: f64| ((steps_per_year as f64 / parts).round() as u32).max(1);
    match r {
        Rebalancing::Never => None,
        Rebalancing::EveryStep => Some(1),
        Rebalancing::Monthly => Some(per(12.0)),
        Rebalancing::Quarterly => Some(per(4.0)),
        Rebalancing::Annually => Some(steps_per_year.max(1)),
        Rebalancing::EveryNSteps(n) => Some(n),
    }
}

impl Simulation {
    /// Validates `spec` against [`Limits::default`].
    ///
    /// # Errors
    /// A [`SpecError`] naming the first offending field; see
    /// [`Simulation::with_limits`] for the rules.
    ///
    /// # Examples
    /// ```
    /// use engine::*;
    /// let spec = SimulationSpec {
    ///     assets: vec![Asset { weight: 1.0, drift: 0.06, volatility: 0.15 }],
    ///     correlation: vec![vec![1.0]],
    ///     initial_value: 10_000.0,
    ///     horizon_years: 10,
    ///     steps_per_year: 12,
    ///     paths: 2_000,
    ///     seed: 42,
    ///     model: ReturnModel::Gbm,
    ///     rebalancing: Rebalancing::Never,
    ///     cash_flow: None,
    ///     antithetic: false,
    ///     histogram_bins: 20,
    /// };
    /// let result = Simulation::new(spec)?.run();
    /// assert_eq!(result.yearly.len(), 10);
    /// assert!(result.terminal.percentiles.p5 < result.terminal.percentiles.p95);
    /// # Ok::<(), engine::SpecError>(())
    /// ```
    pub fn new(spec: SimulationSpec) -> Result<Simulation, SpecError> {
        Self::with_limits(spec, &Limits::default())
    }

    /// Validates `spec` against explicit resource `limits`.
    ///
    /// # Errors
    /// Rules, checked in this order (first failure wins):
    /// * `assets`: 1..=[`MAX_ASSETS`] entries; each `weight`, `drift`,
    ///   `volatility` finite; weight ≥ 0; |drift| ≤ [`MAX_ABS_DRIFT`];
    ///   0 ≤ volatility ≤ [`MAX_VOLATILITY`]; weights sum to 1 ± 1e-9.
    /// * `correlation`: assets × assets; finite entries in [−1, 1]; unit
    ///   diagonal (±1e-9); symmetric (±1e-9); positive semi-definite
    ///   (Cholesky pivots ≥ −1e-10, zero pivots need zero residuals).
    /// * `initial_value` finite, in (0, [`MAX_AMOUNT`]]; `horizon_years` in
    ///   1..=[`MAX_HORIZON_YEARS`]; `steps_per_year` in 1..=252;
    ///   `histogram_bins` in 1..=[`MAX_HISTOGRAM_BINS`].
    /// * `paths` ≥ 1 and ≤ `limits.max_paths`; paths × assets × steps ≤
    ///   `limits.max_work`; paths × horizon_years ≤ [`MAX_STORED_VALUES`].
    /// * `model.dof` finite and > 2; `model.returns` non-empty, one finite
    ///   entry in [−1, 1e6] per asset in each row; `model.block_length` in
    ///   1..=periods; `antithetic` not with bootstrap.
    /// * `rebalancing`: `EveryNSteps(n)` needs n ≥ 1.
    /// * `cash_flow.amount` finite with |amount| ≤ [`MAX_AMOUNT`];
    ///   `cash_flow.annual_growth` finite, in (−1, 1].
    pub fn with_limits(spec: SimulationSpec, limits: &Limits) -> Result<Simulation, SpecError> {
        let n = spec.assets.len();
        if n == 0 {
            return Err(SpecError::NoAssets);
        }
        if n > MAX_ASSETS {
            return Err(SpecError::TooManyAssets {
                count: n,
                max: MAX_ASSETS,
            });
        }
        let mut sum = 0.0;
        for (i, a) in spec.assets.iter().enumerate() {
            let w = finite(format!("assets[{i}].weight"), a.weight)?;
            let mu = finite(format!("assets[{i}].drift"), a.drift)?;
            let sigma = finite(format!("assets[{i}].volatility"), a.volatility)?;
            if w < 0.0 {
                return Err(SpecError::NegativeWeight {
                    field: format!("assets[{i}].weight"),
                    value: w,
                });
            }
            in_range(
                format!("assets[{i}].drift"),
                mu,
                mu.abs() <= MAX_ABS_DRIFT,
                "in [-1, 1] (annualised decimal)",
            )?;
            in_range(
                format!("assets[{i}].volatility"),
                sigma,
                (0.0..=MAX_VOLATILITY).contains(&sigma),
                "in [0, 2] (annualised decimal)",
            )?;
            sum += w;
        }
        if (sum - 1.0).abs() > 1e-9 {
            return Err(SpecError::WeightsDoNotSumToOne { sum });
        }

        // Correlation matrix.
        let c = &spec.correlation;
        if c.len() != n {
            return Err(SpecError::CorrelationShape {
                field: "correlation".into(),
                expected: n,
                found: c.len(),
            });
        }
        for (i, row) in c.iter().enumerate() {
            if row.len() != n {
                return Err(SpecError::CorrelationShape {
                    field: format!("correlation[{i}]"),
                    expected: n,
                    found: row.len(),
                });
            }
            for (j, &v) in row.iter().enumerate() {
                finite(format!("correlation[{i}][{j}]"), v)?;
                if !(-1.0..=1.0).contains(&v) {
                    return Err(SpecError::CorrelationOutOfRange {
                        field: format!("correlation[{i}][{j}]"),
                        row: i,
                        col: j,
                        value: v,
                    });
                }
            }
        }
        for i in 0..n {
            if (c[i][i] - 1.0).abs() > 1e-9 {
                return Err(SpecError::CorrelationDiagonal {
                    field: format!("correlation[{i}][{i}]"),
                    index: i,
                    value: c[i][i],
                });
            }
            for j in 0..i {
                if (c[i][j] - c[j][i]).abs() > 1e-9 {
                    return Err(SpecError::CorrelationNotSymmetric {
                        field: format!("correlation[{i}][{j}]"),
                        row: i,
                        col: j,
                        value: c[i][j],
                        transposed: c[j][i],
                    });
                }
            }
        }
        // Factorise the symmetrised matrix with an exact unit diagonal.
        let sym: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if i == j {
                            1.0
                        } else {
                            0.5 * (c[i][j] + c[j][i])
                        }
                    })
                    .collect()
            })
            .collect();
        let chol = cholesky_psd(&sym)?;

        let v0 = finite("initial_value", spec.initial_value)?;
        in_range(
            "initial_value",
            v0,
            v0 > 0.0 && v0 <= MAX_AMOUNT,
            "> 0 and <= 1e15",
        )?;
        if spec.horizon_years == 0 || spec.horizon_years > MAX_HORIZON_YEARS {
            return Err(SpecError::InvalidHorizon {
                value: spec.horizon_years,
                max: MAX_HORIZON_YEARS,
            });
        }
        if spec.steps_per_year == 0 || spec.steps_per_year > 252 {
            return Err(SpecError::InvalidStepsPerYear {
                value: spec.steps_per_year,
            });
        }
        if spec.histogram_bins == 0 || spec.histogram_bins > MAX_HISTOGRAM_BINS {
            return Err(SpecError::InvalidHistogramBins {
                value: spec.histogram_bins,
                max: MAX_HISTOGRAM_BINS,
            });
        }
        if spec.paths == 0 {
            return Err(SpecError::NoPaths);
        }
        if spec.paths > limits.max_paths {
            return Err(SpecError::TooManyPaths {
                paths: spec.paths,
                max: limits.max_paths,
            });
        }
        let total_steps = spec.horizon_years as u64 * spec.steps_per_year as u64;
        let work = spec
            .paths
            .saturating_mul(n as u64)
            .saturating_mul(total_steps);
        if work > limits.max_work {
            return Err(SpecError::TooMuchWork {
                work,
                max: limits.max_work,
            });
        }
        let stored = spec.paths.saturating_mul(spec.horizon_years as u64);
        if stored > MAX_STORED_VALUES {
            return Err(SpecError::TooMuchMemory {
                values: stored,
                max: MAX_STORED_VALUES,
            });
        }

        let model = match &spec.model {
            ReturnModel::Gbm => Model::Gbm,
            ReturnModel::StudentT { dof } => {
                if !(dof.is_finite() && *dof > 2.0) {
                    return Err(SpecError::InvalidDof { value: *dof });
                }
                Model::StudentT { dof: *dof }
            }
            ReturnModel::Bootstrap {
                returns,
                block_length,
            } => {
                if returns.is_empty() {
                    return Err(SpecError::EmptyReturns);
                }
                let mut growth = Vec::with_capacity(returns.len() * n);
                for (r, row) in returns.iter().enumerate() {
                    if row.len() != n {
                        return Err(SpecError::ReturnsRowLength {
                            field: format!("model.returns[{r}]"),
                            row: r,
                            expected: n,
                            found: row.len(),
                        });
                    }
                    for (col, &v) in row.iter().enumerate() {
                        if !(-1.0..=1e6).contains(&v) {
                            return Err(SpecError::InvalidReturn {
                                field: format!("model.returns[{r}][{col}]"),
                                row: r,
                                col,
                                value: v,
                            });
                        }
                        growth.push(1.0 + v);
                    }
                }
                if *block_length == 0 || *block_length > returns.len() {
                    return Err(SpecError::InvalidBlockLength {
                        value: *block_length,
                        periods: returns.len(),
                    });
                }
                if spec.antithetic {
                    return Err(SpecError::AntitheticNotSupported);
                }
                Model::Bootstrap {
                    growth,
                    periods: returns.len(),
                    block_length: *block_length,
                }
            }
        };

        if let Rebalancing::EveryNSteps(0) = spec.rebalancing {
            return Err(SpecError::InvalidRebalancingInterval { value: 0 });
        }
        let rebalance_every = rebalance_interval(spec.rebalancing, spec.steps_per_year);

        let mut flows = Vec::new();
        let mut has_flows = false;
        if let Some(cf) = spec.cash_flow {
            let amount = finite("cash_flow.amount", cf.amount)?;
            in_range(
                "cash_flow.amount",
                amount,
                amount.abs() <= MAX_AMOUNT,
                "within ±1e15",
            )?;
            let g = finite("cash_flow.annual_growth", cf.annual_growth)?;
            in_range(
                "cash_flow.annual_growth",
                g,
                g > -1.0 && g <= 1.0,
                "in (-1, 1] (decimal)",
            )?;
            if amount != 0.0 {
                has_flows = true;
                let spy = spec.steps_per_year as u64;
                flows = (0..total_steps)
                    .map(|s| {
                        let year = (s / spy) as i32;
                        let occurs = match cf.frequency {
                            CashFlowFrequency::EveryStep => true,
                            CashFlowFrequency::Annually => (s + 1) % spy == 0,
                        };
                        if occurs {
                            // libm: the same bits on every platform
                            // (`powi`'s precision is unspecified).
                            amount * libm::pow(1.0 + g, f64::from(year))
                        } else {
                            0.0
                        }
                    })
                    .collect();
            }
        }

        let dt = 1.0 / spec.steps_per_year as f64;
        let sqrt_dt = dt.sqrt();
        let weights: Vec<f64> = spec.assets.iter().map(|a| a.weight).collect();
        let log_drift = spec
            .assets
            .iter()
            .map(|a| (a.drift - 0.5 * a.volatility * a.volatility) * dt)
            .collect();
        let mut shock_matrix = chol;
        for i in 0..n {
            let b = spec.assets[i].volatility * sqrt_dt;
            for j in 0..n {
                shock_matrix[i * n + j] *= b;
            }
        }

        Ok(Simulation {
            n_assets: n,
            weights,
            log_drift,
            shock_matrix,
            model,
            rebalance_every,
            flows,
            has_flows,
            total_steps,
            spec,
        })
    }

    /// Work of the run: paths × assets × total steps (asset-steps).
    ///
    /// # Examples
    /// ```
    /// # use engine::*;
    /// # let spec = SimulationSpec { assets: vec![Asset { weight: 1.0, drift: 0.0, volatility: 0.1 }],
    /// #   correlation: vec![vec![1.0]], initial_value: 1.0, horizon_years: 2, steps_per_year: 12,
    /// #   paths: 100, seed: 1, model: ReturnModel::Gbm, rebalancing: Rebalancing::Never,
    /// #   cash_flow: None, antithetic: false, histogram_bins: 10 };
    /// assert_eq!(Simulation::new(spec)?.work(), 100 * 1 * 24);
    /// # Ok::<(), engine::SpecError>(())
    /// ```
    pub fn work(&self) -> u64 {
        self.spec.paths * self.n_assets as u64 * self.total_steps
    }

    /// The validated spec.
    pub fn spec(&self) -> &SimulationSpec {
        &self.spec
    }

    /// Sum of all scheduled cash flows (currency units; withdrawals negative).
    /// Losses are measured against `initial_value + net_contributions()`.
    pub fn net_contributions(&self) -> f64 {
        self.flows.iter().sum()
    }
}
