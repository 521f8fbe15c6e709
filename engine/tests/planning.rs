//! Retirement-planning options against hand computations (zero volatility,
//! to the cent) and closed forms (stochastic inflation).

mod common;
use common::*;
use engine::*;

const V0: f64 = 1_000_000.0;
const YEARS: u32 = 30;

/// One asset, zero volatility, annual drift `mu`; `steps` per year.
fn deterministic(mu: f64, steps: u32) -> SimulationSpec {
    let mut s = single_asset(mu, 0.0, YEARS, steps, 16, 1);
    s.initial_value = V0;
    s
}

/// A scalar re-implementation of the documented rules: start-of-year
/// withdrawals, growth `e^{μ}` a year, price index `(1+π)^y`.
/// Returns (year-end values, withdrawals paid).
fn hand(mu: f64, pi: f64, strategy: &WithdrawalStrategy) -> (Vec<f64>, Vec<f64>) {
    let g = mu.exp();
    let years = YEARS as usize;
    let mut v = V0;
    let (mut w_prev, mut post_prev, mut cpi_prev) = (0.0, V0, 1.0);
    let mut ends = vec![];
    let mut paid = vec![];
    for y in 0..years {
        let cpi = (1.0 + pi).powi(y as i32);
        if v > 0.0 {
            let w = match strategy {
                WithdrawalStrategy::ConstantAmount { initial_rate } => initial_rate * V0 * cpi,
                WithdrawalStrategy::ConstantPercentage { rate } => rate * v,
                WithdrawalStrategy::Guardrails(gr) => {
                    let r = gr.initial_rate;
                    if y == 0 {
                        r * V0
                    } else {
                        let frozen = gr.inflation_rule && v < post_prev && w_prev / v > r;
                        let mut w = if frozen {
                            w_prev
                        } else {
                            w_prev * cpi / cpi_prev
                        };
                        if w / v > r * (1.0 + gr.upper)
                            && (years - y) as u32 > gr.no_cut_final_years
                        {
                            w *= 1.0 - gr.adjustment;
                        } else if w / v < r * (1.0 - gr.lower) {
                            w *= 1.0 + gr.adjustment;
                        }
                        w
                    }
                }
                WithdrawalStrategy::FloorCeiling {
                    rate,
                    floor,
                    ceiling,
                } => (rate * v).clamp(floor * rate * V0 * cpi, ceiling * rate * V0 * cpi),
                WithdrawalStrategy::Vpw { rates } => rates[y] * v,
                _ => unreachable!(),
            };
            w_prev = w;
            cpi_prev = cpi;
            if w >= v {
                paid.push(v);
                v = 0.0;
            } else {
                paid.push(w);
                v -= w;
            }
            post_prev = v;
        } else {
            paid.push(0.0);
        }
        v *= g;
        ends.push(v);
    }
    (ends, paid)
}

fn check_strategy(mu: f64, pi: f64, steps: u32, strategy: WithdrawalStrategy) {
    let mut spec = deterministic(mu, steps);
    spec.withdrawal = Some(strategy.clone());
    spec.inflation = Inflation::Constant { rate: pi };
    let r = Simulation::new(spec).unwrap().run();
    let (ends, paid) = hand(mu, pi, &strategy);
    let wd = r.withdrawals.as_ref().expect("withdrawal stats");
    for y in 0..YEARS as usize {
        let (got_v, got_w) = (r.yearly[y].mean, wd.yearly[y].mean);
        assert!(
            (got_v - ends[y]).abs() < tol::CENT,
            "{strategy:?} μ={mu} steps={steps}: year {} value {got_v} vs {}",
            y + 1,
            ends[y]
        );
        assert!(
            (got_w - paid[y]).abs() < tol::CENT,
            "{strategy:?} μ={mu}: year {} withdrawal {got_w} vs {}",
            y + 1,
            paid[y]
        );
        // Every path is the same: the intervals collapse onto the value.
        assert_eq!(r.yearly[y].percentiles.p5, r.yearly[y].percentiles.p95);
    }
    let total: f64 = paid.iter().sum();
    assert!((wd.total.mean - total).abs() < 30.0 * tol::CENT);
    let ruined = ends.last().copied().unwrap_or(0.0) <= 0.0;
    assert_eq!(r.risk.success_rate, if ruined { 0.0 } else { 1.0 });
    // Real outputs: nominal deflated by (1 + π)^T.
    let real = r.real.as_ref().expect("real stats");
    let want = ends[YEARS as usize - 1] / (1.0 + pi).powi(YEARS as i32);
    assert!(
        (real.terminal.mean - want).abs() < tol::CENT,
        "{} vs {want}",
        real.terminal.mean
    );
}

#[test]
fn every_strategy_matches_a_hand_computation_at_zero_volatility() {
    let strategies = [
        WithdrawalStrategy::ConstantAmount { initial_rate: 0.04 },
        WithdrawalStrategy::ConstantPercentage { rate: 0.05 },
        WithdrawalStrategy::Guardrails(Guardrails::new(0.05)),
        WithdrawalStrategy::FloorCeiling {
            rate: 0.05,
            floor: 0.9,
            ceiling: 1.2,
        },
        WithdrawalStrategy::Vpw {
            rates: vpw_rates(65, YEARS, 0.6),
        },
    ];
    // Growing, shrinking (guardrail cuts, inflation freezes, floors) and
    // strongly growing (prosperity raises, ceilings) portfolios; annual and
    // monthly steps (the withdrawals stay annual).
    for mu in [0.05, -0.03, 0.12] {
        for steps in [1, 12] {
            for s in &strategies {
                check_strategy(mu, 0.025, steps, s.clone());
            }
        }
    }
}

#[test]
fn a_too_large_withdrawal_ruins_and_pays_what_is_left() {
    let strategy = WithdrawalStrategy::ConstantAmount { initial_rate: 0.2 };
    check_strategy(0.0, 0.0, 1, strategy.clone());
    let mut spec = deterministic(0.0, 1);
    spec.withdrawal = Some(strategy);
    let r = Simulation::new(spec).unwrap().run();
    let wd = r.withdrawals.unwrap();
    // 200 000 a year for 5 years, then nothing.
    assert_eq!(wd.yearly[4].mean, 200_000.0);
    assert!(wd.yearly[5].mean.abs() < 1e-6, "{}", wd.yearly[5].mean);
    assert_eq!(r.risk.probability_of_ruin, 1.0);
    assert!(r.real.is_none());
}

#[test]
fn guardrail_rules_fire_as_published() {
    // μ = −3 %: the rate climbs past 6 % → 10 % cuts while more than 15
    // years remain, and negative years freeze inflation increases.
    let (_, paid) = hand(
        -0.03,
        0.025,
        &WithdrawalStrategy::Guardrails(Guardrails::new(0.05)),
    );
    // Year 1 follows a negative year with a rate above 5 %: frozen.
    assert_eq!(paid[1], paid[0]);
    // Later the rate passes 6 %: a 10 % cut (frozen, then × 0.9).
    let cut = (1..15).find(|&y| (paid[y] / paid[y - 1] - 0.9).abs() < 1e-9);
    assert!(cut.is_some(), "{:?}", &paid[..15]);
    // No cuts in the last 15 years: there the withdrawal only stays flat.
    // (except the final, partial payment of a ruined path).
    let last_paid = paid.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    assert!(
        (15..last_paid).all(|y| paid[y] >= paid[y - 1] * (1.0 - 1e-12)),
        "{paid:?}"
    );
    // μ = +12 %: raises of 10 %.
    let (_, paid) = hand(
        0.12,
        0.0,
        &WithdrawalStrategy::Guardrails(Guardrails::new(0.05)),
    );
    assert!(paid.iter().any(|&w| (w / 50_000.0 - 1.1).abs() < 1e-9));
}

#[test]
fn expense_ratios_charge_exactly_the_annual_rate() {
    for steps in [1, 12, 52] {
        let mut spec = deterministic(0.06, steps);
        spec.expense_ratios = vec![0.01];
        let r = Simulation::new(spec).unwrap().run();
        let want = V0 * (0.06f64 * 30.0).exp() * 0.99f64.powi(30);
        assert!(
            (r.terminal.mean / want - 1.0).abs() < tol::DETERMINISTIC_REL * 100.0,
            "{steps}: {} vs {want}",
            r.terminal.mean
        );
    }
    // Fees apply to bootstrapped returns too.
    let mut spec = deterministic(0.0, 12);
    spec.model = ReturnModel::Bootstrap {
        returns: vec![vec![0.01]; 10],
        block_length: 1,
    };
    spec.expense_ratios = vec![0.02];
    spec.horizon_years = 2;
    let r = Simulation::new(spec).unwrap().run();
    let want = V0 * 1.01f64.powi(24) * 0.98f64.powi(2);
    assert!((r.terminal.mean / want - 1.0).abs() < 1e-12);
}

#[test]
fn linear_glide_path_rebalances_to_interpolated_weights() {
    let mut spec = deterministic(0.0, 1);
    spec.assets = vec![
        Asset {
            weight: 0.9,
            drift: 0.08,
            volatility: 0.0,
        },
        Asset {
            weight: 0.1,
            drift: 0.02,
            volatility: 0.0,
        },
    ];
    spec.correlation = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    spec.rebalancing = Rebalancing::Annually;
    spec.glide_path = Some(GlidePath::Linear {
        end_weights: vec![0.3, 0.7],
    });
    let r = Simulation::new(spec).unwrap().run();
    let (g1, g2) = (0.08f64.exp(), 0.02f64.exp());
    let mut h = [0.9 * V0, 0.1 * V0];
    for y in 0..30usize {
        h = [h[0] * g1, h[1] * g2];
        let v = h[0] + h[1];
        assert!(
            (r.yearly[y].mean - v).abs() < tol::CENT,
            "year {}: {} vs {v}",
            y + 1,
            r.yearly[y].mean
        );
        let f = (y + 1) as f64 / 30.0;
        let w0 = 0.9 + (0.3 - 0.9) * f;
        h = [w0 * v, (1.0 - w0) * v];
    }
    // A yearly schedule with the same rows gives the same path.
    let mut spec2 = deterministic(0.0, 1);
    spec2.assets = r_assets();
    spec2.correlation = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    spec2.rebalancing = Rebalancing::Annually;
    spec2.glide_path = Some(GlidePath::Yearly {
        weights: (0..=30)
            .map(|y| {
                let w0 = (0.3 - 0.9f64).mul_add(y as f64 / 30.0, 0.9);
                vec![w0, 1.0 - w0]
            })
            .collect(),
    });
    let r2 = Simulation::new(spec2).unwrap().run();
    assert!((r2.terminal.mean / r.terminal.mean - 1.0).abs() < 1e-12);
}

fn r_assets() -> Vec<Asset> {
    vec![
        Asset {
            weight: 0.9,
            drift: 0.08,
            volatility: 0.0,
        },
        Asset {
            weight: 0.1,
            drift: 0.02,
            volatility: 0.0,
        },
    ]
}

#[test]
fn stochastic_inflation_real_mean_matches_closed_form() {
    // E[V_T / I_T] = V0 · exp((μ − μ_I + σ_I² − ρ σ σ_I) T) for one GBM asset
    // and a lognormal price index with correlation ρ.
    let (mu, sigma, mu_i, sigma_i, rho, t) = (0.06, 0.15, 0.025, 0.02, 0.3, 10.0);
    let mut spec = single_asset(mu, sigma, 10, 12, 40_000, 77);
    spec.inflation = Inflation::Stochastic {
        drift: mu_i,
        volatility: sigma_i,
        correlation: vec![rho],
    };
    let r = Simulation::new(spec).unwrap().run();
    let real = r.real.unwrap();
    let want = 10_000.0 * ((mu - mu_i + sigma_i * sigma_i - rho * sigma * sigma_i) * t).exp();
    assert_within_se(
        "real mean",
        real.terminal.mean,
        want,
        real.terminal.std_error,
    );
    // The nominal side is the plain GBM.
    assert_within_se(
        "nominal mean",
        r.terminal.mean,
        10_000.0 * (mu * t).exp(),
        r.terminal.std_error,
    );
    // The interval of the mean covers the closed form here too.
    assert!(
        real.terminal.mean_interval.contains(want)
            || (real.terminal.mean - want).abs() < 4.0 * real.terminal.std_error
    );
}

#[test]
fn historical_inflation_is_read_from_the_same_row() {
    // Rows alternate (+2 % return, +2 % inflation) and (0 %, 0 %): every
    // row has a real return of 0, so the real value never moves.
    let returns: Vec<Vec<f64>> = (0..24)
        .map(|k| vec![if k % 2 == 0 { 0.02 } else { 0.0 }])
        .collect();
    let rates: Vec<f64> = (0..24)
        .map(|k| if k % 2 == 0 { 0.02 } else { 0.0 })
        .collect();
    let mut spec = deterministic(0.0, 12);
    spec.horizon_years = 3;
    spec.paths = 500;
    spec.model = ReturnModel::Bootstrap {
        returns,
        block_length: 3,
    };
    spec.inflation = Inflation::Historical { rates };
    let r = Simulation::new(spec).unwrap().run();
    let real = r.real.unwrap();
    for b in &real.yearly {
        assert!((b.percentiles.p1 / V0 - 1.0).abs() < 1e-12);
        assert!((b.percentiles.p99 / V0 - 1.0).abs() < 1e-12);
    }
    assert!(r.terminal.std_dev > 0.0);
}

#[test]
fn cohorts_enumerate_every_full_window() {
    let returns: Vec<Vec<f64>> = (0..100).map(|k| vec![0.001 * (k % 7) as f64]).collect();
    let mut spec = deterministic(0.0, 12);
    spec.horizon_years = 2;
    spec.model = ReturnModel::HistoricalCohorts {
        returns: returns.clone(),
        start_stride: 12,
    };
    let sim = Simulation::new(spec).unwrap();
    // (100 − 24) / 12 + 1 = 7 cohorts.
    assert_eq!(sim.paths(), 7);
    let r = sim.run();
    let c = r.cohorts.as_ref().unwrap();
    assert_eq!(c.start_periods, vec![0, 12, 24, 36, 48, 60, 72]);
    for (k, &start) in c.start_periods.iter().enumerate() {
        let want: f64 = returns[start..start + 24]
            .iter()
            .map(|r| 1.0 + r[0])
            .product::<f64>()
            * V0;
        assert!((c.terminal_values[k] / want - 1.0).abs() < 1e-12);
    }
    assert_eq!(r.interval_method, IntervalMethod::Exact);
    assert_eq!(r.risk.success_rate_interval.lower, r.risk.success_rate);
}

#[test]
fn new_options_are_validated_with_their_field() {
    let base = || {
        let mut s = three_assets(16, 1);
        s.withdrawal = Some(WithdrawalStrategy::ConstantAmount { initial_rate: 0.04 });
        s
    };
    type Mutation = fn(&mut SimulationSpec);
    let cases: Vec<(Mutation, &str)> = vec![
        (|s| s.expense_ratios = vec![0.01], "expense_ratios"),
        (
            |s| s.expense_ratios = vec![0.0, 1.0, 0.0],
            "expense_ratios[1]",
        ),
        (
            |s| s.withdrawal = Some(WithdrawalStrategy::ConstantPercentage { rate: 1.0 }),
            "withdrawal.rate",
        ),
        (
            |s| {
                s.withdrawal = Some(WithdrawalStrategy::Guardrails(Guardrails {
                    adjustment: -0.1,
                    ..Guardrails::new(0.05)
                }))
            },
            "withdrawal.adjustment",
        ),
        (
            |s| {
                s.withdrawal = Some(WithdrawalStrategy::Vpw {
                    rates: vec![0.05; 3],
                })
            },
            "withdrawal.rates",
        ),
        (
            |s| {
                s.glide_path = Some(GlidePath::Linear {
                    end_weights: vec![0.5, 0.6, 0.0],
                })
            },
            "glide_path.end_weights",
        ),
        (
            |s| s.glide_path = Some(GlidePath::Yearly { weights: vec![] }),
            "glide_path.weights",
        ),
        (
            |s| s.inflation = Inflation::Constant { rate: -1.0 },
            "inflation.rate",
        ),
        (
            |s| s.inflation = Inflation::Historical { rates: vec![0.0] },
            "inflation",
        ),
        (
            |s| {
                s.inflation = Inflation::Stochastic {
                    drift: 0.02,
                    volatility: 0.01,
                    correlation: vec![0.99, -0.99, 0.0],
                }
            },
            "inflation.correlation",
        ),
        (|s| s.confidence_level = 1.0, "confidence_level"),
        (
            |s| {
                s.model = ReturnModel::HistoricalCohorts {
                    returns: vec![vec![0.0; 3]; 10],
                    start_stride: 1,
                }
            },
            "model.returns",
        ),
        (
            |s| {
                s.model = ReturnModel::HistoricalCohorts {
                    returns: vec![vec![0.0; 3]; 100],
                    start_stride: 0,
                }
            },
            "model.start_stride",
        ),
        (
            |s| {
                s.control_variate = true;
                s.model = ReturnModel::Bootstrap {
                    returns: vec![vec![0.0; 3]; 4],
                    block_length: 1,
                }
            },
            "control_variate",
        ),
        (
            |s| s.sampling = Sampling::Rqmc { scramblings: 1 },
            "sampling.scramblings",
        ),
        (|s| s.sampling = Sampling::Rqmc { scramblings: 5 }, "paths"),
        (
            |s| {
                s.sampling = Sampling::Rqmc { scramblings: 4 };
                s.antithetic = true;
            },
            "antithetic",
        ),
    ];
    for (mutate, field) in cases {
        let mut s = base();
        mutate(&mut s);
        let e = Simulation::new(s).expect_err("should be rejected");
        assert_eq!(e.field(), field, "{e}");
        assert!(!e.to_string().is_empty());
    }
}
