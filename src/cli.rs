//! The command line of the service's binary (clap derive). With no subcommand (or `serve`) the
//! binary serves the API; the subcommands are operator tools that call the same app services
//! as the API (never SQL), as the database owner, audited as `cli:<$USER>`. `main.rs` parses,
//! builds the application with `startup::cli_app` and hands it to [`run`].
//!
//! ```text
//! montecarlo-platform [serve]
//! montecarlo-platform openapi [--check | --write]
//! montecarlo-platform billing sync-catalog
//! montecarlo-platform admin create --email E [--password P]     (else read from stdin)
//! montecarlo-platform admin list | revoke-sessions --email E
//! montecarlo-platform tenants list | show S | suspend S | resume S | delete S | restore S
//! montecarlo-platform tenants export S [--output FILE] | purge | erase-user S USER_ID
//! montecarlo-platform migrate [--concurrency N]
//! montecarlo-platform usage report [--tenant S] [--days N]
//! ```

use crate::app::App;
use crate::app::admins::AdminContext;
use crate::config::Settings;
use crate::db::MigrationProgress;
use crate::db::tenants::TenantChange;
use crate::domain::{Email, Password, Tenant, TenantSlug, TenantStatus, UserId};
use crate::error::AppError;
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

/// Multi-tenant Monte Carlo portfolio-simulation API: the server and its operator tools.
#[derive(Debug, Parser)]
#[command(name = "montecarlo-platform", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print the OpenAPI document, or check / rewrite `openapi/openapi.json`.
    Openapi(OpenapiArgs),
    /// Stripe billing tools.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Platform administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Tenants: list, inspect, suspend, delete, restore, export, purge, erase a user.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Migrate every tenant schema that is behind (bounded-parallel, resumable).
    Migrate {
        /// Schemas migrated at once (default `TENANT_MIGRATION_CONCURRENCY`).
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Usage reports.
    #[command(subcommand)]
    Usage(UsageCommand),
}

/// `openapi` flags.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct OpenapiArgs {
    /// Fail when `openapi/openapi.json` differs from what the code generates.
    #[arg(long)]
    pub check: bool,
    /// Rewrite `openapi/openapi.json`.
    #[arg(long)]
    pub write: bool,
}

/// `billing` subcommands.
#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Create or check the Stripe products and plans of the paid tiers (idempotent).
    SyncCatalog,
}

/// `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform administrator; prints the TOTP secret and otpauth URI once.
    Create {
        /// Email (sign-in name).
        #[arg(long)]
        email: String,
        /// Password (else read from standard input, prompted on a terminal).
        #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List the platform administrators.
    List,
    /// End every session of an administrator (a lost device, a departure).
    RevokeSessions {
        /// The administrator's email.
        #[arg(long)]
        email: String,
    },
}

/// `tenants` subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// One line per tenant: slug, status, tier, deletion.
    List,
    /// One tenant as JSON.
    Show {
        /// Tenant slug.
        slug: String,
    },
    /// Suspend: every authenticated request answers 403.
    Suspend {
        /// Tenant slug.
        slug: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// Tenant slug.
        slug: String,
    },
    /// Soft-delete (restorable for `TENANT_DELETE_GRACE_DAYS`).
    Delete {
        /// Tenant slug.
        slug: String,
    },
    /// Restore a deleted tenant before its purge.
    Restore {
        /// Tenant slug.
        slug: String,
    },
    /// Write the tenant's export archive (tar.gz; deleted tenants too, until purged).
    Export {
        /// Tenant slug.
        slug: String,
        /// Output file (default `<slug>-export-<time>.tar.gz`).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Purge now every deleted tenant whose grace has ended.
    Purge,
    /// Erase a user's personal data (GDPR Art. 17; pseudonymised).
    EraseUser {
        /// Tenant slug.
        slug: String,
        /// User id (`usr_…`).
        user: String,
    },
}

/// `usage` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Calls, simulations, errors and units per tenant over the last days, and the quota
    /// period's use.
    Report {
        /// One tenant (default: every live tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Look-back, days (1–366).
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

/// Prints `what: e` to standard error; the failure exit code.
pub fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("{what}: {e}");
    ExitCode::FAILURE
}

fn slug(s: &str) -> Result<TenantSlug, AppError> {
    TenantSlug::parse(s).map_err(|e| AppError::validation("slug", e))
}

fn tenant_json(t: &Tenant) -> serde_json::Value {
    serde_json::json!({
        "id": t.id.to_string(),
        "slug": t.slug.as_str(),
        "name": t.display_name,
        "schema": t.schema.as_str(),
        "tier": t.tier.name,
        "status": t.status.as_str(),
        "trial_ends_at": t.trial_ends_at,
        "created_at": t.created_at,
        "deleted_at": t.deleted_at,
        "purge_after": t.purge_after,
    })
}

fn read_password() -> Result<String, AppError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!(
            "Password for the new administrator (echoed; prefer --password or ADMIN_PASSWORD from a secret store): "
        );
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| AppError::bad_request(format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs an operator subcommand (not `serve`, `openapi` or `billing`) with `app` (built by
/// `startup::cli_app`).
pub async fn run(app: Arc<App>, settings: &Settings, command: Command) -> ExitCode {
    let ctx = AdminContext::cli();
    let outcome = match command {
        Command::Admin(c) => admin(&app, &ctx, c).await,
        Command::Tenants(c) => tenants(&app, &ctx, c).await,
        Command::Migrate { concurrency } => {
            migrate(
                &app,
                concurrency.unwrap_or(settings.tenant_migration_concurrency),
            )
            .await
        }
        Command::Usage(UsageCommand::Report { tenant, days }) => {
            usage(&app, tenant.as_deref(), days).await
        }
        Command::Serve | Command::Openapi(_) | Command::Billing(_) => {
            Err(AppError::bad_request("not an operator subcommand"))
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            if e.status() >= 500 {
                tracing::error!(error = ?e, "command failed");
            }
            fail("error", e)
        }
    }
}

async fn admin(app: &App, ctx: &AdminContext, c: AdminCommand) -> Result<ExitCode, AppError> {
    match c {
        AdminCommand::Create { email, password } => {
            let email = Email::parse(&email).map_err(|e| AppError::validation("email", e))?;
            let password = match password {
                Some(p) => p,
                None => read_password()?,
            };
            let password =
                Password::parse(&password).map_err(|e| AppError::validation("password", e))?;
            let created = app.admins.create(ctx, &email, password).await?;
            println!("created platform admin {} ({})", created.email, created.id);
            println!("TOTP secret (shown once): {}", created.totp_secret);
            println!("otpauth URI (shown once): {}", created.otpauth_uri);
        }
        AdminCommand::List => {
            for (id, email, at, by) in app.admins.list().await? {
                println!("{id}\t{email}\t{}\t{by}", at.to_rfc3339());
            }
        }
        AdminCommand::RevokeSessions { email } => {
            let email = Email::parse(&email).map_err(|e| AppError::validation("email", e))?;
            let n = app.admins.revoke_all(ctx, &email).await?;
            println!("revoked {n} live session(s) of {email}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tenants(app: &App, ctx: &AdminContext, c: TenantsCommand) -> Result<ExitCode, AppError> {
    let status = |s: &str, status: TenantStatus| {
        let slug = slug(s);
        async move {
            let slug = slug?;
            let change = TenantChange {
                status: Some(status),
                ..TenantChange::default()
            };
            app.tenants.update(ctx, &slug, change).await
        }
    };
    match c {
        TenantsCommand::List => {
            for t in app.tenants.list().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    t.slug,
                    if t.is_deleted() {
                        "deleted"
                    } else {
                        t.status.as_str()
                    },
                    t.tier.name,
                    t.purge_after
                        .map_or_else(String::new, |p| format!("purge after {}", p.to_rfc3339()))
                );
            }
        }
        TenantsCommand::Show { slug: s } => {
            let t = app.tenants.show(&slug(&s)?).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&tenant_json(&t)).unwrap_or_default()
            );
        }
        TenantsCommand::Suspend { slug: s } => {
            let t = status(&s, TenantStatus::Suspended).await?;
            println!("{} suspended", t.slug);
        }
        TenantsCommand::Resume { slug: s } => {
            let t = status(&s, TenantStatus::Active).await?;
            println!("{} active", t.slug);
        }
        TenantsCommand::Delete { slug: s } => {
            let t = app.lifecycle.delete(ctx, &slug(&s)?).await?;
            println!(
                "{} deleted; restorable until {}",
                t.slug,
                t.purge_after.map(|p| p.to_rfc3339()).unwrap_or_default()
            );
        }
        TenantsCommand::Restore { slug: s } => {
            let t = app.lifecycle.restore(ctx, &slug(&s)?).await?;
            println!("{} restored", t.slug);
        }
        TenantsCommand::Export { slug: s, output } => {
            let tenant = app.lifecycle.find(&slug(&s)?).await?;
            let mut archive = app.export.export(tenant.clone()).await?;
            let path = output.unwrap_or_else(|| archive.filename.clone().into());
            let mut file = std::fs::File::create(&path).map_err(|e| {
                AppError::bad_request(format!("cannot create {}: {e}", path.display()))
            })?;
            let mut bytes = 0usize;
            while let Some(chunk) = archive.chunks.recv().await {
                let chunk = chunk.map_err(AppError::internal)?;
                bytes += chunk.len();
                file.write_all(&chunk).map_err(|e| {
                    AppError::bad_request(format!("writing {}: {e}", path.display()))
                })?;
            }
            file.sync_all().map_err(AppError::internal)?;
            app.admins
                .audit(
                    ctx,
                    "tenant.exported",
                    Some(tenant.slug.as_str()),
                    serde_json::json!({"bytes": bytes}),
                )
                .await?;
            println!("wrote {} ({bytes} bytes)", path.display());
        }
        TenantsCommand::Purge => {
            let purged = app.lifecycle.purge_expired(ctx).await?;
            println!("purged {} tenant(s)", purged.len());
            for s in purged {
                println!("{s}");
            }
        }
        TenantsCommand::EraseUser { slug: s, user } => {
            let user = UserId::parse(&user).map_err(|e| AppError::validation("user", e))?;
            let (email, name) = app
                .lifecycle
                .erase_user_as_admin(ctx, &slug(&s)?, user)
                .await?;
            println!("{user} erased: now {email} / {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate(app: &App, concurrency: usize) -> Result<ExitCode, AppError> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} migrating tenant schemas [{bar:40}] {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |p: MigrationProgress<'_>| match p {
        MigrationProgress::Started { tenants } => bar.set_length(tenants as u64),
        MigrationProgress::Finished { slug, outcome } => {
            bar.inc(1);
            if let Err(e) = outcome {
                bar.println(format!("FAILED {slug}: {e}"));
            }
        }
    };
    let summary = app.tenants.migrate_all(concurrency, &progress).await?;
    bar.finish_and_clear();
    println!(
        "{} tenant schema(s): {} migration(s) applied, {} failed",
        summary.tenants,
        summary.applied,
        summary.failed.len()
    );
    for (slug, e) in &summary.failed {
        eprintln!("FAILED {slug}: {e}");
    }
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn usage(app: &App, tenant: Option<&str>, days: u32) -> Result<ExitCode, AppError> {
    let tenants: Vec<Arc<Tenant>> = match tenant {
        Some(s) => vec![app.tenants.show(&slug(s)?).await?],
        None => app
            .tenants
            .list()
            .await?
            .into_iter()
            .filter(|t| !t.is_deleted())
            .collect(),
    };
    println!("tenant\tdays\tcalls\tsimulations\terrors\tunits\tperiod\tperiod_used\tquota");
    for t in tenants {
        let r = app.usage.report_for_tenant(&t, days).await?;
        let sum = |f: fn(&crate::db::usage::DailyCalls) -> i64| r.daily.iter().map(f).sum::<i64>();
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            t.slug,
            r.days,
            sum(|d| d.calls),
            sum(|d| d.simulations),
            sum(|d| d.errors),
            sum(|d| d.units),
            r.period.period,
            r.period.used,
            r.period
                .quota
                .map_or_else(|| "unlimited".into(), |q| q.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}
