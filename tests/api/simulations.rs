//! The main job: signup → key → simulation → read back → usage.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn signup_key_simulation_usage_happy_path() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    let resp = app
        .post("/api/v1/simulations", &key, simulation_body())
        .await;
    let sim = resp.ok(201).clone();
    let id = sim["id"].as_str().unwrap();
    assert!(id.starts_with("sim_"));
    let r = &sim["result"];
    assert_eq!(r["seed"], 7);
    assert_eq!(r["paths"], 2000);
    assert_eq!(r["steps"], 60);
    let p = &r["terminal"]["percentiles"];
    let order: Vec<f64> = ["p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99"]
        .iter()
        .map(|k| p[k].as_f64().unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "percentiles not ordered: {order:?}"
    );
    // Real numbers: the 5-year mean of a 60/40 portfolio near V0·exp(μ_p T), far from constants.
    let mean = r["terminal"]["mean"].as_f64().unwrap();
    assert!((115_000.0..145_000.0).contains(&mean), "mean {mean}");
    assert!(
        r["risk"]["var_95"].is_number()
            && r["risk"]["cvar_95"].as_f64().unwrap() >= r["risk"]["var_95"].as_f64().unwrap()
    );
    assert_eq!(r["yearly"].as_array().unwrap().len(), 5);
    assert!((0.0..=1.0).contains(&r["risk"]["probability_of_loss"].as_f64().unwrap()));
    // Same seed, same bits.
    let again = app
        .post("/api/v1/simulations", &key, simulation_body())
        .await;
    assert_eq!(again.ok(201)["result"], sim["result"]);
    // Read back and list.
    let got = app.get(&format!("/api/v1/simulations/{id}"), &key).await;
    assert_eq!(got.ok(200)["result"], sim["result"]);
    let page = app.get("/api/v1/simulations?limit=1", &key).await;
    assert_eq!(page.ok(200)["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let page2 = app
        .get(
            &format!("/api/v1/simulations?limit=1&cursor={cursor}"),
            &key,
        )
        .await;
    assert_eq!(page2.ok(200)["items"][0]["id"], json!(id));
    assert!(page2.body["next_cursor"].is_null());
    // Usage rows: per key, per day, with work units.
    let usage = app.get("/api/v1/usage", &key).await;
    let u = usage.ok(200);
    let per_key = u["per_key"].as_array().unwrap();
    let mine = per_key
        .iter()
        .find(|k| k["key_id"] == json!(t.key_ids[0]))
        .expect("row for the key");
    assert_eq!(mine["simulations"], 2);
    assert_eq!(mine["units"], 2 * 2000 * 60);
    assert!(u["daily"][0]["calls"].as_i64().unwrap() >= 5);
    assert_eq!(u["period"]["tier"], "starter");
    assert_eq!(u["period"]["quota"], 1000);
    assert_eq!(u["period"]["used"], 2);
    assert_eq!(u["period"]["remaining"], 998);
}

#[tokio::test]
async fn seed_is_generated_and_returned_when_absent() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let mut body = simulation_body();
    body.as_object_mut().unwrap().remove("seed");
    let sim = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0])],
            body.clone(),
        )
        .await;
    let seed = sim.ok(201)["result"]["seed"].as_u64().unwrap();
    assert_eq!(sim.body["request"]["seed"], json!(seed));
    body["seed"] = json!(seed);
    let replay = app
        .post("/api/v1/simulations", &[("x-api-key", &t.keys[0])], body)
        .await;
    assert_eq!(replay.ok(201)["result"], sim.body["result"]);
}

#[tokio::test]
async fn engine_options_are_exposed() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    // Bootstrap from the bundled Shiller history, 60/40 stocks/bonds, monthly rebalancing,
    // inflation-growing contributions.
    let body = json!({
        "assets": [{"name": "US stocks", "weight": 0.6}, {"name": "US bonds", "weight": 0.4}],
        "initial_value": 100000,
        "horizon_years": 3,
        "steps_per_year": 12,
        "paths": 1000,
        "seed": 11,
        "model": {"type": "bootstrap", "history": "shiller_us_monthly", "block_length": 12},
        "rebalancing": "monthly",
        "cash_flow": {"amount": 500, "frequency": "every_step", "annual_growth": 0.02},
        "histogram_bins": 10
    });
    let r = app.post("/api/v1/simulations", &key, body).await;
    let res = &r.ok(201)["result"];
    assert_eq!(
        res["terminal"]["histogram"]["counts"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let total: u64 = res["terminal"]["histogram"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1000);
    // Antithetic variates with GBM.
    let mut anti = simulation_body();
    anti["antithetic"] = json!(true);
    app.post("/api/v1/simulations", &key, anti).await.ok(201);
    // Student-t with caller-supplied parameters.
    let mut st = simulation_body();
    st["model"] = json!({"type": "student_t", "dof": 5.0});
    app.post("/api/v1/simulations", &key, st).await.ok(201);
    // Caller-supplied history.
    let mut own = simulation_body();
    own["assets"] = json!([{"weight": 1.0}]);
    own.as_object_mut().unwrap().remove("correlation");
    own["model"] = json!({"type": "bootstrap", "returns": [[0.01], [0.01], [0.01]]});
    let r = app.post("/api/v1/simulations", &key, own).await;
    let p50 = r.ok(201)["result"]["terminal"]["percentiles"]["p50"]
        .as_f64()
        .unwrap();
    let expected = 100_000.0 * 1.01f64.powi(60);
    assert!(
        (p50 - expected).abs() < 1e-6 * expected,
        "{p50} vs {expected}"
    );
}

#[tokio::test]
async fn trial_end_refuses_simulations_with_402() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    app.post(
        "/api/v1/simulations",
        &[("authorization", &bearer(&t.token))],
        simulation_body(),
    )
    .await
    .ok(201);
    app.advance(chrono::Duration::days(30) + chrono::Duration::minutes(1));
    // Bearer tokens from before have expired too; sign in again.
    let login = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "owner@acme.example", "password": "correct horse battery"}),
        )
        .await;
    let token = bearer(login.ok(200)["access_token"].as_str().unwrap());
    let d = app
        .post(
            "/api/v1/simulations",
            &[("authorization", &token)],
            simulation_body(),
        )
        .await
        .problem(402);
    assert!(d.contains("trial"), "{d}");
    // An admin moves the tenant to a paid tier: effective on the next request.
    app.admin_patch("acme", json!({"tier": "starter"}))
        .await
        .ok(200);
    app.post(
        "/api/v1/simulations",
        &[("authorization", &token)],
        simulation_body(),
    )
    .await
    .ok(201);
}
