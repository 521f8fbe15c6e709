//! The application layer: one service per capability, each taking a [`TenantContext`] (or the
//! platform's view) and returning domain types. Services know nothing of HTTP: the JSON API,
//! and later the web pages, the job worker and the CLI, call the same methods. Below them sit
//! the quota module and the data layer (`db`), the only place SQL lives.
//!
//! [`TenantContext`]: crate::db::TenantContext

pub mod accounts;
pub mod admins;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod changes;
pub mod credentials;
pub mod directory;
pub mod export;
pub mod health;
pub mod idempotency;
pub mod invitations;
pub mod job_worker;
pub mod jobs;
pub mod key_cache;
pub mod keys;
pub mod lifecycle;
pub mod mail;
pub mod mail_sender;
pub mod passwords;
pub mod revenue;
pub mod session_cache;
pub mod sessions;
pub mod simulation_spec;
pub mod simulations;
pub mod stripe_api;
pub mod team;
pub mod tenants;
pub mod tokens;
pub mod two_factor;
pub mod usage;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::db::Db;
use crate::quota::Quotas;
use std::sync::Arc;

/// Every service, built once at start-up and shared (in an `Arc`) by every request.
pub struct App {
    /// Tenants are served at `<slug>.<base_domain>`.
    pub base_domain: String,
    /// Credentials → tenant context.
    pub auth: auth::AuthService,
    /// Signup, `me`, adding and listing users.
    pub accounts: accounts::AccountService,
    /// Sign-in, refresh, logout, sessions.
    pub sessions: Arc<sessions::SessionService>,
    /// Roles, deactivation, removal, ownership.
    pub team: team::TeamService,
    /// Two-factor enrolment and the team's rule.
    pub two_factor: two_factor::TwoFactorService,
    /// Reading the audit log.
    pub audit: audit::AuditService,
    /// Sessions and users as this instance remembers them.
    pub session_cache: Arc<session_cache::SessionCache>,
    /// Password change and reset, email verification.
    pub credentials: credentials::CredentialService,
    /// Invitations.
    pub invitations: invitations::InvitationService,
    /// Composes mail and wakes the sender.
    pub mailer: Arc<mail::Mailer>,
    /// Delivers the mail outbox (run by the background task `mail_sender::spawn`).
    pub mail_sender: Arc<mail_sender::MailSender>,
    /// Wakes this instance's mail sender.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// API keys.
    pub keys: keys::KeyService,
    /// Simulations.
    pub simulations: Arc<simulations::SimulationService>,
    /// Background jobs and batches.
    pub jobs: jobs::JobService,
    /// Usage records and reports.
    pub usage: usage::UsageService,
    /// Provisioning and platform administration of tenants.
    pub tenants: Arc<tenants::TenantService>,
    /// Billing with Stripe (off when unconfigured).
    pub billing: billing::BillingService,
    /// Readiness.
    pub health: health::HealthService,
    /// The in-memory tenant and tier directory.
    pub directory: Arc<directory::TenantDirectory>,
    /// Quotas and rate limits.
    pub quotas: Arc<Quotas>,
    /// API keys as this instance remembers them.
    pub key_cache: Arc<key_cache::KeyCache>,
    /// The clock.
    pub clock: SharedClock,
    /// Bearer tokens accepted by `/metrics` besides a platform admin's: `METRICS_TOKEN`, if set.
    pub metrics_tokens: Vec<String>,
    /// Named platform administrators (sign-in, sessions, audit).
    pub admins: Arc<admins::AdminService>,
    /// Tenant deletion, restoration, purge; user erasure.
    pub lifecycle: lifecycle::LifecycleService,
    /// Tenant exports.
    pub export: export::ExportService,
    /// How long `api_call_logs` rows are kept before they are rolled up.
    pub call_log_retention: chrono::Duration,
    /// How often the purge and the retention run.
    pub maintenance_interval: std::time::Duration,
}

impl App {
    /// `/metrics` in the Prometheus text format, with the queue and pool gauges read now.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn metrics_text(&self) -> Result<String, crate::error::AppError> {
        let (jobs, oldest_queued) = crate::db::jobs::depth(&self.jobs.db).await?;
        Ok(crate::metrics::render(&crate::metrics::Snapshot {
            jobs,
            oldest_queued,
            workers: self.jobs.settings().workers,
            pool: self.jobs.db.pool_stats(),
            redis_degraded: self.quotas.health().await.is_degraded(),
        }))
    }

    /// Wires every service over a prepared database, a loaded directory and the quotas.
    /// `tenants_current`: every tenant schema was migrated at start-up.
    pub fn new(
        settings: &Settings,
        db: Db,
        directory: Arc<directory::TenantDirectory>,
        quotas: Arc<Quotas>,
        clock: SharedClock,
        tenants_current: bool,
    ) -> Self {
        let jwt = Arc::new(tokens::JwtKeys::new(settings.jwt_secret.expose()));
        let key_cache = Arc::new(key_cache::KeyCache::default());
        let session_cache = Arc::new(session_cache::SessionCache::default());
        let sessions = Arc::new(sessions::SessionService::new(
            db.clone(),
            directory.clone(),
            quotas.clone(),
            jwt.clone(),
            session_cache.clone(),
            clock.clone(),
            chrono::Duration::days(i64::from(settings.session_ttl_days)),
        ));
        let admins = Arc::new(admins::AdminService::new(
            db.clone(),
            settings.jwt_secret.expose(),
            clock.clone(),
            quotas.clone(),
            settings.admin_token.as_ref().map(|t| t.expose().clone()),
        ));
        let simulations = Arc::new(simulations::SimulationService::new(
            db.clone(),
            quotas.clone(),
            directory.tiers().clone(),
            clock.clone(),
            settings.fail_points.simulation_store,
        ));
        let tenants = Arc::new(tenants::TenantService::new(
            db.clone(),
            directory.clone(),
            admins.clone(),
            clock.clone(),
            settings.fail_points.provisioning_before_commit,
        ));
        let mail_wake = Arc::new(tokio::sync::Notify::new());
        let mailer = Arc::new(mail::Mailer::new(
            settings.mail.public_url.clone(),
            mail_wake.clone(),
        ));
        let mail_sender = Arc::new(mail_sender::MailSender::new(
            &settings.mail,
            db.clone(),
            clock.clone(),
        ));
        Self {
            base_domain: settings.base_domain.clone(),
            credentials: credentials::CredentialService::new(
                db.clone(),
                directory.clone(),
                quotas.clone(),
                mailer.clone(),
                sessions.clone(),
                clock.clone(),
            ),
            invitations: invitations::InvitationService::new(
                db.clone(),
                directory.clone(),
                mailer.clone(),
                clock.clone(),
            ),
            auth: auth::AuthService::new(
                db.clone(),
                directory.clone(),
                jwt,
                key_cache.clone(),
                sessions.clone(),
                clock.clone(),
            ),
            accounts: accounts::AccountService::new(
                db.clone(),
                directory.clone(),
                tenants.clone(),
                quotas.clone(),
                sessions.clone(),
                mailer.clone(),
                clock.clone(),
            ),
            team: team::TeamService::new(
                db.clone(),
                sessions.clone(),
                key_cache.clone(),
                clock.clone(),
            ),
            two_factor: two_factor::TwoFactorService::new(
                db.clone(),
                session_cache.clone(),
                clock.clone(),
            ),
            audit: audit::AuditService::new(db.clone()),
            sessions,
            session_cache,
            mailer,
            mail_sender,
            mail_wake,
            keys: keys::KeyService::new(db.clone(), key_cache.clone(), clock.clone()),
            jobs: jobs::JobService::new(
                db.clone(),
                simulations.clone(),
                quotas.clone(),
                settings.jobs.clone(),
                settings.fail_points.job_run,
            ),
            simulations,
            usage: usage::UsageService::new(db.clone(), quotas.clone(), clock.clone()),
            billing: billing::BillingService::new(
                db.clone(),
                directory.clone(),
                quotas.clone(),
                clock.clone(),
                settings.mail.public_url.clone(),
                settings.billing.as_ref(),
            ),
            lifecycle: lifecycle::LifecycleService::new(
                db.clone(),
                directory.clone(),
                admins.clone(),
                clock.clone(),
                chrono::Duration::days(i64::from(settings.tenant_delete_grace_days)),
            ),
            export: export::ExportService::new(db.clone(), clock.clone()),
            admins,
            call_log_retention: chrono::Duration::days(i64::from(settings.call_log_retention_days)),
            maintenance_interval: std::time::Duration::from_secs(
                settings.maintenance_interval_secs,
            ),
            health: health::HealthService::new(db, quotas.clone(), tenants_current),
            tenants,
            directory,
            quotas,
            key_cache,
            clock,
            metrics_tokens: settings
                .metrics_token
                .iter()
                .map(|t| t.expose().clone())
                .collect(),
        }
    }
}
