//! From a stored-form request to the engine and back: the request → engine spec mapping
//! (naming the offending field on error), the plan of extra work a request asks for
//! (precision target, withdrawal-rate search), and the tier size policy checked before any
//! work starts.

use crate::domain::simulation::{
    BootstrapSource, BootstrapSourceFields, CashFlowFrequencyInput, GlidePathInput, HistorySource,
    InflationInput, RebalancingInput, ReturnModelInput, SamplingInput, SimulationInput,
    WithdrawalInput,
};
use crate::domain::{Tier, TierCatalog};
use crate::error::AppError;

/// Longest asset label, in characters.
pub const MAX_ASSET_NAME_CHARS: usize = 100;

/// Most engine runs a withdrawal-rate search can take: two end points, then for each of the
/// two criteria three bisections (the rate and its interval's two ends) of at most
/// ⌈log₂(1 / `engine::RATE_TOLERANCE`)⌉ = 17 steps each; plus the simulation itself.
pub const RATE_SEARCH_RUNS: u64 = 2 + 2 * 3 * 17 + 1;

fn model_name(model: &ReturnModelInput) -> &'static str {
    match model {
        ReturnModelInput::Gbm => "gbm",
        ReturnModelInput::StudentT { .. } => "student_t",
        ReturnModelInput::Bootstrap { .. } => "bootstrap",
        ReturnModelInput::HistoricalCohorts { .. } => "historical_cohorts",
    }
}

/// A history: `periods × assets` simple returns, and the bundled CPI (one simple rate per
/// period) when the history is bundled.
type History = (Vec<Vec<f64>>, Option<Vec<f64>>);

/// The history a history-based model names.
fn history(input: &SimulationInput, source: &BootstrapSourceFields) -> Result<History, AppError> {
    let n = input.assets.len();
    let name = model_name(&input.model);
    match source.source() {
        None if source.history.is_some() => Err(AppError::validation(
            "model",
            "give either model.history or model.returns, not both",
        )),
        None => Err(AppError::validation(
            "model",
            format!("{name} needs model.history (e.g. shiller_us_monthly) or model.returns"),
        )),
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
            let h = engine::history::shiller_monthly();
            let rows = h
                .returns_matrix()
                .into_iter()
                .map(|row| row[..n].to_vec())
                .collect();
            Ok((rows, Some(h.inflation().to_vec())))
        }
        Some(BootstrapSource::Returns(rows)) => Ok((rows, None)),
    }
}

/// Builds the engine spec of `input` run with `seed`.
///
/// # Errors
/// 422 naming the field: drift or volatility missing for a parametric model, an over-long asset
/// name, a history source missing, doubled or not fitting the request, historical inflation
/// without its rates, a precision target or rate search the request cannot have.
pub fn to_spec(input: &SimulationInput, seed: u64) -> Result<engine::SimulationSpec, AppError> {
    let n = input.assets.len();
    let parametric = matches!(
        input.model,
        ReturnModelInput::Gbm | ReturnModelInput::StudentT { .. }
    );
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
    let expense_ratios = if input.assets.iter().any(|a| a.expense_ratio.is_some()) {
        input
            .assets
            .iter()
            .map(|a| a.expense_ratio.unwrap_or(0.0))
            .collect()
    } else {
        Vec::new()
    };
    let correlation = input.correlation.clone().unwrap_or_else(|| {
        (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect()
    });
    let mut bundled_cpi = None;
    let model = match &input.model {
        ReturnModelInput::Gbm => engine::ReturnModel::Gbm,
        ReturnModelInput::StudentT { dof } => engine::ReturnModel::StudentT { dof: *dof },
        ReturnModelInput::Bootstrap {
            source,
            block_length,
        } => {
            let (returns, cpi) = history(input, source)?;
            bundled_cpi = cpi;
            engine::ReturnModel::Bootstrap {
                returns,
                block_length: *block_length as usize,
            }
        }
        ReturnModelInput::HistoricalCohorts {
            source,
            start_stride,
        } => {
            let (returns, cpi) = history(input, source)?;
            bundled_cpi = cpi;
            engine::ReturnModel::HistoricalCohorts {
                returns,
                start_stride: *start_stride as usize,
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
    let glide_path = input.glide_path.as_ref().map(|g| match g {
        GlidePathInput::Linear { end_weights } => engine::GlidePath::Linear {
            end_weights: end_weights.clone(),
        },
        GlidePathInput::Yearly { weights } => engine::GlidePath::Yearly {
            weights: weights.clone(),
        },
    });
    let withdrawal = input.withdrawal.as_ref().map(|w| match *w {
        WithdrawalInput::ConstantAmount { initial_rate } => {
            engine::WithdrawalStrategy::ConstantAmount { initial_rate }
        }
        WithdrawalInput::ConstantPercentage { rate } => {
            engine::WithdrawalStrategy::ConstantPercentage { rate }
        }
        WithdrawalInput::Guardrails {
            initial_rate,
            upper,
            lower,
            adjustment,
            no_cut_final_years,
            inflation_rule,
        } => engine::WithdrawalStrategy::Guardrails(engine::Guardrails {
            initial_rate,
            upper,
            lower,
            adjustment,
            no_cut_final_years,
            inflation_rule,
        }),
        WithdrawalInput::FloorCeiling {
            rate,
            floor,
            ceiling,
        } => engine::WithdrawalStrategy::FloorCeiling {
            rate,
            floor,
            ceiling,
        },
        WithdrawalInput::Vpw {
            start_age,
            stock_share,
        } => engine::WithdrawalStrategy::Vpw {
            rates: engine::vpw_rates(start_age, input.horizon_years, stock_share),
        },
    });
    let inflation = match &input.inflation {
        None => engine::Inflation::None,
        Some(InflationInput::Constant { rate }) => engine::Inflation::Constant { rate: *rate },
        Some(InflationInput::Stochastic {
            drift,
            volatility,
            correlation,
        }) => engine::Inflation::Stochastic {
            drift: *drift,
            volatility: *volatility,
            correlation: correlation.clone(),
        },
        Some(InflationInput::Historical { rates }) => {
            let rates = match (rates, bundled_cpi) {
                (Some(_), Some(_)) => {
                    return Err(AppError::validation(
                        "inflation.rates",
                        "the bundled history brings its own CPI: leave inflation.rates out",
                    ));
                }
                (None, Some(cpi)) => cpi,
                (Some(rates), None) => rates.clone(),
                (None, None) if parametric => {
                    return Err(AppError::validation(
                        "inflation",
                        format!(
                            "historical inflation needs a bootstrap or historical_cohorts model, not {}",
                            model_name(&input.model)
                        ),
                    ));
                }
                (None, None) => {
                    return Err(AppError::validation(
                        "inflation.rates",
                        "historical inflation on your own returns needs inflation.rates, one per returns row",
                    ));
                }
            };
            engine::Inflation::Historical { rates }
        }
    };
    let sampling = match input.sampling {
        SamplingInput::PseudoRandom => engine::Sampling::PseudoRandom,
        SamplingInput::Rqmc { scramblings } => engine::Sampling::Rqmc { scramblings },
    };
    if input.precision.is_some()
        && matches!(input.model, ReturnModelInput::HistoricalCohorts { .. })
    {
        return Err(AppError::validation(
            "precision",
            "historical_cohorts enumerates the history exactly: leave precision out",
        ));
    }
    if input.withdrawal_rates.is_some() {
        match &input.withdrawal {
            Some(
                WithdrawalInput::ConstantAmount { .. }
                | WithdrawalInput::Guardrails { .. }
                | WithdrawalInput::FloorCeiling { .. },
            ) => {}
            _ => {
                return Err(AppError::validation(
                    "withdrawal_rates",
                    "withdrawal_rates searches the initial rate of a constant_amount, guardrails or floor_ceiling withdrawal: give one",
                ));
            }
        }
        if input.cash_flow.as_ref().is_some_and(|c| c.amount > 0.0) {
            return Err(AppError::validation(
                "withdrawal_rates",
                "withdrawal_rates cannot be searched with contributions (a positive cash_flow): success is then not monotone in the rate",
            ));
        }
    }
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
        expense_ratios,
        glide_path,
        withdrawal,
        inflation,
        confidence_level: input.confidence_level,
        sampling,
        control_variate: input.control_variate,
    })
}

/// The 422 of an engine validation error, with the engine's field names spelled as in the
/// request (`expense_ratios[i]` is `assets[i].expense_ratio`).
pub fn spec_error(e: &engine::SpecError) -> AppError {
    let rename = |s: &str| {
        let mut out = s.to_string();
        if let Some(at) = out.find("expense_ratios[")
            && let Some(close) = out[at..].find(']')
        {
            let index = out[at + "expense_ratios[".len()..at + close].to_string();
            out.replace_range(at..=at + close, &format!("assets[{index}].expense_ratio"));
        }
        out.replace("expense_ratios", "assets")
    };
    AppError::validation(rename(e.field()), rename(&e.to_string()))
}

/// The precision target of `input`, if any: goals as asked, paths capped by the tier's path
/// cap and by its work cap at this simulation's work per path.
pub fn precision_target(
    input: &SimulationInput,
    tier: &Tier,
    sim: &engine::Simulation,
) -> Option<engine::PrecisionTarget> {
    let p = input.precision.as_ref()?;
    let per_path = (sim.work() / sim.paths().max(1)).max(1);
    let max_paths = tier
        .max_paths
        .min(tier.max_work / per_path)
        .min(engine::Limits::default().max_paths)
        .max(sim.paths());
    Some(engine::PrecisionTarget {
        goals: p
            .goals
            .iter()
            .map(|g| engine::PrecisionGoal {
                quantity: g.quantity.to_engine(),
                half_width: g.half_width,
            })
            .collect(),
        max_paths,
    })
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
    input: &SimulationInput,
) -> Result<(), AppError> {
    let paths = sim.paths();
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
    let rate_search = input.withdrawal_rates.is_some();
    let work = if rate_search {
        sim.work().saturating_mul(RATE_SEARCH_RUNS)
    } else {
        sim.work()
    };
    if work > tier.max_work {
        let what = if rate_search {
            format!(
                "paths × steps × assets × {RATE_SEARCH_RUNS} (the most runs a withdrawal-rate search takes) = {work}"
            )
        } else {
            format!("paths × steps × assets = {work}")
        };
        return Err(AppError::limit(
            403,
            "size",
            format!(
                "{what} exceeds the {} tier's limit of {}; {}",
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
