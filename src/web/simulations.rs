//! Simulation pages: the new-simulation form `/simulations/new` (builds the same
//! `SimulationInput` the JSON API builds and runs it through the same service path), the
//! result permalink `/simulations/{id}` (fan chart, histogram, percentile and risk tables),
//! its downloads `/simulations/{id}.json` (the API's JSON) and `/simulations/{id}.csv`
//! (yearly percentiles, RFC 4180), and the list `/simulations` (newest first, cursor pages).
//!
//! Money on these pages is rounded to cents with thousands separators (`127,331.79`), the
//! API's number rounded half away from zero to 2 decimals; the exact value is in `data-value`.

use super::page::{self, Chrome, FieldErrors, Nav};
use super::session::{self, SignedIn};
use crate::app::jobs::Submitted;
use crate::domain::SimulationId;
use crate::domain::simulation::{
    AssetInput, BootstrapSourceFields, CashFlowFrequencyInput, CashFlowInput, HistorySource,
    InflationInput, RebalancingInput, ReturnModelInput, SamplingInput, Simulation, SimulationInput,
};
use crate::error::AppError;
use askama::Template;
use poem::http::StatusCode;
use poem::web::{Multipart, Path, Query};
use poem::{FromRequest, Request, RequestBody, Response, handler};
use serde::Deserialize;
use std::collections::HashMap;

/// The API's asset limit (`SimulationRequest.assets`: 1 to 50).
pub const MAX_ASSETS: usize = 50;
/// Largest uploaded returns CSV, bytes.
pub const MAX_CSV_BYTES: usize = 1024 * 1024;
/// Largest text field of the form, bytes.
const MAX_FIELD_BYTES: usize = 1000;
/// Most rows of an uploaded returns CSV (as the API's body limit allows).
pub const MAX_CSV_ROWS: usize = 12_000;
/// Simulations per list page.
pub const PAGE_SIZE: u32 = 20;

/// `x` with two decimals and thousands separators (`127,331.79`).
pub fn money(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let text = format!("{:.2}", x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if x < 0.0 && !text.trim_matches(['0', '.']).is_empty() {
        "-"
    } else {
        ""
    };
    format!("{sign}{grouped}.{frac}")
}

fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2} %", x * 100.0)
    } else {
        "—".into()
    }
}

// ---------------------------------------------------------------------------------------
// The form

/// One asset row of the form, as typed.
struct AssetRow {
    name: String,
    weight: String,
    drift: String,
    volatility: String,
}

/// One cell of the correlation editor.
struct Cell {
    i: usize,
    j: usize,
    value: String,
}

/// The form's values, as typed (strings, so a wrong entry is shown back as it was).
struct FormValues {
    assets: Vec<AssetRow>,
    /// Upper triangle `(i, j)` with `i < j` → text.
    correlation: HashMap<(usize, usize), String>,
    model: String,
    dof: String,
    block_length: String,
    initial_value: String,
    rebalancing: String,
    cash_flow_amount: String,
    cash_flow_frequency: String,
    cash_flow_growth: String,
    inflation_rate: String,
    horizon_years: String,
    steps_per_year: String,
    paths: String,
    seed: String,
    csv: Option<(String, Vec<u8>)>,
}

impl Default for FormValues {
    /// A 60/40 stocks/bonds portfolio, 30 years monthly, 10,000 paths.
    fn default() -> Self {
        let row = |name: &str, weight: &str, drift: &str, vol: &str| AssetRow {
            name: name.into(),
            weight: weight.into(),
            drift: drift.into(),
            volatility: vol.into(),
        };
        Self {
            assets: vec![
                row("Stocks", "0.6", "0.07", "0.16"),
                row("Bonds", "0.4", "0.03", "0.06"),
            ],
            correlation: HashMap::from([((0, 1), "0.1".to_string())]),
            model: "gbm".into(),
            dof: "5".into(),
            block_length: "12".into(),
            initial_value: "100000".into(),
            rebalancing: "annually".into(),
            cash_flow_amount: "0".into(),
            cash_flow_frequency: "annually".into(),
            cash_flow_growth: "0.02".into(),
            inflation_rate: String::new(),
            horizon_years: "30".into(),
            steps_per_year: "12".into(),
            paths: "10000".into(),
            seed: String::new(),
            csv: None,
        }
    }
}

/// A rendered asset row.
struct AssetView {
    index: usize,
    name: String,
    weight: String,
    drift: String,
    volatility: String,
    name_error: Option<String>,
    weight_error: Option<String>,
    drift_error: Option<String>,
    volatility_error: Option<String>,
}

#[derive(Template)]
#[template(path = "simulations/new.html")]
struct NewPage {
    chrome: Chrome,
    can_run: bool,
    assets: Vec<AssetView>,
    /// Rows of the matrix, each `n` cells.
    matrix: Vec<MatrixRow>,
    n: usize,
    max_assets: usize,
    v: FormValues,
    errors: FieldErrors,
    max_csv_kib: usize,
}

/// A plain text input of the money-and-time section.
struct MoneyField {
    name: &'static str,
    key: &'static str,
    label: &'static str,
    value: String,
    hint: &'static str,
    /// The cash-flow frequency select follows this field.
    frequency_after: bool,
}

/// A row of the correlation editor: the asset's label and its cells.
struct MatrixRow {
    label: String,
    cells: Vec<Cell>,
}

impl NewPage {
    fn money_fields(&self) -> Vec<MoneyField> {
        let v = &self.v;
        let f = |name, key, label, value: &String, hint| MoneyField {
            name,
            key,
            label,
            value: value.clone(),
            hint,
            frequency_after: name == "cash_flow_amount",
        };
        vec![
            f(
                "initial_value",
                "initial_value",
                "Initial value",
                &v.initial_value,
                "Currency units, more than 0.",
            ),
            f(
                "cash_flow_amount",
                "cash_flow",
                "Cash flow per period",
                &v.cash_flow_amount,
                "Positive adds, negative withdraws; 0 for none.",
            ),
            f(
                "cash_flow_growth",
                "cash_flow.growth",
                "Cash flow grows by (per year)",
                &v.cash_flow_growth,
                "Decimal, e.g. 0.02 to follow 2 % inflation.",
            ),
            f(
                "inflation_rate",
                "inflation",
                "Inflation (per year, optional)",
                &v.inflation_rate,
                "Adds results in today's money; empty for none.",
            ),
            f(
                "horizon_years",
                "horizon_years",
                "Horizon (years)",
                &v.horizon_years,
                "1 to 100.",
            ),
            f(
                "steps_per_year",
                "steps_per_year",
                "Steps per year",
                &v.steps_per_year,
                "1 to 252; 12 = monthly (the history needs 12).",
            ),
            f(
                "paths",
                "paths",
                "Paths",
                &v.paths,
                "Your plan caps paths and paths × steps × assets.",
            ),
            f(
                "seed",
                "seed",
                "Seed (optional)",
                &v.seed,
                "Same inputs and seed give identical results; empty = random.",
            ),
        ]
    }

    fn selected(&self, field: &str, value: &str) -> bool {
        let current = match field {
            "model" => &self.v.model,
            "rebalancing" => &self.v.rebalancing,
            "cash_flow_frequency" => &self.v.cash_flow_frequency,
            _ => return false,
        };
        current == value
    }
}

fn new_page(s: &SignedIn, v: FormValues, errors: FieldErrors) -> NewPage {
    let n = v.assets.len();
    let err = |key: String| errors.get(&key).map(str::to_string);
    let assets = v
        .assets
        .iter()
        .enumerate()
        .map(|(i, a)| AssetView {
            index: i,
            name: a.name.clone(),
            weight: a.weight.clone(),
            drift: a.drift.clone(),
            volatility: a.volatility.clone(),
            name_error: err(format!("assets[{i}].name")),
            weight_error: err(format!("assets[{i}].weight")),
            drift_error: err(format!("assets[{i}].drift")),
            volatility_error: err(format!("assets[{i}].volatility")),
        })
        .collect();
    let matrix = (0..n)
        .map(|i| MatrixRow {
            label: v.assets[i].name.trim().to_string(),
            cells: (0..n)
                .map(|j| {
                    let key = (i.min(j), i.max(j));
                    let value = if i == j {
                        "1".to_string()
                    } else {
                        v.correlation
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| "0".into())
                    };
                    Cell { i, j, value }
                })
                .collect(),
        })
        .collect();
    NewPage {
        chrome: s.chrome(Nav::NewSimulation),
        can_run: s.ctx.require_runner().is_ok(),
        assets,
        matrix,
        n,
        max_assets: MAX_ASSETS,
        v,
        errors,
        max_csv_kib: MAX_CSV_BYTES / 1024,
    }
}

/// `GET /simulations/new`: the form with a 60/40 default that runs in one click.
#[handler]
pub async fn new_form(s: SignedIn) -> poem::Result<Response> {
    let tpl = new_page(&s, FormValues::default(), FieldErrors::default());
    Ok(page::render(StatusCode::OK, &tpl))
}

/// The raw submitted fields: (name, text) pairs, and the uploaded CSV if any.
struct Submitted_ {
    fields: HashMap<String, String>,
    csv: Option<(String, Vec<u8>)>,
}

async fn read_body(req: &Request, body: poem::Body) -> poem::Result<Submitted_> {
    let too_big = |what: &str| page::fail(StatusCode::PAYLOAD_TOO_LARGE, what.to_string());
    let mut fields = HashMap::new();
    let mut csv = None;
    let content_type = req.content_type().unwrap_or_default().to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut body = RequestBody::new(body);
        let mut multipart = Multipart::from_request(req, &mut body).await?;
        let mut count = 0usize;
        while let Some(field) = multipart.next_field().await? {
            count += 1;
            if count > 4 * MAX_ASSETS * MAX_ASSETS {
                return Err(too_big("too many form fields"));
            }
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let limit = if name == "returns_csv" {
                MAX_CSV_BYTES
            } else {
                MAX_FIELD_BYTES
            };
            let mut reader = field.into_async_read();
            let mut bytes = Vec::new();
            use tokio::io::AsyncReadExt;
            (&mut reader)
                .take(limit as u64 + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| page::fail(StatusCode::BAD_REQUEST, e.to_string()))?;
            if bytes.len() > limit {
                if name == "returns_csv" {
                    let mut out = Submitted_ { fields, csv: None };
                    out.fields.insert(
                        "__csv_error".into(),
                        format!(
                            "the returns file is larger than {} KiB",
                            MAX_CSV_BYTES / 1024
                        ),
                    );
                    return Ok(out);
                }
                return Err(too_big("a form field is too long"));
            }
            if name == "returns_csv" {
                if !bytes.is_empty() {
                    csv = Some((file_name.unwrap_or_default(), bytes));
                }
            } else {
                fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    } else {
        let bytes = body
            .into_bytes_limit(64 * 1024)
            .await
            .map_err(|_| too_big("form too large"))?;
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(&bytes)?;
        fields.extend(pairs);
    }
    Ok(Submitted_ { fields, csv })
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte).
fn serde_urlencoded_pairs(bytes: &[u8]) -> poem::Result<Vec<(String, String)>> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    match u8::from_str_radix(
                        std::str::from_utf8(&s[i + 1..i + 3]).unwrap_or("zz"),
                        16,
                    ) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    Ok(bytes
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect())
}

fn values_from(sub: &Submitted_) -> FormValues {
    let get = |k: &str| sub.fields.get(k).cloned().unwrap_or_default();
    let count = get("asset_count")
        .trim()
        .parse::<usize>()
        .unwrap_or(2)
        .clamp(1, MAX_ASSETS);
    let assets = (0..count)
        .map(|i| AssetRow {
            name: get(&format!("asset_{i}_name")),
            weight: get(&format!("asset_{i}_weight")),
            drift: get(&format!("asset_{i}_drift")),
            volatility: get(&format!("asset_{i}_volatility")),
        })
        .collect();
    let mut correlation = HashMap::new();
    for i in 0..count {
        for j in i + 1..count {
            correlation.insert((i, j), get(&format!("corr_{i}_{j}")));
        }
    }
    FormValues {
        assets,
        correlation,
        model: get("model"),
        dof: get("dof"),
        block_length: get("block_length"),
        initial_value: get("initial_value"),
        rebalancing: get("rebalancing"),
        cash_flow_amount: get("cash_flow_amount"),
        cash_flow_frequency: get("cash_flow_frequency"),
        cash_flow_growth: get("cash_flow_growth"),
        inflation_rate: get("inflation_rate"),
        horizon_years: get("horizon_years"),
        steps_per_year: get("steps_per_year"),
        paths: get("paths"),
        seed: get("seed"),
        csv: sub.csv.clone(),
    }
}

/// Parses `text` as a number for `field`; empty is `None`.
fn number<T: std::str::FromStr>(
    errors: &mut FieldErrors,
    field: &str,
    label: &str,
    text: &str,
) -> Option<T> {
    let t = text.trim().replace([',', '_'], "");
    if t.is_empty() {
        return None;
    }
    match t.parse::<T>() {
        Ok(v) => Some(v),
        Err(_) => {
            errors.add(
                field,
                format!("{label} must be a number, got {:?}", text.trim()),
            );
            None
        }
    }
}

fn required<T: std::str::FromStr>(
    errors: &mut FieldErrors,
    field: &str,
    label: &str,
    text: &str,
) -> Option<T> {
    if text.trim().is_empty() {
        errors.add(field, format!("{label} is required"));
        return None;
    }
    number(errors, field, label, text)
}

/// Parses an uploaded CSV of simple returns per step: one row per period, one column per
/// asset; a first line that is not numeric is a header.
///
/// # Errors
/// A message naming the line.
pub fn parse_returns_csv(bytes: &[u8], assets: usize) -> Result<Vec<Vec<f64>>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "the returns file is not UTF-8 text".to_string())?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        let parsed: Result<Vec<f64>, _> = cells.iter().map(|c| c.parse::<f64>()).collect();
        match parsed {
            Ok(row) => {
                if row.len() != assets {
                    return Err(format!(
                        "line {}: {} columns, expected {assets} (one per asset)",
                        n + 1,
                        row.len()
                    ));
                }
                rows.push(row);
            }
            Err(_) if rows.is_empty() && n == 0 => {} // header
            Err(_) => return Err(format!("line {}: not a number in {line:?}", n + 1)),
        }
        if rows.len() > MAX_CSV_ROWS {
            return Err(format!(
                "the returns file has more than {MAX_CSV_ROWS} rows"
            ));
        }
    }
    if rows.is_empty() {
        return Err("the returns file has no rows of returns".into());
    }
    Ok(rows)
}

/// Builds the API's `SimulationInput` from the form, or the form's own errors (not numbers,
/// missing values, bounds the API enforces before the service).
#[allow(clippy::needless_range_loop)] // the symmetric fill reads best with (i, j)
fn build_input(v: &FormValues, csv_error: Option<&str>) -> Result<SimulationInput, FieldErrors> {
    let mut e = FieldErrors::default();
    let parametric = matches!(v.model.as_str(), "gbm" | "student_t");
    let assets: Vec<AssetInput> = v
        .assets
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let weight =
                required::<f64>(&mut e, &format!("assets[{i}].weight"), "weight", &a.weight);
            let (drift, volatility) = if parametric {
                (
                    required::<f64>(&mut e, &format!("assets[{i}].drift"), "drift", &a.drift),
                    required::<f64>(
                        &mut e,
                        &format!("assets[{i}].volatility"),
                        "volatility",
                        &a.volatility,
                    ),
                )
            } else {
                (
                    number::<f64>(&mut e, &format!("assets[{i}].drift"), "drift", &a.drift),
                    number::<f64>(
                        &mut e,
                        &format!("assets[{i}].volatility"),
                        "volatility",
                        &a.volatility,
                    ),
                )
            };
            let name = a.name.trim();
            AssetInput {
                name: (!name.is_empty()).then(|| name.to_string()),
                weight: weight.unwrap_or(0.0),
                drift,
                volatility,
                expense_ratio: None,
            }
        })
        .collect();
    let n = assets.len();
    let mut correlation = vec![vec![0.0; n]; n];
    for (i, row) in correlation.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    let mut matrix_bad = false;
    for i in 0..n {
        for j in i + 1..n {
            let text = v.correlation.get(&(i, j)).cloned().unwrap_or_default();
            let t = text.trim();
            let x = if t.is_empty() {
                0.0
            } else if let Ok(x) = t.parse::<f64>() {
                x
            } else {
                if !matrix_bad {
                    e.add(
                        "correlation",
                        format!("correlation[{i}][{j}] must be a number, got {t:?}"),
                    );
                }
                matrix_bad = true;
                0.0
            };
            correlation[i][j] = x;
            correlation[j][i] = x;
        }
    }
    let model = match v.model.as_str() {
        "gbm" => ReturnModelInput::Gbm,
        "student_t" => ReturnModelInput::StudentT {
            dof: required::<f64>(&mut e, "model.dof", "degrees of freedom", &v.dof).unwrap_or(5.0),
        },
        "bootstrap_history" | "bootstrap_returns" => {
            let block_length = required::<u32>(
                &mut e,
                "model.block_length",
                "block length",
                &v.block_length,
            )
            .unwrap_or(1);
            let source = if v.model == "bootstrap_history" {
                BootstrapSourceFields {
                    history: Some(HistorySource::ShillerUsMonthly),
                    returns: None,
                }
            } else {
                let returns = match (csv_error, &v.csv) {
                    (Some(msg), _) => {
                        e.add("model.returns", msg);
                        None
                    }
                    (None, None) => {
                        e.add(
                            "model.returns",
                            "choose a CSV file of returns to bootstrap from",
                        );
                        None
                    }
                    (None, Some((_, bytes))) => match parse_returns_csv(bytes, n) {
                        Ok(rows) => Some(rows),
                        Err(msg) => {
                            e.add("model.returns", msg);
                            None
                        }
                    },
                };
                BootstrapSourceFields {
                    history: None,
                    returns: Some(returns.unwrap_or_default()),
                }
            };
            ReturnModelInput::Bootstrap {
                source,
                block_length,
            }
        }
        other => {
            e.add("model", format!("unknown model {other:?}"));
            ReturnModelInput::Gbm
        }
    };
    let rebalancing = match v.rebalancing.as_str() {
        "never" => RebalancingInput::Never,
        "every_step" => RebalancingInput::EveryStep,
        "monthly" => RebalancingInput::Monthly,
        "quarterly" => RebalancingInput::Quarterly,
        "annually" => RebalancingInput::Annually,
        other => {
            e.add("rebalancing", format!("unknown rebalancing {other:?}"));
            RebalancingInput::Never
        }
    };
    let initial_value =
        required::<f64>(&mut e, "initial_value", "initial value", &v.initial_value).unwrap_or(0.0);
    if !(initial_value > 0.0 && initial_value <= 1e15) && e.get("initial_value").is_none() {
        e.add("initial_value", "initial value must be in (0, 10¹⁵]");
    }
    let horizon_years =
        required::<u32>(&mut e, "horizon_years", "horizon", &v.horizon_years).unwrap_or(1);
    if !(1..=100).contains(&horizon_years) && e.get("horizon_years").is_none() {
        e.add("horizon_years", "horizon must be 1 to 100 years");
    }
    let steps_per_year = required::<u32>(
        &mut e,
        "steps_per_year",
        "steps per year",
        &v.steps_per_year,
    )
    .unwrap_or(12);
    if !(1..=252).contains(&steps_per_year) && e.get("steps_per_year").is_none() {
        e.add("steps_per_year", "steps per year must be 1 to 252");
    }
    let paths = required::<u64>(&mut e, "paths", "paths", &v.paths).unwrap_or(1);
    if !(1..=10_000_000).contains(&paths) && e.get("paths").is_none() {
        e.add("paths", "paths must be 1 to 10,000,000");
    }
    let seed = number::<u64>(&mut e, "seed", "seed", &v.seed);
    if seed.is_some_and(|s| s > (1 << 53) - 1) {
        e.add("seed", "seed must be 0 to 2⁵³ − 1");
    }
    let amount =
        number::<f64>(&mut e, "cash_flow", "cash flow", &v.cash_flow_amount).unwrap_or(0.0);
    let growth =
        number::<f64>(&mut e, "cash_flow", "cash flow growth", &v.cash_flow_growth).unwrap_or(0.0);
    let cash_flow = (amount != 0.0).then(|| CashFlowInput {
        amount,
        frequency: if v.cash_flow_frequency == "every_step" {
            CashFlowFrequencyInput::EveryStep
        } else {
            CashFlowFrequencyInput::Annually
        },
        annual_growth: growth,
    });
    let inflation = number::<f64>(&mut e, "inflation", "inflation", &v.inflation_rate)
        .map(|rate| InflationInput::Constant { rate });
    if !e.is_empty() {
        return Err(e);
    }
    Ok(SimulationInput {
        assets,
        correlation: (n > 1).then_some(correlation),
        initial_value,
        horizon_years,
        steps_per_year,
        paths,
        seed,
        model,
        rebalancing,
        rebalance_every_steps: None,
        cash_flow,
        antithetic: false,
        histogram_bins: 30,
        glide_path: None,
        withdrawal: None,
        inflation,
        confidence_level: 0.95,
        sampling: SamplingInput::PseudoRandom,
        control_variate: false,
        precision: None,
        withdrawal_rates: None,
    })
}

/// The form key a service error's `field` belongs next to.
pub fn form_key(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("assets[") {
        if rest.contains("].") {
            return field.to_string();
        }
        return "assets".into();
    }
    for (prefix, key) in [
        ("correlation", "correlation"),
        ("model.returns", "model.returns"),
        ("model.dof", "model.dof"),
        ("model.block_length", "model.block_length"),
        ("model", "model"),
        ("cash_flow", "cash_flow"),
        ("inflation", "inflation"),
    ] {
        if field.starts_with(prefix) {
            return key.into();
        }
    }
    field.to_string()
}

fn errors_of(err: &AppError) -> FieldErrors {
    let mut out = FieldErrors::default();
    match err {
        AppError::Client(p) => match p.field.as_deref() {
            Some(f) => out.add(&form_key(f), p.detail.clone()),
            None => out.form = Some(p.detail.clone()),
        },
        other => out = FieldErrors::from_app_error(other, &[]),
    }
    out
}

/// `POST /simulations/new`: add or remove an asset row (re-render), or run and redirect to
/// the permalink; errors are shown next to their fields (422).
#[handler]
pub async fn run(req: &Request, s: SignedIn, body: poem::Body) -> poem::Result<Response> {
    let sub = read_body(req, body).await?;
    s.check_csrf(sub.fields.get("csrf").map_or("", String::as_str))?;
    s.ctx.require_runner()?;
    let app = session::app(req)?;
    let mut v = values_from(&sub);
    let action = sub.fields.get("action").map_or("run", String::as_str);
    if action == "add_asset" || action.starts_with("remove_asset_") {
        if action == "add_asset" && v.assets.len() < MAX_ASSETS {
            v.assets.push(AssetRow {
                name: String::new(),
                weight: "0".into(),
                drift: "0.05".into(),
                volatility: "0.1".into(),
            });
        } else if let Some(i) = action
            .strip_prefix("remove_asset_")
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < v.assets.len() && v.assets.len() > 1)
        {
            v.assets.remove(i);
            let old = std::mem::take(&mut v.correlation);
            let shift = |k: usize| if k > i { k - 1 } else { k };
            for ((a, b), text) in old {
                if a != i && b != i {
                    v.correlation.insert((shift(a), shift(b)), text);
                }
            }
        }
        let tpl = new_page(&s, v, FieldErrors::default());
        return Ok(page::render(StatusCode::OK, &tpl));
    }
    let input = match build_input(&v, sub.fields.get("__csv_error").map(String::as_str)) {
        Ok(input) => input,
        Err(errors) => {
            let tpl = new_page(&s, v, errors);
            return Ok(page::render(StatusCode::UNPROCESSABLE_ENTITY, &tpl));
        }
    };
    match app.jobs.submit(&s.ctx, input, None, false).await {
        Ok(Submitted::Ran(out)) => Ok(page::redirect(&format!(
            "/simulations/{}",
            out.simulation.id
        ))),
        Ok(Submitted::Queued { job, .. }) => Ok(page::with_flash(
            page::redirect("/simulations"),
            "info",
            &format!(
                "The simulation is large, so it runs as background job {}; it appears here when done.",
                job.id
            ),
        )),
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let tpl = new_page(&s, v, errors_of(&err));
            Ok(page::render(status, &tpl))
        }
    }
}

// ---------------------------------------------------------------------------------------
// The result

struct PercentileRow {
    label: &'static str,
    value: String,
    exact: f64,
    cagr: String,
}

struct Fact {
    label: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "simulations/result.html")]
struct ResultPage {
    chrome: Chrome,
    id: String,
    created: String,
    seed: u64,
    engine_version: String,
    paths: u64,
    steps: u64,
    horizon_years: u32,
    initial_value: String,
    median: String,
    median_exact: f64,
    mean: String,
    percentiles: Vec<PercentileRow>,
    risk: Vec<Fact>,
    assets: Vec<(String, String)>,
    model: String,
    fan_json: String,
    hist_json: String,
}

/// JSON for a `<script type="application/json">`: `<` escaped so it cannot close the tag.
fn embed(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn result_page(s: &SignedIn, sim: &Simulation) -> ResultPage {
    let r = &sim.result.result;
    let t = &r.terminal;
    let req = &sim.request;
    let mut years = vec![0.0];
    let mut bands: [Vec<f64>; 5] = std::array::from_fn(|_| vec![req.initial_value]);
    for y in &r.yearly {
        years.push(f64::from(y.year));
        let p = &y.percentiles;
        for (band, x) in bands.iter_mut().zip([p.p5, p.p25, p.p50, p.p75, p.p95]) {
            band.push(x);
        }
    }
    let fan = serde_json::json!({
        "years": years, "p5": bands[0], "p25": bands[1], "p50": bands[2],
        "p75": bands[3], "p95": bands[4],
    });
    let hist = serde_json::json!({"edges": t.histogram.edges, "counts": t.histogram.counts});
    let p = &t.percentiles;
    let c = &r.risk.cagr;
    let percentiles = [
        ("P1", p.p1, c.p1),
        ("P5", p.p5, c.p5),
        ("P10", p.p10, c.p10),
        ("P25", p.p25, c.p25),
        ("P50 (median)", p.p50, c.p50),
        ("P75", p.p75, c.p75),
        ("P90", p.p90, c.p90),
        ("P95", p.p95, c.p95),
        ("P99", p.p99, c.p99),
    ]
    .into_iter()
    .map(|(label, x, g)| PercentileRow {
        label,
        value: money(x),
        exact: x,
        cagr: percent(g),
    })
    .collect();
    let risk = &r.risk;
    let ruin_defined =
        req.cash_flow.as_ref().is_some_and(|c| c.amount < 0.0) || req.withdrawal.is_some();
    let mut facts = vec![
        Fact {
            label: "Value at risk, 95 %",
            value: percent(risk.var_95),
        },
        Fact {
            label: "Expected shortfall (CVaR), 95 %",
            value: percent(risk.cvar_95),
        },
        Fact {
            label: "Value at risk, 99 %",
            value: percent(risk.var_99),
        },
        Fact {
            label: "Expected shortfall (CVaR), 99 %",
            value: percent(risk.cvar_99),
        },
        Fact {
            label: "Max drawdown, median path",
            value: percent(risk.max_drawdown_p50),
        },
        Fact {
            label: "Max drawdown, P95",
            value: percent(risk.max_drawdown_p95),
        },
        Fact {
            label: "CAGR, median",
            value: percent(risk.cagr.p50),
        },
        Fact {
            label: "Probability of loss",
            value: percent(risk.probability_of_loss),
        },
    ];
    facts.push(Fact {
        label: "Probability of ruin",
        value: if ruin_defined {
            percent(risk.probability_of_ruin)
        } else {
            "not defined (no withdrawals)".into()
        },
    });
    let model = match &req.model {
        ReturnModelInput::Gbm => "Geometric Brownian motion".to_string(),
        ReturnModelInput::StudentT { dof } => format!("Student-t, {dof} degrees of freedom"),
        ReturnModelInput::Bootstrap {
            source,
            block_length,
        } => {
            if source.history.is_some() {
                format!("Bootstrap of US history 1871–2023, blocks of {block_length}")
            } else {
                format!(
                    "Bootstrap of {} uploaded rows, blocks of {block_length}",
                    source.returns.as_ref().map_or(0, Vec::len)
                )
            }
        }
        ReturnModelInput::HistoricalCohorts { .. } => "Historical cohorts".to_string(),
    };
    ResultPage {
        chrome: s.chrome(Nav::Simulations),
        id: sim.id.to_string(),
        created: sim.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        seed: r.seed,
        engine_version: r.engine_version.to_string(),
        paths: r.paths,
        steps: r.steps,
        horizon_years: req.horizon_years,
        initial_value: money(req.initial_value),
        median: money(p.p50),
        median_exact: p.p50,
        mean: money(t.mean),
        percentiles,
        risk: facts,
        assets: req
            .assets
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    a.name.clone().unwrap_or_else(|| format!("Asset {}", i + 1)),
                    percent(a.weight),
                )
            })
            .collect(),
        model,
        fan_json: embed(&fan),
        hist_json: embed(&hist),
    }
}

/// RFC 4180 CSV of the yearly percentiles: header line, CRLF line ends, plain numbers.
pub fn yearly_csv(sim: &Simulation) -> String {
    let mut out = String::from("year,mean,p1,p5,p10,p25,p50,p75,p90,p95,p99\r\n");
    for y in &sim.result.result.yearly {
        let p = &y.percentiles;
        let cells = [
            y.mean, p.p1, p.p5, p.p10, p.p25, p.p50, p.p75, p.p90, p.p95, p.p99,
        ];
        out.push_str(&y.year.to_string());
        for c in cells {
            out.push(',');
            out.push_str(&c.to_string());
        }
        out.push_str("\r\n");
    }
    out
}

fn download(body: Vec<u8>, content_type: &str, file: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header(
            "content-disposition",
            format!("attachment; filename=\"{file}\""),
        )
        .header("cache-control", "private, no-store")
        .body(body)
}

/// `GET /simulations/{id}`, `/simulations/{id}.json`, `/simulations/{id}.csv`.
#[handler]
pub async fn show(req: &Request, s: SignedIn, Path(raw): Path<String>) -> poem::Result<Response> {
    let (id_text, format) = match raw.rsplit_once('.') {
        Some((id, "json")) => (id, "json"),
        Some((id, "csv")) => (id, "csv"),
        Some(_) => return Err(page::fail(StatusCode::NOT_FOUND, "no such page")),
        None => (raw.as_str(), "html"),
    };
    let id = SimulationId::parse(id_text).map_err(|_| {
        page::fail(
            StatusCode::NOT_FOUND,
            format!("no simulation {id_text} in this tenant"),
        )
    })?;
    let app = session::app(req)?;
    let sim = app.simulations.get(&s.ctx, id).await?;
    match format {
        "json" => {
            use poem_openapi::types::ToJSON;
            let view = crate::http::simulation_results::SimulationView::from(&sim);
            let body = view.to_json_string();
            Ok(download(
                body.into_bytes(),
                "application/json",
                &format!("{id}.json"),
            ))
        }
        "csv" => Ok(download(
            yearly_csv(&sim).into_bytes(),
            "text/csv; charset=utf-8; header=present",
            &format!("{id}.csv"),
        )),
        _ => Ok(page::render(StatusCode::OK, &result_page(&s, &sim))),
    }
}

// ---------------------------------------------------------------------------------------
// The list

/// `?before=` cursor of the list.
#[derive(Deserialize)]
pub struct ListQuery {
    before: Option<String>,
}

struct ListRow {
    id: String,
    when: String,
    paths: u64,
    steps: u64,
    seed: u64,
    median: String,
    mean: String,
}

#[derive(Template)]
#[template(path = "simulations/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<ListRow>,
    next: Option<String>,
    paged: bool,
    can_run: bool,
}

/// `GET /simulations`: newest first, [`PAGE_SIZE`] a page, `?before=<id>` for older ones.
#[handler]
pub async fn list(
    req: &Request,
    s: SignedIn,
    Query(q): Query<ListQuery>,
) -> poem::Result<Response> {
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => {
            Some(SimulationId::parse(b).map_err(|e| page::fail(StatusCode::BAD_REQUEST, e))?)
        }
        None => None,
    };
    let app = session::app(req)?;
    let page_ = app.simulations.list(&s.ctx, before, PAGE_SIZE).await?;
    let rows = page_
        .items
        .into_iter()
        .map(|r| ListRow {
            id: r.id.to_string(),
            when: r.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            paths: r.paths,
            steps: r.steps,
            seed: r.seed,
            median: money(r.terminal_p50),
            mean: money(r.terminal_mean),
        })
        .collect();
    let tpl = ListPage {
        chrome: s.chrome(Nav::Simulations),
        rows,
        next: page_.next.map(|n| n.to_string()),
        paged: before.is_some(),
        can_run: s.ctx.require_runner().is_ok(),
    };
    Ok(page::render(StatusCode::OK, &tpl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rounds_to_cents_with_separators() {
        assert_eq!(money(127_331.785_6), "127,331.79");
        assert_eq!(money(-1_234_567.0), "-1,234,567.00");
        assert_eq!(money(-0.001), "0.00");
    }

    #[test]
    fn csv_returns_parse_with_header_and_name_bad_lines() {
        let ok = parse_returns_csv(b"stocks,bonds\n0.01,0.002\n-0.02,0.001\n", 2).unwrap();
        assert_eq!(ok, vec![vec![0.01, 0.002], vec![-0.02, 0.001]]);
        assert!(
            parse_returns_csv(b"0.01\n", 2)
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            parse_returns_csv(b"a,b\n0.1,x\n", 2)
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn default_form_builds_a_60_40_request() {
        let input = build_input(&FormValues::default(), None).ok().unwrap();
        assert_eq!(input.assets.len(), 2);
        assert_eq!(input.correlation.unwrap()[1][0], 0.1);
        assert_eq!(form_key("correlation[0][1]"), "correlation");
        assert_eq!(form_key("assets[1].weight"), "assets[1].weight");
        assert_eq!(form_key("model.returns[3]"), "model.returns");
    }
}
