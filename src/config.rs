//! Configuration from environment variables with local defaults.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/montecarlo` | PostgreSQL; the database is created if missing |
//! | `DATABASE_MAX_CONNECTIONS` | `16` | request pool size |
//! | `BIND_ADDRESS` | `127.0.0.1:8080` | listen address |
//! | `BASE_DOMAIN` | `localhost` | tenants live at `<slug>.<BASE_DOMAIN>` |
//! | `JWT_SECRET` | generated (development only) | HS256 secret, at least 32 bytes |
//! | `PRODUCTION` | `false` | refuses generated secrets |
//! | `LOG_FORMAT` | `text` | `text` or `json` |
//! | `REDIS_URL` | unset | shared quota store; unset = PostgreSQL counters |
//! | `REDIS_KEY_PREFIX` | `mc:` | namespace for Redis keys |
//! | `ADMIN_TOKEN` | unset | bearer token for `/api/v1/admin/*` (at least 32 bytes); unset disables the admin API |
//! | `TENANT_MIGRATION_CONCURRENCY` | `4` | tenant schemas migrated in parallel at start-up |
//! | `SIMULATION_QUEUE_WAIT_MS` | `2000` | how long a simulation waits for a tenant concurrency slot before 429 |
//! | `LOGIN_ATTEMPTS_PER_MINUTE` | `5` | sign-in/sign-up attempts per minute per client IP and per account |
//! | `MAX_IN_FLIGHT_REQUESTS` | `1024` | requests served at once; beyond, 503 with `Retry-After` (health checks exempt) |
//! | `REQUEST_TIMEOUT_SECS` | `300` | a request still running after this answers 503 (health checks exempt) |
//! | `TRUSTED_PROXIES` | unset | comma-separated CIDRs of reverse proxies whose `X-Forwarded-For` / `Forwarded` names the client |

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
}

/// Service configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// PostgreSQL URL (may contain a password).
    pub database_url: Secret<String>,
    /// Request pool size.
    pub database_max_connections: u32,
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
    /// Fault injection for tests.
    pub fail_points: FailPoints,
    /// Requests served at once before load shedding.
    pub max_in_flight_requests: usize,
    /// Longest a request may run before 503.
    pub request_timeout_secs: u64,
    /// Reverse proxies whose forwarding headers are trusted to name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Default local database URL.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/montecarlo";

impl Settings {
    /// Reads the environment (see the module table).
    ///
    /// # Errors
    /// When a value does not parse, a secret is shorter than 32 bytes, or production mode lacks
    /// `JWT_SECRET`.
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
            Some(s) if s.len() >= 32 => s.into_bytes(),
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
            Some(s) if s.len() >= 32 => Some(Secret::new(s)),
            Some(_) => return Err(ConfigError("ADMIN_TOKEN must be at least 32 bytes".into())),
            None => None,
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
        Ok(Self {
            database_url: Secret::new(
                get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            ),
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
            fail_points: FailPoints::default(),
            max_in_flight_requests: number("MAX_IN_FLIGHT_REQUESTS", 1024)?.clamp(1, 1_000_000)
                as usize,
            request_timeout_secs: number("REQUEST_TIMEOUT_SECS", 300)?.clamp(1, 86_400),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
    fn production_refuses_generated_or_short_secrets() {
        assert!(settings(&[("PRODUCTION", "true")]).is_err());
        assert!(settings(&[("JWT_SECRET", "short")]).is_err());
        assert!(settings(&[("PRODUCTION", "true"), ("JWT_SECRET", &"k".repeat(32))]).is_ok());
        assert!(settings(&[("ADMIN_TOKEN", "short")]).is_err());
        assert!(settings(&[("LOG_FORMAT", "xml")]).is_err());
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        let s = settings(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert!(s.trusted_proxies[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(settings(&[("TRUSTED_PROXIES", "proxy.local")]).is_err());
    }
}
