//! Prometheus metrics (the `metrics` facade with `metrics-exporter-prometheus`), rendered by
//! `GET /metrics`.
//!
//! Labels are bounded: HTTP requests are labelled with the operation id (the route template's
//! name, `other` for routes outside the API such as `/docs` and unmatched paths), the method,
//! the status code and class and the tenant's tier (`none` when unauthenticated); quota refusals with their policy (`burst`, `monthly`, `concurrency`,
//! `size`, `login`, …); jobs with their outcome; simulations with their mode. No tenant label:
//! tenants are unbounded.
//!
//! The recorder is process-wide (the `metrics` facade has one global recorder), installed on
//! first use; several applications in one process (the tests) share it.

use crate::domain::simulation::Simulation;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The process's recorder handle (installs the recorder on first call).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .expect("non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only this handle's metrics");
        }
        describe();
        gauge!(
            "mc_build_info",
            "version" => env!("CARGO_PKG_VERSION"),
            "engine" => engine::ENGINE_VERSION
        )
        .set(1.0);
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "mc_http_requests_total",
        "HTTP requests by operation, method, status, status class and tenant tier (none: unauthenticated)"
    );
    describe_histogram!(
        "mc_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by operation, method and tenant tier"
    );
    describe_counter!(
        "mc_simulations_total",
        "Simulations run and stored, by mode (sync, job)"
    );
    describe_counter!(
        "mc_simulation_paths_total",
        "Monte Carlo paths simulated and stored"
    );
    describe_histogram!(
        "mc_engine_seconds",
        Unit::Seconds,
        "Engine time of a stored simulation"
    );
    describe_counter!(
        "mc_quota_rejections_total",
        "Requests refused by a limit, by policy"
    );
    describe_gauge!("mc_jobs", "Jobs in the queue table by status");
    describe_gauge!(
        "mc_jobs_oldest_queued_seconds",
        Unit::Seconds,
        "Age of the oldest queued job"
    );
    describe_counter!("mc_job_attempts_total", "Job attempts ended, by outcome");
    describe_histogram!(
        "mc_job_run_seconds",
        Unit::Seconds,
        "Run time of a job attempt"
    );
    describe_histogram!(
        "mc_job_wait_seconds",
        Unit::Seconds,
        "Time from enqueue to the start of an attempt"
    );
    describe_gauge!("mc_job_workers", "Job workers on this instance");
    describe_gauge!(
        "mc_job_workers_busy",
        "Job workers running a job on this instance"
    );
    describe_gauge!(
        "mc_db_pool_connections",
        "Request pool connections by state: in_use, idle, max (the pool size limit). Tasks waiting for a connection are not exposed by sqlx 0.9: in_use == max means callers wait"
    );
    describe_gauge!(
        "mc_redis_degraded",
        "1 when Redis is configured but unreachable (monthly quotas enforced per instance); 0 when up or not configured"
    );
    describe_gauge!(
        "mc_build_info",
        "Always 1; labels: version (service), engine (mc-engine)"
    );
}

/// The `tier` label of a request: the authenticated tenant's tier, `none` for unauthenticated
/// requests (and platform calls), `other` for a tier this build does not know (bounded).
pub fn tier_label(tier: Option<&str>) -> &'static str {
    match tier {
        None => "none",
        Some("trial") => "trial",
        Some("starter") => "starter",
        Some("professional") => "professional",
        Some("enterprise") => "enterprise",
        Some(_) => "other",
    }
}

/// The `status_class` label: `1xx` … `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// One HTTP request answered; `tier` from [`tier_label`].
pub fn http_request(
    operation: &'static str,
    method: &str,
    status: u16,
    tier: &'static str,
    elapsed: Duration,
) {
    let method = match method {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method.to_owned(),
        _ => "other".to_owned(),
    };
    counter!(
        "mc_http_requests_total",
        "operation" => operation,
        "method" => method.clone(),
        "status" => status.to_string(),
        "status_class" => status_class(status),
        "tier" => tier
    )
    .increment(1);
    histogram!(
        "mc_http_request_duration_seconds",
        "operation" => operation,
        "method" => method,
        "tier" => tier
    )
    .record(elapsed.as_secs_f64());
}

/// A request refused by a limit's `policy`.
pub fn rejected(policy: &str) {
    let policy = match policy {
        "burst" | "monthly" | "concurrency" | "size" | "login" | "lockout" | "load" | "timeout"
        | "batch" => policy.to_owned(),
        _ => "other".to_owned(),
    };
    counter!("mc_quota_rejections_total", "policy" => policy).increment(1);
}

/// A simulation was stored (`mode`: `sync` or `job`).
pub fn simulation_stored(sim: &Simulation, mode: &'static str) {
    counter!("mc_simulations_total", "mode" => mode).increment(1);
    counter!("mc_simulation_paths_total").increment(sim.result.result.paths);
    histogram!("mc_engine_seconds").record(sim.duration_ms / 1000.0);
}

/// A job's simulation was stored.
pub fn simulation_ran(sim: &Simulation) {
    simulation_stored(sim, "job");
}

/// A worker leased a job.
pub fn job_started(job: &crate::db::jobs::ClaimedJob) {
    let waited = (chrono::Utc::now() - job.created_at)
        .num_milliseconds()
        .max(0) as f64
        / 1000.0;
    histogram!("mc_job_wait_seconds").record(waited);
    gauge!("mc_job_workers_busy").increment(1.0);
}

/// A worker ended a job attempt.
pub fn job_finished(outcome: crate::domain::job::AttemptOutcome, elapsed: Duration) {
    gauge!("mc_job_workers_busy").decrement(1.0);
    counter!("mc_job_attempts_total", "outcome" => outcome.as_str()).increment(1);
    histogram!("mc_job_run_seconds").record(elapsed.as_secs_f64());
}

/// Values read at scrape time.
pub struct Snapshot {
    /// Jobs per status.
    pub jobs: Vec<(String, i64)>,
    /// Oldest queued job, seconds.
    pub oldest_queued: f64,
    /// Workers on this instance.
    pub workers: usize,
    /// Pool connections in use, idle and the maximum.
    pub pool: (u32, u32, u32),
    /// Redis degraded.
    pub redis_degraded: bool,
}

/// Sets the scrape-time gauges and renders the text format. Scrapes are serialised, so one
/// scrape shows one snapshot even when several applications share the recorder (the tests).
pub fn render(s: &Snapshot) -> String {
    static SCRAPE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SCRAPE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let handle = handle();
    for status in crate::domain::job::JobStatus::ALL {
        let n = s
            .jobs
            .iter()
            .find(|(k, _)| k == status.as_str())
            .map_or(0, |(_, n)| *n);
        gauge!("mc_jobs", "status" => status.as_str()).set(n as f64);
    }
    gauge!("mc_jobs_oldest_queued_seconds").set(s.oldest_queued);
    gauge!("mc_job_workers").set(s.workers as f64);
    gauge!("mc_db_pool_connections", "state" => "in_use").set(f64::from(s.pool.0));
    gauge!("mc_db_pool_connections", "state" => "idle").set(f64::from(s.pool.1));
    gauge!("mc_db_pool_connections", "state" => "max").set(f64::from(s.pool.2));
    gauge!("mc_redis_degraded").set(if s.redis_degraded { 1.0 } else { 0.0 });
    handle.render()
}
