//! Result types and the reduction of simulated paths to statistics.
//!
//! # Percentile definition
//! All percentiles use Hyndman & Fan (1996) type 7 (the default of R and
//! NumPy): for sorted values `x₀ ≤ … ≤ x_{n−1}` and probability `p`,
//! `h = (n − 1)·p`, `Q(p) = x_⌊h⌋ + (h − ⌊h⌋)·(x_{⌊h⌋+1} − x_⌊h⌋)`.
//! Order statistics come from one sort of a small column, or from selection
//! with narrowing ranges for a large one (see `order.rs`); the values do not
//! depend on the method.

use rayon::prelude::*;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::ENGINE_VERSION;
use crate::control::{Progress, RunControl, RunError};
use crate::kernel::{ChunkOut, LANES, simulate_chunk};
use crate::order::{OrderScratch, order_stats};
use crate::rng::CHUNK_PATHS;
use crate::spec::Simulation;

/// Runs with at most this many asset-steps (about 0.1 ms of kernel time)
/// are simulated on the calling thread: waking the rayon pool costs more.
/// The result does not depend on it (chunks are combined in chunk order).
pub(crate) const INLINE_WORK: u64 = 1 << 17;
/// Year-end columns are reduced in parallel only above this many values.
const INLINE_VALUES: usize = 1 << 16;

/// The nine reported percentiles (type 7, see the module docs), same unit as
/// the underlying quantity.
#[derive(Debug, Clone, PartialEq)]
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

/// Equal-width histogram of terminal values between their minimum and
/// maximum (currency units). Bin `k` covers `[edges[k], edges[k+1])`, the
/// last bin is closed. If all values are equal the edges span `value ± 0.5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// `bins + 1` increasing edges.
    pub edges: Vec<f64>,
    /// `bins` counts summing to the number of paths.
    pub counts: Vec<u64>,
}

/// Distribution of the terminal portfolio value V_T (currency units).
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalStats {
    /// Sample mean of V_T.
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator; 0 for one path).
    pub std_dev: f64,
    /// Standard error of the mean. With antithetic variates it is computed
    /// from the pair averages, `sd(pair means)/√pairs`, which is what the
    /// variance reduction lowers.
    pub std_error: f64,
    /// Percentiles of V_T.
    pub percentiles: Percentiles,
    /// Histogram of V_T.
    pub histogram: Histogram,
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
    /// (fraction, monitored at every step including cash flows).
    pub max_drawdown_p50: f64,
    /// 95th percentile of the maximum drawdown.
    pub max_drawdown_p95: f64,
    /// Percentiles of the per-path CAGR `(V_T / V₀)^{1/T} − 1` (decimal a
    /// year; −1 for a ruined path).
    pub cagr: Percentiles,
}

/// Cross-section of the portfolio value at the end of a year (fan charts).
#[derive(Debug, Clone, PartialEq)]
pub struct YearBand {
    /// Year end, 1..=horizon_years.
    pub year: u32,
    /// Mean value (currency units).
    pub mean: f64,
    /// Percentiles of the value (currency units).
    pub percentiles: Percentiles,
}

/// Everything a run produces. A pure function of the spec (including the
/// seed) and [`ENGINE_VERSION`], independent of the number of threads.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationResult {
    /// The seed used.
    pub seed: u64,
    /// [`ENGINE_VERSION`] of the engine that produced it.
    pub engine_version: &'static str,
    /// Number of paths.
    pub paths: u64,
    /// Total number of time steps (`horizon_years × steps_per_year`).
    pub steps: u64,
    /// Terminal value distribution.
    pub terminal: TerminalStats,
    /// Risk measures.
    pub risk: RiskStats,
    /// One band per year end 1..=horizon_years (the last equals `terminal`).
    pub yearly: Vec<YearBand>,
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

/// Computes type-7 brackets for several probabilities of one column with a
/// single pass of order statistics ([`order_stats`]); reorders `data`.
/// `None` if cancelled.
struct Quantiles {
    ranks: Vec<usize>,
    values: Vec<f64>,
    scratch: OrderScratch,
}

impl Quantiles {
    fn new() -> Self {
        Quantiles {
            ranks: Vec::new(),
            values: Vec::new(),
            scratch: OrderScratch::default(),
        }
    }

    fn brackets<const K: usize>(
        &mut self,
        data: &mut [f64],
        probs: &[f64; K],
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
        self.ranks.clear();
        for &p in probs {
            let (lo, hi, _) = type7_ranks(n, p);
            self.ranks.push(lo);
            self.ranks.push(hi);
        }
        self.ranks.sort_unstable();
        self.ranks.dedup();
        self.values.resize(self.ranks.len(), 0.0);
        if !order_stats(
            data,
            &self.ranks,
            &mut self.values,
            &mut self.scratch,
            cancelled,
        ) {
            return None;
        }
        let at = |r: usize| {
            self.values[self
                .ranks
                .binary_search(&r)
                .unwrap_or_else(|_| unreachable!())]
        };
        for (b, &p) in out.iter_mut().zip(probs) {
            let (lo, hi, frac) = type7_ranks(n, p);
            *b = Bracket {
                lo: at(lo),
                hi: at(hi),
                frac,
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

/// Standard error of the mean; antithetic pairs `(p, p + LANES/2)` for
/// `p mod LANES < LANES/2` are averaged first.
fn std_error(x: &[f64], antithetic: bool) -> f64 {
    let n = x.len();
    if !antithetic {
        return std_dev(x, mean(x)) / (n as f64).sqrt();
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
    std_dev(&units, mean(&units)) / (units.len() as f64).sqrt()
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
    /// };
    /// let sim = Simulation::new(spec)?;
    /// let a = sim.run();
    /// let b = sim.run();
    /// assert_eq!(a, b);
    /// assert_eq!(a.engine_version, ENGINE_VERSION);
    /// assert!(a.risk.cvar_95 >= a.risk.var_95);
    /// # Ok::<(), engine::SpecError>(())
    /// ```
    pub fn run(&self) -> SimulationResult {
        self.run_with(&RunControl::new()).unwrap_or_else(|_| {
            unreachable!("a run without a cancellation flag is never cancelled")
        })
    }

    /// [`Simulation::run`] with a progress callback and a cancellation flag
    /// (see [`RunControl`]). Neither affects the result: it is bit-identical
    /// to [`Simulation::run`]'s.
    ///
    /// # Errors
    /// [`RunError::Cancelled`] if the flag was set before the run finished.
    pub fn run_with(&self, control: &RunControl) -> Result<SimulationResult, RunError> {
        let spec = &self.spec;
        let np = spec.paths as usize;
        let years = spec.horizon_years as usize;
        let chunks = np.div_ceil(CHUNK_PATHS) as u64;
        let done = AtomicU64::new(0);
        let cancelled = |d: u64| RunError::Cancelled {
            chunks_done: d,
            chunks_total: chunks,
        };
        let one = |c: u64| -> Option<ChunkOut> {
            if control.cancelled() {
                return None;
            }
            let out = simulate_chunk(self, c);
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            control.report(Progress {
                chunks_done: d,
                chunks_total: chunks,
            });
            Some(out)
        };
        let outs: Option<Vec<ChunkOut>> = if self.work() <= INLINE_WORK {
            (0..chunks).map(one).collect()
        } else {
            (0..chunks).into_par_iter().map(one).collect()
        };
        let outs = outs.ok_or_else(|| cancelled(done.load(Ordering::Relaxed)))?;
        let is_cancelled = || control.cancelled();
        let stop = || cancelled(chunks);
        if is_cancelled() {
            return Err(stop());
        }

        // Assemble year-major columns in chunk (= path) order.
        let mut by_year = vec![0.0f64; years * np];
        let mut mdd = Vec::with_capacity(np);
        for (c, o) in outs.iter().enumerate() {
            if c % 256 == 255 && is_cancelled() {
                return Err(stop());
            }
            let base = c * CHUNK_PATHS;
            for y in 0..years {
                by_year[y * np + base..y * np + base + o.len]
                    .copy_from_slice(&o.year_values[y * o.len..(y + 1) * o.len]);
            }
            mdd.extend_from_slice(&o.max_drawdown);
        }
        drop(outs);

        let v0 = spec.initial_value;
        let threshold = v0 + self.net_contributions();
        let t_years = spec.horizon_years as f64;
        let n = np as f64;

        // Order-dependent terminal statistics first.
        let terminal = &mut by_year[(years - 1) * np..];
        let t_mean = mean(terminal);
        let t_sd = std_dev(terminal, t_mean);
        let t_se = std_error(terminal, spec.antithetic);
        let losses = terminal.iter().filter(|&&v| v < threshold).count();
        let ruined = terminal.iter().filter(|&&v| v <= 0.0).count();
        let hist = histogram(terminal, spec.histogram_bins as usize);
        let m95 = (0.05 * n).ceil() as usize;
        let m99 = (0.01 * n).ceil() as usize;
        if is_cancelled() {
            return Err(stop());
        }
        // The tail means sum in the order these two selections leave the
        // values in (part of the value-stability contract).
        let tail95 = lower_tail_mean(terminal, m95);
        if is_cancelled() {
            return Err(stop());
        }
        let tail99 = lower_tail_mean(&mut terminal[..m95.clamp(1, np)], m99);
        if is_cancelled() {
            return Err(stop());
        }

        // Year-end bands (terminal included); each is a pure function of its
        // column, so neither the thread count nor inlining matters.
        let band = |q: &mut Quantiles, col: &mut [f64]| -> Option<(f64, [Bracket; 9])> {
            let m = mean(col);
            Some((m, q.brackets(col, &PERCENTILE_PROBS, &is_cancelled)?))
        };
        let bands: Option<Vec<(f64, [Bracket; 9])>> = if by_year.len() <= INLINE_VALUES {
            let mut q = Quantiles::new();
            by_year
                .chunks_mut(np)
                .map(|col| band(&mut q, col))
                .collect()
        } else {
            by_year
                .par_chunks_mut(np)
                .map_init(Quantiles::new, band)
                .collect()
        };
        let bands = bands.ok_or_else(stop)?;
        let yearly: Vec<YearBand> = bands
            .iter()
            .enumerate()
            .map(|(y, (m, b))| YearBand {
                year: y as u32 + 1,
                mean: *m,
                percentiles: Percentiles::from_array(b.map(|x| x.value())),
            })
            .collect();
        let last = &bands[years - 1].1;
        let cagr_of = |v: f64| {
            if v <= 0.0 {
                -1.0
            } else {
                // libm: the same bits on every platform.
                libm::pow(v / v0, 1.0 / t_years) - 1.0
            }
        };
        let cagr = Percentiles::from_array(last.map(|b| b.map(cagr_of)));
        let t_pct = yearly[years - 1].percentiles.clone();
        let loss = |v: f64| (threshold - v) / v0;
        let [dd50, dd95] = Quantiles::new()
            .brackets(&mut mdd, &[0.5, 0.95], &is_cancelled)
            .ok_or_else(stop)?
            .map(|b| b.value());

        let risk = RiskStats {
            probability_of_loss: losses as f64 / n,
            probability_of_ruin: ruined as f64 / n,
            success_rate: 1.0 - ruined as f64 / n,
            var_95: loss(t_pct.p5),
            cvar_95: loss(tail95),
            var_99: loss(t_pct.p1),
            cvar_99: loss(tail99),
            max_drawdown_p50: dd50,
            max_drawdown_p95: dd95,
            cagr,
        };
        Ok(SimulationResult {
            seed: spec.seed,
            engine_version: ENGINE_VERSION,
            paths: spec.paths,
            steps: self.total_steps,
            terminal: TerminalStats {
                mean: t_mean,
                std_dev: t_sd,
                std_error: t_se,
                percentiles: t_pct,
                histogram: hist,
            },
            risk,
            yearly,
        })
    }
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
