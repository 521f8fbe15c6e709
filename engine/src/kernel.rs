//! The path simulation kernel: a chunk of paths, advanced [`LANES`] paths at
//! a time in structure-of-arrays form so the per-asset arithmetic (shock
//! correlation, `exp`, holdings update) vectorises.
//!
//! Steps are processed in batches (about [`BATCH_VALUES`] values): first the
//! normals of every step of the batch are drawn (stream order unchanged),
//! then all steps are correlated, then one long `exp` pass, and only then the
//! short sequential holdings / rebalancing / drawdown recurrence runs. Done
//! step by step, each step's `exp` and correlation chains were latency-bound
//! behind the sampler. Results do not depend on the batch size.

// Index loops over lanes/assets mirror the formulas and vectorise well.
#![allow(clippy::needless_range_loop)]

use rand_pcg::Pcg64Mcg;

use crate::fastmath::exp_lanes_fused;
use crate::intervals::normal_quantile_lanes;
use crate::planning::WithdrawalStrategy;
use crate::qmc::{QmcPlan, Sobol, dim_seed, owen_scramble, replicate_seed, sobol, to_unit};
use crate::rng::{CHUNK_PATHS, ChiSquared, Isa, chunk_rng, fill_normals_isa, index};
use crate::spec::{Cpi, Model, Simulation};

/// Paths advanced together. Antithetic pairs are lanes `(l, l + LANES/2)`.
pub(crate) const LANES: usize = 8;
const HALF: usize = LANES / 2;
type Lanes = [f64; LANES];

/// Holdings are capped here so no sequence of returns can overflow to
/// infinity (and produce NaN through `0 · ∞`).
const HOLDING_CAP: f64 = 1e290;

/// Output of one chunk (`len` paths): year-end values (year-major,
/// `years × len`), the maximum drawdown of each path, and, when tracked,
/// the year-end price index (`years × len`), the withdrawal paid at the
/// start of each year (`years × len`) and the control-variate value of
/// each path (`len`).
#[derive(Clone)]
pub(crate) struct ChunkOut {
    pub(crate) len: usize,
    pub(crate) year_values: Vec<f64>,
    pub(crate) max_drawdown: Vec<f64>,
    pub(crate) year_cpi: Vec<f64>,
    pub(crate) year_withdrawals: Vec<f64>,
    pub(crate) control: Vec<f64>,
}

/// Steps are generated in batches of about this many values
/// (`steps × assets × LANES`, 16 KiB), so the sampler, the correlation and
/// the `exp` run as long independent passes and only the short holdings
/// recurrence is sequential. The random stream is consumed in exactly the
/// same order as step by step, so the batch size does not affect results.
const BATCH_VALUES: usize = 2048;

/// Produces the growth factors of consecutive steps for one block of lanes.
trait Shocks {
    /// Fills `x` (`steps × cols` lane arrays, step-major, `x[k·cols + i][l]`;
    /// `cols` = [`Simulation::x_cols`]) with the growth factors of the next
    /// `x.len() / cols` steps, consuming the random stream step by step.
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, x: &mut [Lanes]);
    /// Called at the start of every block of lanes; `first_path` is the
    /// index of the block's lane 0 in the whole run.
    fn reset(&mut self, _sim: &Simulation, _rng: &mut Pcg64Mcg, _first_path: u64) {}
    /// The block's control-variate values (sum of weighted log-returns), if
    /// accumulated.
    fn control(&self) -> Lanes {
        [0.0; LANES]
    }
}

/// Adds `Σᵢ w₀ᵢ · x[k·nf + i]` (log-returns, before `exp`) of every step `k`
/// of the batch to `acc` (the control variate, see [`crate::stats`]).
#[inline(always)]
fn accumulate_control(sim: &Simulation, x: &[Lanes], acc: &mut Lanes) {
    let nf = sim.n_factors;
    let n = sim.n_assets;
    for xs in x.chunks_exact(nf) {
        for (wi, xi) in sim.weights.iter().zip(&xs[..n]) {
            for l in 0..LANES {
                acc[l] = wi.mul_add(xi[l], acc[l]);
            }
        }
    }
}

/// Fills `z` (asset-major, `z[i][l]`) with standard normals in one block;
/// with antithetic variates lanes `HALF..` mirror lanes `..HALF`.
#[inline(always)]
fn draw_normals(isa: Isa, rng: &mut Pcg64Mcg, z: &mut [Lanes], antithetic: bool) {
    if antithetic {
        let n = z.len();
        fill_normals_isa(isa, rng, &mut z.as_flattened_mut()[..n * HALF]);
        // Spread draw `k = i·HALF + l` (stored at `z[k / LANES][k % LANES]`)
        // to `z[i][l]`, last asset first so no draw is overwritten before it
        // is read (`i·HALF ≤ i·LANES`).
        for i in (0..n).rev() {
            let mut own = [0.0; HALF];
            for l in 0..HALF {
                let k = i * HALF + l;
                own[l] = z[k / LANES][k % LANES];
            }
            let zi = &mut z[i];
            for l in 0..HALF {
                zi[l] = own[l];
                zi[l + HALF] = -own[l];
            }
        }
    } else {
        fill_normals_isa(isa, rng, z.as_flattened_mut());
    }
}

/// Log-return of one asset (before `exp`): `a + Σ M[i][j] z[j]`, or
/// `a + s · Σ …` with a Student-t scale.
#[inline(always)]
fn finish_row(acc: &mut Lanes, a: f64, scale: Option<&Lanes>) {
    match scale {
        None => {
            for l in 0..LANES {
                acc[l] += a;
            }
        }
        Some(s) => {
            for l in 0..LANES {
                acc[l] = s[l].mul_add(acc[l], a);
            }
        }
    }
}

/// Steps whose rows are correlated together (independent accumulators).
const MIX_STEPS: usize = 4;

/// In place for every step `k` of the batch (`x[k·n ..][..n]` holds the
/// draws `z`): `z[i] ← a[i] + Σ_{j≤i} M[i][j] z[j]` lane-wise (the
/// log-return, before `exp`; the sum scaled by `scales[k]` if given).
/// Rows are done last first, so every `z[j]` a row reads is still a draw;
/// [`MIX_STEPS`] steps share each coefficient and run as independent
/// chains. Each sum is accumulated in `j` order from `0.0`.
#[inline(always)]
fn correlate(sim: &Simulation, x: &mut [Lanes], scales: Option<&[Lanes]>) {
    let n = sim.n_factors;
    let steps = x.len() / n;
    for i in (0..n).rev() {
        let row = &sim.shock_matrix[i * n..i * n + i + 1];
        let a = sim.log_drift[i];
        let mut k = 0;
        while k + MIX_STEPS <= steps {
            let mut acc = [[0.0; LANES]; MIX_STEPS];
            for (j, c) in row.iter().enumerate() {
                for u in 0..MIX_STEPS {
                    let zj = &x[(k + u) * n + j];
                    for l in 0..LANES {
                        acc[u][l] = c.mul_add(zj[l], acc[u][l]);
                    }
                }
            }
            for u in 0..MIX_STEPS {
                finish_row(&mut acc[u], a, scales.map(|s| &s[k + u]));
                x[(k + u) * n + i] = acc[u];
            }
            k += MIX_STEPS;
        }
        while k < steps {
            let mut acc = [0.0; LANES];
            for (j, c) in row.iter().enumerate() {
                let zj = &x[k * n + j];
                for l in 0..LANES {
                    acc[l] = c.mul_add(zj[l], acc[l]);
                }
            }
            finish_row(&mut acc, a, scales.map(|s| &s[k]));
            x[k * n + i] = acc;
            k += 1;
        }
    }
}

/// `exp` of every element of `x` ([`crate::fastmath::exp_fused`]): with
/// AVX-512 one lane array at a time through the register-table version,
/// otherwise in groups of [`EXP_GROUP`] values so several independent
/// polynomial chains are in flight at once. The same bits either way.
#[inline(always)]
fn exp_all(isa: Isa, x: &mut [Lanes]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        for g in x.iter_mut() {
            // SAFETY: `Isa::Avx512` is only used after detecting AVX-512F.
            unsafe { crate::fastmath::exp_lanes_avx512(g) };
        }
        return;
    }
    let _ = isa;
    let flat = x.as_flattened_mut();
    let mut groups = flat.chunks_exact_mut(EXP_GROUP);
    for g in &mut groups {
        let g: &mut [f64; EXP_GROUP] = g.try_into().unwrap_or_else(|_| unreachable!());
        exp_lanes_fused(g);
    }
    for g in groups.into_remainder().chunks_exact_mut(LANES) {
        let g: &mut Lanes = g.try_into().unwrap_or_else(|_| unreachable!());
        exp_lanes_fused(g);
    }
}

/// Values per batched `exp` group (a multiple of [`LANES`]).
const EXP_GROUP: usize = 4 * LANES;

struct GbmShocks {
    isa: Isa,
    ctrl: Lanes,
}

impl Shocks for GbmShocks {
    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, x: &mut [Lanes]) {
        let n = sim.n_factors;
        for z in x.chunks_exact_mut(n) {
            draw_normals(self.isa, rng, z, sim.spec.antithetic);
        }
        correlate(sim, x, None);
        if sim.cv {
            accumulate_control(sim, x, &mut self.ctrl);
        }
        exp_all(self.isa, x);
    }

    fn reset(&mut self, _: &Simulation, _: &mut Pcg64Mcg, _: u64) {
        self.ctrl = [0.0; LANES];
    }

    fn control(&self) -> Lanes {
        self.ctrl
    }
}

struct StudentShocks {
    isa: Isa,
    chi: ChiSquared,
    dof_minus_2: f64,
    /// Per-step lane scales `√((ν−2)/W)` of the current batch.
    scales: Vec<Lanes>,
    ctrl: Lanes,
}

impl Shocks for StudentShocks {
    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, x: &mut [Lanes]) {
        let n = sim.n_factors;
        let antithetic = sim.spec.antithetic;
        let own = if antithetic { HALF } else { LANES };
        self.scales.resize(x.len() / n, [0.0; LANES]);
        for (z, s) in x.chunks_exact_mut(n).zip(self.scales.iter_mut()) {
            draw_normals(self.isa, rng, z, antithetic);
            for l in 0..own {
                let w = self.chi.sample(rng);
                // w > 0 almost surely; guard the measure-zero case.
                s[l] = (self.dof_minus_2 / w.max(f64::MIN_POSITIVE)).sqrt();
            }
            if antithetic {
                for l in HALF..LANES {
                    s[l] = s[l - HALF];
                }
            }
        }
        correlate(sim, x, Some(&self.scales));
        if sim.cv {
            accumulate_control(sim, x, &mut self.ctrl);
        }
        exp_all(self.isa, x);
    }

    fn reset(&mut self, _: &Simulation, _: &mut Pcg64Mcg, _: u64) {
        self.ctrl = [0.0; LANES];
    }

    fn control(&self) -> Lanes {
        self.ctrl
    }
}

struct BootstrapShocks<'a> {
    growth: &'a [f64],
    periods: usize,
    block_length: usize,
    pos: [usize; LANES],
    left: [usize; LANES],
}

impl Shocks for BootstrapShocks<'_> {
    #[inline(always)]
    fn reset(&mut self, _: &Simulation, _: &mut Pcg64Mcg, _: u64) {
        self.left = [0; LANES];
    }

    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, x: &mut [Lanes]) {
        let n = sim.hist_cols;
        for xs in x.chunks_exact_mut(n) {
            for l in 0..LANES {
                if self.left[l] == 0 {
                    self.pos[l] = index(rng, self.periods);
                    self.left[l] = self.block_length;
                }
                let row = self.pos[l];
                self.pos[l] = if row + 1 == self.periods { 0 } else { row + 1 };
                self.left[l] -= 1;
                let g = &self.growth[row * n..row * n + n];
                for i in 0..n {
                    xs[i][l] = g[i];
                }
            }
        }
    }
}

/// Randomised QMC shocks (see [`crate::qmc`]): at the start of every
/// block, each lane's scrambled Sobol point becomes normals and, through the
/// Brownian bridge, each factor's increments over the whole horizon, which
/// the mixing matrix `A` ([`crate::qmc::QmcFactor`]; `A Aᵀ` the per-step
/// covariance) turns into the assets' correlated shocks; the steps then get
/// their drift and are exponentiated like the pseudo-random ones.
struct QmcShocks<'a> {
    isa: Isa,
    plan: &'a QmcPlan,
    sobol: &'a Sobol,
    seed: u64,
    /// Step shocks of the block, `N × nf` lane arrays, step-major.
    z: Vec<Lanes>,
    cursor: usize,
    /// The unscrambled point of `raw_index`.
    raw: Vec<u32>,
    raw_index: Option<u64>,
    /// Each lane's unscrambled point, per dimension.
    raw_lanes: Vec<[u32; LANES]>,
    /// Normals per dimension.
    xi: Vec<Lanes>,
    /// Bridge values of one factor.
    w: Vec<Lanes>,
    /// One step's factor increments while they are mixed.
    mixed: Vec<Lanes>,
    pad: Vec<f64>,
    /// Student-t: χ² sampler and ν − 2.
    student: Option<(ChiSquared, f64)>,
    scales: Vec<Lanes>,
    ctrl: Lanes,
}

impl<'a> QmcShocks<'a> {
    fn new(sim: &Simulation, plan: &'a QmcPlan, isa: Isa) -> Self {
        let sobol = sobol();
        let nf = sim.n_factors;
        let steps = sim.total_steps as usize;
        let ds = plan.sobol_dims.min(plan.dims).min(sobol.dims);
        QmcShocks {
            isa,
            plan,
            sobol,
            seed: sim.spec.seed,
            z: vec![[0.0; LANES]; steps * nf],
            cursor: 0,
            raw: vec![0; ds],
            raw_index: None,
            raw_lanes: vec![[0; LANES]; ds],
            xi: vec![[0.0; LANES]; plan.dims],
            w: vec![[0.0; LANES]; steps],
            mixed: vec![[0.0; LANES]; nf],
            pad: vec![0.0; plan.dims - ds],
            student: match &sim.model {
                Model::StudentT { dof } => Some((ChiSquared::new(*dof), dof - 2.0)),
                _ => None,
            },
            scales: Vec::new(),
            ctrl: [0.0; LANES],
        }
    }
}

impl Shocks for QmcShocks<'_> {
    #[inline(always)]
    fn reset(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, first_path: u64) {
        let r = u64::from(self.plan.scramblings);
        let ds = self.raw.len();
        // Per lane: the unscrambled point (lanes sharing a point index copy
        // it) and the scrambling's base seed.
        let mut base = [0u64; LANES];
        let mut live = [false; LANES];
        for l in 0..LANES {
            let p = first_path + l as u64;
            if p >= sim.paths {
                continue;
            }
            live[l] = true;
            let (rep, idx) = (p % r, p / r);
            base[l] = replicate_seed(self.seed, rep as u32);
            if self.raw_index != Some(idx) {
                self.sobol.point(idx as u32, &mut self.raw);
                self.raw_index = Some(idx);
            }
            for (rl, &v) in self.raw_lanes.iter_mut().zip(&self.raw) {
                rl[l] = v;
            }
        }
        // Dimensions outer, lanes inner: the hashing, scrambling and the
        // central branch of Φ⁻¹ vectorise across the 8 lanes.
        for (d, (x, rl)) in self.xi.iter_mut().zip(&self.raw_lanes).enumerate() {
            let mut u = [0.0; LANES];
            for l in 0..LANES {
                u[l] = to_unit(owen_scramble(rl[l], dim_seed(base[l], d as u32)));
            }
            let z = normal_quantile_lanes(&u);
            for l in 0..LANES {
                x[l] = if live[l] { z[l] } else { 0.0 };
            }
        }
        // Padding beyond the table: drawn for every lane, live or not, so
        // the stream position never depends on the path count.
        if !self.pad.is_empty() {
            for l in 0..LANES {
                fill_normals_isa(self.isa, rng, &mut self.pad);
                for (x, &v) in self.xi[ds..].iter_mut().zip(&self.pad) {
                    x[l] = v;
                }
            }
        }
        // Brownian bridge per factor, then the increments.
        let nf = sim.n_factors;
        let n = self.w.len();
        for i in 0..nf {
            for (c, &(m, j, k, lw, rw, sd)) in self.plan.bridge.plan.iter().enumerate() {
                let x = self.xi[c * nf + i];
                let mut out = [0.0; LANES];
                if c == 0 {
                    for q in 0..LANES {
                        out[q] = sd * x[q];
                    }
                } else if j == 0 {
                    let right = self.w[k];
                    for q in 0..LANES {
                        out[q] = sd.mul_add(x[q], rw * right[q]);
                    }
                } else {
                    let (left, right) = (self.w[j - 1], self.w[k]);
                    for q in 0..LANES {
                        out[q] = sd.mul_add(x[q], lw.mul_add(left[q], rw * right[q]));
                    }
                }
                self.w[m] = out;
            }
            for s in 0..n {
                let mut d = self.w[s];
                if s > 0 {
                    for q in 0..LANES {
                        d[q] -= self.w[s - 1][q];
                    }
                }
                self.z[s * nf + i] = d;
            }
        }
        // Mix the factors' increments into the assets' shocks, `A z` per
        // step (full matrix, each sum in `j` order from 0.0).
        let a = &self.plan.factor;
        for zs in self.z.chunks_exact_mut(nf) {
            self.mixed.copy_from_slice(zs);
            for (i, out) in zs.iter_mut().enumerate() {
                let row = &a[i * nf..(i + 1) * nf];
                let mut acc = [0.0; LANES];
                for (c, zj) in row.iter().zip(self.mixed.iter()) {
                    for q in 0..LANES {
                        acc[q] = c.mul_add(zj[q], acc[q]);
                    }
                }
                *out = acc;
            }
        }
        self.cursor = 0;
        self.ctrl = [0.0; LANES];
    }

    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, x: &mut [Lanes]) {
        let nf = sim.n_factors;
        x.copy_from_slice(&self.z[self.cursor..self.cursor + x.len()]);
        self.cursor += x.len();
        let scales = if let Some((chi, dm2)) = &self.student {
            self.scales.resize(x.len() / nf, [0.0; LANES]);
            for s in self.scales.iter_mut() {
                for l in 0..LANES {
                    let w = chi.sample(rng);
                    s[l] = (dm2 / w.max(f64::MIN_POSITIVE)).sqrt();
                }
            }
            Some(&self.scales[..])
        } else {
            None
        };
        // The shocks were mixed in `reset`: only the drift (and the
        // Student-t scale) remain.
        for (k, xs) in x.chunks_exact_mut(nf).enumerate() {
            let sc = scales.map(|s| &s[k]);
            for (xi, &a) in xs.iter_mut().zip(&sim.log_drift) {
                finish_row(xi, a, sc);
            }
        }
        if sim.cv {
            accumulate_control(sim, x, &mut self.ctrl);
        }
        exp_all(self.isa, x);
    }

    fn control(&self) -> Lanes {
        self.ctrl
    }
}

/// Historical cohorts: lane `l` of the block starting at path `p` follows
/// the history from row `(p + l) · stride` on (no random numbers).
struct CohortShocks<'a> {
    growth: &'a [f64],
    stride: usize,
    pos: [usize; LANES],
}

impl Shocks for CohortShocks<'_> {
    #[inline(always)]
    fn reset(&mut self, sim: &Simulation, _: &mut Pcg64Mcg, first_path: u64) {
        for l in 0..LANES {
            let p = first_path + l as u64;
            // Lanes past the last cohort replay cohort 0 (never recorded).
            self.pos[l] = if p < sim.paths {
                p as usize * self.stride
            } else {
                0
            };
        }
    }

    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, _: &mut Pcg64Mcg, x: &mut [Lanes]) {
        let n = sim.hist_cols;
        for xs in x.chunks_exact_mut(n) {
            for l in 0..LANES {
                let row = self.pos[l];
                self.pos[l] += 1;
                let g = &self.growth[row * n..row * n + n];
                for i in 0..n {
                    xs[i][l] = g[i];
                }
            }
        }
    }
}

/// Simulates chunk `chunk` (paths `chunk·CHUNK_PATHS ..`), using the widest
/// vector instructions the CPU offers.
///
/// The AVX-512 / AVX2 variants compile the *same* code with wider vectors
/// (plus an in-register table read for AVX-512's `exp`). The kernel uses only
/// IEEE `+ − × ÷ √ min max`, explicit fused multiply-adds (`f64::mul_add`,
/// which is never split, and Rust never contracts `a * b + c` on its own),
/// integer bit operations and the pure-Rust `libm::log` (in the χ²
/// sampler), so every variant produces bit-identical
/// results (checked by a test). Without hardware FMA (x86-64 CPUs older than
/// AVX2) the portable variant computes `mul_add` in software: correct, slow.
pub(crate) fn simulate_chunk(sim: &Simulation, chunk: u64) -> ChunkOut {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("fma") {
            // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
            return unsafe { simulate_chunk_avx512(sim, chunk) };
        }
        if has!("avx2") && has!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { simulate_chunk_avx2(sim, chunk) };
        }
    }
    simulate_chunk_portable(sim, chunk, Isa::Portable)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn simulate_chunk_avx512(sim: &Simulation, chunk: u64) -> ChunkOut {
    simulate_chunk_portable(sim, chunk, Isa::Avx512)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn simulate_chunk_avx2(sim: &Simulation, chunk: u64) -> ChunkOut {
    simulate_chunk_portable(sim, chunk, Isa::Avx2)
}

/// Baseline-ISA kernel (also the body of the wide variants).
#[inline(always)]
pub(crate) fn simulate_chunk_portable(sim: &Simulation, chunk: u64, isa: Isa) -> ChunkOut {
    if let Some(plan) = &sim.qmc {
        return run(sim, chunk, QmcShocks::new(sim, plan, isa));
    }
    match &sim.model {
        Model::Gbm => run(
            sim,
            chunk,
            GbmShocks {
                isa,
                ctrl: [0.0; LANES],
            },
        ),
        Model::StudentT { dof } => run(
            sim,
            chunk,
            StudentShocks {
                isa,
                // dof > 2 was validated.
                chi: ChiSquared::new(*dof),
                dof_minus_2: dof - 2.0,
                scales: Vec::new(),
                ctrl: [0.0; LANES],
            },
        ),
        Model::Bootstrap {
            growth,
            periods,
            block_length,
        } => run(
            sim,
            chunk,
            BootstrapShocks {
                growth,
                periods: *periods,
                block_length: *block_length,
                pos: [0; LANES],
                left: [0; LANES],
            },
        ),
        Model::Cohorts { growth, stride } => run(
            sim,
            chunk,
            CohortShocks {
                growth,
                stride: *stride,
                pos: [0; LANES],
            },
        ),
    }
}

/// [`run_chunk`] compiled twice: without the planning features (price
/// index, withdrawals, glide path) the extra per-step and year-end code is
/// not compiled in at all, which keeps the hot loop's state in registers
/// (inlined, it cost case (b) about 8 % of its run time through spills).
#[inline(always)]
fn run<S: Shocks>(sim: &Simulation, chunk: u64, shocks: S) -> ChunkOut {
    let planning =
        sim.spec.withdrawal.is_some() || !matches!(sim.cpi, Cpi::None) || sim.glide.is_some();
    if planning {
        run_chunk::<S, true>(sim, chunk, shocks)
    } else {
        run_chunk::<S, false>(sim, chunk, shocks)
    }
}

#[inline(always)]
fn run_chunk<S: Shocks, const PLANNING: bool>(
    sim: &Simulation,
    chunk: u64,
    mut shocks: S,
) -> ChunkOut {
    let spec = &sim.spec;
    let start = chunk as usize * CHUNK_PATHS;
    let len = CHUNK_PATHS.min(sim.paths as usize - start);
    let years = spec.horizon_years as usize;
    let spy = spec.steps_per_year as u64;
    let n = sim.n_assets;
    let cols = sim.x_cols();
    let v0 = spec.initial_value;
    let w = &sim.weights;
    let rebalance = sim.rebalance_every.map(u64::from);
    let track_cpi = PLANNING && !matches!(sim.cpi, Cpi::None);
    let cpi_factor = PLANNING && matches!(sim.cpi, Cpi::Factor);
    let cpi_table = match &sim.cpi {
        Cpi::Table(t) if PLANNING => Some(&t[..]),
        _ => None,
    };
    let strategy = if PLANNING {
        spec.withdrawal.as_ref()
    } else {
        None
    };
    let glide = if PLANNING { sim.glide.as_ref() } else { None };

    let mut rng = chunk_rng(spec.seed, chunk);
    let mut year_values = vec![0.0; years * len];
    let mut max_drawdown = vec![0.0; len];
    let mut year_cpi = if track_cpi {
        vec![0.0; years * len]
    } else {
        Vec::new()
    };
    let mut year_withdrawals = if strategy.is_some() {
        vec![0.0; years * len]
    } else {
        Vec::new()
    };
    let mut control = if sim.cv { vec![0.0; len] } else { Vec::new() };
    let batch = (BATCH_VALUES / (cols * LANES)).max(1) as u64;
    let mut x = vec![[0.0; LANES]; batch.min(sim.total_steps) as usize * cols];
    let mut h = vec![[0.0; LANES]; n];
    let w_lanes: Vec<Lanes> = w.iter().map(|&wi| [wi; LANES]).collect();
    // Target weights of the latest rebalancing (they change with a glide
    // path), as lanes and as numbers.
    let mut w_cur = w_lanes.clone();
    let mut w_now = w.clone();
    let value_cap = n as f64 * HOLDING_CAP;

    let mut block = 0;
    while block < len {
        let live = LANES.min(len - block);
        shocks.reset(sim, &mut rng, (start + block) as u64);
        for (hi, wi) in h.iter_mut().zip(w) {
            *hi = [v0 * wi; LANES];
        }
        if glide.is_some() {
            w_cur.clone_from(&w_lanes);
            w_now.clone_from(w);
        }
        let mut peak = [v0; LANES];
        let mut dd: Lanes = [0.0; LANES];
        let mut cpi: Lanes = [1.0; LANES];
        let mut wst = WithdrawalState::new(v0);
        if let Some(st) = strategy {
            // The first withdrawal, at t = 0.
            let mut v = [v0; LANES];
            let paid = withdraw(st, 0, years, v0, &mut v, &mut h, &cpi, &mut wst);
            year_withdrawals[block..block + live].copy_from_slice(&paid[..live]);
            peak = v;
        }
        let mut next_rebalance = rebalance.unwrap_or(u64::MAX);
        let mut next_year_end = spy;
        let mut rebalanced = false;
        let mut v_prev: Lanes = [0.0; LANES];
        let mut s = 1;
        while s <= sim.total_steps {
            let steps = batch.min(sim.total_steps + 1 - s) as usize;
            let xb = &mut x[..steps * cols];
            shocks.growth(sim, &mut rng, xb);
            for xs in xb.chunks_exact(cols) {
                let mut v = [0.0; LANES];
                let flow = if sim.has_flows {
                    sim.flows[(s - 1) as usize]
                } else {
                    0.0
                };
                if rebalanced && s == next_rebalance && flow == 0.0 {
                    // Rebalanced before and after this step, no cash flow:
                    // the holdings are not needed, only
                    // `v = v_prev · Σ wᵢ xᵢ`, capped at `n · HOLDING_CAP`
                    // (the most the per-holding caps of the general path
                    // allow).
                    let mut g = [0.0; LANES];
                    for (wi, xi) in w_cur.iter().zip(&xs[..n]) {
                        for l in 0..LANES {
                            g[l] = wi[l].mul_add(xi[l], g[l]);
                        }
                    }
                    for l in 0..LANES {
                        let vl = v_prev[l] * g[l];
                        v[l] = if vl > value_cap { value_cap } else { vl };
                    }
                } else if rebalanced {
                    // The holdings are `w · v_prev` (the rebalancing of the
                    // previous step, folded into this pass).
                    for ((hi, wi), xi) in h.iter_mut().zip(&w_cur).zip(&xs[..n]) {
                        let mut hr = [0.0; LANES];
                        for l in 0..LANES {
                            hr[l] = wi[l] * v_prev[l];
                        }
                        *hi = hr;
                        grow(hi, xi, &mut v);
                    }
                } else {
                    for (hi, xi) in h.iter_mut().zip(&xs[..n]) {
                        grow(hi, xi, &mut v);
                    }
                }
                if flow != 0.0 {
                    apply_flow(&mut h, &mut v, &w_now, flow);
                }
                if cpi_factor {
                    for l in 0..LANES {
                        cpi[l] *= xs[n][l];
                    }
                } else if let Some(t) = cpi_table {
                    cpi = [t[s as usize]; LANES];
                }
                if s == next_year_end {
                    // Year-end records come before the next year's
                    // withdrawal.
                    let y = (s / spy - 1) as usize;
                    let at = y * len + block;
                    year_values[at..at + live].copy_from_slice(&v[..live]);
                    if track_cpi {
                        year_cpi[at..at + live].copy_from_slice(&cpi[..live]);
                    }
                    next_year_end += spy;
                    if let Some(st) = strategy
                        && y + 1 < years
                    {
                        let paid = withdraw(st, y + 1, years, v0, &mut v, &mut h, &cpi, &mut wst);
                        let at = (y + 1) * len + block;
                        year_withdrawals[at..at + live].copy_from_slice(&paid[..live]);
                    }
                }
                // Rebalancing (`h ← w · v`) is applied lazily by the next
                // step's growth pass; `h` is not read before then.
                rebalanced = s == next_rebalance;
                if rebalanced {
                    next_rebalance += rebalance.unwrap_or(u64::MAX);
                    v_prev = v;
                    if let Some(g) = glide {
                        sim.glide_weights(g, s, &mut w_now);
                        for (wc, &wn) in w_cur.iter_mut().zip(&w_now) {
                            *wc = [wn; LANES];
                        }
                    }
                }
                for l in 0..LANES {
                    // Selects rather than `f64::max` (values are never NaN).
                    peak[l] = if v[l] > peak[l] { v[l] } else { peak[l] };
                    let d = (peak[l] - v[l]) / peak[l];
                    dd[l] = if d > dd[l] { d } else { dd[l] };
                }
                s += 1;
            }
        }
        max_drawdown[block..block + live].copy_from_slice(&dd[..live]);
        if sim.cv {
            control[block..block + live].copy_from_slice(&shocks.control()[..live]);
        }
        block += LANES;
    }
    ChunkOut {
        len,
        year_values,
        max_drawdown,
        year_cpi,
        year_withdrawals,
        control,
    }
}

/// Per-lane memory of a withdrawal strategy.
struct WithdrawalState {
    /// The previous year's decided (requested) withdrawal.
    w_prev: Lanes,
    /// The value right after the previous withdrawal.
    post_prev: Lanes,
    /// The price index at the previous withdrawal.
    cpi_prev: Lanes,
}

impl WithdrawalState {
    fn new(v0: f64) -> Self {
        WithdrawalState {
            w_prev: [0.0; LANES],
            post_prev: [v0; LANES],
            cpi_prev: [1.0; LANES],
        }
    }
}

/// The withdrawal requested in year `y` (see [`WithdrawalStrategy`]) for a
/// lane with value `v > 0` and price index `cpi`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn requested(
    st: &WithdrawalStrategy,
    y: usize,
    years: usize,
    v0: f64,
    v: f64,
    cpi: f64,
    w_prev: f64,
    post_prev: f64,
    cpi_prev: f64,
) -> f64 {
    match st {
        WithdrawalStrategy::ConstantAmount { initial_rate } => initial_rate * v0 * cpi,
        WithdrawalStrategy::ConstantPercentage { rate } => rate * v,
        WithdrawalStrategy::Guardrails(g) => {
            let r = g.initial_rate;
            if y == 0 {
                return r * v0;
            }
            let frozen = g.inflation_rule && v < post_prev && w_prev / v > r;
            let mut w = if frozen {
                w_prev
            } else {
                w_prev * (cpi / cpi_prev)
            };
            let rate = w / v;
            if rate > r * (1.0 + g.upper) && (years - y) as u64 > u64::from(g.no_cut_final_years) {
                w *= 1.0 - g.adjustment;
            } else if rate < r * (1.0 - g.lower) {
                w *= 1.0 + g.adjustment;
            }
            w
        }
        WithdrawalStrategy::FloorCeiling {
            rate,
            floor,
            ceiling,
        } => {
            let base = rate * v0 * cpi;
            let w = rate * v;
            let lo = floor * base;
            let hi = ceiling * base;
            if w < lo {
                lo
            } else if w > hi {
                hi
            } else {
                w
            }
        }
        WithdrawalStrategy::Vpw { rates } => rates[y] * v,
    }
}

/// Decides and pays year `y`'s withdrawal on every lane, selling pro rata;
/// a request of at least the value ruins the lane (everything left is paid,
/// the value and holdings become 0). Returns the amounts paid. Out of line:
/// it runs once a year, and inlined it slowed the per-step loop.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn withdraw(
    st: &WithdrawalStrategy,
    y: usize,
    years: usize,
    v0: f64,
    v: &mut Lanes,
    h: &mut [Lanes],
    cpi: &Lanes,
    state: &mut WithdrawalState,
) -> Lanes {
    let mut paid = [0.0; LANES];
    for l in 0..LANES {
        let vl = v[l];
        if vl <= 0.0 {
            continue; // ruined paths stay at zero
        }
        let w = requested(
            st,
            y,
            years,
            v0,
            vl,
            cpi[l],
            state.w_prev[l],
            state.post_prev[l],
            state.cpi_prev[l],
        );
        state.w_prev[l] = w;
        state.cpi_prev[l] = cpi[l];
        if w >= vl {
            paid[l] = vl;
            for hi in h.iter_mut() {
                hi[l] = 0.0;
            }
            v[l] = 0.0;
        } else if w > 0.0 {
            paid[l] = w;
            let nv = vl - w;
            let r = nv / vl;
            for hi in h.iter_mut() {
                hi[l] *= r;
            }
            v[l] = nv;
        }
        state.post_prev[l] = v[l];
    }
    paid
}

/// `h ← min(h·x, HOLDING_CAP)`, `v += h`, lane-wise, written as whole-array
/// passes so it compiles to vector multiply / min / add.
#[inline(always)]
fn grow(h: &mut Lanes, x: &Lanes, v: &mut Lanes) {
    let mut nh = [0.0; LANES];
    for l in 0..LANES {
        nh[l] = h[l] * x[l];
    }
    for l in 0..LANES {
        // A plain select (no NaN can occur) is one vector min.
        nh[l] = if nh[l] > HOLDING_CAP {
            HOLDING_CAP
        } else {
            nh[l]
        };
    }
    for l in 0..LANES {
        v[l] += nh[l];
    }
    *h = nh;
}

/// Applies cash flow `f` to every live lane (see [`crate::CashFlow`]).
#[inline(always)]
fn apply_flow(h: &mut [Lanes], v: &mut Lanes, w: &[f64], f: f64) {
    for l in 0..LANES {
        let vl = v[l];
        if vl <= 0.0 {
            continue; // ruined paths stay at zero
        }
        if f > 0.0 {
            for (hi, wi) in h.iter_mut().zip(w) {
                hi[l] += wi * f;
            }
            v[l] = vl + f;
        } else {
            let nv = vl + f;
            if nv <= 0.0 {
                for hi in h.iter_mut() {
                    hi[l] = 0.0;
                }
                v[l] = 0.0;
            } else {
                let r = nv / vl;
                for hi in h.iter_mut() {
                    hi[l] *= r;
                }
                v[l] = nv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Asset, CashFlow, CashFlowFrequency, Rebalancing, ReturnModel, SimulationSpec};

    /// The dispatched (possibly AVX-512/AVX2) kernel gives the same bits as
    /// the portable one.
    #[test]
    fn vector_variants_are_bit_identical() {
        let cases = [
            (ReturnModel::Gbm, Rebalancing::Quarterly, true),
            (
                ReturnModel::StudentT { dof: 3.5 },
                Rebalancing::Quarterly,
                true,
            ),
            // Rebalanced every step without flows: the `v · Σ wᵢ xᵢ` path.
            (ReturnModel::Gbm, Rebalancing::EveryStep, false),
        ];
        for (k, (model, rebalancing, flows)) in cases.into_iter().enumerate() {
            let spec = SimulationSpec {
                assets: (0..5)
                    .map(|i| Asset {
                        weight: 0.2,
                        drift: 0.01 * i as f64,
                        volatility: 0.05 + 0.1 * i as f64,
                    })
                    .collect(),
                correlation: (0..5)
                    .map(|i| (0..5).map(|j| if i == j { 1.0 } else { 0.4 }).collect())
                    .collect(),
                initial_value: 1000.0,
                horizon_years: 3,
                steps_per_year: 12,
                paths: 300,
                seed: 77,
                model,
                rebalancing,
                cash_flow: flows.then_some(CashFlow {
                    amount: -20.0,
                    frequency: CashFlowFrequency::EveryStep,
                    annual_growth: 0.03,
                }),
                antithetic: flows,
                histogram_bins: 5,
                ..Default::default()
            };
            // The same cases again with the Engine 0.5 options on: RQMC
            // (antithetics off), a control variate, stochastic inflation and
            // guardrail withdrawals.
            let mut rich = spec.clone();
            rich.antithetic = false;
            rich.paths = 8 * 40;
            rich.sampling = crate::Sampling::Rqmc { scramblings: 8 };
            rich.control_variate = true;
            rich.inflation = crate::Inflation::Stochastic {
                drift: 0.02,
                volatility: 0.01,
                correlation: vec![0.1; 5],
            };
            rich.withdrawal = Some(crate::WithdrawalStrategy::Guardrails(
                crate::Guardrails::new(0.05),
            ));
            let _ = k;
            for spec in [spec, rich] {
                let sim = Simulation::new(spec).unwrap();
                for c in 0..2 {
                    let a = simulate_chunk(&sim, c);
                    let b = simulate_chunk_portable(&sim, c, Isa::Portable);
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&a.year_values), bits(&b.year_values));
                    assert_eq!(bits(&a.max_drawdown), bits(&b.max_drawdown));
                    assert_eq!(bits(&a.year_cpi), bits(&b.year_cpi));
                    assert_eq!(bits(&a.year_withdrawals), bits(&b.year_withdrawals));
                    assert_eq!(bits(&a.control), bits(&b.control));
                }
            }
        }
    }

    /// At the holding cap, the "rebalanced every step" shortcut and the
    /// general path (forced here by a cash flow every step) agree.
    #[test]
    fn value_cap_is_the_same_on_both_rebalancing_paths() {
        let run = |flow: Option<CashFlow>| {
            let spec = SimulationSpec {
                assets: vec![
                    Asset {
                        weight: 0.5,
                        drift: 0.0,
                        volatility: 0.0,
                    };
                    2
                ],
                correlation: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
                initial_value: 1e15,
                horizon_years: 60,
                steps_per_year: 1,
                paths: 8,
                seed: 1,
                model: ReturnModel::Bootstrap {
                    returns: vec![vec![1e6, 1e6]],
                    block_length: 1,
                },
                rebalancing: Rebalancing::EveryStep,
                cash_flow: flow,
                antithetic: false,
                histogram_bins: 1,
                ..Default::default()
            };
            Simulation::new(spec).unwrap().run().terminal.mean
        };
        let shortcut = run(None);
        let general = run(Some(CashFlow {
            amount: 1.0,
            frequency: CashFlowFrequency::EveryStep,
            annual_growth: 0.0,
        }));
        assert_eq!(shortcut, 2.0 * HOLDING_CAP);
        assert_eq!(general, 2.0 * HOLDING_CAP);
    }

    /// Sample correlation of the simulated per-step log-returns matches the
    /// input correlation (SE of a sample correlation ≈ (1 − ρ²)/√n).
    #[test]
    fn log_return_correlation_matches_input() {
        let c = vec![
            vec![1.0, 0.7, -0.4],
            vec![0.7, 1.0, 0.1],
            vec![-0.4, 0.1, 1.0],
        ];
        let spec = SimulationSpec {
            assets: (0..3)
                .map(|i| Asset {
                    weight: 1.0 / 3.0,
                    drift: 0.05,
                    volatility: 0.1 + 0.1 * i as f64,
                })
                .collect(),
            correlation: c.clone(),
            initial_value: 1.0,
            horizon_years: 1,
            steps_per_year: 12,
            paths: 1,
            seed: 5,
            model: ReturnModel::Gbm,
            rebalancing: Rebalancing::Never,
            cash_flow: None,
            antithetic: false,
            histogram_bins: 1,
            ..Default::default()
        };
        let sim = Simulation::new(spec).unwrap();
        let mut rng = chunk_rng(1, 0);
        let mut x = vec![[0.0; LANES]; 3];
        let mut logs = vec![Vec::new(); 3];
        for _ in 0..2_500 {
            GbmShocks {
                isa: Isa::Portable,
                ctrl: [0.0; LANES],
            }
            .growth(&sim, &mut rng, &mut x);
            for i in 0..3 {
                logs[i].extend(x[i].iter().map(|g| g.ln()));
            }
        }
        let n = logs[0].len() as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
        let cov = |a: &[f64], b: &[f64]| {
            let (ma, mb) = (mean(a), mean(b));
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - ma) * (y - mb))
                .sum::<f64>()
                / (n - 1.0)
        };
        for i in 0..3 {
            let sd = cov(&logs[i], &logs[i]).sqrt();
            let want = (0.1 + 0.1 * i as f64) / 12f64.sqrt();
            assert!(
                (sd / want - 1.0).abs() < 4.0 / (2.0 * n).sqrt(),
                "sd {i}: {sd} vs {want}"
            );
            for j in 0..i {
                let rho = cov(&logs[i], &logs[j]) / (sd * cov(&logs[j], &logs[j]).sqrt());
                let se = (1.0 - c[i][j] * c[i][j]) / n.sqrt();
                assert!(
                    (rho - c[i][j]).abs() < 4.0 * se,
                    "rho[{i}][{j}] = {rho} vs {}",
                    c[i][j]
                );
            }
        }
    }
}
