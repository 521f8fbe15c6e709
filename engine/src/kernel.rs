//! The path simulation kernel: a chunk of paths, advanced [`LANES`] paths at
//! a time in structure-of-arrays form so the per-asset arithmetic (shock
//! correlation, `exp`, holdings update) vectorises.

// Index loops over lanes/assets mirror the formulas and vectorise well.
#![allow(clippy::needless_range_loop)]

use rand_distr::{ChiSquared, Distribution};
use rand_pcg::Pcg64Mcg;

use crate::fastmath::exp_lanes;
use crate::rng::{CHUNK_PATHS, chunk_rng, fill_normals, index};
use crate::spec::{Model, Simulation};

/// Paths advanced together. Antithetic pairs are lanes `(l, l + LANES/2)`.
pub(crate) const LANES: usize = 8;
const HALF: usize = LANES / 2;
type Lanes = [f64; LANES];

/// Holdings are capped here so no sequence of returns can overflow to
/// infinity (and produce NaN through `0 · ∞`).
const HOLDING_CAP: f64 = 1e290;

/// Output of one chunk: year-end values (year-major, `years × len`) and the
/// maximum drawdown of each path.
pub(crate) struct ChunkOut {
    pub(crate) len: usize,
    pub(crate) year_values: Vec<f64>,
    pub(crate) max_drawdown: Vec<f64>,
}

/// Produces the per-step growth factors `x[i][l]` (in place) for one block.
trait Shocks {
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, z: &mut [Lanes], x: &mut [Lanes]);
    /// Called at the start of every block of lanes.
    fn reset(&mut self) {}
}

/// Fills `z` (asset-major, `z[i][l]`) with standard normals in one block;
/// with antithetic variates lanes `HALF..` mirror lanes `..HALF`.
#[inline(always)]
fn draw_normals(rng: &mut Pcg64Mcg, z: &mut [Lanes], antithetic: bool) {
    if antithetic {
        let n = z.len();
        fill_normals(rng, &mut z.as_flattened_mut()[..n * HALF]);
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
        fill_normals(rng, z.as_flattened_mut());
    }
}

/// `x[i] = a[i] + Σ_{j≤i} M[i][j] z[j]` lane-wise (before scaling/exp).
#[inline(always)]
fn correlate(sim: &Simulation, z: &[Lanes], x: &mut [Lanes], scale: Option<&Lanes>) {
    let n = sim.n_assets;
    for i in 0..n {
        let row = &sim.shock_matrix[i * n..i * n + i + 1];
        let mut acc = [0.0; LANES];
        for (c, zj) in row.iter().zip(z) {
            for l in 0..LANES {
                acc[l] += c * zj[l];
            }
        }
        let a = sim.log_drift[i];
        match scale {
            None => {
                for l in 0..LANES {
                    acc[l] += a;
                }
            }
            Some(s) => {
                for l in 0..LANES {
                    acc[l] = a + s[l] * acc[l];
                }
            }
        }
        exp_lanes(&mut acc);
        x[i] = acc;
    }
}

struct GbmShocks;

impl Shocks for GbmShocks {
    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, z: &mut [Lanes], x: &mut [Lanes]) {
        draw_normals(rng, z, sim.spec.antithetic);
        correlate(sim, z, x, None);
    }
}

struct StudentShocks {
    chi: ChiSquared<f64>,
    dof_minus_2: f64,
}

impl Shocks for StudentShocks {
    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, z: &mut [Lanes], x: &mut [Lanes]) {
        let antithetic = sim.spec.antithetic;
        draw_normals(rng, z, antithetic);
        let mut s = [0.0; LANES];
        let own = if antithetic { HALF } else { LANES };
        for l in 0..own {
            let w: f64 = self.chi.sample(rng);
            // w > 0 almost surely; guard the measure-zero case.
            s[l] = (self.dof_minus_2 / w.max(f64::MIN_POSITIVE)).sqrt();
        }
        if antithetic {
            for l in HALF..LANES {
                s[l] = s[l - HALF];
            }
        }
        correlate(sim, z, x, Some(&s));
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
    fn reset(&mut self) {
        self.left = [0; LANES];
    }

    #[inline(always)]
    fn growth(&mut self, sim: &Simulation, rng: &mut Pcg64Mcg, _z: &mut [Lanes], x: &mut [Lanes]) {
        let n = sim.n_assets;
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
                x[i][l] = g[i];
            }
        }
    }
}

/// Simulates chunk `chunk` (paths `chunk·CHUNK_PATHS ..`), using the widest
/// vector instructions the CPU offers.
///
/// The AVX-512 / AVX2 variants compile the *same* code with wider vectors;
/// since Rust never contracts `a * b + c` into a fused multiply-add and the
/// kernel uses only IEEE `+ − × ÷ min max` and integer bit operations, every
/// variant produces bit-identical results (checked by a test).
pub(crate) fn simulate_chunk(sim: &Simulation, chunk: u64) -> ChunkOut {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { simulate_chunk_avx512(sim, chunk) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { simulate_chunk_avx2(sim, chunk) };
        }
    }
    simulate_chunk_portable(sim, chunk)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn simulate_chunk_avx512(sim: &Simulation, chunk: u64) -> ChunkOut {
    simulate_chunk_portable(sim, chunk)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn simulate_chunk_avx2(sim: &Simulation, chunk: u64) -> ChunkOut {
    simulate_chunk_portable(sim, chunk)
}

/// Baseline-ISA kernel (also the body of the wide variants).
#[inline(always)]
pub(crate) fn simulate_chunk_portable(sim: &Simulation, chunk: u64) -> ChunkOut {
    match &sim.model {
        Model::Gbm => run_chunk(sim, chunk, GbmShocks),
        Model::StudentT { dof } => run_chunk(
            sim,
            chunk,
            StudentShocks {
                // dof > 2 was validated, so this cannot fail.
                chi: ChiSquared::new(*dof).unwrap_or_else(|_| unreachable!("dof validated")),
                dof_minus_2: dof - 2.0,
            },
        ),
        Model::Bootstrap {
            growth,
            periods,
            block_length,
        } => run_chunk(
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
    }
}

#[inline(always)]
fn run_chunk<S: Shocks>(sim: &Simulation, chunk: u64, mut shocks: S) -> ChunkOut {
    let spec = &sim.spec;
    let start = chunk as usize * CHUNK_PATHS;
    let len = CHUNK_PATHS.min(spec.paths as usize - start);
    let years = spec.horizon_years as usize;
    let spy = spec.steps_per_year as u64;
    let n = sim.n_assets;
    let v0 = spec.initial_value;
    let w = &sim.weights;
    let rebalance = sim.rebalance_every.map(u64::from);

    let mut rng = chunk_rng(spec.seed, chunk);
    let mut year_values = vec![0.0; years * len];
    let mut max_drawdown = vec![0.0; len];
    let mut z = vec![[0.0; LANES]; n];
    let mut x = vec![[0.0; LANES]; n];
    let mut h = vec![[0.0; LANES]; n];

    let mut block = 0;
    while block < len {
        let live = LANES.min(len - block);
        shocks.reset();
        for (hi, wi) in h.iter_mut().zip(w) {
            *hi = [v0 * wi; LANES];
        }
        let mut peak = [v0; LANES];
        let mut dd: Lanes = [0.0; LANES];
        let mut next_rebalance = rebalance.unwrap_or(u64::MAX);
        let mut next_year_end = spy;
        for s in 1..=sim.total_steps {
            shocks.growth(sim, &mut rng, &mut z, &mut x);
            let mut v = [0.0; LANES];
            for (hi, xi) in h.iter_mut().zip(&x) {
                grow(hi, xi, &mut v);
            }
            if sim.has_flows {
                let f = sim.flows[(s - 1) as usize];
                if f != 0.0 {
                    apply_flow(&mut h, &mut v, w, f);
                }
            }
            if s == next_rebalance {
                next_rebalance += rebalance.unwrap_or(u64::MAX);
                for (hi, wi) in h.iter_mut().zip(w) {
                    for l in 0..LANES {
                        hi[l] = wi * v[l];
                    }
                }
            }
            for l in 0..LANES {
                // Selects rather than `f64::max` (values are never NaN).
                peak[l] = if v[l] > peak[l] { v[l] } else { peak[l] };
                let d = (peak[l] - v[l]) / peak[l];
                dd[l] = if d > dd[l] { d } else { dd[l] };
            }
            if s == next_year_end {
                let y = (s / spy - 1) as usize;
                year_values[y * len + block..y * len + block + live].copy_from_slice(&v[..live]);
                next_year_end += spy;
            }
        }
        max_drawdown[block..block + live].copy_from_slice(&dd[..live]);
        block += LANES;
    }
    ChunkOut {
        len,
        year_values,
        max_drawdown,
    }
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
        for model in [ReturnModel::Gbm, ReturnModel::StudentT { dof: 3.5 }] {
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
                rebalancing: Rebalancing::Quarterly,
                cash_flow: Some(CashFlow {
                    amount: -20.0,
                    frequency: CashFlowFrequency::EveryStep,
                    annual_growth: 0.03,
                }),
                antithetic: true,
                histogram_bins: 5,
            };
            let sim = Simulation::new(spec).unwrap();
            for c in 0..2 {
                let a = simulate_chunk(&sim, c);
                let b = simulate_chunk_portable(&sim, c);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a.year_values), bits(&b.year_values));
                assert_eq!(bits(&a.max_drawdown), bits(&b.max_drawdown));
            }
        }
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
        };
        let sim = Simulation::new(spec).unwrap();
        let mut rng = chunk_rng(1, 0);
        let mut z = vec![[0.0; LANES]; 3];
        let mut x = vec![[0.0; LANES]; 3];
        let mut logs = vec![Vec::new(); 3];
        for _ in 0..2_500 {
            GbmShocks.growth(&sim, &mut rng, &mut z, &mut x);
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
