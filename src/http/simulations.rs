//! Simulation operations: run one, read one, list them.

use super::jobs::JobView;
use super::payload::{ApiJson, BodyLimit, Json};
use super::scope;
use super::security::Caller;
use super::simulation_results::SimulationView;
use super::simulation_views::{SimulationPage, SimulationRequest};
use super::tags::ApiTags;
use crate::app::App;
use crate::app::idempotency::IdempotencyKey;
use crate::app::jobs::Submitted;
use crate::domain::SimulationId;
use crate::domain::simulation::SimulationInput;
use crate::{ok_response, problem_responses};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::{ApiResponse, OpenApi};
use std::sync::Arc;

/// Simulation operations.
pub struct SimulationsApi {
    /// The application.
    pub app: Arc<App>,
}

#[derive(ApiResponse)]
pub enum SimulationCreated {
    /// The simulation ran and was stored (or, with a reused `Idempotency-Key`, the first
    /// response is replayed with `Idempotent-Replayed: true`).
    #[oai(status = 201)]
    Created(Json<Box<SimulationView>>),
    /// Queued as a background job (asked with `Prefer: respond-async`, or because its work is
    /// above the service's threshold): follow it at `Location`.
    #[oai(status = 202)]
    Accepted(
        Json<Box<JobView>>,
        /// `/api/v1/jobs/{id}`.
        #[oai(header = "Location")]
        String,
        /// `respond-async` when the preference was honoured.
        #[oai(header = "Preference-Applied")]
        Option<String>,
    ),
}

/// Whether a `Prefer` header (RFC 7240) asks for `respond-async`.
fn prefers_async(prefer: Option<&str>) -> bool {
    prefer.is_some_and(|v| {
        v.split(',')
            .filter_map(|p| p.split(';').next())
            .any(|token| token.trim().eq_ignore_ascii_case("respond-async"))
    })
}

impl BodyLimit for SimulationRequest {
    /// 8 MiB: the largest request is 12,000 rows of returns for 50 assets.
    const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
}

ok_response!(SimulationOk, SimulationView, "The stored simulation.");
ok_response!(
    SimulationPageOk,
    SimulationPage,
    "A page of simulations, newest first."
);

problem_responses!(CreateSimulationError {
    BadRequest = 400, Unauthorized = 401, PaymentRequired = 402, Forbidden = 403, NotFound = 404,
    Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503
});
problem_responses!(ReadSimulationError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });

fn default_limit() -> u32 {
    20
}

#[OpenApi(tag = "ApiTags::Simulations")]
impl SimulationsApi {
    /// Run a simulation
    ///
    /// Runs a correlated multi-asset Monte Carlo simulation in-process and stores the result.
    /// Counts against the tenant's monthly simulation quota; the tier caps paths and
    /// paths × steps × assets. Responses carry `RateLimit-Policy`, `RateLimit` and
    /// `X-RateLimit-*` headers.
    #[oai(
        path = "/api/v1/simulations",
        method = "post",
        operation_id = "createSimulation"
    )]
    async fn create(
        &self,
        caller: Caller,
        body: ApiJson<SimulationRequest>,
        /// Optional idempotency key (e.g. a UUID): a retried request with the same key and body
        /// runs once and replays the first response for 24 hours; the same key with another body
        /// answers 422, and while the first request is still running, 409.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        /// `respond-async` (RFC 7240) queues the simulation as a background job and answers
        /// 202 with `Location: /api/v1/jobs/{id}` and `Preference-Applied: respond-async`.
        /// Large simulations are queued without it.
        #[oai(name = "Prefer")]
        prefer: Header<Option<String>>,
    ) -> Result<SimulationCreated, CreateSimulationError> {
        let input = SimulationInput::from(body.0);
        let key = idempotency_key
            .0
            .as_deref()
            .map(IdempotencyKey::parse)
            .transpose()?;
        let prefer_async = prefers_async(prefer.0.as_deref());
        let out = match self
            .app
            .jobs
            .submit(&caller.0, input, key, prefer_async)
            .await?
        {
            Submitted::Ran(out) => *out,
            Submitted::Queued { job, by_size } => {
                let location = format!("/api/v1/jobs/{}", job.id);
                let applied = (!by_size).then(|| "respond-async".to_owned());
                return Ok(SimulationCreated::Accepted(
                    Json(Box::new(job.as_ref().into())),
                    location,
                    applied,
                ));
            }
        };
        if out.replayed {
            scope::add_headers(vec![("Idempotent-Replayed".into(), "true".into())]);
        }
        if let Some(grant) = &out.grant {
            if let Some(burst) = scope::burst() {
                scope::add_headers(grant.headers_with(&burst));
            }
            let result = &out.simulation.result;
            scope::set_units(
                i64::try_from(result.result.paths.saturating_mul(result.result.steps))
                    .unwrap_or(i64::MAX),
            );
            crate::metrics::simulation_stored(&out.simulation, "sync");
        }
        Ok(SimulationCreated::Created(Json(Box::new(
            (&out.simulation).into(),
        ))))
    }

    /// Get a simulation
    ///
    /// A stored simulation of this tenant. Another tenant's id answers 404.
    #[oai(
        path = "/api/v1/simulations/:id",
        method = "get",
        operation_id = "getSimulation"
    )]
    async fn get(
        &self,
        caller: Caller,
        /// Simulation id (`sim_…`).
        id: Path<SimulationId>,
    ) -> Result<SimulationOk, ReadSimulationError> {
        let sim = self.app.simulations.get(&caller.0, id.0).await?;
        Ok(SimulationOk::Ok(Json((&sim).into())))
    }

    /// List simulations
    ///
    /// This tenant's simulations, newest first, `limit` per page (1–100, default 20); pass
    /// `next_cursor` back as `cursor` for the next page.
    #[oai(
        path = "/api/v1/simulations",
        method = "get",
        operation_id = "listSimulations"
    )]
    async fn list(
        &self,
        caller: Caller,
        /// Page size, 1–100.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<SimulationId>>,
    ) -> Result<Json<SimulationPage>, ReadSimulationError> {
        let page = self
            .app
            .simulations
            .list(&caller.0, cursor.0, limit.0)
            .await?;
        Ok(Json(SimulationPage {
            items: page.items.iter().map(Into::into).collect(),
            next_cursor: page.next,
        }))
    }
}
