//! Passwords: change (current password required), reset by a single-use emailed token (read
//! from a real SMTP sink), no account enumeration (status, body and timing), expiry by the
//! injected clock, weak and common passwords refused with zxcvbn's reason.

use crate::helpers::*;
use chrono::Duration;
use serde_json::{Value, json};
use std::time::Instant;

const NEW_PASSWORD: &str = "quartz lantern meadow drift";

async fn login(app: &TestApp, slug: &str, email: &str, password: &str) -> Resp {
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", slug)],
        json!({"email": email, "password": password}),
    )
    .await
}

async fn audit_actions(app: &TestApp, schema: &str) -> Vec<String> {
    let pool = app.pg().await;
    let sql = format!("SELECT action FROM {schema}.audit_log ORDER BY id");
    let out = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    out
}

#[tokio::test]
async fn reset_through_the_smtp_sink_sets_a_new_password_once() {
    let sink = MailSink::start().await;
    let app = spawn_with(Options {
        env: vec![("SMTP_URL", sink.url()), ("MAIL_POLL_MS", "50".into())],
        ..Options::default()
    })
    .await;
    app.signup("acme").await;
    let r = app
        .post(
            "/api/v1/auth/password-reset",
            &[("x-tenant-id", "acme")],
            json!({"email": "Owner@Acme.example"}),
        )
        .await;
    assert!(
        r.ok(202)["message"]
            .as_str()
            .unwrap()
            .contains("if this address belongs")
    );
    // The verification message came first; the reset is the second message.
    let mail = sink.nth_to("owner@acme.example", 2).await;
    assert!(mail.subject.contains("Reset your"), "{}", mail.subject);
    let token = mail.token("/reset-password");

    // A weak password is refused with zxcvbn's reason, and the token stays usable.
    let r = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &[("x-tenant-id", "acme")],
            json!({"token": token, "new_password": "acmeacme"}),
        )
        .await;
    let d = r.problem(422);
    assert_eq!(r.body["field"], "new_password");
    assert!(d.contains("too easy to guess"), "{d}");
    app.post(
        "/api/v1/auth/password-reset/confirm",
        &[("x-tenant-id", "acme")],
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await
    .ok(200);
    login(&app, "acme", "owner@acme.example", "correct horse battery")
        .await
        .problem(401);
    login(&app, "acme", "owner@acme.example", NEW_PASSWORD)
        .await
        .ok(200);
    // Single use.
    let d = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &[("x-tenant-id", "acme")],
            json!({"token": token, "new_password": "another fine long phrase"}),
        )
        .await
        .problem(422);
    assert!(d.contains("already used"), "{d}");
    login(&app, "acme", "owner@acme.example", NEW_PASSWORD)
        .await
        .ok(200);
    // The reset proved the address.
    let pool = app.pg().await;
    let verified: bool =
        sqlx::query_scalar("SELECT email_verified_at IS NOT NULL FROM t_acme.users")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(verified);
    let actions = audit_actions(&app, "t_acme").await;
    for a in ["password_reset.requested", "password_reset.completed"] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
}

#[tokio::test]
async fn reset_requests_answer_the_same_for_unknown_addresses_and_tenants() {
    let app = spawn_with(Options {
        login_attempts_per_minute: Some(10_000),
        ..Options::default()
    })
    .await;
    app.signup("acme").await;
    let cases: [(&str, &str); 3] = [
        ("acme", "owner@acme.example"),  // exists
        ("acme", "nobody@acme.example"), // unknown address
        ("ghost", "owner@acme.example"), // unknown tenant
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut bodies: Vec<Value> = Vec::new();
    // Warm up (first argon2 hash, connections).
    for (slug, email) in cases {
        app.post(
            "/api/v1/auth/password-reset",
            &[("x-tenant-id", slug)],
            json!({"email": email}),
        )
        .await
        .ok(202);
    }
    for _ in 0..6 {
        for (i, (slug, email)) in cases.iter().enumerate() {
            let start = Instant::now();
            let r = app
                .post(
                    "/api/v1/auth/password-reset",
                    &[("x-tenant-id", slug)],
                    json!({"email": email}),
                )
                .await;
            times[i].push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r.status.as_u16(), 202, "{}", r.body);
            assert!(r.content_type.starts_with("application/json"));
            bodies.push(r.body);
        }
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    eprintln!("reset request medians, ms (known, unknown address, unknown tenant): {medians:?}");
    for m in &medians {
        assert!(*m >= 250.0, "answered before the floor: {medians:?}");
    }
    let spread = medians.iter().cloned().fold(f64::MIN, f64::max)
        - medians.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread < 50.0,
        "timing differs by {spread:.1} ms: {medians:?}"
    );
    // Only the real user got a message (one: at most one per minute), besides the verification.
    let pool = app.pg().await;
    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT recipient, kind FROM platform.mail_outbox ORDER BY created_at, id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        vec![
            (
                "owner@acme.example".to_string(),
                "email_verification".to_string()
            ),
            (
                "owner@acme.example".to_string(),
                "password_reset".to_string()
            ),
        ]
    );
    // A minute later the user can get another.
    app.advance(Duration::seconds(61));
    app.post(
        "/api/v1/auth/password-reset",
        &[("x-tenant-id", "acme")],
        json!({"email": "owner@acme.example"}),
    )
    .await
    .ok(202);
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.mail_outbox WHERE kind = 'password_reset'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn reset_tokens_expire_after_30_minutes_and_a_newer_reset_ends_older_tokens() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let ask = || {
        app.post(
            "/api/v1/auth/password-reset",
            &[("x-tenant-id", "acme")],
            json!({"email": "owner@acme.example"}),
        )
    };
    ask().await.ok(202);
    let first = app
        .outbox_token("owner@acme.example", "/reset-password")
        .await;
    app.advance(Duration::minutes(30));
    let d = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &[("x-tenant-id", "acme")],
            json!({"token": first, "new_password": NEW_PASSWORD}),
        )
        .await
        .problem(422);
    assert!(d.contains("expired"), "{d}");
    // Two fresh tokens: using one ends the other.
    ask().await.ok(202);
    let second = app
        .outbox_token("owner@acme.example", "/reset-password")
        .await;
    app.advance(Duration::minutes(2));
    ask().await.ok(202);
    let third = app
        .outbox_token("owner@acme.example", "/reset-password")
        .await;
    assert_ne!(second, third);
    app.post(
        "/api/v1/auth/password-reset/confirm",
        &[("x-tenant-id", "acme")],
        json!({"token": third, "new_password": NEW_PASSWORD}),
    )
    .await
    .ok(200);
    let d = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &[("x-tenant-id", "acme")],
            json!({"token": second, "new_password": "another fine long phrase"}),
        )
        .await
        .problem(422);
    assert!(d.contains("already used"), "{d}");
    // Unknown and malformed tokens.
    let d = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &[("x-tenant-id", "acme")],
            json!({"token": "A".repeat(42) + "E", "new_password": NEW_PASSWORD}),
        )
        .await
        .problem(422);
    assert!(d.contains("unknown"), "{d}");
    app.post(
        "/api/v1/auth/password-reset/confirm",
        &[("x-tenant-id", "acme")],
        json!({"token": "short", "new_password": NEW_PASSWORD}),
    )
    .await
    .problem(422);
    // The tenant must be named.
    app.post(
        "/api/v1/auth/password-reset",
        &[],
        json!({"email": "owner@acme.example"}),
    )
    .await
    .problem(400);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_a_strong_new_one() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let owner = bearer(&t.token);
    let headers = [("authorization", owner.as_str())];
    let change = |current: &str, new: &str| {
        app.post(
            "/api/v1/auth/password",
            &headers,
            json!({"current_password": current, "new_password": new}),
        )
    };
    let r = change("wrong password!", NEW_PASSWORD).await;
    let d = r.problem(422);
    assert_eq!(r.body["field"], "current_password");
    assert!(d.contains("incorrect"), "{d}");
    let r = change("correct horse battery", "password1").await;
    let d = r.problem(422);
    assert_eq!(r.body["field"], "new_password");
    assert!(d.contains("common password"), "{d}");
    // Built from the user's own address and organisation: refused for that reason.
    let d = change("correct horse battery", "owner@acme.example")
        .await
        .problem(422);
    assert!(d.contains("too easy to guess"), "{d}");
    let d = change("correct horse battery", "correct horse battery")
        .await
        .problem(422);
    assert!(d.contains("differ"), "{d}");
    // An API key cannot change a password.
    app.post(
        "/api/v1/auth/password",
        &[("x-api-key", &t.keys[0])],
        json!({"current_password": "correct horse battery", "new_password": NEW_PASSWORD}),
    )
    .await
    .problem(401);
    assert!(
        change("correct horse battery", NEW_PASSWORD).await.ok(200)["message"]
            .as_str()
            .unwrap()
            .contains("password changed")
    );
    login(&app, "acme", "owner@acme.example", "correct horse battery")
        .await
        .problem(401);
    login(&app, "acme", "owner@acme.example", NEW_PASSWORD)
        .await
        .ok(200);
    assert!(
        audit_actions(&app, "t_acme")
            .await
            .contains(&"password.changed".to_string())
    );
}

#[tokio::test]
async fn weak_passwords_are_refused_at_signup_with_zxcvbns_reason() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/signup",
            &[],
            json!({"organisation_name": "Acme", "slug": "acme", "full_name": "Ada Lovelace",
                   "email": "ada@acme.example", "password": "qwertyuiop"}),
        )
        .await;
    let d = r.problem(422);
    assert_eq!(r.body["field"], "password");
    assert!(d.contains("too easy to guess"), "{d}");
    assert!(
        d.to_lowercase().contains("keys") || d.contains("common"),
        "{d}"
    );
    let d = app
        .post(
            "/api/v1/signup",
            &[],
            json!({"organisation_name": "Acme", "slug": "acme", "full_name": "Ada Lovelace",
                   "email": "ada@acme.example", "password": "ada@acme.example"}),
        )
        .await
        .problem(422);
    assert!(d.contains("too easy to guess"), "{d}");
    // Nothing was provisioned.
    let pool = app.pg().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
