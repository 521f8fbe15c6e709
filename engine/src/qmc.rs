//! Randomised quasi-Monte Carlo (RQMC): Owen-scrambled Sobol points and
//! the Brownian-bridge construction of the shocks.
//!
//! No maintained crate covers what is needed (`sobol_burley` stops at 256
//! dimensions; the `sobol` crates generate points sequentially, without
//! scrambling or access by index), so this module is our own:
//!
//! * **Sobol points** (Sobol 1967; Joe & Kuo 2008, "Constructing Sobol
//!   sequences with better two-dimensional projections", SIAM J. Sci.
//!   Comput. 30): direction numbers from Joe & Kuo's `new-joe-kuo-6.21201`
//!   (embedded, see `data/JOE_KUO_LICENSE.txt`), 32 bits, dimension 1 the
//!   van der Corput sequence. Point `i` is taken in Gray-code order
//!   (Antonov & Saleev 1979): `x_d(i) = ⊕_{k : bit k of i ⊕ (i ≫ 1)} v_{d,k}`,
//!   so any point is computed directly from its index and the first `2^m`
//!   points are the same set as in natural order.
//! * **Owen scrambling** (Owen 1995, nested uniform scrambling) in the
//!   hashed form of Burley (2020), "Practical hash-based Owen scrambling",
//!   JCGT 9(4): reverse the bits, apply the Laine–Karras permutation
//!   (`x += seed; x ^= x·0x6c50b47c; x ^= x·0xb82f1e52; x ^= x·0xc7afe638;
//!   x ^= x·0x8d22f6e6`, each bit depending only on lower ones), reverse
//!   back. Each dimension of each scrambling has its own 32-bit seed
//!   derived from `(seed, scrambling, dimension)` by SplitMix64. The
//!   scrambled points are uniform on the unit cube (so estimates are
//!   unbiased) and keep the net's stratification (tested).
//! * **Normals** by inversion, `ξ = Φ⁻¹((x + ½) / 2³²)` (Wichura's AS 241,
//!   `intervals.rs`), never 0 or 1.
//! * **Brownian bridge** (Glasserman 2004, §3.1; Jäckel 2002, §10.8): per
//!   factor (asset, or inflation), the Brownian path `W(1..N)` over the `N`
//!   steps is built from `ξ_0` (the endpoint, `W(N) = √N ξ_0`), then the
//!   midpoints of ever smaller intervals, `W(m) = ((r−m) W(l) + (m−l) W(r))
//!   / (r−l) + √((m−l)(r−m)/(r−l)) ξ`; the step shocks are the increments
//!   `z_s = W(s) − W(s−1)`, i.i.d. N(0, 1) in law. Bridge value `k` of
//!   factor `i` uses Sobol dimension `k · factors + i`, so the first
//!   dimensions carry the endpoints and most of the variance.
//! * **Factors** : the factors' independent increments `ξ`
//!   become the correlated shocks `A ξ` with a full matrix `A`, `A Aᵀ = Σ`
//!   (the per-step covariance; [`QmcFactor`]), chosen so that factor 0 is
//!   the portfolio itself: `A e₀ = Σw/√(wᵀΣw)`, the other columns the
//!   principal components of `Σ − A e₀ (A e₀)ᵀ` by decreasing variance
//!   (eigenvectors by cyclic Jacobi, `linalg.rs`). With rebalancing, the
//!   log of the terminal value is `wᵀ Σ_s r_s` plus second-order terms, so
//!   its first-order part depends on Sobol dimension 0 alone. With the
//!   Cholesky factor, dimension 0 carried asset 0's shock only: for the
//!   benchmark's 10-asset case (a) the ±0.1 % median took 8× the paths
//!   under plain principal components (131 k) and 16× under Cholesky
//!   (262 k) than with this factor (16 k; measured, `bench precision`, see
//!   the README's precision benchmark).
//! * **Sobol dimensions**: only the first `B` bridge values
//!   of every factor come from the Sobol point, `B` the horizon in years
//!   rounded up to a power of two (32 for 30 years: the bridge's first 32
//!   points are about one a year); the later bridge values (the months
//!   within them) are pseudo-random normals of the chunk's generator.
//!   Every path's normals are still i.i.d. N(0, 1) in law (each scrambled
//!   coordinate is uniform, the padding independent of it), so every
//!   estimate stays unbiased and the scramblings stay independent
//!   replicates; only the variance reduction is confined to the first `B`
//!   bridge levels. Those carry nearly all of it: in case (a) the median
//!   reached ±0.1 % at 16 k paths, where all 3 600 dimensions from Sobol
//!   points had not yet (that run stopped at 65 k), at about half the
//!   cost per path (measured).
//! * Dimensions beyond the table (21 201) are padded with pseudo-random
//!   normals of the chunk's generator, as is the Student-t model's χ²
//!   mixing variable (Owen's "padding"; unbiasedness is kept).
//!
//! Path `p` uses scrambling `p mod R` and Sobol point `p div R`, so adding
//! paths never changes the existing ones ([`crate::Simulation::run_to_precision`]
//! relies on it). All operations are integer or IEEE-754 with explicit
//! fused multiply-adds: the same bits on every instruction set and thread
//! count (tested).

use std::sync::OnceLock;

/// Largest number of quasi-Monte Carlo dimensions (factors × steps) per
/// path; the per-block buffer is `8 × dimensions` values.
pub const MAX_QMC_DIMENSIONS: u64 = 1 << 18;

/// Dimensions covered by the embedded Joe–Kuo direction numbers.
pub const SOBOL_DIMENSIONS: usize = 21_201;

const JOE_KUO: &str = include_str!("../data/new-joe-kuo-6.21201");

/// Direction numbers, `v[k · dims + d]` for bit `k` (0 = most significant
/// contribution of index bit 0) and dimension `d` (0-based).
pub(crate) struct Sobol {
    pub(crate) dims: usize,
    v: Vec<u32>,
}

fn parse_joe_kuo(text: &str) -> Sobol {
    let dims = SOBOL_DIMENSIONS;
    let mut v = vec![0u32; 32 * dims];
    for k in 0..32 {
        v[k * dims] = 1u32 << (31 - k);
    }
    for (d, line) in text.lines().skip(1).take(dims - 1).enumerate() {
        let d = d + 1;
        let mut f = line
            .split_whitespace()
            .map(|t| t.parse::<u32>().unwrap_or(0));
        let _dim = f.next();
        let s = f.next().unwrap_or(1) as usize;
        let a = f.next().unwrap_or(0);
        let m: Vec<u32> = f.collect();
        let mut col = [0u32; 33];
        for i in 1..=32 {
            col[i] = if i <= s {
                m[i - 1] << (32 - i)
            } else {
                let mut x = col[i - s] ^ (col[i - s] >> s);
                for k in 1..s {
                    x ^= ((a >> (s - 1 - k)) & 1) * col[i - k];
                }
                x
            };
        }
        for k in 0..32 {
            v[k * dims + d] = col[k + 1];
        }
    }
    Sobol { dims, v }
}

/// The embedded direction numbers, parsed on first use.
pub(crate) fn sobol() -> &'static Sobol {
    static S: OnceLock<Sobol> = OnceLock::new();
    S.get_or_init(|| parse_joe_kuo(JOE_KUO))
}

impl Sobol {
    /// Unscrambled point `index` (Gray-code order) in dimensions
    /// `0..out.len()` (at most `self.dims`).
    pub(crate) fn point(&self, index: u32, out: &mut [u32]) {
        out.fill(0);
        let n = out.len();
        let mut g = index ^ (index >> 1);
        while g != 0 {
            let k = g.trailing_zeros() as usize;
            let row = &self.v[k * self.dims..k * self.dims + n];
            for (o, r) in out.iter_mut().zip(row) {
                *o ^= r;
            }
            g &= g - 1;
        }
    }
}

/// Burley's hashed nested uniform (Owen) scramble of a 32-bit coordinate.
#[inline(always)]
pub(crate) fn owen_scramble(x: u32, seed: u32) -> u32 {
    let mut x = x.reverse_bits();
    x = x.wrapping_add(seed);
    x ^= x.wrapping_mul(0x6c50_b47c);
    x ^= x.wrapping_mul(0xb82f_1e52);
    x ^= x.wrapping_mul(0xc7af_e638);
    x ^= x.wrapping_mul(0x8d22_f6e6);
    x.reverse_bits()
}

/// The base seed of scrambling `replicate` of a run.
pub(crate) fn replicate_seed(seed: u64, replicate: u32) -> u64 {
    let mut s =
        seed ^ 0x5152_4D43_0000_0000 ^ u64::from(replicate).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    crate::rng::splitmix64(&mut s)
}

/// The 32-bit scrambling seed of dimension `d` (a SplitMix64 finaliser of
/// the replicate seed and `d`).
#[inline(always)]
pub(crate) fn dim_seed(base: u64, d: u32) -> u32 {
    let mut z = base.wrapping_add(u64::from(d).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// `(x + ½) / 2³²`, in (0, 1).
#[inline(always)]
pub(crate) fn to_unit(x: u32) -> f64 {
    (f64::from(x) + 0.5) * (1.0 / 4_294_967_296.0)
}

/// Brownian-bridge construction plan over `n` unit steps (see the module
/// docs); `W` indices are 0-based step ends `0..n`.
#[derive(Debug, Clone)]
pub(crate) struct Bridge {
    /// `(bridge index l, left index j (W(j−1) is the left end; 0 = none),
    /// right index k, left weight, right weight, standard deviation)`.
    pub(crate) plan: Vec<(usize, usize, usize, f64, f64, f64)>,
}

impl Bridge {
    pub(crate) fn new(n: usize) -> Bridge {
        let t = |i: usize| (i + 1) as f64;
        let mut map = vec![false; n];
        let mut plan = Vec::with_capacity(n);
        map[n - 1] = true;
        plan.push((n - 1, 0, 0, 0.0, 0.0, t(n - 1).sqrt()));
        let mut j = 0;
        for _ in 1..n {
            while map[j] {
                j += 1;
            }
            let mut k = j;
            while !map[k] {
                k += 1;
            }
            let l = j + ((k - 1 - j) >> 1);
            map[l] = true;
            let (tl, tk) = (t(l), t(k));
            let tj = if j == 0 { 0.0 } else { t(j - 1) };
            plan.push((
                l,
                j,
                k,
                (tk - tl) / (tk - tj),
                (tl - tj) / (tk - tj),
                ((tl - tj) * (tk - tl) / (tk - tj)).sqrt(),
            ));
            j = k + 1;
            if j >= n {
                j = 0;
            }
        }
        Bridge { plan }
    }
}

/// How the factors' independent Brownian paths are mixed into the
/// correlated shocks under RQMC: a matrix `A` (`nf × nf`) with
/// `A Aᵀ = Σ`, the per-step covariance of the log-returns (assets, then
/// stochastic inflation). Factor `j` (column `j`) gets Sobol dimensions
/// `c · nf + j` (`c` the bridge index), so the first columns should carry
/// the variance that matters. Not part of the stable API: the engine picks
/// [`QmcFactor::Portfolio`]; the others are kept for the precision
/// benchmark's comparison.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QmcFactor {
    /// The Cholesky factor `L` (what pseudo-random paths use): factor `j`
    /// is asset `j`'s own shock, whatever its weight or volatility.
    Cholesky,
    /// Principal components: `A = V diag(√λ)`, eigenvalues of `Σ` in
    /// decreasing order (Acworth, Broadie & Glasserman 1998).
    Pca,
    /// Portfolio first: column 0 is `a₁ = Σw / √(wᵀΣw)` (`w` the initial
    /// weights, 0 for inflation), so the portfolio's log-return `wᵀ A ξ`
    /// depends on factor 0 alone (`wᵀ A = (√(wᵀΣw), 0, …, 0)`); columns
    /// `1..` are the principal components of the rest, `Σ − a₁a₁ᵀ`, in
    /// decreasing order. An orthogonal rotation of the Cholesky factor
    /// aimed at the payoff's linear part, as in the "linear transformation"
    /// method of Imai & Tan (2006), "A general dimension reduction technique
    /// for derivative pricing", J. Comput. Finance 10(2). Falls back to
    /// [`QmcFactor::Pca`] when `wᵀΣw = 0`.
    #[default]
    Portfolio,
}

/// Validated QMC settings of a simulation.
#[derive(Debug, Clone)]
pub(crate) struct QmcPlan {
    /// Independent scramblings `R`.
    pub(crate) scramblings: u32,
    /// Dimensions per path: factors × steps.
    pub(crate) dims: usize,
    /// Dimensions taken from the Sobol points (the first ones in bridge
    /// order); the rest are pseudo-random normals ("padding").
    pub(crate) sobol_dims: usize,
    pub(crate) bridge: Bridge,
    /// The mixing matrix `A` (row-major `nf × nf`, per-step scale
    /// included: `A Aᵀ = M Mᵀ` for the scaled Cholesky factor `M`).
    pub(crate) factor: Vec<f64>,
}

impl QmcPlan {
    /// The plan for `scramblings` independent scramblings of a point set with
    /// `dims` dimensions per path (`factors × steps`) over `steps` time steps.
    /// The caller ([`crate::Simulation::with_limits`]) has validated both.
    /// `factor` is the mixing matrix (see [`QmcFactor`]); the first
    /// `sobol_nodes` bridge values of every factor come from the Sobol
    /// points, the rest are pseudo-random (see the module docs).
    pub(crate) fn new(
        scramblings: u32,
        dims: usize,
        steps: usize,
        factor: Vec<f64>,
        sobol_nodes: usize,
    ) -> QmcPlan {
        let factors = dims / steps.max(1);
        QmcPlan {
            scramblings,
            dims,
            sobol_dims: (factors * sobol_nodes.clamp(1, steps.max(1))).min(SOBOL_DIMENSIONS),
            bridge: Bridge::new(steps),
            factor,
        }
    }
}

/// The mixing matrix of `kind` for the scaled lower Cholesky factor `m`
/// (`nf × nf`) and the portfolio weights `w` (length ≤ `nf`; missing
/// entries are 0).
pub(crate) fn mixing_matrix(kind: QmcFactor, m: &[f64], nf: usize, w: &[f64]) -> Vec<f64> {
    if kind == QmcFactor::Cholesky {
        return m.to_vec();
    }
    // Σ = M Mᵀ, accumulated in index order.
    let mut cov = vec![0.0f64; nf * nf];
    for i in 0..nf {
        for j in 0..nf {
            let mut acc = 0.0f64;
            for k in 0..nf {
                acc = m[i * nf + k].mul_add(m[j * nf + k], acc);
            }
            cov[i * nf + j] = acc;
        }
    }
    if kind == QmcFactor::Portfolio {
        let wt = |i: usize| w.get(i).copied().unwrap_or(0.0);
        let sw: Vec<f64> = (0..nf)
            .map(|i| (0..nf).fold(0.0f64, |acc, j| cov[i * nf + j].mul_add(wt(j), acc)))
            .collect();
        let var = (0..nf).fold(0.0f64, |acc, i| wt(i).mul_add(sw[i], acc));
        if var > 0.0 {
            let s = var.sqrt();
            let a1: Vec<f64> = sw.iter().map(|x| x / s).collect();
            let mut rest = cov.clone();
            for i in 0..nf {
                for j in 0..nf {
                    rest[i * nf + j] -= a1[i] * a1[j];
                }
            }
            // The residual has rank ≤ nf − 1: its last principal
            // component is (numerically) zero and is dropped.
            let pc = crate::linalg::pca_factor(&rest, nf);
            let mut a = vec![0.0f64; nf * nf];
            for i in 0..nf {
                a[i * nf] = a1[i];
                for k in 1..nf {
                    a[i * nf + k] = pc[i * nf + k - 1];
                }
            }
            return a;
        }
    }
    crate::linalg::pca_factor(&cov, nf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_dimension_has_the_known_direction_numbers() {
        let s = sobol();
        let want = [
            0x8000_0000u32,
            0xC000_0000,
            0xA000_0000,
            0xF000_0000,
            0x8800_0000,
        ];
        for (k, w) in want.iter().enumerate() {
            assert_eq!(s.v[k * s.dims + 1], *w);
        }
        // Last line of the file: d = 21201, s = 18, m_1 = 1.
        assert_eq!(s.v[s.dims - 1], 1 << 31);
    }

    /// (0, m, 1)-net property per dimension, before and after scrambling:
    /// the first 2^m points put exactly one point in each interval
    /// [k/2^m, (k+1)/2^m); and pairs of early dimensions stratify the
    /// 2^a × 2^b grids with a + b ≤ m − t for small t.
    #[test]
    fn points_stratify_before_and_after_scrambling() {
        let s = sobol();
        let m = 10;
        let n = 1usize << m;
        let dims = [0usize, 1, 2, 7, 50, 999, 5000, 21_200];
        for scrambled in [false, true] {
            for &d in &dims {
                let mut seen = vec![false; n];
                let mut pt = vec![0u32; d + 1];
                for i in 0..n as u32 {
                    s.point(i, &mut pt);
                    let x = if scrambled {
                        owen_scramble(pt[d], dim_seed(replicate_seed(9, 3), d as u32))
                    } else {
                        pt[d]
                    };
                    let bin = (x >> (32 - m)) as usize;
                    assert!(!seen[bin], "dim {d} scrambled {scrambled}: bin {bin} twice");
                    seen[bin] = true;
                }
            }
        }
    }

    #[test]
    fn bridge_reproduces_the_path_from_its_increments() {
        for n in [1usize, 2, 3, 7, 12, 360] {
            let b = Bridge::new(n);
            assert_eq!(b.plan.len(), n);
            let mut used = vec![false; n];
            for &(l, ..) in &b.plan {
                assert!(!used[l]);
                used[l] = true;
            }
            // Conditional variances sum to the total: Var W(n) = n, and the
            // increments have unit variance (checked through the weights on
            // the second point for n ≥ 2).
            assert!((b.plan[0].5 * b.plan[0].5 - n as f64).abs() < 1e-12);
        }
    }
}
