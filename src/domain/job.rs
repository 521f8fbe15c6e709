//! Background simulation jobs: their states and what a job reports.

use super::{BatchId, JobId, SimulationId};
use chrono::{DateTime, Utc};

/// Where a job is in its life. `queued → running → succeeded | failed | cancelled`; a running
/// job whose worker vanished goes back to `queued` when its lease expires (or `failed` after
/// its last attempt); a queued job can be cancelled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker holds its lease and runs it.
    Running,
    /// The simulation is stored (`simulation_id`).
    Succeeded,
    /// It failed for good (`problem`).
    Failed,
    /// Cancelled by its tenant before it completed.
    Cancelled,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// A message naming the unknown status.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown job status {s:?}"))
    }

    /// No further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// Why a job failed, as it will be shown (an RFC 9457 problem without the request parts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobProblem {
    /// HTTP-like status class (4xx: the request cannot run; 5xx: our side, after retries).
    pub status: u16,
    /// Problem type slug (`validation`, `limit-exceeded`, `internal`, …).
    pub kind: String,
    /// What went wrong.
    pub detail: String,
    /// The offending request field, for validation problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The violated policy, for limit problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// A job as its tenant sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// The batch it belongs to, if any.
    pub batch_id: Option<BatchId>,
    /// State.
    pub status: JobStatus,
    /// Fraction of the engine's path chunks done, 0–1.
    pub progress: f64,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// A cancel was asked for while it was running.
    pub cancel_requested: bool,
    /// The stored simulation, once succeeded.
    pub simulation_id: Option<SimulationId>,
    /// Why it failed.
    pub problem: Option<JobProblem>,
    /// Enqueued at.
    pub created_at: DateTime<Utc>,
    /// First started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached its terminal state at.
    pub finished_at: Option<DateTime<Utc>>,
    /// The database's time when this was read (for the ETA).
    pub read_at: DateTime<Utc>,
}

impl Job {
    /// Estimated completion time of a running job, from its progress rate so far.
    pub fn eta(&self) -> Option<DateTime<Utc>> {
        if self.status != JobStatus::Running || self.progress <= 0.0 {
            return None;
        }
        let started = self.started_at?;
        let elapsed = (self.read_at - started).num_milliseconds().max(0) as f64;
        let remaining = elapsed * (1.0 - self.progress) / self.progress;
        Some(self.read_at + chrono::Duration::milliseconds(remaining.min(1e12) as i64))
    }
}

/// How a finished attempt went (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Stored.
    Succeeded,
    /// Will be retried or requeued.
    Retried,
    /// Failed for good.
    Failed,
    /// Cancelled by its tenant.
    Cancelled,
    /// Another worker holds it now.
    LeaseLost,
}

impl AttemptOutcome {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::LeaseLost => "lease_lost",
        }
    }
}
