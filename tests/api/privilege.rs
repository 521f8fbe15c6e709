//! Least privilege: the request path's role, attacked directly. Each test connects with the
//! very URL the running service's request pool uses (`TestApp::database_app_url`) and tries
//! what an attacker with SQL injection on the request path would try.

use crate::helpers::*;
use chrono::{TimeZone, Utc};
use montecarlo_platform::app::App;
use montecarlo_platform::app::directory::TenantDirectory;
use montecarlo_platform::clock::{ManualClock, SharedClock};
use montecarlo_platform::config::Settings;
use montecarlo_platform::db::Db;
use montecarlo_platform::domain::{TenantSlug, TierCatalog};
use montecarlo_platform::quota::{QuotaConfig, Quotas};
use montecarlo_platform::startup::Application;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// SQLSTATE insufficient_privilege.
const DENIED: &str = "42501";
/// SQLSTATE undefined_table.
const UNDEFINED_TABLE: &str = "42P01";

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connects")
}

/// Runs `sql` and returns its SQLSTATE; panics when it succeeds.
async fn sqlstate(conn: &mut PgConnection, sql: &'static str) -> String {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => panic!("the request role was allowed: {sql}"),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
            .unwrap_or_else(|| panic!("{sql}: not a database error: {e}")),
    }
}

async fn assert_denied(conn: &mut PgConnection, statements: &[&'static str]) {
    for sql in statements {
        assert_eq!(sqlstate(conn, sql).await, DENIED, "{sql}");
    }
}

async fn strings(conn: &mut PgConnection, sql: &'static str) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn the_request_role_is_not_the_owner_and_holds_no_power() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let mut conn = connect(&app.database_app_url).await;
    let (user, sup, createrole, createdb, replication, bypassrls): (
        String,
        bool,
        bool,
        bool,
        bool,
        bool,
    ) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(user, "montecarlo_app");
    assert!(!(sup || createrole || createdb || replication || bypassrls));
    // The service's own request connections really are this role.
    let mut owner = connect(&app.database_url).await;
    let users = strings(
        &mut owner,
        "SELECT DISTINCT usename::text FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'montecarlo-platform'",
    )
    .await;
    assert_eq!(users, set(&["montecarlo_app"]));
    // It cannot become anyone else.
    assert_denied(
        &mut conn,
        &[
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "ALTER ROLE montecarlo_app SUPERUSER",
            "CREATE ROLE mc_intruder LOGIN",
        ],
    )
    .await;
}

#[tokio::test]
async fn the_request_role_cannot_create_drop_or_alter_anything() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let mut conn = connect(&app.database_app_url).await;
    assert_denied(
        &mut conn,
        &[
            // In a tenant schema.
            "CREATE TABLE t_acme.evil (id int)",
            "CREATE VIEW t_acme.evil AS SELECT 1",
            "CREATE FUNCTION t_acme.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE INDEX evil ON t_acme.users (full_name)",
            "DROP TABLE t_acme.users",
            "DROP TABLE t_acme.simulations",
            "ALTER TABLE t_acme.users ADD COLUMN evil int",
            "ALTER TABLE t_acme.api_keys DROP CONSTRAINT api_keys_key_hash_key",
            "TRUNCATE t_acme.api_keys",
            "CREATE TRIGGER evil AFTER INSERT ON t_acme.users FOR EACH ROW EXECUTE FUNCTION platform.notify_tenant_changed()",
            "COMMENT ON TABLE t_acme.users IS 'evil'",
            "DROP SCHEMA t_acme CASCADE",
            "ALTER SCHEMA t_acme RENAME TO t_evil",
            // In platform.
            "CREATE TABLE platform.evil (id int)",
            "DROP TABLE platform.tenants",
            "DROP TABLE platform.tiers",
            "ALTER TABLE platform.tenants ADD COLUMN evil int",
            "ALTER TABLE platform.tenants DISABLE TRIGGER tenants_changed",
            "TRUNCATE platform.quota_counters",
            "CREATE OR REPLACE FUNCTION platform.notify_tenant_changed() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
            "DROP SCHEMA platform CASCADE",
            // Anywhere else.
            "CREATE SCHEMA evil",
            "CREATE TABLE public.evil (id int)",
            "CREATE TEMP TABLE evil (id int)",
        ],
    )
    .await;
}

#[tokio::test]
async fn the_request_role_cannot_read_credentials_or_rewrite_what_it_must_not() {
    let app = spawn_app().await;
    let a = app.signup("acme").await;
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &a.keys[0])],
        simulation_body(),
    )
    .await
    .ok(201);
    let mut conn = connect(&app.database_app_url).await;
    assert_denied(
        &mut conn,
        &[
            // Cluster-level secrets and the server's files and programs.
            "SELECT rolname, rolpassword FROM pg_authid",
            "SELECT * FROM pg_shadow",
            "SELECT pg_read_file('PG_VERSION')",
            "SELECT pg_ls_dir('.')",
            "COPY (SELECT 1) TO PROGRAM 'true'",
            "COPY t_acme.users FROM '/etc/passwd'",
            "SELECT lo_import('/etc/passwd')",
            // Platform rows it may read but not rewrite: re-homing a tenant or a key, cheaper
            // tiers, its migration history.
            "UPDATE platform.tenants SET schema_name = 't_other'",
            "UPDATE platform.tenants SET slug = 'other'",
            "UPDATE platform.tenants SET id = gen_random_uuid()",
            "INSERT INTO platform.tenants (id, slug, display_name, schema_name, tier, created_at, updated_at) \
             VALUES (gen_random_uuid(), 'evil', 'Evil', 't_evil', 'enterprise', now(), now())",
            "DELETE FROM platform.tenants",
            "UPDATE platform.tiers SET price_cents_per_month = 0",
            "INSERT INTO platform.tiers SELECT * FROM platform.tiers",
            "DELETE FROM platform.tiers",
            "UPDATE platform.api_key_directory SET tenant_id = tenant_id",
            "DELETE FROM platform.api_key_directory",
            "DELETE FROM platform.quota_counters",
            "DELETE FROM platform.refinery_schema_history",
            // The tenant's audit log is append-only; its migration history is not the request
            // path's business.
            "UPDATE t_acme.audit_log SET action = 'nothing happened'",
            "DELETE FROM t_acme.audit_log",
            "SELECT * FROM t_acme.refinery_schema_history",
            "DELETE FROM t_acme.refinery_schema_history",
        ],
    )
    .await;
}

#[tokio::test]
async fn the_request_role_holds_exactly_the_documented_grants() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let mut conn = connect(&app.database_app_url).await;
    let tables = strings(
        &mut conn,
        "SELECT table_schema || '.' || table_name || ':' || privilege_type \
         FROM information_schema.table_privileges \
         WHERE grantee = current_user AND table_schema IN ('platform', 't_acme', 'public')",
    )
    .await;
    let mut expected = set(&[
        "platform.tiers:SELECT",
        "platform.tenants:SELECT",
        "platform.api_key_directory:SELECT",
        "platform.api_key_directory:INSERT",
        "platform.quota_counters:SELECT",
        "platform.quota_counters:INSERT",
        "platform.refinery_schema_history:SELECT",
        // Billing (platform V4): webhook effects and the customer row; events, overage and the
        // billing audit are written once (their few updatable columns are listed below).
        "platform.billing_accounts:SELECT",
        "platform.billing_accounts:INSERT",
        "platform.billing_accounts:UPDATE",
        "platform.stripe_events:SELECT",
        "platform.stripe_events:INSERT",
        "platform.billing_overage:SELECT",
        "platform.billing_overage:INSERT",
        "platform.billing_audit:SELECT",
        "platform.billing_audit:INSERT",
        "platform.jobs:SELECT",
        "platform.jobs:INSERT",
        "platform.job_batches:SELECT",
        "platform.job_batches:INSERT",
        // Mail outbox (platform V5): written with the token it carries; only its delivery
        // columns change afterwards.
        "platform.mail_outbox:SELECT",
        "platform.mail_outbox:INSERT",
        "t_acme.audit_log:SELECT",
        "t_acme.audit_log:INSERT",
        // Platform admins (platform V6): sign-in reads the account and its sessions; the
        // admin audit is append-only.
        "platform.admins:SELECT",
        "platform.admin_sessions:SELECT",
        "platform.admin_sessions:INSERT",
        "platform.admin_audit:INSERT",
    ]);
    for table in [
        "users",
        "api_keys",
        "simulations",
        "api_call_logs",
        "idempotency_keys",
        "sessions",
        "refresh_tokens",
        "recovery_codes",
        "team_settings",
        "account_tokens",
        "invitations",
        "api_call_daily",
    ] {
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            expected.insert(format!("t_acme.{table}:{privilege}"));
        }
    }
    assert_eq!(tables, expected);
    let updatable = strings(
        &mut conn,
        "SELECT table_name || '.' || column_name FROM information_schema.column_privileges \
         WHERE grantee = current_user AND table_schema = 'platform' AND privilege_type = 'UPDATE'",
    )
    .await;
    let mut expected_updatable = strings(
        &mut conn,
        "SELECT 'billing_accounts.' || column_name FROM information_schema.columns \
         WHERE table_schema = 'platform' AND table_name = 'billing_accounts'",
    )
    .await;
    expected_updatable.extend(
        [
            "stripe_events.tenant_id",
            "stripe_events.outcome",
            "billing_overage.invoice_item_id",
        ]
        .map(String::from),
    );
    assert!(
        expected_updatable.is_subset(&updatable),
        "{expected_updatable:?} ⊄ {updatable:?}"
    );
    assert_eq!(
        updatable
            .difference(&expected_updatable)
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(&[
            "tenants.status",
            "tenants.tier",
            "tenants.trial_ends_at",
            "tenants.overage_enabled",
            "tenants.updated_at",
            "tenants.deleted_at",
            "tenants.purge_after",
            "admins.totp_last_step",
            "admin_sessions.revoked_at",
            "quota_counters.used",
            "quota_counters.overage",
            "jobs.status",
            "jobs.progress",
            "jobs.attempts",
            "jobs.not_before",
            "jobs.lease_owner",
            "jobs.lease_until",
            "jobs.cancel_requested",
            "jobs.charged_at",
            "jobs.charged_overage",
            "jobs.simulation_id",
            "jobs.problem",
            "jobs.started_at",
            "jobs.finished_at",
            "jobs.updated_at",
            "mail_outbox.attempts",
            "mail_outbox.next_attempt_at",
            "mail_outbox.sent_at",
            "mail_outbox.failed_at",
            "mail_outbox.last_error",
            "mail_outbox.body_text",
        ])
    );
    let (schema_create, database_create, database_temp, public_create): (bool, bool, bool, bool) =
        sqlx::query_as(
            "SELECT has_schema_privilege('t_acme', 'CREATE') OR has_schema_privilege('platform', 'CREATE'), \
                    has_database_privilege(current_database(), 'CREATE'), \
                    has_database_privilege(current_database(), 'TEMPORARY'), \
                    has_schema_privilege('public', 'CREATE')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // PostgreSQL 15 already revokes CREATE on `public` from PUBLIC: checked, not assumed.
    assert!(!(schema_create || database_create || database_temp || public_create));
}

/// What `TenantContext::begin` does: a transaction with a transaction-local search_path.
async fn begin_in<'c>(
    conn: &'c mut PgConnection,
    path: &str,
) -> sqlx::Transaction<'c, sqlx::Postgres> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(path)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

#[tokio::test]
async fn platform_is_not_on_the_tenant_search_path() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let mut conn = connect(&app.database_app_url).await;
    // The value `TenantContext::begin` binds with set_config(…, true).
    let path = TenantSlug::parse("acme")
        .unwrap()
        .schema_name()
        .search_path();
    assert_eq!(path, "\"t_acme\"");
    let mut tx = begin_in(&mut conn, &path).await;
    let (shown, schemas): (String, Vec<String>) =
        sqlx::query_as("SELECT current_setting('search_path'), current_schemas(false)::text[]")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(shown, "\"t_acme\"");
    assert_eq!(schemas, vec!["t_acme".to_string()]);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(users, 1);
    tx.rollback().await.unwrap();
    for sql in [
        "SELECT count(*) FROM tenants",
        "SELECT count(*) FROM tiers",
        "SELECT count(*) FROM api_key_directory",
        "SELECT count(*) FROM quota_counters",
    ] {
        let mut tx = begin_in(&mut conn, &path).await;
        let err = sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap_err();
        let code = err.as_database_error().and_then(|d| d.code()).unwrap();
        assert_eq!(code, UNDEFINED_TABLE, "{sql}: {err}");
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn signup_key_simulation_and_usage_work_as_the_request_role_and_after_a_restart() {
    let url = fresh_database_url();
    let first = spawn_with(Options {
        database_url: Some(url.clone()),
        ..Default::default()
    })
    .await;
    let t = first.signup("acme").await;
    let owner = bearer(&t.token);
    let created = first
        .post(
            "/api/v1/keys",
            &[("authorization", &owner)],
            json!({"name": "ci"}),
        )
        .await;
    let key = created.ok(201)["secret"].as_str().unwrap().to_string();
    let sim = first
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &key)],
            simulation_body(),
        )
        .await;
    let id = sim.ok(201)["id"].as_str().unwrap().to_string();
    first
        .get(&format!("/api/v1/simulations/{id}"), &[("x-api-key", &key)])
        .await
        .ok(200);
    let usage = first.get("/api/v1/usage", &[("x-api-key", &key)]).await;
    assert_eq!(usage.ok(200)["period"]["used"], 1);
    // A second instance re-runs the grants and the privilege check; a tenant created there is
    // usable at once by both.
    let second = spawn_with(Options {
        database_url: Some(url),
        ..Default::default()
    })
    .await;
    let b = second.signup("bravo").await;
    for app in [&first, &second] {
        for k in [&key, &b.keys[0]] {
            app.post(
                "/api/v1/simulations",
                &[("x-api-key", k)],
                simulation_body(),
            )
            .await
            .ok(201);
        }
    }
    let usage = second.get("/api/v1/usage", &[("x-api-key", &key)]).await;
    assert_eq!(usage.ok(200)["period"]["used"], 3);
    let ready = second.get("/health/ready", &[]).await;
    assert_eq!(ready.ok(200)["database"], "ok");
}

fn test_settings(pairs: Vec<(&'static str, String)>) -> Settings {
    Settings::from_lookup(|k| {
        pairs
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("settings")
}

fn clock() -> SharedClock {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap(),
    ))
}

/// Strong production secrets (random, distinct).
const PROD_JWT: &str = "Gm4vT9qL2xW7rB1nK8sD3fH6jZ0cY5uP-Ea_Xi";
const PROD_ADMIN: &str = "uR7kN2pW9mQ4tB8xL1vC6zF3hJ0dS5gY+Ao/Ek";

fn production_settings(owner_url: &str, app_url: &str) -> Settings {
    test_settings(vec![
        ("PRODUCTION", "true".into()),
        ("DATABASE_URL", owner_url.into()),
        ("DATABASE_APP_URL", app_url.into()),
        ("JWT_SECRET", PROD_JWT.into()),
        ("ADMIN_TOKEN", PROD_ADMIN.into()),
        ("BIND_ADDRESS", "127.0.0.1:0".into()),
    ])
}

async fn start_up_error(settings: Settings) -> String {
    match Application::build_with_clock(settings, clock()).await {
        Ok(_) => panic!("start-up accepted the settings"),
        Err(e) => e.to_string(),
    }
}

/// A database URL for `user` on the same database as `url`.
fn as_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}@{host}")
}

#[tokio::test]
async fn production_start_up_refuses_a_request_role_that_could_create_objects() {
    let app = spawn_app().await;
    app.signup("acme").await;
    // The superuser as the request role.
    let detail = start_up_error(production_settings(&app.database_url, &app.database_url)).await;
    assert!(detail.contains("SUPERUSER"), "{detail}");
    assert!(detail.contains("owns"), "{detail}");

    // A plain role that could plant objects or act as the owner through something start-up's
    // own grants do not undo (start-up revokes what was granted to the role directly): CREATE
    // granted to PUBLIC, or membership in the owner role.
    let role = format!(
        "mc_test_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut owner = connect(&app.database_url).await;
    let run = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    run(format!("CREATE ROLE {role} LOGIN"))
        .execute(&mut owner)
        .await
        .unwrap();
    let role_url = as_user(&app.database_url, &role);
    run("GRANT CREATE ON SCHEMA t_acme TO PUBLIC".into())
        .execute(&mut owner)
        .await
        .unwrap();
    let detail = start_up_error(production_settings(&app.database_url, &role_url)).await;
    assert!(detail.contains("has CREATE on schema t_acme"), "{detail}");
    run("REVOKE CREATE ON SCHEMA t_acme FROM PUBLIC".into())
        .execute(&mut owner)
        .await
        .unwrap();
    run(format!("GRANT postgres TO {role}"))
        .execute(&mut owner)
        .await
        .unwrap();
    let detail = start_up_error(production_settings(&app.database_url, &role_url)).await;
    assert!(
        detail.contains("owns (or is a member of the owner of) schema")
            && detail.contains("platform")
            && detail.contains("t_acme"),
        "{detail}"
    );
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        run(sql).execute(&mut owner).await.unwrap();
    }

    // The least-privilege role given explicitly, as in production: accepted (and not created:
    // it exists because development start-up created it).
    let ok = Application::build_with_clock(
        production_settings(&app.database_url, &app.database_app_url),
        clock(),
    )
    .await;
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
}

fn closed_port() -> u16 {
    // Bound then released: nothing listens there while the test runs.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn readiness_shows_states_not_causes_when_database_and_redis_are_unreachable() {
    let db_port = closed_port();
    let redis_port = closed_port();
    let db_url = format!("postgres://mc_owner:hunter2db@127.0.0.1:{db_port}/nowhere");
    let redis_url = format!("redis://:hunter2redis@127.0.0.1:{redis_port}");
    let settings = test_settings(vec![
        ("DATABASE_URL", db_url.clone()),
        ("JWT_SECRET", JWT_SECRET.into()),
    ]);
    let db = Db::connect_lazy(&db_url, 1, 1).unwrap();
    let clock = clock();
    let tiers = Arc::new(TierCatalog::default());
    let quotas = Quotas::new(
        QuotaConfig {
            redis_url: Some(redis_url),
            key_prefix: "ready:".into(),
            concurrency_wait: Duration::ZERO,
        },
        db.clone(),
        clock.clone(),
        tiers.clone(),
    )
    .await;
    let directory = Arc::new(TenantDirectory::empty(db.clone(), tiers));
    let app = Arc::new(App::new(
        &settings,
        db,
        directory,
        Arc::new(quotas),
        clock,
        true,
    ));
    // The readiness operation itself, served alone (independent of how the full route tree is
    // assembled); the middleware around it adds headers, never body text.
    let api = poem_openapi::OpenApiService::new(
        montecarlo_platform::http::health::HealthApi { app },
        "readiness",
        "test",
    );
    let client = poem::test::TestClient::new(api);
    let resp = client.get("/health/ready").send().await;
    resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
    let text = resp.0.into_body().into_string().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({
            "status": "unavailable",
            "database": "unavailable",
            "platform_migrations": "unknown",
            "tenant_migrations": "current",
            "quota_store": "degraded",
        }),
        "{text}"
    );
    for leak in [
        "hunter2",
        "127.0.0.1",
        &db_port.to_string(),
        &redis_port.to_string(),
        "refused",
        "error",
        "mc_owner",
        "nowhere",
    ] {
        assert!(!text.contains(leak), "readiness shows {leak:?}: {text}");
    }
}
