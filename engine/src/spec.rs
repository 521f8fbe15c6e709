//! Simulation inputs, limits and validation.

// Index loops over lanes/assets mirror the formulas and vectorise well.
#![allow(clippy::needless_range_loop)]

use crate::SpecError;
use crate::linalg::cholesky_psd;
use crate::planning::{GlidePath, Inflation, WithdrawalStrategy};
use crate::qmc::{MAX_QMC_DIMENSIONS, QmcFactor, QmcPlan, mixing_matrix};

/// Maximum number of assets in one simulation.
pub const MAX_ASSETS: usize = 50;
/// Maximum horizon in years.
pub const MAX_HORIZON_YEARS: u32 = 100;
/// Maximum number of histogram bins.
pub const MAX_HISTOGRAM_BINS: u32 = 10_000;
/// Maximum `paths × horizon_years × series`: the engine keeps one `f64` per
/// path, year end and tracked series (the value; the price index with an
/// inflation model; the withdrawal with a withdrawal strategy), i.e. at
/// most 400 MB.
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
    /// Every historical start as a deterministic sequence (cFIREsim's
    /// method): path `k` (a *cohort*) follows rows `k·start_stride,
    /// k·start_stride + 1, …` of `returns` in order, one row per step, with
    /// no wrap-around. There are `⌊(periods − steps) / start_stride⌋ + 1`
    /// cohorts (every start with a full horizon of history); `paths` is
    /// ignored and the result's `paths` is the number of cohorts. No random
    /// numbers are drawn (`seed` is unused). With
    /// [`crate::history::History::returns_matrix`] and `start_stride = 12`,
    /// cohort `k` starts in January of year 1871 + k.
    HistoricalCohorts {
        /// periods × assets matrix of simple periodic returns (decimal,
        /// ≥ −1), one period per step.
        returns: Vec<Vec<f64>>,
        /// Periods between consecutive cohort starts (≥ 1; 12 = yearly with
        /// monthly data).
        start_stride: usize,
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
    /// Annual expense ratio per asset (decimal, 0.001 = 0.1 % a year, in
    /// `[0, 1)`), charged every step as the factor `(1 − e)^Δ` on the
    /// asset's growth (so a full year charges exactly `e`). Empty = no
    /// fees; otherwise one entry per asset.
    pub expense_ratios: Vec<f64>,
    /// Target weights changing over the horizon (`None`: the assets'
    /// weights throughout).
    pub glide_path: Option<GlidePath>,
    /// Withdrawal strategy (annual, at the start of each year; see
    /// [`WithdrawalStrategy`]). May be combined with `cash_flow`.
    pub withdrawal: Option<WithdrawalStrategy>,
    /// Price-index model for real (today's money) outputs and
    /// inflation-adjusted withdrawals.
    pub inflation: Inflation,
    /// Confidence level of every reported interval, in `(0, 1)` (default
    /// 0.95).
    pub confidence_level: f64,
    /// Pseudo-random or randomised quasi-Monte Carlo sampling.
    pub sampling: Sampling,
    /// Control variates for the terminal mean and percentiles (GBM and
    /// Student-t models; see [`SimulationResult`](crate::SimulationResult)).
    pub control_variate: bool,
}

/// How the random shocks are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sampling {
    /// Pseudo-random numbers (PCG-64 streams per chunk, ziggurat normals).
    #[default]
    PseudoRandom,
    /// Randomised quasi-Monte Carlo (GBM and Student-t models): Sobol
    /// points (Joe & Kuo 2008 direction numbers), Owen-scrambled (nested
    /// uniform scrambling in Burley's 2020 hashed form), normals by the
    /// inverse normal CDF, paths built by a Brownian bridge so the first
    /// coordinates carry most of the variance, the first factor being the
    /// portfolio's own return; the bridge's first (about yearly) points
    /// come from the Sobol points, the rest are pseudo-random (still
    /// unbiased). `scramblings` independent
    /// scramblings run interleaved (path `p` belongs to scrambling
    /// `p mod scramblings`, point `p div scramblings` of it), and every
    /// interval comes from the spread between them. See [`crate::qmc`].
    Rqmc {
        /// Independent scramblings, 2..=1024; `paths` must be a multiple.
        scramblings: u32,
    },
}

impl Default for SimulationSpec {
    /// A starting point for struct-update syntax
    /// (`SimulationSpec { assets, correlation, ..Default::default() }`):
    /// **no assets** (invalid until `assets` and `correlation` are set),
    /// initial value 100 000, 30 years of monthly steps, 10 000 paths,
    /// seed 0, GBM, no rebalancing, no cash flow, no antithetics, 50
    /// histogram bins, 95 % intervals; every optional feature off.
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
            expense_ratios: Vec::new(),
            glide_path: None,
            withdrawal: None,
            inflation: Inflation::None,
            confidence_level: 0.95,
            sampling: Sampling::PseudoRandom,
            control_variate: false,
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
        /// periods × columns growth factors `(1 + r)` (times the fee
        /// factor), row-major; a last column `1 + inflation` with
        /// historical inflation.
        growth: Vec<f64>,
        periods: usize,
        block_length: usize,
    },
    Cohorts {
        /// As for `Bootstrap`.
        growth: Vec<f64>,
        stride: usize,
    },
}

/// Internal form of the glide path.
#[derive(Debug, Clone)]
pub(crate) enum Glide {
    Linear { end: Vec<f64> },
    Yearly { rows: Vec<Vec<f64>> },
}

/// How the price index is obtained in the kernel.
#[derive(Debug, Clone)]
pub(crate) enum Cpi {
    /// No index (1 throughout).
    None,
    /// Deterministic: the index after step `s` (`s = 0..=N`).
    Table(Vec<f64>),
    /// The last factor column of the shocks / history (`1 + inflation`).
    Factor,
}

/// Validates a row of target weights (one per asset, in [0, 1], sum 1).
fn check_weights(field: &str, w: &[f64], n: usize) -> Result<(), SpecError> {
    if w.len() != n {
        return Err(SpecError::LengthMismatch {
            field: field.into(),
            expected: n,
            found: w.len(),
        });
    }
    let mut sum = 0.0;
    for (i, &v) in w.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let v = finite(f.clone(), v)?;
        in_range(f, v, (0.0..=1.0).contains(&v), "in [0, 1]")?;
        sum += v;
    }
    if (sum - 1.0).abs() > 1e-9 {
        return Err(SpecError::GlideWeightsDoNotSumToOne {
            field: field.into(),
            sum,
        });
    }
    Ok(())
}

/// Validates a withdrawal strategy's parameters.
fn validate_withdrawal(w: &WithdrawalStrategy, years: u32) -> Result<(), SpecError> {
    let rate = |f: &str, v: f64, max_incl: bool| -> Result<(), SpecError> {
        let v = finite(f, v)?;
        let ok = v >= 0.0 && if max_incl { v <= 1.0 } else { v < 1.0 };
        in_range(
            f,
            v,
            ok,
            if max_incl {
                "in [0, 1] (decimal)"
            } else {
                "in [0, 1) (decimal)"
            },
        )
    };
    match w {
        WithdrawalStrategy::ConstantAmount { initial_rate } => {
            rate("withdrawal.initial_rate", *initial_rate, true)
        }
        WithdrawalStrategy::ConstantPercentage { rate: r } => rate("withdrawal.rate", *r, false),
        WithdrawalStrategy::Guardrails(g) => {
            rate("withdrawal.initial_rate", g.initial_rate, true)?;
            let up = finite("withdrawal.upper", g.upper)?;
            in_range(
                "withdrawal.upper",
                up,
                (0.0..=10.0).contains(&up),
                "in [0, 10] (fraction of the initial rate)",
            )?;
            rate("withdrawal.lower", g.lower, true)?;
            rate("withdrawal.adjustment", g.adjustment, false)
        }
        WithdrawalStrategy::FloorCeiling {
            rate: r,
            floor,
            ceiling,
        } => {
            rate("withdrawal.rate", *r, false)?;
            rate("withdrawal.floor", *floor, true)?;
            let c = finite("withdrawal.ceiling", *ceiling)?;
            in_range(
                "withdrawal.ceiling",
                c,
                (1.0..=1e6).contains(&c),
                ">= 1 (multiple of the initial withdrawal)",
            )
        }
        WithdrawalStrategy::Vpw { rates } => {
            if rates.len() < years as usize {
                return Err(SpecError::LengthMismatch {
                    field: "withdrawal.rates".into(),
                    expected: years as usize,
                    found: rates.len(),
                });
            }
            for (y, &r) in rates.iter().enumerate() {
                rate(&format!("withdrawal.rates[{y}]"), r, true)?;
            }
            Ok(())
        }
    }
}

/// periods × columns growth table of a historical model (see
/// [`Model::Bootstrap`]).
fn growth_table(
    returns: &[Vec<f64>],
    n: usize,
    fee_factor: &[f64],
    inflation: &Inflation,
) -> Result<Vec<f64>, SpecError> {
    if returns.is_empty() {
        return Err(SpecError::EmptyReturns);
    }
    let infl = match inflation {
        Inflation::Historical { rates } => Some(rates),
        _ => None,
    };
    let cols = n + usize::from(infl.is_some());
    let mut growth = Vec::with_capacity(returns.len() * cols);
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
            let g = 1.0 + v;
            growth.push(if fee_factor[col] == 1.0 {
                g
            } else {
                g * fee_factor[col]
            });
        }
        if let Some(rates) = infl {
            growth.push(1.0 + rates[r]);
        }
    }
    Ok(growth)
}

/// The validated simulation, ready to run.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub(crate) spec: SimulationSpec,
    pub(crate) n_assets: usize,
    pub(crate) weights: Vec<f64>,
    /// Per-step log drift `(μᵢ − σᵢ²/2) Δ`.
    pub(crate) log_drift: Vec<f64>,
    /// `σᵢ √Δ · L[i][j]`, row-major nf × nf lower triangle (nf =
    /// `n_factors`).
    pub(crate) shock_matrix: Vec<f64>,
    pub(crate) model: Model,
    /// Rebalancing interval in steps (`None` = never).
    pub(crate) rebalance_every: Option<u32>,
    /// Cash flow per step (0 where none), length = total steps.
    pub(crate) flows: Vec<f64>,
    pub(crate) has_flows: bool,
    pub(crate) total_steps: u64,
    /// Shock factors: the assets, plus one for stochastic inflation.
    pub(crate) n_factors: usize,
    /// Columns of a historical growth table (assets, plus historical CPI).
    pub(crate) hist_cols: usize,
    /// Paths simulated (`spec.paths`, or the number of cohorts).
    pub(crate) paths: u64,
    pub(crate) glide: Option<Glide>,
    pub(crate) cpi: Cpi,
    /// Normal quantile of the two-sided confidence level.
    pub(crate) z: f64,
    pub(crate) qmc: Option<QmcPlan>,
    /// Control variate requested (and available).
    pub(crate) cv: bool,
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
    ///     ..Default::default()
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
    /// * `model.start_stride` ≥ 1 and `model.returns` at least as long as
    ///   the horizon in steps (historical cohorts; `paths` is then the
    ///   number of cohorts and is what the path/work/memory caps check).
    ///   Memory counts `paths × horizon_years × (1 + inflation tracked +
    ///   withdrawals tracked)`.
    /// * `expense_ratios`: empty or one finite entry in [0, 1) per asset.
    /// * `inflation`: `rate` in (−1, 1]; `drift` |·| ≤ 1, `volatility` in
    ///   [0, 2], one `correlation` in [−1, 1] per asset with a PSD extended
    ///   matrix, GBM/Student-t only; historical `rates` one per history row
    ///   (> −1), bootstrap/cohort models only.
    /// * `glide_path`: rows of one weight in [0, 1] per asset summing to 1
    ///   (±1e-9); a yearly schedule needs at least one row.
    /// * `withdrawal`: rates in [0, 1] (`ConstantPercentage`, `FloorCeiling`
    ///   rates in [0, 1)); guardrail `upper` in [0, 10], `lower` in [0, 1],
    ///   `adjustment` in [0, 1); floor in [0, 1], ceiling ≥ 1; VPW at least
    ///   `horizon_years` rates.
    /// * `confidence_level` in (0, 1).
    /// * `sampling: Rqmc`: GBM/Student-t only, not with `antithetic`,
    ///   `scramblings` in 2..=1024 dividing `paths`, factors × steps ≤
    ///   [`crate::qmc::MAX_QMC_DIMENSIONS`].
    /// * `control_variate`: GBM/Student-t only.
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
        let total_steps = spec.horizon_years as u64 * spec.steps_per_year as u64;
        // Historical cohorts: one path per start with a full horizon.
        let paths = match &spec.model {
            ReturnModel::HistoricalCohorts {
                returns,
                start_stride,
            } => {
                if *start_stride == 0 {
                    return Err(SpecError::InvalidStartStride);
                }
                let periods = returns.len() as u64;
                if periods < total_steps {
                    return Err(SpecError::NotEnoughHistory {
                        periods: returns.len(),
                        steps: total_steps,
                    });
                }
                (periods - total_steps) / *start_stride as u64 + 1
            }
            _ => spec.paths,
        };
        if paths == 0 {
            return Err(SpecError::NoPaths);
        }
        if paths > limits.max_paths {
            return Err(SpecError::TooManyPaths {
                paths,
                max: limits.max_paths,
            });
        }
        let work = paths.saturating_mul(n as u64).saturating_mul(total_steps);
        if work > limits.max_work {
            return Err(SpecError::TooMuchWork {
                work,
                max: limits.max_work,
            });
        }
        // Year-end values, plus the price index and the withdrawals when
        // they are tracked.
        let per_year = 1
            + u64::from(!matches!(spec.inflation, Inflation::None))
            + u64::from(spec.withdrawal.is_some());
        let stored = paths
            .saturating_mul(spec.horizon_years as u64)
            .saturating_mul(per_year);
        if stored > MAX_STORED_VALUES {
            return Err(SpecError::TooMuchMemory {
                values: stored,
                max: MAX_STORED_VALUES,
            });
        }

        let dt = 1.0 / spec.steps_per_year as f64;

        // Expense ratios: per-step log factor `Δ · ln(1 − e)`.
        let mut log_fee = vec![0.0; n];
        if !spec.expense_ratios.is_empty() {
            if spec.expense_ratios.len() != n {
                return Err(SpecError::LengthMismatch {
                    field: "expense_ratios".into(),
                    expected: n,
                    found: spec.expense_ratios.len(),
                });
            }
            for (i, &e) in spec.expense_ratios.iter().enumerate() {
                let f = format!("expense_ratios[{i}]");
                let e = finite(f.clone(), e)?;
                in_range(f, e, (0.0..1.0).contains(&e), "in [0, 1) (annual decimal)")?;
                if e != 0.0 {
                    // libm: the same bits on every platform.
                    log_fee[i] = dt * libm::log1p(-e);
                }
            }
        }
        // Growth factor `(1 − e)^Δ` applied to historical returns.
        let fee_factor: Vec<f64> = log_fee
            .iter()
            .map(|&l| if l == 0.0 { 1.0 } else { libm::exp(l) })
            .collect();

        // Inflation: validated here, wired in below once the model is known.
        let historical_model = matches!(
            spec.model,
            ReturnModel::Bootstrap { .. } | ReturnModel::HistoricalCohorts { .. }
        );
        match &spec.inflation {
            Inflation::None => {}
            Inflation::Constant { rate } => {
                let r = finite("inflation.rate", *rate)?;
                in_range(
                    "inflation.rate",
                    r,
                    r > -1.0 && r <= 1.0,
                    "in (-1, 1] (decimal)",
                )?;
            }
            Inflation::Stochastic {
                drift,
                volatility,
                correlation,
            } => {
                if historical_model {
                    return Err(SpecError::InflationModelMismatch {
                        expected: "a GBM or Student-t return model",
                    });
                }
                let mu = finite("inflation.drift", *drift)?;
                in_range(
                    "inflation.drift",
                    mu,
                    mu.abs() <= MAX_ABS_DRIFT,
                    "in [-1, 1] (annualised decimal)",
                )?;
                let sd = finite("inflation.volatility", *volatility)?;
                in_range(
                    "inflation.volatility",
                    sd,
                    (0.0..=MAX_VOLATILITY).contains(&sd),
                    "in [0, 2] (annualised decimal)",
                )?;
                if correlation.len() != n {
                    return Err(SpecError::LengthMismatch {
                        field: "inflation.correlation".into(),
                        expected: n,
                        found: correlation.len(),
                    });
                }
                for (i, &c) in correlation.iter().enumerate() {
                    let f = format!("inflation.correlation[{i}]");
                    let c = finite(f.clone(), c)?;
                    in_range(f, c, (-1.0..=1.0).contains(&c), "in [-1, 1]")?;
                }
            }
            Inflation::Historical { rates } => {
                let periods = match &spec.model {
                    ReturnModel::Bootstrap { returns, .. }
                    | ReturnModel::HistoricalCohorts { returns, .. } => returns.len(),
                    _ => {
                        return Err(SpecError::InflationModelMismatch {
                            expected: "the bootstrap or historical-cohort model",
                        });
                    }
                };
                if rates.len() != periods {
                    return Err(SpecError::LengthMismatch {
                        field: "inflation.rates".into(),
                        expected: periods,
                        found: rates.len(),
                    });
                }
                for (k, &r) in rates.iter().enumerate() {
                    let f = format!("inflation.rates[{k}]");
                    let r = finite(f.clone(), r)?;
                    in_range(f, r, r > -1.0 && r <= 1e6, "a simple rate > -1")?;
                }
            }
        }
        let stochastic_cpi = matches!(spec.inflation, Inflation::Stochastic { .. });
        let historical_cpi = matches!(spec.inflation, Inflation::Historical { .. });
        let nf = if stochastic_cpi { n + 1 } else { n };

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
                let growth = growth_table(returns, n, &fee_factor, &spec.inflation)?;
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
            ReturnModel::HistoricalCohorts {
                returns,
                start_stride,
            } => {
                let growth = growth_table(returns, n, &fee_factor, &spec.inflation)?;
                if spec.antithetic {
                    return Err(SpecError::AntitheticNotSupported);
                }
                Model::Cohorts {
                    growth,
                    stride: *start_stride,
                }
            }
        };
        let hist_cols = if historical_cpi { n + 1 } else { n };

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

        let glide = match &spec.glide_path {
            None => None,
            Some(GlidePath::Linear { end_weights }) => {
                check_weights("glide_path.end_weights", end_weights, n)?;
                Some(Glide::Linear {
                    end: end_weights.clone(),
                })
            }
            Some(GlidePath::Yearly { weights }) => {
                if weights.is_empty() {
                    return Err(SpecError::LengthMismatch {
                        field: "glide_path.weights".into(),
                        expected: 1,
                        found: 0,
                    });
                }
                for (y, row) in weights.iter().enumerate() {
                    check_weights(&format!("glide_path.weights[{y}]"), row, n)?;
                }
                Some(Glide::Yearly {
                    rows: weights.clone(),
                })
            }
        };

        if let Some(w) = &spec.withdrawal {
            validate_withdrawal(w, spec.horizon_years)?;
        }

        let z = {
            let c = finite("confidence_level", spec.confidence_level)?;
            in_range(
                "confidence_level",
                c,
                c > 0.0 && c < 1.0,
                "in (0, 1) (e.g. 0.95)",
            )?;
            crate::intervals::normal_quantile(0.5 + 0.5 * c)
        };

        let sqrt_dt = dt.sqrt();
        let weights: Vec<f64> = spec.assets.iter().map(|a| a.weight).collect();
        let mut log_drift: Vec<f64> = spec
            .assets
            .iter()
            .zip(&log_fee)
            .map(|(a, &lf)| {
                let d = (a.drift - 0.5 * a.volatility * a.volatility) * dt;
                if lf == 0.0 { d } else { d + lf }
            })
            .collect();
        let mut vols: Vec<f64> = spec.assets.iter().map(|a| a.volatility).collect();
        let chol = if let Inflation::Stochastic {
            drift,
            volatility,
            correlation,
        } = &spec.inflation
        {
            log_drift.push((drift - 0.5 * volatility * volatility) * dt);
            vols.push(*volatility);
            let ext: Vec<Vec<f64>> = (0..=n)
                .map(|i| {
                    (0..=n)
                        .map(|j| match (i == n, j == n) {
                            (true, true) => 1.0,
                            (true, false) => correlation[j],
                            (false, true) => correlation[i],
                            (false, false) => sym[i][j],
                        })
                        .collect()
                })
                .collect();
            cholesky_psd(&ext).map_err(|e| match e {
                SpecError::NotPositiveSemiDefinite { pivot, value } => {
                    SpecError::InflationCorrelationNotPsd { pivot, value }
                }
                SpecError::SingularPivotResidual {
                    pivot, residual, ..
                } => SpecError::InflationCorrelationNotPsd {
                    pivot,
                    value: residual,
                },
                other => other,
            })?
        } else {
            chol
        };
        let mut shock_matrix = chol;
        for i in 0..nf {
            let b = vols[i] * sqrt_dt;
            for j in 0..nf {
                shock_matrix[i * nf + j] *= b;
            }
        }

        let spy = spec.steps_per_year as f64;
        let cpi = match &spec.inflation {
            Inflation::None => Cpi::None,
            Inflation::Constant { rate } => Cpi::Table(
                (0..=total_steps)
                    .map(|s| libm::pow(1.0 + rate, s as f64 / spy))
                    .collect(),
            ),
            Inflation::Stochastic { .. } | Inflation::Historical { .. } => Cpi::Factor,
        };

        let qmc = qmc_plan(&spec, nf, total_steps, &shock_matrix, &weights)?;
        let cv = if spec.control_variate {
            if historical_model {
                return Err(SpecError::ControlVariateNotSupported);
            }
            true
        } else {
            false
        };

        Ok(Simulation {
            n_assets: n,
            n_factors: nf,
            hist_cols,
            paths,
            weights,
            log_drift,
            shock_matrix,
            model,
            rebalance_every,
            flows,
            has_flows,
            total_steps,
            glide,
            cpi,
            z,
            qmc,
            cv,
            spec,
        })
    }

    /// The same simulation with another RQMC mixing matrix (see
    /// [`QmcFactor`]); pseudo-random runs are unchanged. For the precision
    /// benchmark's comparison only, not part of the stable API.
    #[doc(hidden)]
    pub fn with_qmc_factor(mut self, kind: QmcFactor) -> Simulation {
        if let Some(q) = &mut self.qmc {
            q.factor = mixing_matrix(kind, &self.shock_matrix, self.n_factors, &self.weights);
        }
        self
    }

    /// The same simulation with only the first `k` RQMC dimensions (in
    /// bridge order) from Sobol points and the rest pseudo-random. For the
    /// precision benchmark's comparison only, not part of the stable API.
    #[doc(hidden)]
    pub fn with_qmc_sobol_dims(mut self, k: usize) -> Simulation {
        if let Some(q) = &mut self.qmc {
            q.sobol_dims = k.clamp(1, q.dims.min(crate::qmc::SOBOL_DIMENSIONS));
        }
        self
    }

    /// Work of the run: paths × assets × total steps (asset-steps).
    ///
    /// # Examples
    /// ```
    /// # use engine::*;
    /// # let spec = SimulationSpec { assets: vec![Asset { weight: 1.0, drift: 0.0, volatility: 0.1 }],
    /// #   correlation: vec![vec![1.0]], initial_value: 1.0, horizon_years: 2, steps_per_year: 12,
    /// #   paths: 100, seed: 1, model: ReturnModel::Gbm, rebalancing: Rebalancing::Never,
    /// #   cash_flow: None, antithetic: false, histogram_bins: 10, ..Default::default() };
    /// assert_eq!(Simulation::new(spec)?.work(), 100 * 1 * 24);
    /// # Ok::<(), engine::SpecError>(())
    /// ```
    pub fn work(&self) -> u64 {
        self.paths * self.n_assets as u64 * self.total_steps
    }

    /// Number of paths the run simulates: `spec.paths`, or the number of
    /// cohorts for [`ReturnModel::HistoricalCohorts`].
    pub fn paths(&self) -> u64 {
        self.paths
    }

    /// Columns of the kernel's per-step factor arrays: the shock factors,
    /// or the columns of a historical growth table.
    pub(crate) fn x_cols(&self) -> usize {
        match self.model {
            Model::Bootstrap { .. } | Model::Cohorts { .. } => self.hist_cols,
            _ => self.n_factors,
        }
    }

    /// Target weights of a glide path for a rebalancing after step `s`
    /// (see [`GlidePath`]).
    pub(crate) fn glide_weights(&self, g: &Glide, s: u64, out: &mut [f64]) {
        match g {
            Glide::Linear { end } => {
                let f = s as f64 / self.total_steps as f64;
                for ((o, &w0), &w1) in out.iter_mut().zip(&self.weights).zip(end) {
                    *o = (w1 - w0).mul_add(f, w0);
                }
            }
            Glide::Yearly { rows } => {
                let y = ((s / u64::from(self.spec.steps_per_year)) as usize).min(rows.len() - 1);
                out.copy_from_slice(&rows[y]);
            }
        }
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

/// The validated QMC settings of `spec`; `None` for pseudo-random sampling.
///
/// # Errors
/// [`SpecError::QmcNotSupported`] for a historical model,
/// [`SpecError::AntitheticWithQmc`], [`SpecError::InvalidScramblings`] outside 2–1024,
/// [`SpecError::PathsNotMultipleOfScramblings`], [`SpecError::TooManyQmcDimensions`]
/// above [`MAX_QMC_DIMENSIONS`].
fn qmc_plan(
    spec: &SimulationSpec,
    factors: usize,
    steps: u64,
    shock_matrix: &[f64],
    weights: &[f64],
) -> Result<Option<QmcPlan>, SpecError> {
    let Sampling::Rqmc { scramblings } = spec.sampling else {
        return Ok(None);
    };
    if !matches!(spec.model, ReturnModel::Gbm | ReturnModel::StudentT { .. }) {
        return Err(SpecError::QmcNotSupported);
    }
    if spec.antithetic {
        return Err(SpecError::AntitheticWithQmc);
    }
    if !(2..=1024).contains(&scramblings) {
        return Err(SpecError::InvalidScramblings { value: scramblings });
    }
    if !spec.paths.is_multiple_of(u64::from(scramblings)) {
        return Err(SpecError::PathsNotMultipleOfScramblings {
            paths: spec.paths,
            scramblings,
        });
    }
    let dims = factors as u64 * steps;
    if dims > MAX_QMC_DIMENSIONS {
        return Err(SpecError::TooManyQmcDimensions {
            dimensions: dims,
            max: MAX_QMC_DIMENSIONS,
        });
    }
    Ok(Some(QmcPlan::new(
        scramblings,
        dims as usize,
        steps as usize,
        mixing_matrix(QmcFactor::default(), shock_matrix, factors, weights),
        (spec.horizon_years as usize).next_power_of_two(),
    )))
}
