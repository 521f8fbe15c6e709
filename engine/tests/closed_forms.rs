//! Statistical correctness against closed forms (fixed seeds, tolerances in
//! `common::tol`, all as multiples of the standard error).

mod common;
use common::*;
use engine::*;

const S0: f64 = 10_000.0;

#[test]
fn single_asset_gbm_matches_lognormal_closed_forms() {
    let (mu, sigma, years) = (0.08, 0.20, 10u32);
    let n = 40_000u64;
    let r = Simulation::new(single_asset(mu, sigma, years, 1, n, 11))
        .unwrap()
        .run();
    let t = years as f64;
    let m = (mu - 0.5 * sigma * sigma) * t;
    let s = sigma * t.sqrt();
    let nf = n as f64;

    // Mean: S0·e^{μT}, SE reported by the engine.
    assert_within_se(
        "mean",
        r.terminal.mean,
        S0 * (mu * t).exp(),
        r.terminal.std_error,
    );
    // SD of a lognormal.
    let sd = S0 * (mu * t).exp() * ((s * s).exp() - 1.0).sqrt();
    assert!(
        (r.terminal.std_dev / sd - 1.0).abs() < 0.05,
        "sd {} vs {sd}",
        r.terminal.std_dev
    );

    // Median S0·e^{m}; SE of a sample quantile = √(p(1−p)/n) / f(q).
    let quantile_se = |p: f64, q: f64| {
        let dens = norm_pdf(((q / S0).ln() - m) / s) / (q * s);
        (p * (1.0 - p) / nf).sqrt() / dens
    };
    let med = S0 * m.exp();
    assert_within_se(
        "median",
        r.terminal.percentiles.p50,
        med,
        quantile_se(0.5, med),
    );
    for (p, got) in [
        (0.05, r.terminal.percentiles.p5),
        (0.95, r.terminal.percentiles.p95),
    ] {
        let q = S0 * (m + s * norm_quantile(p)).exp();
        assert_within_se(&format!("P{}", p * 100.0), got, q, quantile_se(p, q));
    }

    // P(loss) = Φ(−m/s).
    let pl = norm_cdf(-m / s);
    assert_within_se(
        "P(loss)",
        r.risk.probability_of_loss,
        pl,
        (pl * (1.0 - pl) / nf).sqrt(),
    );
    assert_eq!(r.risk.probability_of_ruin, 0.0);
    assert_eq!(r.risk.success_rate, 1.0);

    // VaR/CVaR of L = 1 − V_T/S0.
    for (alpha, var, cvar) in [
        (0.95, r.risk.var_95, r.risk.cvar_95),
        (0.99, r.risk.var_99, r.risk.cvar_99),
    ] {
        let tail = 1.0 - alpha;
        let z = norm_quantile(tail);
        let q = S0 * (m + s * z).exp();
        assert_within_se(
            &format!("VaR{alpha}"),
            var,
            1.0 - q / S0,
            quantile_se(tail, q) / S0,
        );
        // E[X^k | Z < z] = e^{km + k²s²/2} Φ(z − ks) / Φ(z) for X = e^{m+sZ}.
        let e1 = (m + 0.5 * s * s).exp() * norm_cdf(z - s) / tail;
        let e2 = (2.0 * m + 2.0 * s * s).exp() * norm_cdf(z - 2.0 * s) / tail;
        let es = 1.0 - e1;
        // Asymptotic SE of the ES estimator: √((Var_tail + α(ES−VaR)²)/(n·tail)).
        let var_closed = 1.0 - q / S0;
        let se = ((e2 - e1 * e1 + alpha * (es - var_closed).powi(2)) / (nf * tail)).sqrt();
        assert_within_se(&format!("CVaR{alpha}"), cvar, es, se);
        assert!(cvar >= var);
    }

    // CAGR median = e^{m/T} − 1 (monotone transform of the median).
    let cagr_med = (m / t).exp() - 1.0;
    let cagr_se = quantile_se(0.5, med) / med / t;
    assert_within_se("CAGR P50", r.risk.cagr.p50, cagr_med, cagr_se * 1.5);

    // Year bands: one per year, the last equals the terminal percentiles.
    assert_eq!(r.yearly.len(), years as usize);
    assert_eq!(r.yearly.last().unwrap().percentiles, r.terminal.percentiles);
    for (y, band) in r.yearly.iter().enumerate() {
        assert_eq!(band.year, y as u32 + 1);
        let a = band.percentiles.to_array();
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
    }
    // Histogram accounts for every path.
    assert_eq!(r.terminal.histogram.counts.iter().sum::<u64>(), n);
    assert_eq!(r.terminal.histogram.edges.len(), 21);
}

#[test]
fn zero_volatility_is_deterministic() {
    let (mu, years) = (0.05, 7u32);
    let r = Simulation::new(single_asset(mu, 0.0, years, 12, 100, 3))
        .unwrap()
        .run();
    let want = S0 * (mu * years as f64).exp();
    assert!((r.terminal.mean / want - 1.0).abs() < tol::DETERMINISTIC_REL);
    assert_eq!(r.terminal.std_dev, 0.0);
    assert_eq!(r.terminal.std_error, 0.0);
    for p in r.terminal.percentiles.to_array() {
        assert_eq!(p, r.terminal.mean);
    }
    assert_eq!(r.risk.max_drawdown_p95, 0.0);
    assert_eq!(r.risk.probability_of_loss, 0.0);
    assert!((r.risk.cagr.p50 - (mu.exp() - 1.0)).abs() < 1e-12);
}

#[test]
fn rebalanced_mean_matches_product_formula_whatever_the_correlation() {
    let spec = three_assets(4_000, 21);
    let dt = 1.0 / 12.0;
    let steps = 60;
    let growth: f64 = spec
        .assets
        .iter()
        .map(|a| a.weight * (a.drift * dt).exp())
        .sum();
    for corr in [
        spec.correlation.clone(),
        vec![vec![1.0; 3]; 3], // perfectly correlated (PSD, singular)
    ] {
        let mut s = spec.clone();
        s.correlation = corr;
        let r = Simulation::new(s).unwrap().run();
        let want = 50_000.0 * growth.powi(steps);
        assert_within_se(
            "rebalanced mean",
            r.terminal.mean,
            want,
            r.terminal.std_error,
        );
    }

    // With a contribution each step: add c · Σ_{j<N} g^j.
    let mut s = spec.clone();
    s.cash_flow = Some(CashFlow {
        amount: 200.0,
        frequency: CashFlowFrequency::EveryStep,
        annual_growth: 0.0,
    });
    let r = Simulation::new(s).unwrap().run();
    let geometric: f64 = (0..steps).map(|j| growth.powi(j)).sum();
    let want = 50_000.0 * growth.powi(steps) + 200.0 * geometric;
    assert_within_se(
        "rebalanced mean with contributions",
        r.terminal.mean,
        want,
        r.terminal.std_error,
    );
}

#[test]
fn student_t_with_large_dof_matches_gbm_quantiles() {
    let (mu, sigma, years) = (0.07, 0.25, 5u32);
    let n = 20_000u64;
    let mut spec = single_asset(mu, sigma, years, 1, n, 5);
    spec.model = ReturnModel::StudentT { dof: 1_000.0 };
    let r = Simulation::new(spec).unwrap().run();
    let t = years as f64;
    let m = (mu - 0.5 * sigma * sigma) * t;
    let s = sigma * t.sqrt();
    for (p, got) in [
        (0.05, r.terminal.percentiles.p5),
        (0.50, r.terminal.percentiles.p50),
        (0.95, r.terminal.percentiles.p95),
    ] {
        let q = S0 * (m + s * norm_quantile(p)).exp();
        let dens = norm_pdf(((q / S0).ln() - m) / s) / (q * s);
        let se = (p * (1.0 - p) / n as f64).sqrt() / dens;
        assert_within_se(&format!("t(1000) P{}", p * 100.0), got, q, se);
    }
}

#[test]
fn student_t_is_unit_variance_and_fat_tailed() {
    // One annual step: log(V/S0) = m + σ·t_ν·√((ν−2)/ν)... sd must be σ.
    let (mu, sigma) = (0.0, 0.2);
    let n = 20_000u64;
    let mut spec = single_asset(mu, sigma, 1, 1, n, 8);
    spec.model = ReturnModel::StudentT { dof: 5.0 };
    let r = Simulation::new(spec).unwrap().run();
    // Type-7 P1/P99 of V are monotone in the shock: compare with normal ones.
    let normal_p99 = S0 * (-0.02 + sigma * norm_quantile(0.99)).exp();
    let normal_p25 = S0 * (-0.02 + sigma * norm_quantile(0.25)).exp();
    // Unit-variance t(5) has thinner shoulders and fatter tails than N(0,1):
    // its 99 % quantile is ≈ 2.61 vs 2.33 standard deviations away (×√(3/5)·3.365).
    assert!(
        r.terminal.percentiles.p99 > normal_p99 * 1.02,
        "{}",
        r.terminal.percentiles.p99
    );
    assert!(
        r.terminal.percentiles.p25 > normal_p25,
        "{}",
        r.terminal.percentiles.p25
    );
}

#[test]
fn antithetic_variates_reduce_the_standard_error() {
    let base = single_asset(0.06, 0.3, 5, 4, 8_000, 99);
    let plain = Simulation::new(base.clone()).unwrap().run();
    let mut anti = base;
    anti.antithetic = true;
    let anti = Simulation::new(anti).unwrap().run();
    // Terminal value is monotone in the shocks, so pairs are negatively
    // correlated and the SE must fall clearly.
    assert!(
        anti.terminal.std_error < 0.8 * plain.terminal.std_error,
        "antithetic SE {} vs plain {}",
        anti.terminal.std_error,
        plain.terminal.std_error
    );
    let want = S0 * (0.06f64 * 5.0).exp();
    assert_within_se(
        "antithetic mean",
        anti.terminal.mean,
        want,
        anti.terminal.std_error,
    );
}

#[test]
fn bootstrap_of_a_constant_series_returns_the_constant() {
    let mut spec = three_assets(300, 4);
    spec.model = ReturnModel::Bootstrap {
        returns: vec![vec![0.01, 0.01, 0.01]; 17],
        block_length: 5,
    };
    spec.rebalancing = Rebalancing::Never;
    let r = Simulation::new(spec).unwrap().run();
    let want = 50_000.0 * 1.01f64.powi(60);
    assert!((r.terminal.mean / want - 1.0).abs() < tol::DETERMINISTIC_REL);
    assert_eq!(r.terminal.std_dev, 0.0);
    for p in r.terminal.percentiles.to_array() {
        assert!((p / want - 1.0).abs() < tol::DETERMINISTIC_REL);
    }
}

#[test]
fn zero_volatility_cash_flows_match_a_hand_computation_to_the_cent() {
    // Annual contributions growing with 2 % inflation, monthly steps.
    let mut spec = single_asset(0.05, 0.0, 3, 12, 10, 1);
    spec.cash_flow = Some(CashFlow {
        amount: 1_000.0,
        frequency: CashFlowFrequency::Annually,
        annual_growth: 0.02,
    });
    let r = Simulation::new(spec).unwrap().run();
    let g = 0.05f64.exp();
    let v1 = S0 * g + 1_000.0;
    let v2 = v1 * g + 1_020.0;
    let v3 = v2 * g + 1_040.40;
    for (band, want) in r.yearly.iter().zip([v1, v2, v3]) {
        assert!(
            (band.mean - want).abs() < tol::CENT,
            "year {}: {} vs {want}",
            band.year,
            band.mean
        );
    }
    assert_eq!(r.risk.probability_of_loss, 0.0);

    // Monthly withdrawals with two-asset rebalancing, by a hand loop.
    let mut spec = three_assets(10, 2);
    for a in &mut spec.assets {
        a.volatility = 0.0;
    }
    spec.rebalancing = Rebalancing::Never;
    spec.horizon_years = 2;
    spec.cash_flow = Some(CashFlow {
        amount: -300.0,
        frequency: CashFlowFrequency::EveryStep,
        annual_growth: 0.03,
    });
    let r = Simulation::new(spec.clone()).unwrap().run();
    let mut h: Vec<f64> = spec.assets.iter().map(|a| a.weight * 50_000.0).collect();
    let mut ends = vec![];
    for s in 0..24 {
        for (hi, a) in h.iter_mut().zip(&spec.assets) {
            *hi *= (a.drift / 12.0).exp();
        }
        let v: f64 = h.iter().sum();
        let f = -300.0 * 1.03f64.powi(s / 12);
        for hi in h.iter_mut() {
            *hi *= (v + f) / v;
        }
        if s % 12 == 11 {
            ends.push(h.iter().sum::<f64>());
        }
    }
    for (band, want) in r.yearly.iter().zip(ends) {
        assert!(
            (band.mean - want).abs() < tol::CENT,
            "year {}: {} vs {want}",
            band.year,
            band.mean
        );
    }
}

#[test]
fn withdrawals_can_ruin_and_ruin_is_absorbing() {
    let mut spec = single_asset(0.0, 0.0, 5, 1, 16, 1);
    spec.initial_value = 1_000.0;
    spec.cash_flow = Some(CashFlow {
        amount: -400.0,
        frequency: CashFlowFrequency::Annually,
        annual_growth: 0.0,
    });
    let r = Simulation::new(spec).unwrap().run();
    let means: Vec<f64> = r.yearly.iter().map(|b| b.mean).collect();
    assert_eq!(means, vec![600.0, 200.0, 0.0, 0.0, 0.0]);
    assert_eq!(r.risk.probability_of_ruin, 1.0);
    assert_eq!(r.risk.success_rate, 0.0);
    assert_eq!(r.risk.cagr.p50, -1.0);
    assert_eq!(r.risk.max_drawdown_p50, 1.0);
    // Loss is measured against V0 + net contributions (1000 − 2000 = −1000):
    // terminal 0 is not below it, so there is no "loss" beyond the plan.
    assert_eq!(r.risk.probability_of_loss, 0.0);
}

#[test]
fn correlated_portfolio_variance_matches_the_input_correlation() {
    // One annual step, two assets, no rebalancing: Var(w1 g1 + w2 g2) depends
    // on ρ through Cov(g1, g2) = E g1 E g2 (e^{ρ σ1 σ2} − 1).
    for rho in [-0.8, 0.0, 0.5] {
        let spec = SimulationSpec {
            assets: vec![
                Asset {
                    weight: 0.5,
                    drift: 0.05,
                    volatility: 0.3,
                },
                Asset {
                    weight: 0.5,
                    drift: 0.02,
                    volatility: 0.2,
                },
            ],
            correlation: vec![vec![1.0, rho], vec![rho, 1.0]],
            initial_value: 1.0,
            horizon_years: 1,
            steps_per_year: 1,
            paths: 40_000,
            seed: 17,
            model: ReturnModel::Gbm,
            rebalancing: Rebalancing::Never,
            cash_flow: None,
            antithetic: false,
            histogram_bins: 10,
            ..Default::default()
        };
        let r = Simulation::new(spec).unwrap().run();
        let (e1, e2) = (0.05f64.exp(), 0.02f64.exp());
        let v1 = e1 * e1 * (0.09f64.exp() - 1.0);
        let v2 = e2 * e2 * (0.04f64.exp() - 1.0);
        let c12 = e1 * e2 * ((rho * 0.3 * 0.2f64).exp() - 1.0);
        let want_sd = (0.25 * v1 + 0.25 * v2 + 0.5 * c12).sqrt();
        // SE of a sample SD ≈ sd·√((κ − 1)/(4n)); κ ≤ 5 here.
        let se = want_sd * (4.0 / (4.0 * 40_000.0f64)).sqrt();
        assert_within_se(&format!("sd at ρ={rho}"), r.terminal.std_dev, want_sd, se);
    }
}
