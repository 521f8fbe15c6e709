//! Tier quotas and rate limits over HTTP, against real PostgreSQL and Redis.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

fn tiny_simulation() -> Value {
    json!({"assets": [{"weight": 1.0, "drift": 0.05, "volatility": 0.2}], "initial_value": 1000,
           "horizon_years": 1, "steps_per_year": 1, "paths": 100, "seed": 1})
}

/// Rewrites a tier's limits in the platform table (tiers are data, loaded at start-up).
async fn set_tier(app: &TestApp, tier: &str, monthly: Option<i64>, concurrent: i32) {
    let pool = app.pg().await;
    sqlx::query(
        "UPDATE platform.tiers SET monthly_simulations = $2, burst_per_second = 1000, burst_size = 1000, \
         max_concurrent_simulations = $3 WHERE name = $1",
    )
    .bind(tier)
    .bind(monthly)
    .bind(concurrent)
    .execute(&pool)
    .await
    .unwrap();
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}; body {}", r.body))
}

/// Two service instances behind one "load balancer", sharing a database and (optionally)
/// Redis; 3 × quota requests fired concurrently across both.
async fn exactly_quota_admitted(redis: Option<&str>) {
    let url = fresh_database_url();
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let opts = Options {
        database_url: Some(url),
        redis_url: redis.map(str::to_string),
        redis_prefix: Some(prefix),
        ..Default::default()
    };
    let setup = spawn_with(opts.clone()).await;
    let t = setup.signup_on("acme", "starter").await;
    let quota = 10;
    set_tier(&setup, "starter", Some(quota), 64).await;
    let (one, two) = (spawn_with(opts.clone()).await, spawn_with(opts).await);
    let one = std::sync::Arc::new(one);
    let two = std::sync::Arc::new(two);
    let mut tasks = Vec::new();
    for i in 0..(3 * quota as usize) {
        let app = if i % 2 == 0 { one.clone() } else { two.clone() };
        let key = t.keys[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/api/v1/simulations",
                &[("x-api-key", &key)],
                tiny_simulation(),
            )
            .await
        }));
    }
    let mut admitted = 0;
    let mut refused = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                admitted += 1;
                assert!(
                    header(&r, "ratelimit-policy").contains("\"monthly\";q=10"),
                    "{:?}",
                    r.headers
                );
                assert!(r.headers.contains_key("ratelimit"));
                assert!(r.headers.contains_key("x-ratelimit-limit"));
                assert!(r.headers.contains_key("x-ratelimit-remaining"));
                assert!(r.headers.contains_key("x-ratelimit-reset"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                r.problem(429);
                assert_eq!(r.body["policy"], "monthly", "{}", r.body);
                assert!(header(&r, "retry-after").parse::<u64>().unwrap() > 0);
                assert!(
                    r.headers.contains_key("ratelimit-policy"),
                    "{:?}",
                    r.headers
                );
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(
        (admitted, refused),
        (quota, 2 * quota),
        "exactly the quota must be admitted"
    );
    let usage = one.get("/api/v1/usage", &[("x-api-key", &t.keys[0])]).await;
    assert_eq!(usage.ok(200)["period"]["used"], json!(quota));
    assert_eq!(usage.body["period"]["remaining"], 0);
}

#[tokio::test]
async fn monthly_quota_is_exact_across_instances_sharing_redis() {
    exactly_quota_admitted(Some(SHARED_REDIS)).await;
}

#[tokio::test]
async fn monthly_quota_is_exact_across_instances_sharing_only_postgres() {
    exactly_quota_admitted(None).await;
}

#[tokio::test]
async fn burst_limit_headers_and_honest_retry_after() {
    let app = spawn_app().await;
    let t = app.signup("acme").await; // trial: 2/s, burst 5
    let key = [("x-api-key", t.keys[0].as_str())];
    for _ in 0..5 {
        let r = app.get("/api/v1/auth/me", &key).await;
        r.ok(200);
        assert!(
            header(&r, "ratelimit-policy").contains("\"burst\""),
            "{:?}",
            r.headers
        );
        assert!(r.headers.contains_key("ratelimit"));
        assert_eq!(header(&r, "x-ratelimit-limit"), "5");
    }
    let r = app.get("/api/v1/auth/me", &key).await;
    let d = r.problem(429);
    assert_eq!(r.body["policy"], "burst");
    assert!(d.contains("burst"), "{d}");
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    let wait: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&wait), "retry-after {wait}");
    // The other key has its own bucket.
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[1])])
        .await
        .ok(200);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    app.get("/api/v1/auth/me", &key).await.ok(200);
}

#[tokio::test]
async fn overage_is_admitted_and_counted_only_when_enabled() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    set_tier(&app, "starter", Some(2), 8).await;
    let app = spawn_with(Options {
        database_url: Some(app.database_url.clone()),
        ..Default::default()
    })
    .await;
    let key = [("x-api-key", t.keys[0].as_str())];
    for _ in 0..2 {
        app.post("/api/v1/simulations", &key, tiny_simulation())
            .await
            .ok(201);
    }
    let d = app
        .post("/api/v1/simulations", &key, tiny_simulation())
        .await
        .problem(429);
    assert!(d.contains("overage") || d.contains("upgrade"), "{d}");
    app.admin_patch("acme", json!({"overage_enabled": true}))
        .await
        .ok(200);
    app.post("/api/v1/simulations", &key, tiny_simulation())
        .await
        .ok(201);
    let usage = app.get("/api/v1/usage", &key).await;
    let p = &usage.ok(200)["period"];
    assert_eq!(
        (
            p["used"].as_u64(),
            p["overage"].as_u64(),
            p["remaining"].as_u64()
        ),
        (Some(3), Some(1), Some(0))
    );
}

#[tokio::test]
async fn size_caps_name_the_limit_and_the_tier_that_allows_it() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    // 150 000 paths > starter's 100 000.
    let mut body = tiny_simulation();
    body["paths"] = json!(150_000);
    let r = app.post("/api/v1/simulations", &key, body).await;
    let d = r.problem(403);
    assert!(d.contains("100000") && d.contains("professional"), "{d}");
    // paths × steps × assets = 50 000 × 2 520 × 10 = 1.26e9 > starter's 5e8.
    let assets: Vec<Value> = (0..10)
        .map(|_| json!({"weight": 0.1, "drift": 0.05, "volatility": 0.2}))
        .collect();
    let body = json!({"assets": assets, "initial_value": 1000, "horizon_years": 10, "steps_per_year": 252, "paths": 50000});
    let r = app.post("/api/v1/simulations", &key, body).await;
    let d = r.problem(403);
    assert!(
        d.contains("paths × steps × assets") && d.contains("professional"),
        "{d}"
    );
    // Refused before any work: nothing counted against the quota.
    let usage = app.get("/api/v1/usage", &key).await;
    assert_eq!(usage.ok(200)["period"]["used"], 0);
}

#[tokio::test]
async fn concurrency_cap_per_tenant_rejects_after_a_short_wait() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    set_tier(&app, "starter", None, 1).await;
    // Room for a run that takes seconds even on a fast machine.
    sqlx::query("UPDATE platform.tiers SET max_paths = 1000000, max_work = 2000000000 WHERE name = 'starter'")
        .execute(&app.pg().await)
        .await
        .unwrap();
    let app = std::sync::Arc::new(
        spawn_with(Options {
            database_url: Some(app.database_url.clone()),
            ..Default::default()
        })
        .await,
    );
    // 1 000 000 paths × 1 000 steps = 1e9 asset-steps: seconds of work, far longer than the
    // 300 ms queue wait.
    let heavy = json!({"assets": [{"weight": 1.0, "drift": 0.05, "volatility": 0.2}], "initial_value": 1000,
                       "horizon_years": 10, "steps_per_year": 100, "paths": 1000000, "seed": 3});
    let (a, k) = (app.clone(), t.keys[0].clone());
    let first = tokio::spawn(async move {
        a.post("/api/v1/simulations", &[("x-api-key", &k)], heavy)
            .await
    });
    // Wait until the first simulation really holds the tenant's only slot.
    let tenant_id =
        montecarlo_platform::domain::TenantId::parse(t.body["tenant"]["id"].as_str().unwrap())
            .unwrap();
    let mut held = false;
    for _ in 0..500 {
        if app.app_state.quotas.available_simulation_slots(tenant_id) == Some(0) {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the first simulation never took the slot");
    let started = std::time::Instant::now();
    let r = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[1])],
            tiny_simulation(),
        )
        .await;
    if r.status.as_u16() != 429 {
        let second_ms = started.elapsed().as_millis();
        let f = first.await.unwrap();
        panic!(
            "second answered {} after {second_ms} ms; first answered {} after {} ms: {}",
            r.status,
            f.status,
            started.elapsed().as_millis(),
            f.body.to_string().chars().take(300).collect::<String>()
        );
    }
    r.problem(429);
    assert_eq!(r.body["policy"], "concurrency", "{}", r.body);
    first.await.unwrap().ok(201);
    // The slot is free again.
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &t.keys[1])],
        tiny_simulation(),
    )
    .await
    .ok(201);
}

#[tokio::test]
async fn login_lockout_grows_and_resets() {
    let app = spawn_with(Options {
        login_attempts_per_minute: Some(1000),
        ..Default::default()
    })
    .await;
    app.signup("acme").await;
    let tenant = [("x-tenant-id", "acme")];
    let wrong = json!({"email": "owner@acme.example", "password": "not the password"});
    let right = json!({"email": "owner@acme.example", "password": "correct horse battery"});
    for _ in 0..5 {
        app.post("/api/v1/auth/login", &tenant, wrong.clone())
            .await
            .problem(401);
    }
    // Locked: even the right password is refused, with an honest Retry-After.
    let r = app.post("/api/v1/auth/login", &tenant, right.clone()).await;
    let d = r.problem(429);
    assert_eq!(r.body["policy"], "login");
    assert!(d.contains("locked"), "{d}");
    assert_eq!(header(&r, "retry-after"), "60");
    app.advance(chrono::Duration::seconds(61));
    // One more failure after the lock: the next lock doubles.
    app.post("/api/v1/auth/login", &tenant, wrong.clone())
        .await
        .problem(401);
    let r = app.post("/api/v1/auth/login", &tenant, right.clone()).await;
    r.problem(429);
    assert_eq!(header(&r, "retry-after"), "120");
    app.advance(chrono::Duration::seconds(121));
    app.post("/api/v1/auth/login", &tenant, right.clone())
        .await
        .ok(200);
    // Success reset the count: four failures do not lock.
    for _ in 0..4 {
        app.post("/api/v1/auth/login", &tenant, wrong.clone())
            .await
            .problem(401);
    }
    app.post("/api/v1/auth/login", &tenant, right).await.ok(200);
}

#[tokio::test]
async fn login_is_throttled_per_minute_by_default() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let wrong = json!({"email": "someone@acme.example", "password": "not the password"});
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.post(
                "/api/v1/auth/login",
                &[("x-tenant-id", "acme")],
                wrong.clone(),
            )
            .await
            .status
            .as_u16(),
        );
    }
    // Five attempts a minute at one account from one address (the signup was another account).
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429]);
}

struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn quota_store(app: &TestApp) -> (u16, String, String) {
    let r = app.get("/health/ready", &[]).await;
    (
        r.status.as_u16(),
        r.body["status"].as_str().unwrap_or("").to_string(),
        r.body["quota_store"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn redis_outage_degrades_without_5xx_and_recovers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = PrivateRedis::start(port);
    let url = fresh_database_url();
    let opts = Options {
        database_url: Some(url),
        redis_url: Some(format!("redis://127.0.0.1:{}", redis.port)),
        ..Default::default()
    };
    let setup = spawn_with(opts.clone()).await;
    let t = setup.signup_on("acme", "starter").await;
    set_tier(&setup, "starter", Some(6), 8).await;
    let app = spawn_with(opts).await;
    let key = [("x-api-key", t.keys[0].as_str())];
    for _ in 0..2 {
        app.post("/api/v1/simulations", &key, tiny_simulation())
            .await
            .ok(201);
    }
    assert_eq!(quota_store(&app).await, (200, "ready".into(), "up".into()));

    redis.stop();
    // Still serving, never a 5xx, limits enforced locally.
    for _ in 0..4 {
        app.post("/api/v1/simulations", &key, tiny_simulation())
            .await
            .ok(201);
    }
    let r = app
        .post("/api/v1/simulations", &key, tiny_simulation())
        .await;
    r.problem(429);
    assert_eq!(r.body["policy"], "monthly");
    let (status, state, store) = quota_store(&app).await;
    assert_eq!((status, state.as_str()), (200, "degraded"), "{store}");
    assert!(store.starts_with("degraded"), "{store}");
    app.get("/api/v1/usage", &key).await.ok(200);

    // Redis comes back (empty): used again without a restart, and the outage's count was kept.
    let _redis = PrivateRedis::start(port);
    let mut recovered = false;
    for _ in 0..40 {
        let _ = app.get("/api/v1/usage", &key).await;
        let _ = app
            .post("/api/v1/simulations", &key, tiny_simulation())
            .await;
        if quota_store(&app).await.2 == "up" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "quota store never reported up again");
    let r = app
        .post("/api/v1/simulations", &key, tiny_simulation())
        .await;
    r.problem(429);
    let usage = app.get("/api/v1/usage", &key).await;
    assert_eq!(usage.ok(200)["period"]["used"], 6);
}

#[tokio::test]
async fn a_tier_edited_in_postgres_applies_on_every_instance_without_a_restart() {
    let url = fresh_database_url();
    let opts = Options {
        database_url: Some(url),
        ..Default::default()
    };
    let a = spawn_with(opts.clone()).await;
    let b = spawn_with(opts).await;
    let t = a.signup("alpha").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    for app in [&a, &b] {
        assert_eq!(
            app.get("/api/v1/usage", &key).await.ok(200)["period"]["quota"],
            100
        );
    }
    // An operator edits the tier with SQL: no admin call, no restart.
    let pool = a.pg().await;
    sqlx::query("UPDATE platform.tiers SET monthly_simulations = 7 WHERE name = 'trial'")
        .execute(&pool)
        .await
        .unwrap();
    for (name, app) in [("A", &a), ("B", &b)] {
        let mut seen = false;
        for _ in 0..100 {
            if app.get("/api/v1/usage", &key).await.ok(200)["period"]["quota"] == 7 {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen, "instance {name} never saw the tier edit");
    }
}
