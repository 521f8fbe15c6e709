//! Sessions: refresh rotation and reuse detection, sliding expiry, logout and revocation (also
//! seen by a second instance), cross-tenant refusal, two-factor sign-in.

use crate::helpers::*;
use chrono::Duration;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

async fn fast_app() -> TestApp {
    spawn_with(Options {
        login_attempts_per_minute: Some(1000),
        ..Options::default()
    })
    .await
}

async fn refresh(app: &TestApp, slug: &str, token: &str) -> Resp {
    app.post(
        "/api/v1/auth/refresh",
        &[("x-tenant-id", slug)],
        json!({"refresh_token": token}),
    )
    .await
}

async fn me(app: &TestApp, access: &str) -> Resp {
    app.get("/api/v1/auth/me", &[("authorization", &bearer(access))])
        .await
}

async fn audit(app: &TestApp, access: &str, query: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/v1/audit?{query}"),
            &[("authorization", &bearer(access))],
        )
        .await;
    r.ok(200)["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    assert!(
        t.body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("mrt_")
    );
    let first = app.login("acme", "owner@acme.example", PW).await;
    assert_eq!(first.refresh.len(), 4 + 43, "256-bit token");
    let second = session_of(refresh(&app, "acme", &first.refresh).await.ok(200));
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(second.id, first.id, "same session (family)");
    me(&app, &second.access).await.ok(200);
    // The rotated token presented again: the whole family is revoked.
    let d = refresh(&app, "acme", &first.refresh).await.problem(401);
    assert!(d.contains("already used"), "{d}");
    let d = refresh(&app, "acme", &second.refresh).await.problem(401);
    assert!(d.contains("ended"), "{d}");
    me(&app, &second.access).await.problem(401);
    me(&app, &first.access).await.problem(401);
    // Another session of the same user is untouched, and the reuse is audited.
    let rows = audit(&app, &t.token, "action=session.refresh_reused").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["target"], json!(first.id));
    assert_eq!(rows[0]["ip"], "127.0.0.1");
    // Only the token's hash is stored.
    let pg = app.pg().await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM t_acme.refresh_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&second.refresh)
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(stored, 1);
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM t_acme.refresh_tokens WHERE position(convert_to($1, 'UTF8') in token_hash) > 0",
    )
    .bind(&second.refresh[4..20])
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(plain, 0);
}

#[tokio::test]
async fn sessions_slide_for_thirty_days_with_the_injected_clock() {
    let app = fast_app().await;
    app.signup_on("acme", "enterprise").await;
    let mut s = app.login("acme", "owner@acme.example", PW).await;
    for _ in 0..3 {
        app.advance(Duration::days(29));
        s = session_of(refresh(&app, "acme", &s.refresh).await.ok(200));
    }
    // 87 days after sign-in the session still lives; 30 idle days end it.
    app.advance(Duration::days(30) + Duration::seconds(1));
    let d = refresh(&app, "acme", &s.refresh).await.problem(401);
    assert!(d.contains("expired"), "{d}");
    // An expired access token is refused too (15 minutes).
    me(&app, &s.access).await.problem(401);
}

#[tokio::test]
async fn logout_list_and_revoke_sessions() {
    let app = fast_app().await;
    app.signup_on("acme", "enterprise").await;
    let a = app.login("acme", "owner@acme.example", PW).await;
    let b = app.login("acme", "owner@acme.example", PW).await;
    let list = app
        .get(
            "/api/v1/auth/sessions",
            &[("authorization", &bearer(&a.access))],
        )
        .await;
    let items = list.ok(200).as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "signup, a and b: {items:?}");
    let mine: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], json!(a.id));
    assert_eq!(mine[0]["user_agent"], "tests/1.0");
    assert_eq!(mine[0]["ip"], "127.0.0.1");
    // Revoke b from a: b's access and refresh tokens stop at once.
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/auth/sessions/{}", b.id),
            &[("authorization", &bearer(&a.access))],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    me(&app, &b.access).await.problem(401);
    refresh(&app, "acme", &b.refresh).await.problem(401);
    // Logout ends a's session.
    let r = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            &[("authorization", &bearer(&a.access))],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    me(&app, &a.access).await.problem(401);
    refresh(&app, "acme", &a.refresh).await.problem(401);
    let c = app.login("acme", "owner@acme.example", PW).await;
    let rows = audit(&app, &c.access, "").await;
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"session.logout"), "{actions:?}");
    assert!(actions.contains(&"session.revoked"), "{actions:?}");
    assert!(actions.contains(&"auth.login_succeeded"), "{actions:?}");
}

#[tokio::test]
async fn refresh_tokens_and_sessions_of_another_tenant_are_refused() {
    let app = fast_app().await;
    app.signup_on("acme", "enterprise").await;
    app.signup_on("bravo", "enterprise").await;
    let a = app.login("acme", "owner@acme.example", PW).await;
    let b = app.login("bravo", "owner@bravo.example", PW).await;
    refresh(&app, "bravo", &a.refresh).await.problem(401);
    // Through the subdomain as well.
    app.post(
        "/api/v1/auth/refresh",
        &[("host", "bravo.mc.test")],
        json!({"refresh_token": a.refresh}),
    )
    .await
    .problem(401);
    // No tenant named: 400; malformed token: 401.
    app.post(
        "/api/v1/auth/refresh",
        &[],
        json!({"refresh_token": a.refresh}),
    )
    .await
    .problem(400);
    refresh(&app, "acme", "mrt_short").await.problem(401);
    // b cannot see or revoke a's session.
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/auth/sessions/{}", a.id),
            &[("authorization", &bearer(&b.access))],
            None,
        )
        .await;
    r.problem(404);
    me(&app, &a.access).await.ok(200);
    // A's token still works for a after all that, and only in acme.
    refresh(&app, "acme", &a.refresh).await.ok(200);
}

#[tokio::test]
async fn logout_deactivation_and_role_change_reach_a_second_instance_within_a_second() {
    let one = fast_app().await;
    let two = spawn_with(Options {
        database_url: Some(one.database_url.clone()),
        login_attempts_per_minute: Some(1000),
        ..Options::default()
    })
    .await;
    let t = one.signup("acme").await;
    let (_, leaving) = one
        .add_user("acme", &t.token, "leaving@acme.example", "member")
        .await;
    let (member_id, member) = one
        .add_user("acme", &t.token, "member@acme.example", "member")
        .await;
    let (admin_id, admin) = one
        .add_user("acme", &t.token, "admin@acme.example", "admin")
        .await;
    // Instance two has seen (and cached) every session.
    me(&two, &leaving.access).await.ok(200);
    me(&two, &member.access).await.ok(200);
    two.get("/api/v1/keys", &[("authorization", &bearer(&admin.access))])
        .await
        .ok(200);
    // Logout on one → refused on two.
    let r = one
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            &[("authorization", &bearer(&leaving.access))],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let took = eventually(std::time::Duration::from_secs(1), || async {
        me(&two, &leaving.access).await.status == 401
    })
    .await;
    println!("logout seen by the second instance after {took:?}");
    // Deactivation on one → refused on two.
    one.request(
        reqwest::Method::PATCH,
        &format!("/api/v1/users/{member_id}"),
        &[("authorization", &bearer(&t.token))],
        Some(json!({"active": false})),
    )
    .await
    .ok(200);
    let took = eventually(std::time::Duration::from_secs(1), || async {
        me(&two, &member.access).await.status == 401
    })
    .await;
    println!("deactivation seen by the second instance after {took:?}");
    // Role change on one → the admin-turned-viewer loses key management on two.
    one.request(
        reqwest::Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        &[("authorization", &bearer(&t.token))],
        Some(json!({"role": "viewer"})),
    )
    .await
    .ok(200);
    eventually(std::time::Duration::from_secs(1), || async {
        two.get("/api/v1/keys", &[("authorization", &bearer(&admin.access))])
            .await
            .status
            == 403
    })
    .await;
}

fn totp_code(secret: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret).unwrap();
    let t = totp_rs::Builder::new()
        .with_secret(bytes)
        .with_account_name("t".to_string())
        .build()
        .unwrap();
    t.generate(at.timestamp() as u64).to_string()
}

async fn enrol(app: &TestApp, access: &str) -> (String, Vec<String>) {
    let auth = bearer(access);
    let setup = app
        .post(
            "/api/v1/auth/2fa/setup",
            &[("authorization", &auth)],
            json!({}),
        )
        .await;
    let secret = setup.ok(200)["secret"].as_str().unwrap().to_string();
    assert!(
        setup.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let wrong = app
        .post(
            "/api/v1/auth/2fa/enable",
            &[("authorization", &auth)],
            json!({"code": "000000"}),
        )
        .await;
    if totp_code(&secret, app.clock_now()) != "000000" {
        wrong.problem(422);
    }
    let code = totp_code(&secret, app.clock_now());
    let enabled = app
        .post(
            "/api/v1/auth/2fa/enable",
            &[("authorization", &auth)],
            json!({"code": code}),
        )
        .await;
    let codes: Vec<String> = enabled.ok(200)["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn login_otp(app: &TestApp, otp: Option<&str>) -> Resp {
    let mut body = json!({"email": "owner@acme.example", "password": PW});
    if let Some(o) = otp {
        body["otp"] = json!(o);
    }
    app.post("/api/v1/auth/login", &[("x-tenant-id", "acme")], body)
        .await
}

#[tokio::test]
async fn two_factor_sign_in_with_a_code_and_a_recovery_code() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let (secret, codes) = enrol(&app, &t.token).await;
    // Without a code: 401 with its own problem type (only after the right password).
    let r = login_otp(&app, None).await;
    r.problem(401);
    assert!(
        r.body["type"]
            .as_str()
            .unwrap()
            .ends_with("/two-factor-required")
    );
    let r = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "owner@acme.example", "password": "wrong password"}),
        )
        .await;
    assert!(r.body["type"].as_str().unwrap().ends_with("/unauthorized"));
    // The code used to enable is spent; the next step's code works once.
    app.advance(Duration::seconds(30));
    let code = totp_code(&secret, app.clock_now());
    let wrong = if code == "123456" { "654321" } else { "123456" };
    login_otp(&app, Some(wrong)).await.problem(401);
    login_otp(&app, Some(&code)).await.ok(200);
    let d = login_otp(&app, Some(&code)).await.problem(401);
    assert!(d.contains("already used"), "{d}");
    // A recovery code works once (any case, with or without dashes).
    let s = session_of(
        login_otp(&app, Some(&codes[3].to_lowercase()))
            .await
            .ok(200),
    );
    login_otp(&app, Some(&codes[3])).await.problem(401);
    let rows = audit(&app, &s.access, "action=two_factor.recovery_code_used").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["details"]["codes_left"], 9);
    assert_eq!(
        audit(&app, &s.access, "action=two_factor.enabled")
            .await
            .len(),
        1
    );
    let failed = audit(&app, &s.access, "action=auth.login_failed").await;
    assert!(
        failed
            .iter()
            .any(|r| r["details"]["factor"] == "two_factor")
    );
    // Disabling needs a proof.
    let auth = bearer(&s.access);
    app.post(
        "/api/v1/auth/2fa/disable",
        &[("authorization", &auth)],
        json!({}),
    )
    .await
    .problem(422);
    app.post(
        "/api/v1/auth/2fa/disable",
        &[("authorization", &auth)],
        json!({"password": "not my password"}),
    )
    .await
    .problem(401);
    let r = app
        .post(
            "/api/v1/auth/2fa/disable",
            &[("authorization", &auth)],
            json!({"password": PW}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    login_otp(&app, None).await.ok(200);
    assert_eq!(
        audit(&app, &s.access, "action=two_factor.disabled")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn an_owner_can_require_two_factor_for_the_team() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let owner = bearer(&t.token);
    let put = |v: bool, auth: String| {
        let app = &app;
        async move {
            app.request(
                reqwest::Method::PUT,
                "/api/v1/team/security",
                &[("authorization", &auth)],
                Some(json!({"require_two_factor": v})),
            )
            .await
        }
    };
    put(true, owner.clone()).await.problem(409);
    let (_, member) = app
        .add_user("acme", &t.token, "m@acme.example", "admin")
        .await;
    put(true, bearer(&member.access)).await.problem(403);
    enrol(&app, &t.token).await;
    put(true, owner.clone()).await.ok(200);
    // The member is asked to enrol on every operation but enrolment, sessions and logout.
    let r = app
        .get(
            "/api/v1/simulations",
            &[("authorization", &bearer(&member.access))],
        )
        .await;
    r.problem(403);
    assert!(
        r.body["type"]
            .as_str()
            .unwrap()
            .ends_with("/two-factor-enrolment-required")
    );
    let s = app
        .login("acme", "m@acme.example", "team mate password")
        .await;
    assert_eq!(s.body["two_factor_enrolment_required"], true);
    app.get(
        "/api/v1/auth/sessions",
        &[("authorization", &bearer(&s.access))],
    )
    .await
    .ok(200);
    enrol(&app, &s.access).await;
    app.get(
        "/api/v1/simulations",
        &[("authorization", &bearer(&s.access))],
    )
    .await
    .ok(200);
    // While required, nobody disables it.
    app.advance(Duration::seconds(30));
    app.post(
        "/api/v1/auth/2fa/disable",
        &[("authorization", &bearer(&s.access))],
        json!({"password": "team mate password"}),
    )
    .await
    .problem(403);
}
