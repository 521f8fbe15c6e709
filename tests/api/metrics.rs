//! `GET /metrics`: protected by `METRICS_TOKEN`, Prometheus text format (parsed with a
//! text-format parser), counters that move as requests are made, bounded labels.

use crate::helpers::*;
use crate::jobs::job_env;
use std::collections::HashMap;

const TOKEN: &str = "test-metrics-token-0123456789abcdefghij";

async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

/// The value of the sample `name` whose labels include `labels` (summed over the others).
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_are_hidden_without_a_token_and_refused_without_the_right_one() {
    // No METRICS_TOKEN: only a signed-in platform admin; the bootstrap secret is not one.
    let app = spawn_with(Options {
        no_admin_token: true,
        ..Options::default()
    })
    .await;
    app.get("/metrics", &[]).await.problem(401);
    app.get("/metrics", &[("authorization", &format!("Bearer {TOKEN}"))])
        .await
        .problem(401);
    let app = spawn_app().await;
    app.get("/metrics", &[]).await.problem(401);
    app.get(
        "/metrics",
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await
    .problem(401);
    let admin = app.admin_auth().await;
    let r = app.get("/metrics", &[("authorization", &admin)]).await;
    assert_eq!(r.status, 200);
    // Both: either bearer is accepted.
    let app = spawn_with(Options {
        env: vec![("METRICS_TOKEN", TOKEN.into())],
        ..Options::default()
    })
    .await;
    let r = app.get("/metrics", &[]).await;
    r.problem(401);
    assert!(r.headers.contains_key("www-authenticate"));
    app.get("/metrics", &[("authorization", "Bearer wrong-token")])
        .await
        .problem(401);
    let admin = app.admin_auth().await;
    let r = app.get("/metrics", &[("authorization", &admin)]).await;
    assert_eq!(r.status, 200);
    scrape(&app).await;
    let t = app.signup_on("metricskey", "starter").await;
    // An API key is neither token.
    let key_bearer = format!("Bearer {}", t.keys[0]);
    app.get("/metrics", &[("authorization", &key_bearer)])
        .await
        .problem(401);
}

#[tokio::test]
async fn metrics_parse_and_move_as_requests_are_made() {
    let app = spawn_with(Options {
        env: [job_env(1), vec![("METRICS_TOKEN", TOKEN.into())]].concat(),
        ..Options::default()
    })
    .await;
    let t = app.signup_on("metricsmove", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    let before = scrape(&app).await;
    let created = [
        ("operation", "createSimulation"),
        ("method", "POST"),
        ("status", "201"),
        ("status_class", "2xx"),
        ("tier", "starter"),
    ];
    let refused = [
        ("operation", "createSimulation"),
        ("status_class", "4xx"),
        ("tier", "starter"),
    ];
    let anonymous = [("tier", "none")];
    app.post("/api/v1/simulations", &key, simulation_body())
        .await
        .ok(201);
    app.post("/api/v1/simulations", &key, simulation_body())
        .await
        .ok(201);
    // A size refusal (403, policy "size").
    let mut big = simulation_body();
    big["paths"] = serde_json::json!(5_000_000);
    app.post("/api/v1/simulations", &key, big).await;
    // Unauthenticated: tier "none".
    app.post("/api/v1/simulations", &[], simulation_body())
        .await;
    let after = scrape(&app).await;
    // Other tests in this process share the recorder: counters moved by at least ours.
    assert!(
        value(&after, "mc_http_requests_total", &created)
            - value(&before, "mc_http_requests_total", &created)
            >= 2.0
    );
    assert!(
        value(&after, "mc_http_requests_total", &refused)
            > value(&before, "mc_http_requests_total", &refused)
    );
    assert!(
        value(&after, "mc_http_requests_total", &anonymous)
            > value(&before, "mc_http_requests_total", &anonymous)
    );
    assert!(
        value(
            &after,
            "mc_http_request_duration_seconds_count",
            &[("operation", "createSimulation"), ("tier", "starter")]
        ) >= 3.0
    );
    // Tier and status class are bounded.
    for s in after
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("mc_http_request"))
    {
        let tier = s.labels.get("tier").expect("tier label");
        assert!(
            [
                "trial",
                "starter",
                "professional",
                "enterprise",
                "none",
                "other"
            ]
            .contains(&tier),
            "{s:?}"
        );
        if let Some(class) = s.labels.get("status_class") {
            assert!(
                ["1xx", "2xx", "3xx", "4xx", "5xx"].contains(&class),
                "{s:?}"
            );
        }
    }
    assert!(
        value(&after, "mc_simulations_total", &[("mode", "sync")])
            - value(&before, "mc_simulations_total", &[("mode", "sync")])
            >= 2.0
    );
    assert!(
        value(&after, "mc_simulation_paths_total", &[])
            - value(&before, "mc_simulation_paths_total", &[])
            >= 4000.0
    );
    assert!(
        value(&after, "mc_quota_rejections_total", &[("policy", "size")])
            > value(&before, "mc_quota_rejections_total", &[("policy", "size")])
    );
    assert!(
        value(
            &after,
            "mc_http_request_duration_seconds_count",
            &[("operation", "createSimulation")]
        ) >= 3.0
    );
    // Queue gauges for every status, this instance's workers, the pool, build info.
    for status in ["queued", "running", "succeeded", "failed", "cancelled"] {
        assert!(
            after
                .samples
                .iter()
                .any(|s| s.metric == "mc_jobs" && s.labels.get("status") == Some(status)),
            "mc_jobs{{status={status}}} missing"
        );
    }
    assert_eq!(value(&after, "mc_job_workers", &[]), 1.0);
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "mc_db_pool_connections")
    );
    assert!(after.samples.iter().any(|s| s.metric == "mc_build_info"));
    // Bounded labels: no tenant slug, no concrete path.
    let mut label_names: HashMap<String, usize> = HashMap::new();
    for s in &after.samples {
        for (k, v) in s.labels.iter() {
            *label_names.entry(k.clone()).or_default() += 1;
            assert!(!v.contains("metricsmove"), "tenant in a label: {s:?}");
            assert!(!v.starts_with("/api/"), "concrete path in a label: {s:?}");
        }
    }
    assert!(!label_names.contains_key("tenant"));
}

#[tokio::test]
async fn scrape_time_gauges_follow_the_queue_the_pool_and_redis() {
    // No workers: an enqueued job stays queued until cancelled.
    let app = spawn_with(Options {
        env: vec![("METRICS_TOKEN", TOKEN.into())],
        max_connections: Some(7),
        ..Options::default()
    })
    .await;
    let t = app.signup_on("metricsgauges", "starter").await;
    let key = t.keys[0].as_str();
    let before = scrape(&app).await;
    assert_eq!(value(&before, "mc_jobs", &[("status", "queued")]), 0.0);
    assert_eq!(value(&before, "mc_jobs_oldest_queued_seconds", &[]), 0.0);
    assert_eq!(
        value(&before, "mc_db_pool_connections", &[("state", "max")]),
        7.0
    );
    // The scrape's own queries opened at least one connection, none is held between requests.
    let open = value(&before, "mc_db_pool_connections", &[("state", "in_use")])
        + value(&before, "mc_db_pool_connections", &[("state", "idle")]);
    assert!((1.0..=7.0).contains(&open), "{open}");
    // Not configured: not degraded.
    assert_eq!(value(&before, "mc_redis_degraded", &[]), 0.0);
    let info = before
        .samples
        .iter()
        .find(|s| s.metric == "mc_build_info")
        .expect("mc_build_info");
    assert_eq!(info.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    assert!(
        info.labels
            .get("engine")
            .is_some_and(|e| e.starts_with("mc-engine/")),
        "{info:?}"
    );

    let job = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", key), ("prefer", "respond-async")],
            simulation_body(),
        )
        .await
        .ok(202)
        .clone();
    let id = job["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let queued = scrape(&app).await;
    assert_eq!(value(&queued, "mc_jobs", &[("status", "queued")]), 1.0);
    assert!(value(&queued, "mc_jobs_oldest_queued_seconds", &[]) >= 1.0);

    let c = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/jobs/{id}"),
            &[("x-api-key", key)],
            None,
        )
        .await;
    assert_eq!(c.ok(200)["status"], "cancelled");
    let cancelled = scrape(&app).await;
    assert_eq!(value(&cancelled, "mc_jobs", &[("status", "queued")]), 0.0);
    assert_eq!(
        value(&cancelled, "mc_jobs", &[("status", "cancelled")]),
        1.0
    );
    assert_eq!(value(&cancelled, "mc_jobs_oldest_queued_seconds", &[]), 0.0);
}

#[tokio::test]
async fn redis_degraded_shows_on_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_with(Options {
        env: vec![("METRICS_TOKEN", TOKEN.into())],
        redis_url: Some(format!("redis://127.0.0.1:{port}")),
        ..Options::default()
    })
    .await;
    let s = scrape(&app).await;
    assert_eq!(value(&s, "mc_redis_degraded", &[]), 1.0);
}

/// Metric names (`mc_…`) used in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("mc_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_grafana_dashboard_uses_only_metrics_that_exist() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/montecarlo.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let mut used = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let Some(targets) = panel["targets"].as_array() else {
            assert_eq!(panel["type"], "row", "{panel}");
            continue;
        };
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{panel}");
        assert!(!targets.is_empty(), "{panel}");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "no metric in {expr}");
            used.extend(names);
        }
    }

    // A live scrape after every kind of event the panels chart: requests, a refusal, sync
    // simulations and a job run by a worker.
    let app = spawn_with(Options {
        env: [job_env(1), vec![("METRICS_TOKEN", TOKEN.into())]].concat(),
        ..Options::default()
    })
    .await;
    let t = app.signup_on("metricsdash", "starter").await;
    let key = t.keys[0].as_str();
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", key)],
        simulation_body(),
    )
    .await
    .ok(201);
    let mut big = simulation_body();
    big["paths"] = serde_json::json!(5_000_000);
    app.post("/api/v1/simulations", &[("x-api-key", key)], big)
        .await;
    let job = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", key), ("prefer", "respond-async")],
            simulation_body(),
        )
        .await
        .ok(202)
        .clone();
    crate::jobs::wait_job(
        &app,
        key,
        job["id"].as_str().unwrap(),
        std::time::Duration::from_secs(30),
        |j| j["status"] == "succeeded",
    )
    .await;
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposed: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<_> = used
        .iter()
        .filter(|n| !exposed.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics /metrics does not expose: {missing:?}"
    );
}
