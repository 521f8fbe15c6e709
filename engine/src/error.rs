//! The typed validation error returned by [`crate::Simulation::new`].

/// Why a [`crate::SimulationSpec`] was rejected.
///
/// One variant per validation rule. Every variant names the offending field
/// through [`SpecError::field`] (a JSON-pointer-like path such as
/// `"assets[2].weight"`, `"correlation[1][0]"` or `"model.dof"`), and its
/// `Display` text is a precise, human-readable sentence suitable for an API
/// error body.
///
/// The enum is `#[non_exhaustive]`: new rules may be added without a major
/// version bump, so match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A number that must be finite is NaN or infinite.
    #[error("{field} must be a finite number, got {value}")]
    NotFinite {
        /// Path of the field.
        field: String,
        /// The offending value.
        value: f64,
    },
    /// A number lies outside its allowed range.
    #[error("{field} must be {expected}, got {value}")]
    OutOfRange {
        /// Path of the field.
        field: String,
        /// Human description of the allowed range, e.g. `"in [0, 2]"`.
        expected: &'static str,
        /// The offending value.
        value: f64,
    },
    /// The asset list is empty.
    #[error("assets must contain at least one asset")]
    NoAssets,
    /// More assets than the engine supports.
    #[error("assets has {count} entries; at most {max} are supported")]
    TooManyAssets {
        /// Number of assets supplied.
        count: usize,
        /// Maximum supported ([`crate::MAX_ASSETS`]).
        max: usize,
    },
    /// An asset weight is negative.
    #[error("{field} must be >= 0, got {value}")]
    NegativeWeight {
        /// Path of the field, e.g. `"assets[1].weight"`.
        field: String,
        /// The offending weight.
        value: f64,
    },
    /// The weights do not sum to 1 within `1e-9`.
    #[error("asset weights must sum to 1 (±1e-9), they sum to {sum}")]
    WeightsDoNotSumToOne {
        /// The actual sum.
        sum: f64,
    },
    /// The correlation matrix has the wrong number of rows or a row has the
    /// wrong length.
    #[error("{field} must have {expected} entries (one per asset), got {found}")]
    CorrelationShape {
        /// `"correlation"` for the row count, `"correlation[i]"` for row `i`.
        field: String,
        /// Expected length (number of assets).
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A diagonal entry is not 1.
    #[error("correlation[{index}][{index}] must be 1 (unit diagonal), got {value}")]
    CorrelationDiagonal {
        /// Path of the field, e.g. `"correlation[1][0]"`.
        field: String,
        /// Row/column index.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// An entry lies outside `[-1, 1]`.
    #[error("correlation[{row}][{col}] must be in [-1, 1], got {value}")]
    CorrelationOutOfRange {
        /// Path of the field, e.g. `"correlation[1][0]"`.
        field: String,
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
        /// The offending value.
        value: f64,
    },
    /// `correlation[row][col] != correlation[col][row]` (beyond `1e-9`).
    #[error(
        "correlation matrix is not symmetric: correlation[{row}][{col}] = {value} but correlation[{col}][{row}] = {transposed}"
    )]
    CorrelationNotSymmetric {
        /// Path of the field, e.g. `"correlation[1][0]"`.
        field: String,
        /// Row index (the larger index).
        row: usize,
        /// Column index.
        col: usize,
        /// `correlation[row][col]`.
        value: f64,
        /// `correlation[col][row]`.
        transposed: f64,
    },
    /// The Cholesky/LDLᵀ factorisation met a clearly negative pivot.
    #[error("correlation matrix is not positive semi-definite: pivot {pivot} is {value}")]
    NotPositiveSemiDefinite {
        /// Zero-based index of the failing pivot.
        pivot: usize,
        /// The pivot value (negative beyond tolerance).
        value: f64,
    },
    /// A (numerically) zero pivot whose column is not zero: the matrix is not
    /// positive semi-definite.
    #[error(
        "correlation matrix is not positive semi-definite: pivot {pivot} is zero but the residual in row {row} is {residual}"
    )]
    SingularPivotResidual {
        /// Zero-based index of the zero pivot.
        pivot: usize,
        /// Row with a non-zero residual.
        row: usize,
        /// The residual.
        residual: f64,
    },
    /// `paths` is zero.
    #[error("paths must be at least 1")]
    NoPaths,
    /// `paths` exceeds [`crate::Limits::max_paths`].
    #[error("paths is {paths}, the limit is {max}")]
    TooManyPaths {
        /// Requested paths.
        paths: u64,
        /// The limit.
        max: u64,
    },
    /// `paths × assets × steps` exceeds [`crate::Limits::max_work`].
    #[error("paths × assets × steps is {work}, the limit is {max}")]
    TooMuchWork {
        /// Requested work (saturating).
        work: u64,
        /// The limit.
        max: u64,
    },
    /// `paths × horizon_years` (values kept for the year-end bands) exceeds
    /// [`crate::MAX_STORED_VALUES`].
    #[error("paths × horizon_years is {values}, the limit is {max} (memory bound)")]
    TooMuchMemory {
        /// Requested stored values (saturating).
        values: u64,
        /// The limit.
        max: u64,
    },
    /// `horizon_years` is outside `1..=MAX_HORIZON_YEARS`.
    #[error("horizon_years must be in 1..={max}, got {value}")]
    InvalidHorizon {
        /// The offending value.
        value: u32,
        /// Upper bound ([`crate::MAX_HORIZON_YEARS`]).
        max: u32,
    },
    /// `steps_per_year` is outside `1..=252`.
    #[error("steps_per_year must be in 1..=252, got {value}")]
    InvalidStepsPerYear {
        /// The offending value.
        value: u32,
    },
    /// `histogram_bins` is outside `1..=MAX_HISTOGRAM_BINS`.
    #[error("histogram_bins must be in 1..={max}, got {value}")]
    InvalidHistogramBins {
        /// The offending value.
        value: u32,
        /// Upper bound ([`crate::MAX_HISTOGRAM_BINS`]).
        max: u32,
    },
    /// `Rebalancing::EveryNSteps(0)`.
    #[error("rebalancing interval must be at least 1 step, got {value}")]
    InvalidRebalancingInterval {
        /// The offending interval.
        value: u32,
    },
    /// Student-t degrees of freedom must be finite and > 2.
    #[error("model.dof must be a finite number > 2 (finite variance), got {value}")]
    InvalidDof {
        /// The offending value.
        value: f64,
    },
    /// Bootstrap history has no rows.
    #[error("model.returns must contain at least one period")]
    EmptyReturns,
    /// A bootstrap history row does not have one entry per asset.
    #[error("model.returns[{row}] must have {expected} entries (one per asset), got {found}")]
    ReturnsRowLength {
        /// Path of the field, e.g. `"correlation[1][0]"`.
        field: String,
        /// Row index.
        row: usize,
        /// Number of assets.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A bootstrap return is not finite or is below −100 %.
    #[error("model.returns[{row}][{col}] must be a finite simple return in [-1, 1e6], got {value}")]
    InvalidReturn {
        /// Path of the field, e.g. `"correlation[1][0]"`.
        field: String,
        /// Row (period) index.
        row: usize,
        /// Column (asset) index.
        col: usize,
        /// The offending value.
        value: f64,
    },
    /// Block length outside `1..=periods`.
    #[error("model.block_length must be in 1..={periods} (number of periods), got {value}")]
    InvalidBlockLength {
        /// The offending value.
        value: usize,
        /// Number of historical periods.
        periods: usize,
    },
    /// Antithetic variates requested with a model that has no symmetric shocks.
    #[error("antithetic variates are not available for the bootstrap or historical-cohort model")]
    AntitheticNotSupported,
    /// A list has the wrong number of entries.
    #[error("{field} must have {expected} entries, got {found}")]
    LengthMismatch {
        /// Path of the field, e.g. `"expense_ratios"`.
        field: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A row of glide-path weights does not sum to 1 within `1e-9`.
    #[error("{field} must sum to 1 (±1e-9), it sums to {sum}")]
    GlideWeightsDoNotSumToOne {
        /// Path of the row, e.g. `"glide_path.end_weights"`.
        field: String,
        /// The actual sum.
        sum: f64,
    },
    /// The inflation model does not fit the return model (historical
    /// inflation needs a historical model; stochastic inflation a GBM or
    /// Student-t one).
    #[error("this inflation model needs {expected}")]
    InflationModelMismatch {
        /// The return model the inflation model needs.
        expected: &'static str,
    },
    /// The correlation matrix extended with the inflation shock is not
    /// positive semi-definite.
    #[error(
        "correlation matrix extended with inflation.correlation is not positive semi-definite (pivot {pivot}: {value})"
    )]
    InflationCorrelationNotPsd {
        /// Zero-based index of the failing pivot.
        pivot: usize,
        /// The negative pivot, or the residual of a zero pivot.
        value: f64,
    },
    /// `model.start_stride` is zero.
    #[error("model.start_stride must be at least 1 period")]
    InvalidStartStride,
    /// The history is shorter than the horizon, so no cohort fits.
    #[error("model.returns has {periods} periods, fewer than the {steps} steps of the horizon")]
    NotEnoughHistory {
        /// Periods of history.
        periods: usize,
        /// Steps of the horizon.
        steps: u64,
    },
    /// Control variates need a model with known expectations (GBM or
    /// Student-t).
    #[error("control variates are available for the GBM and Student-t models only")]
    ControlVariateNotSupported,
    /// Quasi-Monte Carlo sampling needs the GBM or Student-t model.
    #[error("randomised quasi-Monte Carlo is available for the GBM and Student-t models only")]
    QmcNotSupported,
    /// Antithetic variates and quasi-Monte Carlo cannot be combined.
    #[error("antithetic variates cannot be combined with quasi-Monte Carlo sampling")]
    AntitheticWithQmc,
    /// `sampling.scramblings` is outside `2..=1024`.
    #[error("sampling.scramblings must be in 2..=1024, got {value}")]
    InvalidScramblings {
        /// The offending value.
        value: u32,
    },
    /// `paths` is not a multiple of `sampling.scramblings`.
    #[error("paths ({paths}) must be a multiple of sampling.scramblings ({scramblings})")]
    PathsNotMultipleOfScramblings {
        /// Requested paths.
        paths: u64,
        /// Scramblings.
        scramblings: u32,
    },
    /// More quasi-Monte Carlo dimensions (factors × steps) than supported.
    #[error(
        "quasi-Monte Carlo needs {dimensions} dimensions (factors × steps), at most {max} are supported"
    )]
    TooManyQmcDimensions {
        /// Factors × steps.
        dimensions: u64,
        /// The limit ([`crate::qmc::MAX_QMC_DIMENSIONS`]).
        max: u64,
    },
}

impl SpecError {
    /// JSON-pointer-like path of the offending field, e.g. `"assets[2].weight"`,
    /// `"correlation"`, `"correlation[1][0]"`, `"paths"`, `"model.dof"`.
    ///
    /// # Examples
    /// ```
    /// use engine::SpecError;
    /// let e = SpecError::NoPaths;
    /// assert_eq!(e.field(), "paths");
    /// ```
    pub fn field(&self) -> &str {
        match self {
            SpecError::NotFinite { field, .. }
            | SpecError::OutOfRange { field, .. }
            | SpecError::NegativeWeight { field, .. }
            | SpecError::CorrelationShape { field, .. }
            | SpecError::CorrelationDiagonal { field, .. }
            | SpecError::CorrelationOutOfRange { field, .. }
            | SpecError::CorrelationNotSymmetric { field, .. }
            | SpecError::ReturnsRowLength { field, .. }
            | SpecError::InvalidReturn { field, .. } => field,
            SpecError::NoAssets | SpecError::TooManyAssets { .. } => "assets",
            SpecError::WeightsDoNotSumToOne { .. } => "assets",
            SpecError::NotPositiveSemiDefinite { .. } | SpecError::SingularPivotResidual { .. } => {
                "correlation"
            }
            SpecError::NoPaths
            | SpecError::TooManyPaths { .. }
            | SpecError::TooMuchWork { .. }
            | SpecError::TooMuchMemory { .. } => "paths",
            SpecError::InvalidHorizon { .. } => "horizon_years",
            SpecError::InvalidStepsPerYear { .. } => "steps_per_year",
            SpecError::InvalidHistogramBins { .. } => "histogram_bins",
            SpecError::InvalidRebalancingInterval { .. } => "rebalancing",
            SpecError::InvalidDof { .. } => "model.dof",
            SpecError::EmptyReturns => "model.returns",
            SpecError::InvalidBlockLength { .. } => "model.block_length",
            SpecError::AntitheticNotSupported => "antithetic",
            SpecError::LengthMismatch { field, .. }
            | SpecError::GlideWeightsDoNotSumToOne { field, .. } => field,
            SpecError::InflationModelMismatch { .. } => "inflation",
            SpecError::InflationCorrelationNotPsd { .. } => "inflation.correlation",
            SpecError::InvalidStartStride => "model.start_stride",
            SpecError::NotEnoughHistory { .. } => "model.returns",
            SpecError::ControlVariateNotSupported => "control_variate",
            SpecError::QmcNotSupported => "sampling",
            SpecError::AntitheticWithQmc => "antithetic",
            SpecError::InvalidScramblings { .. } => "sampling.scramblings",
            SpecError::PathsNotMultipleOfScramblings { .. } => "paths",
            SpecError::TooManyQmcDimensions { .. } => "sampling",
        }
    }
}
