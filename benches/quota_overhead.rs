//! Per-request overhead of the limit path (`check_burst` + `consume_simulation`).
//!
//! Compares the governor-only burst check (baseline) with the full path on each monthly-quota
//! store: Redis, PostgreSQL, and the in-process fallback used while Redis is down. Needs
//! PostgreSQL at `QUOTA_BENCH_PG` (default `postgres://postgres@127.0.0.1:5432`) and Redis at
//! `QUOTA_BENCH_REDIS` (default `redis://127.0.0.1:6379`); creates and drops its own database
//! and Redis keys. `QUOTA_BENCH_ITERS` sets the iterations per case (default 20 000).
//!
//! Run: `cargo bench --bench quota_overhead`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use montecarlo_platform::clock::{SharedClock, SystemClock};
use montecarlo_platform::db::Db;
use montecarlo_platform::domain::{ApiKeyId, Principal, TenantId, Tier, TierCatalog};
use montecarlo_platform::quota::{QuotaConfig, Quotas};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

const V1_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/platform_migrations/V1__platform.sql"
));

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        mean: samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64,
    }
}

fn bench_tier() -> Tier {
    Tier {
        name: "bench".into(),
        display_name: "Bench".into(),
        price_cents_per_month: 0,
        monthly_simulations: Some(1_000_000_000),
        max_paths: 1,
        max_work: 1,
        burst_per_second: 1_000_000,
        burst_size: 1_000_000,
        max_concurrent_simulations: 1,
        max_api_keys: None,
        overage_cents_per_simulation: None,
        trial_days: None,
    }
}

async fn run_case(q: &Quotas, tenant: TenantId, with_store: bool, iters: usize) -> Stats {
    let tier = bench_tier();
    let key = Principal::ApiKey(ApiKeyId::new());
    let mut samples = Vec::with_capacity(iters);
    for i in 0..(iters + iters / 20) {
        let start = Instant::now();
        let burst = q.check_burst(&key, &tier).expect("burst admits");
        if with_store {
            let grant = q
                .consume_simulation(tenant, &tier, false)
                .await
                .expect("quota admits");
            std::hint::black_box(grant.headers_with(&burst));
        } else {
            std::hint::black_box(burst.headers());
        }
        if i >= iters / 20 {
            samples.push(start.elapsed()); // the first 5 % warm up
        }
    }
    stats(samples)
}

#[tokio::main]
async fn main() {
    let pg = std::env::var("QUOTA_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let redis_url =
        std::env::var("QUOTA_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let iters: usize = std::env::var("QUOTA_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);

    let admin = PgPool::connect(&format!("{pg}/postgres"))
        .await
        .expect("PostgreSQL");
    let db = format!("quota_bench_{}", Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{pg}/{db}"))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE SCHEMA platform")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(V1_SQL).execute(&pool).await.unwrap();
    let tenant = TenantId::new();
    sqlx::query(
        "INSERT INTO platform.tenants (id, slug, display_name, schema_name, tier, created_at, \
         updated_at) VALUES ($1, 'bench-tenant', 'Bench', 't_bench', 'starter', now(), now())",
    )
    .bind(tenant.as_uuid())
    .execute(&pool)
    .await
    .unwrap();

    let clock: SharedClock = Arc::new(SystemClock);
    let prefix = format!("qbench:{}:", Uuid::new_v4().simple());
    let cfg = |url: Option<String>| QuotaConfig {
        redis_url: url,
        key_prefix: prefix.clone(),
        ..QuotaConfig::default()
    };
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let store = Db::connect_lazy(&format!("{pg}/{db}"), 4, 1).unwrap();
    let tiers = Arc::new(TierCatalog::default());
    let quotas =
        |url: Option<String>| Quotas::new(cfg(url), store.clone(), clock.clone(), tiers.clone());
    let local = quotas(None).await;
    let with_redis = quotas(Some(redis_url.clone())).await;
    let with_pg = quotas(None).await;
    let redis_down = quotas(Some(format!("redis://127.0.0.1:{dead_port}"))).await;
    assert!(
        !with_redis.health().await.is_degraded(),
        "Redis must be up for the benchmark"
    );

    let cases = [
        (
            "governor only (check_burst)",
            run_case(&local, tenant, false, iters).await,
        ),
        (
            "governor + Redis (Lua script)",
            run_case(&with_redis, tenant, true, iters).await,
        ),
        (
            "governor + PostgreSQL (upsert)",
            run_case(&with_pg, tenant, true, iters).await,
        ),
        (
            "governor + local fallback (Redis down)",
            run_case(&redis_down, tenant, true, iters).await,
        ),
    ];
    let base = &cases[0].1;
    println!("quota_overhead: {iters} iterations per case, one request at a time");
    println!(
        "| {:<40} | {:>10} | {:>10} | {:>10} | {:>9} | {:>9} |",
        "case", "p50 µs", "p99 µs", "mean µs", "p50 ×", "p99 ×"
    );
    println!(
        "|{:-<42}|{:-<12}|{:-<12}|{:-<12}|{:-<11}|{:-<11}|",
        "", "", "", "", "", ""
    );
    for (name, s) in &cases {
        println!(
            "| {:<40} | {:>10.2} | {:>10.2} | {:>10.2} | {:>9.1} | {:>9.1} |",
            name,
            s.p50,
            s.p99,
            s.mean,
            s.p50 / base.p50,
            s.p99 / base.p99
        );
    }

    // Clean up: Redis keys of this run, then the database.
    if let Ok(client) = redis::Client::open(redis_url)
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
    drop((local, with_redis, with_pg, redis_down));
    pool.close().await;
    let _ = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
}
