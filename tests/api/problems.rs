//! Every kind of bad input answers application/problem+json with a precise detail.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn framework_errors_are_problems() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let key = [
        ("x-api-key", t.keys[0].as_str()),
        ("content-type", "application/json"),
    ];
    let d = app
        .raw(Method::POST, "/api/v1/simulations", &key, "{\"assets\": [")
        .await
        .problem(400);
    assert!(d.contains("line 1"), "{d}");
    // Well-formed JSON that does not fit the schema: 422 naming the field.
    let mut unknown = simulation_body();
    unknown["colour"] = json!("blue");
    let r = app.post("/api/v1/simulations", &key[..1], unknown).await;
    assert!(
        r.problem(422).contains("unknown field colour"),
        "{}",
        r.body
    );
    assert_eq!(r.body["field"], "colour");
    let mut mistyped = simulation_body();
    mistyped["paths"] = json!("many");
    let r = app.post("/api/v1/simulations", &key[..1], mistyped).await;
    let d = r.problem(422);
    assert_eq!(r.body["field"], "paths");
    assert!(d.contains("\"many\"") && d.contains("whole number"), "{d}");
    let mut nested = simulation_body();
    nested["assets"][1]["weight"] = json!("heavy");
    let r = app.post("/api/v1/simulations", &key[..1], nested).await;
    r.problem(422);
    assert_eq!(r.body["field"], "assets[1].weight");
    let mut missing = simulation_body();
    missing.as_object_mut().unwrap().remove("initial_value");
    let r = app.post("/api/v1/simulations", &key[..1], missing).await;
    assert_eq!(r.body["field"], "initial_value", "{}", r.body);
    let mut bad_enum = simulation_body();
    bad_enum["rebalancing"] = json!("hourly");
    let r = app.post("/api/v1/simulations", &key[..1], bad_enum).await;
    assert!(r.problem(422).contains("annually"), "{}", r.body);
    assert_eq!(r.body["field"], "rebalancing");
    let mut negative = simulation_body();
    negative["paths"] = json!(-5);
    let r = app.post("/api/v1/simulations", &key[..1], negative).await;
    assert_eq!(r.body["field"], "paths", "{}", r.body);
    app.raw(Method::POST, "/api/v1/simulations", &key, "")
        .await
        .problem(400);
    let d = app
        .raw(
            Method::POST,
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0]), ("content-type", "text/plain")],
            "hi",
        )
        .await
        .problem(415);
    assert!(d.contains("application/json"), "{d}");
    let huge = format!("{{\"assets\": [{}]}}", "1.0,".repeat(5_000_000));
    let d = app
        .raw(Method::POST, "/api/v1/simulations", &key, &huge)
        .await
        .problem(413);
    assert!(d.contains("8 MiB"), "{d}");
    app.get("/api/v1/nothing-here", &[]).await.problem(404);
    app.request(Method::PUT, "/api/v1/signup", &[], None)
        .await
        .problem(405);
    app.get("/api/v1/simulations/sim_not-a-uuid", &key[..1])
        .await
        .problem(404);
    app.get("/api/v1/simulations?limit=0", &key[..1])
        .await
        .problem(422);
}

#[tokio::test]
async fn simulation_validation_names_the_field() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    let cases = [
        (
            json!({"assets": [{"weight": 0.5, "drift": 0.05, "volatility": 0.1}, {"weight": 0.4, "drift": 0.05, "volatility": 0.1}]}),
            "assets",
            "sum",
        ),
        (
            json!({"correlation": [[1.0, 0.99], [0.99, 1.0]], "assets": [{"weight": 0.5, "drift": 0.05, "volatility": 0.1}, {"weight": 0.5, "drift": 0.05, "volatility": -0.1}]}),
            "assets[1].volatility",
            "",
        ),
        (
            json!({"correlation": [[1.0, 0.3], [0.2, 1.0]]}),
            "correlation[1][0]",
            "symmetric",
        ),
        (json!({"correlation": [[1.0]]}), "correlation", ""),
        (json!({"paths": 0}), "paths", ""),
        (json!({"horizon_years": 0}), "horizon_years", ""),
        (json!({"steps_per_year": 253}), "steps_per_year", ""),
        (
            json!({"model": {"type": "student_t", "dof": 2.0}}),
            "model.dof",
            "",
        ),
        (json!({"model": {"type": "student_t"}}), "model.dof", ""),
        (json!({"model": {"type": "bootstrap"}}), "model", ""),
    ];
    for (patch, field, needle) in cases {
        let mut body = simulation_body();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = app.post("/api/v1/simulations", &key, body).await;
        let d = resp.problem(422);
        assert_eq!(resp.body["field"], field, "{d}");
        assert!(d.contains(needle), "{d}");
    }
    // A correlation matrix that is not positive semi-definite.
    let mut body = simulation_body();
    body["assets"] = json!([
        {"weight": 0.4, "drift": 0.05, "volatility": 0.1},
        {"weight": 0.3, "drift": 0.05, "volatility": 0.1},
        {"weight": 0.3, "drift": 0.05, "volatility": 0.1}
    ]);
    body["correlation"] = json!([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]);
    let resp = app.post("/api/v1/simulations", &key, body).await;
    let d = resp.problem(422);
    assert_eq!(resp.body["field"], "correlation");
    assert!(d.contains("semi-definite"), "{d}");
    // Over the trial tier's path cap: 403 naming the limit and the tier that allows it.
    app.admin_patch("acme", json!({"tier": "trial"}))
        .await
        .ok(200);
    let mut body = simulation_body();
    body["paths"] = json!(20_000);
    let resp = app.post("/api/v1/simulations", &key, body).await;
    let d = resp.problem(403);
    assert!(d.contains("10000") && d.contains("starter"), "{d}");
    assert_eq!(resp.body["policy"], "size");
    // Nothing was stored by any failed request.
    let list = app.get("/api/v1/simulations", &key).await;
    assert_eq!(list.ok(200)["items"], json!([]));
}
