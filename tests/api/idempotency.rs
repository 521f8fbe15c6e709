//! Idempotency keys on POST /api/v1/simulations: a retried request runs once.

use crate::helpers::*;
use serde_json::json;

async fn simulation_rows(app: &TestApp, schema: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".simulations"
    )))
    .fetch_one(&app.pg().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_response() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let headers = [
        ("x-api-key", t.keys[0].as_str()),
        ("idempotency-key", "3f1c2a9e-retry-1"),
    ];
    let mut body = simulation_body();
    body.as_object_mut().unwrap().remove("seed");
    let first = app
        .post("/api/v1/simulations", &headers, body.clone())
        .await;
    let first_body = first.ok(201).clone();
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = app
        .post("/api/v1/simulations", &headers, body.clone())
        .await;
    assert_eq!(
        again.ok(201),
        &first_body,
        "the replay must be the first response, generated seed included"
    );
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(simulation_rows(&app, "t_acme").await, 1);
    let usage = app.get("/api/v1/usage", &[("x-api-key", &t.keys[0])]).await;
    assert_eq!(
        usage.ok(200)["period"]["used"],
        1,
        "a replay must not count against the quota"
    );
    // The same key with another body is refused; a fresh key runs.
    let mut other = body.clone();
    other["paths"] = json!(999);
    let r = app
        .post("/api/v1/simulations", &headers, other.clone())
        .await;
    r.problem(422);
    assert_eq!(r.body["field"], "Idempotency-Key");
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &t.keys[0]), ("idempotency-key", "fresh-key")],
        other,
    )
    .await
    .ok(201);
    let r = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0]), ("idempotency-key", "has space")],
            body,
        )
        .await;
    r.problem(422);
}

#[tokio::test]
async fn concurrent_retries_run_the_simulation_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let t = app.signup_on("acme", "enterprise").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, key) = (app.clone(), t.keys[0].clone());
        tasks.push(tokio::spawn(async move {
            app.post(
                "/api/v1/simulations",
                &[("x-api-key", &key), ("idempotency-key", "same-key-8x")],
                simulation_body(),
            )
            .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let r = task.await.unwrap();
        match r.status.as_u16() {
            201 => {
                ids.insert(r.body["id"].as_str().unwrap().to_string());
            }
            409 => {
                r.problem(409);
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(ids.len(), 1, "every success must be the same simulation");
    assert_eq!(simulation_rows(&app, "t_acme").await, 1);
    let usage = app.get("/api/v1/usage", &[("x-api-key", &t.keys[0])]).await;
    assert_eq!(usage.ok(200)["period"]["used"], 1);
}

#[tokio::test]
async fn a_failed_request_releases_its_key_for_a_retry() {
    let setup = spawn_app().await;
    let t = setup.signup_on("acme", "starter").await;
    let pool = setup.pg().await;
    sqlx::query("UPDATE platform.tiers SET monthly_simulations = 1, burst_size = 100, burst_per_second = 100 WHERE name = 'starter'")
        .execute(&pool)
        .await
        .unwrap();
    let app = spawn_with(Options {
        database_url: Some(setup.database_url.clone()),
        ..Default::default()
    })
    .await;
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &t.keys[0]), ("idempotency-key", "k-1")],
        simulation_body(),
    )
    .await
    .ok(201);
    let headers = [
        ("x-api-key", t.keys[0].as_str()),
        ("idempotency-key", "k-2"),
    ];
    app.post("/api/v1/simulations", &headers, simulation_body())
        .await
        .problem(429);
    // Nothing half-written: the key is free again, and it works once the tenant may run more.
    app.admin_patch("acme", json!({"overage_enabled": true}))
        .await
        .ok(200);
    app.post("/api/v1/simulations", &headers, simulation_body())
        .await
        .ok(201);
    assert_eq!(simulation_rows(&app, "t_acme").await, 2);
}
