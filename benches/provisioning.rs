//! Tenant provisioning time: p50 / p99 over 50 signups, measured two ways in one run —
//! `TenantService::provision` alone (schema + tenant migrations + owner + two keys, one
//! transaction) and the whole `POST /api/v1/signup` over HTTP (adds argon2id hashing, JWT,
//! JSON) — against a baseline of an empty transaction on the same pool.
//!
//! Run: `cargo bench --bench provisioning` (PostgreSQL on 127.0.0.1:5432; `BENCH_SIGNUPS`
//! changes the count).

use montecarlo_platform::app::passwords::hash_password;
use montecarlo_platform::app::tenants::NewTenant;
use montecarlo_platform::config::Settings;
use montecarlo_platform::db::Db;
use montecarlo_platform::domain::{DisplayName, Email, Password, TenantSlug};
use montecarlo_platform::startup::Application;
use std::time::Instant;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn summary(name: &str, mut ms: Vec<f64>, base_p50: f64) {
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = (pct(&ms, 0.5), pct(&ms, 0.99));
    println!(
        "| {name:<34} | {:>4} | {p50:>8.2} | {p99:>8.2} | {:>9.1}× |",
        ms.len(),
        p50 / base_p50
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_SIGNUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let db = format!(
        "postgres://postgres@127.0.0.1:5432/bench_prov_{}",
        uuid::Uuid::new_v4().simple()
    );
    let url = db.clone();
    let settings = Settings::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.clone()),
        "BIND_ADDRESS" => Some("127.0.0.1:0".into()),
        "JWT_SECRET" => Some("bench-secret-0123456789abcdefghijklmnopqrstuvwxyz".into()),
        "LOGIN_ATTEMPTS_PER_MINUTE" => Some("1000000".into()),
        _ => None,
    })
    .unwrap();
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let services = app.app();
    let pool = Db::connect_lazy(&db, 2, 2).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    // Baseline: an empty transaction on the provisioning pool.
    let mut baseline = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        pool.probe_provisioning_pool().await.unwrap();
        baseline.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut sorted = baseline.clone();
    sorted.sort_by(f64::total_cmp);
    let base_p50 = pct(&sorted, 0.5);

    let hash = hash_password(Password::parse("correct horse battery").unwrap())
        .await
        .unwrap();
    let mut direct = Vec::with_capacity(n);
    for i in 0..n {
        let new = NewTenant {
            slug: TenantSlug::parse(&format!("direct-{i}")).unwrap(),
            display_name: DisplayName::parse(&format!("Direct {i}")).unwrap(),
            owner_name: DisplayName::parse("Owner").unwrap(),
            owner_email: Email::parse("owner@direct.example").unwrap(),
            owner_password_hash: hash.clone(),
            verification: None,
        };
        let t = Instant::now();
        services.tenants.provision(new).await.expect("provisioned");
        direct.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let client = reqwest::Client::new();
    let mut http = Vec::with_capacity(n);
    for i in 0..n {
        let body = serde_json::json!({"organisation_name": format!("Bench {i}"), "slug": format!("bench-{i}"),
            "full_name": "Owner", "email": "owner@bench.example", "password": "correct horse battery"});
        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/signup"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            201,
            "{}",
            r.text().await.unwrap_or_default()
        );
        http.push(t.elapsed().as_secs_f64() * 1e3);
    }

    println!("\nTenant provisioning ({n} each, ms; ratio = p50 / baseline p50)\n");
    println!("| case                               |    n |  p50 ms  |  p99 ms  |  ratio     |");
    println!("|------------------------------------|------|----------|----------|------------|");
    summary("baseline: empty transaction", baseline, base_p50);
    summary("provision() (schema+migrate+rows)", direct, base_p50);
    summary("POST /api/v1/signup over HTTP", http, base_p50);
    println!("\n(database {db} left for inspection; drop it with DROP DATABASE)");
}
