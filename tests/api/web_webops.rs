//! The web dashboard's operations pages over HTTP: home's verification banner, usage, team,
//! billing (off here; the browser tests cover Checkout through localstripe) and audit — status
//! codes, CSRF refusal, role limits and cross-tenant 404s.

use crate::helpers::{TestApp, spawn_app};
use reqwest::Method;
use reqwest::header::HeaderMap;

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("csrf field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }

    /// The flash message this response carries to the next page (decoded).
    fn flash(&self) -> String {
        use base64::Engine;
        let c = cookie_value(&self.set_cookie("mc_flash").expect("a flash message"));
        let (_, text) = c.split_once('.').unwrap();
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .unwrap(),
        )
        .unwrap()
    }
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

fn form(fields: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn request(
    app: &TestApp,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Page {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .header("host", host)
        .header("accept", "text/html")
        .header("user-agent", "webops-tests/1.0");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b);
    }
    let resp = req.send().await.expect("request sent");
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

async fn get(app: &TestApp, host: &str, path: &str, cookie: &str) -> Page {
    request(app, Method::GET, host, path, &[("cookie", cookie)], None).await
}

async fn post(
    app: &TestApp,
    host: &str,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> Page {
    request(
        app,
        Method::POST,
        host,
        path,
        &[("cookie", cookie), ("sec-fetch-site", "same-origin")],
        Some(form(fields)),
    )
    .await
}

/// Signs in through the form; returns the `mc_session=…` cookie.
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
    format!(
        "mc_session={}",
        cookie_value(&done.set_cookie("mc_session").expect("session cookie"))
    )
}

const OWNER_PASSWORD: &str = "correct horse battery";
const MATE_PASSWORD: &str = "team mate password";

async fn owner(app: &TestApp, slug: &str) -> String {
    sign_in(
        app,
        &format!("{slug}.mc.test"),
        &format!("owner@{slug}.example"),
        OWNER_PASSWORD,
    )
    .await
}

#[tokio::test]
async fn home_shows_the_verification_banner_and_resend_reports_the_limit() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let cookie = owner(&app, "acme").await;
    let home = get(&app, "acme.mc.test", "/", &cookie).await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("id=\"verify-banner\""), "{}", home.body);
    assert!(home.body.contains("action=\"/verification/resend\""));
    let forged = post(
        &app,
        "acme.mc.test",
        "/verification/resend",
        &cookie,
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(forged.status, 403);
    // The signup message went out less than a minute ago: the service's 429 is the message.
    let early = post(
        &app,
        "acme.mc.test",
        "/verification/resend",
        &cookie,
        &[("csrf", &home.csrf())],
    )
    .await;
    assert_eq!(
        (early.status, early.header("location").as_str()),
        (303, "/")
    );
    assert!(
        early.flash().contains("less than a minute ago"),
        "{}",
        early.flash()
    );
    app.advance(chrono::Duration::minutes(2));
    let sent = post(
        &app,
        "acme.mc.test",
        "/verification/resend",
        &cookie,
        &[("csrf", &home.csrf())],
    )
    .await;
    assert_eq!(sent.status, 303);
    assert!(sent.flash().contains("on its way"), "{}", sent.flash());
    // Verified: no banner.
    let t = crate::helpers::Tenant {
        slug: "acme".into(),
        token: String::new(),
        keys: vec![],
        key_ids: vec![],
        body: serde_json::Value::Null,
    };
    app.verify_owner(&t).await;
    let after = get(&app, "acme.mc.test", "/", &cookie).await;
    assert!(!after.body.contains("id=\"verify-banner\""));
}

#[tokio::test]
async fn usage_shows_the_calls_of_each_key_as_chart_data_and_table() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    for _ in 0..3 {
        app.get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
            .await
            .ok(200);
    }
    let cookie = owner(&app, "acme").await;
    let usage = get(&app, "acme.mc.test", "/usage", &cookie).await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert!(usage.body.contains("id=\"usage-data\""));
    assert!(usage.body.contains("js/webops-usage.js"));
    let csp = usage.header("content-security-policy");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // The chart's JSON: one series for the key with 3 calls today.
    let at = usage.body.find("id=\"usage-data\">").unwrap() + 16;
    let json: serde_json::Value =
        serde_json::from_str(usage.body[at..].split("</script>").next().unwrap()).unwrap();
    let series = json["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{json}");
    assert_eq!(series[0]["calls"].as_array().unwrap().last().unwrap(), 3);
    // The table holds the same number.
    let table = &usage.body[usage.body.find("id=\"usage-table\"").unwrap()..];
    assert!(table.contains("<td class=\"num\">3</td>"), "{table}");
    assert!(usage.body.contains("id=\"overage-price\">$0.00"));
    // Signed out: to the sign-in page.
    let anonymous = get(&app, "acme.mc.test", "/usage", "").await;
    assert_eq!(
        (anonymous.status, anonymous.header("location").as_str()),
        (303, "/login")
    );
}

#[tokio::test]
async fn team_invites_changes_roles_and_shows_the_services_rules() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let beta = app.signup("beta").await;
    let host = "acme.mc.test";
    let cookie = owner(&app, "acme").await;
    let team = get(&app, host, "/team", &cookie).await;
    assert_eq!(team.status, 200, "{}", team.body);
    assert!(team.body.contains("owner@acme.example"));
    let csrf = team.csrf();
    // An unverified owner cannot invite: the service's 403 reason is on the form.
    let refused = post(
        &app,
        host,
        "/team",
        &cookie,
        &[
            ("csrf", &csrf),
            ("action", "invite"),
            ("email", "new@acme.example"),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("id=\"invite-error\""));
    assert!(
        refused
            .body
            .contains("owner&#x27;s email address is not verified")
            || refused.body.contains("email address is not verified"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"new@acme.example\""),
        "email kept"
    );
    app.verify_owner(&t).await;
    // A malformed address: next to its field at 422.
    let bad = post(
        &app,
        host,
        "/team",
        &cookie,
        &[
            ("csrf", &csrf),
            ("action", "invite"),
            ("email", "nope"),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("id=\"invite-email-error\""));
    assert!(bad.body.contains("aria-describedby=\"invite-email-error\""));
    let invited = post(
        &app,
        host,
        "/team",
        &cookie,
        &[
            ("csrf", &csrf),
            ("action", "invite"),
            ("email", "new@acme.example"),
            ("role", "viewer"),
        ],
    )
    .await;
    assert_eq!(invited.status, 303, "{}", invited.body);
    assert!(invited.flash().contains("new@acme.example"));
    let token = app
        .outbox_token("new@acme.example", "/accept-invitation")
        .await;
    assert_eq!(token.len(), 43);
    let team = get(&app, host, "/team", &cookie).await;
    assert!(team.body.contains("id=\"invitations\""));
    assert!(team.body.contains("new@acme.example"));

    // A member added through the API: role change, deactivate, reactivate.
    let (mate, _) = app
        .add_user("acme", &t.token, "mate@acme.example", "member")
        .await;
    let to_admin = post(
        &app,
        host,
        "/team",
        &cookie,
        &[
            ("csrf", &csrf),
            ("action", "role"),
            ("id", &mate),
            ("role", "admin"),
        ],
    )
    .await;
    assert_eq!(to_admin.status, 303, "{}", to_admin.body);
    assert!(to_admin.flash().contains("is now admin"));
    let off = post(
        &app,
        host,
        "/team",
        &cookie,
        &[("csrf", &csrf), ("action", "deactivate"), ("id", &mate)],
    )
    .await;
    assert_eq!(off.status, 303);
    let team = get(&app, host, "/team", &cookie).await;
    let row = &team.body[team.body.find(&format!("id=\"member-{mate}\"")).unwrap()..];
    assert!(row[..row.find("</tr>").unwrap()].contains("deactivated"));
    // The service's rules, as messages: yourself, the last owner.
    let me = app
        .get(
            "/api/v1/auth/me",
            &[("authorization", &crate::helpers::bearer(&t.token))],
        )
        .await;
    let my_id = me.ok(200)["user"]["id"].as_str().unwrap().to_string();
    let selfish = post(
        &app,
        host,
        "/team",
        &cookie,
        &[("csrf", &csrf), ("action", "deactivate"), ("id", &my_id)],
    )
    .await;
    assert_eq!(selfish.status, 409, "{}", selfish.body);
    assert!(selfish.body.contains("you cannot deactivate yourself"));
    let demote = post(
        &app,
        host,
        "/team",
        &cookie,
        &[
            ("csrf", &csrf),
            ("action", "role"),
            ("id", &my_id),
            ("role", "admin"),
        ],
    )
    .await;
    assert_eq!(demote.status, 409);
    assert!(demote.body.contains("last active owner"));
    // Another tenant's user: 404.
    let beta_me = app
        .get(
            "/api/v1/auth/me",
            &[("authorization", &crate::helpers::bearer(&beta.token))],
        )
        .await;
    let beta_owner = beta_me.ok(200)["user"]["id"].as_str().unwrap().to_string();
    let foreign = post(
        &app,
        host,
        "/team",
        &cookie,
        &[
            ("csrf", &csrf),
            ("action", "deactivate"),
            ("id", &beta_owner),
        ],
    )
    .await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    // Forged token: 403, nothing changed.
    let forged = post(
        &app,
        host,
        "/team",
        &cookie,
        &[("csrf", "forged"), ("action", "reactivate"), ("id", &mate)],
    )
    .await;
    assert_eq!(forged.status, 403);
}

#[tokio::test]
async fn viewers_read_the_team_and_billing_pages_and_are_refused_writes() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let (_, _) = app
        .add_user("acme", &t.token, "viewer@acme.example", "viewer")
        .await;
    let host = "acme.mc.test";
    let cookie = sign_in(&app, host, "viewer@acme.example", MATE_PASSWORD).await;
    let team = get(&app, host, "/team", &cookie).await;
    assert_eq!(team.status, 200, "{}", team.body);
    assert!(!team.body.contains("value=\"invite\""), "no invite form");
    assert!(!team.body.contains("value=\"deactivate\""));
    assert!(team.body.contains("Sign out this session"), "own sessions");
    let write = post(
        &app,
        host,
        "/team",
        &cookie,
        &[
            ("csrf", &team.csrf()),
            ("action", "invite"),
            ("email", "x@acme.example"),
            ("role", "viewer"),
        ],
    )
    .await;
    assert_eq!(write.status, 403);
    let billing = get(&app, host, "/billing", &cookie).await;
    assert_eq!(billing.status, 200);
    assert!(!billing.body.contains("value=\"checkout\""));
    let buy = post(
        &app,
        host,
        "/billing",
        &cookie,
        &[
            ("csrf", &billing.csrf()),
            ("action", "checkout"),
            ("tier", "starter"),
        ],
    )
    .await;
    assert_eq!(buy.status, 403);
    assert_eq!(get(&app, host, "/audit", &cookie).await.status, 403);
}

#[tokio::test]
async fn billing_off_says_so_and_lists_the_tiers() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let host = "acme.mc.test";
    let cookie = owner(&app, "acme").await;
    let billing = get(&app, host, "/billing", &cookie).await;
    assert_eq!(billing.status, 200, "{}", billing.body);
    assert!(billing.body.contains("id=\"billing-off\""));
    for price in ["$99.00", "$499.00", "$2,999.00", "$0.05 per simulation"] {
        assert!(billing.body.contains(price), "{price}");
    }
    assert!(
        billing
            .header("content-security-policy")
            .contains("form-action 'self' https://checkout.stripe.com")
    );
    // No upgrade forms while billing is off; a forged request gets the service's 503.
    assert!(!billing.body.contains("value=\"checkout\""));
    let buy = post(
        &app,
        host,
        "/billing",
        &cookie,
        &[
            ("csrf", &billing.csrf()),
            ("action", "checkout"),
            ("tier", "starter"),
        ],
    )
    .await;
    assert_eq!(buy.status, 503, "{}", buy.body);
    assert!(buy.body.contains("billing is not configured"));
    let forged = post(
        &app,
        host,
        "/billing",
        &cookie,
        &[("csrf", "nope"), ("action", "portal")],
    )
    .await;
    assert_eq!(forged.status, 403);
    for path in ["/billing/success", "/billing/cancelled"] {
        let landing = get(&app, host, path, &cookie).await;
        assert_eq!(landing.status, 200, "{path}");
        assert!(landing.body.contains("Back to billing"));
    }
}

#[tokio::test]
async fn audit_lists_sign_ins_with_address_filters_and_pages() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let host = "acme.mc.test";
    let cookie = owner(&app, "acme").await;
    let audit = get(&app, host, "/audit", &cookie).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert!(
        audit.body.contains("<code>auth.login_succeeded</code>"),
        "{}",
        audit.body
    );
    assert!(audit.body.contains("webops-tests/1.0"), "user agent column");
    let filtered = get(&app, host, "/audit?action=user.role_changed", &cookie).await;
    assert_eq!(filtered.status, 200);
    assert!(!filtered.body.contains("<code>auth.login_succeeded</code>"));
    let bad = get(&app, host, "/audit?since=yesterday", &cookie).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("id=\"since-error\""));
    let backwards = get(
        &app,
        host,
        "/audit?since=2026-11-10&until=2026-11-01",
        &cookie,
    )
    .await;
    assert_eq!(backwards.status, 422);
    assert!(
        backwards.body.contains("id=\"until-error\""),
        "{}",
        backwards.body
    );
    let cursor = get(&app, host, "/audit?cursor=bogus", &cookie).await;
    assert_eq!(cursor.status, 422);
    // More than a page of events: a link to the older ones that the next page follows.
    let team = get(&app, host, "/team", &cookie).await;
    for _ in 0..55 {
        let done = post(
            &app,
            host,
            "/team",
            &cookie,
            &[("csrf", &team.csrf()), ("action", "two-factor")],
        )
        .await;
        assert_eq!(done.status, 303, "{}", done.body);
    }
    let first = get(
        &app,
        host,
        "/audit?action=team.two_factor_required",
        &cookie,
    )
    .await;
    assert_eq!(
        first
            .body
            .matches("<code>team.two_factor_required</code>")
            .count(),
        50
    );
    let at = first.body.find("rel=\"next\"").expect("a next link");
    let href_at = first.body[..at].rfind("href=\"").unwrap() + 6;
    let href = first.body[href_at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(
        href.contains("action=team.two_factor_required&cursor=aud_"),
        "{href}"
    );
    let second = get(&app, host, &href, &cookie).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second
            .body
            .matches("<code>team.two_factor_required</code>")
            .count(),
        5
    );
    assert!(!second.body.contains("rel=\"next\""));
}
