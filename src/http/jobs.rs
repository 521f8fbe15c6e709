//! Background jobs and batches: read, list, cancel, follow (Server-Sent Events), submit a batch.
//! A single simulation becomes a job through `POST /api/v1/simulations` with
//! `Prefer: respond-async` (see `http::simulations`).

use super::payload::{ApiJson, BodyLimit, Json};
use super::problem::Problem;
use super::security::Caller;
use super::simulation_views::SimulationRequest;
use super::tags::ApiTags;
use crate::app::App;
use crate::app::jobs::{Batch, MAX_BATCH};
use crate::db::TenantContext;
use crate::domain::job::{Job, JobProblem, JobStatus};
use crate::domain::simulation::SimulationInput;
use crate::domain::{BatchId, JobId, SimulationId};
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem::web::sse::Event;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::EventStream;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use std::sync::Arc;
use std::time::Duration;

/// How often the event stream reads the job.
const EVENT_POLL: Duration = Duration::from_millis(200);

/// The longest an event stream stays open (then the client reconnects).
const EVENT_STREAM_MAX: Duration = Duration::from_secs(3600);

/// Job operations.
pub struct JobsApi {
    /// The application.
    pub app: Arc<App>,
}

/// Where a job is in its life.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum JobStatusView {
    /// Waiting for a worker.
    Queued,
    /// Running.
    Running,
    /// Done: `simulation_id` names the stored simulation.
    Succeeded,
    /// Failed for good: `problem` says why.
    Failed,
    /// Cancelled by its tenant.
    Cancelled,
}

impl From<JobStatus> for JobStatusView {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => Self::Queued,
            JobStatus::Running => Self::Running,
            JobStatus::Succeeded => Self::Succeeded,
            JobStatus::Failed => Self::Failed,
            JobStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// A background simulation job.
#[derive(Object, Debug, Clone)]
#[oai(rename = "Job", skip_serializing_if_is_none)]
pub struct JobView {
    /// Job id (`job_…`).
    pub id: JobId,
    /// The batch it belongs to.
    pub batch_id: Option<BatchId>,
    /// State.
    pub status: JobStatusView,
    /// Fraction of the engine's path chunks done, 0–1 (of the main run; a withdrawal-rate
    /// search or a precision run reports its furthest phase).
    pub progress: f64,
    /// Estimated completion time while running.
    pub eta: Option<DateTime<Utc>>,
    /// Attempts started (a retry or a worker lost counts one).
    pub attempts: u32,
    /// Attempts allowed before the job fails.
    pub max_attempts: u32,
    /// A cancel was requested while it ran; it stops at the engine's next chunk.
    pub cancel_requested: bool,
    /// The stored simulation, once succeeded (`GET /api/v1/simulations/{id}`).
    pub simulation_id: Option<SimulationId>,
    /// Why it failed.
    pub problem: Option<Problem>,
    /// Enqueued at.
    pub created_at: DateTime<Utc>,
    /// Its latest attempt started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached its final state at.
    pub finished_at: Option<DateTime<Utc>>,
}

fn problem_view(p: &JobProblem, id: JobId) -> Problem {
    Problem {
        problem_type: format!("https://docs.montecarlo.dev/problems/{}", p.kind),
        title: poem::http::StatusCode::from_u16(p.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
            .to_string(),
        status: p.status,
        detail: p.detail.clone(),
        instance: Some(format!("/api/v1/jobs/{id}")),
        request_id: None,
        field: p.field.clone(),
        policy: p.policy.clone(),
        portal: None,
    }
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        Self {
            id: j.id,
            batch_id: j.batch_id,
            status: j.status.into(),
            progress: j.progress,
            eta: j.eta(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            cancel_requested: j.cancel_requested,
            simulation_id: j.simulation_id,
            problem: j.problem.as_ref().map(|p| problem_view(p, j.id)),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// A page of jobs, newest first.
#[derive(Object, Debug, Clone)]
#[oai(rename = "JobPage", skip_serializing_if_is_none)]
pub struct JobPage {
    /// Items.
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<JobId>,
}

/// Simulations to run as background jobs, one job each.
#[derive(Object, Debug, Clone)]
#[oai(rename = "BatchRequest", deny_unknown_fields)]
pub struct BatchRequest {
    /// The simulations (1 to the tier's batch limit: trial 5, starter 20, professional 50,
    /// enterprise 100).
    #[oai(validator(min_items = 1, max_items = 100))]
    pub items: Vec<SimulationRequest>,
}

impl BodyLimit for BatchRequest {
    /// 16 MiB for the whole batch.
    const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
}

/// Counts of a batch's jobs per state.
#[derive(Object, Debug, Clone, Default)]
#[oai(rename = "BatchCounts")]
pub struct BatchCounts {
    /// Queued.
    pub queued: u32,
    /// Running.
    pub running: u32,
    /// Succeeded.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
    /// Cancelled.
    pub cancelled: u32,
}

/// A batch of jobs.
#[derive(Object, Debug, Clone)]
#[oai(rename = "Batch")]
pub struct BatchView {
    /// Batch id (`bat_…`).
    pub id: BatchId,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Jobs per state.
    pub counts: BatchCounts,
    /// Every job has reached a final state.
    pub done: bool,
    /// Its jobs in submission order.
    pub jobs: Vec<JobView>,
}

impl From<&Batch> for BatchView {
    fn from(b: &Batch) -> Self {
        let mut counts = BatchCounts::default();
        for j in &b.jobs {
            let c = match j.status {
                JobStatus::Queued => &mut counts.queued,
                JobStatus::Running => &mut counts.running,
                JobStatus::Succeeded => &mut counts.succeeded,
                JobStatus::Failed => &mut counts.failed,
                JobStatus::Cancelled => &mut counts.cancelled,
            };
            *c += 1;
        }
        Self {
            id: b.id,
            created_at: b.created_at,
            counts,
            done: b.jobs.iter().all(|j| j.status.is_terminal()),
            jobs: b.jobs.iter().map(Into::into).collect(),
        }
    }
}

ok_response!(JobOk, JobView, "The job.");
ok_response!(BatchOk, BatchView, "The batch and its jobs.");

/// The batch was queued.
#[derive(ApiResponse)]
pub enum BatchCreated {
    /// Queued: one job per item; follow the batch at `Location`.
    #[oai(status = 202)]
    Accepted(Json<BatchView>, #[oai(header = "Location")] String),
}

/// The job's events.
#[derive(ApiResponse)]
pub enum JobEvents {
    /// Server-Sent Events: one `progress` event (data: the job) whenever its state or progress
    /// changes, then one event named after its final state (`succeeded`, `failed`,
    /// `cancelled`), then the stream ends. Streams close after an hour at most.
    #[oai(status = 200)]
    Stream(EventStream<futures_util::stream::BoxStream<'static, JobView>>),
}

problem_responses!(ReadJobError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(CreateBatchError {
    BadRequest = 400, Unauthorized = 401, PaymentRequired = 402, Forbidden = 403, NotFound = 404,
    Invalid = 422, TooMany = 429, Unavailable = 503
});

fn default_limit() -> u32 {
    20
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Get a job
    ///
    /// A background job of this tenant: its state, progress and ETA, the simulation id once
    /// succeeded, the problem once failed. Another tenant's id answers 404.
    #[oai(path = "/api/v1/jobs/:id", method = "get", operation_id = "getJob")]
    async fn get(
        &self,
        caller: Caller,
        /// Job id (`job_…`).
        id: Path<JobId>,
    ) -> Result<JobOk, ReadJobError> {
        let job = self.app.jobs.get(&caller.0, id.0).await?;
        Ok(JobOk::Ok(Json((&job).into())))
    }

    /// List jobs
    ///
    /// This tenant's jobs, newest first, `limit` per page (1–100, default 20); pass
    /// `next_cursor` back as `cursor` for the next page.
    #[oai(path = "/api/v1/jobs", method = "get", operation_id = "listJobs")]
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
        cursor: Query<Option<JobId>>,
    ) -> Result<Json<JobPage>, ReadJobError> {
        let page = self.app.jobs.list(&caller.0, cursor.0, limit.0).await?;
        Ok(Json(JobPage {
            items: page.items.iter().map(Into::into).collect(),
            next_cursor: page.next,
        }))
    }

    /// Cancel a job
    ///
    /// A queued job is cancelled at once; a running one stops at the engine's next chunk
    /// (well within 100 ms) and then reads `cancelled` — the answer shows
    /// `cancel_requested: true` until then. A cancelled job is never charged. A finished job
    /// is returned unchanged.
    #[oai(
        path = "/api/v1/jobs/:id",
        method = "delete",
        operation_id = "cancelJob"
    )]
    async fn cancel(
        &self,
        caller: Caller,
        /// Job id (`job_…`).
        id: Path<JobId>,
    ) -> Result<JobOk, ReadJobError> {
        let job = self.app.jobs.cancel(&caller.0, id.0).await?;
        Ok(JobOk::Ok(Json((&job).into())))
    }

    /// Follow a job
    ///
    /// Server-Sent Events (`text/event-stream`) with the job's progress until it reaches a
    /// final state (see the response). `curl -N` shows them as they come.
    #[oai(
        path = "/api/v1/jobs/:id/events",
        method = "get",
        operation_id = "jobEvents"
    )]
    async fn events(
        &self,
        caller: Caller,
        /// Job id (`job_…`).
        id: Path<JobId>,
    ) -> Result<JobEvents, ReadJobError> {
        let first = self.app.jobs.get(&caller.0, id.0).await?;
        let stream = job_stream(self.app.clone(), caller.0.clone(), first);
        Ok(JobEvents::Stream(
            EventStream::new(stream)
                .keep_alive(Duration::from_secs(15))
                .to_event(|job: JobView| {
                    let name = match job.status {
                        JobStatusView::Succeeded => "succeeded",
                        JobStatusView::Failed => "failed",
                        JobStatusView::Cancelled => "cancelled",
                        _ => "progress",
                    };
                    Event::message(job.to_json_string()).event_type(name)
                }),
        ))
    }

    /// Run simulations as a batch
    ///
    /// Queues one background job per item and answers at once with the batch
    /// (`Location: /api/v1/batches/{id}`). Every item is checked before anything is queued
    /// (422 names `items[i].…`; 403 over the tier's size caps or batch size), and the monthly
    /// quota must cover the whole batch (429), or nothing is queued. Each job is charged when
    /// it runs.
    #[oai(
        path = "/api/v1/simulations/batch",
        method = "post",
        operation_id = "createBatch",
        tag = "ApiTags::Simulations"
    )]
    async fn create_batch(
        &self,
        caller: Caller,
        body: ApiJson<BatchRequest>,
    ) -> Result<BatchCreated, CreateBatchError> {
        let inputs: Vec<SimulationInput> = body
            .0
            .items
            .into_iter()
            .map(SimulationInput::from)
            .collect();
        debug_assert!(inputs.len() <= MAX_BATCH);
        let batch = self.app.jobs.enqueue_batch(&caller.0, inputs).await?;
        let location = format!("/api/v1/batches/{}", batch.id);
        Ok(BatchCreated::Accepted(Json((&batch).into()), location))
    }

    /// Get a batch
    ///
    /// A batch of this tenant with its jobs and their counts per state.
    #[oai(
        path = "/api/v1/batches/:id",
        method = "get",
        operation_id = "getBatch"
    )]
    async fn batch(
        &self,
        caller: Caller,
        /// Batch id (`bat_…`).
        id: Path<BatchId>,
    ) -> Result<BatchOk, ReadJobError> {
        let batch = self.app.jobs.batch(&caller.0, id.0).await?;
        Ok(BatchOk::Ok(Json((&batch).into())))
    }
}

/// The job as it changes: the first state, then every change, until a final state (included)
/// or [`EVENT_STREAM_MAX`].
fn job_stream(
    app: Arc<App>,
    ctx: TenantContext,
    first: Job,
) -> futures_util::stream::BoxStream<'static, JobView> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + EVENT_STREAM_MAX;
    let id = first.id;
    let state = (Some(first), None::<(JobStatus, u64)>, false);
    futures_util::stream::unfold(state, move |(next, mut last, done)| {
        let app = app.clone();
        let ctx = ctx.clone();
        async move {
            if done {
                return None;
            }
            let mut next = next;
            loop {
                let job = match next.take() {
                    Some(j) => j,
                    None => {
                        if tokio::time::Instant::now() >= deadline {
                            return None;
                        }
                        tokio::time::sleep(EVENT_POLL).await;
                        app.jobs.get(&ctx, id).await.ok()?
                    }
                };
                let key = (job.status, (job.progress * 1_000_000.0) as u64);
                if last != Some(key) {
                    last = Some(key);
                    let terminal = job.status.is_terminal();
                    return Some((JobView::from(&job), (None, last, terminal)));
                }
            }
        }
    })
    .boxed()
}
