//! Mechanism tests against real PostgreSQL (a fresh database per test) and Redis (a unique key
//! prefix per test, or a private `redis-server` for the outage test).

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use super::*;
use crate::clock::{Clock, ManualClock, SharedClock, SystemClock};
use crate::domain::ApiKeyId;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SHARED_REDIS: &str = "redis://127.0.0.1:6379";
const V1_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/platform_migrations/V1__platform.sql"
));

struct TestDb {
    pool: PgPool,
    db: Db,
    name: String,
}

impl TestDb {
    async fn new() -> TestDb {
        let admin = PgPool::connect(ADMIN_URL)
            .await
            .expect("connect to postgres");
        let name = format!("quota_test_{}", Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(&url)
            .await
            .expect("connect to test database");
        let db = Db::connect_lazy(&url, 16, 1).expect("test database URL parses");
        sqlx::raw_sql("CREATE SCHEMA platform")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(V1_SQL)
            .execute(&pool)
            .await
            .expect("V1 schema");
        TestDb { pool, db, name }
    }

    async fn tenant(&self, tier: &str) -> TenantId {
        let id = Uuid::new_v4();
        let s = id.simple().to_string();
        sqlx::query(
            "INSERT INTO platform.tenants (id, slug, display_name, schema_name, tier, created_at, \
             updated_at) VALUES ($1, $2, 'Test', $3, $4, now(), now())",
        )
        .bind(id)
        .bind(format!("t{}", &s[..12]))
        .bind(format!("t_x{}", &s[..12]))
        .bind(tier)
        .execute(&self.pool)
        .await
        .expect("insert tenant");
        TenantId::from_uuid(id)
    }

    async fn drop_db(self) {
        self.pool.close().await;
        drop(self.db);
        if let Ok(admin) = PgPool::connect(ADMIN_URL).await {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

fn tier(name: &str, monthly: Option<u64>, overage: Option<i64>) -> Tier {
    Tier {
        name: name.into(),
        display_name: name.into(),
        price_cents_per_month: 9900,
        monthly_simulations: monthly,
        max_paths: 100_000,
        max_work: 500_000_000,
        burst_per_second: 1000,
        burst_size: 1000,
        max_concurrent_simulations: 2,
        max_api_keys: Some(10),
        overage_cents_per_simulation: overage,
        trial_days: None,
    }
}

fn prefix() -> String {
    format!("qt:{}:", Uuid::new_v4().simple())
}

fn config(redis_url: Option<&str>) -> QuotaConfig {
    QuotaConfig {
        redis_url: redis_url.map(str::to_owned),
        key_prefix: prefix(),
        concurrency_wait: Duration::from_millis(300),
    }
}

/// Builds `Quotas` the way a test instance needs it: fast Redis re-probing, tiers loaded.
async fn quotas(cfg: QuotaConfig, db: &Db, clock: SharedClock) -> Quotas {
    let opts = QuotaOptions {
        redis_timeouts: RedisTimeouts {
            op_timeout: Duration::from_millis(250),
            retry_interval: Duration::from_millis(200),
            log_interval: Duration::from_secs(60),
        },
        login: LoginPolicy::default(),
    };
    let tiers = crate::db::tiers::load_all(db).await.expect("tiers load");
    Quotas::with_options(
        cfg,
        opts,
        db.clone(),
        clock,
        Arc::new(TierCatalog::new(tiers)),
    )
    .await
}

fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn tiers_load_in_sort_order() {
    let db = TestDb::new().await;
    let tiers = crate::db::tiers::load_all(&db.db).await.unwrap();
    let names: Vec<_> = tiers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["trial", "starter", "professional", "enterprise"]);
    assert_eq!(tiers[0].monthly_simulations, Some(100));
    assert_eq!(tiers[0].overage_cents_per_simulation, None);
    assert_eq!(tiers[0].trial_days, Some(30));
    assert_eq!(tiers[1].overage_cents_per_simulation, Some(5));
    assert_eq!(tiers[3].monthly_simulations, None);
    assert_eq!(tiers[3].max_api_keys, None);
    assert_eq!(tiers[3].max_work, 50_000_000_000);
    db.drop_db().await;
}

/// Two instances sharing one store; 3 × quota requests from many tasks; exactly `quota` pass.
async fn exactness(redis_url: Option<&str>) {
    const QUOTA: u64 = 20;
    let db = TestDb::new().await;
    let tenant = db.tenant("starter").await;
    let cfg = config(redis_url);
    let a = Arc::new(quotas(cfg.clone(), &db.db, system_clock()).await);
    let b = Arc::new(quotas(cfg, &db.db, system_clock()).await);
    let expected_health = if redis_url.is_some() {
        QuotaHealth::RedisUp
    } else {
        QuotaHealth::RedisNotConfigured
    };
    assert_eq!(a.health().await, expected_health);
    let t = tier("small", Some(QUOTA), None);
    let mut tasks = Vec::new();
    for i in 0..(3 * QUOTA) {
        let q = if i % 2 == 0 { a.clone() } else { b.clone() };
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            q.consume_simulation(tenant, &t, true).await
        }));
    }
    let (mut ok, mut rejected) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(g) => {
                assert!(!g.overage);
                ok += 1;
            }
            Err(r) => {
                assert_eq!(r.status, 429);
                assert_eq!(r.policy, "monthly");
                assert!(
                    r.detail.contains("quota of 20 for tier small is used up"),
                    "{}",
                    r.detail
                );
                let retry = r.retry_after_secs.unwrap();
                assert!((1..=31 * 86_400).contains(&retry));
                assert_eq!(
                    header(&r.headers, "Retry-After"),
                    Some(retry.to_string().as_str())
                );
                assert!(
                    header(&r.headers, "RateLimit")
                        .unwrap()
                        .starts_with("\"monthly\";r=0;t=")
                );
                assert!(
                    header(&r.headers, "RateLimit-Policy")
                        .unwrap()
                        .starts_with("\"monthly\";q=20;w=")
                );
                assert_eq!(header(&r.headers, "X-RateLimit-Remaining"), Some("0"));
                rejected += 1;
            }
        }
    }
    assert_eq!((ok, rejected), (QUOTA, 2 * QUOTA));
    for q in [&a, &b] {
        let u = q.period_usage(tenant, &t).await;
        assert_eq!(
            (u.used, u.remaining, u.overage, u.quota),
            (QUOTA, Some(0), 0, Some(QUOTA))
        );
        assert_eq!(u.period, Utc::now().format("%Y-%m").to_string());
    }
    assert_eq!(a.health().await, expected_health);
    db.drop_db().await;
}

#[tokio::test]
async fn exact_across_instances_with_redis() {
    exactness(Some(SHARED_REDIS)).await;
}

#[tokio::test]
async fn exact_across_instances_with_postgres() {
    exactness(None).await;
}

async fn overage(redis_url: Option<&str>) {
    let db = TestDb::new().await;
    let q = quotas(config(redis_url), &db.db, system_clock()).await;
    let paid = tier("starter", Some(3), Some(5));

    // Paid tier with overage enabled: admitted beyond the quota and counted.
    let t1 = db.tenant("starter").await;
    let mut flags = Vec::new();
    for _ in 0..5 {
        flags.push(q.consume_simulation(t1, &paid, true).await.unwrap().overage);
    }
    assert_eq!(flags, [false, false, false, true, true]);
    let u = q.period_usage(t1, &paid).await;
    assert_eq!((u.used, u.overage, u.remaining), (5, 2, Some(0)));

    // Same tier, overage disabled: hard stop, hint names the way out.
    let t2 = db.tenant("starter").await;
    for _ in 0..3 {
        let g = q.consume_simulation(t2, &paid, false).await.unwrap();
        assert!(g.info.is_some());
    }
    let r = q.consume_simulation(t2, &paid, false).await.unwrap_err();
    assert_eq!((r.status, r.policy.as_str()), (429, "monthly"));
    assert!(
        r.detail
            .ends_with("; upgrade to professional or enable overage"),
        "{}",
        r.detail
    );
    assert_eq!(q.period_usage(t2, &paid).await.overage, 0);

    // Trial tier (no overage price): hard stop even if the flag is set.
    let trial = tier("trial", Some(1), None);
    let t3 = db.tenant("trial").await;
    q.consume_simulation(t3, &trial, true).await.unwrap();
    let r = q.consume_simulation(t3, &trial, true).await.unwrap_err();
    assert!(r.detail.ends_with("; upgrade to starter"), "{}", r.detail);

    // Quota 0 without overage refuses the very first simulation.
    let zero = tier("starter", Some(0), Some(5));
    let t4 = db.tenant("starter").await;
    assert!(q.consume_simulation(t4, &zero, false).await.is_err());
    assert!(q.consume_simulation(t4, &zero, true).await.unwrap().overage);

    // Unlimited tier: always admitted, counted, no monthly header.
    let unlimited = tier("enterprise", None, Some(5));
    let t5 = db.tenant("enterprise").await;
    for _ in 0..3 {
        let g = q.consume_simulation(t5, &unlimited, false).await.unwrap();
        assert!(g.info.is_none() && !g.overage);
    }
    let u = q.period_usage(t5, &unlimited).await;
    assert_eq!((u.used, u.remaining, u.quota), (3, None, None));
    db.drop_db().await;
}

#[tokio::test]
async fn overage_with_redis() {
    overage(Some(SHARED_REDIS)).await;
}

#[tokio::test]
async fn overage_with_postgres() {
    overage(None).await;
}

#[tokio::test]
async fn period_resets_on_the_first_of_next_month() {
    let db = TestDb::new().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    for url in [None, Some(SHARED_REDIS)] {
        let q = quotas(config(url), &db.db, clock.clone()).await;
        let t = tier("starter", Some(1), None);
        let tenant = db.tenant("starter").await;
        let before = q.period_usage(tenant, &t).await;
        q.consume_simulation(tenant, &t, false).await.unwrap();
        let r = q.consume_simulation(tenant, &t, false).await.unwrap_err();
        let secs = (before.resets_at - clock.now()).num_seconds() as u64;
        assert!(r.retry_after_secs.unwrap().abs_diff(secs) <= 1);
        clock.advance(chrono::Duration::days(32));
        let after = q.period_usage(tenant, &t).await;
        assert_ne!(after.period, before.period);
        assert_eq!(after.used, 0);
        q.consume_simulation(tenant, &t, false).await.unwrap();
    }
    db.drop_db().await;
}

#[tokio::test]
async fn burst_admits_burst_size_then_429_until_retry_after() {
    let db = TestDb::new().await;
    let q = quotas(config(None), &db.db, system_clock()).await;
    let mut t = tier("trial", Some(100), None);
    t.burst_per_second = 2;
    t.burst_size = 3;
    let key = Principal::ApiKey(ApiKeyId::new());
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let info = q.check_burst(&key, &t).unwrap();
        assert_eq!((info.quota, info.window_secs), (3, 2));
        remaining.push(info.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let r = q.check_burst(&key, &t).unwrap_err();
    assert_eq!((r.status, r.policy.as_str()), (429, "burst"));
    let retry = r.retry_after_secs.unwrap();
    assert_eq!(retry, 1, "one cell refills in 0.5 s, rounded up");
    assert_eq!(header(&r.headers, "Retry-After"), Some("1"));
    assert_eq!(header(&r.headers, "RateLimit"), Some("\"burst\";r=0;t=1"));
    assert_eq!(
        header(&r.headers, "RateLimit-Policy"),
        Some("\"burst\";q=3;w=2")
    );
    // Another key is independent.
    assert!(
        q.check_burst(&Principal::ApiKey(ApiKeyId::new()), &t)
            .is_ok()
    );
    // A tier change applies at once (different limiter).
    let mut bigger = t.clone();
    bigger.burst_size = 5;
    assert!(q.check_burst(&key, &bigger).is_ok());
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let info = q.check_burst(&key, &t).unwrap();
    assert!(
        info.remaining <= 1,
        "two cells refilled in ~1 s, one used: {info:?}"
    );
    // Combined headers for POST /simulations.
    let tenant = db.tenant("trial").await;
    let grant = q.consume_simulation(tenant, &t, false).await.unwrap();
    let h = grant.headers_with(&info);
    let policy = header(&h, "RateLimit-Policy").unwrap();
    assert!(
        policy.starts_with("\"burst\";q=3;w=2, \"monthly\";q=100;w="),
        "{policy}"
    );
    assert!(
        header(&h, "RateLimit")
            .unwrap()
            .contains("\"monthly\";r=99;t=")
    );
    assert_eq!(header(&h, "X-RateLimit-Limit"), Some("3"));
    db.drop_db().await;
}

/// A private redis-server on its own port, killed on drop.
struct RedisProc {
    child: Option<Child>,
    port: u16,
}

impl RedisProc {
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn start(port: u16) -> RedisProc {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(c) = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                && let Ok(Ok(mut conn)) = tokio::time::timeout(
                    Duration::from_millis(500),
                    c.get_multiplexed_async_connection(),
                )
                .await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        RedisProc {
            child: Some(child),
            port,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Consumes with a hard bound so a hanging Redis fails the test instead of hanging it.
async fn bounded_consume(q: &Quotas, tenant: TenantId, t: &Tier) -> Result<QuotaGrant, Rejection> {
    let start = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        q.consume_simulation(tenant, t, false),
    )
    .await
    .expect("consume_simulation must not hang while Redis is down");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    r
}

#[tokio::test]
async fn redis_outage_falls_back_locally_and_recovers() {
    let db = TestDb::new().await;
    let tenant = db.tenant("starter").await;
    let port = RedisProc::free_port();
    let mut server = RedisProc::start(port).await;
    let cfg = config(Some(&server.url()));
    let key = format!(
        "{}quota:{}:{}",
        cfg.key_prefix,
        tenant.as_uuid(),
        Utc::now().format("%Y-%m")
    );
    let q = quotas(cfg, &db.db, system_clock()).await;
    assert_eq!(q.health().await, QuotaHealth::RedisUp);
    let t = tier("starter", Some(10), None);
    for _ in 0..4 {
        bounded_consume(&q, tenant, &t).await.unwrap();
    }

    server.kill();
    // Still enforced: seeded with the 4 seen from Redis, 6 more pass locally, then 429.
    let mut admitted = 0;
    for _ in 0..10 {
        match bounded_consume(&q, tenant, &t).await {
            Ok(_) => admitted += 1,
            Err(r) => assert_eq!((r.status, r.policy.as_str()), (429, "monthly")),
        }
    }
    assert_eq!(admitted, 6);
    let h = q.health().await;
    assert!(h.is_degraded(), "{h:?}");
    let u = q.period_usage(tenant, &t).await;
    assert_eq!(u.used, 10);

    // Same port again (empty: no persistence). Used again without recreating Quotas.
    let server = RedisProc::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while q.health().await != QuotaHealth::RedisUp {
        assert!(
            Instant::now() < deadline,
            "Redis not used again: {:?}",
            q.health().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The 6 admitted locally were written back (as max(redis + pending, local view) = 10).
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let used: Option<i64> = redis::cmd("HGET")
        .arg(&key)
        .arg("used")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(used, Some(10));
    let r = bounded_consume(&q, tenant, &t).await.unwrap_err();
    assert_eq!(r.policy, "monthly");
    assert_eq!(q.health().await, QuotaHealth::RedisUp);
    db.drop_db().await;
}

#[tokio::test]
async fn starts_degraded_when_redis_is_down() {
    let db = TestDb::new().await;
    let tenant = db.tenant("starter").await;
    let port = RedisProc::free_port();
    let started = Instant::now();
    let q = quotas(
        config(Some(&format!("redis://127.0.0.1:{port}"))),
        &db.db,
        system_clock(),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    match q.health().await {
        QuotaHealth::RedisDegraded { last_error, .. } => assert!(!last_error.is_empty()),
        h => panic!("expected degraded, got {h:?}"),
    }
    let t = tier("starter", Some(2), None);
    bounded_consume(&q, tenant, &t).await.unwrap();
    bounded_consume(&q, tenant, &t).await.unwrap();
    assert!(bounded_consume(&q, tenant, &t).await.is_err());
    // Invalid URL: also degraded, never a panic.
    let q2 = quotas(config(Some("not a url")), &db.db, system_clock()).await;
    assert!(q2.health().await.is_degraded());
    bounded_consume(&q2, tenant, &t).await.unwrap();
    db.drop_db().await;
}

#[tokio::test]
async fn new_never_waits_for_an_unreachable_database() {
    let db = Db::connect_lazy("postgres://postgres@127.0.0.1:1/none", 1, 1).unwrap();
    let started = Instant::now();
    let tiers = Arc::new(TierCatalog::default());
    let q = Quotas::new(
        QuotaConfig::default(),
        db.clone(),
        system_clock(),
        tiers.clone(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(q.health().await, QuotaHealth::RedisNotConfigured);
    assert!(
        q.check_burst(
            &Principal::ApiKey(ApiKeyId::new()),
            &tier("t", Some(1), None)
        )
        .is_ok()
    );
    // The PostgreSQL store failing: a 503 naming the policy, never a panic.
    let r = q
        .consume_simulation(TenantId::new(), &tier("t", Some(1), None), false)
        .await
        .unwrap_err();
    assert_eq!(
        (r.status, r.policy.as_str(), r.retry_after_secs),
        (503, "monthly", Some(1))
    );
}

#[tokio::test]
async fn concurrency_cap_waits_then_rejects_and_release_admits() {
    let db = TestDb::new().await;
    let q = Arc::new(quotas(config(None), &db.db, system_clock()).await);
    let t = tier("starter", Some(100), None); // max_concurrent_simulations = 2
    let tenant = TenantId::new();
    let s1 = q.acquire_simulation_slot(tenant, &t).await.unwrap();
    let _s2 = q.acquire_simulation_slot(tenant, &t).await.unwrap();
    let started = Instant::now();
    let r = q.acquire_simulation_slot(tenant, &t).await.unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!((r.status, r.policy.as_str()), (429, "concurrency"));
    assert_eq!(r.retry_after_secs, Some(1));
    assert!(
        r.detail.contains("allows 2 concurrent simulations"),
        "{}",
        r.detail
    );
    // Another tenant is unaffected.
    let _other = q
        .acquire_simulation_slot(TenantId::new(), &t)
        .await
        .unwrap();
    // A waiter gets the slot released while it waits.
    let q2 = q.clone();
    let t2 = t.clone();
    let waiter = tokio::spawn(async move { q2.acquire_simulation_slot(tenant, &t2).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s1);
    let s3 = waiter
        .await
        .unwrap()
        .expect("released slot admits the waiter");
    assert_eq!(q.available_simulation_slots(tenant), Some(0));
    drop(s3);
    assert_eq!(q.available_simulation_slots(tenant), Some(1));
    // Raising the tier's cap applies at once.
    let mut bigger = t.clone();
    bigger.max_concurrent_simulations = 4;
    let _a = q.acquire_simulation_slot(tenant, &bigger).await.unwrap();
    let _b = q.acquire_simulation_slot(tenant, &bigger).await.unwrap();
    let _c = q.acquire_simulation_slot(tenant, &bigger).await.unwrap();
    assert_eq!(q.available_simulation_slots(tenant), Some(0));
    db.drop_db().await;
}

fn ip(n: u8) -> String {
    Ipv4Addr::new(10, 0, 0, n).to_string()
}

#[test]
fn login_throttled_per_address_and_per_account_address_pair() {
    let lt = LoginThrottle::new(LoginPolicy::default(), system_clock());
    for i in 0..20 {
        lt.check(&ip(1), &format!("user{i}@example.com")).unwrap();
    }
    let r = lt.check(&ip(1), "someone@example.com").unwrap_err();
    assert_eq!((r.status, r.policy.as_str()), (429, "login"));
    assert!(r.detail.contains("from this address"), "{}", r.detail);
    assert_eq!(
        r.retry_after_secs,
        Some(3),
        "20 per minute per address: one every 3 s"
    );
    assert_eq!(header(&r.headers, "Retry-After"), Some("3"));

    // Five attempts at one account from one address use up that pair only: the account stays
    // reachable from elsewhere (an attacker cannot throttle the owner out).
    for _ in 0..5 {
        lt.check(&ip(10), " Alice@Example.com").unwrap();
    }
    let r = lt.check(&ip(10), "alice@example.com").unwrap_err();
    assert!(
        r.detail.contains("for this account from this address"),
        "{}",
        r.detail
    );
    assert_eq!(
        r.retry_after_secs,
        Some(12),
        "5 per minute per pair: one every 12 s"
    );
    lt.check(&ip(20), "alice@example.com").unwrap();
}

#[test]
fn lockout_is_per_address_and_doubles_while_the_account_gets_a_progressive_delay() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let lt = LoginThrottle::new(LoginPolicy::default(), clock.clone());
    let acct = "bob@example.com";
    let attacker = ip(1);
    for _ in 0..4 {
        assert_eq!(lt.record_failure(&attacker, acct), None);
    }
    assert_eq!(
        lt.check(&ip(9), acct).unwrap(),
        Duration::ZERO,
        "below the delay threshold"
    );
    assert_eq!(
        lt.record_failure(&attacker, acct),
        Some(Duration::from_secs(60))
    );
    let r = lt.check(&attacker, acct).unwrap_err();
    assert_eq!((r.policy.as_str(), r.retry_after_secs), ("login", Some(60)));
    assert!(r.detail.contains("locked"), "{}", r.detail);
    // The owner, from another address, is not locked out: only slowed down.
    assert_eq!(lt.check(&ip(2), acct).unwrap(), Duration::from_millis(250));
    clock.advance(chrono::Duration::seconds(61));
    lt.check(&attacker, acct).unwrap();

    let mut locks = Vec::new();
    for _ in 0..8 {
        locks.push(lt.record_failure(&attacker, acct).unwrap().as_secs());
    }
    assert_eq!(locks, [120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    assert_eq!(
        lt.check(&attacker, acct).unwrap_err().retry_after_secs,
        Some(3600)
    );
    assert_eq!(
        lt.check(&ip(3), acct).unwrap(),
        Duration::from_secs(4),
        "capped"
    );
    // Other accounts are not affected.
    assert_eq!(
        lt.check(&ip(4), "carol@example.com").unwrap(),
        Duration::ZERO
    );

    // The owner signs in from elsewhere: the delay is gone, the attacker stays locked out.
    lt.record_success(&ip(5), acct);
    assert_eq!(lt.check(&ip(5), acct).unwrap(), Duration::ZERO);
    assert!(lt.check(&attacker, acct).is_err());
    assert_eq!(
        lt.record_failure(&ip(5), acct),
        None,
        "success reset the pair"
    );
}

/// With Redis, `persist_totals` copies the counters of the tenants seen into PostgreSQL,
/// monotonically; they survive the Redis keys (a fresh prefix stands for expired keys).
#[tokio::test]
async fn redis_totals_are_persisted_to_postgres() {
    let db = TestDb::new().await;
    let q = quotas(config(Some(SHARED_REDIS)), &db.db, system_clock()).await;
    let paid = tier("starter", Some(3), Some(5));
    let t = db.tenant("starter").await;
    for _ in 0..5 {
        q.consume_simulation(t, &paid, true).await.unwrap();
    }
    assert_eq!(q.persist_totals().await.unwrap(), 1);
    let period = q.current_period();
    let row = crate::db::quota_counters::usage(&db.db, t, period.key())
        .await
        .unwrap();
    assert_eq!(row, Some((5, 2)));
    // Nothing seen since: nothing copied.
    assert_eq!(q.persist_totals().await.unwrap(), 0);
    // The Redis keys gone (another prefix): a lower live count never lowers the durable row.
    let fresh = quotas(config(Some(SHARED_REDIS)), &db.db, system_clock()).await;
    fresh.consume_simulation(t, &paid, true).await.unwrap();
    assert_eq!(fresh.counts_in(t, &period).await.unwrap().used, 1);
    assert_eq!(fresh.persist_totals().await.unwrap(), 1);
    let row = crate::db::quota_counters::usage(&db.db, t, period.key())
        .await
        .unwrap();
    assert_eq!(row, Some((5, 2)));
    db.drop_db().await;
}
