//! Every validation rule yields its typed error naming the field, and no
//! input panics (property test).

mod common;
use common::*;
use engine::*;
use proptest::prelude::*;

fn err(spec: SimulationSpec) -> SpecError {
    Simulation::new(spec).expect_err("spec should be rejected")
}

#[test]
fn asset_rules() {
    let mut s = three_assets(10, 1);
    s.assets[2].weight = f64::NAN;
    assert_eq!(err(s).field(), "assets[2].weight");

    let mut s = three_assets(10, 1);
    s.assets[1].weight = -0.1;
    s.assets[0].weight = 0.9;
    let e = err(s);
    assert!(matches!(e, SpecError::NegativeWeight { .. }));
    assert_eq!(e.field(), "assets[1].weight");

    let mut s = three_assets(10, 1);
    s.assets[0].weight = 0.6;
    let e = err(s);
    assert!(matches!(e, SpecError::WeightsDoNotSumToOne { .. }), "{e}");
    assert!(e.to_string().contains("sum to 1"));

    let mut s = three_assets(10, 1);
    s.assets[0].volatility = -0.1;
    assert_eq!(err(s).field(), "assets[0].volatility");

    let mut s = three_assets(10, 1);
    s.assets[1].drift = f64::INFINITY;
    assert_eq!(err(s).field(), "assets[1].drift");

    let mut s = three_assets(10, 1);
    s.assets.clear();
    s.correlation.clear();
    assert_eq!(err(s), SpecError::NoAssets);

    // Weights within 1e-9 of summing to one are fine.
    let mut s = three_assets(10, 1);
    s.assets[0].weight += 5e-10;
    assert!(Simulation::new(s).is_ok());
}

#[test]
fn correlation_rules() {
    let mut s = three_assets(10, 1);
    s.correlation.pop();
    assert_eq!(err(s).field(), "correlation");

    let mut s = three_assets(10, 1);
    s.correlation[1].push(0.0);
    assert_eq!(err(s).field(), "correlation[1]");

    let mut s = three_assets(10, 1);
    s.correlation[1][1] = 0.99;
    let e = err(s);
    assert_eq!(e.field(), "correlation[1][1]");
    assert!(matches!(e, SpecError::CorrelationDiagonal { .. }));

    let mut s = three_assets(10, 1);
    s.correlation[1][0] = 0.2;
    let e = err(s);
    assert_eq!(e.field(), "correlation[1][0]");
    assert!(
        matches!(e, SpecError::CorrelationNotSymmetric { .. }),
        "{e}"
    );

    let mut s = three_assets(10, 1);
    s.correlation[0][2] = 1.5;
    s.correlation[2][0] = 1.5;
    assert_eq!(err(s).field(), "correlation[0][2]");

    let mut s = three_assets(10, 1);
    s.correlation[0][2] = f64::NAN;
    assert!(matches!(err(s), SpecError::NotFinite { .. }));

    let mut s = three_assets(10, 1);
    s.correlation = vec![
        vec![1.0, 0.9, -0.9],
        vec![0.9, 1.0, 0.9],
        vec![-0.9, 0.9, 1.0],
    ];
    let e = err(s);
    assert_eq!(e.field(), "correlation");
    assert!(
        matches!(e, SpecError::NotPositiveSemiDefinite { pivot: 2, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("correlation matrix is not positive semi-definite: pivot 2 is -")
    );

    // Singular but PSD: all ones, and a block structure.
    let mut s = three_assets(10, 1);
    s.correlation = vec![vec![1.0; 3]; 3];
    assert!(Simulation::new(s).is_ok());
    let mut s = three_assets(10, 1);
    s.correlation = vec![
        vec![1.0, -1.0, 0.0],
        vec![-1.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ];
    assert!(Simulation::new(s).is_ok());
}

#[test]
fn scalar_and_model_rules() {
    type Mutation = fn(&mut SimulationSpec);
    let cases: Vec<(Mutation, &str)> = vec![
        (|s| s.paths = 0, "paths"),
        (|s| s.paths = 20_000_000, "paths"),
        (|s| s.initial_value = 0.0, "initial_value"),
        (|s| s.initial_value = f64::NAN, "initial_value"),
        (|s| s.horizon_years = 0, "horizon_years"),
        (|s| s.horizon_years = 1_000, "horizon_years"),
        (|s| s.steps_per_year = 0, "steps_per_year"),
        (|s| s.steps_per_year = 253, "steps_per_year"),
        (|s| s.histogram_bins = 0, "histogram_bins"),
        (
            |s| s.rebalancing = Rebalancing::EveryNSteps(0),
            "rebalancing",
        ),
        (
            |s| s.model = ReturnModel::StudentT { dof: 2.0 },
            "model.dof",
        ),
        (
            |s| s.model = ReturnModel::StudentT { dof: f64::NAN },
            "model.dof",
        ),
        (
            |s| {
                s.model = ReturnModel::Bootstrap {
                    returns: vec![],
                    block_length: 1,
                }
            },
            "model.returns",
        ),
        (
            |s| {
                s.model = ReturnModel::Bootstrap {
                    returns: vec![vec![0.0; 2]],
                    block_length: 1,
                }
            },
            "model.returns[0]",
        ),
        (
            |s| {
                s.model = ReturnModel::Bootstrap {
                    returns: vec![vec![0.0, -1.5, 0.0]],
                    block_length: 1,
                }
            },
            "model.returns[0][1]",
        ),
        (
            |s| {
                s.model = ReturnModel::Bootstrap {
                    returns: vec![vec![0.0; 3]; 4],
                    block_length: 5,
                }
            },
            "model.block_length",
        ),
        (
            |s| {
                s.antithetic = true;
                s.model = ReturnModel::Bootstrap {
                    returns: vec![vec![0.0; 3]; 4],
                    block_length: 1,
                }
            },
            "antithetic",
        ),
        (
            |s| {
                s.cash_flow = Some(CashFlow {
                    amount: f64::INFINITY,
                    frequency: CashFlowFrequency::Annually,
                    annual_growth: 0.0,
                })
            },
            "cash_flow.amount",
        ),
        (
            |s| {
                s.cash_flow = Some(CashFlow {
                    amount: 1.0,
                    frequency: CashFlowFrequency::Annually,
                    annual_growth: -1.0,
                })
            },
            "cash_flow.annual_growth",
        ),
    ];
    for (mutate, field) in cases {
        let mut s = three_assets(10, 1);
        mutate(&mut s);
        let e = err(s);
        assert_eq!(e.field(), field, "{e}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn limits_cap_work_and_paths() {
    let s = three_assets(1_000, 1);
    let limits = Limits {
        max_paths: 500,
        max_work: u64::MAX,
    };
    assert!(matches!(
        Simulation::with_limits(s.clone(), &limits),
        Err(SpecError::TooManyPaths {
            paths: 1_000,
            max: 500
        })
    ));
    let limits = Limits {
        max_paths: 1_000,
        max_work: 1_000 * 3 * 60 - 1,
    };
    assert!(matches!(
        Simulation::with_limits(s.clone(), &limits),
        Err(SpecError::TooMuchWork { .. })
    ));
    let limits = Limits {
        max_paths: 1_000,
        max_work: 1_000 * 3 * 60,
    };
    assert_eq!(Simulation::with_limits(s, &limits).unwrap().work(), 180_000);
    // Year-end storage is bounded too.
    let mut s = single_asset(0.0, 0.1, 100, 1, 1_000_000, 1);
    s.paths = 1_000_000;
    assert!(matches!(
        Simulation::new(s),
        Err(SpecError::TooMuchMemory { .. })
    ));
}

#[test]
fn rebalancing_calendar_mapping_runs() {
    for (r, spy) in [
        (Rebalancing::Monthly, 252),
        (Rebalancing::Monthly, 1),
        (Rebalancing::Quarterly, 52),
        (Rebalancing::Annually, 12),
        (Rebalancing::EveryNSteps(7), 12),
    ] {
        let mut s = three_assets(20, 1);
        s.rebalancing = r;
        s.steps_per_year = spy;
        s.horizon_years = 1;
        let res = Simulation::new(s).unwrap().run();
        assert!(res.terminal.mean.is_finite());
    }
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1.5f64..1.5,
        1 => Just(0.0),
        1 => Just(1.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1e308),
        1 => prop::num::f64::ANY,
    ]
}

prop_compose! {
    fn arb_spec()(
        n in 0usize..4,
        raw in prop::collection::vec((any_f64(), any_f64(), any_f64()), 4),
        corr in prop::collection::vec(any_f64(), 16),
        ragged in any::<bool>(),
        normalise in any::<bool>(),
        identity in any::<bool>(),
        initial_value in prop_oneof![Just(1000.0), any_f64(), Just(1e15)],
        horizon_years in 0u32..4,
        steps_per_year in prop_oneof![Just(0u32), 1u32..30, Just(252), Just(400)],
        paths in prop_oneof![Just(0u64), 1u64..40, Just(u64::MAX)],
        seed in any::<u64>(),
        model_kind in 0u8..3,
        dof in any_f64(),
        boot_rows in 0usize..5,
        block_length in 0usize..6,
        rebal in (0u8..6, 0u32..5),
        flow in prop::option::of((prop_oneof![any_f64(), Just(-5000.0), Just(200.0)], any::<bool>(), any_f64())),
        antithetic in any::<bool>(),
        histogram_bins in prop_oneof![Just(0u32), 1u32..50, Just(u32::MAX)],
    ) -> SimulationSpec {
        let mut assets: Vec<Asset> = raw[..n].iter().map(|&(w, d, v)| Asset {
            weight: w, drift: d * 0.5, volatility: v.abs()
        }).collect();
        if normalise && n > 0 {
            for a in &mut assets { a.weight = 1.0 / n as f64; }
        }
        let mut correlation: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| {
            if identity { if i == j { 1.0 } else { 0.0 } } else { corr[i.max(j) * 4 + i.min(j)] }
        }).collect()).collect();
        if ragged && n > 0 { correlation[0].push(0.0); }
        let returns = (0..boot_rows).map(|r| (0..n).map(|c| raw[(r + c) % 4].0 * 0.1).collect()).collect();
        let model = match model_kind {
            0 => ReturnModel::Gbm,
            1 => ReturnModel::StudentT { dof: dof * 10.0 },
            _ => ReturnModel::Bootstrap { returns, block_length },
        };
        let rebalancing = match rebal.0 {
            0 => Rebalancing::Never,
            1 => Rebalancing::EveryStep,
            2 => Rebalancing::Monthly,
            3 => Rebalancing::Quarterly,
            4 => Rebalancing::Annually,
            _ => Rebalancing::EveryNSteps(rebal.1),
        };
        let cash_flow = flow.map(|(amount, yearly, g)| CashFlow {
            amount,
            frequency: if yearly { CashFlowFrequency::Annually } else { CashFlowFrequency::EveryStep },
            annual_growth: g,
        });
        SimulationSpec {
            assets, correlation, initial_value, horizon_years, steps_per_year, paths, seed,
            model, rebalancing, cash_flow, antithetic, histogram_bins,
            ..Default::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No input panics; accepted inputs produce finite, well-formed results.
    #[test]
    fn no_input_panics(spec in arb_spec()) {
        let limits = Limits { max_paths: 64, max_work: 1_000_000 };
        if let Ok(sim) = Simulation::with_limits(spec.clone(), &limits) {
            let r = sim.run();
            prop_assert_eq!(r.yearly.len(), spec.horizon_years as usize);
            prop_assert_eq!(r.terminal.histogram.counts.iter().sum::<u64>(), spec.paths);
            prop_assert!(r.terminal.mean.is_finite());
            prop_assert!(r.terminal.percentiles.to_array().iter().all(|v| v.is_finite() && *v >= 0.0));
            prop_assert!(r.risk.cagr.to_array().iter().all(|v| v.is_finite()));
            prop_assert!(r.risk.var_99.is_finite() && r.risk.cvar_99.is_finite());
            prop_assert!((0.0..=1.0).contains(&r.risk.max_drawdown_p95));
        }
    }
}
