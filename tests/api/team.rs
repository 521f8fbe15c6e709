//! Team: viewer limits, role rules and last-owner protection, removal (keys refused at once),
//! ownership transfer, and the audit log with its filters.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn fast_app() -> TestApp {
    spawn_with(Options {
        login_attempts_per_minute: Some(1000),
        ..Options::default()
    })
    .await
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    access: &str,
    body: Option<Value>,
) -> Resp {
    app.request(method, path, &[("authorization", &bearer(access))], body)
        .await
}

#[tokio::test]
async fn a_viewer_reads_but_writes_nothing() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    // A simulation and a job to read.
    let sim = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0])],
            simulation_body(),
        )
        .await;
    let sim_id = sim.ok(201)["id"].as_str().unwrap().to_string();
    let (member_id, _) = app
        .add_user("acme", &t.token, "member@acme.example", "member")
        .await;
    let (viewer_id, v) = app
        .add_user("acme", &t.token, "viewer@acme.example", "viewer")
        .await;
    assert_eq!(v.body["user"]["role"], "viewer");
    let a = v.access.as_str();
    for path in [
        "/api/v1/simulations".to_string(),
        format!("/api/v1/simulations/{sim_id}"),
        "/api/v1/jobs".to_string(),
        "/api/v1/usage".to_string(),
        "/api/v1/users".to_string(),
        "/api/v1/auth/me".to_string(),
    ] {
        call(&app, Method::GET, &path, a, None).await.ok(200);
    }
    let job = "job_01a1fe6e-2f4c-7b0a-9c1e-5d2f8a7b6c40";
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/simulations".into(),
            Some(simulation_body()),
        ),
        (
            Method::POST,
            "/api/v1/simulations/batch".into(),
            Some(json!({"items": [simulation_body()]})),
        ),
        (Method::DELETE, format!("/api/v1/jobs/{job}"), None),
        (Method::GET, "/api/v1/keys".into(), None),
        (
            Method::POST,
            "/api/v1/keys".into(),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/keys/{}", t.key_ids[0]),
            None,
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(
                json!({"email": "x@acme.example", "full_name": "X", "password": "long enough pw", "role": "viewer"}),
            ),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{member_id}"),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{viewer_id}"),
            Some(json!({"role": "member"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{member_id}"), None),
        (
            Method::POST,
            format!("/api/v1/users/{member_id}/transfer-ownership"),
            None,
        ),
        (Method::GET, "/api/v1/audit".into(), None),
        (
            Method::PUT,
            "/api/v1/team/security".into(),
            Some(json!({"require_two_factor": false})),
        ),
    ];
    for (method, path, body) in writes {
        let r = call(&app, method.clone(), &path, a, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    // Nothing was written.
    let sims = call(&app, Method::GET, "/api/v1/simulations", a, None).await;
    assert_eq!(sims.ok(200)["items"].as_array().unwrap().len(), 1);
    let keys = call(&app, Method::GET, "/api/v1/keys", &t.token, None).await;
    assert!(
        keys.ok(200)
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["status"] == "active")
    );
}

#[tokio::test]
async fn role_rules_and_the_last_owner() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let me = call(&app, Method::GET, "/api/v1/auth/me", &t.token, None).await;
    let owner_id = me.ok(200)["user"]["id"].as_str().unwrap().to_string();
    let owner_path = format!("/api/v1/users/{owner_id}");
    // The last active owner cannot be demoted, deactivated or removed.
    for body in [json!({"role": "admin"}), json!({"active": false})] {
        let d = call(&app, Method::PATCH, &owner_path, &t.token, Some(body))
            .await
            .problem(409);
        assert!(
            d.contains("last active owner") || d.contains("cannot deactivate yourself"),
            "{d}"
        );
    }
    call(&app, Method::DELETE, &owner_path, &t.token, None)
        .await
        .problem(409);
    call(&app, Method::PATCH, &owner_path, &t.token, Some(json!({})))
        .await
        .problem(422);
    // Admins cannot touch owners nor raise anyone above themselves.
    let (admin_id, admin) = app
        .add_user("acme", &t.token, "admin@acme.example", "admin")
        .await;
    let (member_id, _) = app
        .add_user("acme", &admin.access, "m@acme.example", "member")
        .await;
    let member_path = format!("/api/v1/users/{member_id}");
    // Nobody deactivates or removes themselves (a lockout a colleague must undo).
    let admin_path = format!("/api/v1/users/{admin_id}");
    let d = call(&app, Method::DELETE, &admin_path, &admin.access, None)
        .await
        .problem(409);
    assert!(d.contains("cannot remove yourself"), "{d}");
    call(
        &app,
        Method::PATCH,
        &admin_path,
        &admin.access,
        Some(json!({"active": false})),
    )
    .await
    .problem(409);
    call(
        &app,
        Method::PATCH,
        &owner_path,
        &admin.access,
        Some(json!({"active": false})),
    )
    .await
    .problem(403);
    call(&app, Method::DELETE, &owner_path, &admin.access, None)
        .await
        .problem(403);
    call(
        &app,
        Method::PATCH,
        &member_path,
        &admin.access,
        Some(json!({"role": "owner"})),
    )
    .await
    .problem(403);
    call(
        &app,
        Method::POST,
        &format!("{member_path}/transfer-ownership"),
        &admin.access,
        None,
    )
    .await
    .problem(403);
    let r = call(
        &app,
        Method::PATCH,
        &member_path,
        &admin.access,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(r.ok(200)["role"], "admin");
    assert_eq!(r.body["active"], true);
    // Unknown or another tenant's user: 404.
    let other = app.signup_on("bravo", "enterprise").await;
    let other_me = call(&app, Method::GET, "/api/v1/auth/me", &other.token, None).await;
    let other_id = other_me.ok(200)["user"]["id"].as_str().unwrap().to_string();
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/users/{other_id}"),
        &t.token,
        Some(json!({"role": "viewer"})),
    )
    .await
    .problem(404);
    call(
        &app,
        Method::DELETE,
        &format!("/api/v1/users/{other_id}"),
        &t.token,
        None,
    )
    .await
    .problem(404);
    // Transfer ownership to the admin: they become owner, the caller admin.
    let r = call(
        &app,
        Method::POST,
        &format!("/api/v1/users/{admin_id}/transfer-ownership"),
        &t.token,
        None,
    )
    .await;
    assert_eq!(r.ok(200)["role"], "owner");
    let me = call(&app, Method::GET, "/api/v1/auth/me", &t.token, None).await;
    assert_eq!(
        me.ok(200)["user"]["role"],
        "admin",
        "the role comes from the directory, not the token"
    );
    // Now the new owner is the last one; with two owners one may step down.
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        &admin.access,
        Some(json!({"role": "admin"})),
    )
    .await
    .problem(409);
    call(
        &app,
        Method::PATCH,
        &owner_path,
        &admin.access,
        Some(json!({"role": "owner"})),
    )
    .await
    .ok(200);
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        &admin.access,
        Some(json!({"role": "admin"})),
    )
    .await
    .ok(200);
    let pg = app.pg().await;
    let owners: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM t_acme.users WHERE role = 'owner' AND status = 'active'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn concurrent_demotions_keep_an_owner() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let me = call(&app, Method::GET, "/api/v1/auth/me", &t.token, None).await;
    let first = me.ok(200)["user"]["id"].as_str().unwrap().to_string();
    let (second, s) = app
        .add_user("acme", &t.token, "o2@acme.example", "admin")
        .await;
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/users/{second}"),
        &t.token,
        Some(json!({"role": "owner"})),
    )
    .await
    .ok(200);
    let (p1, p2) = (
        format!("/api/v1/users/{first}"),
        format!("/api/v1/users/{second}"),
    );
    let (a, b) = tokio::join!(
        call(
            &app,
            Method::PATCH,
            &p1,
            &s.access,
            Some(json!({"active": false}))
        ),
        call(
            &app,
            Method::PATCH,
            &p2,
            &t.token,
            Some(json!({"active": false}))
        ),
    );
    let statuses = [a.status.as_u16(), b.status.as_u16()];
    // One wins; the other is refused: 409 (last owner) when it ran second, or 401 when the
    // winner had already deactivated its caller (its session ended) before it was checked.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| *s == 409 || *s == 401),
        "{statuses:?}"
    );
    let pg = app.pg().await;
    let owners: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM t_acme.users WHERE role = 'owner' AND status = 'active'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn a_removed_users_keys_and_sessions_are_refused_at_once() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let (admin_id, admin) = app
        .add_user("acme", &t.token, "admin@acme.example", "admin")
        .await;
    let key = call(
        &app,
        Method::POST,
        "/api/v1/keys",
        &admin.access,
        Some(json!({"name": "admin-ci"})),
    )
    .await;
    let secret = key.ok(201)["secret"].as_str().unwrap().to_string();
    app.get("/api/v1/auth/me", &[("x-api-key", &secret)])
        .await
        .ok(200);
    let r = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/users/{admin_id}"),
        &t.token,
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    app.get("/api/v1/auth/me", &[("x-api-key", &secret)])
        .await
        .problem(401);
    call(&app, Method::GET, "/api/v1/auth/me", &admin.access, None)
        .await
        .problem(401);
    app.post(
        "/api/v1/auth/refresh",
        &[("x-tenant-id", "acme")],
        json!({"refresh_token": admin.refresh}),
    )
    .await
    .problem(401);
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", "acme")],
        json!({"email": "admin@acme.example", "password": "team mate password"}),
    )
    .await
    .problem(401);
    // Hidden from the list; removing twice is 404; the owner's keys still work.
    let users = call(&app, Method::GET, "/api/v1/users", &t.token, None).await;
    assert!(
        users
            .ok(200)
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["id"] != json!(admin_id))
    );
    call(
        &app,
        Method::DELETE,
        &format!("/api/v1/users/{admin_id}"),
        &t.token,
        None,
    )
    .await
    .problem(404);
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    // The email can be used again.
    let (again, _) = app
        .add_user("acme", &t.token, "admin@acme.example", "member")
        .await;
    assert_ne!(again, admin_id);
    // Deactivation: refused at once, sign-in says so, reactivation lets them back.
    let (mid, m) = app
        .add_user("acme", &t.token, "m@acme.example", "member")
        .await;
    let r = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/users/{mid}"),
        &t.token,
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(r.ok(200)["active"], false);
    call(&app, Method::GET, "/api/v1/auth/me", &m.access, None)
        .await
        .problem(401);
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", "acme")],
        json!({"email": "m@acme.example", "password": "team mate password"}),
    )
    .await
    .problem(403);
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/users/{mid}"),
        &t.token,
        Some(json!({"active": true})),
    )
    .await
    .ok(200);
    app.login("acme", "m@acme.example", "team mate password")
        .await;
}

#[tokio::test]
async fn audit_rows_and_their_filters() {
    let app = fast_app().await;
    let t = app.signup_on("acme", "enterprise").await;
    let auth = bearer(&t.token);
    let get = |q: String| {
        let app = &app;
        let auth = auth.clone();
        async move {
            app.get(&format!("/api/v1/audit{q}"), &[("authorization", &auth)])
                .await
        }
    };
    // Five failures lock the (account, address) pair: failures and the lockout are rows.
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme"), ("user-agent", "attacker/0.1")],
            json!({"email": "ghost@acme.example", "password": "guessing wrong"}),
        )
        .await
        .problem(401);
    }
    let r = get("?action=auth.login_failed".into()).await;
    let rows = r.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["target"], "ghost@acme.example");
    assert_eq!(rows[0]["ip"], "127.0.0.1");
    assert_eq!(rows[0]["user_agent"], "attacker/0.1");
    let r = get("?action=auth.locked_out".into()).await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 1);
    // A success, a user, a role change, a key and its revocation.
    let s = app
        .login("acme", "owner@acme.example", "correct horse battery")
        .await;
    let (uid, _) = app
        .add_user("acme", &s.access, "m@acme.example", "member")
        .await;
    call(
        &app,
        Method::PATCH,
        &format!("/api/v1/users/{uid}"),
        &s.access,
        Some(json!({"role": "viewer"})),
    )
    .await
    .ok(200);
    let key = call(
        &app,
        Method::POST,
        "/api/v1/keys",
        &s.access,
        Some(json!({"name": "audited"})),
    )
    .await;
    let kid = key.ok(201)["id"].as_str().unwrap().to_string();
    call(
        &app,
        Method::DELETE,
        &format!("/api/v1/keys/{kid}"),
        &s.access,
        None,
    )
    .await
    .ok(200);
    let owner_id = s.body["user"]["id"].as_str().unwrap().to_string();
    for action in [
        "auth.login_succeeded",
        "user.created",
        "user.role_changed",
        "api_key.created",
        "api_key.revoked",
    ] {
        let r = get(format!("?action={action}&actor={owner_id}")).await;
        let items = r.ok(200)["items"].as_array().unwrap().clone();
        assert!(!items.is_empty(), "{action}");
        assert_eq!(items[0]["actor_user_id"], json!(owner_id), "{action}");
        assert_eq!(items[0]["ip"], "127.0.0.1", "{action}");
    }
    let r = get("?action=user.role_changed".into()).await;
    assert_eq!(
        r.ok(200)["items"][0]["details"],
        json!({"from": "member", "to": "viewer"})
    );
    // Pages: limit 2, following next_cursor, newest first, every row once.
    let all = get("?limit=200".into()).await.ok(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let page = get(q).await;
        let body = page.ok(200).clone();
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(seen, ids);
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    // Time range: the clock moves; only later rows are "since" it.
    app.advance(chrono::Duration::minutes(10));
    let since = app
        .clock_now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = get(format!("?since={since}")).await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 0);
    app.login("acme", "owner@acme.example", "correct horse battery")
        .await;
    let r = get(format!("?since={since}")).await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 1);
    // Before it: the owner's and the new member's sign-ins.
    let r = get(format!("?until={since}&action=auth.login_succeeded")).await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 2);
    // Bounded and checked input.
    get("?limit=201".into()).await.problem(422);
    get("?cursor=nonsense".into()).await.problem(422);
    get(format!("?since={since}&until=2020-01-01T00:00:00Z"))
        .await
        .problem(422);
}
