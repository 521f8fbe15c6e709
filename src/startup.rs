//! Start-up as a function tests can call: [`Application::build`] prepares the database
//! (creates it, creates the development application role, runs platform migrations, migrates
//! lagging tenant schemas, grants the application role what the request path needs and checks
//! that it can do no more), wires the services and binds the listener (port 0 picks a free
//! port). The composition root: the only module that knows every layer.

use crate::app::App;
use crate::app::directory::TenantDirectory;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::db::{self, Db};
use crate::domain::TierCatalog;
use crate::http::edge::EdgeConfig;
use crate::quota::{LoginPolicy, QuotaConfig, QuotaOptions, Quotas};
use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use std::sync::Arc;
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
    app: Arc<App>,
    edge: EdgeConfig,
    acceptor: poem::listener::BoxAcceptor,
    drain: Duration,
}

/// The OpenAPI document, as committed in `openapi/openapi.json`. Needs no database.
pub async fn openapi_json() -> String {
    let settings = Settings::from_lookup(|k| match k {
        "JWT_SECRET" => Some("spec-generation-only-secret-0000000000".into()),
        _ => None,
    })
    .expect("default settings are valid");
    let db = Db::connect_lazy(settings.database_url.expose(), 1, 1).expect("default URL parses");
    let clock: SharedClock = Arc::new(SystemClock);
    let tiers = Arc::new(TierCatalog::default());
    let quotas = Quotas::new(
        QuotaConfig {
            redis_url: None,
            key_prefix: "spec:".into(),
            concurrency_wait: Duration::ZERO,
        },
        db.clone(),
        clock.clone(),
        tiers.clone(),
    )
    .await;
    let directory = Arc::new(TenantDirectory::empty(db.clone(), tiers));
    let app = Arc::new(App::new(
        &settings,
        db,
        directory,
        Arc::new(quotas),
        clock,
        true,
    ));
    crate::http::openapi_document(&crate::http::service(app))
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
        for warning in settings.secret_warnings() {
            tracing::warn!(
                "{warning}: acceptable in development only, refused with PRODUCTION=true"
            );
        }
        let url = settings.database_url.expose().clone();
        let app_url = settings.database_app_url.expose().clone();
        db::ensure_database(&url).await?;
        let listen_url = settings.database_listen_url.expose().clone();
        let db = Db::connect_lazy_with(
            &url,
            &app_url,
            settings.database_max_connections,
            settings.tenant_migration_concurrency + 2,
            settings.database_statements,
        )?;
        if let Some(role) = &settings.database_app_role_derived {
            db.ensure_app_role(role).await?;
        }
        let applied = db::migrate_platform(&db).await?;
        if applied > 0 {
            tracing::info!(applied, "platform migrations applied");
        }
        let directory = Arc::new(
            TenantDirectory::load(db.clone())
                .await
                .map_err(|e| StartupError::Tenants(format!("{e:?}")))?,
        );
        let summary = db::migrate_all_tenants(&db, settings.tenant_migration_concurrency).await?;
        if summary.applied > 0 || !summary.failed.is_empty() {
            tracing::info!(
                tenants = summary.tenants,
                applied = summary.applied,
                failed = summary.failed.len(),
                "tenant migrations"
            );
        }
        db.verify_app_privileges().await?;
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
            db.clone(),
            clock.clone(),
            directory.tiers().clone(),
        )
        .await;
        let app = Arc::new(App::new(
            &settings,
            db,
            directory,
            Arc::new(quotas),
            clock,
            summary.failed.is_empty(),
        ));
        crate::app::changes::spawn(
            listen_url.clone(),
            Arc::downgrade(&app.directory),
            Arc::downgrade(&app.key_cache),
            Arc::downgrade(&app.session_cache),
        );
        spawn_background_tasks(&app);
        if app.mail_sender.logs_only() {
            tracing::warn!(
                "SMTP_URL is not set: outgoing mail (with its single-use links) is written to the log, not sent"
            );
        }
        crate::app::mail_sender::spawn(
            Arc::downgrade(&app),
            app.mail_wake.clone(),
            app.mail_sender.poll_interval(),
        );
        crate::metrics::handle();
        if settings.jobs.workers > 0 {
            crate::app::job_worker::spawn(&app, settings.jobs.workers, listen_url.clone());
            tracing::info!(workers = settings.jobs.workers, "job workers started");
        }
        let addr = settings.bind_address.clone();
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
        let edge = EdgeConfig {
            max_in_flight: settings.max_in_flight_requests,
            request_timeout: Duration::from_secs(settings.request_timeout_secs),
            trusted_proxies: settings.trusted_proxies.clone(),
        };
        Ok(Self {
            port,
            app,
            edge,
            acceptor: acceptor.boxed(),
            drain: Duration::from_millis(settings.shutdown_drain_ms),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application (tests inspect it).
    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serves until the process is stopped. SIGINT/SIGTERM end it gracefully: readiness
    /// (`/health/ready`) fails at once, the listener keeps accepting and serving for
    /// `SHUTDOWN_DRAIN_MS` (so a load balancer has time to see it and stop sending), then it
    /// closes, and requests in flight finish (up to 10 s) before the last usage counts and quota
    /// totals are written.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let routes = crate::routes::routes(self.app.clone(), self.edge.clone());
        let app = self.app.clone();
        let drain = self.drain;
        let stop = async move {
            shutdown_signal().await;
            app.health.start_draining();
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "stop signal: readiness fails; still accepting for the drain delay"
            );
            tokio::time::sleep(drain).await;
            tracing::info!("listener closing; finishing the requests in flight");
        };
        let served = poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(routes, stop, Some(Duration::from_secs(10)))
            .await;
        // The quota totals and the calls counted since the last flush are written before the
        // process ends.
        if let Err(err) = self.app.quotas.persist_totals().await {
            tracing::warn!(error = ?err, "could not copy the quota totals to PostgreSQL");
        }
        if let Err(err) = self.app.usage.flush_calls().await {
            tracing::warn!(error = ?err, "could not write the last call counts");
        }
        served
    }
}

/// Runs `task` every `every` until the application is dropped or `task` answers `false`; a
/// late tick is delayed, not bunched.
fn spawn_periodic<F, Fut>(app: std::sync::Weak<App>, every: Duration, task: F)
where
    F: Fn(Arc<App>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = app.upgrade() else { return };
            if !task(app).await {
                return;
            }
        }
    });
}

/// The background tasks of an instance: the usage log written every `CALL_FLUSH_INTERVAL`, the
/// Redis quota totals copied into PostgreSQL every minute (`Quotas::persist_totals`), with
/// billing on, `past_due` tenants whose grace ended suspended every minute, and every
/// `MAINTENANCE_INTERVAL_SECS` the purge of deleted tenants whose grace ended and the call-log
/// retention (rows older than `CALL_LOG_RETENTION_DAYS` rolled up into daily aggregates). Both
/// are idempotent, so several instances running them at once is harmless.
fn spawn_background_tasks(app: &Arc<App>) {
    spawn_periodic(
        Arc::downgrade(app),
        app.maintenance_interval,
        |app| async move {
            let system = crate::app::admins::AdminContext::system();
            if let Err(err) = app.lifecycle.purge_expired(&system).await {
                tracing::warn!(error = ?err, "could not purge deleted tenants");
            }
            match app.tenants.list().await {
                Ok(tenants) => {
                    if let Err(err) = app
                        .usage
                        .apply_retention(&tenants, app.call_log_retention)
                        .await
                    {
                        tracing::warn!(error = ?err, "could not apply the call-log retention");
                    }
                }
                Err(err) => tracing::warn!(error = ?err, "could not list tenants for retention"),
            }
            true
        },
    );
    spawn_periodic(
        Arc::downgrade(app),
        crate::app::usage::CALL_FLUSH_INTERVAL,
        |app| async move {
            if let Err(err) = app.usage.flush_calls().await {
                tracing::warn!(error = ?err, "could not write call counts");
            }
            true
        },
    );
    spawn_periodic(
        Arc::downgrade(app),
        Duration::from_secs(60),
        |app| async move {
            if let Err(err) = app.quotas.persist_totals().await {
                tracing::warn!(error = ?err, "could not copy the quota totals to PostgreSQL");
            }
            true
        },
    );
    spawn_periodic(
        Arc::downgrade(app),
        Duration::from_secs(60),
        |app| async move {
            if !app.billing.enabled() {
                return false;
            }
            if let Err(err) = app.billing.expire_grace().await {
                tracing::warn!(error = ?err, "could not apply expired billing grace periods");
            }
            true
        },
    );
}

/// `montecarlo-platform billing sync-catalog`: creates or checks the Stripe products and plans
/// of every paid tier and records each plan on its tier (as the database owner: the request
/// role may not change tiers). Runs the platform migrations first.
///
/// # Errors
/// A message when billing is not configured, the database or Stripe fails, or a plan differs.
pub async fn sync_catalog(settings: Settings) -> Result<Vec<String>, String> {
    if settings.billing.is_none() {
        return Err(
            "billing is not configured: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET(S) (and STRIPE_API_BASE for localstripe)"
                .into(),
        );
    }
    let url = settings.database_url.expose().clone();
    db::ensure_database(&url).await.map_err(|e| e.to_string())?;
    let db = Db::connect_lazy(&url, 2, 1).map_err(|e| e.to_string())?;
    db::migrate_platform(&db).await.map_err(|e| e.to_string())?;
    let directory = Arc::new(
        TenantDirectory::load(db.clone())
            .await
            .map_err(|e| format!("{e:?}"))?,
    );
    let clock: SharedClock = Arc::new(SystemClock);
    let quotas = Quotas::new(
        QuotaConfig {
            redis_url: None,
            key_prefix: "catalog:".into(),
            concurrency_wait: Duration::ZERO,
        },
        db.clone(),
        clock.clone(),
        directory.tiers().clone(),
    )
    .await;
    let billing = crate::app::billing::BillingService::new(
        db,
        directory,
        Arc::new(quotas),
        clock,
        settings.base_domain.clone(),
        settings.billing.as_ref(),
    );
    billing.sync_catalog().await.map_err(|e| format!("{e:?}"))
}

/// The application for the command line (`montecarlo-platform tenants …`, `admin …`,
/// `migrate`, `usage report`): the database prepared as at start-up (created if missing,
/// platform migrations applied, the owner's connection for both pools, since operators act with
/// the owner's rights), the directory loaded and every service wired, but no listener, no
/// background task and no tenant migration (that is `migrate`).
///
/// # Errors
/// When the database cannot be prepared.
pub async fn cli_app(settings: &Settings) -> Result<Arc<App>, StartupError> {
    let url = settings.database_url.expose().clone();
    db::ensure_database(&url).await?;
    let db = Db::connect_lazy(&url, 4, settings.tenant_migration_concurrency + 2)?;
    db::migrate_platform(&db).await?;
    let directory = Arc::new(
        TenantDirectory::load(db.clone())
            .await
            .map_err(|e| StartupError::Tenants(format!("{e:?}")))?,
    );
    let clock: SharedClock = Arc::new(SystemClock);
    let quotas = Quotas::new(
        QuotaConfig {
            redis_url: settings.redis_url.clone(),
            key_prefix: settings.redis_key_prefix.clone(),
            concurrency_wait: Duration::ZERO,
        },
        db.clone(),
        clock.clone(),
        directory.tiers().clone(),
    )
    .await;
    Ok(Arc::new(App::new(
        settings,
        db,
        directory,
        Arc::new(quotas),
        clock,
        true,
    )))
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
