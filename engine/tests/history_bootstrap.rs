//! The bootstrap model on Shiller's data reproduces historical annual
//! statistics.

mod common;
use common::*;
use engine::*;

/// Non-overlapping 12-month compounded returns from the first month.
fn historical_annual(monthly: &[f64]) -> Vec<f64> {
    monthly
        .chunks_exact(12)
        .map(|y| y.iter().fold(1.0, |acc, r| acc * (1.0 + r)) - 1.0)
        .collect()
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    let v = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64;
    (m, v.sqrt())
}

fn bootstrap_annual(
    returns: Vec<Vec<f64>>,
    weights: &[f64],
    block_length: usize,
) -> SimulationResult {
    let n = weights.len();
    let spec = SimulationSpec {
        assets: weights
            .iter()
            .map(|&w| Asset {
                weight: w,
                drift: 0.0,
                volatility: 0.0,
            })
            .collect(),
        correlation: (0..n)
            .map(|i| (0..n).map(|j| f64::from(i == j)).collect())
            .collect(),
        initial_value: 1.0,
        horizon_years: 1,
        steps_per_year: 12,
        paths: 20_000,
        seed: 1871,
        model: ReturnModel::Bootstrap {
            returns,
            block_length,
        },
        rebalancing: Rebalancing::Monthly,
        cash_flow: None,
        antithetic: false,
        histogram_bins: 50,
        ..Default::default()
    };
    Simulation::new(spec).unwrap().run()
}

#[test]
fn bootstrapped_annual_returns_match_history() {
    let h = history::shiller_monthly();
    for (name, series) in [("stocks", h.stocks()), ("bonds", h.bonds())] {
        let annual = historical_annual(series);
        let years = annual.len() as f64;
        let (hist_mean, hist_sd) = mean_sd(&annual);
        let returns: Vec<Vec<f64>> = series.iter().map(|&r| vec![r]).collect();
        // Bond returns are autocorrelated (yields trend), so an i.i.d.
        // bootstrap understates their annual volatility; 12-month blocks keep
        // that dependence. Stocks pass with either.
        let blocks: &[usize] = if name == "stocks" { &[1, 12] } else { &[12] };
        for &block in blocks {
            let r = bootstrap_annual(returns.clone(), &[1.0], block);
            let sim_mean = r.terminal.mean - 1.0;
            // History is the noisier estimate: compare within Z of its SE.
            let se_mean = hist_sd / years.sqrt();
            assert_within_se(
                &format!("{name} mean (block {block})"),
                sim_mean,
                hist_mean,
                se_mean,
            );
            let se_sd = hist_sd / (2.0 * years).sqrt();
            assert_within_se(
                &format!("{name} sd (block {block})"),
                r.terminal.std_dev,
                hist_sd,
                se_sd,
            );
        }
        if name == "bonds" {
            let iid = bootstrap_annual(returns.clone(), &[1.0], 1);
            assert!(
                iid.terminal.std_dev < hist_sd,
                "i.i.d. bond sd {}",
                iid.terminal.std_dev
            );
        }
    }
}

#[test]
fn iid_bootstrap_mean_is_the_compounded_sample_mean() {
    // For i.i.d. rows E[Π(1 + r)] = (1 + r̄)^12 exactly.
    let h = history::shiller_monthly();
    let m = h.returns_matrix();
    let r = bootstrap_annual(m, &[0.6, 0.4], 1);
    let rbar: f64 = h
        .stocks()
        .iter()
        .zip(h.bonds())
        .map(|(s, b)| 0.6 * s + 0.4 * b)
        .sum::<f64>()
        / h.months() as f64;
    let want = (1.0 + rbar).powi(12);
    assert_within_se(
        "60/40 annual mean",
        r.terminal.mean,
        want,
        r.terminal.std_error,
    );
}
