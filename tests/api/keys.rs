//! API keys: format, revocation, expiry (clock injected), listing.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_and_unknown_keys_are_refused() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let d = app
        .get("/api/v1/auth/me", &[("x-api-key", "mk_live_tooshort")])
        .await
        .problem(401);
    assert!(d.contains("malformed"), "{d}");
    let mut typo = t.keys[0].clone().into_bytes();
    typo[10] = if typo[10] == b'A' { b'B' } else { b'A' };
    let d = app
        .get(
            "/api/v1/auth/me",
            &[("x-api-key", &String::from_utf8(typo).unwrap())],
        )
        .await
        .problem(401);
    assert!(d.contains("checksum"), "{d}");
    // Well-formed but never issued.
    let pool = app.pg().await;
    let forged = {
        // Re-use a valid key's shape from another database: a fresh app's key is unknown here.
        let other = spawn_app().await;
        other.signup("other").await.keys[0].clone()
    };
    let d = app
        .get("/api/v1/auth/me", &[("x-api-key", &forged)])
        .await
        .problem(401);
    assert!(d.contains("unknown API key"), "{d}");
    drop(pool);
    app.get("/api/v1/auth/me", &[]).await.problem(401);
}

#[tokio::test]
async fn revoked_key_fails_at_once_and_other_key_still_works() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    let owner = bearer(&t.token);
    let revoked = app
        .request(
            Method::DELETE,
            &format!("/api/v1/keys/{}", t.key_ids[0]),
            &[("authorization", &owner)],
            None,
        )
        .await;
    assert_eq!(revoked.ok(200)["status"], "revoked");
    let d = app
        .get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .problem(401);
    assert!(d.contains("revoked"), "{d}");
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[1])])
        .await
        .ok(200);
    let list = app.get("/api/v1/keys", &[("authorization", &owner)]).await;
    let keys = list.ok(200).as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter().all(|k| k.get("secret").is_none()),
        "secrets must never be listed"
    );
    assert!(keys.iter().any(|k| k["last_used_at"].is_string()));
    // Another tenant's key id is not found.
    let b = app.signup("bravo").await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/keys/{}", t.key_ids[1]),
        &[("authorization", &bearer(&b.token))],
        None,
    )
    .await
    .problem(404);
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[1])])
        .await
        .ok(200);
}

#[tokio::test]
async fn trial_keys_expire_with_the_trial() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let created = app
        .post(
            "/api/v1/keys",
            &[("authorization", &bearer(&t.token))],
            json!({"name": "ci"}),
        )
        .await;
    let new_key = created.ok(201)["secret"].as_str().unwrap().to_string();
    assert!(created.body["expires_at"].is_string());
    app.get("/api/v1/auth/me", &[("x-api-key", &new_key)])
        .await
        .ok(200);
    app.advance(chrono::Duration::days(31));
    let d = app
        .get("/api/v1/auth/me", &[("x-api-key", &new_key)])
        .await
        .problem(401);
    assert!(d.contains("expired"), "{d}");
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .problem(401);
}

#[tokio::test]
async fn trial_tier_caps_active_keys_at_five() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let owner = bearer(&t.token);
    for i in 0..3 {
        app.post(
            "/api/v1/keys",
            &[("authorization", &owner)],
            json!({"name": format!("k{i}")}),
        )
        .await
        .ok(201);
    }
    let resp = app
        .post(
            "/api/v1/keys",
            &[("authorization", &owner)],
            json!({"name": "one too many"}),
        )
        .await;
    let d = resp.problem(403);
    assert!(d.contains("allows 5 active API keys"), "{d}");
    app.post(
        "/api/v1/keys",
        &[("authorization", &owner)],
        json!({"name": ""}),
    )
    .await
    .problem(422);
}

#[tokio::test]
async fn last_used_at_is_kept_to_the_minute() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let owner = bearer(&t.token);
    let last_used = |body: &serde_json::Value| -> String {
        body.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == json!(t.key_ids[0]))
            .unwrap()["last_used_at"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    let first = last_used(
        app.get("/api/v1/keys", &[("authorization", &owner)])
            .await
            .ok(200),
    );
    assert!(!first.is_empty());
    app.advance(chrono::Duration::seconds(30));
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    assert_eq!(
        last_used(
            app.get("/api/v1/keys", &[("authorization", &owner)])
                .await
                .ok(200)
        ),
        first
    );
    app.advance(chrono::Duration::seconds(31));
    app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);
    assert_ne!(
        last_used(
            app.get("/api/v1/keys", &[("authorization", &owner)])
                .await
                .ok(200)
        ),
        first
    );
}
