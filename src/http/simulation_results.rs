//! The simulation result's wire types and their mapping from the stored output (the engine's
//! own result types, see `domain::simulation::SimulationOutput`).
//!
//! Every estimate carries a confidence interval at the result's `confidence_level`
//! (`…_interval`, `…_intervals`); an interval is absent when it is not known: results stored
//! before engine 0.5, or too few paths to bound it.

use super::simulation_views::{PrecisionGoal, SimulationParameters, quantity_out};
use crate::domain::SimulationId;
use crate::domain::simulation as sim;
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};

/// A two-sided confidence interval `[lower, upper]`, same unit as its figure.
#[derive(Object, Debug, Clone, Copy, PartialEq)]
pub struct IntervalView {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

fn iv(i: &engine::Interval) -> Option<IntervalView> {
    i.is_known().then_some(IntervalView {
        lower: i.lower,
        upper: i.upper,
    })
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

/// Confidence intervals of P1 … P99 (order-statistic intervals for independent paths, the
/// replicates' spread under RQMC); each absent when not known.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct PercentileIntervalsView {
    /// Interval of P1.
    pub p1: Option<IntervalView>,
    /// Interval of P5.
    pub p5: Option<IntervalView>,
    /// Interval of P10.
    pub p10: Option<IntervalView>,
    /// Interval of P25.
    pub p25: Option<IntervalView>,
    /// Interval of the median.
    pub p50: Option<IntervalView>,
    /// Interval of P75.
    pub p75: Option<IntervalView>,
    /// Interval of P90.
    pub p90: Option<IntervalView>,
    /// Interval of P95.
    pub p95: Option<IntervalView>,
    /// Interval of P99.
    pub p99: Option<IntervalView>,
}

fn pct(p: &engine::Percentiles) -> PercentilesView {
    PercentilesView {
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

fn pct_iv(p: &engine::PercentileIntervals) -> Option<PercentileIntervalsView> {
    let all = [p.p1, p.p5, p.p10, p.p25, p.p50, p.p75, p.p90, p.p95, p.p99];
    all.iter()
        .any(engine::Interval::is_known)
        .then(|| PercentileIntervalsView {
            p1: iv(&p.p1),
            p5: iv(&p.p5),
            p10: iv(&p.p10),
            p25: iv(&p.p25),
            p50: iv(&p.p50),
            p75: iv(&p.p75),
            p90: iv(&p.p90),
            p95: iv(&p.p95),
            p99: iv(&p.p99),
        })
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
#[oai(skip_serializing_if_is_none)]
pub struct TerminalView {
    /// Mean (control-variate adjusted with `control_variate`).
    pub mean: f64,
    /// Interval of the mean.
    pub mean_interval: Option<IntervalView>,
    /// Standard deviation.
    pub std_dev: f64,
    /// Standard error of the mean.
    pub std_error: f64,
    /// Percentiles.
    pub percentiles: PercentilesView,
    /// Intervals of the percentiles.
    pub percentile_intervals: Option<PercentileIntervalsView>,
    /// Histogram.
    pub histogram: HistogramView,
}

fn terminal(t: &engine::TerminalStats) -> TerminalView {
    TerminalView {
        mean: t.mean,
        mean_interval: iv(&t.mean_interval),
        std_dev: t.std_dev,
        std_error: t.std_error,
        percentiles: pct(&t.percentiles),
        percentile_intervals: pct_iv(&t.percentile_intervals),
        histogram: HistogramView {
            edges: t.histogram.edges.clone(),
            counts: t.histogram.counts.clone(),
        },
    }
}

/// Risk measures of the horizon. VaR and CVaR (expected shortfall) are loss fractions of the
/// initial value (positive = loss) net of contributions: with `L = (V₀ + C − V_T) / V₀`, VaR
/// at α is the α-quantile of `L` and CVaR the mean of the `⌈(1 − α)·n⌉` worst losses.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct RiskView {
    /// Fraction of paths ending below initial value plus net contributions.
    pub probability_of_loss: f64,
    /// Its interval (Wilson).
    pub probability_of_loss_interval: Option<IntervalView>,
    /// Fraction of paths that reached zero.
    pub probability_of_ruin: f64,
    /// Its interval.
    pub probability_of_ruin_interval: Option<IntervalView>,
    /// 1 − probability of ruin.
    pub success_rate: f64,
    /// Its interval.
    pub success_rate_interval: Option<IntervalView>,
    /// 95 % value at risk.
    pub var_95: f64,
    /// Its interval.
    pub var_95_interval: Option<IntervalView>,
    /// 95 % CVaR (expected shortfall).
    pub cvar_95: f64,
    /// Its interval.
    pub cvar_95_interval: Option<IntervalView>,
    /// 99 % value at risk.
    pub var_99: f64,
    /// Its interval.
    pub var_99_interval: Option<IntervalView>,
    /// 99 % CVaR (expected shortfall).
    pub cvar_99: f64,
    /// Its interval.
    pub cvar_99_interval: Option<IntervalView>,
    /// Median maximum drawdown (fraction; monitored every step).
    pub max_drawdown_p50: f64,
    /// Its interval.
    pub max_drawdown_p50_interval: Option<IntervalView>,
    /// 95th percentile of the maximum drawdown.
    pub max_drawdown_p95: f64,
    /// Its interval.
    pub max_drawdown_p95_interval: Option<IntervalView>,
    /// Percentiles of the compound annual growth rate (decimal per year; −1 when ruined).
    pub cagr: PercentilesView,
    /// Their intervals.
    pub cagr_intervals: Option<PercentileIntervalsView>,
}

fn risk(r: &engine::RiskStats) -> RiskView {
    RiskView {
        probability_of_loss: r.probability_of_loss,
        probability_of_loss_interval: iv(&r.probability_of_loss_interval),
        probability_of_ruin: r.probability_of_ruin,
        probability_of_ruin_interval: iv(&r.probability_of_ruin_interval),
        success_rate: r.success_rate,
        success_rate_interval: iv(&r.success_rate_interval),
        var_95: r.var_95,
        var_95_interval: iv(&r.var_95_interval),
        cvar_95: r.cvar_95,
        cvar_95_interval: iv(&r.cvar_95_interval),
        var_99: r.var_99,
        var_99_interval: iv(&r.var_99_interval),
        cvar_99: r.cvar_99,
        cvar_99_interval: iv(&r.cvar_99_interval),
        max_drawdown_p50: r.max_drawdown_p50,
        max_drawdown_p50_interval: iv(&r.max_drawdown_p50_interval),
        max_drawdown_p95: r.max_drawdown_p95,
        max_drawdown_p95_interval: iv(&r.max_drawdown_p95_interval),
        cagr: pct(&r.cagr),
        cagr_intervals: pct_iv(&r.cagr_intervals),
    }
}

/// Cross-section at a year (fan chart): of values at the year end, of withdrawals at the
/// year start.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct YearBandView {
    /// Year (1 … horizon).
    pub year: u32,
    /// Mean, currency units.
    pub mean: f64,
    /// Interval of the mean.
    pub mean_interval: Option<IntervalView>,
    /// Percentiles, currency units.
    pub percentiles: PercentilesView,
    /// Intervals of the percentiles.
    pub percentile_intervals: Option<PercentileIntervalsView>,
}

fn bands(y: &[engine::YearBand]) -> Vec<YearBandView> {
    y.iter()
        .map(|b| YearBandView {
            year: b.year,
            mean: b.mean,
            mean_interval: iv(&b.mean_interval),
            percentiles: pct(&b.percentiles),
            percentile_intervals: pct_iv(&b.percentile_intervals),
        })
        .collect()
}

/// Mean and percentiles of a per-path total, currency units.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct DistributionView {
    /// Mean.
    pub mean: f64,
    /// Interval of the mean.
    pub mean_interval: Option<IntervalView>,
    /// Percentiles.
    pub percentiles: PercentilesView,
    /// Intervals of the percentiles.
    pub percentile_intervals: Option<PercentileIntervalsView>,
}

fn distribution(d: &engine::Distribution) -> DistributionView {
    DistributionView {
        mean: d.mean,
        mean_interval: iv(&d.mean_interval),
        percentiles: pct(&d.percentiles),
        percentile_intervals: pct_iv(&d.percentile_intervals),
    }
}

/// Results in today's money (every value divided by the path's price index at that date),
/// with an `inflation` model.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct RealView {
    /// Real terminal value `V_T / I_T`.
    pub terminal: TerminalView,
    /// Real year-end bands.
    pub yearly: Vec<YearBandView>,
    /// Fraction of paths whose real terminal value is below initial value plus net
    /// contributions.
    pub probability_of_loss: f64,
    /// Its interval.
    pub probability_of_loss_interval: Option<IntervalView>,
    /// 95 % VaR of the real loss.
    pub var_95: f64,
    /// Its interval.
    pub var_95_interval: Option<IntervalView>,
    /// 95 % CVaR of the real loss.
    pub cvar_95: f64,
    /// Its interval.
    pub cvar_95_interval: Option<IntervalView>,
    /// 99 % VaR of the real loss.
    pub var_99: f64,
    /// Its interval.
    pub var_99_interval: Option<IntervalView>,
    /// 99 % CVaR of the real loss.
    pub cvar_99: f64,
    /// Its interval.
    pub cvar_99_interval: Option<IntervalView>,
    /// Percentiles of the real CAGR.
    pub cagr: PercentilesView,
    /// Their intervals.
    pub cagr_intervals: Option<PercentileIntervalsView>,
}

fn real(r: &engine::RealStats) -> RealView {
    RealView {
        terminal: terminal(&r.terminal),
        yearly: bands(&r.yearly),
        probability_of_loss: r.probability_of_loss,
        probability_of_loss_interval: iv(&r.probability_of_loss_interval),
        var_95: r.var_95,
        var_95_interval: iv(&r.var_95_interval),
        cvar_95: r.cvar_95,
        cvar_95_interval: iv(&r.cvar_95_interval),
        var_99: r.var_99,
        var_99_interval: iv(&r.var_99_interval),
        cvar_99: r.cvar_99,
        cvar_99_interval: iv(&r.cvar_99_interval),
        cagr: pct(&r.cagr),
        cagr_intervals: pct_iv(&r.cagr_intervals),
    }
}

/// What a withdrawal strategy paid (currency units). Year `y` is the withdrawal at the start
/// of year `y`; a depleted path pays what was left, then 0.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct WithdrawalsView {
    /// Nominal amount paid per year.
    pub yearly: Vec<YearBandView>,
    /// The same in today's money, with an `inflation` model.
    pub yearly_real: Option<Vec<YearBandView>>,
    /// Total nominal amount paid over the horizon, per path.
    pub total: DistributionView,
    /// Total in today's money, with an `inflation` model.
    pub total_real: Option<DistributionView>,
}

fn withdrawals(w: &engine::WithdrawalStats) -> WithdrawalsView {
    WithdrawalsView {
        yearly: bands(&w.yearly),
        yearly_real: w.yearly_real.as_deref().map(bands),
        total: distribution(&w.total),
        total_real: w.total_real.as_ref().map(distribution),
    }
}

/// One historical cohort.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct CohortView {
    /// First history row it used (0-based).
    pub start_period: u64,
    /// Its first month, `YYYY-MM`, for a bundled monthly history.
    pub start_month: Option<String>,
    /// Never depleted.
    pub survived: bool,
    /// The first year end (1-based) at which the portfolio was empty, when depleted.
    pub depleted_in_year: Option<u32>,
    /// Nominal terminal value, currency units.
    pub terminal_value: f64,
    /// Real terminal value, with an `inflation` model.
    pub terminal_real_value: Option<f64>,
}

/// The outcome of every historical start (`historical_cohorts`), in start order. No
/// sampling: the figures are exact for the history.
#[derive(Object, Debug, Clone)]
pub struct CohortsView {
    /// Fraction of cohorts never depleted.
    pub success_rate: f64,
    /// Index into `cohorts` of the worst one: the earliest depletion, else the lowest real
    /// (else nominal) terminal value.
    pub worst_cohort: u64,
    /// Every cohort.
    pub cohorts: Vec<CohortView>,
}

/// `YYYY-MM` of `start` (`YYYY-MM`) plus `months`.
fn month_after(start: &str, months: usize) -> Option<String> {
    let (y, m) = start.split_once('-')?;
    let index = y.parse::<usize>().ok()? * 12 + m.parse::<usize>().ok()? - 1 + months;
    Some(format!("{:04}-{:02}", index / 12, index % 12 + 1))
}

fn cohorts(c: &engine::CohortStats, history_start: Option<&str>) -> CohortsView {
    CohortsView {
        success_rate: c.success_rate,
        worst_cohort: c.worst_cohort as u64,
        cohorts: c
            .start_periods
            .iter()
            .enumerate()
            .map(|(k, &start)| CohortView {
                start_period: start as u64,
                start_month: history_start.and_then(|h| month_after(h, start)),
                survived: c.survived.get(k).copied().unwrap_or(false),
                depleted_in_year: c.depleted_in_year.get(k).copied().flatten(),
                terminal_value: c.terminal_values.get(k).copied().unwrap_or(f64::NAN),
                terminal_real_value: c
                    .terminal_real_values
                    .as_ref()
                    .and_then(|v| v.get(k).copied()),
            })
            .collect(),
    }
}

/// The plain estimates and the control's statistics, with `control_variate`.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct ControlVariateView {
    /// Plain (unadjusted) mean of the terminal value.
    pub raw_mean: f64,
    /// Its interval.
    pub raw_mean_interval: Option<IntervalView>,
    /// Plain percentiles of the terminal value.
    pub raw_percentiles: PercentilesView,
    /// Their intervals.
    pub raw_percentile_intervals: Option<PercentileIntervalsView>,
    /// Exact mean of the control (log units).
    pub control_mean: f64,
    /// Exact standard deviation of the control (`gbm`; absent for `student_t`, whose
    /// percentiles are then not adjusted).
    pub control_std_dev: Option<f64>,
    /// Sample correlation of the terminal value and the control (absent when undefined).
    pub correlation: Option<f64>,
    /// Batches used for the percentile slopes and intervals.
    pub batches: u32,
}

fn control_variate(c: &engine::ControlVariateStats) -> ControlVariateView {
    ControlVariateView {
        raw_mean: c.raw_mean,
        raw_mean_interval: iv(&c.raw_mean_interval),
        raw_percentiles: pct(&c.raw_percentiles),
        raw_percentile_intervals: pct_iv(&c.raw_percentile_intervals),
        control_mean: c.control_mean,
        control_std_dev: c.control_std_dev,
        correlation: c.correlation.is_finite().then_some(c.correlation),
        batches: c.batches,
    }
}

/// How the intervals were computed.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum IntervalMethodKind {
    /// Independent paths: normal intervals for means, order-statistic intervals for
    /// percentiles, Wilson intervals for proportions, asymptotic intervals for CVaR.
    OrderStatistics,
    /// RQMC: the spread of the independent scramblings' estimates (Student-t).
    Replicates,
    /// Historical cohorts: a complete enumeration, every interval is the point.
    Exact,
}

/// How the intervals were computed.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct IntervalMethodView {
    /// The method.
    #[oai(rename = "type")]
    pub kind: IntervalMethodKind,
    /// `replicates`: their number.
    pub replicates: Option<u32>,
}

fn method(m: engine::IntervalMethod) -> IntervalMethodView {
    match m {
        engine::IntervalMethod::Replicates { replicates } => IntervalMethodView {
            kind: IntervalMethodKind::Replicates,
            replicates: Some(replicates),
        },
        engine::IntervalMethod::Exact => IntervalMethodView {
            kind: IntervalMethodKind::Exact,
            replicates: None,
        },
        _ => IntervalMethodView {
            kind: IntervalMethodKind::OrderStatistics,
            replicates: None,
        },
    }
}

/// Why a precision run stopped.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum StopReason {
    /// Every goal was met.
    TargetMet,
    /// The tier's path or work cap was reached first.
    PathCap,
    /// The engine's memory cap (stored year-end values) was reached first.
    MemoryCap,
}

/// One precision goal and how close the run came.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct PrecisionGoalOutcome {
    /// The goal as requested.
    pub goal: PrecisionGoal,
    /// The half-width reached (same units as the goal; absent when unbounded).
    pub achieved: Option<f64>,
    /// Whether `achieved ≤ half_width`.
    pub met: bool,
}

/// How a precision run ended.
#[derive(Object, Debug, Clone)]
pub struct PrecisionView {
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Batches run.
    pub rounds: u32,
    /// Every goal with the half-width reached.
    pub goals: Vec<PrecisionGoalOutcome>,
}

fn precision(p: &sim::PrecisionReport) -> PrecisionView {
    PrecisionView {
        stop_reason: match p.stop_reason {
            engine::StopReason::TargetMet => StopReason::TargetMet,
            engine::StopReason::MemoryCap => StopReason::MemoryCap,
            _ => StopReason::PathCap,
        },
        rounds: p.rounds,
        goals: p
            .goals
            .iter()
            .zip(&p.achieved)
            .map(|(g, &a)| PrecisionGoalOutcome {
                goal: PrecisionGoal {
                    quantity: quantity_out(g.quantity),
                    half_width: g.half_width,
                },
                achieved: a.is_finite().then_some(a),
                met: a <= g.half_width,
            })
            .collect(),
    }
}

/// A withdrawal rate with its interval.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct RateEstimateView {
    /// The rate, decimal of the initial value (0.04 = 4 %).
    pub rate: f64,
    /// Its interval (the order-statistic interval of the paths' threshold rates).
    pub interval: Option<IntervalView>,
    /// Fraction of paths meeting the criterion at `rate`.
    pub success_at_rate: f64,
}

fn rate(r: &engine::RateEstimate) -> RateEstimateView {
    RateEstimateView {
        rate: r.rate,
        interval: iv(&r.interval),
        success_at_rate: r.success_at_rate,
    }
}

/// The safe and perpetual withdrawal rates: the largest initial rates (of the requested
/// strategy, to 0.001 percentage points) with which `success_probability` of the paths are
/// never depleted (safe) or end with at least their initial real value (perpetual).
#[derive(Object, Debug, Clone)]
pub struct WithdrawalRatesView {
    /// The required probability of success.
    pub success_probability: f64,
    /// Safe withdrawal rate.
    pub safe: RateEstimateView,
    /// Perpetual withdrawal rate.
    pub perpetual: RateEstimateView,
    /// Paths searched (the same ones for every rate tried).
    pub paths: u64,
    /// How the intervals were computed.
    pub interval_method: IntervalMethodView,
}

fn withdrawal_rates(w: &engine::WithdrawalRates) -> WithdrawalRatesView {
    WithdrawalRatesView {
        success_probability: w.success_probability,
        safe: rate(&w.safe),
        perpetual: rate(&w.perpetual),
        paths: w.paths,
        interval_method: method(w.interval_method),
    }
}

/// Simulation output.
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct SimulationResultView {
    /// Seed used (pass it back to reproduce bit for bit).
    pub seed: u64,
    /// Engine version that produced this result.
    pub engine_version: String,
    /// Paths simulated (the number of cohorts for `historical_cohorts`; with `precision`, the
    /// number the run stopped at).
    pub paths: u64,
    /// Steps per path (`horizon_years × steps_per_year`).
    pub steps: u64,
    /// Confidence level of every interval.
    pub confidence_level: f64,
    /// How the intervals were computed.
    pub interval_method: IntervalMethodView,
    /// Terminal value statistics (nominal).
    pub terminal: TerminalView,
    /// Risk measures (nominal).
    pub risk: RiskView,
    /// One band per year end (nominal).
    pub yearly: Vec<YearBandView>,
    /// Results in today's money, with an `inflation` model.
    pub real: Option<RealView>,
    /// What the withdrawal strategy paid, with a `withdrawal`.
    pub withdrawals: Option<WithdrawalsView>,
    /// Every cohort, with `historical_cohorts`.
    pub cohorts: Option<CohortsView>,
    /// Plain estimates and the control, with `control_variate`.
    pub control_variate: Option<ControlVariateView>,
    /// How the precision target ended, with `precision`.
    pub precision: Option<PrecisionView>,
    /// The safe and perpetual withdrawal rates, with `withdrawal_rates`.
    pub withdrawal_rates: Option<WithdrawalRatesView>,
}

impl SimulationResultView {
    /// The view of `output`, the result of `request`.
    pub fn of(request: &sim::SimulationInput, output: &sim::SimulationOutput) -> Self {
        let r = &output.result;
        let history_start = match &request.model {
            sim::ReturnModelInput::HistoricalCohorts { source, .. }
                if source.history == Some(sim::HistorySource::ShillerUsMonthly) =>
            {
                Some(engine::history::shiller_monthly().start())
            }
            _ => None,
        };
        Self {
            seed: r.seed,
            engine_version: r.engine_version.to_string(),
            paths: r.paths,
            steps: r.steps,
            confidence_level: r.confidence_level,
            interval_method: method(r.interval_method),
            terminal: terminal(&r.terminal),
            risk: risk(&r.risk),
            yearly: bands(&r.yearly),
            real: r.real.as_ref().map(real),
            withdrawals: r.withdrawals.as_ref().map(withdrawals),
            cohorts: r.cohorts.as_ref().map(|c| cohorts(c, history_start)),
            control_variate: r.control_variate.as_ref().map(control_variate),
            precision: output.precision.as_ref().map(precision),
            withdrawal_rates: output.withdrawal_rates.as_ref().map(withdrawal_rates),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohort_months_count_from_the_history_start() {
        assert_eq!(month_after("1871-01", 0).as_deref(), Some("1871-01"));
        assert_eq!(month_after("1871-01", 11).as_deref(), Some("1871-12"));
        assert_eq!(month_after("1871-01", 12).as_deref(), Some("1872-01"));
        assert_eq!(month_after("1871-01", 1140).as_deref(), Some("1966-01"));
    }

    #[test]
    fn unknown_intervals_are_left_out() {
        assert!(iv(&engine::Interval::unknown()).is_none());
        let inf = engine::Interval {
            lower: f64::NEG_INFINITY,
            upper: 1.0,
        };
        assert!(iv(&inf).is_none());
        assert!(pct_iv(&engine::PercentileIntervals::unknown()).is_none());
    }
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

impl From<&sim::Simulation> for SimulationView {
    fn from(s: &sim::Simulation) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            duration_ms: s.duration_ms,
            request: (&s.request).into(),
            result: SimulationResultView::of(&s.request, &s.result),
        }
    }
}
