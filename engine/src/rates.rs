//! Safe and perpetual withdrawal rates by bisection on common random
//! numbers, and runs to a target precision.

use crate::control::{RunControl, RunError};
use crate::intervals::Interval;
use crate::kernel::ChunkOut;
use crate::planning::WithdrawalStrategy;
use crate::rng::CHUNK_PATHS;
use crate::spec::{MAX_STORED_VALUES, Model, Simulation};
use crate::stats::{IntervalMethod, PERCENTILE_PROBS, SimulationResult};

/// A withdrawal rate with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RateEstimate {
    /// The rate (decimal of the initial value, 0.04 = 4 %).
    pub rate: f64,
    /// Interval of the rate at the run's confidence level.
    pub interval: Interval,
    /// The fraction of paths meeting the criterion at `rate`.
    pub success_at_rate: f64,
}

/// Result of [`Simulation::withdrawal_rates`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WithdrawalRates {
    /// The required probability of success.
    pub success_probability: f64,
    /// Safe withdrawal rate: the largest initial rate with which at least
    /// `success_probability` of the paths are never ruined.
    pub safe: RateEstimate,
    /// Perpetual withdrawal rate: the largest initial rate with which at
    /// least `success_probability` of the paths end with a real terminal
    /// value `V_T / I_T ≥ V₀` (nominal without an inflation model).
    pub perpetual: RateEstimate,
    /// Paths used (the same ones for every rate tried).
    pub paths: u64,
    /// How the intervals were computed.
    pub interval_method: IntervalMethod,
}

/// Bisection stops when the bracket is narrower than this (decimal rate,
/// 1e-5 = 0.001 percentage points).
pub const RATE_TOLERANCE: f64 = 1e-5;

impl Simulation {
    /// A copy whose withdrawal strategy has initial rate `rate`.
    fn with_rate(&self, rate: f64) -> Simulation {
        let mut s = self.clone();
        match s.spec.withdrawal.as_mut() {
            Some(WithdrawalStrategy::ConstantAmount { initial_rate }) => *initial_rate = rate,
            Some(WithdrawalStrategy::Guardrails(g)) => g.initial_rate = rate,
            Some(WithdrawalStrategy::FloorCeiling { rate: r, .. }) => *r = rate,
            _ => {}
        }
        s
    }

    /// Counts of (never-ruined, real-capital-preserved) paths at `rate`.
    fn success_counts(&self, rate: f64, control: &RunControl) -> Result<(u64, u64), RunError> {
        let sim = self.with_rate(rate);
        let chunks = (self.paths as usize).div_ceil(CHUNK_PATHS) as u64;
        let outs = sim.simulate_chunks(0, chunks, control)?;
        let years = self.spec.horizon_years as usize;
        let v0 = self.spec.initial_value;
        let (mut safe, mut perpetual) = (0, 0);
        for o in &outs {
            let last = &o.year_values[(years - 1) * o.len..years * o.len];
            for (p, &v) in last.iter().enumerate() {
                safe += u64::from(v > 0.0);
                let real = if o.year_cpi.is_empty() {
                    v
                } else {
                    v / o.year_cpi[(years - 1) * o.len + p]
                };
                perpetual += u64::from(real >= v0);
            }
        }
        Ok((safe, perpetual))
    }

    /// The largest initial withdrawal rate in `[0, 1]` with which at least
    /// `success_probability` of the paths survive (safe rate) and keep
    /// their real initial value (perpetual rate), each with an interval.
    ///
    /// Every rate is tried on the **same** paths (common random numbers:
    /// the chunk streams do not depend on the rate), so the success
    /// fraction is a step function of the rate, non-increasing whenever a
    /// larger rate never helps a path (exactly so for
    /// [`WithdrawalStrategy::ConstantAmount`]: with pro-rata sales the
    /// portfolio's growth does not depend on the amounts withdrawn), and
    /// the result is reproducible bit for bit. The rate is found by
    /// bisection to [`RATE_TOLERANCE`].
    ///
    /// # Formula
    /// With `S(r)` the fraction of paths meeting the criterion at rate `r`,
    /// the estimate is `sup{r : S(r) ≥ q}`. It is the `(1 − q)` quantile of
    /// the paths' own threshold rates, so its interval is the order-statistic
    /// interval of that quantile: the rates at which `S = q ± δ`,
    /// `δ = z·√(q(1−q)/n) + 1/n` (the lower bound from `q + δ`). For
    /// historical cohorts the interval is the point.
    ///
    /// # Errors
    /// [`RunError::RateSearchUnavailable`] without a withdrawal strategy
    /// that has one initial rate (`ConstantAmount`, `Guardrails`,
    /// `FloorCeiling`), with `success_probability` outside `(0, 1]`, or
    /// with positive cash flows (contributions); [`RunError::Cancelled`].
    ///
    /// # Examples
    /// ```
    /// use engine::*;
    /// let spec = SimulationSpec {
    ///     assets: vec![Asset { weight: 1.0, drift: 0.05, volatility: 0.12 }],
    ///     correlation: vec![vec![1.0]],
    ///     initial_value: 1_000_000.0,
    ///     horizon_years: 30,
    ///     steps_per_year: 1,
    ///     paths: 2_000,
    ///     seed: 3,
    ///     withdrawal: Some(WithdrawalStrategy::ConstantAmount { initial_rate: 0.04 }),
    ///     ..Default::default()
    /// };
    /// let r = Simulation::new(spec)?.withdrawal_rates(0.9, &RunControl::new()).unwrap();
    /// assert!(r.safe.rate > 0.03 && r.safe.rate < 0.08);
    /// assert!(r.safe.interval.contains(r.safe.rate));
    /// assert!(r.perpetual.rate < r.safe.rate);
    /// # Ok::<(), engine::SpecError>(())
    /// ```
    pub fn withdrawal_rates(
        &self,
        success_probability: f64,
        control: &RunControl,
    ) -> Result<WithdrawalRates, RunError> {
        let q = success_probability;
        if !(q > 0.0 && q <= 1.0) {
            return Err(RunError::RateSearchUnavailable {
                reason: "success_probability must be in (0, 1]",
            });
        }
        match self.spec.withdrawal {
            Some(WithdrawalStrategy::ConstantAmount { .. })
            | Some(WithdrawalStrategy::Guardrails(_))
            | Some(WithdrawalStrategy::FloorCeiling { .. }) => {}
            _ => {
                return Err(RunError::RateSearchUnavailable {
                    reason: "needs a ConstantAmount, Guardrails or FloorCeiling withdrawal strategy",
                });
            }
        }
        if self.flows.iter().any(|&f| f > 0.0) {
            return Err(RunError::RateSearchUnavailable {
                reason: "contributions (positive cash flows) make success non-monotone in the rate",
            });
        }
        let n = self.paths as f64;
        let exact = matches!(self.model, Model::Cohorts { .. });
        let delta = if exact {
            0.0
        } else {
            self.z * (q * (1.0 - q) / n).sqrt() + 1.0 / n
        };
        // Every evaluation, cached: (rate, safe count, perpetual count).
        let mut seen: Vec<(f64, u64, u64)> = Vec::new();
        let mut eval = |r: f64| -> Result<(u64, u64), RunError> {
            if let Some(&(_, a, b)) = seen.iter().find(|e| e.0 == r) {
                return Ok((a, b));
            }
            let c = self.success_counts(r, control)?;
            seen.push((r, c.0, c.1));
            Ok(c)
        };
        // Largest r with count(r) ≥ need, for the criterion `pick`.
        let mut solve = |need_frac: f64, pick: usize| -> Result<(f64, f64), RunError> {
            let need = (need_frac.min(1.0) * n - 1e-9).ceil().max(0.0) as u64;
            let count = |c: (u64, u64)| if pick == 0 { c.0 } else { c.1 };
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            let at_hi = count(eval(hi)?);
            if at_hi >= need {
                return Ok((hi, at_hi as f64 / n));
            }
            let mut at_lo = count(eval(lo)?);
            if at_lo < need {
                return Ok((0.0, at_lo as f64 / n));
            }
            while hi - lo > RATE_TOLERANCE {
                let mid = 0.5 * (lo + hi);
                let c = count(eval(mid)?);
                if c >= need {
                    lo = mid;
                    at_lo = c;
                } else {
                    hi = mid;
                }
            }
            Ok((lo, at_lo as f64 / n))
        };
        let mut estimate = |pick: usize| -> Result<RateEstimate, RunError> {
            let (rate, success) = solve(q, pick)?;
            let interval = if exact {
                Interval::around(rate, 0.0)
            } else {
                Interval {
                    lower: solve(q + delta, pick)?.0.min(rate),
                    upper: solve((q - delta).max(0.0), pick)?.0.max(rate),
                }
            };
            Ok(RateEstimate {
                rate,
                interval,
                success_at_rate: success,
            })
        };
        let safe = estimate(0)?;
        let perpetual = estimate(1)?;
        Ok(WithdrawalRates {
            success_probability: q,
            safe,
            perpetual,
            paths: self.paths,
            interval_method: if exact {
                IntervalMethod::Exact
            } else {
                IntervalMethod::OrderStatistics
            },
        })
    }
}

/// A figure whose interval a [`PrecisionTarget`] bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum PrecisionQuantity {
    /// The terminal mean (relative half-width).
    TerminalMean,
    /// A terminal percentile, `p` one of [`PERCENTILE_PROBS`] (relative
    /// half-width).
    TerminalPercentile {
        /// The probability, e.g. 0.5 for the median.
        p: f64,
    },
    /// The success rate (absolute half-width, e.g. 0.005 = ±0.5 points).
    SuccessRate,
}

/// One goal: the interval half-width of `quantity` at most `half_width`
/// (relative to the estimate for values, absolute for the success rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionGoal {
    /// The figure.
    pub quantity: PrecisionQuantity,
    /// The largest acceptable half-width (e.g. 0.001 = ±0.1 %).
    pub half_width: f64,
}

/// Run in batches until every goal is met or `max_paths` is reached.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionTarget {
    /// The goals (all must be met).
    pub goals: Vec<PrecisionGoal>,
    /// Path cap (the tier's), ≥ `spec.paths`.
    pub max_paths: u64,
}

/// Why a precision run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum StopReason {
    /// Every goal was met.
    TargetMet,
    /// `max_paths` was reached first.
    PathCap,
    /// The year-end storage cap ([`MAX_STORED_VALUES`]) was reached first.
    MemoryCap,
}

/// Result of [`Simulation::run_to_precision`].
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionOutcome {
    /// The final result; bit-identical to a plain run of the same spec with
    /// `paths = result.paths`.
    pub result: SimulationResult,
    /// Why the run stopped.
    pub stop_reason: StopReason,
    /// The half-width reached for each goal (same units as the goal).
    pub achieved: Vec<f64>,
    /// Batches run.
    pub rounds: u32,
}

impl Simulation {
    /// A copy with `paths` paths (chunk streams are unchanged).
    pub(crate) fn with_paths(&self, paths: u64) -> Simulation {
        let mut s = self.clone();
        s.paths = paths;
        s.spec.paths = paths;
        s
    }

    /// Runs with `spec.paths` paths, then with more, until every goal of
    /// `target` is met or a cap is reached; says which.
    ///
    /// Each round keeps the chunks already simulated (a chunk's paths do not
    /// depend on the total) and sizes the next round from the half-widths
    /// reached, assuming they shrink like `1/√paths`, with a 10 % margin and
    /// at least doubling: `n ← max(2n, 1.1 · n · max_k (h_k / goal_k)²)`,
    /// rounded up to whole chunks (pseudo-random), or, under RQMC (whose
    /// errors fall faster, so that prediction overshoots), at most `4n` and
    /// rounded up to a power of two points per scrambling (Sobol balance
    /// needs it); capped.
    /// The result is a pure function of the spec and the target.
    ///
    /// # Errors
    /// [`RunError::InvalidTarget`] for an empty goal list, a half-width
    /// `≤ 0`, a percentile not in [`PERCENTILE_PROBS`], or `max_paths <
    /// spec.paths`; [`RunError::Cancelled`].
    pub fn run_to_precision(
        &self,
        target: &PrecisionTarget,
        control: &RunControl,
    ) -> Result<PrecisionOutcome, RunError> {
        let invalid = |reason| Err(RunError::InvalidTarget { reason });
        if target.goals.is_empty() {
            return invalid("goals must not be empty");
        }
        for g in &target.goals {
            if !(g.half_width > 0.0 && g.half_width.is_finite()) {
                return invalid("every half_width must be a positive number");
            }
            if let PrecisionQuantity::TerminalPercentile { p } = g.quantity
                && !PERCENTILE_PROBS.contains(&p)
            {
                return invalid(
                    "percentile p must be one of 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99",
                );
            }
        }
        if target.max_paths < self.paths {
            return invalid("max_paths must be at least spec.paths");
        }
        if matches!(self.model, Model::Cohorts { .. }) {
            return invalid("historical cohorts have a fixed number of paths");
        }
        let years = self.spec.horizon_years as u64;
        let per_path = years
            * (1 + u64::from(!matches!(self.cpi, crate::spec::Cpi::None))
                + u64::from(self.spec.withdrawal.is_some()));
        let memory_cap = MAX_STORED_VALUES / per_path.max(1);
        let cap = target.max_paths.min(memory_cap);
        let r = self.qmc.as_ref().map_or(1, |q| u64::from(q.scramblings));
        let round_up = |n: u64| -> u64 {
            if r > 1 {
                let per = n.div_ceil(r).next_power_of_two();
                let c = per * r;
                if c > cap { cap / r * r } else { c }
            } else {
                let c = n.div_ceil(CHUNK_PATHS as u64) * CHUNK_PATHS as u64;
                c.min(cap)
            }
        };
        let mut n = self.paths;
        let mut full: Vec<ChunkOut> = Vec::new();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let sim = self.with_paths(n);
            let chunks = (n as usize).div_ceil(CHUNK_PATHS) as u64;
            let complete = n / CHUNK_PATHS as u64;
            // Reuse complete chunks; simulate the rest (a trailing partial
            // chunk is simulated again whenever n grows).
            let have = full.len() as u64;
            let mut outs = sim.simulate_chunks(have, chunks, control)?;
            let tail = if chunks > complete { outs.pop() } else { None };
            full.extend(outs);
            let mut all: Vec<ChunkOut> = Vec::new();
            let result = {
                let slice: &[ChunkOut] = if let Some(t) = tail {
                    all.reserve(full.len() + 1);
                    all.extend(full.iter().cloned());
                    all.push(t);
                    &all
                } else {
                    &full
                };
                sim.reduce(slice, control)?
            };
            let achieved: Vec<f64> = target
                .goals
                .iter()
                .map(|g| half_width(&result, g.quantity))
                .collect();
            let worst = target
                .goals
                .iter()
                .zip(&achieved)
                .map(|(g, a)| a / g.half_width)
                .fold(0.0f64, f64::max);
            let stop = if worst <= 1.0 {
                Some(StopReason::TargetMet)
            } else if n >= cap {
                Some(if cap < target.max_paths {
                    StopReason::MemoryCap
                } else {
                    StopReason::PathCap
                })
            } else {
                None
            };
            if let Some(stop_reason) = stop {
                return Ok(PrecisionOutcome {
                    result,
                    stop_reason,
                    achieved,
                    rounds,
                });
            }
            let want = if worst.is_finite() {
                (n as f64 * 1.1 * worst * worst).ceil() as u64
            } else {
                4 * n
            };
            // RQMC errors fall faster than 1/√n, so the prediction
            // overshoots: grow by at most 4× a round there.
            let want = if r > 1 { want.min(4 * n) } else { want };
            n = round_up(want.max(2 * n));
        }
    }
}

/// The half-width of a figure's interval (relative for values).
fn half_width(r: &SimulationResult, q: PrecisionQuantity) -> f64 {
    match q {
        PrecisionQuantity::TerminalMean => {
            r.terminal.mean_interval.half_width() / r.terminal.mean.abs()
        }
        PrecisionQuantity::TerminalPercentile { p } => {
            let k = PERCENTILE_PROBS.iter().position(|&x| x == p).unwrap_or(4);
            let v = r.terminal.percentiles.to_array()[k];
            r.terminal.percentile_intervals.to_array()[k].half_width() / v.abs()
        }
        PrecisionQuantity::SuccessRate => r.risk.success_rate_interval.half_width(),
    }
}
