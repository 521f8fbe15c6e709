//! Start-up as a function tests can call: [`Application::build`] prepares the database
//! (creates it, runs platform migrations, migrates lagging tenant schemas), builds the routes
//! and binds the listener (port 0 picks a free port).

use crate::auth::JwtKeys;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::db;
use crate::middleware;
use crate::quota::{LoginPolicy, QuotaConfig, QuotaOptions, Quotas};
use crate::state::AppState;
use crate::tenancy::TenantDirectory;
use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use poem::{Endpoint, EndpointExt, Route};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database preparation failed.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// Loading tenants failed.
    #[error("loading tenants: {0}")]
    Tenants(String),
    /// Binding the listener failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// A built application, listening but not yet serving.
pub struct Application {
    port: u16,
    state: Arc<AppState>,
    acceptor: poem::listener::BoxAcceptor,
}

/// Largest accepted request body (a caller-supplied bootstrap history is the big one).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Builds every route: the API, `/openapi.json`, `/docs`, wrapped in the request middleware.
pub fn routes(state: Arc<AppState>) -> impl Endpoint {
    let api = crate::api::service(state.clone(), "/");
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .around(middleware::around)
        .data(state)
}

/// The OpenAPI document, as committed in `openapi/openapi.json`. Needs no database.
pub async fn openapi_json() -> String {
    let settings = Settings::from_lookup(|k| match k {
        "JWT_SECRET" => Some("spec-generation-only-secret-0000000000".into()),
        _ => None,
    })
    .expect("default settings are valid");
    let pool = db::request_pool(settings.database_url.expose(), 1).expect("default URL parses");
    let migrations =
        db::migration_pool(settings.database_url.expose(), 1).expect("default URL parses");
    let clock: SharedClock = Arc::new(SystemClock);
    let quotas = Quotas::new(
        QuotaConfig {
            redis_url: None,
            key_prefix: "spec:".into(),
            concurrency_wait: Duration::ZERO,
        },
        pool.clone(),
        clock.clone(),
    )
    .await;
    let state = Arc::new(AppState {
        jwt: JwtKeys::new(settings.jwt_secret.expose()),
        tenants: TenantDirectory::empty(pool.clone()),
        settings,
        pool,
        migrations,
        clock,
        quotas: Arc::new(quotas),
        tenants_current: AtomicBool::new(true),
    });
    let mut json = crate::api::service(state, "/").spec();
    json.push('\n');
    json
}

impl Application {
    /// Builds with the system clock.
    ///
    /// # Errors
    /// When the database cannot be prepared or the address cannot be bound.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Builds with an injected clock (tests move time instead of sleeping).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with_clock(
        settings: Settings,
        clock: SharedClock,
    ) -> Result<Self, StartupError> {
        let url = settings.database_url.expose().clone();
        db::ensure_database(&url).await?;
        let migrations = db::migration_pool(&url, settings.tenant_migration_concurrency + 2)?;
        let applied = db::migrate_platform(&migrations).await?;
        if applied > 0 {
            tracing::info!(applied, "platform migrations applied");
        }
        let pool = db::request_pool(&url, settings.database_max_connections)?;
        let tenants = TenantDirectory::load(pool.clone())
            .await
            .map_err(|e| StartupError::Tenants(format!("{e:?}")))?;
        let summary =
            db::migrate_all_tenants(&migrations, settings.tenant_migration_concurrency).await?;
        if summary.applied > 0 || !summary.failed.is_empty() {
            tracing::info!(
                tenants = summary.tenants,
                applied = summary.applied,
                failed = summary.failed.len(),
                "tenant migrations"
            );
        }
        let quotas = Quotas::with_options(
            QuotaConfig {
                redis_url: settings.redis_url.clone(),
                key_prefix: settings.redis_key_prefix.clone(),
                concurrency_wait: Duration::from_millis(settings.simulation_queue_wait_ms),
            },
            QuotaOptions {
                login: LoginPolicy {
                    attempts_per_minute: settings.login_attempts_per_minute,
                    ..LoginPolicy::default()
                },
                ..QuotaOptions::default()
            },
            pool.clone(),
            clock.clone(),
        )
        .await;
        quotas.set_tiers(tenants.tiers().iter().map(|t| (**t).clone()).collect());
        let addr = settings.bind_address.clone();
        let state = Arc::new(AppState {
            jwt: JwtKeys::new(settings.jwt_secret.expose()),
            tenants,
            settings,
            pool,
            migrations,
            clock,
            quotas: Arc::new(quotas),
            tenants_current: AtomicBool::new(summary.failed.is_empty()),
        });
        crate::tenancy::spawn_change_listener(Arc::downgrade(&state), url.clone());
        let acceptor = TcpListener::bind(addr.clone())
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .unwrap_or(0);
        state.tenants_current.load(Ordering::Relaxed);
        Ok(Self {
            port,
            state,
            acceptor: acceptor.boxed(),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until the process is stopped (SIGINT/SIGTERM end it gracefully).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let app = routes(self.state.clone());
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, shutdown_signal(), Some(Duration::from_secs(10)))
            .await
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
