//! Attacks on the service as a whole: hostile bodies against a separate service process (its
//! peak resident memory is measured), honest accounting, a lockout an attacker cannot turn
//! against the owner, uniform answers, and HTTP hygiene.

use crate::helpers::*;
use montecarlo_platform::config::FailPoints;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The service binary running as its own process on a fresh database, so its memory can be
/// measured apart from the test harness.
struct ServiceProcess {
    child: Child,
    base: String,
    /// Dropped with the process unless it was [`ServiceProcess::terminate`]d.
    database: Option<String>,
}

impl ServiceProcess {
    async fn start() -> Self {
        Self::start_on(fresh_database_url()).await
    }

    /// The service on an existing database (a restart).
    async fn start_on(database: String) -> Self {
        Self::start_with(database, &[]).await
    }

    /// The service on `database` with extra environment variables.
    async fn start_with(database: String, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_montecarlo-platform"))
            .env("DATABASE_URL", &database)
            .env("BIND_ADDRESS", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", JWT_SECRET)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LOGIN_ATTEMPTS_PER_MINUTE", "1000000")
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the service binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client.get(format!("{base}/health")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            base,
            database: Some(database),
        }
    }

    /// Stops the service cleanly (SIGTERM), waits for it to exit (at most 30 s) and hands back
    /// its database, which is kept.
    fn terminate(mut self) -> (String, std::process::ExitStatus) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM sent");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("the process can be waited for")
            {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (self.database.take().expect("a database"), status)
    }

    /// Peak resident memory of the service process so far (`VmHWM`), bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the service process is alive");
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kb * 1024
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Some(database) = &self.database else {
            return;
        };
        let (base, name) = database.rsplit_once('/').unwrap();
        let _ = Command::new("psql")
            .args([
                &format!("{base}/postgres"),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

fn repeat(item: &str, n: usize) -> String {
    let mut s = String::with_capacity((item.len() + 1) * n);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item);
    }
    s
}

/// Every array and string of every request body, made huge: refused before the work, quickly,
/// and without growing the service's memory.
#[tokio::test]
async fn hostile_bodies_are_refused_quickly_without_memory_growth() {
    let svc = ServiceProcess::start().await;
    let client = reqwest::Client::new();
    let signup: Value = client
        .post(format!("{}/api/v1/signup", svc.base))
        .json(
            &json!({"organisation_name": "Acme", "slug": "acme", "full_name": "Ada",
                      "email": "ada@acme.example", "password": "correct horse battery"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = signup["api_keys"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let token = signup["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let upgraded = client
        .patch(format!("{}/api/v1/admin/tenants/acme", svc.base))
        .bearer_auth(crate::helpers::bootstrap_admin_http(&client, &svc.base).await)
        .json(&json!({"tier": "enterprise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(upgraded.status(), StatusCode::OK);
    let sims = format!("{}/api/v1/simulations", svc.base);
    // Warm up: a real simulation and a refused one, so allocator pools exist before measuring.
    let (s, _, _) = send(
        &client,
        &sims,
        &[("x-api-key", &key)],
        simulation_body().to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = send(
        &client,
        &sims,
        &[("x-api-key", &key)],
        "{\"assets\": [1]}".into(),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let before = svc.peak_rss();

    let asset = r#"{"name":"a","weight":0.0,"drift":0.0,"volatility":0.0}"#;
    let base = r#""initial_value": 1000, "horizon_years": 1"#;
    let huge_text = "x".repeat(5_000_000);
    let simulation_attacks: Vec<(&str, String, &str)> = vec![
        (
            "100,000 assets",
            format!(r#"{{"assets": [{}], {base}}}"#, repeat(asset, 100_000)),
            "assets",
        ),
        (
            "100,000 correlation rows",
            format!(
                r#"{{"assets": [{asset}], "correlation": [{}], {base}}}"#,
                repeat("[1.0]", 100_000)
            ),
            "correlation",
        ),
        (
            "a correlation row of 1,000,000",
            format!(
                r#"{{"assets": [{asset}], "correlation": [[{}]], {base}}}"#,
                repeat("0", 1_000_000)
            ),
            "correlation[0]",
        ),
        (
            "100,000 rows of returns",
            format!(
                r#"{{"assets": [{asset}], "model": {{"type": "bootstrap", "returns": [{}]}}, {base}}}"#,
                repeat("[0.01]", 100_000)
            ),
            "model.returns",
        ),
        (
            "a returns row of 1,000,000",
            format!(
                r#"{{"assets": [{asset}], "model": {{"type": "bootstrap", "returns": [[{}]]}}, {base}}}"#,
                repeat("0", 1_000_000)
            ),
            "model.returns[0]",
        ),
        (
            "a 5 MB asset name",
            format!(r#"{{"assets": [{{"name": "{huge_text}", "weight": 1.0}}], {base}}}"#),
            "assets[0].name",
        ),
        (
            "an unknown field of 1,000,000 elements",
            format!(r#"{{"junk": [{}], {base}}}"#, repeat("0", 1_000_000)),
            "junk",
        ),
        (
            "1,000,000 nested arrays",
            format!(
                r#"{{"assets": {}{}}}"#,
                "[".repeat(1_000_000),
                "]".repeat(1_000_000)
            ),
            "assets[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
        ),
    ];
    // The bound is on the service's work, not on the scheduler: with every other test of the
    // suite running on the same cores, a send is timed up to three times and the fastest counts.
    for (what, body, field) in &simulation_attacks {
        let mut times = Vec::new();
        for _ in 0..3 {
            let (status, problem, took) =
                send(&client, &sims, &[("x-api-key", &key)], body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{what}: {problem}"
            );
            assert_eq!(problem["field"], *field, "{what}: {problem}");
            times.push(took);
            if took < Duration::from_millis(100) {
                break;
            }
        }
        assert!(
            times.iter().any(|t| *t < Duration::from_millis(100)),
            "{what}: refused in {times:?}"
        );
        eprintln!("{what}: {} bytes refused in {times:?}", body.len());
    }
    // Every string of every other body: over the operation's own (small) limit, refused
    // before it is read further (the client sending 5 MB sees the connection closed; 20 KB
    // fits in the socket buffers, so the 413 is read).
    let huge_text = "x".repeat(20_000);
    type Attack<'a> = (String, Vec<(&'a str, &'a str)>, String);
    let others: Vec<Attack> = vec![
        (
            format!("{}/api/v1/signup", svc.base),
            vec![],
            format!(r#"{{"organisation_name": "{huge_text}"}}"#),
        ),
        (
            format!("{}/api/v1/auth/login", svc.base),
            vec![("x-tenant-id", "acme")],
            format!(r#"{{"email": "a@b.co", "password": "{huge_text}"}}"#),
        ),
        (
            format!("{}/api/v1/users", svc.base),
            vec![("authorization", bearer.as_str())],
            format!(r#"{{"full_name": "{huge_text}"}}"#),
        ),
        (
            format!("{}/api/v1/keys", svc.base),
            vec![("authorization", bearer.as_str())],
            format!(r#"{{"name": "{huge_text}"}}"#),
        ),
    ];
    for (url, headers, body) in others {
        let mut times = Vec::new();
        for _ in 0..3 {
            let (status, problem, took) = send(&client, &url, &headers, body.clone()).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{url}: {problem}");
            assert!(
                problem["detail"].as_str().unwrap().contains("KiB"),
                "{problem}"
            );
            times.push(took);
            if took < Duration::from_millis(100) {
                break;
            }
        }
        assert!(
            times.iter().any(|t| *t < Duration::from_millis(100)),
            "{url}: refused in {times:?}"
        );
    }
    let grown = svc.peak_rss().saturating_sub(before);
    eprintln!(
        "hostile bodies: peak RSS {} MB before, grew by {} KB",
        before >> 20,
        grown >> 10
    );
    assert!(
        grown < 50 * 1024 * 1024,
        "peak resident memory grew by {} MB",
        grown / (1024 * 1024)
    );

    // 100 concurrent 1 MiB sign-in bodies: each read no further than the 8 KiB limit.
    let before = svc.peak_rss();
    let big_login = format!(
        r#"{{"email": "a@b.co", "password": "{}"}}"#,
        "p".repeat(1 << 20)
    );
    let login = format!("{}/api/v1/auth/login", svc.base);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (client, url, body) = (client.clone(), login.clone(), big_login.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .header("x-tenant-id", "acme")
                .body(body)
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    for t in tasks {
        // The service may close the connection before the client finished sending: either
        // way nothing beyond the limit was read.
        if let Ok(status) = t.await.unwrap() {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    let grown = svc.peak_rss().saturating_sub(before);
    eprintln!(
        "100 concurrent 1 MiB sign-in bodies: peak RSS grew by {} KB",
        grown >> 10
    );
    assert!(
        grown < 20 * 1024 * 1024,
        "100 concurrent 1 MiB sign-in bodies grew peak memory by {} MB",
        grown / (1024 * 1024)
    );
}

/// A tenant's period usage as the API reports it.
async fn used(app: &TestApp, key: &str) -> u64 {
    app.get("/api/v1/usage", &[("x-api-key", key)])
        .await
        .ok(200)["period"]["used"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn only_simulations_that_ran_and_were_stored_are_charged() {
    // Concurrency refusals: a starter tenant limited to one simulation at a time.
    let app = spawn_app().await;
    let t = app.signup_on("acme", "starter").await;
    let pool = app.pg().await;
    sqlx::query("UPDATE platform.tiers SET max_concurrent_simulations = 1, burst_size = 1000, burst_per_second = 1000 WHERE name = 'starter'")
        .execute(&pool)
        .await
        .unwrap();
    let heavy = json!({"assets": [{"weight": 1.0, "drift": 0.05, "volatility": 0.2}],
        "initial_value": 1000, "horizon_years": 100, "steps_per_year": 50, "paths": 100000});
    let mut runs = Vec::new();
    for i in 0..6 {
        let key = t.keys[i % 2].clone();
        let (client, url, body) = (
            app.client.clone(),
            format!("{}/api/v1/simulations", app.base),
            heavy.clone(),
        );
        runs.push(tokio::spawn(async move {
            client
                .post(url)
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for r in runs {
        statuses.push(r.await.unwrap().as_u16());
    }
    let ran = statuses.iter().filter(|s| **s == 201).count() as u64;
    assert!(
        ran >= 1 && statuses.iter().all(|s| [201, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the cap must have refused some: {statuses:?}"
    );
    assert_eq!(used(&app, &t.keys[0]).await, ran, "{statuses:?}");

    // A simulation that ran but could not be stored is refunded.
    let app = spawn_with(Options {
        fail_points: FailPoints {
            simulation_store: true,
            ..FailPoints::default()
        },
        ..Default::default()
    })
    .await;
    let t = app.signup("bravo").await;
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &t.keys[0])],
        simulation_body(),
    )
    .await
    .problem(500);
    let mut refunded = false;
    for _ in 0..100 {
        if used(&app, &t.keys[0]).await == 0 {
            refunded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refunded,
        "the charge of a simulation that was not stored stayed"
    );
}

#[tokio::test]
async fn failures_from_one_address_do_not_lock_the_owner_out() {
    let app = spawn_with(Options {
        trusted_proxies: Some("127.0.0.1".into()),
        ..Default::default()
    })
    .await;
    app.signup("acme").await;
    let wrong = json!({"email": "owner@acme.example", "password": "not the password"});
    let right = json!({"email": "owner@acme.example", "password": "correct horse battery"});
    let attacker = [("x-tenant-id", "acme"), ("x-forwarded-for", "203.0.113.66")];
    let owner = [("x-tenant-id", "acme"), ("x-forwarded-for", "198.51.100.7")];
    for _ in 0..5 {
        app.post("/api/v1/auth/login", &attacker, wrong.clone())
            .await
            .problem(401);
    }
    let r = app
        .post("/api/v1/auth/login", &attacker, right.clone())
        .await;
    assert!(r.problem(429).contains("locked"));
    // The owner, from their own address, gets in (after a short progressive delay).
    let started = Instant::now();
    app.post("/api/v1/auth/login", &owner, right.clone())
        .await
        .ok(200);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "no progressive delay"
    );
    // The attacker's address stays locked.
    app.post("/api/v1/auth/login", &attacker, right)
        .await
        .problem(429);
}

#[tokio::test]
async fn forwarded_addresses_from_untrusted_peers_are_ignored() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let wrong = json!({"email": "owner@acme.example", "password": "not the password"});
    let right = json!({"email": "owner@acme.example", "password": "correct horse battery"});
    for i in 0..5 {
        let spoofed = format!("203.0.113.{i}");
        app.post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme"), ("x-forwarded-for", &spoofed)],
            wrong.clone(),
        )
        .await
        .problem(401);
    }
    // Still the same (peer) address: locked, whatever the header claims.
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", "acme"), ("x-forwarded-for", "198.51.100.9")],
        right,
    )
    .await
    .problem(429);
}

#[tokio::test]
async fn sign_in_reveals_neither_tenants_nor_emails_nor_passwords() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let login = |tenant: &'static str, email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/auth/login",
                &[("x-tenant-id", tenant)],
                json!({"email": email, "password": password}),
            )
            .await
        }
    };
    let wrong_password = login("acme", "owner@acme.example", "not the password").await;
    let unknown_email = login("acme", "nobody@acme.example", "not the password").await;
    let unknown_tenant = login("nowhere", "owner@acme.example", "not the password").await;
    for r in [&wrong_password, &unknown_email, &unknown_tenant] {
        assert_eq!(
            r.problem(401),
            "email or password is incorrect",
            "{}",
            r.body
        );
    }
    // A suspended tenant answers before any password is checked: no confirmation of one.
    app.admin_patch("acme", json!({"status": "suspended"}))
        .await
        .ok(200);
    let wrong = login("acme", "owner@acme.example", "not the password").await;
    let right = login("acme", "owner@acme.example", "correct horse battery").await;
    assert_eq!(wrong.problem(403), right.problem(403));
}

#[tokio::test]
async fn refused_calls_are_counted_in_aggregate() {
    let app = spawn_app().await;
    let t = app.signup("acme").await; // trial: 5 requests at once, then 2 a second
    let key = [("x-api-key", t.keys[0].as_str())];
    let mut refused = 0;
    for _ in 0..40 {
        if app.get("/api/v1/auth/me", &key).await.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused >= 30, "{refused}");
    app.app_state.usage.flush_calls().await.unwrap();
    let pool = app.pg().await;
    let (rows, calls): (i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(sum(calls), 0)::bigint FROM t_acme.api_call_logs WHERE status = 429",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(calls, refused);
    assert_eq!(rows, 1, "one row for all refusals of one key and endpoint");
    let report = app
        .get("/api/v1/usage", &[("authorization", &bearer(&t.token))])
        .await;
    assert_eq!(report.ok(200)["daily"][0]["errors"], refused);
}

#[tokio::test]
async fn a_key_revoked_on_one_instance_is_refused_on_the_others() {
    let url = fresh_database_url();
    let opts = Options {
        database_url: Some(url),
        ..Default::default()
    };
    let a = spawn_with(opts.clone()).await;
    let b = spawn_with(opts).await;
    let t = a.signup("acme").await;
    // B remembers the key.
    b.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    a.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/keys/{}", t.key_ids[0]),
        &[("authorization", &bearer(&t.token))],
        None,
    )
    .await
    .ok(200);
    let mut refused = false;
    for _ in 0..100 {
        if b.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
            .await
            .status
            == StatusCode::UNAUTHORIZED
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "instance B still accepts a key revoked on A");
}

#[tokio::test]
async fn responses_carry_security_headers_and_405_says_allow() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let r = app
        .get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await;
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        assert_eq!(r.headers.get(name).unwrap(), value, "{name}");
    }
    assert_eq!(r.content_type, "application/json");
    let docs = app.get("/docs", &[]).await;
    let csp = docs
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'sha256-") && !csp.contains("unsafe-inline' 'sha"),
        "{csp}"
    );
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    let r = app
        .request(reqwest::Method::PUT, "/api/v1/simulations", &[], None)
        .await;
    r.problem(405);
    assert_eq!(r.headers.get("allow").unwrap(), "GET, POST");
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/simulations/{}", "sim_x"),
            &[],
            None,
        )
        .await;
    r.problem(405);
    assert_eq!(r.headers.get("allow").unwrap(), "GET");
}

fn long_simulation(paths: u64) -> Value {
    json!({"assets": [{"weight": 1.0, "drift": 0.05, "volatility": 0.2}], "initial_value": 1000,
           "horizon_years": 100, "steps_per_year": 252, "paths": paths})
}

#[tokio::test]
async fn over_the_in_flight_cap_requests_are_shed_but_health_answers() {
    let app = spawn_with(Options {
        max_in_flight: Some(1),
        ..Default::default()
    })
    .await;
    let t = app.signup_on("acme", "professional").await;
    let (client, url, key) = (
        app.client.clone(),
        format!("{}/api/v1/simulations", app.base),
        t.keys[0].clone(),
    );
    // About 5·10⁸ asset-steps: the only permit is held for a while.
    let first = tokio::spawn(async move {
        client
            .post(url)
            .header("x-api-key", key)
            .json(&long_simulation(20_000))
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = app
        .get("/api/v1/auth/me", &[("x-api-key", &t.keys[1])])
        .await;
    assert!(r.problem(503).contains("capacity"), "{}", r.body);
    assert_eq!(r.body["policy"], "load");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    app.get("/health", &[]).await.ok(200);
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[1])])
        .await
        .ok(200);
}

#[tokio::test]
async fn a_request_over_the_timeout_answers_503_and_is_not_charged() {
    let app = spawn_with(Options {
        request_timeout_secs: Some(1),
        ..Default::default()
    })
    .await;
    let t = app.signup_on("acme", "professional").await;
    // One simulation at a time, so that a run still going on after its request was abandoned
    // would hold the tenant's only slot.
    sqlx::query(
        "UPDATE platform.tiers SET max_concurrent_simulations = 1, monthly_simulations = 77777 \
         WHERE name = 'professional'",
    )
    .execute(&app.pg().await)
    .await
    .unwrap();
    for _ in 0..100 {
        let u = app.get("/api/v1/usage", &[("x-api-key", &t.keys[1])]).await;
        if u.ok(200)["period"]["quota"] == 77777 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // About 2.5·10⁹ asset-steps: several seconds, over the 1 s timeout.
    let r = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0])],
            long_simulation(100_000),
        )
        .await;
    assert!(
        r.problem(503).contains("did not finish within 1 s"),
        "{}",
        r.body
    );
    assert_eq!(r.body["policy"], "timeout");
    let mut refunded = false;
    for _ in 0..100 {
        if used(&app, &t.keys[1]).await == 0 {
            refunded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refunded, "an abandoned simulation was charged");
    // The abandoned run was cancelled (it stops at its next chunk) and gave its slot back:
    // the next simulation runs at once instead of waiting seconds for it (429).
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &t.keys[0])],
        simulation_body(),
    )
    .await
    .ok(201);
}

/// A clean shutdown (SIGTERM in the middle of a load) loses no count: after a restart on the same
/// database, every simulation that was answered 201 is stored and counted in the monthly quota,
/// none that was not is, and every answered call — the burst refusals that were only counted in
/// memory included — is in the usage log.
#[tokio::test]
async fn a_clean_shutdown_loses_no_usage_or_quota_count() {
    let svc = ServiceProcess::start().await;
    let client = reqwest::Client::new();
    let base = svc.base.clone();
    let signup = client
        .post(format!("{base}/api/v1/signup"))
        .json(&json!({
            "organisation_name": "Shutdown Org", "slug": "shutdown",
            "full_name": "Owner Person", "email": "owner@shutdown.example",
            "password": "correct horse battery"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let signup: Value = signup.json().await.unwrap();
    let token = signup["access_token"].as_str().unwrap().to_string();
    let key = signup["api_keys"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // Professional: 4 simulations at once, burst 40 then 20 a second per key.
    let patched = client
        .patch(format!("{base}/api/v1/admin/tenants/shutdown"))
        .bearer_auth(crate::helpers::bootstrap_admin_http(&client, &base).await)
        .json(&json!({"tier": "professional"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);

    // Burst refusals, counted in memory and written every 5 s: the shutdown must write them.
    let mut answered = 0u64;
    let mut errors = 0u64;
    for _ in 0..60 {
        let r = client
            .get(format!("{base}/api/v1/auth/me"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        answered += 1;
        errors += u64::from(r.status().as_u16() >= 400);
    }
    // How many the burst refuses depends on the machine's speed (the bucket refills at 2/s);
    // what matters is that refusals exist to be counted.
    assert!(errors >= 1, "the burst refused {errors} of 60 calls");

    // Simulations in flight when SIGTERM arrives.
    let ok = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut body = simulation_body();
    body["paths"] = json!(40_000);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (client, base, key, ok) = (client.clone(), base.clone(), key.clone(), ok.clone());
            let mut body = body.clone();
            body["seed"] = json!(i);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30 * i)).await;
                let r = client
                    .post(format!("{base}/api/v1/simulations"))
                    .header("x-api-key", &key)
                    .json(&body)
                    .send()
                    .await;
                let status = r.map(|r| r.status()).ok();
                if status == Some(StatusCode::CREATED) {
                    ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                status
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no simulation finished within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (database, exit) = tokio::task::spawn_blocking(move || svc.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "a clean shutdown exits 0, got {exit}");
    let mut created = 0u64;
    let mut unanswered = 0u64;
    for t in tasks {
        match t.await.unwrap() {
            Some(StatusCode::CREATED) => created += 1,
            Some(s) => {
                answered += 1;
                errors += u64::from(s.as_u16() >= 400);
            }
            None => unanswered += 1,
        }
    }
    answered += created;
    println!(
        "shutdown under load: {created} × 201, {unanswered} unanswered, {answered} answered calls, {errors} errors"
    );
    assert!(created >= 1);

    let svc = ServiceProcess::start_on(database).await;
    let report: Value = client
        .get(format!("{}/api/v1/usage", svc.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        report["period"]["used"], created,
        "quota used after the restart ({created} answered 201, {unanswered} unanswered): {report}"
    );
    let day = &report["daily"][0];
    assert_eq!(day["simulations"], created, "{report}");
    assert_eq!(day["errors"], errors, "{report}");
    assert_eq!(day["calls"], answered, "{report}");
    let list: Value = client
        .get(format!("{}/api/v1/simulations?limit=100", svc.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len() as u64,
        created,
        "{list}"
    );
}

/// A stop signal drains instead of dropping: readiness fails at once while the listener keeps
/// accepting for `SHUTDOWN_DRAIN_MS`; clients that stop sending when readiness fails (as a load
/// balancer would) get an answer to every request they sent — those that arrived after the
/// signal, on new connections, included — and the simulations in flight finish.
#[tokio::test]
async fn a_stop_signal_fails_readiness_first_and_drops_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    let svc =
        ServiceProcess::start_with(fresh_database_url(), &[("SHUTDOWN_DRAIN_MS", "3000")]).await;
    let base = svc.base.clone();
    let client = reqwest::Client::new();
    let signup: Value = client
        .post(format!("{base}/api/v1/signup"))
        .json(&json!({
            "organisation_name": "Drain Org", "slug": "drain",
            "full_name": "Owner Person", "email": "owner@drain.example",
            "password": "correct horse battery"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = signup["api_keys"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let patched = client
        .patch(format!("{base}/api/v1/admin/tenants/drain"))
        .bearer_auth(crate::helpers::bootstrap_admin_http(&client, &base).await)
        .json(&json!({"tier": "enterprise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // The "load balancer": polls readiness and stops routing once it fails.
    let routing = Arc::new(AtomicBool::new(true));
    let signalled = Arc::new(AtomicBool::new(false));
    let prober = {
        let (routing, base) = (routing.clone(), base.clone());
        tokio::spawn(async move {
            let probe = reqwest::Client::new();
            loop {
                let r = probe.get(format!("{base}/health/ready")).send().await;
                if r.is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE) {
                    routing.store(false, SeqCst);
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let (sent, answered, after_signal) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    // Clients: half open a new connection per request, half keep theirs alive.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (routing, signalled, base, key) = (
                routing.clone(),
                signalled.clone(),
                base.clone(),
                key.clone(),
            );
            let (sent, answered, after_signal) =
                (sent.clone(), answered.clone(), after_signal.clone());
            tokio::spawn(async move {
                let http = if i % 2 == 0 {
                    reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap()
                } else {
                    reqwest::Client::new()
                };
                let mut failures = Vec::new();
                while routing.load(SeqCst) {
                    let late = signalled.load(SeqCst);
                    sent.fetch_add(1, SeqCst);
                    let r = if i % 4 == 1 {
                        let mut body = simulation_body();
                        body["paths"] = json!(200);
                        http.post(format!("{base}/api/v1/simulations"))
                            .header("x-api-key", &key)
                            .json(&body)
                            .send()
                            .await
                    } else {
                        http.get(format!("{base}/api/v1/auth/me"))
                            .header("x-api-key", &key)
                            .send()
                            .await
                    };
                    // Any answer counts (the burst limit may answer 429): the point is that
                    // none is dropped.
                    match r {
                        Ok(_) => {
                            answered.fetch_add(1, SeqCst);
                            if late {
                                after_signal.fetch_add(1, SeqCst);
                            }
                        }
                        Err(e) => failures.push(format!("{e:?}")),
                    }
                }
                failures
            })
        })
        .collect();
    // Long simulations in flight when the signal arrives.
    let mut long = simulation_body();
    long["paths"] = json!(40_000);
    let in_flight: Vec<_> = (0..2)
        .map(|i| {
            let (client, base, key) = (client.clone(), base.clone(), key.clone());
            let mut body = long.clone();
            body["seed"] = json!(i);
            tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/simulations"))
                    .header("x-api-key", &key)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    while sent.load(SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signalled.store(true, SeqCst);
    let (_, exit) = tokio::task::spawn_blocking(move || svc.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "a clean shutdown exits 0, got {exit}");
    assert!(
        prober.await.unwrap(),
        "readiness answered 503 before the listener closed"
    );
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    for t in in_flight {
        assert_eq!(
            t.await
                .unwrap()
                .expect("an in-flight simulation is answered"),
            StatusCode::CREATED
        );
    }
    println!(
        "drain: {} sent, {} answered, {} of them sent after the signal",
        sent.load(SeqCst),
        answered.load(SeqCst),
        after_signal.load(SeqCst)
    );
    assert!(failures.is_empty(), "requests not answered: {failures:?}");
    assert_eq!(sent.load(SeqCst), answered.load(SeqCst));
    assert!(
        after_signal.load(SeqCst) > 0,
        "requests sent after the signal were served during the drain"
    );
}
