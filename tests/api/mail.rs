//! Mail through the transactional outbox: verification at signup delivered to a real SMTP
//! server (aiosmtpd), the message written in the same transaction as its token, retries with
//! back-off after the SMTP server was down, and the development default (the log).

use crate::helpers::*;
use chrono::{DateTime, Duration, Utc};
use montecarlo_platform::config::FailPoints;
use serde_json::json;

/// An app whose mail goes to `smtp_url`, its sender polling every 50 ms.
async fn app_with_smtp(smtp_url: &str, extra: &[(&'static str, &str)]) -> TestApp {
    let mut env = vec![
        ("SMTP_URL", smtp_url.to_string()),
        ("MAIL_POLL_MS", "50".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    spawn_with(Options {
        env,
        ..Options::default()
    })
    .await
}

#[derive(Debug)]
struct OutboxRow {
    attempts: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

type OutboxTuple = (
    i32,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);

async fn outbox(app: &TestApp) -> Vec<OutboxRow> {
    let pool = app.pg().await;
    let rows: Vec<OutboxTuple> = sqlx::query_as(
        "SELECT attempts, created_at, next_attempt_at, sent_at, failed_at, last_error \
             FROM platform.mail_outbox ORDER BY created_at, id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(
            |(attempts, created_at, next_attempt_at, sent_at, failed_at, last_error)| OutboxRow {
                attempts,
                created_at,
                next_attempt_at,
                sent_at,
                failed_at,
                last_error,
            },
        )
        .collect()
}

/// Waits (up to 10 s) until the only outbox row satisfies `done`.
async fn until_row(app: &TestApp, done: impl Fn(&OutboxRow) -> bool) -> OutboxRow {
    for _ in 0..200 {
        let mut rows = outbox(app).await;
        if rows.len() == 1 && done(&rows[0]) {
            return rows.remove(0);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "outbox never reached the state; now {:?}",
        outbox(app).await
    );
}

#[tokio::test]
async fn signup_mails_a_verification_link_over_smtp_and_verifying_unlocks_invitations() {
    let sink = MailSink::start().await;
    let app = app_with_smtp(
        &sink.url(),
        &[("PUBLIC_URL", "http://{tenant}.mc.test:8080")],
    )
    .await;
    let t = app.signup("acme").await;
    assert!(
        t.body["user"].get("email_verified_at").is_none(),
        "{}",
        t.body
    );
    let owner = bearer(&t.token);

    let mail = sink.first_to("owner@acme.example").await;
    assert!(
        mail.subject.contains("Confirm your email address"),
        "{}",
        mail.subject
    );
    assert!(
        mail.raw
            .contains("From: \"Monte Carlo\" <no-reply@mc.test>"),
        "{}",
        mail.raw
    );
    assert!(
        mail.raw
            .contains("http://acme.mc.test:8080/verify-email?token="),
        "{}",
        mail.raw
    );
    let token = mail.token("/verify-email");
    // The outbox row records the delivery, and no longer holds the link.
    let row = until_row(&app, |r| r.sent_at.is_some()).await;
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.is_none());
    let pool = app.pg().await;
    let body: String = sqlx::query_scalar("SELECT body_text FROM platform.mail_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!body.contains(&token) && body.contains("removed"), "{body}");

    // Inviting needs a verified owner.
    let invite = json!({"email": "grace@acme.example", "role": "member"});
    let d = app
        .post(
            "/api/v1/invitations",
            &[("authorization", &owner)],
            invite.clone(),
        )
        .await
        .problem(403);
    assert!(
        d.contains("not verified") && d.contains("invite members"),
        "{d}"
    );

    // A token of another tenant's name, or a malformed one, does nothing.
    app.signup("other").await;
    app.post(
        "/api/v1/auth/verify-email",
        &[("x-tenant-id", "other")],
        json!({"token": token}),
    )
    .await
    .problem(422);
    let r = app
        .post(
            "/api/v1/auth/verify-email",
            &[("x-tenant-id", "acme")],
            json!({"token": &token[1..]}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.body["field"], "token");

    let r = app
        .post(
            "/api/v1/auth/verify-email",
            &[("x-tenant-id", "acme")],
            json!({"token": token}),
        )
        .await;
    assert_eq!(r.ok(200)["email"], "owner@acme.example");
    assert!(r.body["email_verified_at"].is_string(), "{}", r.body);
    let me = app
        .get("/api/v1/auth/me", &[("authorization", &owner)])
        .await;
    assert!(me.ok(200)["user"]["email_verified_at"].is_string());
    // Single use.
    let d = app
        .post(
            "/api/v1/auth/verify-email",
            &[("x-tenant-id", "acme")],
            json!({"token": token}),
        )
        .await
        .problem(422);
    assert!(d.contains("already used"), "{d}");
    // Resending is refused once verified.
    let d = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/verify-email/resend",
            &[("authorization", &owner)],
            None,
        )
        .await
        .problem(409);
    assert!(d.contains("already verified"), "{d}");

    app.post("/api/v1/invitations", &[("authorization", &owner)], invite)
        .await
        .ok(201);
    let pool = app.pg().await;
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM t_acme.audit_log ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        actions.contains(&"email.verified".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn resending_the_verification_link_is_limited_to_one_a_minute() {
    let sink = MailSink::start().await;
    let app = app_with_smtp(&sink.url(), &[]).await;
    let t = app.signup("acme").await;
    let owner = bearer(&t.token);
    let first = sink
        .first_to("owner@acme.example")
        .await
        .token("/verify-email");
    let headers = [("authorization", owner.as_str())];
    let resend = || {
        app.request(
            reqwest::Method::POST,
            "/api/v1/auth/verify-email/resend",
            &headers,
            None,
        )
    };
    let r = resend().await;
    let d = r.problem(429);
    assert!(d.contains("less than a minute ago"), "{d}");
    assert!(r.headers.get("retry-after").is_some());
    app.advance(Duration::seconds(61));
    assert_eq!(
        resend().await.ok(202)["message"],
        "a new verification link is on its way"
    );
    let second = sink
        .nth_to("owner@acme.example", 2)
        .await
        .token("/verify-email");
    assert_ne!(first, second);
    // An API key cannot ask.
    resend_with_key(&app, &t.keys[0]).await;
    // Either link verifies; using one ends the other.
    app.post(
        "/api/v1/auth/verify-email",
        &[("x-tenant-id", "acme")],
        json!({"token": second}),
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/auth/verify-email",
        &[("x-tenant-id", "acme")],
        json!({"token": first}),
    )
    .await
    .problem(422);
}

async fn resend_with_key(app: &TestApp, key: &str) {
    app.request(
        reqwest::Method::POST,
        "/api/v1/auth/verify-email/resend",
        &[("x-api-key", key)],
        None,
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn a_failed_signup_leaves_neither_token_nor_message() {
    let app = spawn_with(Options {
        fail_points: FailPoints {
            provisioning_before_commit: true,
            ..FailPoints::default()
        },
        ..Options::default()
    })
    .await;
    let r = app
        .post(
            "/api/v1/signup",
            &[],
            json!({"organisation_name": "Doomed", "slug": "doomed", "full_name": "D",
                   "email": "d@doomed.example", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 500, "{}", r.body);
    assert!(outbox(&app).await.is_empty());
    // A weak password is refused before anything is written.
    let r = app
        .post(
            "/api/v1/signup",
            &[],
            json!({"organisation_name": "Weak", "slug": "weak", "full_name": "W",
                   "email": "w@weak.example", "password": "password123"}),
        )
        .await;
    r.problem(422);
    assert!(outbox(&app).await.is_empty());
}

#[tokio::test]
async fn the_sender_retries_with_backoff_after_the_smtp_server_was_down() {
    let port = MailSink::free_port();
    let app = app_with_smtp(
        &format!("smtp://127.0.0.1:{port}"),
        &[("MAIL_RETRY_BASE_SECS", "30")],
    )
    .await;
    app.signup("acme").await;
    // First attempt: nothing listens. Due again 30 s later.
    let row = until_row(&app, |r| r.attempts == 1 && r.last_error.is_some()).await;
    assert!(row.sent_at.is_none() && row.failed_at.is_none());
    assert_eq!(row.next_attempt_at - row.created_at, Duration::seconds(30));
    // Nothing happens until then.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(outbox(&app).await[0].attempts, 1);
    // Second attempt fails too: the delay doubles.
    app.advance(Duration::seconds(31));
    let row = until_row(&app, |r| {
        r.attempts == 2 && r.next_attempt_at - r.created_at < Duration::seconds(300)
    })
    .await;
    assert_eq!(
        row.next_attempt_at - (row.created_at + Duration::seconds(31)),
        Duration::seconds(60)
    );
    // The server comes up; the third attempt delivers.
    let sink = MailSink::start_on(port).await;
    app.advance(Duration::seconds(61));
    let mail = sink.first_to("owner@acme.example").await;
    assert!(mail.token("/verify-email").len() == 43);
    let row = until_row(&app, |r| r.sent_at.is_some()).await;
    assert_eq!(row.attempts, 3);
    assert!(row.last_error.is_none());
    assert_eq!(sink.count_to("owner@acme.example"), 1);
}

#[tokio::test]
async fn the_sender_gives_up_after_its_attempts_and_keeps_the_error() {
    let port = MailSink::free_port();
    let app = app_with_smtp(
        &format!("smtp://127.0.0.1:{port}"),
        &[("MAIL_MAX_ATTEMPTS", "2"), ("MAIL_RETRY_BASE_SECS", "10")],
    )
    .await;
    app.signup("acme").await;
    until_row(&app, |r| r.attempts == 1 && r.last_error.is_some()).await;
    app.advance(Duration::seconds(11));
    let row = until_row(&app, |r| r.failed_at.is_some()).await;
    assert_eq!(row.attempts, 2);
    assert!(row.sent_at.is_none());
    let err = row.last_error.unwrap();
    assert!(
        err.to_lowercase().contains("connect") || err.contains("refused"),
        "{err}"
    );
    // Given up: not tried again, even much later.
    app.advance(Duration::days(1));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(outbox(&app).await[0].attempts, 2);
}

#[tokio::test]
async fn without_smtp_messages_are_logged_and_marked_sent() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let row = until_row(&app, |r| r.sent_at.is_some()).await;
    assert_eq!(row.attempts, 1);
    // The link is still in the stored message (the log shows it too).
    assert_eq!(
        app.outbox_token("owner@acme.example", "/verify-email")
            .await
            .len(),
        43
    );
}
