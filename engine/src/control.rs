//! Progress reporting and cancellation of a running simulation.

use std::sync::atomic::{AtomicBool, Ordering};

/// Progress of a run: path chunks ([`crate::CHUNK_PATHS`] paths each)
/// simulated so far out of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Chunks finished (1..=`chunks_total`).
    pub chunks_done: u64,
    /// Chunks of the run.
    pub chunks_total: u64,
}

impl Progress {
    /// `chunks_done / chunks_total`, in `(0, 1]`.
    pub fn fraction(&self) -> f64 {
        self.chunks_done as f64 / self.chunks_total.max(1) as f64
    }
}

/// Optional progress callback and cancellation flag for
/// [`crate::Simulation::run_with`].
///
/// Neither changes results: the same spec gives the same bits with or
/// without them (tested).
///
/// * The **cancellation flag** is read (relaxed) before every chunk of
///   paths and between the selections of the statistics phase; once it is
///   `true` the run returns [`RunError::Cancelled`] promptly (a chunk of the
///   largest simulations is a few milliseconds of work).
/// * The **progress callback** is called once after each finished chunk,
///   from the worker thread that finished it. Calls may overlap and arrive
///   slightly out of order (two threads finishing together): keep the
///   maximum `chunks_done` seen (e.g. `AtomicU64::fetch_max`).
///
/// # Examples
/// ```
/// use engine::*;
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
/// let spec = SimulationSpec {
///     assets: vec![Asset { weight: 1.0, drift: 0.05, volatility: 0.15 }],
///     correlation: vec![vec![1.0]],
///     initial_value: 1_000.0,
///     horizon_years: 5,
///     steps_per_year: 12,
///     paths: 1_000,
///     seed: 1,
///     ..SimulationSpec::default()
/// };
/// let sim = Simulation::new(spec)?;
/// let cancel = AtomicBool::new(false);
/// let seen = AtomicU64::new(0);
/// let report = |p: Progress| { seen.fetch_max(p.chunks_done, Ordering::Relaxed); };
/// let control = RunControl::new().with_cancel(&cancel).with_progress(&report);
/// let result = sim.run_with(&control).expect("not cancelled");
/// assert_eq!(result, sim.run());
/// assert_eq!(seen.load(Ordering::Relaxed), 4); // 1 000 paths = 4 chunks of 256
///
/// cancel.store(true, Ordering::Relaxed);
/// assert!(matches!(sim.run_with(&control), Err(RunError::Cancelled { .. })));
/// # Ok::<(), engine::SpecError>(())
/// ```
#[derive(Clone, Copy, Default)]
pub struct RunControl<'a> {
    cancel: Option<&'a AtomicBool>,
    progress: Option<&'a (dyn Fn(Progress) + Sync)>,
}

impl std::fmt::Debug for RunControl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.map(|_| "Fn(Progress)"))
            .finish()
    }
}

impl<'a> RunControl<'a> {
    /// No progress callback, no cancellation (what [`crate::Simulation::run`]
    /// uses).
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the run once `flag` is `true`.
    pub fn with_cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Calls `f` after every finished chunk (see the type docs).
    pub fn with_progress(mut self, f: &'a (dyn Fn(Progress) + Sync)) -> Self {
        self.progress = Some(f);
        self
    }

    /// Whether cancellation was requested.
    #[inline]
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn report(&self, p: Progress) {
        if let Some(f) = self.progress {
            f(p);
        }
    }
}

/// Why a run did not produce a result.
///
/// `#[non_exhaustive]`: match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The cancellation flag of the [`RunControl`] was set.
    #[error("simulation cancelled after {chunks_done} of {chunks_total} chunks")]
    Cancelled {
        /// Chunks finished before the run stopped.
        chunks_done: u64,
        /// Chunks of the whole run.
        chunks_total: u64,
    },
    /// [`crate::Simulation::withdrawal_rates`] cannot search this spec.
    #[error("withdrawal-rate search unavailable: {reason}")]
    RateSearchUnavailable {
        /// Why.
        reason: &'static str,
    },
    /// [`crate::Simulation::run_to_precision`] was given an invalid target.
    #[error("invalid precision target: {reason}")]
    InvalidTarget {
        /// Why.
        reason: &'static str,
    },
}
