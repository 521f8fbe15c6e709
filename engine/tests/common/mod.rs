//! Shared helpers for the engine's integration tests.
#![allow(dead_code)]

use engine::*;

/// Every statistical tolerance of the test suite, in one place.
///
/// Monte Carlo estimates are compared with closed forms within `Z` standard
/// errors (fixed seeds make the tests deterministic; `Z = 4` keeps the
/// chance that a correct engine fails for an unlucky seed below 1e-4 per
/// check).
pub mod tol {
    /// Multiple of the standard error allowed for MC estimates.
    pub const Z: f64 = 4.0;
    /// Relative tolerance for deterministic (σ = 0) results: a few ulps per step.
    pub const DETERMINISTIC_REL: f64 = 1e-12;
    /// Absolute tolerance for hand-computed cash-flow paths (currency units).
    pub const CENT: f64 = 0.005;
    /// Absolute tolerance on a sample correlation (SE ≈ (1 − ρ²)/√n).
    pub const CORRELATION_Z: f64 = 4.0;
}

/// Standard normal CDF Φ(x) via a Chebyshev erfc approximation
/// (Numerical Recipes `erfcc`, relative error < 1.2e-7).
pub fn norm_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { 1.0 - 0.5 * r } else { 0.5 * r }
}

/// Standard normal density.
pub fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ⁻¹ at the probabilities the engine reports.
pub fn norm_quantile(p: f64) -> f64 {
    // Acklam's rational approximation refined by two Newton steps.
    let a = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    let b = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    let c = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    let d = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let mut x = if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    } else if p > 1.0 - 0.02425 {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    };
    for _ in 0..2 {
        x -= (norm_cdf(x) - p) / norm_pdf(x);
    }
    x
}

/// A one-asset GBM spec; tweak fields in the test.
pub fn single_asset(
    mu: f64,
    sigma: f64,
    years: u32,
    steps: u32,
    paths: u64,
    seed: u64,
) -> SimulationSpec {
    SimulationSpec {
        assets: vec![Asset {
            weight: 1.0,
            drift: mu,
            volatility: sigma,
        }],
        correlation: vec![vec![1.0]],
        initial_value: 10_000.0,
        horizon_years: years,
        steps_per_year: steps,
        paths,
        seed,
        model: ReturnModel::Gbm,
        rebalancing: Rebalancing::Never,
        cash_flow: None,
        antithetic: false,
        histogram_bins: 20,
        ..Default::default()
    }
}

/// Three correlated assets.
pub fn three_assets(paths: u64, seed: u64) -> SimulationSpec {
    SimulationSpec {
        assets: vec![
            Asset {
                weight: 0.5,
                drift: 0.08,
                volatility: 0.20,
            },
            Asset {
                weight: 0.3,
                drift: 0.04,
                volatility: 0.08,
            },
            Asset {
                weight: 0.2,
                drift: 0.06,
                volatility: 0.30,
            },
        ],
        correlation: vec![
            vec![1.0, -0.3, 0.6],
            vec![-0.3, 1.0, 0.1],
            vec![0.6, 0.1, 1.0],
        ],
        initial_value: 50_000.0,
        horizon_years: 5,
        steps_per_year: 12,
        paths,
        seed,
        model: ReturnModel::Gbm,
        rebalancing: Rebalancing::EveryStep,
        cash_flow: None,
        antithetic: false,
        histogram_bins: 40,
        ..Default::default()
    }
}

/// Asserts `|got − want| ≤ tol::Z · se` with a readable message.
pub fn assert_within_se(what: &str, got: f64, want: f64, se: f64) {
    assert!(
        (got - want).abs() <= tol::Z * se,
        "{what}: got {got}, expected {want} ± {} ({} SE of {se}); off by {:.2} SE",
        tol::Z * se,
        tol::Z,
        (got - want).abs() / se
    );
}
