//! Billing against a real Stripe-compatible server: localstripe (started by
//! `scripts/localstripe.sh`, URL in `LOCALSTRIPE_URL`, default `http://127.0.0.1:8420`).
//! localstripe has no Checkout Sessions or Billing Portal: each test talks to Stripe through a
//! small capture server that records and answers those two endpoints and forwards everything
//! else to localstripe. localstripe is shared by every test, so every id is unique per test.

use crate::helpers::{Options, Resp, TestApp, bearer, simulation_body, spawn_app, spawn_with};
use chrono::{Duration, TimeZone, Utc};
use montecarlo_platform::config::Settings;
use poem::listener::{Acceptor, Listener};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, handler};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

fn localstripe() -> String {
    std::env::var("LOCALSTRIPE_URL").unwrap_or_else(|_| "http://127.0.0.1:8420".into())
}

const KEY: &str = "sk_test_montecarlo";

/// One request the capture server answered itself.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    idempotency_key: Option<String>,
    form: Vec<(String, String)>,
}

impl Recorded {
    fn get(&self, k: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

struct Capture {
    upstream: String,
    client: reqwest::Client,
    recorded: Mutex<Vec<Recorded>>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[handler]
async fn capture(req: &Request, body: poem::Body, cap: Data<&Arc<Capture>>) -> Response {
    let body = body.into_string().await.unwrap_or_default();
    let path = req.uri().path().to_string();
    let idem = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = |v: Value| {
        Response::builder()
            .content_type("application/json")
            .body(v.to_string())
    };
    if path == "/v1/checkout/sessions" || path == "/v1/billing_portal/sessions" {
        let n = {
            let mut r = cap.recorded.lock().unwrap();
            r.push(Recorded {
                path: path.clone(),
                idempotency_key: idem,
                form: parse_form(&body),
            });
            r.len()
        };
        // Stripe's documented response shapes, reduced to what the service reads.
        return if path == "/v1/checkout/sessions" {
            answer(json!({
                "id": format!("cs_test_{n}"), "object": "checkout.session", "mode": "subscription",
                "url": format!("https://checkout.stripe.com/c/pay/cs_test_{n}")
            }))
        } else {
            answer(json!({
                "id": format!("bps_{n}"), "object": "billing_portal.session",
                "url": format!("https://billing.stripe.com/p/session/bps_{n}")
            }))
        };
    }
    let mut url = format!("{}{}", cap.upstream, path);
    if let Some(q) = req.uri().query() {
        url = format!("{url}?{q}");
    }
    let mut fwd = cap.client.request(req.method().clone(), url).body(body);
    for h in [
        "authorization",
        "content-type",
        "idempotency-key",
        "stripe-version",
    ] {
        if let Some(v) = req.headers().get(h) {
            fwd = fwd.header(h, v.as_bytes());
        }
    }
    let resp = fwd.send().await.expect("localstripe answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Response::builder()
        .status(poem::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(text)
}

async fn spawn_capture() -> (String, Arc<Capture>) {
    let cap = Arc::new(Capture {
        upstream: localstripe(),
        client: reqwest::Client::new(),
        recorded: Mutex::new(Vec::new()),
    });
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let route = Route::new().at("/*path", capture).data(cap.clone());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(route));
    (format!("http://127.0.0.1:{port}/"), cap)
}

/// A service with billing on (Stripe = capture server → localstripe), its catalogue synced,
/// and localstripe delivering signed webhooks to it.
struct Billing {
    app: TestApp,
    cap: Arc<Capture>,
    secret: String,
    http: reqwest::Client,
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

async fn spawn_billing() -> Billing {
    spawn_billing_with(None).await
}

/// [`spawn_billing`] with the quota counters in Redis at `redis_url`.
async fn spawn_billing_with(redis_url: Option<String>) -> Billing {
    let (base, cap) = spawn_capture().await;
    let secret = unique("whsec_");
    let app = spawn_with(Options {
        stripe_api_base: Some(base.clone()),
        stripe_webhook_secrets: Some(format!("whsec_retired_one,{secret}")),
        redis_url,
        ..Options::default()
    })
    .await;
    let lines = sync_catalog(&app, &base).await;
    assert!(!lines.is_empty());
    let http = reqwest::Client::new();
    let hook = http
        .post(format!(
            "{}/_config/webhooks/{}",
            localstripe(),
            unique("hook_")
        ))
        .basic_auth(KEY, None::<&str>)
        .form(&[
            ("url", format!("{}/webhooks/stripe", app.base)),
            ("secret", secret.clone()),
        ])
        .send()
        .await
        .expect("localstripe is running (scripts/localstripe.sh)");
    assert!(hook.status().is_success(), "{:?}", hook.text().await);
    Billing {
        app,
        cap,
        secret,
        http,
    }
}

async fn sync_catalog(app: &TestApp, base: &str) -> Vec<String> {
    let url = app.database_url.clone();
    let base = base.to_string();
    let settings = Settings::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.clone()),
        "STRIPE_SECRET_KEY" => Some(KEY.into()),
        "STRIPE_API_BASE" => Some(base.clone()),
        "STRIPE_WEBHOOK_SECRETS" => Some("whsec_cli".into()),
        _ => None,
    })
    .unwrap();
    montecarlo_platform::startup::sync_catalog(settings)
        .await
        .expect("catalogue synced")
}

impl Billing {
    /// A form request to localstripe.
    async fn stripe(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", localstripe()))
            .basic_auth(KEY, None::<&str>)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn stripe_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", localstripe()))
            .basic_auth(KEY, None::<&str>)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn billing(&self, token: &str) -> Resp {
        self.app
            .get("/api/v1/billing", &[("authorization", &bearer(token))])
            .await
    }

    /// Signs `event` like Stripe (timestamp `at`, seconds) and posts it.
    async fn deliver(&self, event: &Value, secret: &str, at: i64) -> Resp {
        let payload = event.to_string();
        let sig = stripe_webhook::Webhook::generate_test_header(&payload, secret, Some(at));
        self.app
            .raw(
                reqwest::Method::POST,
                "/webhooks/stripe",
                &[
                    ("stripe-signature", &sig),
                    ("content-type", "application/json"),
                ],
                &payload,
            )
            .await
    }

    /// Starts checkout (which creates the customer) and returns the customer id.
    async fn customer(&self, token: &str, tier: &str) -> String {
        self.app
            .post(
                "/api/v1/billing/checkout",
                &[("authorization", &bearer(token))],
                json!({"tier": tier}),
            )
            .await
            .ok(200);
        let b = self.billing(token).await;
        b.ok(200)["customer_id"].as_str().unwrap().to_string()
    }

    /// What Checkout does after payment: card, then subscription to `plan`.
    async fn subscribe(&self, customer: &str, plan: &str) -> Value {
        self.add_card(customer, "4242424242424242").await;
        self.stripe(
            "/v1/subscriptions",
            &[("customer", customer), ("items[0][plan]", plan)],
        )
        .await
    }

    /// Attaches a card (by number: 4242… pays, 4000000000000341 attaches but every charge fails)
    /// and returns its id; the first card becomes the default.
    async fn add_card(&self, customer: &str, number: &str) -> String {
        let tok = self
            .stripe(
                "/v1/tokens",
                &[
                    ("card[number]", number),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2035"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        let card = self
            .stripe(
                &format!("/v1/customers/{customer}/sources"),
                &[("source", tok["id"].as_str().unwrap())],
            )
            .await;
        card["id"].as_str().unwrap().to_string()
    }

    async fn default_card(&self, customer: &str, card: &str) {
        self.stripe(
            &format!("/v1/customers/{customer}"),
            &[("default_source", card)],
        )
        .await;
    }

    /// Waits (20 s at most, polling the database, not the rate-limited API) until the tenant's
    /// billing status is `status`, then returns `GET /api/v1/billing`.
    async fn until(&self, token: &str, status: &str) -> Value {
        let pg = self.app.pg().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let now: Option<String> = sqlx::query_scalar(
                "SELECT b.billing_status FROM platform.billing_accounts b \
                 JOIN platform.tenants t ON t.id = b.tenant_id WHERE t.slug = $1",
            )
            .bind(&self.slug_of(token).await)
            .fetch_optional(&pg)
            .await
            .unwrap();
            if now.as_deref() == Some(status) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for billing status {status}; last: {now:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.billing(token).await.ok(200).clone()
    }

    async fn slug_of(&self, token: &str) -> String {
        // The token's claims name the tenant; decode the payload without verifying.
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        let pg = self.app.pg().await;
        let tid = claims["tid"]
            .as_str()
            .unwrap()
            .trim_start_matches("ten_")
            .to_string();
        sqlx::query_scalar("SELECT slug FROM platform.tenants WHERE id = $1::uuid")
            .bind(tid)
            .fetch_one(&pg)
            .await
            .unwrap()
    }

    /// Signs the owner in again (after the clock moved past the token's expiry).
    async fn login(&self, slug: &str) -> String {
        let r = self
            .app
            .post(
                "/api/v1/auth/login",
                &[("x-tenant-id", slug)],
                json!({"email": format!("owner@{slug}.example"), "password": "correct horse battery"}),
            )
            .await;
        r.ok(200)["access_token"].as_str().unwrap().to_string()
    }

    async fn tier_of(&self, token: &str) -> String {
        let me = self
            .app
            .get("/api/v1/auth/me", &[("authorization", &bearer(token))])
            .await;
        me.ok(200)["tenant"]["tier"].as_str().unwrap().to_string()
    }
}

fn slug() -> String {
    unique("b")
}

#[tokio::test]
async fn billing_off_answers_503_and_the_rest_works() {
    let app = spawn_app().await;
    let t = app.signup("nobill").await;
    let owner = bearer(&t.token);
    let d = app
        .get("/api/v1/billing", &[("authorization", &owner)])
        .await
        .problem(503);
    assert!(d.contains("billing is not configured"), "{d}");
    app.post(
        "/api/v1/billing/checkout",
        &[("authorization", &owner)],
        json!({"tier": "starter"}),
    )
    .await
    .problem(503);
    let d = app
        .raw(
            reqwest::Method::POST,
            "/webhooks/stripe",
            &[("stripe-signature", "t=1,v1=00")],
            "{}",
        )
        .await
        .problem(503);
    assert!(d.contains("billing is not configured"), "{d}");
    app.post(
        "/api/v1/simulations",
        &[("x-api-key", &t.keys[0])],
        simulation_body(),
    )
    .await
    .ok(201);
}

#[tokio::test]
async fn catalog_sync_is_idempotent() {
    let b = spawn_billing().await;
    // spawn_billing synced once; a second run finds every object and changes nothing.
    let url = b.cap.upstream.clone();
    let again = sync_catalog(&b.app, &format!("{url}/")).await;
    for line in &again {
        assert!(
            line.ends_with("exists") || line.contains("exists ("),
            "{line}"
        );
    }
    assert_eq!(again.len(), 6, "{again:?}");
    let plan = b.stripe_get("/v1/plans/mc_professional_monthly").await;
    assert_eq!(plan["amount"], 49900);
    assert_eq!(plan["interval"], "month");
    assert_eq!(plan["currency"], "usd");
    assert_eq!(
        b.stripe_get("/v1/plans/mc_enterprise_monthly").await["amount"],
        299900
    );
    assert_eq!(
        b.stripe_get("/v1/plans/mc_starter_monthly").await["amount"],
        9900
    );
    let pg = b.app.pg().await;
    let prices: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, stripe_price_id FROM platform.tiers ORDER BY sort_order")
            .fetch_all(&pg)
            .await
            .unwrap();
    assert_eq!(
        prices,
        vec![
            ("trial".into(), None),
            ("starter".into(), Some("mc_starter_monthly".into())),
            (
                "professional".into(),
                Some("mc_professional_monthly".into())
            ),
            ("enterprise".into(), Some("mc_enterprise_monthly".into())),
        ]
    );
}

#[tokio::test]
async fn checkout_and_portal_send_what_stripe_needs_and_customer_is_created_once() {
    let b = spawn_billing().await;
    let s = slug();
    let t = b.app.signup(&s).await;
    // Paying needs a verified owner: refused before any Stripe call.
    let d = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &[("authorization", &bearer(&t.token))],
            json!({"tier": "professional"}),
        )
        .await
        .problem(403);
    assert!(
        d.contains("not verified") && d.contains("start a paid plan"),
        "{d}"
    );
    assert!(b.cap.recorded.lock().unwrap().is_empty());
    b.app.verify_owner(&t).await;
    // That refused call took one of the trial's 5-request burst, which the rest of this test
    // needs whole: wait for it to refill (2 a second).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let owner = bearer(&t.token);
    let first = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &[("authorization", &owner)],
            json!({"tier": "professional"}),
        )
        .await;
    assert!(
        first.ok(200)["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    b.app
        .post(
            "/api/v1/billing/checkout",
            &[("authorization", &owner)],
            json!({"tier": "starter"}),
        )
        .await
        .ok(200);
    let portal = b
        .app
        .post(
            "/api/v1/billing/portal",
            &[("authorization", &owner)],
            json!({}),
        )
        .await;
    assert!(
        portal.ok(200)["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/")
    );
    let view = b.billing(&t.token).await.ok(200).clone();
    assert_eq!(view["status"], "pending_payment");
    assert_eq!(view["tier"], "trial");
    let customer = view["customer_id"].as_str().unwrap().to_string();
    let tenant_id = t.body["tenant"]["id"].as_str().unwrap().to_string();

    let rec = b.cap.recorded.lock().unwrap().clone();
    assert_eq!(rec.len(), 3, "{rec:?}");
    let c = &rec[0];
    assert_eq!(c.path, "/v1/checkout/sessions");
    assert_eq!(c.get("mode"), Some("subscription"));
    assert_eq!(c.get("customer"), Some(customer.as_str()));
    assert_eq!(c.get("client_reference_id"), Some(tenant_id.as_str()));
    assert_eq!(
        c.get("line_items[0][price]"),
        Some("mc_professional_monthly")
    );
    assert_eq!(c.get("line_items[0][quantity]"), Some("1"));
    let success = format!("http://{s}.mc.test/billing/success?session_id={{CHECKOUT_SESSION_ID}}");
    assert_eq!(c.get("success_url"), Some(success.as_str()));
    assert_eq!(
        c.get("cancel_url"),
        Some(format!("http://{s}.mc.test/billing/cancelled").as_str())
    );
    let key = c.idempotency_key.as_deref().expect("idempotency key");
    assert!(
        key.starts_with(&format!("checkout-{tenant_id}-professional-")),
        "{key}"
    );
    assert_eq!(
        rec[1].get("line_items[0][price]"),
        Some("mc_starter_monthly")
    );
    assert_ne!(rec[1].idempotency_key, rec[0].idempotency_key);
    let p = &rec[2];
    assert_eq!(p.path, "/v1/billing_portal/sessions");
    assert_eq!(p.get("customer"), Some(customer.as_str()));
    assert_eq!(
        p.get("return_url"),
        Some(format!("http://{s}.mc.test/billing").as_str())
    );

    // One customer at localstripe, with the tenant in its metadata.
    let cus = b.stripe_get(&format!("/v1/customers/{customer}")).await;
    assert_eq!(cus["metadata"]["tenant_id"], tenant_id.as_str());
    assert_eq!(cus["email"], format!("owner@{s}.example"));
    let list = b
        .stripe_get(&format!("/v1/customers?email=owner@{s}.example&limit=100"))
        .await;
    let same: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metadata"]["tenant_id"] == tenant_id.as_str())
        .collect();
    assert_eq!(same.len(), 1, "{list}");

    // Unknown or free tiers are refused before any Stripe call.
    let d = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &[("authorization", &owner)],
            json!({"tier": "trial"}),
        )
        .await
        .problem(422);
    assert!(d.contains("not a paid tier"), "{d}");
    assert_eq!(b.cap.recorded.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn members_and_api_keys_cannot_manage_billing() {
    let b = spawn_billing().await;
    let s = slug();
    let t = b.app.signup(&s).await;
    b.app
        .post(
            "/api/v1/users",
            &[("authorization", &bearer(&t.token))],
            json!({"email": format!("m@{s}.example"), "full_name": "Member", "password": "member password", "role": "member"}),
        )
        .await
        .ok(201);
    let login = b
        .app
        .post(
            "/api/v1/auth/login",
            &[("x-tenant-id", &s)],
            json!({"email": format!("m@{s}.example"), "password": "member password"}),
        )
        .await;
    let member = login.ok(200)["access_token"].as_str().unwrap().to_string();
    let d = b.billing(&member).await.problem(403);
    assert!(d.contains("owner or admin"), "{d}");
    b.app
        .post(
            "/api/v1/billing/checkout",
            &[("authorization", &bearer(&member))],
            json!({"tier": "starter"}),
        )
        .await
        .problem(403);
    b.app
        .post(
            "/api/v1/billing/portal",
            &[("authorization", &bearer(&member))],
            json!({}),
        )
        .await
        .problem(403);
    b.app
        .get("/api/v1/billing", &[("x-api-key", &t.keys[0])])
        .await
        .problem(401);
    assert!(b.cap.recorded.lock().unwrap().is_empty());
}

#[tokio::test]
async fn subscription_via_localstripe_moves_the_tier_and_payment_failure_follows_the_grace_period()
{
    let b = spawn_billing().await;
    let s = slug();
    let t = b.app.signup(&s).await;
    b.app.verify_owner(&t).await;
    let customer = b.customer(&t.token, "starter").await;
    // A second instance on the same database, which has served the tenant on the trial tier.
    let second = spawn_with(Options {
        database_url: Some(b.app.database_url.clone()),
        ..Options::default()
    })
    .await;
    let me = second
        .get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
        .await;
    assert_eq!(me.ok(200)["tenant"]["tier"], "trial");
    let started = std::time::Instant::now();
    let sub = b.subscribe(&customer, "mc_starter_monthly").await;
    assert_eq!(sub["status"], "active");
    let view = b.until(&t.token, "active").await;
    let latency = started.elapsed();
    eprintln!(
        "subscription → webhook → active: {latency:?} (localstripe waits 1 s before delivering)"
    );
    assert_eq!(view["tier"], "starter");
    assert_eq!(view["subscription_id"], sub["id"]);
    assert_eq!(view["subscription_status"], "active");
    assert!(view["current_period_end"].is_string(), "{view}");
    assert!(!view["invoices"].as_array().unwrap().is_empty(), "{view}");
    assert_eq!(view["invoices"][0]["amount_cents"], 9900);
    assert_eq!(b.tier_of(&t.token).await, "starter");

    // The second instance cached the tenant on the trial tier before the webhook; it hears the
    // change through NOTIFY (polled below the trial tier's sustained rate).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let me = second
            .get("/api/v1/auth/me", &[("x-api-key", &t.keys[0])])
            .await;
        if me.ok(200)["tenant"]["tier"] == "starter" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "second instance still on {}",
            me.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    }
    let audit: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT from_status, to_status, event_id FROM platform.billing_audit ORDER BY id",
    )
    .fetch_all(&b.app.pg().await)
    .await
    .unwrap();
    assert_eq!(audit.last().unwrap().1, "active");
    assert!(
        audit
            .last()
            .unwrap()
            .2
            .as_deref()
            .unwrap()
            .starts_with("evt_"),
        "{audit:?}"
    );

    // The card needs 3-D Secure and the customer fails it: the renewal invoice is not paid →
    // invoice.payment_failed, subscription past_due; keys keep working during the grace period.
    let good_card = b.stripe_get(&format!("/v1/customers/{customer}")).await["default_source"]
        .as_str()
        .unwrap()
        .to_string();
    let bad_card = b.add_card(&customer, "4000002760003184").await;
    b.default_card(&customer, &bad_card).await;
    let sub_id = sub["id"].as_str().unwrap();
    let invoice = b
        .stripe(
            "/v1/invoices",
            &[("customer", &customer), ("subscription", sub_id)],
        )
        .await;
    let inv_id = invoice["id"].as_str().unwrap();
    let paying = b.stripe(&format!("/v1/invoices/{inv_id}/pay"), &[]).await;
    let pi = b
        .stripe_get(&format!(
            "/v1/payment_intents/{}",
            paying["payment_intent"].as_str().unwrap()
        ))
        .await;
    assert_eq!(pi["status"], "requires_action", "{pi}");
    b.stripe(
        &format!(
            "/v1/payment_intents/{}/_authenticate",
            pi["id"].as_str().unwrap()
        ),
        &[
            ("client_secret", pi["client_secret"].as_str().unwrap()),
            ("success", "false"),
        ],
    )
    .await;
    let view = b.until(&t.token, "past_due").await;
    assert_eq!(view["tier"], "starter");
    let grace =
        chrono::DateTime::parse_from_rfc3339(view["grace_until"].as_str().unwrap()).unwrap();
    assert_eq!(
        grace.with_timezone(&Utc),
        Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap()
    );
    let ran = b
        .app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0])],
            simulation_body(),
        )
        .await;
    ran.ok(201);
    let warning = ran
        .headers
        .get("warning")
        .expect("a warning header while past due")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        warning.starts_with(
            "299 - \"payment failed: the starter tier is kept until 2026-11-17T12:00:00Z"
        ),
        "{warning}"
    );

    // Grace over → suspended: trial limits with the trial over (402), reads still work.
    b.app.advance(Duration::days(8));
    let t = crate::helpers::Tenant {
        token: b.login(&s).await,
        ..t
    };
    let view = b.billing(&t.token).await.ok(200).clone();
    assert_eq!(view["status"], "suspended", "{view}");
    assert_eq!(view["tier"], "trial");
    let refused = b
        .app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0])],
            simulation_body(),
        )
        .await;
    let detail = refused.problem(402);
    assert!(detail.contains("suspended"), "{detail}");
    assert!(detail.contains("/api/v1/billing/portal"), "{detail}");
    assert_eq!(
        refused.body["portal"], "/api/v1/billing/portal",
        "{}",
        refused.body
    );
    b.app
        .get("/api/v1/simulations", &[("x-api-key", &t.keys[0])])
        .await
        .ok(200);

    // A working card pays the invoice → active on starter again.
    b.default_card(&customer, &good_card).await;
    b.stripe(&format!("/v1/invoices/{inv_id}/pay"), &[]).await;
    let view = b.until(&t.token, "active").await;
    assert_eq!(view["tier"], "starter");
    assert!(view.get("grace_until").is_none(), "{view}");
    b.app
        .post(
            "/api/v1/simulations",
            &[("x-api-key", &t.keys[0])],
            simulation_body(),
        )
        .await
        .ok(201);

    // Plan change with proration, cancel at period end and resume, applied at once.
    let owner = bearer(&t.token);
    let changed = b
        .app
        .request(
            reqwest::Method::PUT,
            "/api/v1/billing/subscription",
            &[("authorization", &owner)],
            Some(json!({"tier": "professional"})),
        )
        .await;
    assert_eq!(changed.ok(200)["tier"], "professional");
    let live = b.stripe_get(&format!("/v1/subscriptions/{sub_id}")).await;
    assert_eq!(live["plan"]["id"], "mc_professional_monthly");
    let cancelled = b
        .app
        .post(
            "/api/v1/billing/subscription/cancel",
            &[("authorization", &owner)],
            json!({}),
        )
        .await;
    assert_eq!(cancelled.ok(200)["cancel_at_period_end"], true);
    let resumed = b
        .app
        .post(
            "/api/v1/billing/subscription/resume",
            &[("authorization", &owner)],
            json!({}),
        )
        .await;
    assert_eq!(resumed.ok(200)["cancel_at_period_end"], false);

    // Revenue for the platform admin.
    let rev = b
        .app
        .get(
            "/api/v1/admin/billing/summary",
            &[("authorization", &b.app.admin_auth().await)],
        )
        .await;
    let rev = rev.ok(200);
    assert_eq!(rev["mrr_cents"], 49900, "{rev}");
    assert_eq!(rev["paying_tenants"], 1);
    assert_eq!(rev["past_due_tenants"], 0);
    assert_eq!(rev["new_subscriptions"], 1, "{rev}");
    assert_eq!(rev["upgrades"], 1, "{rev}");
    assert_eq!(rev["downgrades"], 0, "{rev}");
    assert_eq!(rev["churned"], 0, "{rev}");
    let tenants = rev["tenants"].as_array().unwrap();
    assert!(tenants.len() <= 50, "{rev}");
    let mine = tenants
        .iter()
        .find(|x| x["customer_id"] == json!(customer))
        .unwrap_or_else(|| panic!("{rev}"));
    assert_eq!(mine["tier"], "professional", "{rev}");
    assert_eq!(mine["billing_status"], "active", "{rev}");
    assert_eq!(mine["subscription_status"], "active", "{rev}");
    assert_eq!(mine["cancel_at_period_end"], false, "{rev}");
    assert!(mine["current_period_end"].is_string(), "{rev}");
    assert_eq!(mine["overage_simulations"], 0, "{rev}");
    assert_eq!(mine["overage_amount_cents"], 0, "{rev}");
    let admin = b.app.admin_auth().await;
    let page = b
        .app
        .get(
            "/api/v1/admin/billing/summary?limit=1",
            &[("authorization", &admin)],
        )
        .await;
    let page = page.ok(200);
    assert_eq!(page["tenants"].as_array().unwrap().len(), 1, "{page}");
    if page["total_tenants"].as_i64().unwrap() > 1 {
        assert_eq!(page["next_offset"], 1, "{page}");
    }
    let too_many = b
        .app
        .get(
            "/api/v1/admin/billing/summary?limit=101",
            &[("authorization", &admin)],
        )
        .await;
    too_many.problem(422);

    // Deleting the subscription (period over) → cancelled, back to trial limits.
    let del = b
        .http
        .delete(format!("{}/v1/subscriptions/{sub_id}", localstripe()))
        .basic_auth(KEY, None::<&str>)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success());
    let view = b.until(&t.token, "cancelled").await;
    assert_eq!(view["tier"], "trial");
    let rev = b
        .app
        .get(
            "/api/v1/admin/billing/summary",
            &[("authorization", &b.app.admin_auth().await)],
        )
        .await;
    let rev = rev.ok(200);
    assert_eq!(rev["mrr_cents"], 0, "{rev}");
    assert_eq!(rev["churned"], 1, "{rev}");
    // Every billing transition is also an event of the tenant's own audit log.
    let audit = b
        .app
        .get(
            "/api/v1/audit?action=billing.state_changed",
            &[("authorization", &bearer(&t.token))],
        )
        .await;
    let audit = audit.ok(200);
    let items = audit["items"].as_array().expect("items");
    assert!(items.len() >= 2, "{audit}");
    assert!(
        items.iter().all(|e| e["action"] == "billing.state_changed"),
        "{audit}"
    );
}

fn subscription_event(
    id: &str,
    customer: &str,
    sub: &str,
    status: &str,
    plan: &str,
    created: i64,
) -> Value {
    json!({
        "id": id, "object": "event", "type": "customer.subscription.updated", "created": created,
        "livemode": false, "pending_webhooks": 1, "api_version": "2025-09-30.clover",
        "data": {"object": {
            "id": sub, "object": "subscription", "customer": customer, "status": status,
            "cancel_at_period_end": false,
            "items": {"object": "list", "data": [{
                "id": format!("si_{sub}"), "object": "subscription_item", "plan": {"id": plan},
                "current_period_start": created, "current_period_end": created + 30 * 86400
            }]}
        }}
    })
}

#[tokio::test]
async fn webhook_attacks_change_nothing_and_events_apply_once_and_in_order() {
    let b = spawn_billing().await;
    let s = slug();
    let t = b.app.signup(&s).await;
    b.app.verify_owner(&t).await;
    let customer = b.customer(&t.token, "starter").await;
    let now = Utc::now().timestamp();
    let sub = unique("sub_");
    let newer = subscription_event(
        &unique("evt_"),
        &customer,
        &sub,
        "active",
        "mc_professional_monthly",
        now,
    );
    let older = subscription_event(
        &unique("evt_"),
        &customer,
        &sub,
        "past_due",
        "mc_starter_monthly",
        now - 60,
    );

    // Forged (unknown secret), stale (400 s old), altered after signing, unsigned.
    let d = b.deliver(&newer, "whsec_attacker", now).await.problem(400);
    assert!(d.contains("matches no configured webhook secret"), "{d}");
    let d = b.deliver(&newer, &b.secret, now - 400).await.problem(400);
    assert!(d.contains("300 s"), "{d}");
    let payload = newer.to_string();
    let sig = stripe_webhook::Webhook::generate_test_header(&payload, &b.secret, Some(now));
    let altered = payload.replace("mc_professional_monthly", "mc_enterprise_monthly");
    b.app
        .raw(
            reqwest::Method::POST,
            "/webhooks/stripe",
            &[("stripe-signature", &sig)],
            &altered,
        )
        .await
        .problem(400);
    let d = b
        .app
        .raw(reqwest::Method::POST, "/webhooks/stripe", &[], &payload)
        .await
        .problem(400);
    assert!(d.contains("Stripe-Signature"), "{d}");
    let view = b.billing(&t.token).await.ok(200).clone();
    assert_eq!(view["status"], "pending_payment");
    assert_eq!(view["tier"], "trial");

    // Several v1 signatures (rotation): a bad one first, the right one second.
    let good = stripe_webhook::Webhook::generate_test_header(&payload, &b.secret, Some(now));
    let v1 = good.split_once(",v1=").unwrap().1;
    let rotated = format!("t={now},v1={},v1={v1}", "0".repeat(64));
    let started = std::time::Instant::now();
    let r = b
        .app
        .raw(
            reqwest::Method::POST,
            "/webhooks/stripe",
            &[("stripe-signature", &rotated)],
            &payload,
        )
        .await;
    let took = started.elapsed();
    eprintln!("one subscription webhook handled in {took:?}");
    assert_eq!(r.ok(200)["duplicate"], false, "{}", r.body);
    assert_eq!(b.tier_of(&t.token).await, "professional");

    // The same event again (a redelivery, freshly signed): acknowledged, nothing changes.
    let again = b.deliver(&newer, &b.secret, now).await;
    assert_eq!(again.ok(200)["duplicate"], true);
    // An older state arriving late is recorded and ignored.
    let late = b.deliver(&older, &b.secret, now).await;
    assert!(
        late.ok(200)["outcome"]
            .as_str()
            .unwrap()
            .starts_with("stale"),
        "{}",
        late.body
    );
    let view = b.billing(&t.token).await.ok(200).clone();
    assert_eq!(view["status"], "active");
    assert_eq!(view["tier"], "professional");

    // Unknown types and unknown customers are acknowledged and ignored.
    let mut other = subscription_event(
        &unique("evt_"),
        "cus_nobody",
        &unique("sub_"),
        "canceled",
        "mc_starter_monthly",
        now + 5,
    );
    let r = b.deliver(&other, &b.secret, now).await;
    assert_eq!(r.ok(200)["outcome"], "ignored: unknown customer");
    other["type"] = json!("charge.dispute.created");
    other["id"] = json!(unique("evt_"));
    let r = b.deliver(&other, &b.secret, now).await;
    assert!(
        r.ok(200)["outcome"]
            .as_str()
            .unwrap()
            .contains("not handled"),
        "{}",
        r.body
    );
    assert_eq!(b.tier_of(&t.token).await, "professional");

    // Replaying a processed event long after (stale signature) is refused outright.
    b.deliver(&newer, &b.secret, now - 3600).await.problem(400);

    // 20 deliveries of fresh events for p50/p99 of the handler.
    let mut times = Vec::new();
    for i in 0..20 {
        let ev = subscription_event(
            &unique("evt_"),
            &customer,
            &sub,
            "active",
            "mc_professional_monthly",
            now + 10 + i,
        );
        let started = std::time::Instant::now();
        b.deliver(&ev, &b.secret, Utc::now().timestamp())
            .await
            .ok(200);
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!(
        "webhook handling p50 {:?} p99 {:?} (n = 20, HTTP round trip included)",
        times[9], times[19]
    );
}

#[tokio::test]
async fn overage_is_billed_once_per_period_on_the_next_invoice() {
    // Quota counters in Redis: November's Redis keys are absent (expired), its totals were
    // copied to PostgreSQL (`Quotas::persist_totals`, written here directly), and the invoice
    // bills them from there, once.
    let b = spawn_billing_with(Some("redis://127.0.0.1:6379".into())).await;
    let s = slug();
    let t = b.app.signup(&s).await;
    b.app.verify_owner(&t).await;
    let customer = b.customer(&t.token, "starter").await;
    let sub = b.subscribe(&customer, "mc_starter_monthly").await;
    b.until(&t.token, "active").await;
    // November: 1 012 simulations on a 1 000 quota (the durable copy in PostgreSQL).
    let tenant_id = t.body["tenant"]["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("ten_")
        .to_string();
    let pg = b.app.pg().await;
    sqlx::query(
        "INSERT INTO platform.quota_counters (tenant_id, period, used, overage) VALUES ($1::uuid, '2026-11', 1012, 12) \
         ON CONFLICT (tenant_id, period) DO UPDATE SET used = 1012, overage = 12",
    )
    .bind(&tenant_id)
    .execute(&pg)
    .await
    .unwrap();
    let view = b.billing(&t.token).await.ok(200).clone();
    assert_eq!(view["overage_simulations"], 12);
    assert_eq!(view["overage_amount_cents"], 60);
    // December: the renewal invoice (a draft) is created → one overage item of 12 × $0.05.
    b.app.advance(Duration::days(21));
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let inv = b
        .stripe(
            "/v1/invoices",
            &[("customer", &customer), ("subscription", &sub_id)],
        )
        .await;
    let inv_id = inv["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.billing_overage")
            .fetch_one(&pg)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no overage row");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A second draft invoice this month does not bill November again.
    b.stripe(
        "/v1/invoices",
        &[("customer", &customer), ("subscription", &sub_id)],
    )
    .await;
    let event_id: String = sqlx::query_scalar(
        "SELECT event_id FROM platform.stripe_events WHERE type = 'invoice.created' AND outcome LIKE 'applied%'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM platform.stripe_events WHERE type = 'invoice.created' AND outcome LIKE '%already billed%'",
        )
        .fetch_one(&pg)
        .await
        .unwrap();
        if n == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "second invoice not seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let row: (String, i64, i64, String) = sqlx::query_as(
        "SELECT period, simulations, amount_cents, invoice_id FROM platform.billing_overage",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(row, ("2026-11".into(), 12, 60, inv_id.clone()));
    // localstripe lists only pending items; the one we attached is read by its id.
    let item_id: String =
        sqlx::query_scalar("SELECT invoice_item_id FROM platform.billing_overage")
            .fetch_one(&pg)
            .await
            .unwrap();
    let item = b.stripe_get(&format!("/v1/invoiceitems/{item_id}")).await;
    assert_eq!(item["amount"], 60, "{item}");
    assert_eq!(item["currency"], "usd");
    assert_eq!(item["invoice"], inv_id.as_str());
    assert!(
        item["description"]
            .as_str()
            .unwrap()
            .starts_with("Overage 2026-11: 12 simulations"),
        "{item}"
    );
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.stripe_events WHERE type = 'invoice.created' AND outcome LIKE 'applied%'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(applied, 1);
    assert!(event_id.starts_with("evt_"));

    // The customer is deleted in Stripe → cancelled, back to trial limits, customer forgotten.
    let del = b
        .http
        .delete(format!("{}/v1/customers/{customer}", localstripe()))
        .basic_auth(KEY, None::<&str>)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success());
    let t = crate::helpers::Tenant {
        token: b.login(&s).await,
        ..t
    };
    let view = b.until(&t.token, "cancelled").await;
    assert_eq!(view["tier"], "trial");
    assert!(view.get("customer_id").is_none(), "{view}");
}

#[tokio::test]
async fn checkout_session_completed_applies_the_subscription_stripe_has() {
    let b = spawn_billing().await;
    let s = slug();
    let t = b.app.signup(&s).await;
    b.app.verify_owner(&t).await;
    let customer = b.customer(&t.token, "professional").await;
    let sub = b.subscribe(&customer, "mc_professional_monthly").await;
    let tenant_id = t.body["tenant"]["id"].as_str().unwrap();
    let now = Utc::now().timestamp();
    let event = json!({
        "id": unique("evt_"), "object": "event", "type": "checkout.session.completed",
        "created": now, "livemode": false, "pending_webhooks": 1,
        "data": {"object": {
            "id": unique("cs_test_"), "object": "checkout.session", "mode": "subscription",
            "client_reference_id": tenant_id, "customer": customer, "subscription": sub["id"],
            "status": "complete", "payment_status": "paid"
        }}
    });
    let r = b.deliver(&event, &b.secret, now).await;
    let outcome = r.ok(200)["outcome"].as_str().unwrap().to_string();
    assert!(outcome.starts_with("applied: subscription"), "{outcome}");
    assert_eq!(b.tier_of(&t.token).await, "professional");
    let view = b.until(&t.token, "active").await;
    assert_eq!(view["subscription_id"], sub["id"]);
}
