//! Invitations: invite by email (through a real SMTP sink), accept with the role, expiry by the
//! injected clock, revocation, replacement, and who may invite.

use crate::helpers::*;
use chrono::Duration;
use serde_json::json;

const GUEST_PASSWORD: &str = "violet harbour engine sprocket";

async fn invite(app: &TestApp, token: &str, email: &str, role: &str) -> Resp {
    app.post(
        "/api/v1/invitations",
        &[("authorization", &bearer(token))],
        json!({"email": email, "role": role}),
    )
    .await
}

async fn accept(app: &TestApp, slug: &str, token: &str, password: &str) -> Resp {
    app.post(
        "/api/v1/invitations/accept",
        &[("x-tenant-id", slug)],
        json!({"token": token, "full_name": "Grace Hopper", "password": password}),
    )
    .await
}

#[tokio::test]
async fn an_invitation_mailed_over_smtp_is_accepted_once_with_its_role() {
    let sink = MailSink::start().await;
    let app = spawn_with(Options {
        env: vec![("SMTP_URL", sink.url()), ("MAIL_POLL_MS", "50".into())],
        ..Options::default()
    })
    .await;
    let t = app.signup("acme").await;
    // The owner verifies from the message, as a person would.
    let token = sink
        .first_to("owner@acme.example")
        .await
        .token("/verify-email");
    app.post(
        "/api/v1/auth/verify-email",
        &[("x-tenant-id", "acme")],
        json!({"token": token}),
    )
    .await
    .ok(200);

    let r = invite(&app, &t.token, "Grace@Acme.example", "viewer").await;
    let inv = r.ok(201).clone();
    assert_eq!(inv["email"], "grace@acme.example");
    assert_eq!(inv["role"], "viewer");
    assert_eq!(inv["status"], "pending");
    assert!(inv["id"].as_str().unwrap().starts_with("inv_"));
    assert!(inv.get("token").is_none());
    let mail = sink.first_to("grace@acme.example").await;
    assert!(
        mail.subject
            .contains("Owner Person invited you to acme Org"),
        "{}",
        mail.subject
    );
    let token = mail.token("/accept-invitation");

    // A weak password is refused with the reason; the invitation stays usable.
    let r = accept(&app, "acme", &token, "grace hopper").await;
    let d = r.problem(422);
    assert_eq!(r.body["field"], "password");
    assert!(d.contains("too easy to guess"), "{d}");
    // Another tenant named: unknown there.
    app.signup("other").await;
    accept(&app, "other", &token, GUEST_PASSWORD)
        .await
        .problem(422);

    let user = accept(&app, "acme", &token, GUEST_PASSWORD).await;
    let user = user.ok(201).clone();
    assert_eq!(user["role"], "viewer");
    assert_eq!(user["email"], "grace@acme.example");
    assert!(user["email_verified_at"].is_string());
    let login = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "grace@acme.example", "password": GUEST_PASSWORD}),
        )
        .await;
    assert_eq!(login.ok(200)["user"]["role"], "viewer");
    // Single use.
    let d = accept(&app, "acme", &token, GUEST_PASSWORD)
        .await
        .problem(422);
    assert!(d.contains("already accepted"), "{d}");
    let list = app
        .get(
            "/api/v1/invitations",
            &[("authorization", &bearer(&t.token))],
        )
        .await;
    let list = list.ok(200).as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "accepted");
    assert_eq!(list[0]["accepted_by"], user["id"]);
    // An accepted invitation cannot be revoked.
    let id = inv["id"].as_str().unwrap();
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/invitations/{id}"),
        &[("authorization", &bearer(&t.token))],
        None,
    )
    .await
    .problem(409);
    // Inviting an existing user is a conflict.
    invite(&app, &t.token, "grace@acme.example", "member")
        .await
        .problem(409);

    let pool = app.pg().await;
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM t_acme.audit_log ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    for a in ["invitation.created", "invitation.accepted"] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
}

#[tokio::test]
async fn invitations_expire_after_seven_days_and_can_be_revoked_or_replaced() {
    let app = spawn_app().await;
    let t = app.signup_on("acme", "professional").await;
    app.verify_owner(&t).await;

    invite(&app, &t.token, "late@acme.example", "member")
        .await
        .ok(201);
    let late = app
        .outbox_token("late@acme.example", "/accept-invitation")
        .await;
    app.advance(Duration::days(7));
    let d = accept(&app, "acme", &late, GUEST_PASSWORD)
        .await
        .problem(422);
    assert!(d.contains("expired"), "{d}");
    // The owner's access token expired with the week: sign in again.
    let fresh = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "owner@acme.example", "password": "correct horse battery"}),
        )
        .await
        .ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Tenant { token: fresh, ..t };
    let owner = bearer(&t.token);
    let list = app
        .get("/api/v1/invitations", &[("authorization", &owner)])
        .await;
    assert_eq!(list.ok(200)[0]["status"], "expired");

    // Revoked: the link stops working; revoking twice is harmless.
    let inv = invite(&app, &t.token, "gone@acme.example", "admin")
        .await
        .ok(201)
        .clone();
    let gone = app
        .outbox_token("gone@acme.example", "/accept-invitation")
        .await;
    let path = format!("/api/v1/invitations/{}", inv["id"].as_str().unwrap());
    let r = app
        .request(
            reqwest::Method::DELETE,
            &path,
            &[("authorization", &owner)],
            None,
        )
        .await;
    assert_eq!(r.ok(200)["status"], "revoked");
    app.request(
        reqwest::Method::DELETE,
        &path,
        &[("authorization", &owner)],
        None,
    )
    .await
    .ok(200);
    let d = accept(&app, "acme", &gone, GUEST_PASSWORD)
        .await
        .problem(422);
    assert!(d.contains("revoked"), "{d}");

    // Inviting again replaces the open invitation: the old link stops working, the new works.
    invite(&app, &t.token, "twice@acme.example", "member")
        .await
        .ok(201);
    let old = app
        .outbox_token("twice@acme.example", "/accept-invitation")
        .await;
    invite(&app, &t.token, "twice@acme.example", "admin")
        .await
        .ok(201);
    let new = app
        .outbox_token("twice@acme.example", "/accept-invitation")
        .await;
    assert_ne!(old, new);
    accept(&app, "acme", &old, GUEST_PASSWORD)
        .await
        .problem(422);
    assert_eq!(
        accept(&app, "acme", &new, GUEST_PASSWORD).await.ok(201)["role"],
        "admin"
    );

    // Unknown ids, and another tenant's, are 404.
    let other = app.signup("other").await;
    app.verify_owner(&other).await;
    let foreign = invite(&app, &other.token, "x@other.example", "member")
        .await
        .ok(201)
        .clone();
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/invitations/{}", foreign["id"].as_str().unwrap()),
        &[("authorization", &owner)],
        None,
    )
    .await
    .problem(404);
    let pool = app.pg().await;
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM t_acme.audit_log ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        actions.contains(&"invitation.revoked".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn only_owners_and_admins_of_a_verified_owner_invite_and_a_refusal_writes_nothing() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let d = invite(&app, &t.token, "a@acme.example", "member")
        .await
        .problem(403);
    assert!(d.contains("not verified"), "{d}");
    app.verify_owner(&t).await;
    // A member and an API key may not invite; nobody may invite an owner.
    app.post(
        "/api/v1/users",
        &[("authorization", &bearer(&t.token))],
        json!({"email": "m@acme.example", "full_name": "Member", "password": "member password", "role": "member"}),
    )
    .await
    .ok(201);
    let member = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "m@acme.example", "password": "member password"}),
        )
        .await
        .ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let d = invite(&app, &member, "b@acme.example", "member")
        .await
        .problem(403);
    assert!(d.contains("owner or admin"), "{d}");
    app.post(
        "/api/v1/invitations",
        &[("x-api-key", &t.keys[0])],
        json!({"email": "b@acme.example", "role": "member"}),
    )
    .await
    .problem(401);
    invite(&app, &t.token, "b@acme.example", "owner")
        .await
        .problem(422);
    app.get(
        "/api/v1/invitations",
        &[("authorization", &bearer(&member))],
    )
    .await
    .problem(403);
    // Refused requests (including a conflict found inside the transaction) left no invitation
    // and no message.
    invite(&app, &t.token, "m@acme.example", "admin")
        .await
        .problem(409);
    let pool = app.pg().await;
    let invitations: i64 = sqlx::query_scalar("SELECT count(*) FROM t_acme.invitations")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mails: i64 =
        sqlx::query_scalar("SELECT count(*) FROM platform.mail_outbox WHERE kind = 'invitation'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((invitations, mails), (0, 0));
}
