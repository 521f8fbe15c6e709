//! Login, me, users and roles.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn login_with_subdomain_or_header_and_me() {
    let app = spawn_app().await;
    let _t = app.signup("acme").await;
    let creds = json!({"email": "OWNER@acme.example", "password": "correct horse battery"});
    let resp = app
        .post(
            "/api/v1/auth/login",
            &[("host", "acme.mc.test")],
            creds.clone(),
        )
        .await;
    let token = resp.ok(200)["access_token"].as_str().unwrap().to_string();
    assert_eq!(resp.body["token_type"], "Bearer");
    let me = app
        .get("/api/v1/auth/me", &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(me.ok(200)["user"]["email"], "owner@acme.example");
    assert_eq!(me.body["user"]["role"], "owner");
    app.post("/api/v1/auth/login", &[("x-tenant-id", "acme")], creds)
        .await
        .ok(200);
}

#[tokio::test]
async fn wrong_password_unknown_email_and_no_tenant() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let d = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "owner@acme.example", "password": "wrong password!"}),
        )
        .await
        .problem(401);
    assert_eq!(d, "email or password is incorrect");
    let d2 = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "ghost@acme.example", "password": "wrong password!"}),
        )
        .await
        .problem(401);
    assert_eq!(d, d2, "unknown email must look like a wrong password");
    app.post(
        "/api/v1/auth/login",
        &[],
        json!({"email": "owner@acme.example", "password": "correct horse battery"}),
    )
    .await
    .problem(400);
    // Another tenant's user cannot sign in here.
    app.signup("bravo").await;
    app.post(
        "/api/v1/auth/login",
        &[("x-tenant-id", "bravo")],
        json!({"email": "owner@acme.example", "password": "correct horse battery"}),
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn owner_adds_member_and_member_cannot_manage() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let owner = bearer(&t.token);
    let created = app
        .post(
            "/api/v1/users",
            &[("authorization", &owner)],
            json!({"email": "m@acme.example", "full_name": "Member One", "password": "member password", "role": "member"}),
        )
        .await;
    assert_eq!(created.ok(201)["role"], "member");
    app.post(
        "/api/v1/users",
        &[("authorization", &owner)],
        json!({"email": "m@acme.example", "full_name": "Again", "password": "member password", "role": "member"}),
    )
    .await
    .problem(409);
    let login = app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", "acme")],
            json!({"email": "m@acme.example", "password": "member password"}),
        )
        .await;
    let member = bearer(login.ok(200)["access_token"].as_str().unwrap());
    let d = app
        .post(
            "/api/v1/keys",
            &[("authorization", &member)],
            json!({"name": "x"}),
        )
        .await
        .problem(403);
    assert!(d.contains("owner or admin"), "{d}");
    app.post("/api/v1/users", &[("authorization", &member)], json!({"email": "z@acme.example", "full_name": "Z", "password": "member password", "role": "admin"}))
        .await
        .problem(403);
    // Members may run simulations.
    app.post(
        "/api/v1/simulations",
        &[("authorization", &member)],
        simulation_body(),
    )
    .await
    .ok(201);
    // API keys cannot manage users.
    app.post("/api/v1/users", &[("x-api-key", &t.keys[0])], json!({"email": "k@acme.example", "full_name": "K", "password": "member password", "role": "member"}))
        .await
        .problem(401);
    let users = app.get("/api/v1/users", &[("authorization", &owner)]).await;
    assert_eq!(users.ok(200).as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn password_rules_and_stored_hash_is_argon2id() {
    let app = spawn_app().await;
    let resp = app
        .post("/api/v1/signup", &[], json!({"organisation_name": "A", "slug": "acme", "full_name": "A", "email": "a@acme.example", "password": "short"}))
        .await;
    resp.problem(422);
    assert_eq!(resp.body["field"], "password");
    let resp = app
        .post("/api/v1/signup", &[], json!({"organisation_name": "A", "slug": "acme", "full_name": "A", "email": "not-an-email", "password": "long enough pw"}))
        .await;
    assert_eq!(resp.body["field"], "email");
    // 64 characters (well below the 128 allowed), and not easy to guess.
    let long = "plover quartz meadow lantern cobalt fjord ember saffron tundra x";
    assert_eq!(long.len(), 64);
    app.post("/api/v1/signup", &[], json!({"organisation_name": "A", "slug": "acme", "full_name": "A", "email": "a@acme.example", "password": long}))
        .await
        .ok(201);
    let pool = app.pg().await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM t_acme.users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}
