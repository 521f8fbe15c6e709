//! Retirement planning over HTTP (engine 0.5): withdrawal strategies, inflation and real
//! results, expense ratios, glide paths, historical cohorts, RQMC and control variates,
//! precision targets, safe and perpetual withdrawal rates, and a confidence interval on every
//! figure.

use crate::helpers::*;
use serde_json::{Value, json};

fn contains(interval: &Value, x: f64) -> bool {
    interval["lower"].as_f64().unwrap() <= x && x <= interval["upper"].as_f64().unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A 60/40 retiree: $1M, 30 years, Guyton–Klinger guardrails at 5 %, 2.5 % inflation, fund
/// fees, and the safe and perpetual rates of the same plan.
fn retirement() -> Value {
    json!({
        "assets": [
            {"name": "Stocks", "weight": 0.6, "drift": 0.07, "volatility": 0.16, "expense_ratio": 0.0005},
            {"name": "Bonds", "weight": 0.4, "drift": 0.03, "volatility": 0.06, "expense_ratio": 0.0005}
        ],
        "correlation": [[1.0, 0.1], [0.1, 1.0]],
        "initial_value": 1000000,
        "horizon_years": 30,
        "steps_per_year": 1,
        "paths": 2000,
        "seed": 2026,
        "rebalancing": "annually",
        "withdrawal": {"type": "guardrails", "initial_rate": 0.05},
        "inflation": {"type": "constant", "rate": 0.025},
        "withdrawal_rates": {"success_probability": 0.95}
    })
}

#[tokio::test]
async fn a_retirement_plan_reports_withdrawals_real_values_rates_and_intervals() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    let sim = app
        .post("/api/v1/simulations", &key, retirement())
        .await
        .ok(201)
        .clone();
    // The echo shows the published guardrail parameters that were applied.
    let w = &sim["request"]["withdrawal"];
    assert_eq!(
        (
            &w["type"],
            &w["upper"],
            &w["lower"],
            &w["adjustment"],
            &w["no_cut_final_years"],
            &w["inflation_rule"]
        ),
        (
            &json!("guardrails"),
            &json!(0.2),
            &json!(0.2),
            &json!(0.1),
            &json!(15),
            &json!(true)
        )
    );
    assert_eq!(sim["request"]["assets"][0]["expense_ratio"], 0.0005);
    assert_eq!(sim["request"]["sampling"]["type"], "pseudo_random");
    let r = &sim["result"];
    assert_eq!(r["confidence_level"], 0.95);
    assert_eq!(r["interval_method"]["type"], "order_statistics");
    // Every figure with its interval, and the interval around the figure.
    let mean = f(&r["terminal"]["mean"]);
    assert!(contains(&r["terminal"]["mean_interval"], mean), "{r}");
    let p50 = f(&r["terminal"]["percentiles"]["p50"]);
    assert!(contains(&r["terminal"]["percentile_intervals"]["p50"], p50));
    let success = f(&r["risk"]["success_rate"]);
    assert!(contains(&r["risk"]["success_rate_interval"], success));
    assert!(contains(
        &r["yearly"][29]["mean_interval"],
        f(&r["yearly"][29]["mean"])
    ));
    // Withdrawals: 30 yearly bands, the first one exactly 5 % of the initial value.
    let wd = &r["withdrawals"];
    assert_eq!(wd["yearly"].as_array().unwrap().len(), 30);
    assert!((f(&wd["yearly"][0]["mean"]) - 50_000.0).abs() < 1e-6);
    assert_eq!(wd["yearly_real"].as_array().unwrap().len(), 30);
    assert!(f(&wd["total"]["mean"]) > 1_000_000.0, "{wd}");
    // Real values: 30 years of 2.5 % inflation divide by 1.025^30 ≈ 2.098.
    let real_p50 = f(&r["real"]["terminal"]["percentiles"]["p50"]);
    let ratio = p50 / real_p50;
    assert!((ratio - 1.025f64.powi(30)).abs() < 1e-6, "{ratio}");
    // Safe rate for 95 % success under the same plan: a few percent, in its interval, above
    // the perpetual rate.
    let rates = &r["withdrawal_rates"];
    let safe = f(&rates["safe"]["rate"]);
    assert!((0.02..0.10).contains(&safe), "safe rate {safe}");
    assert!(contains(&rates["safe"]["interval"], safe));
    assert!(f(&rates["perpetual"]["rate"]) < safe);
    assert!(f(&rates["safe"]["success_at_rate"]) >= 0.95);
    assert_eq!(rates["paths"], 2000);
    // Same seed, same bits — rates included; and the stored copy reads back identically.
    let id = sim["id"].as_str().unwrap();
    let got = app.get(&format!("/api/v1/simulations/{id}"), &key).await;
    assert_eq!(got.ok(200)["result"], sim["result"]);
    let again = app.post("/api/v1/simulations", &key, retirement()).await;
    assert_eq!(again.ok(201)["result"], sim["result"]);
}

#[tokio::test]
async fn fees_and_a_glide_path_change_the_outcome_as_they_should() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    let base = json!({
        "assets": [{"weight": 1.0, "drift": 0.05, "volatility": 0.0}],
        "initial_value": 100000, "horizon_years": 10, "steps_per_year": 12, "paths": 10, "seed": 1
    });
    let run = |body: Value| {
        let app = &app;
        let key = &key;
        async move {
            let r = app.post("/api/v1/simulations", key, body).await;
            f(&r.ok(201)["result"]["terminal"]["percentiles"]["p50"])
        }
    };
    let plain = run(base.clone()).await;
    let mut fee = base.clone();
    fee["assets"][0]["expense_ratio"] = json!(0.01);
    let with_fee = run(fee).await;
    // A 1 % fee charged exactly: (1 − 0.01)^10 of the fee-free value.
    assert!(
        (with_fee / plain - 0.99f64.powi(10)).abs() < 1e-9,
        "{with_fee} / {plain}"
    );
    // A glide path from all stocks to all cash (zero drift) ends with less than staying put.
    let mut glide = json!({
        "assets": [
            {"weight": 1.0, "drift": 0.05, "volatility": 0.0},
            {"weight": 0.0, "drift": 0.0, "volatility": 0.0}
        ],
        "initial_value": 100000, "horizon_years": 10, "steps_per_year": 12, "paths": 10, "seed": 1,
        "rebalancing": "annually"
    });
    let stay = run(glide.clone()).await;
    glide["glide_path"] = json!({"type": "linear", "end_weights": [0.0, 1.0]});
    let glided = run(glide.clone()).await;
    assert!(glided < stay * 0.9, "{glided} vs {stay}");
    glide["glide_path"] = json!({"type": "yearly", "weights": [[1.0, 0.0], [0.5, 0.5]]});
    let stepped = run(glide).await;
    assert!(
        glided < stepped && stepped < stay,
        "{glided} {stepped} {stay}"
    );
}

#[tokio::test]
async fn historical_cohorts_replay_every_start_of_the_shiller_history() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    // Bengen (1994): 50/50 stocks and bonds, 4 % of the initial value raised with CPI, 30
    // years, one cohort a year.
    let body = json!({
        "assets": [{"name": "S&P", "weight": 0.5}, {"name": "10y Treasuries", "weight": 0.5}],
        "initial_value": 1000000,
        "horizon_years": 30,
        "model": {"type": "historical_cohorts", "history": "shiller_us_monthly", "start_stride": 12},
        "rebalancing": "annually",
        "withdrawal": {"type": "constant_amount", "initial_rate": 0.04},
        "inflation": {"type": "historical"},
        "histogram_bins": 10
    });
    let r = app.post("/api/v1/simulations", &key, body.clone()).await;
    let res = r.ok(201)["result"].clone();
    let cohorts = res["cohorts"]["cohorts"].as_array().unwrap();
    // 1,829 months, 360 per cohort, a start every 12: ⌊(1829 − 360) / 12⌋ + 1.
    assert_eq!(cohorts.len(), 123);
    assert_eq!(res["paths"], 123);
    assert_eq!(res["interval_method"]["type"], "exact");
    assert_eq!(cohorts[0]["start_month"], "1871-01");
    assert_eq!(cohorts[122]["start_month"], "1993-01");
    let survived = cohorts.iter().filter(|c| c["survived"] == true).count();
    assert!((f(&res["cohorts"]["success_rate"]) - survived as f64 / 123.0).abs() < 1e-12);
    // 117 of 123 (95.1 %), as the engine's own Bengen test finds.
    assert_eq!(survived, 117);
    // Bengen's finding: 4 % survived every 30-year cohort of 1926–1963.
    for c in cohorts {
        let year: u32 = c["start_month"].as_str().unwrap()[..4].parse().unwrap();
        if (1926..=1963).contains(&year) {
            assert_eq!(c["survived"], true, "{c}");
        }
        if c["survived"] == false {
            assert!(c["depleted_in_year"].as_u64().unwrap() <= 30, "{c}");
        }
        assert!(c["terminal_real_value"].is_number());
    }
    let worst = res["cohorts"]["worst_cohort"].as_u64().unwrap() as usize;
    assert_eq!(cohorts[worst]["survived"], false, "{}", cohorts[worst]);
    // An exact enumeration: no precision target.
    let mut precise = body;
    precise["precision"] = json!({"goals": [{"quantity": "success_rate", "half_width": 0.01}]});
    let p = app.post("/api/v1/simulations", &key, precise).await;
    assert_eq!(p.body["field"], "precision", "{}", p.body);
    p.problem(422);
}

#[tokio::test]
async fn rqmc_control_variates_and_precision_targets() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    let mut body = simulation_body();
    body["paths"] = json!(4096);
    body["sampling"] = json!({"type": "rqmc"});
    body["control_variate"] = json!(true);
    let r = app.post("/api/v1/simulations", &key, body.clone()).await;
    let sim = r.ok(201).clone();
    assert_eq!(
        sim["request"]["sampling"],
        json!({"type": "rqmc", "scramblings": 16})
    );
    let res = &sim["result"];
    assert_eq!(
        res["interval_method"],
        json!({"type": "replicates", "replicates": 16})
    );
    let cv = &res["control_variate"];
    assert!(f(&cv["correlation"]) > 0.5, "{cv}");
    assert!(contains(
        &res["terminal"]["mean_interval"],
        f(&res["terminal"]["mean"])
    ));
    // RQMC needs whole scramblings.
    body["paths"] = json!(4000);
    body["sampling"] = json!({"type": "rqmc", "scramblings": 3});
    let p = app.post("/api/v1/simulations", &key, body).await;
    let d = p.problem(422);
    assert!(d.contains("scramblings") || d.contains("paths"), "{d}");

    // Precision: start small, stop when the median is known to ±0.5 %.
    let mut precise = simulation_body();
    precise["paths"] = json!(1000);
    precise["precision"] = json!({"goals": [{"quantity": "terminal_p50", "half_width": 0.005}]});
    let r = app.post("/api/v1/simulations", &key, precise.clone()).await;
    let res = r.ok(201)["result"].clone();
    let pr = &res["precision"];
    assert_eq!(pr["stop_reason"], "target_met", "{pr}");
    let goal = &pr["goals"][0];
    assert_eq!(goal["goal"]["quantity"], "terminal_p50");
    assert!(
        f(&goal["achieved"]) <= 0.005 && goal["met"] == true,
        "{goal}"
    );
    assert!(res["paths"].as_u64().unwrap() > 1000, "{}", res["paths"]);
    let iv = &res["terminal"]["percentile_intervals"]["p50"];
    let p50 = f(&res["terminal"]["percentiles"]["p50"]);
    assert!((f(&iv["upper"]) - f(&iv["lower"])) / 2.0 <= 0.005 * p50 * 1.0001);
    // An unreachable goal stops at the tier's path cap, and says so.
    app.admin_patch("acme", json!({"tier": "trial"}))
        .await
        .ok(200);
    precise["precision"] = json!({"goals": [{"quantity": "terminal_mean", "half_width": 0.00001}]});
    let r = app.post("/api/v1/simulations", &key, precise).await;
    let res = r.ok(201)["result"].clone();
    assert_eq!(res["precision"]["stop_reason"], "path_cap");
    assert_eq!(res["precision"]["goals"][0]["met"], false);
    assert_eq!(res["paths"], 10_000, "the trial tier's path cap");
}

#[tokio::test]
async fn planning_mistakes_get_precise_problems() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "rates without a strategy",
            json!({"withdrawal_rates": {"success_probability": 0.9}}),
            "withdrawal_rates",
            "constant_amount",
        ),
        (
            "rates with contributions",
            json!({"withdrawal": {"type": "constant_amount", "initial_rate": 0.04},
                   "withdrawal_rates": {"success_probability": 0.9},
                   "cash_flow": {"amount": 100, "frequency": "annually"}}),
            "withdrawal_rates",
            "contributions",
        ),
        (
            "rates of a percentage strategy",
            json!({"withdrawal": {"type": "constant_percentage", "rate": 0.04},
                   "withdrawal_rates": {"success_probability": 0.9}}),
            "withdrawal_rates",
            "constant_amount",
        ),
        (
            "historical inflation on GBM",
            json!({"inflation": {"type": "historical"}}),
            "inflation",
            "bootstrap",
        ),
        (
            "unknown strategy",
            json!({"withdrawal": {"type": "yolo"}}),
            "withdrawal.type",
            "guardrails",
        ),
        (
            "fee of 100 %",
            json!({"assets": [{"weight": 1.0, "drift": 0.05, "volatility": 0.1, "expense_ratio": 1.0}],
                   "correlation": null}),
            "assets[0].expense_ratio",
            "",
        ),
        (
            "glide path of the wrong width",
            json!({"glide_path": {"type": "linear", "end_weights": [1.0]}}),
            "glide_path.end_weights",
            "",
        ),
        (
            "confidence level of 1",
            json!({"confidence_level": 1.0}),
            "confidence_level",
            "",
        ),
        (
            "no precision goals",
            json!({"precision": {"goals": []}}),
            "precision.goals",
            "",
        ),
    ];
    for (what, patch, field, word) in cases {
        let mut body = simulation_body();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let resp = app.post("/api/v1/simulations", &key, body).await;
        let detail = resp.problem(422);
        assert_eq!(resp.body["field"], field, "{what}: {}", resp.body);
        assert!(detail.contains(word), "{what}: {detail}");
    }
}

#[tokio::test]
async fn a_rate_search_counts_its_runs_against_the_tier() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    // 10,000 paths × 30 steps × 2 assets = 600,000 per run, well inside the trial tier's
    // 50,000,000; the search's 105 runs are not.
    let mut body = retirement();
    body["paths"] = json!(10_000);
    let resp = app.post("/api/v1/simulations", &key, body.clone()).await;
    let detail = resp.problem(403);
    assert!(
        detail.contains("withdrawal-rate search") && detail.contains("starter"),
        "{detail}"
    );
    body.as_object_mut().unwrap().remove("withdrawal_rates");
    app.post("/api/v1/simulations", &key, body).await.ok(201);
}
