//! The operator CLI, run as a real process against the test database: `admin create`,
//! `tenants …`, `migrate` (per-schema failures, resumable), `usage report`.

use crate::helpers::*;
use montecarlo_platform::clock::Clock;
use serde_json::{Value, json};
use std::process::Command;

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cli(app: &TestApp, args: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_montecarlo-platform"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("USER", "opsperson")
        .env_remove("ADMIN_PASSWORD")
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[track_caller]
fn ok(r: Ran) -> String {
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    r.stdout
}

async fn until_status(app: &TestApp, key: &str, status: u16) {
    for _ in 0..100 {
        if app
            .get("/api/v1/auth/me", &[("x-api-key", key)])
            .await
            .status
            == status
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the key never answered {status}");
}

#[tokio::test]
async fn the_cli_creates_admins_and_manages_tenants() {
    let app = spawn_app().await;
    let acme = app.signup("acme").await;
    app.signup("beta").await;

    // admin create: the TOTP enrolment is printed once; the new admin signs in over HTTP.
    let out = ok(cli(
        &app,
        &[
            "admin",
            "create",
            "--email",
            "cli@ops.test",
            "--password",
            "cli admin passphrase",
        ],
    ));
    let uri = out
        .lines()
        .find_map(|l| l.strip_prefix("otpauth URI (shown once): "))
        .unwrap_or_else(|| panic!("{out}"));
    let secret = totp_secret_of(uri);
    let signed_in = app
        .post(
            "/api/v1/admin/auth/login",
            &[],
            json!({"email": "cli@ops.test", "password": "cli admin passphrase",
                   "totp_code": totp_code(&secret, app.clock.now())}),
        )
        .await;
    let admin = bearer(signed_in.ok(200)["access_token"].as_str().unwrap());
    app.get("/api/v1/admin/tenants", &[("authorization", &admin)])
        .await
        .ok(200);
    let dup = cli(
        &app,
        &[
            "admin",
            "create",
            "--email",
            "cli@ops.test",
            "--password",
            "cli admin passphrase",
        ],
    );
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);
    let weak = cli(
        &app,
        &[
            "admin",
            "create",
            "--email",
            "x@ops.test",
            "--password",
            "short",
        ],
    );
    assert_eq!(weak.code, 1, "{}", weak.stdout);
    assert!(ok(cli(&app, &["admin", "list"])).contains("cli@ops.test"));

    // tenants list / show
    let list = ok(cli(&app, &["tenants", "list"]));
    assert!(
        list.contains("acme\tactive\ttrial") && list.contains("beta\tactive"),
        "{list}"
    );
    let shown: Value = serde_json::from_str(&ok(cli(&app, &["tenants", "show", "acme"]))).unwrap();
    assert_eq!(shown["schema"], "t_acme");
    let missing = cli(&app, &["tenants", "show", "nobody"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no tenant named"),
        "{}",
        missing.stderr
    );

    // suspend / resume / delete / restore reach the running service (NOTIFY).
    let key = acme.keys[0].as_str();
    ok(cli(&app, &["tenants", "suspend", "acme"]));
    until_status(&app, key, 403).await;
    ok(cli(&app, &["tenants", "resume", "acme"]));
    until_status(&app, key, 200).await;
    assert!(ok(cli(&app, &["tenants", "delete", "acme"])).contains("restorable until"));
    until_status(&app, key, 401).await;
    assert!(ok(cli(&app, &["tenants", "list"])).contains("acme\tdeleted"));
    ok(cli(&app, &["tenants", "restore", "acme"]));
    until_status(&app, key, 200).await;
    let nothing = ok(cli(&app, &["tenants", "purge"]));
    assert!(nothing.starts_with("purged 0 tenant(s)"), "{nothing}");

    // export to a file
    let dir = std::env::temp_dir().join(format!("mc-export-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("acme.tar.gz");
    ok(cli(
        &app,
        &[
            "tenants",
            "export",
            "acme",
            "--output",
            file.to_str().unwrap(),
        ],
    ));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&file).unwrap(),
    ));
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(names[0], "manifest.json");
    assert!(
        names.contains(&"tables/users.jsonl".to_string()),
        "{names:?}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // erase-user
    // The last active owner cannot be erased; another user can.
    let owner_id = acme.body["user"]["id"].as_str().unwrap();
    let refused = cli(&app, &["tenants", "erase-user", "acme", owner_id]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("last active owner"),
        "{}",
        refused.stderr
    );
    let member = app
        .post(
            "/api/v1/users",
            &[("authorization", &bearer(&acme.token))],
            json!({"email": "mia@acme.example", "full_name": "Mia Member",
                   "password": "team mate password", "role": "member"}),
        )
        .await;
    let member_id = member.ok(201)["id"].as_str().unwrap().to_string();
    let erased = ok(cli(&app, &["tenants", "erase-user", "acme", &member_id]));
    assert!(erased.contains("erased-"), "{erased}");

    // usage report
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &app.signup("gamma").await.keys[0])],
        simulation_body(),
    )
    .await
    .ok(201);
    // The service writes its call counts every 5 s; the report reads what is written.
    let mut report = String::new();
    for _ in 0..40 {
        report = ok(cli(&app, &["usage", "report", "--tenant", "gamma"]));
        let row = report.lines().nth(1).unwrap_or_else(|| panic!("{report}"));
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols[0], "gamma");
        if cols[3] == "1" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        report.lines().nth(1).unwrap().split('\t').nth(3) == Some("1"),
        "{report}"
    );

    // Every CLI action is audited with the operator.
    let actors: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, action FROM platform.admin_audit WHERE actor LIKE 'cli:%' ORDER BY id",
    )
    .fetch_all(&app.pg().await)
    .await
    .unwrap();
    let actions: Vec<&str> = actors.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.created",
            "tenant.updated",
            "tenant.updated",
            "tenant.deleted",
            "tenant.restored",
            "tenant.exported",
            "user.erased"
        ]
    );
    assert!(actors.iter().all(|a| a.0 == "cli:opsperson"));
}

#[tokio::test]
async fn migrate_reports_each_failing_schema_and_resumes() {
    let app = spawn_app().await;
    app.signup("acme").await;
    app.signup("beta").await;
    let out = ok(cli(&app, &["migrate"]));
    assert!(
        out.contains("2 tenant schema(s): 0 migration(s) applied, 0 failed"),
        "{out}"
    );
    // Break beta: its history forgets migrations V6 and later while V6's table stays, so
    // re-applying V6 fails.
    let pool = app.pg().await;
    sqlx::query("DELETE FROM t_beta.refinery_schema_history WHERE version >= 6")
        .execute(&pool)
        .await
        .unwrap();
    let failed = cli(&app, &["migrate", "--concurrency", "2"]);
    assert_eq!(failed.code, 1, "{}", failed.stdout);
    assert!(
        failed
            .stdout
            .contains("2 tenant schema(s): 0 migration(s) applied, 1 failed"),
        "{}",
        failed.stdout
    );
    assert!(failed.stderr.contains("FAILED beta"), "{}", failed.stderr);
    assert!(!failed.stderr.contains("FAILED acme"), "{}", failed.stderr);
    // Fixed (the table dropped), the next run applies only what is missing.
    sqlx::query("DROP TABLE t_beta.api_call_daily")
        .execute(&pool)
        .await
        .unwrap();
    let out = ok(cli(&app, &["migrate"]));
    assert!(
        out.contains("2 tenant schema(s): 2 migration(s) applied, 0 failed"),
        "{out}"
    );
}

#[tokio::test]
async fn the_old_commands_still_work() {
    let out = Command::new(env!("CARGO_BIN_EXE_montecarlo-platform"))
        .args(["openapi", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_montecarlo-platform"))
        .args(["tenants", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "clap usage error");
}
