//! # mc-engine: correlated multi-asset Monte Carlo portfolio simulation
//!
//! A pure computation crate: no I/O, no async, no knowledge of tenants or
//! HTTP. Build a [`SimulationSpec`], validate it with [`Simulation::new`]
//! (typed [`SpecError`] naming the offending field), and [`Simulation::run`]
//! it on the current rayon pool (tiny runs stay on the calling thread), or
//! [`Simulation::run_with`] with a progress callback and a cancellation flag
//! ([`RunControl`]).
//!
//! ## Model
//! Units: time in years, Δ = 1/`steps_per_year`; drifts μ and volatilities σ
//! are annualised decimals; values are currency units.
//!
//! * **GBM** (Glasserman, *Monte Carlo Methods in Financial Engineering*,
//!   2004, ch. 3.2, exact log step): for asset `i`,
//!   `S_i(t+Δ) = S_i(t) · exp((μ_i − σ_i²/2)Δ + σ_i √Δ · (L z)_i)`, where
//!   `z ~ N(0, I)` and `L` is the Cholesky factor of the correlation matrix
//!   (`C = L Lᵀ`, Glasserman §2.3.3). Positive *semi*-definite matrices are
//!   accepted (zero pivots give zero columns), so perfectly correlated assets
//!   are valid.
//! * **Student-t**: `z` is replaced by `L z · √((ν−2)/W)`, `W ~ χ²_ν`, one `W`
//!   per path and step (multivariate t, unit variance, same correlation).
//! * **Bootstrap**: each step draws a row of a caller-supplied matrix of
//!   historical simple returns (growth `1 + r`), i.i.d. (`block_length = 1`)
//!   or in circular blocks of consecutive rows (Künsch 1989, moving blocks;
//!   Politis & Romano 1992, circular blocks). [`history`] provides Shiller's
//!   monthly US stocks/bonds data.
//! * **Historical cohorts** ([`ReturnModel::HistoricalCohorts`]): every
//!   start of the history as one deterministic path (cFIREsim's method),
//!   with per-cohort outcomes in [`CohortStats`].
//!
//! ## Portfolio mechanics (order within a step)
//! 1. Every holding grows by its factor (net of the expense ratio,
//!    `expense_ratios`); the value `V` is the sum.
//! 2. A scheduled cash flow is applied ([`CashFlow`]): contributions bought
//!    at target weights, withdrawals sold pro rata; a value reaching zero is
//!    ruin, absorbing.
//! 3. The price index advances ([`Inflation`]); at a year end the value and
//!    the index are recorded, then the next year's strategy withdrawal
//!    ([`WithdrawalStrategy`], decided at the start of each year, the first
//!    at t = 0) is sold pro rata.
//! 4. Holdings are reset to the target weights on rebalancing steps
//!    ([`Rebalancing`]; the targets follow a [`GlidePath`] if set).
//! 5. Drawdown is monitored (every step).
//!
//! ## Accuracy and its report
//! * `antithetic: true` pairs every path driven by `z` with one driven by
//!   `−z` (Glasserman §4.2); the standard error uses the pair averages.
//! * `sampling: Sampling::Rqmc` uses Owen-scrambled Sobol points with a
//!   Brownian bridge ([`qmc`]); `control_variate: true` adjusts the terminal
//!   mean (and, under RQMC, the percentiles) with the log-return of the
//!   continuously rebalanced portfolio, whose law is known.
//! * Every figure has an interval at `confidence_level` ([`Interval`],
//!   [`IntervalMethod`]); [`Simulation::run_to_precision`] runs until chosen
//!   intervals are narrow enough, and [`Simulation::withdrawal_rates`]
//!   finds safe and perpetual withdrawal rates with their intervals.
//!
//! ## Reproducibility
//! Paths are split into chunks of [`CHUNK_PATHS`]; chunk `c` uses its own
//! `rand_pcg::Pcg64Mcg` seeded from `(seed, c)` via SplitMix64 (and, under
//! RQMC, each path's Sobol point and scrambling depend only on its index),
//! and chunk results are combined in chunk order. The result is therefore
//! bit-identical for any rayon thread count, any instruction set (AVX-512,
//! AVX2 or baseline; checked by tests) and any platform with IEEE-754 `f64`:
//! a portable generator, our own polynomial `exp`, the pure-Rust `libm`
//! crate's `log`/`pow` where a logarithm or power is needed (the normal
//! sampler's tail, the χ² sampler, CAGR), and otherwise only correctly
//! rounded operations (fused multiply-adds are explicit `f64::mul_add`,
//! never left to the compiler).
//!
//! ## Statistics
//! Percentiles are Hyndman & Fan (1996) type 7 (one sort of a small column,
//! selection with narrowing ranges for a large one); see
//! [`Percentiles`] and [`RiskStats`] for definitions and sign conventions.
//!
//! # Examples
//! ```
//! use engine::*;
//! let spec = SimulationSpec {
//!     assets: vec![
//!         Asset { weight: 0.6, drift: 0.07, volatility: 0.16 },
//!         Asset { weight: 0.4, drift: 0.03, volatility: 0.06 },
//!     ],
//!     correlation: vec![vec![1.0, 0.1], vec![0.1, 1.0]],
//!     initial_value: 100_000.0,
//!     horizon_years: 20,
//!     steps_per_year: 12,
//!     paths: 2_000,
//!     seed: 2024,
//!     model: ReturnModel::Gbm,
//!     rebalancing: Rebalancing::Quarterly,
//!     cash_flow: Some(CashFlow {
//!         amount: 1_000.0,
//!         frequency: CashFlowFrequency::Annually,
//!         annual_growth: 0.02,
//!     }),
//!     antithetic: false,
//!     histogram_bins: 30,
//!     ..Default::default()
//! };
//! let result = Simulation::new(spec)?.run();
//! assert_eq!(result.yearly.len(), 20);
//! assert!(result.risk.probability_of_loss < 0.5);
//! # Ok::<(), engine::SpecError>(())
//! ```
#![deny(missing_docs)]

mod control;
mod error;
mod fastmath;
pub mod history;
mod intervals;
mod kernel;
mod linalg;
mod order;
mod planning;
pub mod qmc;
mod rates;
mod rng;
mod spec;
mod stats;
mod ziggurat_tables;

#[doc(hidden)]
pub mod bench_support;

pub use control::{Progress, RunControl, RunError};
pub use error::SpecError;
pub use intervals::Interval;
pub use planning::{
    GlidePath, Guardrails, Inflation, VPW_BOND_RETURN, VPW_FINAL_AGE, VPW_STOCK_RETURN,
    WithdrawalStrategy, vpw_rates,
};
pub use rates::{
    PrecisionGoal, PrecisionOutcome, PrecisionQuantity, PrecisionTarget, RATE_TOLERANCE,
    RateEstimate, StopReason, WithdrawalRates,
};
pub use rng::CHUNK_PATHS;
pub use spec::{
    Asset, CashFlow, CashFlowFrequency, Limits, MAX_ABS_DRIFT, MAX_AMOUNT, MAX_ASSETS,
    MAX_HISTOGRAM_BINS, MAX_HORIZON_YEARS, MAX_STORED_VALUES, MAX_VOLATILITY, Rebalancing,
    ReturnModel, Sampling, Simulation, SimulationSpec,
};
pub use stats::{
    CohortStats, ControlVariateStats, Distribution, Histogram, IntervalMethod, PERCENTILE_PROBS,
    PercentileIntervals, Percentiles, RealStats, RiskStats, SimulationResult, TerminalStats,
    WithdrawalStats, YearBand,
};

/// Engine identifier stored in every result, `"mc-engine/<crate version>"`.
pub const ENGINE_VERSION: &str = concat!("mc-engine/", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn public_types_are_send_sync() {
        assert_send_sync::<crate::Simulation>();
        assert_send_sync::<crate::SimulationSpec>();
        assert_send_sync::<crate::SimulationResult>();
        assert_send_sync::<crate::SpecError>();
        assert_send_sync::<crate::RunError>();
        assert_send_sync::<crate::RunControl>();
        assert_send_sync::<crate::history::History>();
    }
}
