//! Randomised quasi-Monte Carlo: Owen-scrambled Sobol points and the
//! Brownian-bridge construction of the shocks.

use crate::SpecError;
use crate::spec::{ReturnModel, Sampling, SimulationSpec};

/// Largest number of quasi-Monte Carlo dimensions (factors × steps) per
/// path; the per-block buffer is `8 × dimensions` values.
pub const MAX_QMC_DIMENSIONS: u64 = 1 << 18;

/// Validated QMC settings of a simulation.
#[derive(Debug, Clone)]
pub(crate) struct QmcPlan {
    /// Independent scramblings `R`.
    pub(crate) scramblings: u32,
    /// Dimensions per path: factors × steps.
    #[allow(dead_code)] // read by the generator (next commit)
    pub(crate) dims: usize,
}

impl QmcPlan {
    /// `None` for pseudo-random sampling.
    pub(crate) fn new(
        spec: &SimulationSpec,
        factors: usize,
        steps: u64,
    ) -> Result<Option<QmcPlan>, SpecError> {
        let Sampling::Rqmc { scramblings } = spec.sampling else {
            return Ok(None);
        };
        if !matches!(spec.model, ReturnModel::Gbm | ReturnModel::StudentT { .. }) {
            return Err(SpecError::QmcNotSupported);
        }
        if spec.antithetic {
            return Err(SpecError::AntitheticWithQmc);
        }
        if !(2..=1024).contains(&scramblings) {
            return Err(SpecError::InvalidScramblings { value: scramblings });
        }
        if !spec.paths.is_multiple_of(u64::from(scramblings)) {
            return Err(SpecError::PathsNotMultipleOfScramblings {
                paths: spec.paths,
                scramblings,
            });
        }
        let dims = factors as u64 * steps;
        if dims > MAX_QMC_DIMENSIONS {
            return Err(SpecError::TooManyQmcDimensions {
                dimensions: dims,
                max: MAX_QMC_DIMENSIONS,
            });
        }
        Ok(Some(QmcPlan {
            scramblings,
            dims: dims as usize,
        }))
    }
}
