//! Configuration from environment variables with local defaults.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/montecarlo` | PostgreSQL as the owner role (migrations, provisioning, grants); the database is created if missing |
//! | `DATABASE_APP_URL` | derived (development only) | PostgreSQL as the application role the request path uses; required when `PRODUCTION=true` |
//! | `DATABASE_APP_ROLE` | `montecarlo_app` | development only: the role `DATABASE_APP_URL` is derived with (`DATABASE_URL` with its user replaced), created at start-up if missing |
//! | `DATABASE_MAX_CONNECTIONS` | `16` | request pool size |
//! | `DATABASE_STATEMENTS` | `prepared` | how the request pool sends queries: `prepared` (named server-side statements cached per connection; direct connection or session pooling) or `unnamed` (the unnamed statement, every query inside a transaction; for PgBouncer's transaction pooling, see README, Performance) |
//! | `DATABASE_LISTEN_URL` | `DATABASE_APP_URL` | the connection each instance `LISTEN`s on for tenant, tier, key and job changes; must reach PostgreSQL directly (or through session pooling) when `DATABASE_APP_URL` goes through a transaction pooler, which does not deliver notifications |
//! | `BIND_ADDRESS` | `127.0.0.1:8080` | listen address |
//! | `BASE_DOMAIN` | `localhost` | tenants live at `<slug>.<BASE_DOMAIN>` |
//! | `JWT_SECRET` | generated (development only) | HS256 secret, at least 32 bytes |
//! | `PRODUCTION` | `false` | refuses generated, placeholder or weak secrets and a derived `DATABASE_APP_URL` |
//! | `LOG_FORMAT` | `text` | `text` or `json` |
//! | `REDIS_URL` | unset | shared quota store; unset = PostgreSQL counters |
//! | `REDIS_KEY_PREFIX` | `mc:` | namespace for Redis keys |
//! | `ADMIN_TOKEN` | unset | bootstrap only: bearer token for `POST /api/v1/admin/bootstrap`, which creates the FIRST platform admin (at least 32 bytes); the admin API itself takes named admins' tokens |
//! | `TENANT_MIGRATION_CONCURRENCY` | `4` | tenant schemas migrated in parallel at start-up |
//! | `SIMULATION_QUEUE_WAIT_MS` | `2000` | how long a simulation waits for a tenant concurrency slot before 429 |
//! | `LOGIN_ATTEMPTS_PER_MINUTE` | `5` | sign-in/sign-up attempts per minute per client IP and per account |
//! | `SESSION_TTL_DAYS` | `30` | sliding lifetime of a session: a refresh token unused this long stops working (1–365) |
//! | `MAX_IN_FLIGHT_REQUESTS` | `1024` | requests served at once; beyond, 503 with `Retry-After` (health checks exempt) |
//! | `REQUEST_TIMEOUT_SECS` | `300` | a request still running after this answers 503 (health checks exempt) |
//! | `SHUTDOWN_DRAIN_MS` | `2000` | on SIGTERM/SIGINT: readiness fails at once, new connections are still accepted and served this long, then the listener closes and requests in flight finish (up to 10 s) (0–60000) |
//! | `TRUSTED_PROXIES` | unset | comma-separated CIDRs of reverse proxies whose `X-Forwarded-For` / `Forwarded` names the client |
//! | `STRIPE_SECRET_KEY` | unset | Stripe secret key (`sk_…`); unset = billing off (billing routes answer 503) |
//! | `STRIPE_API_BASE` | Stripe | base URL of the Stripe API, e.g. `http://127.0.0.1:8420/` for localstripe |
//! | `STRIPE_WEBHOOK_SECRET` | unset | the webhook signing secret (`whsec_…`); this or `STRIPE_WEBHOOK_SECRETS` (or both: their union) is required with `STRIPE_SECRET_KEY` |
//! | `STRIPE_WEBHOOK_SECRETS` | unset | comma-separated webhook signing secrets (`whsec_…`); any one verifies a delivery (rotation); added to `STRIPE_WEBHOOK_SECRET` |
//! | `BILLING_GRACE_DAYS` | `7` | days a `past_due` tenant keeps its paid tier before it is suspended |
//! | `JOB_WORKERS` | CPU cores | background job workers on this instance; `0` = this instance only enqueues |
//! | `JOB_VISIBILITY_TIMEOUT_MS` | `30000` | a running job whose worker sent no heartbeat for this long is run again (heartbeat every third of it) |
//! | `JOB_MAX_ATTEMPTS` | `3` | attempts before a job that keeps failing ends `failed` |
//! | `JOB_RETRY_BACKOFF_MS` | `1000` | delay before a failed attempt is retried (times the attempt number) |
//! | `JOB_POLL_MS` | `500` | how often an idle worker looks for jobs when no `NOTIFY job_queued` woke it |
//! | `ASYNC_WORK_THRESHOLD` | `10000000000` | `POST /simulations` above this paths × steps × assets (× rate-search runs) becomes a job (202) without `Prefer: respond-async` |
//! | `SMTP_URL` | unset | SMTP server for outgoing mail: `smtp://host:25` (plain, e.g. a local relay), `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://user:pass@host:465` (TLS); unset = every message is written to the log and marked sent (development) |
//! | `MAIL_FROM` | `Monte Carlo <no-reply@BASE_DOMAIN>` | sender of outgoing mail (`Name <address>` or an address) |
//! | `PUBLIC_URL` | `http://{tenant}.BASE_DOMAIN:<port of BIND_ADDRESS>`; with `PRODUCTION=true` `https://{tenant}.BASE_DOMAIN` | base of the links in mail and of the signup page's redirect; `{tenant}` is replaced by the tenant's slug |
//! | `MAIL_POLL_MS` | `1000` | how often the mail sender looks for due messages (a message written on this instance wakes it at once) |
//! | `MAIL_MAX_ATTEMPTS` | `8` | delivery attempts before a message is given up (`failed_at` set, error kept) |
//! | `MAIL_RETRY_BASE_SECS` | `30` | delay after the first failed attempt; doubled after each further one |
//! | `MAIL_RETRY_MAX_SECS` | `3600` | longest delay between attempts |
//! | `METRICS_TOKEN` | unset | bearer token for `GET /metrics` (a platform admin's token is accepted too) |
//! | `TENANT_DELETE_GRACE_DAYS` | `30` | a deleted tenant stays restorable this long, then its schema is dropped |
//! | `CALL_LOG_RETENTION_DAYS` | `90` | `api_call_logs` rows older than this are rolled up into daily aggregates and deleted |
//! | `MAINTENANCE_INTERVAL_SECS` | `3600` | how often the purge of deleted tenants and the call-log retention run |
//!
//! # Secrets in production
//! With `PRODUCTION=true`, `JWT_SECRET` and `ADMIN_TOKEN` must each be at least
//! [`MIN_SECRET_BYTES`] bytes, contain no placeholder marker ([`PLACEHOLDER_MARKERS`], compared
//! case-insensitively), have at least [`MIN_DISTINCT_SECRET_BYTES`] distinct byte values, and
//! differ from each other. This catches placeholders and degenerate values, not every weak
//! secret: generate them (`openssl rand -base64 48`, `openssl rand -hex 32`).

use std::fmt;

/// A secret value whose `Debug` output is redacted.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Test-only fault injection (never read from the environment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailPoints {
    /// Make tenant provisioning fail after the schema, migrations, owner and keys were written,
    /// just before commit.
    pub provisioning_before_commit: bool,
    /// Make storing a simulation fail after it ran (its quota charge must be refunded).
    pub simulation_store: bool,
    /// Make every attempt of every job fail after its run (a job ends `failed` after its
    /// attempts).
    pub job_run: bool,
}

/// Service configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// PostgreSQL URL of the owner role: migrations, provisioning and grants (may contain a
    /// password).
    pub database_url: Secret<String>,
    /// PostgreSQL URL of the application role: every request's queries. It owns nothing and may
    /// not create objects (checked at start-up).
    pub database_app_url: Secret<String>,
    /// `Some(role)` when `DATABASE_APP_URL` was unset and derived from `DATABASE_URL` with this
    /// role (development only): start-up creates the role if it is missing.
    pub database_app_role_derived: Option<String>,
    /// Request pool size.
    pub database_max_connections: u32,
    /// How the request pool sends statements.
    pub database_statements: crate::db::StatementMode,
    /// PostgreSQL URL for `LISTEN` (the application role, never through a transaction pooler).
    pub database_listen_url: Secret<String>,
    /// Listen address; port 0 picks a free port.
    pub bind_address: String,
    /// Base domain for tenant subdomains.
    pub base_domain: String,
    /// HS256 secret (≥ 32 bytes).
    pub jwt_secret: Secret<Vec<u8>>,
    /// `JWT_SECRET` was unset and a development secret was generated (warned at start-up).
    pub jwt_secret_generated: bool,
    /// Production mode: no generated secrets.
    pub production: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Redis URL for shared quota counters.
    pub redis_url: Option<String>,
    /// Redis key prefix.
    pub redis_key_prefix: String,
    /// Platform admin bearer token.
    pub admin_token: Option<Secret<String>>,
    /// Parallel tenant migrations at start-up.
    pub tenant_migration_concurrency: usize,
    /// Wait for a concurrency slot, milliseconds.
    pub simulation_queue_wait_ms: u64,
    /// Sign-in/sign-up attempts per minute per IP and per account.
    pub login_attempts_per_minute: u32,
    /// Sliding session lifetime, days (`SESSION_TTL_DAYS`).
    pub session_ttl_days: u32,
    /// Fault injection for tests.
    pub fail_points: FailPoints,
    /// Requests served at once before load shedding.
    pub max_in_flight_requests: usize,
    /// Longest a request may run before 503.
    pub request_timeout_secs: u64,
    /// How long after a stop signal the listener keeps accepting, with readiness failing, before
    /// it closes (`SHUTDOWN_DRAIN_MS`), milliseconds.
    pub shutdown_drain_ms: u64,
    /// Reverse proxies whose forwarding headers are trusted to name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Stripe billing; `None` = billing off.
    pub billing: Option<BillingSettings>,
    /// Background job settings.
    pub jobs: JobSettings,
    /// Bearer token for `/metrics` (platform admins' tokens are accepted too).
    pub metrics_token: Option<Secret<String>>,
    /// Days a deleted tenant stays restorable before its purge.
    pub tenant_delete_grace_days: u32,
    /// Days `api_call_logs` rows are kept before they are rolled up and deleted.
    pub call_log_retention_days: u32,
    /// Seconds between runs of the tenant purge and the call-log retention.
    pub maintenance_interval_secs: u64,
    /// Outgoing mail (the outbox sender).
    pub mail: MailSettings,
}

/// Outgoing mail (`SMTP_URL`, `MAIL_*`, `PUBLIC_URL`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// SMTP server URL (may carry credentials); `None` = messages go to the log.
    pub smtp_url: Option<Secret<String>>,
    /// The `From` header, `Name <address>` or an address.
    pub from: String,
    /// Base of links in mail, with `{tenant}` standing for the tenant's slug; no trailing `/`.
    pub public_url: String,
    /// Poll interval of the sender, milliseconds.
    pub poll_ms: u64,
    /// Delivery attempts before a message is given up.
    pub max_attempts: u32,
    /// Delay after the first failure, seconds (doubled after each further one).
    pub retry_base_secs: u64,
    /// Longest delay between attempts, seconds.
    pub retry_max_secs: u64,
}

/// Stripe billing configuration (`STRIPE_*`, `BILLING_GRACE_DAYS`).
#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Secret API key.
    pub secret_key: Secret<String>,
    /// API base URL (ends with `/`); `None` = Stripe itself.
    pub api_base: Option<String>,
    /// Webhook signing secrets; a delivery signed with any of them is accepted.
    pub webhook_secrets: Vec<Secret<String>>,
    /// How long a `past_due` tenant keeps its paid tier.
    pub grace: chrono::Duration,
}

/// Background job settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Workers on this instance (0 = none).
    pub workers: usize,
    /// Lease length without a heartbeat, milliseconds.
    pub visibility_timeout_ms: u64,
    /// Attempts per job.
    pub max_attempts: u32,
    /// Retry delay per attempt, milliseconds.
    pub retry_backoff_ms: u64,
    /// Idle poll interval, milliseconds.
    pub poll_ms: u64,
    /// Work above which a simulation request becomes a job.
    pub async_work_threshold: u64,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Default local database URL.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/montecarlo";

/// Default application role (development: `DATABASE_APP_URL` derived with it).
pub const DEFAULT_APP_ROLE: &str = "montecarlo_app";

/// Minimum length of `JWT_SECRET` and `ADMIN_TOKEN`, bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Production: a secret must have at least this many distinct byte values. Not 16: a
/// 64-character `openssl rand -hex 32` secret (256 random bits) lacks one of the 16 hex digits
/// about one time in four; 32 random hex digits fall below 10 about once in 12 000.
pub const MIN_DISTINCT_SECRET_BYTES: usize = 10;

/// Production: a secret containing one of these (case-insensitively) is a placeholder.
pub const PLACEHOLDER_MARKERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "example",
    "secret",
    "password",
    "default",
    "dummy",
    "sample",
    "insecure",
    "replace",
    "qwerty",
    "01234567",
    "abcdefgh",
];

/// Why `value` is not acceptable as a production secret, if it is not.
pub fn weak_secret_reason(value: &[u8]) -> Option<String> {
    if value.len() < MIN_SECRET_BYTES {
        return Some(format!(
            "is {} bytes long; at least {MIN_SECRET_BYTES} are required",
            value.len()
        ));
    }
    let lower = value.to_ascii_lowercase();
    if let Some(marker) = PLACEHOLDER_MARKERS
        .iter()
        .find(|m| lower.windows(m.len()).any(|w| w == m.as_bytes()))
    {
        return Some(format!("contains the placeholder marker {marker:?}"));
    }
    let mut seen = [false; 256];
    for b in value {
        seen[usize::from(*b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < MIN_DISTINCT_SECRET_BYTES {
        return Some(format!(
            "has only {distinct} distinct characters; at least {MIN_DISTINCT_SECRET_BYTES} are required"
        ));
    }
    None
}

/// `owner_url` with its user (and password) replaced by `role`: the development application
/// connection (local trust authentication needs no password).
///
/// # Errors
/// When `owner_url` is not a `postgres://` / `postgresql://` URL or names its user in the query
/// string: then `DATABASE_APP_URL` must be given.
pub fn derive_app_url(owner_url: &str, role: &str) -> Result<String, ConfigError> {
    let refuse = |why: &str| {
        ConfigError(format!(
            "cannot derive DATABASE_APP_URL from DATABASE_URL ({why}): set DATABASE_APP_URL"
        ))
    };
    let (scheme, rest) = owner_url
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "postgres" | "postgresql"))
        .ok_or_else(|| refuse("not a postgres:// URL"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return Err(refuse("no host"));
    }
    if let Some((_, query)) = tail.split_once('?')
        && query
            .split('&')
            .any(|p| p.starts_with("user=") || p.starts_with("password="))
    {
        return Err(refuse("user or password in the query string"));
    }
    Ok(format!("{scheme}://{role}@{host}{tail}"))
}

/// The user named in a `postgres://` URL, if any.
fn url_user(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':').map_or(userinfo, |(u, _)| u))
}

fn valid_role_name(role: &str) -> bool {
    (1..=63).contains(&role.len())
        && role.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !role.starts_with("pg_")
}

impl Settings {
    /// Reads the environment (see the module table).
    ///
    /// # Errors
    /// When a value does not parse, a secret is shorter than 32 bytes, or production mode lacks
    /// `JWT_SECRET`, `DATABASE_URL` or `DATABASE_APP_URL`, or is given a placeholder or weak
    /// secret (see the module docs).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (testable without touching the process environment).
    ///
    /// # Errors
    /// As [`Settings::from_env`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let production = match get("PRODUCTION").as_deref() {
            None | Some("") | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "PRODUCTION must be true or false, got {other:?}"
                )));
            }
        };
        let jwt_secret_generated = get("JWT_SECRET").is_none();
        let jwt_secret = match get("JWT_SECRET") {
            Some(s) if s.len() >= MIN_SECRET_BYTES => s.into_bytes(),
            Some(_) => return Err(ConfigError("JWT_SECRET must be at least 32 bytes".into())),
            None if production => {
                return Err(ConfigError(
                    "JWT_SECRET is required when PRODUCTION=true".into(),
                ));
            }
            None => {
                tracing::warn!(
                    "JWT_SECRET is not set: using a generated development secret (tokens die with the process)"
                );
                let mut bytes = vec![0u8; 48];
                rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
                bytes
            }
        };
        let admin_token = match get("ADMIN_TOKEN") {
            Some(s) if s.len() >= MIN_SECRET_BYTES => Some(Secret::new(s)),
            Some(_) => return Err(ConfigError("ADMIN_TOKEN must be at least 32 bytes".into())),
            None => None,
        };
        if production {
            let secrets = [
                ("JWT_SECRET", Some(jwt_secret.as_slice())),
                (
                    "ADMIN_TOKEN",
                    admin_token.as_ref().map(|t| t.expose().as_bytes()),
                ),
            ];
            for (name, value) in secrets {
                if let Some(why) = value.and_then(weak_secret_reason) {
                    return Err(ConfigError(format!(
                        "{name} {why} (PRODUCTION=true refuses placeholder and weak secrets; \
                         generate one with `openssl rand -base64 48`)"
                    )));
                }
            }
            if admin_token
                .as_ref()
                .is_some_and(|t| t.expose().as_bytes() == jwt_secret.as_slice())
            {
                return Err(ConfigError(
                    "ADMIN_TOKEN and JWT_SECRET must differ when PRODUCTION=true".into(),
                ));
            }
        }
        let database_url = match get("DATABASE_URL") {
            Some(url) => url,
            None if production => {
                return Err(ConfigError(
                    "DATABASE_URL is required when PRODUCTION=true".into(),
                ));
            }
            None => DEFAULT_DATABASE_URL.into(),
        };
        let (database_app_url, database_app_role_derived) = match get("DATABASE_APP_URL")
            .filter(|u| !u.is_empty())
        {
            Some(url) => (url, None),
            None if production => {
                return Err(ConfigError(
                        "DATABASE_APP_URL is required when PRODUCTION=true: the request path must \
                         connect as an application role that owns nothing (see README, Production settings)"
                            .into(),
                    ));
            }
            None => {
                let role = get("DATABASE_APP_ROLE").unwrap_or_else(|| DEFAULT_APP_ROLE.into());
                if !valid_role_name(&role) {
                    return Err(ConfigError(format!(
                        "DATABASE_APP_ROLE must match ^[a-z_][a-z0-9_]{{0,62}}$ and not start with pg_, got {role:?}"
                    )));
                }
                if url_user(&database_url) == Some(role.as_str()) {
                    return Err(ConfigError(format!(
                        "DATABASE_APP_ROLE {role:?} is the DATABASE_URL user: the request path needs a role of its own"
                    )));
                }
                (derive_app_url(&database_url, &role)?, Some(role))
            }
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "LOG_FORMAT must be text or json, got {other:?}"
                )));
            }
        };
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| ConfigError(format!("{name} must be a whole number, got {v:?}"))),
            }
        };
        let base_domain = get("BASE_DOMAIN")
            .unwrap_or_else(|| "localhost".into())
            .to_lowercase();
        if base_domain.is_empty() || base_domain.starts_with('.') {
            return Err(ConfigError(format!(
                "BASE_DOMAIN {base_domain:?} is not a domain"
            )));
        }
        // Without PUBLIC_URL, links (mail, the signup page's redirect) point at this server
        // in development: http and the port of BIND_ADDRESS; https and no port in production.
        let default_public_url = if production {
            format!("https://{{tenant}}.{base_domain}")
        } else {
            let bind = get("BIND_ADDRESS").unwrap_or_else(|| "127.0.0.1:8080".into());
            match bind.rsplit_once(':').map(|(_, port)| port) {
                // Port 0 (an ephemeral port, tests) cannot be named in a link.
                Some(port) if !matches!(port, "" | "0" | "80") => {
                    format!("http://{{tenant}}.{base_domain}:{port}")
                }
                _ => format!("http://{{tenant}}.{base_domain}"),
            }
        };
        let mail = mail_settings(&get, &base_domain, &default_public_url)?;
        let database_statements = match get("DATABASE_STATEMENTS").as_deref() {
            None | Some("") => crate::db::StatementMode::default(),
            Some(v) => crate::db::StatementMode::parse(v).ok_or_else(|| {
                ConfigError(format!(
                    "DATABASE_STATEMENTS must be prepared or unnamed, got {v:?}"
                ))
            })?,
        };
        let database_listen_url = get("DATABASE_LISTEN_URL")
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| database_app_url.clone());
        Ok(Self {
            database_statements,
            database_listen_url: Secret::new(database_listen_url),
            database_url: Secret::new(database_url),
            database_app_url: Secret::new(database_app_url),
            database_app_role_derived,
            database_max_connections: number("DATABASE_MAX_CONNECTIONS", 16)?.clamp(1, 1000) as u32,
            bind_address: get("BIND_ADDRESS").unwrap_or_else(|| "127.0.0.1:8080".into()),
            base_domain,
            jwt_secret: Secret::new(jwt_secret),
            jwt_secret_generated,
            production,
            log_format,
            redis_url: get("REDIS_URL").filter(|s| !s.is_empty()),
            redis_key_prefix: get("REDIS_KEY_PREFIX").unwrap_or_else(|| "mc:".into()),
            admin_token,
            tenant_migration_concurrency: number("TENANT_MIGRATION_CONCURRENCY", 4)?.clamp(1, 64)
                as usize,
            simulation_queue_wait_ms: number("SIMULATION_QUEUE_WAIT_MS", 2000)?,
            login_attempts_per_minute: number("LOGIN_ATTEMPTS_PER_MINUTE", 5)?.clamp(1, 1_000_000)
                as u32,
            session_ttl_days: number("SESSION_TTL_DAYS", 30)?.clamp(1, 365) as u32,
            fail_points: FailPoints::default(),
            max_in_flight_requests: number("MAX_IN_FLIGHT_REQUESTS", 1024)?.clamp(1, 1_000_000)
                as usize,
            request_timeout_secs: number("REQUEST_TIMEOUT_SECS", 300)?.clamp(1, 86_400),
            shutdown_drain_ms: number("SHUTDOWN_DRAIN_MS", 2000)?.min(60_000),
            billing: billing_settings(&get)?,
            jobs: JobSettings {
                workers: number(
                    "JOB_WORKERS",
                    std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
                )?
                .min(256) as usize,
                visibility_timeout_ms: number("JOB_VISIBILITY_TIMEOUT_MS", 30_000)?
                    .clamp(300, 3_600_000),
                max_attempts: number("JOB_MAX_ATTEMPTS", 3)?.clamp(1, 100) as u32,
                retry_backoff_ms: number("JOB_RETRY_BACKOFF_MS", 1000)?.min(3_600_000),
                poll_ms: number("JOB_POLL_MS", 500)?.clamp(10, 60_000),
                async_work_threshold: number("ASYNC_WORK_THRESHOLD", 10_000_000_000)?,
            },
            tenant_delete_grace_days: number("TENANT_DELETE_GRACE_DAYS", 30)?.min(3650) as u32,
            call_log_retention_days: number("CALL_LOG_RETENTION_DAYS", 90)?.clamp(1, 3650) as u32,
            maintenance_interval_secs: number("MAINTENANCE_INTERVAL_SECS", 3600)?.clamp(1, 86_400),
            metrics_token: get("METRICS_TOKEN")
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            mail,
            trusted_proxies: get("TRUSTED_PROXIES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            ConfigError(format!(
                                "TRUSTED_PROXIES: {s:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// Development only: the secrets that production mode would refuse, and why (start-up logs
    /// them as warnings).
    pub fn secret_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.jwt_secret_generated
            && let Some(why) = weak_secret_reason(self.jwt_secret.expose())
        {
            out.push(format!("JWT_SECRET {why}"));
        }
        if let Some(why) = self
            .admin_token
            .as_ref()
            .and_then(|t| weak_secret_reason(t.expose().as_bytes()))
        {
            out.push(format!("ADMIN_TOKEN {why}"));
        }
        out
    }
}

/// `SMTP_URL`, `MAIL_*` and `PUBLIC_URL` (see the module table).
fn mail_settings(
    get: &impl Fn(&str) -> Option<String>,
    base_domain: &str,
    default_public_url: &str,
) -> Result<MailSettings, ConfigError> {
    let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
        match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| ConfigError(format!("{name} must be a whole number, got {v:?}"))),
        }
    };
    let smtp_url = get("SMTP_URL").filter(|s| !s.trim().is_empty());
    if let Some(url) = &smtp_url
        && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
    {
        return Err(ConfigError(
            "SMTP_URL must start with smtp:// or smtps:// (e.g. smtp://127.0.0.1:2525, smtps://user:pass@mail.example.com:465)".into(),
        ));
    }
    let from = get("MAIL_FROM")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("Monte Carlo <no-reply@{base_domain}>"));
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError(format!(
            "MAIL_FROM {from:?} is not a mailbox (`Name <address@example.com>` or `address@example.com`)"
        )));
    }
    let public_url = get("PUBLIC_URL")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default_public_url.to_string());
    let public_url = public_url.trim().trim_end_matches('/').to_string();
    if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
        return Err(ConfigError(format!(
            "PUBLIC_URL must be an http(s) URL such as https://{{tenant}}.example.com, got {public_url:?}"
        )));
    }
    let retry_base_secs = number("MAIL_RETRY_BASE_SECS", 30)?.clamp(1, 86_400);
    Ok(MailSettings {
        smtp_url: smtp_url.map(Secret::new),
        from,
        public_url,
        poll_ms: number("MAIL_POLL_MS", 1000)?.clamp(10, 600_000),
        max_attempts: number("MAIL_MAX_ATTEMPTS", 8)?.clamp(1, 100) as u32,
        retry_base_secs,
        retry_max_secs: number("MAIL_RETRY_MAX_SECS", 3600)?.clamp(retry_base_secs, 7 * 86_400),
    })
}

/// The webhook signing secrets: `STRIPE_WEBHOOK_SECRET` (one secret, the name Stripe's docs use)
/// first, then the comma-separated `STRIPE_WEBHOOK_SECRETS` (several, for rotation); either or
/// both may be set; blanks and repeats are dropped.
fn webhook_secrets(get: &impl Fn(&str) -> Option<String>) -> Vec<Secret<String>> {
    let single = get("STRIPE_WEBHOOK_SECRET").unwrap_or_default();
    let several = get("STRIPE_WEBHOOK_SECRETS").unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for s in std::iter::once(single.trim()).chain(several.split(',').map(str::trim)) {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out.into_iter().map(Secret::new).collect()
}

/// `STRIPE_*`: all or nothing (a key without webhook secrets could take money it never hears of).
fn billing_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<BillingSettings>, ConfigError> {
    let key = get("STRIPE_SECRET_KEY").filter(|s| !s.is_empty());
    let secrets = webhook_secrets(get);
    let Some(key) = key else {
        if !secrets.is_empty() {
            return Err(ConfigError(
                "STRIPE_WEBHOOK_SECRET(S) is set but STRIPE_SECRET_KEY is not: set both or neither"
                    .into(),
            ));
        }
        return Ok(None);
    };
    if secrets.is_empty() {
        return Err(ConfigError(
            "STRIPE_SECRET_KEY is set but neither STRIPE_WEBHOOK_SECRET nor STRIPE_WEBHOOK_SECRETS is: webhooks could not be verified".into(),
        ));
    }
    let api_base = match get("STRIPE_API_BASE").filter(|s| !s.is_empty()) {
        None => None,
        Some(b) if b.starts_with("http://") || b.starts_with("https://") => {
            Some(if b.ends_with('/') { b } else { format!("{b}/") })
        }
        Some(b) => {
            return Err(ConfigError(format!(
                "STRIPE_API_BASE must be an http(s) URL, got {b:?}"
            )));
        }
    };
    let days = match get("BILLING_GRACE_DAYS") {
        None => 7,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|d| (0..=365).contains(d))
            .ok_or_else(|| {
                ConfigError(format!(
                    "BILLING_GRACE_DAYS must be a whole number 0–365, got {v:?}"
                ))
            })?,
    };
    Ok(Some(BillingSettings {
        secret_key: Secret::new(key),
        api_base,
        webhook_secrets: secrets,
        grace: chrono::Duration::days(days),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn billing_is_all_or_nothing() {
        assert!(settings(&[]).unwrap().billing.is_none());
        assert!(settings(&[("STRIPE_SECRET_KEY", "sk_test_x")]).is_err());
        assert!(settings(&[("STRIPE_WEBHOOK_SECRETS", "whsec_a")]).is_err());
        let s = settings(&[
            ("STRIPE_SECRET_KEY", "sk_test_x"),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_a, whsec_b"),
            ("STRIPE_API_BASE", "http://127.0.0.1:8420"),
        ])
        .unwrap();
        let b = s.billing.unwrap();
        assert_eq!(b.webhook_secrets.len(), 2);
        assert_eq!(b.api_base.as_deref(), Some("http://127.0.0.1:8420/"));
        assert_eq!(b.grace, chrono::Duration::days(7));
        assert!(!format!("{b:?}").contains("sk_test_x"));
    }

    #[test]
    fn webhook_secret_single_and_plural_names() {
        let key = ("STRIPE_SECRET_KEY", "sk_test_x");
        let secrets = |pairs: &[(&str, &str)]| -> Vec<String> {
            settings(pairs)
                .unwrap()
                .billing
                .unwrap()
                .webhook_secrets
                .iter()
                .map(|s| s.expose().clone())
                .collect()
        };
        assert_eq!(
            secrets(&[key, ("STRIPE_WEBHOOK_SECRET", " whsec_one ")]),
            ["whsec_one"]
        );
        assert_eq!(
            secrets(&[key, ("STRIPE_WEBHOOK_SECRETS", "whsec_a,whsec_b")]),
            ["whsec_a", "whsec_b"]
        );
        assert_eq!(
            secrets(&[
                key,
                ("STRIPE_WEBHOOK_SECRET", "whsec_new"),
                ("STRIPE_WEBHOOK_SECRETS", "whsec_old, whsec_new,"),
            ]),
            ["whsec_new", "whsec_old"]
        );
        // The single name alone still needs the key, and blank values count as unset.
        assert!(settings(&[("STRIPE_WEBHOOK_SECRET", "whsec_a")]).is_err());
        assert!(
            settings(&[
                key,
                ("STRIPE_WEBHOOK_SECRET", " "),
                ("STRIPE_WEBHOOK_SECRETS", ",")
            ])
            .is_err()
        );
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_local() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(s.base_domain, "localhost");
        assert!(s.jwt_secret.expose().len() >= 32);
        assert!(s.jwt_secret_generated);
        assert!(!format!("{s:?}").contains(DEFAULT_DATABASE_URL));
    }

    #[test]
    fn statement_mode_and_listen_url() {
        use crate::db::StatementMode;
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_statements, StatementMode::Prepared);
        assert_eq!(
            s.database_listen_url.expose(),
            s.database_app_url.expose(),
            "LISTEN defaults to the request connection"
        );
        let s = settings(&[
            ("DATABASE_STATEMENTS", "unnamed"),
            ("DATABASE_APP_URL", "postgres://app@127.0.0.1:6432/mc"),
            ("DATABASE_LISTEN_URL", "postgres://app@127.0.0.1:5432/mc"),
        ])
        .unwrap();
        assert_eq!(s.database_statements, StatementMode::Unnamed);
        assert_eq!(
            s.database_listen_url.expose(),
            "postgres://app@127.0.0.1:5432/mc"
        );
        let e = refused(&[("DATABASE_STATEMENTS", "named")]);
        assert!(e.contains("prepared or unnamed"), "{e}");
        assert!(!format!("{s:?}").contains("6432"), "URLs are redacted");
    }

    #[test]
    fn production_refuses_generated_or_short_secrets() {
        assert!(settings(&[("PRODUCTION", "true")]).is_err());
        assert!(settings(&[("JWT_SECRET", "short")]).is_err());
        assert!(settings(&[("ADMIN_TOKEN", "short")]).is_err());
        assert!(settings(&[("LOG_FORMAT", "xml")]).is_err());
        let mut pairs = production();
        pairs.retain(|(k, _)| *k != "JWT_SECRET");
        assert!(settings(&pairs).is_err());
    }

    /// Strong, distinct secrets (random base64) and both database URLs.
    const STRONG_JWT: &str = "q8V1nZ3kR0x7TgWb2mLcYp4sHd9Ae6Uf5Jo+KiNt/Q=";
    const STRONG_ADMIN: &str = "Xr5Lm2Qw8Zb1Nc7Vd4Kf0Hg3Jt6Ps9Ay-Eu_Io";

    fn production() -> Vec<(&'static str, &'static str)> {
        vec![
            ("PRODUCTION", "true"),
            ("JWT_SECRET", STRONG_JWT),
            ("ADMIN_TOKEN", STRONG_ADMIN),
            ("DATABASE_URL", "postgres://owner:pw1@db:5432/montecarlo"),
            ("DATABASE_APP_URL", "postgres://app:pw2@db:5432/montecarlo"),
        ]
    }

    fn with(
        pairs: &[(&'static str, &'static str)],
        key: &'static str,
        value: &'static str,
    ) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<_> = pairs.iter().copied().filter(|(k, _)| *k != key).collect();
        out.push((key, value));
        out
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        match settings(pairs) {
            Ok(_) => panic!("settings accepted: {pairs:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn production_accepts_strong_distinct_secrets_and_explicit_urls() {
        let s = settings(&production()).unwrap();
        assert!(s.production);
        assert_eq!(
            s.database_app_url.expose(),
            "postgres://app:pw2@db:5432/montecarlo"
        );
        assert_eq!(s.database_app_role_derived, None);
        assert!(s.secret_warnings().is_empty());
        // Generated hex and base64 secrets pass.
        for secret in [
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "d2f1c4b0a9e87c6d5b4a39281706f5e4",
        ] {
            assert!(weak_secret_reason(secret.as_bytes()).is_none(), "{secret}");
        }
    }

    #[test]
    fn production_refuses_placeholder_and_weak_secrets() {
        let base = production();
        for (key, value, why) in [
            // The values docker-compose.yml used to ship.
            (
                "JWT_SECRET",
                "local-compose-jwt-secret-change-me-0000",
                "change-me",
            ),
            (
                "ADMIN_TOKEN",
                "local-compose-admin-token-change-me-000",
                "change-me",
            ),
            (
                "JWT_SECRET",
                "CHANGEME-CHANGEME-CHANGEME-CHANGEME",
                "changeme",
            ),
            (
                "JWT_SECRET",
                "please-replace-this-value-before-going-live",
                "replace",
            ),
            (
                "ADMIN_TOKEN",
                "my-super-secret-admin-token-for-prod",
                "secret",
            ),
            (
                "JWT_SECRET",
                "an-example-value-that-is-long-enough",
                "example",
            ),
            (
                "JWT_SECRET",
                "xK9-placeholder-vQ2-zL7-mN4-pR8-tW1",
                "placeholder",
            ),
            (
                "JWT_SECRET",
                "test-jwt-secret-0123456789abcdefghijklmnop",
                "secret",
            ),
            (
                "JWT_SECRET",
                "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
                "distinct",
            ),
            (
                "JWT_SECRET",
                "abababababababababababababababababab",
                "distinct",
            ),
            (
                "ADMIN_TOKEN",
                "1213141516171819121314151617181912",
                "distinct",
            ),
            ("JWT_SECRET", "short-but-R4nd0m-xQ", "at least 32 bytes"),
        ] {
            let detail = refused(&with(&base, key, value));
            assert!(detail.contains(key), "{detail}");
            assert!(detail.contains(why), "{value}: {detail}");
        }
        let detail = refused(&with(&base, "ADMIN_TOKEN", STRONG_JWT));
        assert!(detail.contains("must differ"), "{detail}");
        // Development accepts them, with a warning at start-up.
        let dev = settings(&[("JWT_SECRET", "local-compose-jwt-secret-change-me-0000")]).unwrap();
        assert_eq!(dev.secret_warnings().len(), 1);
    }

    #[test]
    fn production_refuses_a_derived_or_missing_application_url() {
        let mut base = production();
        base.retain(|(k, _)| *k != "DATABASE_APP_URL");
        let detail = refused(&base);
        assert!(detail.contains("DATABASE_APP_URL is required"), "{detail}");
        let detail = refused(&with(&base, "DATABASE_APP_URL", ""));
        assert!(detail.contains("DATABASE_APP_URL is required"), "{detail}");
        let mut no_owner = production();
        no_owner.retain(|(k, _)| *k != "DATABASE_URL");
        assert!(refused(&no_owner).contains("DATABASE_URL is required"));
    }

    #[test]
    fn development_derives_the_application_url_from_the_owner_url() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.database_app_url.expose(),
            "postgres://montecarlo_app@127.0.0.1:5432/montecarlo"
        );
        assert_eq!(
            s.database_app_role_derived.as_deref(),
            Some(DEFAULT_APP_ROLE)
        );
        let s = settings(&[
            (
                "DATABASE_URL",
                "postgresql://owner:p%40ss@db.internal:6432/mc?sslmode=disable",
            ),
            ("DATABASE_APP_ROLE", "mc_reader_1"),
        ])
        .unwrap();
        assert_eq!(
            s.database_app_url.expose(),
            "postgresql://mc_reader_1@db.internal:6432/mc?sslmode=disable"
        );
        assert!(!format!("{s:?}").contains("p%40ss"));
        assert_eq!(
            derive_app_url("postgres://127.0.0.1/x", "r").unwrap(),
            "postgres://r@127.0.0.1/x"
        );
        for bad in ["Robert'); DROP", "pg_monitor", "", "1abc"] {
            assert!(settings(&[("DATABASE_APP_ROLE", bad)]).is_err(), "{bad:?}");
        }
        assert!(settings(&[("DATABASE_APP_ROLE", "postgres")]).is_err());
        assert!(derive_app_url("host=db user=owner", "r").is_err());
        assert!(derive_app_url("postgres://db/x?user=owner", "r").is_err());
        // An explicit URL is used as given and nothing is created.
        let s = settings(&[("DATABASE_APP_URL", "postgres://app@db/x")]).unwrap();
        assert_eq!(s.database_app_url.expose(), "postgres://app@db/x");
        assert_eq!(s.database_app_role_derived, None);
    }

    #[test]
    fn mail_settings_have_local_defaults_and_are_checked() {
        let m = settings(&[("BASE_DOMAIN", "mc.example")]).unwrap().mail;
        assert!(m.smtp_url.is_none());
        assert_eq!(m.from, "Monte Carlo <no-reply@mc.example>");
        assert_eq!(m.public_url, "http://{tenant}.mc.example:8080");
        let m = settings(&[
            ("BASE_DOMAIN", "mc.example"),
            ("BIND_ADDRESS", "0.0.0.0:80"),
        ])
        .unwrap()
        .mail;
        assert_eq!(m.public_url, "http://{tenant}.mc.example");
        assert_eq!((m.max_attempts, m.retry_base_secs), (8, 30));
        let m = settings(&[
            ("SMTP_URL", "smtp://user:pw@127.0.0.1:2525"),
            ("PUBLIC_URL", "http://{tenant}.localhost:8080/"),
        ])
        .unwrap()
        .mail;
        assert_eq!(m.public_url, "http://{tenant}.localhost:8080");
        assert!(!format!("{m:?}").contains("pw@"));
        assert!(settings(&[("SMTP_URL", "mail.example.com:25")]).is_err());
        assert!(settings(&[("MAIL_FROM", "not a mailbox")]).is_err());
        assert!(settings(&[("PUBLIC_URL", "ftp://x")]).is_err());
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        let s = settings(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert!(s.trusted_proxies[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(settings(&[("TRUSTED_PROXIES", "proxy.local")]).is_err());
    }
}
