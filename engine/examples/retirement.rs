//! The README's retirement example: a 65-year-old with 1 000 000 in a 60/40
//! stock/bond portfolio withdraws 4 % under the Guyton–Klinger guardrails
//! for 30 years. Returns and inflation are a 12-month block bootstrap of
//! the bundled Shiller history (1871–2023), so every figure is also
//! available in today's money. Prints the success rate with its 95 %
//! interval, the withdrawals, the historical-cohort view and the safe
//! withdrawal rate.
//!
//! `cargo run --release -p mc-engine --example retirement`

use engine::*;

fn spec() -> SimulationSpec {
    let h = history::shiller_monthly();
    SimulationSpec {
        assets: vec![
            Asset {
                weight: 0.6,
                drift: 0.0,
                volatility: 0.0,
            },
            Asset {
                weight: 0.4,
                drift: 0.0,
                volatility: 0.0,
            },
        ],
        correlation: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
        initial_value: 1_000_000.0,
        horizon_years: 30,
        steps_per_year: 12,
        paths: 10_000,
        seed: 65,
        model: ReturnModel::Bootstrap {
            returns: h.returns_matrix(),
            block_length: 12,
        },
        rebalancing: Rebalancing::Annually,
        expense_ratios: vec![0.001, 0.001],
        withdrawal: Some(WithdrawalStrategy::Guardrails(Guardrails::new(0.04))),
        inflation: Inflation::Historical {
            rates: h.inflation().to_vec(),
        },
        ..Default::default()
    }
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

fn main() {
    let sim = Simulation::new(spec()).expect("valid spec");
    let r = sim.run();
    let risk = &r.risk;
    let real = r.real.as_ref().expect("inflation model set");
    let wd = r.withdrawals.as_ref().expect("withdrawal strategy set");
    let wr = wd.yearly_real.as_ref().expect("real withdrawals");
    println!(
        "Guardrails 4 %, 60/40, 1 000 000, 30 years, {} bootstrapped paths ({})",
        r.paths, r.engine_version
    );
    println!(
        "success rate {} (95 % interval {} – {})",
        pct(risk.success_rate),
        pct(risk.success_rate_interval.lower),
        pct(risk.success_rate_interval.upper)
    );
    println!(
        "real terminal value: median {:.0} ({:.0} – {:.0}), P10 {:.0}",
        real.terminal.percentiles.p50,
        real.terminal.percentile_intervals.p50.lower,
        real.terminal.percentile_intervals.p50.upper,
        real.terminal.percentiles.p10
    );
    println!(
        "real withdrawal in year 1: {:.0}; in year 30: median {:.0}, P10 {:.0}; total real withdrawn: median {:.0}",
        wr[0].percentiles.p50,
        wr[29].percentiles.p50,
        wr[29].percentiles.p10,
        wd.total_real.as_ref().expect("real totals").percentiles.p50
    );

    // The same plan on every historical 30-year sequence (cFIREsim's view).
    let mut cohorts = spec();
    let h = history::shiller_monthly();
    cohorts.model = ReturnModel::HistoricalCohorts {
        returns: h.returns_matrix(),
        start_stride: 12,
    };
    let c = Simulation::new(cohorts).expect("valid").run();
    let cs = c.cohorts.as_ref().expect("cohorts");
    println!(
        "historical cohorts 1871–{}: success {} of {}, worst start year {}",
        1871 + cs.start_periods.last().copied().unwrap_or(0) / 12,
        cs.survived.iter().filter(|&&s| s).count(),
        cs.survived.len(),
        1871 + cs.start_periods[cs.worst_cohort] / 12
    );

    // Safe withdrawal rate at 90 % and 95 % success (guardrails initial rate).
    for q in [0.9, 0.95] {
        let w = sim
            .withdrawal_rates(q, &RunControl::new())
            .expect("rate search");
        println!(
            "initial rate with ≥ {:.0} % success: {} ({} – {}); perpetual: {}",
            100.0 * q,
            pct(w.safe.rate),
            pct(w.safe.interval.lower),
            pct(w.safe.interval.upper),
            pct(w.perpetual.rate)
        );
    }
}
