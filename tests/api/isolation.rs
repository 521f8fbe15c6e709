//! Tenant isolation: the attacks, not just the happy path.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn a_key_of_tenant_a_on_b_subdomain_is_refused() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    let _b = app.signup("bravo").await;
    let detail = app
        .get(
            "/api/v1/auth/me",
            &[("x-api-key", &a.keys[0]), ("host", "bravo.mc.test")],
        )
        .await
        .problem(401);
    assert!(
        detail.contains("does not belong to tenant \"bravo\""),
        "{detail}"
    );
    // The same key on its own subdomain works.
    let me = app
        .get(
            "/api/v1/auth/me",
            &[("x-api-key", &a.keys[0]), ("host", "alpha.mc.test")],
        )
        .await;
    assert_eq!(me.ok(200)["tenant"]["slug"], "alpha");
}

#[tokio::test]
async fn a_key_of_tenant_a_with_x_tenant_id_b_is_refused() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    let _b = app.signup("bravo").await;
    app.get(
        "/api/v1/auth/me",
        &[("x-api-key", &a.keys[0]), ("x-tenant-id", "bravo")],
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn a_jwt_of_tenant_a_with_x_tenant_id_b_is_refused() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    let _b = app.signup("bravo").await;
    let detail = app
        .get(
            "/api/v1/auth/me",
            &[
                ("authorization", &bearer(&a.token)),
                ("x-tenant-id", "bravo"),
            ],
        )
        .await
        .problem(401);
    assert!(
        detail.contains("not issued for tenant \"bravo\""),
        "{detail}"
    );
    // Nor on B's subdomain.
    app.get(
        "/api/v1/keys",
        &[
            ("authorization", &bearer(&a.token)),
            ("host", "bravo.mc.test"),
        ],
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn subdomain_and_header_disagreeing_is_a_bad_request() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    let _b = app.signup("bravo").await;
    let detail = app
        .get(
            "/api/v1/auth/me",
            &[
                ("x-api-key", &a.keys[0]),
                ("host", "alpha.mc.test"),
                ("x-tenant-id", "bravo"),
            ],
        )
        .await
        .problem(400);
    assert!(detail.contains("X-Tenant-ID"), "{detail}");
}

#[tokio::test]
async fn unknown_tenant_answers_like_a_foreign_one_and_injection_in_header_is_400() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    app.signup("bravo").await;
    // Whether the named tenant exists or not, the answer is the same: these credentials are
    // not its own (so a key cannot be used to discover tenants).
    for (header, value) in [
        ("x-tenant-id", "nobody"),
        ("host", "nobody.mc.test"),
        ("x-tenant-id", "bravo"),
    ] {
        let d = app
            .get(
                "/api/v1/auth/me",
                &[("x-api-key", &a.keys[0]), (header, value)],
            )
            .await
            .problem(401);
        let slug = value.split('.').next().unwrap();
        assert!(
            d.starts_with(&format!(
                "this API key does not belong to tenant \"{slug}\""
            )),
            "{d}"
        );
    }
    for evil in [
        "alpha\"; DROP SCHEMA platform CASCADE; --",
        "ALPHA",
        "alpha;",
        "pg_catalog",
        "public",
    ] {
        app.get(
            "/api/v1/auth/me",
            &[("x-api-key", &a.keys[0]), ("x-tenant-id", evil)],
        )
        .await
        .problem(400);
    }
    // The platform is intact.
    app.get("/api/v1/auth/me", &[("x-api-key", &a.keys[0])])
        .await
        .ok(200);
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    use base64::Engine;
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    let claims: serde_json::Value = {
        let part = a.token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    // Signed with another secret.
    let forged = jsonwebtoken_forge(&claims, b"another-secret-that-is-32-bytes-long!!");
    let d = app
        .get("/api/v1/auth/me", &[("authorization", &bearer(&forged))])
        .await
        .problem(401);
    assert!(d.contains("signature"), "{d}");
    // alg: none.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    app.get("/api/v1/auth/me", &[("authorization", &bearer(&none))])
        .await
        .problem(401);
    // HS512 with the right secret is still refused: the algorithm is pinned.
    let hs512 = {
        use hmac_free::sign_hs512;
        sign_hs512(&claims, JWT_SECRET.as_bytes())
    };
    app.get("/api/v1/auth/me", &[("authorization", &bearer(&hs512))])
        .await
        .problem(401);
    // Garbage.
    app.get("/api/v1/auth/me", &[("authorization", "Bearer not.a.jwt")])
        .await
        .problem(401);
    // Expired: move the service clock past the 15-minute lifetime.
    app.get("/api/v1/auth/me", &[("authorization", &bearer(&a.token))])
        .await
        .ok(200);
    app.advance(chrono::Duration::minutes(16));
    let d = app
        .get("/api/v1/auth/me", &[("authorization", &bearer(&a.token))])
        .await
        .problem(401);
    assert!(d.contains("expired"), "{d}");
}

/// Signs claims with HS256 and a chosen secret (an attacker's forge).
fn jsonwebtoken_forge(claims: &serde_json::Value, secret: &[u8]) -> String {
    hmac_free::sign(claims, secret, "HS256")
}

/// Minimal JWS signing for the forgery tests, using the `jsonwebtoken` crate the service uses.
mod hmac_free {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    pub fn sign(claims: &serde_json::Value, secret: &[u8], alg: &str) -> String {
        let alg = match alg {
            "HS512" => Algorithm::HS512,
            _ => Algorithm::HS256,
        };
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    pub fn sign_hs512(claims: &serde_json::Value, secret: &[u8]) -> String {
        sign(claims, secret, "HS512")
    }
}

#[tokio::test]
async fn another_tenants_simulation_is_404() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    let b = app.signup("bravo").await;
    let sim = app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &a.keys[0])],
            simulation_body(),
        )
        .await;
    let id = sim.ok(201)["id"].as_str().unwrap().to_string();
    app.get(
        &format!("/api/v1/simulations/{id}"),
        &[("x-api-key", &a.keys[0])],
    )
    .await
    .ok(200);
    let d = app
        .get(
            &format!("/api/v1/simulations/{id}"),
            &[("x-api-key", &b.keys[0])],
        )
        .await
        .problem(404);
    assert!(d.contains("no simulation"), "{d}");
    let list = app
        .get("/api/v1/simulations", &[("x-api-key", &b.keys[0])])
        .await;
    assert_eq!(list.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn two_tenants_interleaving_through_one_pooled_connection_never_see_each_other() {
    let app = spawn_with(Options {
        max_connections: Some(1),
        ..Default::default()
    })
    .await;
    let a = app.signup_on("alpha", "enterprise").await;
    let b = app.signup_on("bravo", "enterprise").await;
    let mut seen = std::collections::HashMap::new();
    for round in 0..4 {
        for t in [&a, &b] {
            let mut body = simulation_body();
            body["seed"] = json!(1000 + round);
            body["paths"] = json!(200);
            let resp = app
                .post("/api/v1/simulations", &[("x-api-key", &t.keys[0])], body)
                .await;
            seen.entry(t.slug.clone())
                .or_insert_with(Vec::new)
                .push(resp.ok(201)["id"].as_str().unwrap().to_string());
            // Reads through the same connection right after the other tenant's write.
            let list = app
                .get(
                    "/api/v1/simulations?limit=100",
                    &[("x-api-key", &t.keys[0])],
                )
                .await;
            let ids: Vec<String> = list.ok(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect();
            let mut mine = seen[&t.slug].clone();
            mine.reverse();
            assert_eq!(ids, mine, "tenant {} saw a foreign or missing row", t.slug);
        }
    }
    // Same table names, different schemas: each schema holds exactly its own rows.
    let pool = app.pg().await;
    for (slug, schema) in [("alpha", "t_alpha"), ("bravo", "t_bravo")] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\".simulations"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 4, "{slug}");
    }
}

#[tokio::test]
async fn suspended_tenant_gets_403_and_reactivation_restores_access() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    app.admin_patch("alpha", json!({"status": "suspended"}))
        .await
        .ok(200);
    let d = app
        .get("/api/v1/auth/me", &[("x-api-key", &a.keys[0])])
        .await
        .problem(403);
    assert!(d.contains("suspended"), "{d}");
    app.post(
        "/api/v1/simulations",
        &[("authorization", &bearer(&a.token))],
        simulation_body(),
    )
    .await
    .problem(403);
    app.admin_patch("alpha", json!({"status": "active"}))
        .await
        .ok(200);
    app.get("/api/v1/auth/me", &[("x-api-key", &a.keys[0])])
        .await
        .ok(200);
}

#[tokio::test]
async fn admin_api_needs_a_named_admins_token() {
    let app = spawn_app().await;
    let a = app.signup("alpha").await;
    app.get("/api/v1/admin/tenants", &[]).await.problem(401);
    // A tenant owner's token has another audience.
    let d = app
        .get(
            "/api/v1/admin/tenants",
            &[("authorization", &bearer(&a.token))],
        )
        .await
        .problem(401);
    assert!(d.contains("not a platform-admin token"), "{d}");
    // The bootstrap secret is not an admin credential.
    app.get(
        "/api/v1/admin/tenants",
        &[("authorization", &bearer(ADMIN_TOKEN))],
    )
    .await
    .problem(401);
    let list = app
        .get(
            "/api/v1/admin/tenants",
            &[("authorization", &app.admin_auth().await)],
        )
        .await;
    assert_eq!(list.ok(200)[0]["slug"], "alpha");
    // And an admin's token is refused by the tenant API.
    app.get(
        "/api/v1/auth/me",
        &[
            ("authorization", &app.admin_auth().await),
            ("x-tenant-id", "alpha"),
        ],
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn an_admin_change_on_one_instance_reaches_the_others() {
    let url = fresh_database_url();
    let opts = Options {
        database_url: Some(url),
        ..Default::default()
    };
    let a = spawn_with(opts.clone()).await;
    let b = spawn_with(opts).await;
    let t = a.signup("alpha").await;
    // B caches the tenant on first use.
    b.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    a.admin_patch("alpha", json!({"status": "suspended"}))
        .await
        .ok(200);
    // B learns of it through LISTEN/NOTIFY, without a restart.
    let mut refused = false;
    for _ in 0..100 {
        let r = b.get("/api/v1/auth/me", &[("x-api-key", &t.keys[1])]).await;
        if r.status.as_u16() == 403 {
            assert!(r.problem(403).contains("suspended"));
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "instance B still serves a tenant suspended on instance A"
    );
    a.admin_patch("alpha", json!({"status": "active", "tier": "starter"}))
        .await
        .ok(200);
    let mut upgraded = false;
    for _ in 0..100 {
        let r = b
            .get("/api/v1/auth/me", &[("authorization", &bearer(&t.token))])
            .await;
        if r.status.as_u16() == 200 && r.body["tenant"]["tier"] == "starter" {
            upgraded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(upgraded, "instance B never saw the tier change");
}
