//! From a stored-form request to the engine and back: the request → engine spec mapping
//! (naming the offending field on error), the engine result → stored output mapping, and the
//! tier size policy checked before any work starts.

use crate::domain::simulation::{
    BootstrapSource, CashFlowFrequencyInput, HistogramOutput, HistorySource, PercentilesOutput,
    RebalancingInput, ReturnModelInput, RiskOutput, SimulationInput, SimulationOutput,
    TerminalOutput, YearBandOutput,
};
use crate::domain::{Tier, TierCatalog};
use crate::error::AppError;

/// Longest asset label, in characters.
pub const MAX_ASSET_NAME_CHARS: usize = 100;

fn model_name(model: &ReturnModelInput) -> &'static str {
    match model {
        ReturnModelInput::Gbm => "gbm",
        ReturnModelInput::StudentT { .. } => "student_t",
        ReturnModelInput::Bootstrap { .. } => "bootstrap",
    }
}

/// Builds the engine spec of `input` run with `seed`.
///
/// # Errors
/// 422 naming the field: drift or volatility missing for a parametric model, an over-long asset
/// name, a bootstrap source missing, doubled or not fitting the request.
pub fn to_spec(input: &SimulationInput, seed: u64) -> Result<engine::SimulationSpec, AppError> {
    let n = input.assets.len();
    let parametric = !matches!(input.model, ReturnModelInput::Bootstrap { .. });
    let mut assets = Vec::with_capacity(n);
    for (i, a) in input.assets.iter().enumerate() {
        let required = |value: Option<f64>, what: &str| {
            value.ok_or_else(|| {
                AppError::validation(
                    format!("assets[{i}].{what}"),
                    format!(
                        "assets[{i}].{what} is required for the {} model",
                        model_name(&input.model)
                    ),
                )
            })
        };
        let (drift, volatility) = if parametric {
            (
                required(a.drift, "drift")?,
                required(a.volatility, "volatility")?,
            )
        } else {
            (a.drift.unwrap_or(0.0), a.volatility.unwrap_or(0.0))
        };
        if let Some(name) = &a.name
            && name.chars().count() > MAX_ASSET_NAME_CHARS
        {
            return Err(AppError::validation(
                format!("assets[{i}].name"),
                format!("asset names are at most {MAX_ASSET_NAME_CHARS} characters"),
            ));
        }
        assets.push(engine::Asset {
            weight: a.weight,
            drift,
            volatility,
        });
    }
    let correlation = input.correlation.clone().unwrap_or_else(|| {
        (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect()
    });
    let model = match &input.model {
        ReturnModelInput::Gbm => engine::ReturnModel::Gbm,
        ReturnModelInput::StudentT { dof } => engine::ReturnModel::StudentT { dof: *dof },
        ReturnModelInput::Bootstrap {
            source,
            block_length,
        } => {
            let returns = match source.source() {
                None if source.history.is_some() => {
                    return Err(AppError::validation(
                        "model",
                        "give either model.history or model.returns, not both",
                    ));
                }
                None => {
                    return Err(AppError::validation(
                        "model",
                        "bootstrap needs model.history (e.g. shiller_us_monthly) or model.returns",
                    ));
                }
                Some(BootstrapSource::History(HistorySource::ShillerUsMonthly)) => {
                    if input.steps_per_year != 12 {
                        return Err(AppError::validation(
                            "steps_per_year",
                            "the shiller_us_monthly history is monthly: set steps_per_year to 12",
                        ));
                    }
                    if !(1..=2).contains(&n) {
                        return Err(AppError::validation(
                            "assets",
                            "shiller_us_monthly has 2 series: give 1 asset (stocks) or 2 (stocks, bonds)",
                        ));
                    }
                    engine::history::shiller_monthly()
                        .returns_matrix()
                        .into_iter()
                        .map(|row| row[..n].to_vec())
                        .collect()
                }
                Some(BootstrapSource::Returns(rows)) => rows,
            };
            engine::ReturnModel::Bootstrap {
                returns,
                block_length: *block_length as usize,
            }
        }
    };
    let rebalancing = match (input.rebalance_every_steps, input.rebalancing) {
        (Some(k), _) => engine::Rebalancing::EveryNSteps(k),
        (None, RebalancingInput::Never) => engine::Rebalancing::Never,
        (None, RebalancingInput::EveryStep) => engine::Rebalancing::EveryStep,
        (None, RebalancingInput::Monthly) => engine::Rebalancing::Monthly,
        (None, RebalancingInput::Quarterly) => engine::Rebalancing::Quarterly,
        (None, RebalancingInput::Annually) => engine::Rebalancing::Annually,
    };
    let cash_flow = input.cash_flow.as_ref().map(|c| engine::CashFlow {
        amount: c.amount,
        frequency: match c.frequency {
            CashFlowFrequencyInput::EveryStep => engine::CashFlowFrequency::EveryStep,
            CashFlowFrequencyInput::Annually => engine::CashFlowFrequency::Annually,
        },
        annual_growth: c.annual_growth,
    });
    Ok(engine::SimulationSpec {
        assets,
        correlation,
        initial_value: input.initial_value,
        horizon_years: input.horizon_years,
        steps_per_year: input.steps_per_year,
        paths: input.paths,
        seed,
        model,
        rebalancing,
        cash_flow,
        antithetic: input.antithetic,
        histogram_bins: input.histogram_bins,
        ..engine::SimulationSpec::default()
    })
}

fn percentiles(p: &engine::Percentiles) -> PercentilesOutput {
    PercentilesOutput {
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

/// The stored form of an engine result.
pub fn output_of(r: &engine::SimulationResult) -> SimulationOutput {
    SimulationOutput {
        seed: r.seed,
        engine_version: r.engine_version.to_string(),
        paths: r.paths,
        steps: r.steps,
        terminal: TerminalOutput {
            mean: r.terminal.mean,
            std_dev: r.terminal.std_dev,
            std_error: r.terminal.std_error,
            percentiles: percentiles(&r.terminal.percentiles),
            histogram: HistogramOutput {
                edges: r.terminal.histogram.edges.clone(),
                counts: r.terminal.histogram.counts.clone(),
            },
        },
        risk: RiskOutput {
            probability_of_loss: r.risk.probability_of_loss,
            probability_of_ruin: r.risk.probability_of_ruin,
            success_rate: r.risk.success_rate,
            var_95: r.risk.var_95,
            cvar_95: r.risk.cvar_95,
            var_99: r.risk.var_99,
            cvar_99: r.risk.cvar_99,
            max_drawdown_p50: r.risk.max_drawdown_p50,
            max_drawdown_p95: r.risk.max_drawdown_p95,
            cagr: percentiles(&r.risk.cagr),
        },
        yearly: r
            .yearly
            .iter()
            .map(|y| YearBandOutput {
                year: y.year,
                mean: y.mean,
                percentiles: percentiles(&y.percentiles),
            })
            .collect(),
    }
}

fn tier_hint(tiers: &TierCatalog, current: &Tier, allows: impl Fn(&Tier) -> bool) -> String {
    tiers.upgrade(&current.name, allows).map_or_else(
        || "no tier allows it".to_string(),
        |t| format!("the {} tier allows it", t.name),
    )
}

/// The tier's size caps, checked before any work starts.
///
/// # Errors
/// 403 (policy `size`) naming the limit and the cheapest tier that allows the request.
pub fn check_size(
    tiers: &TierCatalog,
    tier: &Tier,
    sim: &engine::Simulation,
    paths: u64,
) -> Result<(), AppError> {
    if paths > tier.max_paths {
        return Err(AppError::limit(
            403,
            "size",
            format!(
                "paths = {paths} exceeds the {} tier's limit of {} paths per simulation; {}",
                tier.name,
                tier.max_paths,
                tier_hint(tiers, tier, |t| t.max_paths >= paths)
            ),
            None,
            Vec::new(),
        ));
    }
    let work = sim.work();
    if work > tier.max_work {
        return Err(AppError::limit(
            403,
            "size",
            format!(
                "paths × steps × assets = {work} exceeds the {} tier's limit of {}; {}",
                tier.name,
                tier.max_work,
                tier_hint(tiers, tier, |t| t.max_work >= work)
            ),
            None,
            Vec::new(),
        ));
    }
    Ok(())
}
