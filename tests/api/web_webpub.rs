//! The public, account and admin pages (webpub) over HTTP: status codes, CSRF refusal, host
//! rules (apex-only and tenant-only pages answer 404 on the other host), GETs of mail links
//! that change nothing, and the admin cookie.

use crate::helpers::{TestApp, spawn_app};
use reqwest::Method;

const APEX: &str = "mc.test";

use crate::web::{cookie_value, form, get, page, post};

/// A visitor's `mc_csrf` cookie and the form token of `path` on `host`.
async fn visitor(app: &TestApp, host: &str, path: &str) -> (String, String) {
    let form = get(app, host, path, "").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let cookie = cookie_value(&form.set_cookie("mc_csrf").expect("mc_csrf cookie"));
    (format!("mc_csrf={cookie}"), form.csrf())
}

#[tokio::test]
async fn public_pages_render_on_the_apex_only() {
    let app = spawn_app().await;
    let t = app.signup("pubhost").await;
    for path in ["/pricing", "/signup", "/developers", "/admin/login"] {
        let p = get(&app, APEX, path, "").await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(
            p.header("content-security-policy")
                .contains("default-src 'none'")
        );
        let tenant = get(&app, &format!("{}.mc.test", t.slug), path, "").await;
        assert_eq!(tenant.status, 404, "{path} on a tenant host");
    }
    let pricing = get(&app, APEX, "/pricing", "").await;
    assert!(
        pricing.body.contains("$0.05 per simulation"),
        "{}",
        pricing.body
    );
    for path in [
        "/forgot-password",
        "/reset-password?token=x",
        "/verify-email?token=x",
        "/accept-invitation?token=x",
    ] {
        assert_eq!(
            get(&app, APEX, path, "").await.status,
            404,
            "{path} on the apex"
        );
    }
    let icon = get(&app, APEX, "/favicon.ico", "").await;
    assert_eq!(icon.status, 200);
    assert!(icon.header("content-type").starts_with("image/svg+xml"));
    assert!(icon.body.starts_with("<svg"));
}

#[tokio::test]
async fn signup_refuses_forgery_shows_errors_by_field_and_shows_the_keys_once() {
    let app = spawn_app().await;
    let (cookie, csrf) = visitor(&app, APEX, "/signup").await;
    let fields = |slug: &'static str, password: &'static str, csrf: String| {
        vec![
            ("organisation_name", "Webpub Org".to_string()),
            ("slug", slug.to_string()),
            ("full_name", "Owner Person".to_string()),
            ("email", format!("owner@{slug}.example")),
            ("password", password.to_string()),
            ("csrf", csrf),
        ]
    };
    let send = |f: Vec<(&'static str, String)>, cookie: String| {
        let app = &app;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, APEX, "/signup", &cookie, &f).await
        }
    };
    // Forged (another token) and missing cookie: 403, nothing created.
    let forged = send(
        fields("webpubx", "correct horse battery", "A".repeat(43)),
        cookie.clone(),
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let no_cookie = send(
        fields("webpubx", "correct horse battery", csrf.clone()),
        String::new(),
    )
    .await;
    assert_eq!(no_cookie.status, 403);
    // A cross-site post is refused even with the right token.
    let f = fields("webpubx", "correct horse battery", csrf.clone());
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cross = page(
        &app,
        Method::POST,
        APEX,
        "/signup",
        &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
        Some(form(&f)),
    )
    .await;
    assert_eq!(cross.status, 403);
    // Field errors: the domain's slug rule, the service's strength rule, a taken slug.
    let bad = send(
        fields("Admin!", "correct horse battery", csrf.clone()),
        cookie.clone(),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("id=\"slug-error\""), "{}", bad.body);
    let weak = send(fields("webpuby", "password1", csrf.clone()), cookie.clone()).await;
    assert_eq!(weak.status, 422);
    assert!(weak.body.contains("id=\"password-error\""), "{}", weak.body);
    assert!(
        !weak.body.contains("password1"),
        "the password is never echoed"
    );
    app.signup("webpubz").await;
    let taken = send(
        fields("webpubz", "correct horse battery", csrf.clone()),
        cookie.clone(),
    )
    .await;
    assert_eq!(taken.status, 409);
    assert!(taken.body.contains("id=\"slug-error\"") && taken.body.contains("already taken"));
    // Success: 201, both keys, the tenant's login link, never cached.
    let done = send(
        fields("webpubok", "correct horse battery", csrf.clone()),
        cookie.clone(),
    )
    .await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(done.body.matches("mk_live_").count(), 2, "{}", done.body);
    assert!(done.body.contains("webpubok.") && done.body.contains("/login?welcome=1"));
    assert_eq!(done.header("cache-control"), "no-store");
    // The tenant's login page greets the new owner.
    let login = get(&app, "webpubok.mc.test", "/login?welcome=1", "").await;
    assert!(login.body.contains("Check your email"), "{}", login.body);
}

#[tokio::test]
async fn verification_link_changes_nothing_on_get_and_verifies_on_post() {
    let app = spawn_app().await;
    let t = app.signup("webverify").await;
    let host = format!("{}.mc.test", t.slug);
    let email = "owner@webverify.example";
    let token = app.outbox_token(email, "/verify-email").await;
    let path = format!("/verify-email?token={token}");
    let shown = get(&app, &host, &path, "").await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains(&token));
    // The same token on another tenant's host is unknown there.
    let other = app.signup("webother").await;
    let other_host = format!("{}.mc.test", other.slug);
    let (oc, ocsrf) = visitor(&app, &other_host, &path).await;
    let wrong = post(
        &app,
        &other_host,
        "/verify-email",
        &oc,
        &[("token", &token), ("csrf", &ocsrf)],
    )
    .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    let (cookie, csrf) = visitor(&app, &host, &path).await;
    let forged = post(
        &app,
        &host,
        "/verify-email",
        &cookie,
        &[("token", &token), ("csrf", "nope")],
    )
    .await;
    assert_eq!(forged.status, 403);
    let done = post(
        &app,
        &host,
        "/verify-email",
        &cookie,
        &[("token", &token), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), "/login");
    let again = post(
        &app,
        &host,
        "/verify-email",
        &cookie,
        &[("token", &token), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(again.status, 422, "a used token");
}

#[tokio::test]
async fn forgot_answers_alike_and_reset_checks_token_and_strength() {
    let app = spawn_app().await;
    let t = app.signup("webreset").await;
    let host = format!("{}.mc.test", t.slug);
    let (cookie, csrf) = visitor(&app, &host, "/forgot-password").await;
    let known = post(
        &app,
        &host,
        "/forgot-password",
        &cookie,
        &[("email", "owner@webreset.example"), ("csrf", &csrf)],
    )
    .await;
    let unknown = post(
        &app,
        &host,
        "/forgot-password",
        &cookie,
        &[("email", "nobody@webreset.example"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!((known.status, unknown.status), (200, 200));
    assert!(known.body.contains("is on its way") && unknown.body.contains("is on its way"));
    let malformed = post(
        &app,
        &host,
        "/forgot-password",
        &cookie,
        &[("email", "nope"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(malformed.status, 422);
    assert!(malformed.body.contains("id=\"email-error\""));
    let forged = post(
        &app,
        &host,
        "/forgot-password",
        &cookie,
        &[("email", "owner@webreset.example"), ("csrf", "x")],
    )
    .await;
    assert_eq!(forged.status, 403);

    let token = app
        .outbox_token("owner@webreset.example", "/reset-password")
        .await;
    let bad = post(
        &app,
        &host,
        "/reset-password",
        &cookie,
        &[
            ("token", "not-a-token"),
            ("new_password", "violet tugboat orbit 77"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(bad.status, 422);
    let weak = post(
        &app,
        &host,
        "/reset-password",
        &cookie,
        &[
            ("token", &token),
            ("new_password", "password1"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(weak.status, 422);
    assert!(
        weak.body.contains("id=\"new_password-error\""),
        "{}",
        weak.body
    );
    let done = post(
        &app,
        &host,
        "/reset-password",
        &cookie,
        &[
            ("token", &token),
            ("new_password", "violet tugboat orbit 77"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), "/login");
}

#[tokio::test]
async fn admin_pages_need_the_admin_cookie_and_the_apex() {
    let app = spawn_app().await;
    let t = app.signup("webadmin").await;
    for path in ["/admin", "/admin/revenue"] {
        let p = get(&app, APEX, path, "").await;
        assert_eq!(
            (p.status, p.header("location").as_str()),
            (303, "/admin/login"),
            "{path}"
        );
        let forged = get(&app, APEX, path, "mc_admin=eyJhbGciOiJIUzI1NiJ9.e30.x").await;
        assert_eq!(forged.status, 303, "{path} with a forged token");
        assert!(
            forged
                .set_cookie("mc_admin")
                .is_some_and(|c| c.contains("Max-Age=0"))
        );
        assert_eq!(
            get(&app, &format!("{}.mc.test", t.slug), path, "")
                .await
                .status,
            404
        );
    }
    let (cookie, csrf) = visitor(&app, APEX, "/admin/login").await;
    let forged = post(
        &app,
        APEX,
        "/admin/login",
        &cookie,
        &[
            ("email", "a@b.example"),
            ("password", "x"),
            ("totp_code", "123456"),
            ("csrf", "x"),
        ],
    )
    .await;
    assert_eq!(forged.status, 403);
    let wrong = post(
        &app,
        APEX,
        "/admin/login",
        &cookie,
        &[
            ("email", "a@b.example"),
            ("password", "x"),
            ("totp_code", "123456"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.set_cookie("mc_admin").is_none());
}

#[tokio::test]
async fn accepting_an_invitation_creates_the_user_and_signs_them_in() {
    let app = spawn_app().await;
    let t = app.signup("webinvite").await;
    app.verify_owner(&t).await;
    let invited = app
        .post(
            "/api/v1/invitations",
            &[("authorization", &crate::helpers::bearer(&t.token))],
            serde_json::json!({"email": "guest@webinvite.example", "role": "viewer"}),
        )
        .await;
    invited.ok(201);
    let token = app
        .outbox_token("guest@webinvite.example", "/accept-invitation")
        .await;
    let host = format!("{}.mc.test", t.slug);
    let path = format!("/accept-invitation?token={token}");
    let (cookie, csrf) = visitor(&app, &host, &path).await;
    let forged = post(
        &app,
        &host,
        "/accept-invitation",
        &cookie,
        &[
            ("token", &token),
            ("full_name", "Guest"),
            ("password", "violet harbour engine sprocket"),
            ("csrf", "x"),
        ],
    )
    .await;
    assert_eq!(forged.status, 403);
    let weak = post(
        &app,
        &host,
        "/accept-invitation",
        &cookie,
        &[
            ("token", &token),
            ("full_name", "Guest"),
            ("password", "password1"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(weak.status, 422);
    assert!(weak.body.contains("id=\"password-error\""), "{}", weak.body);
    // Another tenant does not know the token.
    let other = app.signup("webinvother").await;
    let other_host = format!("{}.mc.test", other.slug);
    let (oc, ocsrf) = visitor(&app, &other_host, &path).await;
    let wrong = post(
        &app,
        &other_host,
        "/accept-invitation",
        &oc,
        &[
            ("token", &token),
            ("full_name", "Guest"),
            ("password", "violet harbour engine sprocket"),
            ("csrf", &ocsrf),
        ],
    )
    .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    let done = post(
        &app,
        &host,
        "/accept-invitation",
        &cookie,
        &[
            ("token", &token),
            ("full_name", "Guest"),
            ("password", "violet harbour engine sprocket"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), "/");
    let session = cookie_value(&done.set_cookie("mc_session").expect("signed in"));
    let home = get(&app, &host, "/", &format!("mc_session={session}")).await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Guest"), "{}", home.body);
}
