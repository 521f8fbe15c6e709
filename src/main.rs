//! Service entry point: parse the command line (`cli::Cli`, clap), then serve (the default) or
//! run an operator subcommand.
//!
//! `montecarlo-platform openapi [--check|--write]` prints the OpenAPI document (or checks /
//! rewrites `openapi/openapi.json`) without a database.
//!
//! `montecarlo-platform billing sync-catalog` creates or checks the Stripe products and plans of
//! the paid tiers (idempotent) and records them on `platform.tiers`.
//!
//! `admin`, `tenants`, `migrate` and `usage` are operator tools over the same app services as
//! the API (see `cli`).

use clap::Parser;
use montecarlo_platform::cli::{self, BillingCommand, Cli, Command, OpenapiArgs};
use montecarlo_platform::config::Settings;
use montecarlo_platform::startup::{Application, cli_app, openapi_json, sync_catalog};
use montecarlo_platform::telemetry;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    match command {
        Command::Openapi(args) => openapi(args).await,
        Command::Serve => serve().await,
        Command::Billing(BillingCommand::SyncCatalog) => {
            let settings = match Settings::from_env() {
                Ok(s) => s,
                Err(e) => return cli::fail("configuration", e),
            };
            match sync_catalog(settings).await {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => cli::fail("billing sync-catalog", e),
            }
        }
        command => {
            let settings = match Settings::from_env() {
                Ok(s) => s,
                Err(e) => return cli::fail("configuration", e),
            };
            if std::env::var_os("RUST_LOG").is_some() {
                telemetry::init(settings.log_format);
            }
            let app = match cli_app(&settings).await {
                Ok(app) => app,
                Err(e) => return cli::fail("preparing the database", e),
            };
            cli::run(app, &settings, command).await
        }
    }
}

async fn openapi(args: OpenapiArgs) -> ExitCode {
    let spec = openapi_json().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    if args.check {
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed == spec {
            println!("openapi/openapi.json is current");
            ExitCode::SUCCESS
        } else {
            eprintln!("openapi/openapi.json is stale: run `cargo run -- openapi --write`");
            ExitCode::FAILURE
        }
    } else if args.write {
        match std::fs::write(path, &spec) {
            Ok(()) => {
                println!("wrote {path}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("writing {path}: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        print!("{spec}");
        ExitCode::SUCCESS
    }
}

async fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log_format);
    if settings.jwt_secret_generated {
        tracing::warn!(
            "JWT_SECRET is not set: using a generated development secret; access tokens die with the process. \
             Set JWT_SECRET (>= 32 bytes) and PRODUCTION=true for real deployments"
        );
    }
    if settings.admin_token.is_some() {
        tracing::info!(
            "ADMIN_TOKEN is set: it can only create the first platform admin (POST /api/v1/admin/bootstrap); remove it once one exists"
        );
    }
    let addr = settings.bind_address.clone();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%addr, port = app.port(), "listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
