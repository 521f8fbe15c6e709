//! Signup provisions atomically; a failure leaves nothing behind.

use crate::helpers::*;
use montecarlo_platform::config::FailPoints;
use serde_json::json;

async fn schema_exists(pool: &sqlx::PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn tenant_rows(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM platform.tenants")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn signup_creates_schema_with_history_owner_and_two_keys() {
    let app = spawn_app().await;
    let t = app.signup("acme-corp").await;
    assert_eq!(t.keys.len(), 2);
    assert_eq!(t.body["tenant"]["tier"], "trial");
    assert!(t.keys.iter().all(|k| k.starts_with("mk_live_")));
    let pool = app.pg().await;
    assert!(schema_exists(&pool, "t_acme_corp").await);
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM t_acme_corp.refinery_schema_history")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(versions, vec![1, 2, 3, 6]);
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM t_acme_corp.api_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 2);
    // Only hashes are stored, never the secret.
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(prefix || name, ',') FROM t_acme_corp.api_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!dump.contains(&t.keys[0]));
}

#[tokio::test]
async fn a_failure_halfway_through_provisioning_leaves_nothing() {
    let app = spawn_with(Options {
        fail_points: FailPoints {
            provisioning_before_commit: true,
            ..FailPoints::default()
        },
        ..Default::default()
    })
    .await;
    let resp = app
        .post(
            "/api/v1/signup",
            &[],
            json!({"organisation_name": "Doomed", "slug": "doomed", "full_name": "D", "email": "d@doomed.example", "password": "correct horse battery"}),
        )
        .await;
    resp.problem(500);
    assert!(resp.body["request_id"].is_string());
    let pool = app.pg().await;
    assert!(
        !schema_exists(&pool, "t_doomed").await,
        "schema left behind"
    );
    assert_eq!(tenant_rows(&pool).await, 0, "tenant row left behind");
    let dir: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.api_key_directory")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(dir, 0);
}

#[tokio::test]
async fn a_schema_collision_rolls_back_the_tenant_row() {
    let app = spawn_app().await;
    let pool = app.pg().await;
    sqlx::query("CREATE SCHEMA t_squatted")
        .execute(&pool)
        .await
        .unwrap();
    let resp = app
        .post(
            "/api/v1/signup",
            &[],
            json!({"organisation_name": "S", "slug": "squatted", "full_name": "S", "email": "s@s.example", "password": "correct horse battery"}),
        )
        .await;
    resp.problem(409);
    assert_eq!(tenant_rows(&pool).await, 0);
}

#[tokio::test]
async fn duplicate_slug_is_a_conflict() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let resp = app
        .post(
            "/api/v1/signup",
            &[],
            json!({"organisation_name": "Other", "slug": "acme", "full_name": "O", "email": "o@o.example", "password": "correct horse battery"}),
        )
        .await;
    assert!(resp.problem(409).contains("already taken"));
}

#[tokio::test]
async fn hostile_and_reserved_slugs_are_refused_without_creating_anything() {
    let app = spawn_app().await;
    for slug in [
        "acme\"; DROP SCHEMA platform CASCADE; --",
        "acme;drop",
        "a'b'c",
        "Acme",
        "ACME",
        "www",
        "api",
        "admin",
        "app",
        "docs",
        "static",
        "public",
        "platform",
        "pg_toast",
        "information_schema",
        "ab",
        "1abc",
        "acme_corp",
        "",
    ] {
        let resp = app
            .post(
                "/api/v1/signup",
                &[],
                json!({"organisation_name": "X", "slug": slug, "full_name": "X", "email": "x@x.example", "password": "correct horse battery"}),
            )
            .await;
        resp.problem(422);
        assert_eq!(resp.body["field"], "slug", "{slug:?}");
    }
    let pool = app.pg().await;
    assert_eq!(tenant_rows(&pool).await, 0);
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(schemas, 0);
}

#[tokio::test]
async fn restart_migrates_existing_tenants_and_keeps_them() {
    let url = fresh_database_url();
    let app = spawn_with(Options {
        database_url: Some(url.clone()),
        ..Default::default()
    })
    .await;
    let t = app.signup("acme").await;
    // A second instance on the same database sees the tenant and accepts its key.
    let second = spawn_with(Options {
        database_url: Some(url),
        ..Default::default()
    })
    .await;
    second
        .get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    let ready = second.get("/health/ready", &[]).await;
    assert_eq!(ready.ok(200)["tenant_migrations"], "current");
}
