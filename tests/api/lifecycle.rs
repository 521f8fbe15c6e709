//! Platform admins (bootstrap, password + TOTP sign-in, sessions, audit), the tenant lifecycle
//! (soft delete, restore, purge after the grace with the injected clock), the GDPR export and
//! erasure, and the call-log retention.

use crate::helpers::*;
use chrono::Duration;
use montecarlo_platform::clock::Clock;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Read;

/// Polls `check` every 100 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String, Option<String>, String, String)> {
    sqlx::query_as(
        "SELECT actor, action, target, address, user_agent FROM platform.admin_audit ORDER BY id",
    )
    .fetch_all(&app.pg().await)
    .await
    .unwrap()
}

async fn schema_exists(app: &TestApp, schema: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&app.pg().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn admins_sign_in_with_password_and_totp_and_their_sessions_end() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let first = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    // The bootstrap secret is required, and right.
    app.post("/api/v1/admin/bootstrap", &[], first.clone())
        .await
        .problem(401);
    app.post(
        "/api/v1/admin/bootstrap",
        &[(
            "authorization",
            "Bearer not-the-admin-token-0000000000000000",
        )],
        first.clone(),
    )
    .await
    .problem(401);
    let created = app
        .post(
            "/api/v1/admin/bootstrap",
            &[
                ("authorization", &bearer(ADMIN_TOKEN)),
                ("user-agent", "ops-laptop/1"),
            ],
            first.clone(),
        )
        .await;
    let created = created.ok(201).clone();
    assert!(
        created["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let secret = totp_secret_of(created["totp_secret"].as_str().unwrap());
    // Only the first: afterwards the token creates nobody.
    let again = json!({"email": "second@platform.test", "password": ADMIN_PASSWORD});
    let d = app
        .post(
            "/api/v1/admin/bootstrap",
            &[("authorization", &bearer(ADMIN_TOKEN))],
            again,
        )
        .await
        .problem(409);
    assert!(d.contains("admin create"), "{d}");

    let login = |password: &str, code: String| json!({"email": ADMIN_EMAIL, "password": password, "totp_code": code});
    let now = app.clock.now();
    let code = totp_code(&secret, now);
    let wrong_code = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let d = app
        .post(
            "/api/v1/admin/auth/login",
            &[],
            login(ADMIN_PASSWORD, wrong_code),
        )
        .await
        .problem(401);
    assert_eq!(d, "email, password or TOTP code is incorrect");
    let d2 = app
        .post(
            "/api/v1/admin/auth/login",
            &[],
            login("wrong passphrase!", code.clone()),
        )
        .await
        .problem(401);
    assert_eq!(d, d2, "a wrong password and a wrong code answer alike");
    let ok = app
        .post(
            "/api/v1/admin/auth/login",
            &[("user-agent", "ops-laptop/1")],
            login(ADMIN_PASSWORD, code.clone()),
        )
        .await;
    let token = ok.ok(200)["access_token"].as_str().unwrap().to_string();
    // A code is accepted once.
    let d = app
        .post("/api/v1/admin/auth/login", &[], login(ADMIN_PASSWORD, code))
        .await
        .problem(401);
    assert!(d.contains("already used"), "{d}");

    let auth = bearer(&token);
    app.get("/api/v1/admin/tenants", &[("authorization", &auth)])
        .await
        .ok(200);
    // A token is not a tenant credential, and a forged admin token is refused.
    app.get(
        "/api/v1/auth/me",
        &[("authorization", &auth), ("x-tenant-id", "acme")],
    )
    .await
    .problem(401);
    let logout = app
        .request(
            Method::POST,
            "/api/v1/admin/auth/logout",
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(logout.status, 204);
    let d = app
        .get("/api/v1/admin/tenants", &[("authorization", &auth)])
        .await
        .problem(401);
    assert!(d.contains("session has ended"), "{d}");

    // A new session; it expires with its token after 15 minutes.
    app.advance(Duration::seconds(30));
    let token = app
        .post(
            "/api/v1/admin/auth/login",
            &[],
            login(ADMIN_PASSWORD, totp_code(&secret, app.clock.now())),
        )
        .await
        .ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.advance(Duration::minutes(16));
    app.get(
        "/api/v1/admin/tenants",
        &[("authorization", &bearer(&token))],
    )
    .await
    .problem(401);

    let audit = audit_actions(&app).await;
    let actions: Vec<&str> = audit.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.bootstrapped",
            "admin.login_failed",
            "admin.login_failed",
            "admin.login",
            "admin.login_failed",
            "admin.logout",
            "admin.login"
        ]
    );
    let first_login = &audit[3];
    assert_eq!(first_login.0, ADMIN_EMAIL);
    assert_eq!(first_login.3, "127.0.0.1");
    assert_eq!(first_login.4, "ops-laptop/1");
}

#[tokio::test]
async fn a_deleted_tenant_is_unreachable_restorable_then_purged_after_its_grace() {
    let app = spawn_with(Options {
        env: vec![
            ("MAINTENANCE_INTERVAL_SECS", "1".into()),
            ("TENANT_DELETE_GRACE_DAYS", "30".into()),
        ],
        ..Options::default()
    })
    .await;
    let acme = app.signup("acme").await;
    let beta = app.signup("beta").await;
    let key = [("x-api-key", acme.keys[0].as_str())];
    let owner = bearer(&acme.token);
    app.get("/api/v1/auth/me", &key).await.ok(200);

    // The owner must confirm with the password; others may not delete at all.
    let d = app
        .post(
            "/api/v1/organisation/delete",
            &[("authorization", &owner)],
            json!({"password": "not my password"}),
        )
        .await
        .problem(403);
    assert!(d.contains("password"), "{d}");
    app.post(
        "/api/v1/organisation/delete",
        &key,
        json!({"password": "correct horse battery"}),
    )
    .await
    .problem(401);

    // An admin deletes it: every credential refused at once, the slug stays taken.
    let admin = app.admin_auth().await;
    let deleted = app
        .request(
            Method::POST,
            "/api/v1/admin/tenants/acme/delete",
            &[("authorization", &admin)],
            None,
        )
        .await;
    let deleted = deleted.ok(200).clone();
    assert!(deleted["purge_after"].is_string(), "{deleted}");
    app.get("/api/v1/auth/me", &key).await.problem(401);
    app.get("/api/v1/auth/me", &[("authorization", &owner)])
        .await
        .problem(401);
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", "acme")],
        json!({"email": "owner@acme.example", "password": "correct horse battery"}),
    )
    .await
    .problem(401);
    let again = json!({"organisation_name": "Acme 2", "slug": "acme", "full_name": "Someone Else",
                       "email": "else@acme2.example", "password": "correct horse battery"});
    app.post("/api/v1/signup", &[], again.clone())
        .await
        .problem(409);
    // The admin still sees it; a second deletion is a conflict; other tenants are untouched.
    let shown = app
        .get("/api/v1/admin/tenants/acme", &[("authorization", &admin)])
        .await;
    assert!(shown.ok(200)["deleted_at"].is_string());
    app.request(
        Method::POST,
        "/api/v1/admin/tenants/acme/delete",
        &[("authorization", &admin)],
        None,
    )
    .await
    .problem(409);
    app.get("/api/v1/auth/me", &[("x-api-key", &beta.keys[0])])
        .await
        .ok(200);

    // Restored: the same credentials work again.
    app.request(
        Method::POST,
        "/api/v1/admin/tenants/acme/restore",
        &[("authorization", &admin)],
        None,
    )
    .await
    .ok(200);
    app.get("/api/v1/auth/me", &key).await.ok(200);
    app.request(
        Method::POST,
        "/api/v1/admin/tenants/acme/restore",
        &[("authorization", &admin)],
        None,
    )
    .await
    .problem(409);

    // Deleted again, by its owner this time.
    let mine = app
        .post(
            "/api/v1/organisation/delete",
            &[("authorization", &owner)],
            json!({"password": "correct horse battery"}),
        )
        .await;
    let purge_after = mine.ok(200)["purge_after"].as_str().unwrap().to_string();
    let purge_after = chrono::DateTime::parse_from_rfc3339(&purge_after).unwrap();
    assert_eq!(
        purge_after.with_timezone(&chrono::Utc) - app.clock.now(),
        Duration::days(30)
    );
    app.get("/api/v1/auth/me", &key).await.problem(401);

    // Within the grace nothing is dropped (the maintenance task runs every second).
    app.advance(Duration::days(29));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(schema_exists(&app, "t_acme").await);
    // After it, the schema and the platform rows go; the slug is free again.
    app.advance(Duration::days(2));
    eventually("the purge", || async {
        !schema_exists(&app, "t_acme").await
    })
    .await;
    let pool = app.pg().await;
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM platform.tenants WHERE slug = 'acme') \
              + (SELECT count(*) FROM platform.api_key_directory d JOIN platform.tenants t ON t.id = d.tenant_id WHERE t.slug = 'acme')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rows, 0);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.api_key_directory d \
         WHERE NOT EXISTS (SELECT 1 FROM platform.tenants t WHERE t.id = d.tenant_id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    assert!(schema_exists(&app, "t_beta").await);
    // (beta's trial keys expired with its trial; its owner still signs in.)
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", "beta")],
        json!({"email": "owner@beta.example", "password": "correct horse battery"}),
    )
    .await
    .ok(200);
    // A purged tenant cannot be restored.
    let admin = app.admin_auth().await;
    app.request(
        Method::POST,
        "/api/v1/admin/tenants/acme/restore",
        &[("authorization", &admin)],
        None,
    )
    .await
    .problem(404);
    app.post("/api/v1/signup", &[], again).await.ok(201);

    let actions: Vec<(String, String)> = audit_actions(&app)
        .await
        .into_iter()
        .filter(|r| r.1.starts_with("tenant."))
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(
        actions,
        [
            (ADMIN_EMAIL.to_string(), "tenant.deleted".to_string()),
            (ADMIN_EMAIL.to_string(), "tenant.restored".to_string()),
            ("system".to_string(), "tenant.purged".to_string()),
        ]
    );
}

/// The tar entries of a gzip'd archive: (path, contents).
fn untar(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().to_string();
            let mut text = String::new();
            e.read_to_string(&mut text).unwrap();
            (path, text)
        })
        .collect()
}

#[tokio::test]
async fn the_export_holds_every_table_of_the_tenant_and_nothing_of_another() {
    let app = spawn_app().await;
    let acme = app.signup("acme").await;
    let beta = app.signup("beta").await;
    let owner = bearer(&acme.token);
    for t in [&acme, &beta] {
        app.post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0])],
            simulation_body(),
        )
        .await
        .ok(201);
    }
    let member = json!({"email": "mia@acme.example", "full_name": "Mia Member",
                        "password": "member password 1", "role": "member"});
    app.post("/api/v1/users", &[("authorization", &owner)], member)
        .await
        .ok(201);
    let mia = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "mia@acme.example", "password": "member password 1"}),
        )
        .await
        .ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Owner only.
    app.get("/api/v1/export", &[("authorization", &bearer(&mia))])
        .await
        .problem(403);
    app.get("/api/v1/export", &[("x-api-key", &acme.keys[0])])
        .await
        .problem(401);

    let resp = app
        .client
        .get(format!("{}/api/v1/export", app.base))
        .header("authorization", &owner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"acme-export-")
    );
    let bytes = resp.bytes().await.unwrap();
    let entries = untar(&bytes);
    assert_eq!(entries[0].0, "manifest.json");
    let manifest: Value = serde_json::from_str(&entries[0].1).unwrap();
    assert_eq!(manifest["tenant"]["slug"], "acme");
    assert!(
        manifest["schema_version"].as_i64().unwrap() >= 6,
        "{manifest}"
    );
    // Every table of the schema, from the catalog (refinery's history aside).
    let catalog: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 't_acme' \
         AND table_type = 'BASE TABLE' AND table_name <> 'refinery_schema_history' ORDER BY 1",
    )
    .fetch_all(&app.pg().await)
    .await
    .unwrap();
    let listed: Vec<String> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, catalog);
    let files: BTreeSet<String> = entries[1..].iter().map(|e| e.0.clone()).collect();
    let expected: BTreeSet<String> = catalog
        .iter()
        .map(|t| format!("tables/{t}.jsonl"))
        .collect();
    assert_eq!(files, expected);
    for t in manifest["tables"].as_array().unwrap() {
        let file = entries
            .iter()
            .find(|e| e.0 == t["file"].as_str().unwrap())
            .unwrap();
        let lines: Vec<Value> = file
            .1
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines.len() as u64,
            t["rows"].as_u64().unwrap(),
            "{}",
            t["name"]
        );
        for row in &lines {
            for secret in ["password_hash", "key_hash"] {
                assert!(
                    row.get(secret).is_none(),
                    "{secret} exported in {}",
                    t["name"]
                );
            }
        }
    }
    let users = &entries
        .iter()
        .find(|e| e.0 == "tables/users.jsonl")
        .unwrap()
        .1;
    assert!(users.contains("mia@acme.example") && users.contains("owner@acme.example"));
    let users_entry = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "users")
        .unwrap();
    assert_eq!(
        users_entry["redacted_columns"],
        json!(["password_hash", "totp_pending", "totp_secret"])
    );
    assert!(
        entries
            .iter()
            .any(|e| e.0 == "tables/simulations.jsonl" && e.1.lines().count() == 1)
    );
    // Nothing of the other tenant.
    let everything: String = entries.iter().map(|e| e.1.as_str()).collect();
    for foreign in [
        beta.key_ids[0].as_str(),
        beta.key_ids[1].as_str(),
        "owner@beta.example",
        "beta Org",
    ] {
        assert!(
            !everything.contains(foreign),
            "{foreign} leaked into acme's export"
        );
    }
    let beta_sim: String = sqlx::query_scalar("SELECT id::text FROM t_beta.simulations")
        .fetch_one(&app.pg().await)
        .await
        .unwrap();
    assert!(!everything.contains(&beta_sim));
}

#[tokio::test]
async fn erasure_pseudonymises_the_user_and_the_audit_rows_naming_them() {
    let app = spawn_app().await;
    let acme = app.signup("acme").await;
    let beta = app.signup("beta").await;
    let owner = bearer(&acme.token);
    let member = json!({"email": "mia@acme.example", "full_name": "Mia Member",
                        "password": "member password 1", "role": "member"});
    let mia = app
        .post("/api/v1/users", &[("authorization", &owner)], member)
        .await;
    let mia_id = mia.ok(201)["id"].as_str().unwrap().to_string();
    // An audit event that names her (the accounts helpers record such events).
    let pool = app.pg().await;
    sqlx::query(
        "INSERT INTO t_acme.audit_log (created_at, action, target, details) \
         VALUES (now(), 'login.failed', 'x', '{\"email\": \"mia@acme.example\", \"name\": \"Mia Member\", \"note\": \"mia@acme.example.org\"}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mia_token = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "mia@acme.example", "password": "member password 1"}),
        )
        .await
        .ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/users/{mia_id}/erase");
    // Not by a member, not by another tenant's owner, not the owner themselves.
    app.post(&path, &[("authorization", &bearer(&mia_token))], json!({}))
        .await
        .problem(403);
    app.post(&path, &[("authorization", &bearer(&beta.token))], json!({}))
        .await
        .problem(404);
    let owner_id = acme.body["user"]["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/users/{owner_id}/erase"),
        &[("authorization", &owner)],
        json!({}),
    )
    .await
    .problem(409);

    let erased = app
        .post(&path, &[("authorization", &owner)], json!({}))
        .await;
    let erased = erased.ok(200).clone();
    let pseudo = erased["email"].as_str().unwrap().to_string();
    assert!(
        pseudo.starts_with("erased-") && pseudo.ends_with("@erased.invalid"),
        "{erased}"
    );
    // Stable: erasing again gives the same pseudonym.
    let again = app
        .post(&path, &[("authorization", &owner)], json!({}))
        .await;
    assert_eq!(again.ok(200)["email"], json!(pseudo));
    let users = app.get("/api/v1/users", &[("authorization", &owner)]).await;
    let text = users.ok(200).to_string();
    assert!(
        !text.contains("mia@acme.example") && !text.contains("Mia Member"),
        "{text}"
    );
    // Erasure removes the user: no longer listed, their row kept under the pseudonym.
    assert!(!text.contains(&pseudo), "{text}");
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", "acme")],
        json!({"email": "mia@acme.example", "password": "member password 1"}),
    )
    .await
    .problem(401);
    let details: Value =
        sqlx::query_scalar("SELECT details FROM t_acme.audit_log WHERE action = 'login.failed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(details["email"], json!(pseudo));
    assert_eq!(details["name"], erased["full_name"]);
    // Only whole values are replaced.
    assert_eq!(details["note"], "mia@acme.example.org");
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM t_acme.audit_log WHERE action = 'user.created'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kept, 1, "the events are kept");
    let (status, live_sessions): (String, i64) = sqlx::query_as(
        "SELECT u.status, (SELECT count(*) FROM t_acme.sessions s \
           WHERE s.user_id = u.id AND s.revoked_at IS NULL) \
         FROM t_acme.users u WHERE u.email = $1",
    )
    .bind(&pseudo)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), live_sessions), ("removed", 0));
    let erasures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM t_acme.audit_log WHERE action = 'user.erased' \
         AND actor_user_id IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(erasures, 2, "each erasure is an event of the tenant's log");
}

#[tokio::test]
async fn old_call_logs_are_rolled_up_and_usage_totals_survive_the_purge() {
    let app = spawn_with(Options {
        env: vec![
            ("MAINTENANCE_INTERVAL_SECS", "1".into()),
            ("CALL_LOG_RETENTION_DAYS", "2".into()),
        ],
        ..Options::default()
    })
    .await;
    let t = app.signup_on("acme", "starter").await;
    let key = [("x-api-key", t.keys[0].as_str())];
    for _ in 0..3 {
        app.post("/api/v1/simulations", &key, simulation_body())
            .await
            .ok(201);
    }
    for _ in 0..2 {
        app.get("/api/v1/auth/me", &key).await.ok(200);
    }
    app.get(
        "/api/v1/simulations/sim_00000000-0000-0000-0000-000000000000",
        &key,
    )
    .await
    .problem(404);
    let before = app.get("/api/v1/usage?days=30", &key).await;
    let before = before.ok(200).clone();
    let day0 = before["daily"][0].clone();
    assert_eq!(day0["simulations"], 3, "{before}");
    let pool = app.pg().await;
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM t_acme.api_call_logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(logged > 0);

    app.advance(Duration::days(3));
    eventually("the roll-up", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM t_acme.api_call_logs")
            .fetch_one(&pool)
            .await
            .unwrap();
        left == 0
    })
    .await;
    let daily: i64 = sqlx::query_scalar("SELECT count(*) FROM t_acme.api_call_daily")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(daily > 0);
    let after = app.get("/api/v1/usage?days=30", &key).await;
    let after = after.ok(200).clone();
    let same_day = after["daily"][0].clone();
    assert_eq!(same_day["date"], day0["date"]);
    assert_eq!(same_day["simulations"], day0["simulations"]);
    assert_eq!(same_day["units"], day0["units"]);
    assert_eq!(same_day["errors"], day0["errors"]);
    // The first report's own call was counted after it answered.
    assert_eq!(
        same_day["calls"].as_i64().unwrap(),
        day0["calls"].as_i64().unwrap() + 1
    );
    let key_before = before["per_key"][0].clone();
    let key_after = after["per_key"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_before["key_id"])
        .unwrap()
        .clone();
    assert_eq!(key_after["simulations"], key_before["simulations"]);
    assert!(key_after["calls"].as_i64().unwrap() >= key_before["calls"].as_i64().unwrap());
}
