//! `spawn_app()`: the real application on port 0 against a fresh database.

use chrono::{Duration, TimeZone, Utc};
use montecarlo_platform::clock::{Clock, ManualClock};
use montecarlo_platform::config::{FailPoints, Settings};
use montecarlo_platform::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// The bootstrap secret: it only creates the first platform admin.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghij";
pub const ADMIN_EMAIL: &str = "ops@platform.test";
pub const ADMIN_PASSWORD: &str = "platform admin passphrase";

/// The first admin of a test database, shared by every instance on it: its TOTP secret and
/// the latest token (a TOTP code is accepted once, so instances reuse the token).
#[derive(Clone, Default)]
struct AdminState {
    secret: Vec<u8>,
    token: Option<(String, chrono::DateTime<Utc>)>,
}

static ADMINS: std::sync::LazyLock<
    tokio::sync::Mutex<std::collections::HashMap<String, AdminState>>,
> = std::sync::LazyLock::new(Default::default);

/// The current 6-digit TOTP code of `secret` at `at`.
pub fn totp_code(secret: &[u8], at: chrono::DateTime<Utc>) -> String {
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .build()
        .expect("totp")
        .generate(at.timestamp() as u64)
        .to_string()
}

/// The raw secret of an `otpauth://` URI or a base32 secret.
pub fn totp_secret_of(text: &str) -> Vec<u8> {
    let b32 = match text.split_once("secret=") {
        Some((_, rest)) => rest.split('&').next().unwrap(),
        None => text,
    };
    totp_rs::Secret::try_from_base32(b32)
        .expect("base32 secret")
        .as_ref()
        .to_vec()
}
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdefghijklmnop";

#[allow(dead_code)]
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub database_url: String,
    /// The request pool's connection (the application role).
    pub database_app_url: String,
    pub app_state: Arc<montecarlo_platform::app::App>,
}

#[derive(Default, Clone)]
pub struct Options {
    pub max_connections: Option<u32>,
    pub fail_points: FailPoints,
    pub redis_url: Option<String>,
    pub redis_prefix: Option<String>,
    pub database_url: Option<String>,
    pub login_attempts_per_minute: Option<u32>,
    pub trusted_proxies: Option<String>,
    pub max_in_flight: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    /// Billing: `STRIPE_API_BASE` (turns billing on with a test key).
    pub stripe_api_base: Option<String>,
    /// Billing: `STRIPE_WEBHOOK_SECRETS`.
    pub stripe_webhook_secrets: Option<String>,
    /// Leave `ADMIN_TOKEN` unset (the admin API and the admin's `/metrics` access off).
    pub no_admin_token: bool,
    /// Further environment settings (e.g. `JOB_WORKERS`); jobs are off (`JOB_WORKERS=0`)
    /// unless a test sets them.
    pub env: Vec<(&'static str, String)>,
}

fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            montecarlo_platform::telemetry::init(montecarlo_platform::config::LogFormat::Text);
        }
    });
}

pub fn fresh_database_url() -> String {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{base}/test_{}", uuid::Uuid::new_v4().simple())
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    init_logs();
    let database_url = opts.database_url.clone().unwrap_or_else(fresh_database_url);
    let prefix = opts
        .redis_prefix
        .clone()
        .unwrap_or_else(|| format!("test:{}:", uuid::Uuid::new_v4().simple()));
    let login = opts.login_attempts_per_minute.map(|n| n.to_string());
    let proxies = opts.trusted_proxies.clone();
    let in_flight = opts.max_in_flight.map(|n| n.to_string());
    let timeout = opts.request_timeout_secs.map(|n| n.to_string());
    let max = opts.max_connections.map(|m| m.to_string());
    let redis = opts.redis_url.clone();
    let stripe_base = opts.stripe_api_base.clone();
    let stripe_secrets = opts.stripe_webhook_secrets.clone();
    let url = database_url.clone();
    let env = opts.env.clone();
    let admin = (!opts.no_admin_token).then(|| ADMIN_TOKEN.to_string());
    let mut settings = Settings::from_lookup(|k| match k {
        k if env.iter().any(|(n, _)| *n == k) => {
            env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        }
        "JOB_WORKERS" => Some("0".into()),
        "DATABASE_URL" => Some(url.clone()),
        "BIND_ADDRESS" => Some("127.0.0.1:0".into()),
        "BASE_DOMAIN" => Some("mc.test".into()),
        "JWT_SECRET" => Some(JWT_SECRET.into()),
        "ADMIN_TOKEN" => admin.clone(),
        "REDIS_KEY_PREFIX" => Some(prefix.clone()),
        "REDIS_URL" => redis.clone(),
        "DATABASE_MAX_CONNECTIONS" => max.clone(),
        "SIMULATION_QUEUE_WAIT_MS" => Some("300".into()),
        "LOGIN_ATTEMPTS_PER_MINUTE" => login.clone(),
        "TRUSTED_PROXIES" => proxies.clone(),
        "MAX_IN_FLIGHT_REQUESTS" => in_flight.clone(),
        "REQUEST_TIMEOUT_SECS" => timeout.clone(),
        "STRIPE_SECRET_KEY" => stripe_base
            .as_ref()
            .map(|_| "sk_test_montecarlo".to_string()),
        "STRIPE_API_BASE" => stripe_base.clone(),
        "STRIPE_WEBHOOK_SECRETS" => stripe_secrets.clone(),
        _ => None,
    })
    .expect("test settings");
    settings.fail_points = opts.fail_points;
    let database_app_url = settings.database_app_url.expose().clone();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap(),
    ));
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let app_state = app.app();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
        database_url,
        database_app_url,
        app_state,
    }
}

/// A signed-up tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub slug: String,
    pub token: String,
    pub keys: Vec<String>,
    pub key_ids: Vec<String>,
    pub body: Value,
}

#[allow(dead_code)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub content_type: String,
}

impl Resp {
    /// Asserts an RFC 9457 problem with this status and returns its detail.
    #[track_caller]
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "content-type {} for {}",
            self.content_type,
            self.body
        );
        assert_eq!(self.body["status"], json!(status), "{}", self.body);
        assert!(self.body["title"].is_string(), "{}", self.body);
        assert!(self.body["type"].is_string(), "{}", self.body);
        let detail = self.body["detail"].as_str().expect("detail").to_string();
        assert!(detail.len() > 10, "detail too vague: {detail:?}");
        detail
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        &self.body
    }
}

pub fn simulation_body() -> Value {
    json!({
        "assets": [
            {"name": "Equities", "weight": 0.6, "drift": 0.07, "volatility": 0.16},
            {"name": "Bonds", "weight": 0.4, "drift": 0.03, "volatility": 0.06}
        ],
        "correlation": [[1.0, 0.2], [0.2, 1.0]],
        "initial_value": 100000.0,
        "horizon_years": 5,
        "steps_per_year": 12,
        "paths": 2000,
        "seed": 7
    })
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request(Method::GET, path, headers, None).await
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Resp {
        self.request(Method::POST, path, headers, Some(body)).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn signup(&self, slug: &str) -> Tenant {
        let resp = self
            .post(
                "/api/v1/signup",
                &[],
                json!({
                    "organisation_name": format!("{slug} Org"),
                    "slug": slug,
                    "full_name": "Owner Person",
                    "email": format!("owner@{slug}.example"),
                    "password": "correct horse battery"
                }),
            )
            .await;
        let body = resp.ok(201).clone();
        Tenant {
            slug: slug.to_string(),
            token: body["access_token"].as_str().unwrap().to_string(),
            keys: body["api_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["secret"].as_str().unwrap().to_string())
                .collect(),
            key_ids: body["api_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_string())
                .collect(),
            body,
        }
    }

    /// Signs up and moves the tenant to `tier` (tests that make many calls need a larger burst).
    pub async fn signup_on(&self, slug: &str, tier: &str) -> Tenant {
        let t = self.signup(slug).await;
        self.admin_patch(slug, json!({"tier": tier})).await.ok(200);
        t
    }

    /// A signed-in platform admin's token: the first admin is bootstrapped with `ADMIN_TOKEN`
    /// (or created through the service when the test runs without one), then signs in with
    /// password and TOTP; the token is reused until the test clock passes its expiry.
    pub async fn admin_token(&self) -> String {
        let mut admins = ADMINS.lock().await;
        let now = self.clock.now();
        if let Some(state) = admins.get(&self.database_url)
            && let Some((token, exp)) = &state.token
            && *exp > now + Duration::seconds(30)
        {
            return token.clone();
        }
        if !admins.contains_key(&self.database_url) {
            let body = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
            let r = self
                .post(
                    "/api/v1/admin/bootstrap",
                    &[("authorization", &bearer(ADMIN_TOKEN))],
                    body,
                )
                .await;
            let secret = if r.status == 201 {
                totp_secret_of(r.body["totp_secret"].as_str().unwrap())
            } else {
                let ctx = montecarlo_platform::app::admins::AdminContext::cli();
                let created = self
                    .app_state
                    .admins
                    .create(
                        &ctx,
                        &montecarlo_platform::domain::Email::parse(ADMIN_EMAIL).unwrap(),
                        montecarlo_platform::domain::Password::parse(ADMIN_PASSWORD).unwrap(),
                    )
                    .await
                    .expect("admin created");
                totp_secret_of(&created.totp_secret)
            };
            admins.insert(
                self.database_url.clone(),
                AdminState {
                    secret,
                    token: None,
                },
            );
        }
        let state = admins.get_mut(&self.database_url).unwrap();
        let r = self
            .post(
                "/api/v1/admin/auth/login",
                &[],
                json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                       "totp_code": totp_code(&state.secret, now)}),
            )
            .await;
        let body = r.ok(200);
        let token = body["access_token"].as_str().unwrap().to_string();
        let exp = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        state.token = Some((token.clone(), exp));
        token
    }

    /// `Authorization: Bearer <admin token>`.
    pub async fn admin_auth(&self) -> String {
        bearer(&self.admin_token().await)
    }

    pub async fn admin_patch(&self, slug: &str, patch: Value) -> Resp {
        let auth = self.admin_auth().await;
        self.request(
            Method::PATCH,
            &format!("/api/v1/admin/tenants/{slug}"),
            &[("authorization", &auth)],
            Some(patch),
        )
        .await
    }

    pub async fn pg(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url)
            .await
            .unwrap()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Reads status, headers and body (JSON when it parses, else the text).
async fn read(resp: reqwest::Response) -> Resp {
    let status = resp.status();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Resp {
        status,
        headers,
        body,
        content_type,
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A signed-in user's tokens.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub id: String,
    pub body: Value,
}

#[allow(dead_code)]
impl TestApp {
    /// Signs in to `slug` (asserting 200).
    pub async fn login(&self, slug: &str, email: &str, password: &str) -> Session {
        let resp = self
            .post(
                "/api/v1/auth/login",
                &[("x-tenant-id", slug), ("user-agent", "tests/1.0")],
                json!({"email": email, "password": password}),
            )
            .await;
        session_of(resp.ok(200))
    }

    /// Adds a user with `role` as `manager` and signs them in; returns (user id, session).
    pub async fn add_user(
        &self,
        slug: &str,
        manager: &str,
        email: &str,
        role: &str,
    ) -> (String, Session) {
        let created = self
            .post(
                "/api/v1/users",
                &[("authorization", &bearer(manager))],
                json!({"email": email, "full_name": "Team Mate", "password": "team mate password", "role": role}),
            )
            .await;
        let id = created.ok(201)["id"].as_str().unwrap().to_string();
        (id, self.login(slug, email, "team mate password").await)
    }
}

/// The tokens of a sign-in or refresh answer.
#[allow(dead_code)]
pub fn session_of(body: &Value) -> Session {
    Session {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
        id: body["session_id"].as_str().unwrap_or_default().to_string(),
        body: body.clone(),
    }
}

/// Polls `check` every 20 ms until it returns true; panics after `within`. Returns the time it
/// took.
#[allow(dead_code)]
pub async fn eventually<F, Fut>(within: std::time::Duration, mut check: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[allow(dead_code)]
impl TestApp {
    /// The application's (manual) clock now.
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use montecarlo_platform::clock::Clock;
        self.clock.now()
    }
}

/// The token in the link to `path` (e.g. `/verify-email`) in `text`.
#[allow(dead_code)]
pub fn token_in(text: &str, path: &str) -> Option<String> {
    let marker = format!("{path}?token=");
    let start = text.find(&marker)? + marker.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (token.len() == 43).then_some(token)
}

#[allow(dead_code)]
impl TestApp {
    /// The token of the newest outbox message to `recipient` linking to `path`, read from
    /// `platform.mail_outbox` (for tests whose subject is not mail; the mail tests read the
    /// SMTP sink).
    pub async fn outbox_token(&self, recipient: &str, path: &str) -> String {
        let pool = self.pg().await;
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body_text FROM platform.mail_outbox WHERE recipient = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(recipient)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        bodies
            .iter()
            .find_map(|b| token_in(b, path))
            .unwrap_or_else(|| panic!("no message to {recipient} with a {path} link"))
    }

    /// Verifies the owner's address of `t` (signed up by [`TestApp::signup`]) with the token
    /// from the outbox, as the owner would from the message.
    pub async fn verify_owner(&self, t: &Tenant) {
        let email = format!("owner@{}.example", t.slug);
        let token = self.outbox_token(&email, "/verify-email").await;
        self.post(
            "/api/v1/auth/verify-email",
            &[("x-tenant-id", &t.slug)],
            json!({ "token": token }),
        )
        .await
        .ok(200);
    }
}

/// Decodes quoted-printable text (RFC 2045 §6.7) as a mail client would: soft line breaks
/// (`=` at the end of a line) joined, `=XX` turned back into the byte.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A message received by the [`MailSink`].
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The whole message as received (headers and body).
    pub raw: String,
    /// The `Subject` header.
    pub subject: String,
    /// The envelope recipient.
    pub to: String,
}

#[allow(dead_code)]
impl ReceivedMail {
    /// The token in the message's link to `path`.
    #[track_caller]
    pub fn token(&self, path: &str) -> String {
        token_in(&self.raw, path)
            .unwrap_or_else(|| panic!("no {path} link in the message:\n{}", self.raw))
    }
}

/// A real SMTP server for a test (aiosmtpd, `tests/mail/sink.py`) on its own port, storing
/// each message as a file in its own directory. Stopped when dropped.
#[allow(dead_code)]
pub struct MailSink {
    pub port: u16,
    pub dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

/// The venv's python with aiosmtpd; installs it (scripts/mail-sink.sh) once when missing.
fn sink_python() -> std::path::PathBuf {
    static READY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let tools = std::env::var("CONTRACT_TOOLS")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| root.join(".tools"));
            let python = tools.join("venv/bin/python");
            let has = std::process::Command::new(&python)
                .args(["-c", "import aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success());
            if !has {
                let ok = std::process::Command::new("bash")
                    .arg(root.join("scripts/mail-sink.sh"))
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(
                    ok,
                    "could not install aiosmtpd: run bash scripts/mail-sink.sh"
                );
            }
            python
        })
        .clone()
}

#[allow(dead_code)]
impl MailSink {
    /// A free loopback port (nothing listens on it yet).
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A sink on a free port.
    pub async fn start() -> Self {
        Self::start_on(Self::free_port()).await
    }

    /// A sink on `port`, answering once this returns.
    pub async fn start_on(port: u16) -> Self {
        let python = sink_python();
        let dir = std::env::temp_dir().join(format!("mc-mail-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mail/sink.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("sink starts");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    port,
                    dir,
                    child: Some(child),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the SMTP sink did not listen on 127.0.0.1:{port} within 5 s");
    }

    /// `SMTP_URL` for this sink (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
            .iter()
            .map(|p| {
                let raw = std::fs::read_to_string(p).unwrap();
                let header = |name: &str| {
                    raw.lines()
                        .take_while(|l| !l.is_empty())
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                        .unwrap_or_default()
                };
                let (subject, to) = (header("Subject:"), header("X-Envelope-To:"));
                let raw = if header("Content-Transfer-Encoding:") == "quoted-printable" {
                    decode_quoted_printable(&raw)
                } else {
                    raw.clone()
                };
                ReceivedMail { subject, to, raw }
            })
            .collect()
    }

    /// Waits (up to 10 s) for the `n`-th message (1-based) to `recipient`.
    pub async fn nth_to(&self, recipient: &str, n: usize) -> ReceivedMail {
        for _ in 0..200 {
            let mine: Vec<ReceivedMail> = self
                .messages()
                .into_iter()
                .filter(|m| m.to == recipient)
                .collect();
            if mine.len() >= n {
                return mine[n - 1].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "message {n} to {recipient} did not arrive within 10 s; received: {:?}",
            self.messages()
                .iter()
                .map(|m| (&m.to, &m.subject))
                .collect::<Vec<_>>()
        );
    }

    /// Waits for the first message to `recipient`.
    pub async fn first_to(&self, recipient: &str) -> ReceivedMail {
        self.nth_to(recipient, 1).await
    }

    /// How many messages went to `recipient`.
    pub fn count_to(&self, recipient: &str) -> usize {
        self.messages().iter().filter(|m| m.to == recipient).count()
    }

    /// Stops the sink (the port refuses connections afterwards).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// For a service running as its own process (system clock): bootstraps the first admin with
/// `ADMIN_TOKEN` and signs in; returns the admin token.
pub async fn bootstrap_admin_http(client: &reqwest::Client, base: &str) -> String {
    let created: Value = client
        .post(format!("{base}/api/v1/admin/bootstrap"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = totp_secret_of(created["totp_secret"].as_str().expect("bootstrapped"));
    let login: Value = client
        .post(format!("{base}/api/v1/admin/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                      "totp_code": totp_code(&secret, Utc::now())}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"]
        .as_str()
        .expect("signed in")
        .to_string()
}
