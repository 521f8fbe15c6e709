//! Service entry point: load configuration, set up tracing, build and serve.
//!
//! `montecarlo-platform openapi [--check]` prints the OpenAPI document (or checks that
//! `openapi/openapi.json` is current) without a database.
//!
//! `montecarlo-platform billing sync-catalog` creates or checks the Stripe products and plans of
//! the paid tiers (idempotent) and records them on `platform.tiers`.

use montecarlo_platform::config::Settings;
use montecarlo_platform::startup::{Application, openapi_json, sync_catalog};
use montecarlo_platform::telemetry;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("openapi") {
        let spec = openapi_json().await;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
        return match args.get(1).map(String::as_str) {
            Some("--check") => {
                let committed = std::fs::read_to_string(path).unwrap_or_default();
                if committed == spec {
                    println!("openapi/openapi.json is current");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("openapi/openapi.json is stale: run `cargo run -- openapi --write`");
                    ExitCode::FAILURE
                }
            }
            Some("--write") => match std::fs::write(path, &spec) {
                Ok(()) => {
                    println!("wrote {path}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("writing {path}: {e}");
                    ExitCode::FAILURE
                }
            },
            _ => {
                print!("{spec}");
                ExitCode::SUCCESS
            }
        };
    }
    if args.first().map(String::as_str) == Some("billing") {
        if args.get(1).map(String::as_str) != Some("sync-catalog") {
            eprintln!("usage: montecarlo-platform billing sync-catalog");
            return ExitCode::FAILURE;
        }
        let settings = match Settings::from_env() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        return match sync_catalog(settings).await {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("billing sync-catalog: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
    if settings.admin_token.is_none() {
        tracing::info!("ADMIN_TOKEN is not set: the admin API is disabled");
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
