//! The websim pages over HTTP (issue #12): API keys (`/keys`), new simulation, result permalink
//! and downloads, the simulations list: status codes, CSRF refusal, role limits, cross-tenant 404.

use crate::helpers::{TestApp, bearer, simulation_body, spawn_app};
use serde_json::Value;

use crate::web::{Page, cookie_value, get, post};

/// Signs in through the form; returns the `mc_session` cookie value.
async fn sign_in(app: &TestApp, host: &str, email: &str, password: &str) -> String {
    let login = get(app, host, "/login", "").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let visitor = cookie_value(&login.set_cookie("mc_csrf").expect("mc_csrf cookie"));
    let done = post(
        app,
        host,
        "/login",
        &format!("mc_csrf={visitor}"),
        &[
            ("email", email),
            ("password", password),
            ("csrf", &login.csrf()),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    cookie_value(&done.set_cookie("mc_session").expect("session cookie"))
}

/// The `(name, value)` pairs of the new-simulation form's defaults, `paths` and `seed` set.
fn sim_form(csrf: &str, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = [
        ("csrf", csrf),
        ("asset_count", "2"),
        ("asset_0_name", "Stocks"),
        ("asset_0_weight", "0.6"),
        ("asset_0_drift", "0.07"),
        ("asset_0_volatility", "0.16"),
        ("asset_1_name", "Bonds"),
        ("asset_1_weight", "0.4"),
        ("asset_1_drift", "0.03"),
        ("asset_1_volatility", "0.06"),
        ("corr_0_1", "0.1"),
        ("model", "gbm"),
        ("dof", "5"),
        ("block_length", "12"),
        ("rebalancing", "annually"),
        ("initial_value", "100000"),
        ("cash_flow_amount", "0"),
        ("cash_flow_frequency", "annually"),
        ("cash_flow_growth", "0.02"),
        ("inflation_rate", ""),
        ("horizon_years", "5"),
        ("steps_per_year", "12"),
        ("paths", "500"),
        ("seed", "42"),
        ("action", "run"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in overrides {
        match f.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => f.push((k.to_string(), v.to_string())),
        }
    }
    f
}

async fn post_pairs(
    app: &TestApp,
    host: &str,
    path: &str,
    cookie: &str,
    pairs: &[(String, String)],
) -> Page {
    let fields: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post(app, host, path, cookie, &fields).await
}

async fn signed_in_owner(app: &TestApp, slug: &str) -> (String, String) {
    let t = app.signup(slug).await;
    let host = format!("{slug}.mc.test");
    let session = sign_in(
        app,
        &host,
        &format!("owner@{slug}.example"),
        "correct horse battery",
    )
    .await;
    (format!("mc_session={session}"), t.token)
}

async fn api_key_count(app: &TestApp, token: &str) -> usize {
    let r = app
        .get("/api/v1/keys", &[("authorization", &bearer(token))])
        .await;
    let body = r.ok(200);
    body.get("items").unwrap_or(body).as_array().unwrap().len()
}

#[tokio::test]
async fn keys_page_shows_the_secret_once_refuses_forged_posts_and_revokes() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in_owner(&app, "keysa").await;
    let host = "keysa.mc.test";
    let list = get(&app, host, "/keys", &cookie).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("action=\"/keys\""));
    let keys_before = api_key_count(&app, &token).await;

    // CSRF: missing, wrong → 403 and nothing created.
    let missing = post(&app, host, "/keys", &cookie, &[("name", "forged")]).await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    let wrong = post(
        &app,
        host,
        "/keys",
        &cookie,
        &[("name", "forged"), ("csrf", "nope")],
    )
    .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(api_key_count(&app, &token).await, keys_before);

    // A bad name is shown next to the field.
    let bad = post(
        &app,
        host,
        "/keys",
        &cookie,
        &[("name", "  "), ("csrf", &list.csrf())],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body.contains("id=\"key-name-error\"")
            && bad
                .body
                .contains("aria-describedby=\"key-name-hint key-name-error\"")
    );
    let past = post(
        &app,
        host,
        "/keys",
        &cookie,
        &[
            ("name", "old"),
            ("expires_on", "2001-01-01"),
            ("csrf", &list.csrf()),
        ],
    )
    .await;
    assert_eq!(past.status, 422, "{}", past.body);
    assert!(past.body.contains("id=\"key-expiry-error\""));

    // Created: the secret is on this response only.
    let made = post(
        &app,
        host,
        "/keys",
        &cookie,
        &[
            ("name", "ci-pipeline"),
            ("expires_on", "2099-12-31"),
            ("csrf", &list.csrf()),
        ],
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let at = made.body.find("value=\"mk_live_").expect("secret shown") + 7;
    let secret = made.body[at..].split('"').next().unwrap().to_string();
    assert!(made.body.contains("shown only once"));
    assert_eq!(made.header("cache-control"), "no-store");
    let again = get(&app, host, "/keys", &cookie).await;
    assert!(
        !again.body.contains(&secret),
        "the secret is never shown again"
    );
    assert!(again.body.contains("ci-pipeline"));
    // On a trial the key ends with the trial, whatever later date was asked for.
    let trial_ends = chrono::DateTime::parse_from_rfc3339(
        app.get("/api/v1/keys", &[("authorization", &bearer(&token))])
            .await
            .ok(200)
            .to_string()
            .split("\"expires_at\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap(),
    )
    .unwrap()
    .with_timezone(&chrono::Utc);
    assert!(
        again
            .body
            .contains(&trial_ends.format("%Y-%m-%d %H:%M UTC").to_string())
    );
    assert!(again.body.contains("Owner Person"), "created by");
    assert_eq!(api_key_count(&app, &token).await, keys_before + 1);
    let works = app
        .get("/api/v1/simulations", &[("x-api-key", secret.as_str())])
        .await;
    assert_eq!(works.status.as_u16(), 200, "{:?} {}", works.body, secret);

    // Revoke: forged → 403; real → 303 and the API refuses the key.
    let at = again.body.find("/revoke\"").expect("revoke form");
    let start = again.body[..at].rfind("action=\"").unwrap() + 8;
    let action = format!("{}/revoke", &again.body[start..at]);
    let forged = post(&app, host, &action, &cookie, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);
    let revoked = post(&app, host, &action, &cookie, &[("csrf", &again.csrf())]).await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let refused = app
        .get("/api/v1/simulations", &[("x-api-key", secret.as_str())])
        .await;
    assert_eq!(refused.status.as_u16(), 401);
    let after = get(&app, host, "/keys", &cookie).await;
    assert!(after.body.contains("revoked"));

    // Another tenant's key id → 404.
    let (cookie_b, _) = signed_in_owner(&app, "keysb").await;
    let b_keys = get(&app, "keysb.mc.test", "/keys", &cookie_b).await;
    let cross = post(
        &app,
        "keysb.mc.test",
        &action,
        &cookie_b,
        &[("csrf", &b_keys.csrf())],
    )
    .await;
    assert_eq!(cross.status, 404, "{}", cross.body);

    // Signed out → /login.
    let anon = get(&app, host, "/keys", "").await;
    assert_eq!(anon.status, 303);
    assert_eq!(anon.header("location"), "/login");
}

#[tokio::test]
async fn viewers_get_read_only_pages_and_403_on_writes() {
    let app = spawn_app().await;
    let t = app.signup("viewco").await;
    app.add_user("viewco", &t.token, "viewer@viewco.example", "viewer")
        .await;
    let host = "viewco.mc.test";
    let session = sign_in(&app, host, "viewer@viewco.example", "team mate password").await;
    let cookie = format!("mc_session={session}");
    let keys = get(&app, host, "/keys", &cookie).await;
    assert_eq!(keys.status, 200, "{}", keys.body);
    assert!(
        !keys.body.contains("action=\"/keys\""),
        "no create form for a viewer"
    );
    let csrf = keys.csrf();
    let create = post(
        &app,
        host,
        "/keys",
        &cookie,
        &[("name", "x"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(create.status, 403, "{}", create.body);
    let new = get(&app, host, "/simulations/new", &cookie).await;
    assert_eq!(new.status, 200);
    assert!(!new.body.contains("action=\"/simulations/new\""));
    let run = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form(&csrf, &[]),
    )
    .await;
    assert_eq!(run.status, 403, "{}", run.body);
    let list = get(&app, host, "/simulations", &cookie).await;
    assert_eq!(list.status, 200);
}

#[tokio::test]
async fn new_simulation_runs_the_api_request_and_the_result_matches_the_api() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in_owner(&app, "simco").await;
    let host = "simco.mc.test";
    let form = get(&app, host, "/simulations/new", &cookie).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        form.body.contains("value=\"0.6\"") && form.body.contains("value=\"0.4\""),
        "60/40 default"
    );
    let csrf = form.csrf();

    let forged = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form("forged", &[]),
    )
    .await;
    assert_eq!(forged.status, 403);

    // Add a row (no JavaScript): three rows, a 3×3 matrix.
    let added = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form(&csrf, &[("action", "add_asset")]),
    )
    .await;
    assert_eq!(added.status, 200);
    assert!(
        added.body.contains("name=\"asset_2_weight\"") && added.body.contains("name=\"corr_1_2\"")
    );

    // The service's messages next to their fields.
    let weights = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form(&csrf, &[("asset_1_weight", "0.5")]),
    )
    .await;
    assert_eq!(weights.status, 422, "{}", weights.body);
    assert!(
        weights.body.contains("id=\"assets-error\""),
        "{}",
        weights.body
    );
    let not_psd = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form(
            &csrf,
            &[
                ("asset_count", "3"),
                ("asset_0_weight", "0.3"),
                ("asset_1_weight", "0.3"),
                ("asset_2_weight", "0.4"),
                ("asset_2_drift", "0.05"),
                ("asset_2_volatility", "0.1"),
                ("corr_0_1", "0.9"),
                ("corr_0_2", "0.9"),
                ("corr_1_2", "-0.9"),
            ],
        ),
    )
    .await;
    assert_eq!(not_psd.status, 422, "{}", not_psd.body);
    let at = not_psd
        .body
        .find("id=\"correlation-error\"")
        .expect("error next to the matrix");
    assert!(
        not_psd.body[at..].contains("semi-definite"),
        "{}",
        &not_psd.body[at..at + 300]
    );
    let nan = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form(&csrf, &[("paths", "lots")]),
    )
    .await;
    assert_eq!(nan.status, 422);
    assert!(nan.body.contains("id=\"paths-error\""));
    let csv = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form(&csrf, &[("model", "bootstrap_returns")]),
    )
    .await;
    assert_eq!(csv.status, 422);
    assert!(csv.body.contains("id=\"returns_csv-error\""));

    // Run → 303 to the permalink.
    let ran = post_pairs(
        &app,
        host,
        "/simulations/new",
        &cookie,
        &sim_form(&csrf, &[]),
    )
    .await;
    assert_eq!(ran.status, 303, "{}", ran.body);
    let location = ran.header("location");
    assert!(location.starts_with("/simulations/sim_"), "{location}");
    let id = location.rsplit('/').next().unwrap().to_string();

    let api = app
        .get(
            &format!("/api/v1/simulations/{id}"),
            &[("authorization", &bearer(&token))],
        )
        .await;
    let api_body = api.ok(200).clone();
    assert_eq!(api_body["request"]["seed"], 42);
    assert_eq!(
        api_body["request"]["correlation"],
        serde_json::json!([[1.0, 0.1], [0.1, 1.0]])
    );
    let median = api_body["result"]["terminal"]["percentiles"]["p50"]
        .as_f64()
        .unwrap();

    let result = get(&app, host, &location, &cookie).await;
    assert_eq!(result.status, 200, "{}", result.body);
    let shown = montecarlo_platform::web::simulations::money(median);
    assert!(
        result
            .body
            .contains(&format!("data-value=\"{median}\">{shown}</p>")),
        "median {shown}"
    );
    assert!(
        result
            .body
            .contains("<script type=\"application/json\" id=\"fan-data\">")
    );
    assert!(result.body.contains("Expected shortfall"));

    let json = get(&app, host, &format!("/simulations/{id}.json"), &cookie).await;
    assert_eq!(json.status, 200);
    assert!(json.header("content-type").starts_with("application/json"));
    assert_eq!(
        json.header("content-disposition"),
        format!("attachment; filename=\"{id}.json\"")
    );
    let downloaded: Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(downloaded, api_body, "the download is the API's JSON");

    let csv = get(&app, host, &format!("/simulations/{id}.csv"), &cookie).await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert_eq!(
        csv.header("content-disposition"),
        format!("attachment; filename=\"{id}.csv\"")
    );
    let lines: Vec<&str> = csv.body.split("\r\n").collect();
    assert_eq!(lines[0], "year,mean,p1,p5,p10,p25,p50,p75,p90,p95,p99");
    assert_eq!(lines.len(), 1 + 5 + 1, "a line per year and a final CRLF");
    let last_p50: f64 = lines[5].split(',').nth(6).unwrap().parse().unwrap();
    assert_eq!(
        last_p50,
        api_body["result"]["yearly"][4]["percentiles"]["p50"]
            .as_f64()
            .unwrap()
    );

    let list = get(&app, host, "/simulations", &cookie).await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&format!("href=\"/simulations/{id}\"")));

    // Another tenant: 404 for the page and the downloads; junk ids 404 too.
    let (cookie_b, _) = signed_in_owner(&app, "othersim").await;
    for suffix in ["", ".json", ".csv"] {
        let cross = get(
            &app,
            "othersim.mc.test",
            &format!("/simulations/{id}{suffix}"),
            &cookie_b,
        )
        .await;
        assert_eq!(cross.status, 404, "{suffix}: {}", cross.body);
    }
    let junk = get(&app, host, "/simulations/not-an-id", &cookie).await;
    assert_eq!(junk.status, 404);
    let bad_cursor = get(&app, host, "/simulations?before=zzz", &cookie).await;
    assert_eq!(bad_cursor.status, 400);
}

#[tokio::test]
async fn simulations_list_pages_newest_first() {
    let app = spawn_app().await;
    let token = app.signup_on("pages", "professional").await.token;
    let session = sign_in(
        &app,
        "pages.mc.test",
        "owner@pages.example",
        "correct horse battery",
    )
    .await;
    let cookie = format!("mc_session={session}");
    let mut ids = Vec::new();
    for seed in 0..22 {
        let mut body = simulation_body();
        body["paths"] = 50.into();
        body["horizon_years"] = 1.into();
        body["seed"] = seed.into();
        let r = app
            .post(
                "/api/v1/simulations",
                &[("authorization", &bearer(&token))],
                body,
            )
            .await;
        ids.push(r.ok(201)["id"].as_str().unwrap().to_string());
    }
    let first = get(&app, "pages.mc.test", "/simulations", &cookie).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body.matches("href=\"/simulations/sim_").count(), 20);
    let newest = first.body.find(&ids[21]).unwrap();
    let older = first.body.find(&ids[2]).unwrap();
    assert!(newest < older, "newest first");
    assert!(!first.body.contains(&ids[1]));
    let at = first.body.find("/simulations?before=").expect("older link");
    let next = first.body[at..].split('"').next().unwrap().to_string();
    let second = get(&app, "pages.mc.test", &next, &cookie).await;
    assert_eq!(second.body.matches("href=\"/simulations/sim_").count(), 2);
    assert!(second.body.contains(&ids[0]) && !second.body.contains("rel=\"next\""));
}
