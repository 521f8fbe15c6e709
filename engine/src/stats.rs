//! Result types and the reduction of simulated paths to statistics.
//!
//! # Percentile definition
//! All percentiles use Hyndman & Fan (1996) type 7 (the default of R and
//! NumPy): for sorted values `x₀ ≤ … ≤ x_{n−1}` and probability `p`,
//! `h = (n − 1)·p`, `Q(p) = x_⌊h⌋ + (h − ⌊h⌋)·(x_{⌊h⌋+1} − x_⌊h⌋)`.
//! Order statistics come from one sort of a small column, or from selection
//! with narrowing ranges for a large one (see `order.rs`); the values do not
//! depend on the method.
//!
//! # Intervals
//! Every figure comes with a two-sided interval at `confidence_level`; the
//! rule depends on [`IntervalMethod`] (formulas in [`crate::Interval`]'s
//! module docs, `intervals.rs`).
//!
//! # Control variates
//! With `control_variate: true` (GBM and Student-t), every path also
//! carries `C = Σ_steps Σ_assets w₀ᵢ · (log-return)ᵢ`, the log-return of a
//! portfolio held at the initial weights with continuous rebalancing and no
//! cash flows; its mean `E[C] = N · Σ wᵢ ((μᵢ − σᵢ²/2)Δ + fee)` is exact,
//! and under GBM `C` is normal with the exact variance
//! `σ_C² = N · Σ_j (Σ_i wᵢ Mᵢⱼ)²` (`M` the scaled Cholesky factor).
//! * **Mean** (Glasserman 2004, §4.1): `Ȳ − β̂(X̄ − E[X])` with the
//!   control `X = e^C`, `E[X] = e^{E[C] + σ_C²/2}` under GBM (V_T is
//!   nearly proportional to it, so the residual is small and not skewed),
//!   `X = C` under Student-t; `β̂` the least-squares slope over paths
//!   (antithetic pairs averaged), the interval from the residuals (i.i.d.
//!   paths) or from the scramblings' adjusted means (RQMC).
//! * **Percentiles** (GBM under RQMC only; Hsu & Nelson 1990, "Control
//!   variates for quantile estimation", Management Science 36(7)), on the
//!   log scale: `exp(ln Q̂_Y(p) − β̂_p (Q̂_C(p) − Q_C(p)))` with
//!   `Q_C(p) = E[C] + σ_C Φ⁻¹(p)` exact, `Q̂` the mean of the scramblings'
//!   Hazen percentiles, `β̂_p` the slope across scramblings and the interval
//!   from the spread of `ln Q_Y − β̂_p Q_C` (Student-t quantile, `R − 2`
//!   degrees of freedom). With independent paths the batch estimate of that
//!   spread was measured far too small (59–76 % coverage of nominal 95 %),
//!   so pseudo-random runs adjust the mean only. Percentiles in the ruined
//!   region (≤ 0) are never adjusted.
//!
//! The terminal mean and percentiles (and so the VaR) then report the
//! adjusted values; [`ControlVariateStats`] keeps the plain ones.
//!
//! # Percentiles under RQMC
//! Each scrambling's points are stratified, so its percentiles use the
//! Hazen rule (type 5, `h = np − ½`, unbiased for stratified points; type
//! 7's offset of `½ − p` ranks was measured to dominate the RQMC error),
//! and the reported percentile is their mean over the scramblings (the
//! replicated-quantile estimator, whose replicates are i.i.d., so the
//! t-interval applies).

use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ENGINE_VERSION;
use crate::control::{Progress, RunControl, RunError};
use crate::intervals::{
    Interval, normal_quantile, order_stat_ranks, replicate_interval, replicate_mean_interval,
    replicate_se, student_t_quantile, wilson,
};
use crate::kernel::{ChunkOut, LANES, simulate_chunk};
use crate::order::{OrderScratch, order_stats};
use crate::rng::CHUNK_PATHS;
use crate::spec::{Model, Simulation};

/// Runs with at most this many asset-steps (about 0.1 ms of kernel time)
/// are simulated on the calling thread: waking the rayon pool costs more.
/// The result does not depend on it (chunks are combined in chunk order).
pub(crate) const INLINE_WORK: u64 = 1 << 17;
/// Year-end columns are reduced in parallel only above this many values.
const INLINE_VALUES: usize = 1 << 16;

/// The nine reported percentiles (type 7, see the module docs), same unit as
/// the underlying quantity.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Percentiles {
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

/// Probabilities of [`Percentiles`], in field order.
pub const PERCENTILE_PROBS: [f64; 9] = [0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99];

impl Percentiles {
    fn from_array(a: [f64; 9]) -> Self {
        Percentiles {
            p1: a[0],
            p5: a[1],
            p10: a[2],
            p25: a[3],
            p50: a[4],
            p75: a[5],
            p90: a[6],
            p95: a[7],
            p99: a[8],
        }
    }

    /// The values in field order (P1 … P99).
    pub fn to_array(&self) -> [f64; 9] {
        [
            self.p1, self.p5, self.p10, self.p25, self.p50, self.p75, self.p90, self.p95, self.p99,
        ]
    }
}

/// Confidence intervals of the nine [`Percentiles`], field by field.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PercentileIntervals {
    /// Interval of P1.
    pub p1: Interval,
    /// Interval of P5.
    pub p5: Interval,
    /// Interval of P10.
    pub p10: Interval,
    /// Interval of P25.
    pub p25: Interval,
    /// Interval of the median.
    pub p50: Interval,
    /// Interval of P75.
    pub p75: Interval,
    /// Interval of P90.
    pub p90: Interval,
    /// Interval of P95.
    pub p95: Interval,
    /// Interval of P99.
    pub p99: Interval,
}

impl PercentileIntervals {
    /// Nine unknown intervals (see [`Interval::unknown`]).
    pub fn unknown() -> Self {
        Self::from_array([Interval::unknown(); 9])
    }

    fn from_array(a: [Interval; 9]) -> Self {
        PercentileIntervals {
            p1: a[0],
            p5: a[1],
            p10: a[2],
            p25: a[3],
            p50: a[4],
            p75: a[5],
            p90: a[6],
            p95: a[7],
            p99: a[8],
        }
    }

    /// The intervals in field order (P1 … P99).
    pub fn to_array(&self) -> [Interval; 9] {
        [
            self.p1, self.p5, self.p10, self.p25, self.p50, self.p75, self.p90, self.p95, self.p99,
        ]
    }
}

/// Equal-width histogram of terminal values between their minimum and
/// maximum (currency units). Bin `k` covers `[edges[k], edges[k+1])`, the
/// last bin is closed. If all values are equal the edges span `value ± 0.5`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Histogram {
    /// `bins + 1` increasing edges.
    pub edges: Vec<f64>,
    /// `bins` counts summing to the number of paths.
    pub counts: Vec<u64>,
}

/// Distribution of the terminal portfolio value V_T (currency units).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TerminalStats {
    /// Sample mean of V_T (control-variate adjusted when enabled).
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator; 0 for one path).
    pub std_dev: f64,
    /// Standard error of the mean. With antithetic variates it is computed
    /// from the pair averages, `sd(pair means)/√pairs`, which is what the
    /// variance reduction lowers. (Under RQMC: the replicate spread
    /// `sd(replicate means)/√R`; with a control variate: of the adjusted
    /// mean.)
    pub std_error: f64,
    /// Percentiles of V_T (control-variate adjusted when enabled, GBM).
    pub percentiles: Percentiles,
    /// Histogram of V_T.
    pub histogram: Histogram,
    /// Interval of the mean.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub mean_interval: Interval,
    /// Intervals of the percentiles.
    #[cfg_attr(feature = "serde", serde(default = "PercentileIntervals::unknown"))]
    pub percentile_intervals: PercentileIntervals,
}

/// Risk measures.
///
/// Sign convention: the horizon loss of a path is
/// `L = (V₀ + C − V_T) / V₀` where `C` is the sum of scheduled cash flows
/// ([`Simulation::net_contributions`]), so a positive `L` is a loss as a
/// fraction of the initial value. `var_α` is the α-quantile of `L`
/// (= `(V₀ + C − Q_{1−α}(V_T)) / V₀`, type 7) and `cvar_α` (expected
/// shortfall) is the mean of `L` over the `⌈(1 − α)·n⌉` worst paths. Both
/// are positive for losses and negative if even the tail gains.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RiskStats {
    /// Fraction of paths with `V_T < V₀ + C`.
    pub probability_of_loss: f64,
    /// Fraction of paths whose value reached zero (absorbing).
    pub probability_of_ruin: f64,
    /// `1 − probability_of_ruin`.
    pub success_rate: f64,
    /// 95 % value at risk (loss fraction of V₀).
    pub var_95: f64,
    /// 95 % conditional value at risk / expected shortfall.
    pub cvar_95: f64,
    /// 99 % value at risk.
    pub var_99: f64,
    /// 99 % conditional value at risk.
    pub cvar_99: f64,
    /// Median of the per-path maximum drawdown `max_t (peak_t − V_t)/peak_t`
    /// (fraction, monitored at every step including cash flows and
    /// withdrawals).
    pub max_drawdown_p50: f64,
    /// 95th percentile of the maximum drawdown.
    pub max_drawdown_p95: f64,
    /// Percentiles of the per-path CAGR `(V_T / V₀)^{1/T} − 1` (decimal a
    /// year; −1 for a ruined path).
    pub cagr: Percentiles,
    /// Interval of `probability_of_loss`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub probability_of_loss_interval: Interval,
    /// Interval of `probability_of_ruin`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub probability_of_ruin_interval: Interval,
    /// Interval of `success_rate`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub success_rate_interval: Interval,
    /// Interval of `var_95`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub var_95_interval: Interval,
    /// Interval of `cvar_95`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub cvar_95_interval: Interval,
    /// Interval of `var_99`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub var_99_interval: Interval,
    /// Interval of `cvar_99`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub cvar_99_interval: Interval,
    /// Interval of `max_drawdown_p50`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub max_drawdown_p50_interval: Interval,
    /// Interval of `max_drawdown_p95`.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub max_drawdown_p95_interval: Interval,
    /// Intervals of the CAGR percentiles.
    #[cfg_attr(feature = "serde", serde(default = "PercentileIntervals::unknown"))]
    pub cagr_intervals: PercentileIntervals,
}

/// Cross-section of a quantity at the end of a year (fan charts).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct YearBand {
    /// Year, 1..=horizon_years (for values: the year end; for withdrawals:
    /// the year whose start the withdrawal is paid at).
    pub year: u32,
    /// Mean (currency units).
    pub mean: f64,
    /// Percentiles (currency units).
    pub percentiles: Percentiles,
    /// Interval of the mean.
    #[cfg_attr(feature = "serde", serde(default = "Interval::unknown"))]
    pub mean_interval: Interval,
    /// Intervals of the percentiles.
    #[cfg_attr(feature = "serde", serde(default = "PercentileIntervals::unknown"))]
    pub percentile_intervals: PercentileIntervals,
}

/// Mean and percentiles of a per-path quantity, with intervals.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Distribution {
    /// Mean.
    pub mean: f64,
    /// Interval of the mean.
    pub mean_interval: Interval,
    /// Percentiles.
    pub percentiles: Percentiles,
    /// Intervals of the percentiles.
    pub percentile_intervals: PercentileIntervals,
}

/// Outputs in today's money: every value divided by the path's price index
/// at that date (`V_t / I_t`; see [`crate::Inflation`]). Reported when an
/// inflation model is set.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RealStats {
    /// Distribution of the real terminal value `V_T / I_T` (plain
    /// estimates; no control variate).
    pub terminal: TerminalStats,
    /// Real year-end bands.
    pub yearly: Vec<YearBand>,
    /// Fraction of paths with `V_T / I_T < V₀ + C` (the same threshold as
    /// the nominal loss).
    pub probability_of_loss: f64,
    /// Interval of `probability_of_loss`.
    pub probability_of_loss_interval: Interval,
    /// 95 % VaR of the real loss `(V₀ + C − V_T/I_T) / V₀`.
    pub var_95: f64,
    /// Interval of `var_95`.
    pub var_95_interval: Interval,
    /// 95 % CVaR of the real loss.
    pub cvar_95: f64,
    /// Interval of `cvar_95`.
    pub cvar_95_interval: Interval,
    /// 99 % VaR of the real loss.
    pub var_99: f64,
    /// Interval of `var_99`.
    pub var_99_interval: Interval,
    /// 99 % CVaR of the real loss.
    pub cvar_99: f64,
    /// Interval of `cvar_99`.
    pub cvar_99_interval: Interval,
    /// Percentiles of the real CAGR `(V_T / (I_T V₀))^{1/T} − 1`.
    pub cagr: Percentiles,
    /// Intervals of the real CAGR percentiles.
    pub cagr_intervals: PercentileIntervals,
}

/// The withdrawals a strategy paid (currency units). Year `y` (1-based) is
/// the withdrawal at the start of year `y`; a ruined path pays what was
/// left and then 0.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WithdrawalStats {
    /// Nominal amount paid per year.
    pub yearly: Vec<YearBand>,
    /// The same in today's money (divided by the price index at payment),
    /// when an inflation model is set.
    pub yearly_real: Option<Vec<YearBand>>,
    /// Total nominal amount paid over the horizon, per path.
    pub total: Distribution,
    /// Total real amount paid, when an inflation model is set.
    pub total_real: Option<Distribution>,
}

/// Outcome of every historical cohort
/// ([`crate::ReturnModel::HistoricalCohorts`]); one entry per cohort, in
/// start order.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CohortStats {
    /// First history row of each cohort (`k · start_stride`).
    pub start_periods: Vec<usize>,
    /// Whether the cohort was never ruined.
    pub survived: Vec<bool>,
    /// The first year end (1-based) at which the value was 0, if ruined.
    pub depleted_in_year: Vec<Option<u32>>,
    /// Nominal terminal value of each cohort.
    pub terminal_values: Vec<f64>,
    /// Real terminal value (with an inflation model).
    pub terminal_real_values: Option<Vec<f64>>,
    /// Index of the worst cohort: the earliest depletion (lowest index on a
    /// tie), or, if none was ruined, the lowest real (else nominal)
    /// terminal value.
    pub worst_cohort: usize,
    /// Fraction of cohorts that survived.
    pub success_rate: f64,
}

/// The plain (unadjusted) terminal estimates and the control's statistics,
/// reported when `control_variate` is on.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ControlVariateStats {
    /// Plain sample mean of V_T.
    pub raw_mean: f64,
    /// Its interval.
    pub raw_mean_interval: Interval,
    /// Plain percentiles of V_T.
    pub raw_percentiles: Percentiles,
    /// Their intervals.
    pub raw_percentile_intervals: PercentileIntervals,
    /// Exact mean of the control `C` (log units).
    pub control_mean: f64,
    /// Exact standard deviation of `C` (GBM; `None` for Student-t, whose
    /// percentiles are then not adjusted).
    pub control_std_dev: Option<f64>,
    /// Sample correlation of V_T and `C`.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::intervals::nan_if_null")
    )]
    pub correlation: f64,
    /// Batches used for the percentile slopes and intervals.
    pub batches: u32,
}

/// How the intervals of a result were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum IntervalMethod {
    /// Independent paths: normal intervals for means, order-statistic
    /// intervals for percentiles, Wilson intervals for proportions,
    /// asymptotic intervals for CVaR (conservative with antithetic pairs).
    #[default]
    OrderStatistics,
    /// Randomised QMC: the spread of the estimates of `replicates`
    /// independent scramblings, with a Student-t quantile; for means
    /// corrected for the skewness of the scramblings' means (Johnson 1978,
    /// in Hall's 1992 monotone form), so an interval may reach further up
    /// than down. Measured coverage of nominal 95 % intervals: percentiles
    /// 94–97 %; the mean of a skewed quantity (lognormal, σ√T ≈ 0.45)
    /// 94.1–95.5 % (89.7–93.4 % with the plain t-interval used before).
    Replicates {
        /// Number of scramblings.
        replicates: u32,
    },
    /// Historical cohorts: a complete enumeration of the history, no
    /// sampling error; every interval is the point itself.
    Exact,
}

/// Everything a run produces. A pure function of the spec (including the
/// seed) and [`ENGINE_VERSION`], independent of the number of threads.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SimulationResult {
    /// The seed used.
    pub seed: u64,
    /// [`ENGINE_VERSION`] of the engine that produced it.
    pub engine_version: std::borrow::Cow<'static, str>,
    /// Number of paths (the number of cohorts for historical cohorts).
    pub paths: u64,
    /// Total number of time steps (`horizon_years × steps_per_year`).
    pub steps: u64,
    /// Terminal value distribution (nominal).
    pub terminal: TerminalStats,
    /// Risk measures (nominal).
    pub risk: RiskStats,
    /// One band per year end 1..=horizon_years (the last equals `terminal`,
    /// except that `terminal` is control-variate adjusted when enabled).
    pub yearly: Vec<YearBand>,
    /// Confidence level of every interval.
    #[cfg_attr(feature = "serde", serde(default = "default_confidence_level"))]
    pub confidence_level: f64,
    /// How the intervals were computed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub interval_method: IntervalMethod,
    /// Real (today's money) outputs, with an inflation model.
    #[cfg_attr(feature = "serde", serde(default))]
    pub real: Option<RealStats>,
    /// Withdrawal statistics, with a withdrawal strategy.
    #[cfg_attr(feature = "serde", serde(default))]
    pub withdrawals: Option<WithdrawalStats>,
    /// Per-cohort outcomes, for historical cohorts.
    #[cfg_attr(feature = "serde", serde(default))]
    pub cohorts: Option<CohortStats>,
    /// Plain estimates and control statistics, with a control variate.
    #[cfg_attr(feature = "serde", serde(default))]
    pub control_variate: Option<ControlVariateStats>,
}

/// Order statistics needed for one type-7 percentile: `(x_⌊h⌋, x_⌊h⌋+1, frac)`.
#[derive(Clone, Copy)]
struct Bracket {
    lo: f64,
    hi: f64,
    frac: f64,
}

impl Bracket {
    fn value(&self) -> f64 {
        self.map(|v| v)
    }
    fn map(&self, f: impl Fn(f64) -> f64) -> f64 {
        let (a, b) = (f(self.lo), f(self.hi));
        if self.frac == 0.0 {
            a
        } else {
            a + self.frac * (b - a)
        }
    }
}

/// The 0-based ranks a type-7 percentile at `p` reads for `n` values:
/// `(⌊h⌋, ⌊h⌋ + 1 or ⌊h⌋, frac)`.
fn type7_ranks(n: usize, p: f64) -> (usize, usize, f64) {
    let h = (n - 1) as f64 * p;
    let k = (h.floor() as usize).min(n - 1);
    let frac = h - k as f64;
    let hi = if k + 1 < n && frac > 0.0 { k + 1 } else { k };
    (k, hi, frac)
}

/// The 0-based ranks a Hazen (type 5) percentile reads: `h = np − ½`,
/// clamped to `[0, n − 1]`. Used within each RQMC scrambling, where the
/// points are stratified and type 7's offset of `(½ − p)` ranks would be
/// a bias far larger than the RQMC error.
fn hazen_ranks(n: usize, p: f64) -> (usize, usize, f64) {
    let h = (n as f64 * p - 0.5).clamp(0.0, (n - 1) as f64);
    let k = (h.floor() as usize).min(n - 1);
    let frac = h - k as f64;
    let hi = if k + 1 < n && frac > 0.0 { k + 1 } else { k };
    (k, hi, frac)
}

/// Order statistics of one column at several ranks with one pass
/// ([`order_stats`]); reusable scratch.
#[derive(Default)]
struct Quantiles {
    sorted: Vec<usize>,
    values: Vec<f64>,
    scratch: OrderScratch,
}

impl Quantiles {
    fn new() -> Self {
        Self::default()
    }

    /// Values at `ranks` (any order, repeats allowed), in that order;
    /// reorders `data`. `None` if cancelled.
    fn values(
        &mut self,
        data: &mut [f64],
        ranks: &[usize],
        cancelled: &dyn Fn() -> bool,
    ) -> Option<Vec<f64>> {
        self.sorted.clear();
        self.sorted.extend_from_slice(ranks);
        self.sorted.sort_unstable();
        self.sorted.dedup();
        self.values.resize(self.sorted.len(), 0.0);
        if !order_stats(
            data,
            &self.sorted,
            &mut self.values,
            &mut self.scratch,
            cancelled,
        ) {
            return None;
        }
        Some(
            ranks
                .iter()
                .map(|r| {
                    self.values[self
                        .sorted
                        .binary_search(r)
                        .unwrap_or_else(|_| unreachable!())]
                })
                .collect(),
        )
    }

    /// Type-7 brackets at `probs`; reorders `data`.
    fn brackets<const K: usize>(
        &mut self,
        data: &mut [f64],
        probs: &[f64; K],
        cancelled: &dyn Fn() -> bool,
    ) -> Option<[Bracket; K]> {
        self.brackets_with(data, probs, type7_ranks, cancelled)
    }

    /// Brackets at `probs` for the rank rule `rule`; reorders `data`.
    fn brackets_with<const K: usize>(
        &mut self,
        data: &mut [f64],
        probs: &[f64; K],
        rule: fn(usize, f64) -> (usize, usize, f64),
        cancelled: &dyn Fn() -> bool,
    ) -> Option<[Bracket; K]> {
        let n = data.len();
        let mut out = [Bracket {
            lo: 0.0,
            hi: 0.0,
            frac: 0.0,
        }; K];
        if n == 0 {
            return Some(out);
        }
        let mut ranks = Vec::with_capacity(2 * K);
        for &p in probs {
            let (lo, hi, _) = rule(n, p);
            ranks.push(lo);
            ranks.push(hi);
        }
        let v = self.values(data, &ranks, cancelled)?;
        for (k, (b, &p)) in out.iter_mut().zip(probs).enumerate() {
            *b = Bracket {
                lo: v[2 * k],
                hi: v[2 * k + 1],
                frac: rule(n, p).2,
            };
        }
        Some(out)
    }
}

/// Type-7 brackets for increasing probabilities `probs`; reorders `data`.
#[cfg(test)]
fn brackets<const K: usize>(data: &mut [f64], probs: &[f64; K]) -> [Bracket; K] {
    Quantiles::new()
        .brackets(data, probs, &|| false)
        .unwrap_or_else(|| unreachable!())
}

/// Type-7 percentile of `data` for one probability (reorders `data`).
#[cfg(test)]
fn percentile(data: &mut [f64], p: f64) -> f64 {
    brackets(data, &[p])[0].value()
}

/// Mean computed around the first value (`x₀ + mean(x − x₀)`), so constant
/// data gives the constant exactly.
fn mean(x: &[f64]) -> f64 {
    let Some(&x0) = x.first() else { return 0.0 };
    x0 + x.iter().map(|v| v - x0).sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (two-pass, n − 1 denominator); exactly 0 for
/// constant data.
fn std_dev(x: &[f64], m: f64) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let ss: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    (ss / (x.len() - 1) as f64).sqrt()
}

/// The units whose spread gives the standard error: the paths, or the
/// antithetic pair averages `(p, p + LANES/2)` for `p mod LANES < LANES/2`.
fn units(x: &[f64], antithetic: bool) -> Vec<f64> {
    let n = x.len();
    if !antithetic {
        return x.to_vec();
    }
    let half = LANES / 2;
    let mut units = Vec::with_capacity(n / 2 + LANES);
    for p in 0..n {
        let lane = p % LANES;
        if lane < half {
            if p + half < n {
                units.push(0.5 * (x[p] + x[p + half]));
            } else {
                units.push(x[p]);
            }
        }
    }
    units
}

/// Standard error of the mean; antithetic pairs are averaged first.
fn std_error(x: &[f64], antithetic: bool) -> f64 {
    let n = x.len();
    if !antithetic {
        return std_dev(x, mean(x)) / (n as f64).sqrt();
    }
    let u = units(x, true);
    std_dev(&u, mean(&u)) / (u.len() as f64).sqrt()
}

fn histogram(x: &[f64], bins: usize) -> Histogram {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in x {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi <= lo || hi.is_nan() || lo.is_nan() || !(hi - lo).is_finite() {
        lo -= 0.5;
        hi = lo + 1.0;
    }
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins)
        .map(|k| if k == bins { hi } else { lo + k as f64 * width })
        .collect();
    let mut counts = vec![0u64; bins];
    for &v in x {
        let k = (((v - lo) / width) as usize).min(bins - 1);
        counts[k] += 1;
    }
    Histogram { edges, counts }
}

/// Mean of the `m` smallest values (reorders `data`); `m ≥ 1`.
fn lower_tail_mean(data: &mut [f64], m: usize) -> f64 {
    let m = m.clamp(1, data.len());
    data.select_nth_unstable_by(m - 1, f64::total_cmp);
    mean(&data[..m])
}

/// How intervals are computed (see [`IntervalMethod`]).
#[derive(Clone, Copy)]
enum Mode {
    Iid,
    Replicates { r: usize, t: f64 },
    Exact,
}

/// What every column reduction needs to know.
struct Ctx<'a> {
    z: f64,
    mode: Mode,
    antithetic: bool,
    cancelled: &'a (dyn Fn() -> bool + Sync),
}

impl Ctx<'_> {
    fn proportion(&self, k: usize, n: usize, reps: Option<&[f64]>) -> Interval {
        let p = k as f64 / n as f64;
        match self.mode {
            Mode::Iid => wilson(k, n, self.z),
            Mode::Exact => Interval::around(p, 0.0),
            Mode::Replicates { t, .. } => {
                let iv = replicate_interval(p, reps.unwrap_or(&[]), t);
                Interval {
                    lower: iv.lower.max(0.0),
                    upper: iv.upper.min(1.0),
                }
            }
        }
    }
}

/// Replicate `rep` of a path-ordered column (paths `p ≡ rep mod r`).
fn gather(col: &[f64], r: usize, rep: usize, buf: &mut Vec<f64>) {
    buf.clear();
    buf.extend(col.iter().skip(rep).step_by(r));
}

/// Per-replicate means and type-7 percentiles of a path-ordered column.
struct RepEstimates<const K: usize> {
    means: Vec<f64>,
    pcts: Vec<[f64; K]>,
}

fn replicate_estimates<const K: usize>(
    col: &[f64],
    r: usize,
    probs: &[f64; K],
    q: &mut Quantiles,
    cancelled: &dyn Fn() -> bool,
) -> Option<RepEstimates<K>> {
    let mut buf = Vec::new();
    let mut out = RepEstimates {
        means: Vec::with_capacity(r),
        pcts: Vec::with_capacity(r),
    };
    for rep in 0..r {
        gather(col, r, rep, &mut buf);
        out.means.push(mean(&buf));
        out.pcts.push(
            q.brackets_with(&mut buf, probs, hazen_ranks, cancelled)?
                .map(|b| b.value()),
        );
    }
    Some(out)
}

/// Mean, percentiles and their intervals of one column.
struct ColStats<const K: usize> {
    mean: f64,
    mean_iv: Interval,
    /// Under RQMC, the replicate standard error of the mean (else NaN).
    mean_se: f64,
    br: [Bracket; K],
    iv: [Interval; K],
}

impl ColStats<9> {
    fn band(&self, year: u32) -> YearBand {
        YearBand {
            year,
            mean: self.mean,
            percentiles: Percentiles::from_array(self.br.map(|b| b.value())),
            mean_interval: self.mean_iv,
            percentile_intervals: PercentileIntervals::from_array(self.iv),
        }
    }

    fn distribution(&self) -> Distribution {
        Distribution {
            mean: self.mean,
            mean_interval: self.mean_iv,
            percentiles: Percentiles::from_array(self.br.map(|b| b.value())),
            percentile_intervals: PercentileIntervals::from_array(self.iv),
        }
    }
}

/// Statistics of a column. It must be in path order unless `se` (i.i.d.)
/// or `reps` (replicates) are given; reorders it.
fn col_stats<const K: usize>(
    col: &mut [f64],
    probs: &[f64; K],
    ctx: &Ctx,
    q: &mut Quantiles,
    se: Option<f64>,
    reps: Option<RepEstimates<K>>,
) -> Option<ColStats<K>> {
    let n = col.len();
    let m = mean(col);
    let mut reps = reps;
    let mut mean_se = f64::NAN;
    let mean_iv = match ctx.mode {
        Mode::Iid => Interval::around(
            m,
            ctx.z * se.unwrap_or_else(|| std_error(col, ctx.antithetic)),
        ),
        Mode::Exact => Interval::around(m, 0.0),
        Mode::Replicates { r, t } => {
            if reps.is_none() {
                reps = Some(replicate_estimates(col, r, probs, q, ctx.cancelled)?);
            }
            let means = &reps.as_ref().unwrap_or_else(|| unreachable!()).means;
            mean_se = replicate_se(means);
            replicate_mean_interval(m, means, t)
        }
    };
    let iid = matches!(ctx.mode, Mode::Iid);
    let mut ranks = Vec::with_capacity(4 * K);
    for &p in probs {
        let (lo, hi, _) = type7_ranks(n, p);
        ranks.push(lo);
        ranks.push(hi);
        if iid {
            let (l, u) = order_stat_ranks(n, p, ctx.z);
            ranks.push(l);
            ranks.push(u);
        }
    }
    let v = q.values(col, &ranks, ctx.cancelled)?;
    let step = if iid { 4 } else { 2 };
    let mut br = [Bracket {
        lo: 0.0,
        hi: 0.0,
        frac: 0.0,
    }; K];
    let mut iv = [Interval::around(0.0, 0.0); K];
    for k in 0..K {
        let b = Bracket {
            lo: v[step * k],
            hi: v[step * k + 1],
            frac: type7_ranks(n, probs[k]).2,
        };
        br[k] = b;
        iv[k] = match ctx.mode {
            Mode::Iid => Interval {
                lower: v[step * k + 2],
                upper: v[step * k + 3],
            },
            Mode::Exact => Interval::around(b.value(), 0.0),
            Mode::Replicates { t, .. } => {
                let est: Vec<f64> = reps
                    .as_ref()
                    .unwrap_or_else(|| unreachable!())
                    .pcts
                    .iter()
                    .map(|a| a[k])
                    .collect();
                // Centred on the mean of the replicate estimates (the
                // replicated-quantile estimator, whose replicates are
                // i.i.d.), which is also the reported percentile.
                let centre = est.iter().sum::<f64>() / est.len() as f64;
                br[k] = Bracket {
                    lo: centre,
                    hi: centre,
                    frac: 0.0,
                };
                replicate_interval(centre, &est, t)
            }
        };
    }
    Some(ColStats {
        mean: m,
        mean_iv,
        mean_se,
        br,
        iv,
    })
}

/// Expected-shortfall tail: the mean of the `⌈(1−α) n⌉` smallest values
/// (reorders `data`) and the variance of those values.
fn tail(data: &mut [f64], m: usize) -> (f64, f64) {
    let t = lower_tail_mean(data, m);
    let m = m.clamp(1, data.len());
    (t, std_dev(&data[..m], t).powi(2))
}

/// The value statistics shared by the nominal and the real outputs.
struct ValueSummary {
    terminal: TerminalStats,
    yearly: Vec<YearBand>,
    last: [Bracket; 9],
    losses: usize,
    ruined: usize,
    loss_iv: Interval,
    ruin_iv: Interval,
    /// (mean of the tail values, interval of the loss ES) at 95 % and 99 %.
    es95: (f64, Interval),
    es99: (f64, Interval),
}

impl Simulation {
    /// Reduces year-major columns (`years × np`, path order) to statistics,
    /// in the legacy order for the terminal column (mean, deviation,
    /// counts, histogram, tail selections, then bands) so the nominal
    /// figures keep their bits.
    fn value_summary(
        &self,
        by_year: &mut [f64],
        threshold: f64,
        ctx: &Ctx,
    ) -> Option<ValueSummary> {
        let np = self.paths as usize;
        let years = self.spec.horizon_years as usize;
        let v0 = self.spec.initial_value;
        let n = np as f64;
        let cancelled = ctx.cancelled;
        let terminal = &mut by_year[(years - 1) * np..];
        let t_mean = mean(terminal);
        let t_sd = std_dev(terminal, t_mean);
        let t_se = std_error(terminal, ctx.antithetic);
        let losses = terminal.iter().filter(|&&v| v < threshold).count();
        let ruined = terminal.iter().filter(|&&v| v <= 0.0).count();
        let hist = histogram(terminal, self.spec.histogram_bins as usize);
        let m95 = (0.05 * n).ceil() as usize;
        let m99 = (0.01 * n).ceil() as usize;
        // Replicate estimates of the terminal column need path order.
        let mut q = Quantiles::new();
        let (t_reps, rep_props, rep_es) = match ctx.mode {
            Mode::Replicates { r, t } => {
                let reps = replicate_estimates(terminal, r, &PERCENTILE_PROBS, &mut q, cancelled)?;
                let mut buf = Vec::new();
                let (mut pl, mut pr, mut e95, mut e99) = (vec![], vec![], vec![], vec![]);
                for rep in 0..r {
                    gather(terminal, r, rep, &mut buf);
                    let nr = buf.len();
                    pl.push(buf.iter().filter(|&&v| v < threshold).count() as f64 / nr as f64);
                    pr.push(buf.iter().filter(|&&v| v <= 0.0).count() as f64 / nr as f64);
                    let k95 = (0.05 * nr as f64).ceil() as usize;
                    let k99 = (0.01 * nr as f64).ceil() as usize;
                    e95.push((threshold - lower_tail_mean(&mut buf, k95)) / v0);
                    e99.push((threshold - lower_tail_mean(&mut buf[..k95.clamp(1, nr)], k99)) / v0);
                }
                let _ = t;
                (Some(reps), Some((pl, pr)), Some((e95, e99)))
            }
            _ => (None, None, None),
        };
        if cancelled() {
            return None;
        }
        // The tail means sum in the order these two selections leave the
        // values in (part of the value-stability contract).
        let (tail95, var95) = tail(terminal, m95);
        if cancelled() {
            return None;
        }
        let (tail99, var99) = tail(&mut terminal[..m95.clamp(1, np)], m99);
        if cancelled() {
            return None;
        }

        // Year-end bands (terminal included); each is a pure function of its
        // column, so neither the thread count nor inlining matters.
        let mut t_reps = t_reps;
        let band = |q: &mut Quantiles, (y, col): (usize, &mut [f64]), reps| {
            let last = y + 1 == years;
            col_stats(col, &PERCENTILE_PROBS, ctx, q, last.then_some(t_se), reps)
        };
        let bands: Option<Vec<ColStats<9>>> = if by_year.len() <= INLINE_VALUES {
            by_year
                .chunks_mut(np)
                .enumerate()
                .map(|yc| {
                    let reps = if yc.0 + 1 == years {
                        t_reps.take()
                    } else {
                        None
                    };
                    band(&mut q, yc, reps)
                })
                .collect()
        } else {
            let t_reps = std::sync::Mutex::new(t_reps.take());
            by_year
                .par_chunks_mut(np)
                .enumerate()
                .map_init(Quantiles::new, |q, yc| {
                    let reps = if yc.0 + 1 == years {
                        t_reps.lock().ok().and_then(|mut g| g.take())
                    } else {
                        None
                    };
                    band(q, yc, reps)
                })
                .collect()
        };
        let bands = bands?;
        let yearly: Vec<YearBand> = bands
            .iter()
            .enumerate()
            .map(|(y, c)| c.band(y as u32 + 1))
            .collect();
        let last = &bands[years - 1];
        let terminal = TerminalStats {
            mean: t_mean,
            std_dev: t_sd,
            std_error: match ctx.mode {
                Mode::Replicates { .. } => last.mean_se,
                _ => t_se,
            },
            percentiles: yearly[years - 1].percentiles.clone(),
            histogram: hist,
            mean_interval: match ctx.mode {
                Mode::Iid => Interval::around(t_mean, ctx.z * t_se),
                Mode::Exact => Interval::around(t_mean, 0.0),
                // The band's (skew-corrected, asymmetric) interval, moved
                // onto `t_mean` should the two sums differ in rounding.
                Mode::Replicates { .. } => last.mean_iv.map(|x| x + (t_mean - last.mean)),
            },
            percentile_intervals: PercentileIntervals::from_array(last.iv),
        };
        let loss = |v: f64| (threshold - v) / v0;
        let es_iv =
            |tail_mean: f64, tail_var: f64, alpha: f64, q_value: f64, reps: Option<&Vec<f64>>| {
                let es = loss(tail_mean);
                match ctx.mode {
                    Mode::Iid => {
                        let var_l = tail_var / (v0 * v0);
                        let d = es - loss(q_value);
                        let se = ((var_l + alpha * d * d) / (n * (1.0 - alpha))).sqrt();
                        Interval::around(es, ctx.z * se)
                    }
                    Mode::Exact => Interval::around(es, 0.0),
                    Mode::Replicates { t, .. } => {
                        replicate_interval(es, reps.map_or(&[][..], |v| v), t)
                    }
                }
            };
        let p = terminal.percentiles.clone();
        let es95 = es_iv(tail95, var95, 0.95, p.p5, rep_es.as_ref().map(|e| &e.0));
        let es99 = es_iv(tail99, var99, 0.99, p.p1, rep_es.as_ref().map(|e| &e.1));
        let (pl, pr) = match &rep_props {
            Some((a, b)) => (Some(&a[..]), Some(&b[..])),
            None => (None, None),
        };
        Some(ValueSummary {
            loss_iv: ctx.proportion(losses, np, pl),
            ruin_iv: ctx.proportion(ruined, np, pr),
            terminal,
            yearly,
            last: last.br,
            losses,
            ruined,
            es95: (tail95, es95),
            es99: (tail99, es99),
        })
    }
}

/// Control-variate estimates prepared from the path-ordered terminal values.
struct CvPrep {
    mean: f64,
    se: f64,
    mean_iv: Interval,
    correlation: f64,
    mu_c: f64,
    sd_c: Option<f64>,
    /// Per batch: (percentiles of V_T, percentiles of C).
    batches: Vec<([f64; 9], [f64; 9])>,
    /// Pooled percentiles of C.
    pooled_c: [f64; 9],
}

impl Simulation {
    /// Exact mean and (GBM) standard deviation of the control `C`.
    fn control_moments(&self) -> (f64, Option<f64>) {
        let n = self.n_assets;
        let nf = self.n_factors;
        let steps = self.total_steps as f64;
        let mu: f64 = self
            .weights
            .iter()
            .zip(&self.log_drift)
            .map(|(w, a)| w * a)
            .sum::<f64>()
            * steps;
        let sd = matches!(self.model, Model::Gbm).then(|| {
            let per_step: f64 = (0..nf)
                .map(|j| {
                    let c: f64 = (0..n)
                        .map(|i| self.weights[i] * self.shock_matrix[i * nf + j])
                        .sum();
                    c * c
                })
                .sum();
            (per_step * steps).sqrt()
        });
        (mu, sd)
    }

    fn cv_prep(&self, y: &[f64], c_log: &[f64], ctx: &Ctx) -> Option<CvPrep> {
        let (mu_c, sd_c) = self.control_moments();
        // The mean's control: `e^C` with the exact lognormal mean under GBM
        // (V_T is close to proportional to it), `C` otherwise.
        let (c_mean, mu_mean): (Vec<f64>, f64) = match sd_c {
            Some(sd) => (
                c_log.iter().map(|&x| crate::fastmath::exp(x)).collect(),
                crate::fastmath::exp(mu_c + 0.5 * sd * sd),
            ),
            None => (c_log.to_vec(), mu_c),
        };
        let c = &c_mean[..];
        let uy = units(y, ctx.antithetic);
        let uc = units(c, ctx.antithetic);
        let (my, mc) = (mean(&uy), mean(&uc));
        let (mut syc, mut scc, mut syy) = (0.0, 0.0, 0.0);
        for (a, b) in uy.iter().zip(&uc) {
            syc += (a - my) * (b - mc);
            scc += (b - mc) * (b - mc);
            syy += (a - my) * (a - my);
        }
        let beta = if scc > 0.0 { syc / scc } else { 0.0 };
        let correlation = if scc > 0.0 && syy > 0.0 {
            syc / (scc * syy).sqrt()
        } else {
            0.0
        };
        let cv_mean = my - beta * (mc - mu_mean);
        let resid: Vec<f64> = uy.iter().zip(&uc).map(|(a, b)| a - beta * b).collect();
        let np = y.len();
        let (se, mean_iv) = match ctx.mode {
            Mode::Replicates { r, t } => {
                let mut by = Vec::new();
                let mut bc = Vec::new();
                let est: Vec<f64> = (0..r)
                    .map(|rep| {
                        gather(y, r, rep, &mut by);
                        gather(c, r, rep, &mut bc);
                        mean(&by) - beta * (mean(&bc) - mu_mean)
                    })
                    .collect();
                let iv = replicate_mean_interval(cv_mean, &est, t);
                (replicate_se(&est), iv)
            }
            _ => {
                let se = std_dev(&resid, mean(&resid)) / (resid.len() as f64).sqrt();
                (se, Interval::around(cv_mean, ctx.z * se))
            }
        };
        // Batches for the percentile slopes.
        let nb = match ctx.mode {
            Mode::Replicates { r, .. } => r,
            _ => (np / 64).clamp(4, 32),
        };
        let batch_of = |p: usize| match ctx.mode {
            Mode::Replicates { r, .. } => p % r,
            _ => (p / LANES) % nb,
        };
        let mut q = Quantiles::new();
        let mut batches = Vec::with_capacity(nb);
        let (mut by, mut bc) = (Vec::new(), Vec::new());
        for b in 0..nb {
            by.clear();
            bc.clear();
            for p in (0..np).filter(|&p| batch_of(p) == b) {
                by.push(y[p]);
                bc.push(c_log[p]);
            }
            if by.is_empty() {
                continue;
            }
            // Under RQMC the batches are the scramblings: Hazen percentiles,
            // like the replicated estimate of V_T itself.
            let rule = match ctx.mode {
                Mode::Replicates { .. } => hazen_ranks,
                _ => type7_ranks,
            };
            let qy = q.brackets_with(&mut by, &PERCENTILE_PROBS, rule, ctx.cancelled)?;
            let qc = q.brackets_with(&mut bc, &PERCENTILE_PROBS, rule, ctx.cancelled)?;
            batches.push((qy.map(|b| b.value()), qc.map(|b| b.value())));
        }
        // The control's estimate must match the one of V_T: under RQMC the
        // mean of the replicate percentiles, otherwise the pooled one.
        let pooled_c = match ctx.mode {
            Mode::Replicates { .. } => {
                let mut m = [0.0; 9];
                for (k, mk) in m.iter_mut().enumerate() {
                    *mk = batches.iter().map(|b| b.1[k]).sum::<f64>() / batches.len() as f64;
                }
                m
            }
            _ => {
                let mut call = c_log.to_vec();
                q.brackets(&mut call, &PERCENTILE_PROBS, ctx.cancelled)?
                    .map(|b| b.value())
            }
        };
        Some(CvPrep {
            mean: cv_mean,
            se,
            mean_iv,
            correlation,
            mu_c,
            sd_c,
            batches,
            pooled_c,
        })
    }
}

/// `Q̂_Y − β̂(Q̂_C − Q_C)` per percentile with its batch interval.
fn cv_percentiles(
    prep: &CvPrep,
    raw: &[f64; 9],
    raw_iv: &[Interval; 9],
    sd_c: f64,
    level: f64,
) -> ([f64; 9], [Interval; 9]) {
    let b = prep.batches.len();
    let t = if b > 2 {
        student_t_quantile(0.5 + 0.5 * level, (b - 2) as u32)
    } else {
        f64::INFINITY
    };
    let mut out = [0.0; 9];
    let mut iv = [Interval::around(0.0, 0.0); 9];
    for k in 0..9 {
        let qc_exact = prep.mu_c + sd_c * normal_quantile(PERCENTILE_PROBS[k]);
        // On the log scale, where V_T is nearly linear in the control; a
        // percentile in the ruined region (≤ 0) keeps its plain estimate.
        if raw[k] <= 0.0 || prep.batches.iter().any(|x| x.0[k] <= 0.0) {
            out[k] = raw[k];
            iv[k] = raw_iv[k];
            continue;
        }
        let ys: Vec<f64> = prep.batches.iter().map(|x| libm::log(x.0[k])).collect();
        let cs: Vec<f64> = prep.batches.iter().map(|x| x.1[k]).collect();
        let (my, mc) = (mean(&ys), mean(&cs));
        let (mut syc, mut scc) = (0.0, 0.0);
        for (a, c) in ys.iter().zip(&cs) {
            syc += (a - my) * (c - mc);
            scc += (c - mc) * (c - mc);
        }
        let beta = if scc > 0.0 { syc / scc } else { 0.0 };
        let log_est = libm::log(raw[k]) - beta * (prep.pooled_c[k] - qc_exact);
        let resid: Vec<f64> = ys.iter().zip(&cs).map(|(a, c)| a - beta * c).collect();
        let m = mean(&resid);
        let sd = if b > 2 {
            (resid.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / (b - 2) as f64).sqrt()
        } else {
            f64::INFINITY
        };
        let half = t * sd / (b as f64).sqrt();
        out[k] = crate::fastmath::exp(log_est);
        iv[k] = Interval {
            lower: crate::fastmath::exp(log_est - half),
            upper: crate::fastmath::exp(log_est + half),
        };
    }
    (out, iv)
}

impl Simulation {
    /// Runs the simulation on the current rayon pool (wrap the call in
    /// `pool.install(..)` to choose the pool). Deterministic: the same spec
    /// gives bit-identical results for any thread count.
    ///
    /// Memory: `O(paths × horizon_years)` (year-end values of every path),
    /// never `O(paths × steps)`. Cost: `O(paths × steps × assets²/2)` for
    /// the shock correlation plus one `exp` per asset-step.
    ///
    /// # Examples
    /// ```
    /// use engine::*;
    /// let spec = SimulationSpec {
    ///     assets: vec![
    ///         Asset { weight: 0.6, drift: 0.07, volatility: 0.16 },
    ///         Asset { weight: 0.4, drift: 0.03, volatility: 0.06 },
    ///     ],
    ///     correlation: vec![vec![1.0, 0.2], vec![0.2, 1.0]],
    ///     initial_value: 100_000.0,
    ///     horizon_years: 5,
    ///     steps_per_year: 12,
    ///     paths: 1_000,
    ///     seed: 7,
    ///     model: ReturnModel::Gbm,
    ///     rebalancing: Rebalancing::Annually,
    ///     cash_flow: Some(CashFlow { amount: -500.0, frequency: CashFlowFrequency::EveryStep, annual_growth: 0.02 }),
    ///     antithetic: true,
    ///     histogram_bins: 25,
    ///     ..Default::default()
    /// };
    /// let sim = Simulation::new(spec)?;
    /// let a = sim.run();
    /// let b = sim.run();
    /// assert_eq!(a, b);
    /// assert_eq!(a.engine_version, ENGINE_VERSION);
    /// assert!(a.risk.cvar_95 >= a.risk.var_95);
    /// assert!(a.terminal.percentile_intervals.p50.contains(a.terminal.percentiles.p50));
    /// # Ok::<(), engine::SpecError>(())
    /// ```
    pub fn run(&self) -> SimulationResult {
        self.run_with(&RunControl::new()).unwrap_or_else(|_| {
            unreachable!("a run without a cancellation flag is never cancelled")
        })
    }

    /// Simulates chunks `from..to` (in chunk order), reporting progress.
    pub(crate) fn simulate_chunks(
        &self,
        from: u64,
        to: u64,
        control: &RunControl,
    ) -> Result<Vec<ChunkOut>, RunError> {
        let total = to - from;
        let done = AtomicU64::new(0);
        let one = |c: u64| -> Option<ChunkOut> {
            if control.cancelled() {
                return None;
            }
            let out = simulate_chunk(self, c);
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            control.report(Progress {
                chunks_done: d,
                chunks_total: total,
            });
            Some(out)
        };
        let work = (to - from) * CHUNK_PATHS as u64 * self.n_assets as u64 * self.total_steps;
        let outs: Option<Vec<ChunkOut>> = if work <= INLINE_WORK {
            (from..to).map(one).collect()
        } else {
            (from..to).into_par_iter().map(one).collect()
        };
        outs.ok_or_else(|| RunError::Cancelled {
            chunks_done: done.load(Ordering::Relaxed),
            chunks_total: total,
        })
    }

    /// [`Simulation::run`] with a progress callback and a cancellation flag
    /// (see [`RunControl`]). Neither affects the result: it is bit-identical
    /// to [`Simulation::run`]'s.
    ///
    /// # Errors
    /// [`RunError::Cancelled`] if the flag was set before the run finished.
    pub fn run_with(&self, control: &RunControl) -> Result<SimulationResult, RunError> {
        let np = self.paths as usize;
        let chunks = np.div_ceil(CHUNK_PATHS) as u64;
        let outs = self.simulate_chunks(0, chunks, control)?;
        self.reduce(&outs, control)
    }

    /// Reduces the chunk outputs of the first `self.paths` paths.
    pub(crate) fn reduce(
        &self,
        outs: &[ChunkOut],
        control: &RunControl,
    ) -> Result<SimulationResult, RunError> {
        let spec = &self.spec;
        let np = self.paths as usize;
        let years = spec.horizon_years as usize;
        let chunks = np.div_ceil(CHUNK_PATHS) as u64;
        let is_cancelled = || control.cancelled();
        let stop = || RunError::Cancelled {
            chunks_done: chunks,
            chunks_total: chunks,
        };
        if is_cancelled() {
            return Err(stop());
        }

        // Assemble year-major columns in chunk (= path) order.
        let assemble = |field: fn(&ChunkOut) -> &Vec<f64>, rows: usize| -> Option<Vec<f64>> {
            let mut cols = vec![0.0f64; rows * np];
            for (c, o) in outs.iter().enumerate() {
                if c % 256 == 255 && is_cancelled() {
                    return None;
                }
                let base = c * CHUNK_PATHS;
                let f = field(o);
                for y in 0..rows {
                    cols[y * np + base..y * np + base + o.len]
                        .copy_from_slice(&f[y * o.len..(y + 1) * o.len]);
                }
            }
            Some(cols)
        };
        let mut by_year = assemble(|o| &o.year_values, years).ok_or_else(stop)?;
        let mut mdd = assemble(|o| &o.max_drawdown, 1).ok_or_else(stop)?;
        let tracked_cpi = !outs.is_empty() && !outs[0].year_cpi.is_empty();
        let cpi = if tracked_cpi {
            Some(assemble(|o| &o.year_cpi, years).ok_or_else(stop)?)
        } else {
            None
        };
        let wd = if spec.withdrawal.is_some() {
            Some(assemble(|o| &o.year_withdrawals, years).ok_or_else(stop)?)
        } else {
            None
        };
        let ctrl = if self.cv {
            Some(assemble(|o| &o.control, 1).ok_or_else(stop)?)
        } else {
            None
        };

        let mode = if matches!(self.model, Model::Cohorts { .. }) {
            Mode::Exact
        } else if let Some(q) = &self.qmc {
            let r = q.scramblings as usize;
            Mode::Replicates {
                r,
                t: student_t_quantile(0.5 + 0.5 * spec.confidence_level, (r - 1) as u32),
            }
        } else {
            Mode::Iid
        };
        let ctx = Ctx {
            z: self.z,
            mode,
            antithetic: spec.antithetic,
            cancelled: &is_cancelled,
        };

        let v0 = spec.initial_value;
        let threshold = v0 + self.net_contributions();
        let t_years = spec.horizon_years as f64;

        // Path-order-dependent preparations first.
        let mut real = cpi.as_ref().map(|c| {
            by_year
                .iter()
                .zip(c)
                .map(|(v, i)| v / i)
                .collect::<Vec<f64>>()
        });
        let mut wd_real: Option<Vec<f64>> = None;
        let mut wd_totals: Option<(Vec<f64>, Option<Vec<f64>>)> = None;
        if let Some(w) = &wd {
            let mut tot = vec![0.0; np];
            for y in 0..years {
                for (t, &x) in tot.iter_mut().zip(&w[y * np..(y + 1) * np]) {
                    *t += x;
                }
            }
            let real_paid = cpi.as_ref().map(|c| {
                let mut r = vec![0.0; years * np];
                for y in 0..years {
                    for p in 0..np {
                        let i = if y == 0 { 1.0 } else { c[(y - 1) * np + p] };
                        r[y * np + p] = w[y * np + p] / i;
                    }
                }
                r
            });
            let tot_real = real_paid.as_ref().map(|r| {
                let mut t = vec![0.0; np];
                for y in 0..years {
                    for (tt, &x) in t.iter_mut().zip(&r[y * np..(y + 1) * np]) {
                        *tt += x;
                    }
                }
                t
            });
            wd_real = real_paid;
            wd_totals = Some((tot, tot_real));
        }
        let cohorts = if let Model::Cohorts { stride, .. } = &self.model {
            let term = &by_year[(years - 1) * np..];
            let depleted: Vec<Option<u32>> = (0..np)
                .map(|p| {
                    (0..years)
                        .find(|&y| by_year[y * np + p] <= 0.0)
                        .map(|y| y as u32 + 1)
                })
                .collect();
            let real_term = real.as_ref().map(|r| r[(years - 1) * np..].to_vec());
            let key = real_term.as_deref().unwrap_or(term);
            let worst = (0..np)
                .min_by(|&a, &b| {
                    let da = depleted[a].unwrap_or(u32::MAX);
                    let db = depleted[b].unwrap_or(u32::MAX);
                    da.cmp(&db).then(key[a].total_cmp(&key[b])).then(a.cmp(&b))
                })
                .unwrap_or(0);
            let survived: Vec<bool> = depleted.iter().map(|d| d.is_none()).collect();
            let ok = survived.iter().filter(|&&s| s).count();
            Some(CohortStats {
                start_periods: (0..np).map(|k| k * stride).collect(),
                survived,
                depleted_in_year: depleted,
                terminal_values: term.to_vec(),
                terminal_real_values: real_term,
                worst_cohort: worst,
                success_rate: ok as f64 / np as f64,
            })
        } else {
            None
        };
        let cv = match &ctrl {
            Some(c) => Some(
                self.cv_prep(&by_year[(years - 1) * np..], c, &ctx)
                    .ok_or_else(stop)?,
            ),
            None => None,
        };
        if is_cancelled() {
            return Err(stop());
        }

        // Nominal values.
        let nominal = self
            .value_summary(&mut by_year, threshold, &ctx)
            .ok_or_else(stop)?;
        let cagr_of = |v: f64| {
            if v <= 0.0 {
                -1.0
            } else {
                // libm: the same bits on every platform.
                libm::pow(v / v0, 1.0 / t_years) - 1.0
            }
        };
        let loss = |v: f64| (threshold - v) / v0;
        let mut terminal = nominal.terminal;
        let mut cv_stats = None;
        if let Some(prep) = &cv {
            cv_stats = Some(ControlVariateStats {
                raw_mean: terminal.mean,
                raw_mean_interval: terminal.mean_interval,
                raw_percentiles: terminal.percentiles.clone(),
                raw_percentile_intervals: terminal.percentile_intervals.clone(),
                control_mean: prep.mu_c,
                control_std_dev: prep.sd_c,
                correlation: prep.correlation,
                batches: prep.batches.len() as u32,
            });
            terminal.mean = prep.mean;
            terminal.std_error = prep.se;
            terminal.mean_interval = prep.mean_iv;
            // Percentiles only under RQMC: with independent paths the batch
            // estimate of the adjusted quantile's variance was measured far
            // too small (coverage 59-76 % instead of 95 %).
            if let (Some(sd_c), Mode::Replicates { .. }) = (prep.sd_c, mode) {
                let (p, iv) = cv_percentiles(
                    prep,
                    &terminal.percentiles.to_array(),
                    &terminal.percentile_intervals.to_array(),
                    sd_c,
                    spec.confidence_level,
                );
                terminal.percentiles = Percentiles::from_array(p);
                terminal.percentile_intervals = PercentileIntervals::from_array(iv);
            }
        }
        let t_pct = terminal.percentiles.clone();
        let t_iv = terminal.percentile_intervals.clone();
        let n = np as f64;
        let cagr_iv = PercentileIntervals::from_array(
            nominal.yearly[years - 1]
                .percentile_intervals
                .to_array()
                .map(|iv| iv.map(cagr_of)),
        );
        let mut dq = Quantiles::new();
        let dd = col_stats(&mut mdd, &[0.5, 0.95], &ctx, &mut dq, None, None).ok_or_else(stop)?;
        let risk = RiskStats {
            probability_of_loss: nominal.losses as f64 / n,
            probability_of_ruin: nominal.ruined as f64 / n,
            success_rate: 1.0 - nominal.ruined as f64 / n,
            var_95: loss(t_pct.p5),
            cvar_95: loss(nominal.es95.0),
            var_99: loss(t_pct.p1),
            cvar_99: loss(nominal.es99.0),
            max_drawdown_p50: dd.br[0].value(),
            max_drawdown_p95: dd.br[1].value(),
            cagr: Percentiles::from_array(nominal.last.map(|b| b.map(cagr_of))),
            probability_of_loss_interval: nominal.loss_iv,
            probability_of_ruin_interval: nominal.ruin_iv,
            success_rate_interval: nominal.ruin_iv.map_decreasing(|p| 1.0 - p),
            var_95_interval: t_iv.p5.map_decreasing(loss),
            cvar_95_interval: nominal.es95.1,
            var_99_interval: t_iv.p1.map_decreasing(loss),
            cvar_99_interval: nominal.es99.1,
            max_drawdown_p50_interval: dd.iv[0],
            max_drawdown_p95_interval: dd.iv[1],
            cagr_intervals: cagr_iv,
        };
        if is_cancelled() {
            return Err(stop());
        }

        // Real values.
        let real_stats = match real.as_mut() {
            None => None,
            Some(r) => {
                let s = self.value_summary(r, threshold, &ctx).ok_or_else(stop)?;
                let p = s.terminal.percentiles.clone();
                let iv = s.terminal.percentile_intervals.clone();
                Some(RealStats {
                    probability_of_loss: s.losses as f64 / n,
                    probability_of_loss_interval: s.loss_iv,
                    var_95: loss(p.p5),
                    var_95_interval: iv.p5.map_decreasing(loss),
                    cvar_95: loss(s.es95.0),
                    cvar_95_interval: s.es95.1,
                    var_99: loss(p.p1),
                    var_99_interval: iv.p1.map_decreasing(loss),
                    cvar_99: loss(s.es99.0),
                    cvar_99_interval: s.es99.1,
                    cagr: Percentiles::from_array(s.last.map(|b| b.map(cagr_of))),
                    cagr_intervals: PercentileIntervals::from_array(
                        iv.to_array().map(|x| x.map(cagr_of)),
                    ),
                    terminal: s.terminal,
                    yearly: s.yearly,
                })
            }
        };

        // Withdrawals.
        let withdrawals = match (wd, wd_totals) {
            (Some(mut w), Some((mut tot, tot_real))) => {
                let mut q = Quantiles::new();
                let mut bands = |cols: &mut [f64]| -> Option<Vec<YearBand>> {
                    cols.chunks_mut(np)
                        .enumerate()
                        .map(|(y, c)| {
                            Some(
                                col_stats(c, &PERCENTILE_PROBS, &ctx, &mut q, None, None)?
                                    .band(y as u32 + 1),
                            )
                        })
                        .collect()
                };
                let yearly = bands(&mut w).ok_or_else(stop)?;
                let yearly_real = match wd_real.as_mut() {
                    Some(r) => Some(bands(r).ok_or_else(stop)?),
                    None => None,
                };
                let total = col_stats(&mut tot, &PERCENTILE_PROBS, &ctx, &mut q, None, None)
                    .ok_or_else(stop)?
                    .distribution();
                let total_real = match tot_real {
                    Some(mut t) => Some(
                        col_stats(&mut t, &PERCENTILE_PROBS, &ctx, &mut q, None, None)
                            .ok_or_else(stop)?
                            .distribution(),
                    ),
                    None => None,
                };
                Some(WithdrawalStats {
                    yearly,
                    yearly_real,
                    total,
                    total_real,
                })
            }
            _ => None,
        };

        Ok(SimulationResult {
            seed: spec.seed,
            engine_version: std::borrow::Cow::Borrowed(ENGINE_VERSION),
            paths: self.paths,
            steps: self.total_steps,
            terminal,
            risk,
            yearly: nominal.yearly,
            confidence_level: spec.confidence_level,
            interval_method: match mode {
                Mode::Iid => IntervalMethod::OrderStatistics,
                Mode::Replicates { r, .. } => IntervalMethod::Replicates {
                    replicates: r as u32,
                },
                Mode::Exact => IntervalMethod::Exact,
            },
            real: real_stats,
            withdrawals,
            cohorts,
            control_variate: cv_stats,
        })
    }
}

/// The confidence level results stored before engine 0.5 were reported at
/// (they carried no intervals).
#[cfg(feature = "serde")]
fn default_confidence_level() -> f64 {
    0.95
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_matches_hand_values() {
        let mut x = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&mut x.clone(), 0.5), 3.0);
        assert_eq!(percentile(&mut x.clone(), 0.0), 1.0);
        assert_eq!(percentile(&mut x.clone(), 1.0), 5.0);
        // h = 4 · 0.1 = 0.4 → 1 + 0.4 · (2 − 1)
        assert!((percentile(&mut x, 0.1) - 1.4).abs() < 1e-15);
    }

    #[test]
    fn brackets_agree_with_sorting() {
        let mut s = 12345u64;
        let data: Vec<f64> = (0..1001)
            .map(|_| (crate::rng::splitmix64(&mut s) >> 11) as f64)
            .collect();
        let mut sorted = data.clone();
        sorted.sort_by(f64::total_cmp);
        let got = brackets(&mut data.clone(), &PERCENTILE_PROBS);
        for (b, p) in got.iter().zip(PERCENTILE_PROBS) {
            let h = 1000.0 * p;
            let k = h.floor() as usize;
            let want = sorted[k] + (h - k as f64) * (sorted[(k + 1).min(1000)] - sorted[k]);
            assert!((b.value() - want).abs() <= 1e-9 * want.abs());
        }
    }

    #[test]
    fn histogram_counts_everything() {
        let h = histogram(&[1.0, 2.0, 3.0, 4.0], 3);
        assert_eq!(h.counts.iter().sum::<u64>(), 4);
        assert_eq!(h.edges.len(), 4);
        let flat = histogram(&[2.0; 5], 4);
        assert_eq!(flat.counts.iter().sum::<u64>(), 5);
        assert!(flat.edges.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn antithetic_standard_error_uses_pairs() {
        let x = [1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0];
        assert_eq!(std_error(&x, true), 0.0);
        assert!(std_error(&x, false) > 0.0);
    }
}
