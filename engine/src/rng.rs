//! Per-chunk random streams and the normal sampler.
//!
//! Paths are split into fixed-size chunks of [`CHUNK_PATHS`] paths. Chunk `c`
//! gets its own [`Pcg64Mcg`] whose 128-bit state is derived from
//! `(seed, c)` through SplitMix64 (Steele, Lea & Flood 2014), so the draws of
//! a chunk never depend on which thread runs it or in which order.
//!
//! # Normal sampler
//! [`fill_normals`] is the 256-layer ziggurat of Marsaglia & Tsang (2000) in
//! Doornik's ZIGNOR form (2005), with `rand_distr`'s tables, organised in
//! blocks for speed:
//! 1. the block's 64-bit words are taken from the generator in stream order
//!    (computed as `s·M^k`, `k = 1..8`, so eight multiplications are
//!    independent; the words are exactly those of `Pcg64Mcg::next_u64`);
//! 2. word `k` gives layer `i` (low 8 bits) and `u ∈ [−1, 1)` (high 52 bits);
//!    `x = u·X[i]` is accepted when `|x| < X[i+1]` (≈ 99 % of draws). This
//!    pass has no data-dependent branch, so it vectorises;
//! 3. the rejected slots are then completed in slot order with further words
//!    from the stream (wedge test, tail, or a fresh ziggurat draw).
//!
//! Every slot is an independent exact ziggurat draw, and the output is a
//! pure function of the generator state, whatever the instruction set.

use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::Rng;

use crate::fastmath::exp;
use crate::ziggurat_tables::{F, R, X};

/// Number of paths per independently seeded chunk. Part of the
/// value-stability contract: changing it changes every result.
pub const CHUNK_PATHS: usize = 256;

/// One SplitMix64 step: advances `state` and returns the mixed output.
#[inline]
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of chunk `chunk` for run seed `seed`.
pub(crate) fn chunk_rng(seed: u64, chunk: u64) -> Pcg64Mcg {
    let mut s = chunk.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut state = seed ^ splitmix64(&mut s);
    let hi = splitmix64(&mut state);
    let lo = splitmix64(&mut state);
    Pcg64Mcg::new(((hi as u128) << 64) | lo as u128)
}

/// The multiplier of `Pcg64Mcg` (PCG's 128-bit MCG multiplier).
const PCG_MUL: u128 = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645;

/// `PCG_MUL^(k+1) mod 2^128`, k = 0..8.
const PCG_POW: [u128; 8] = {
    let mut p = [0u128; 8];
    let mut m = PCG_MUL;
    let mut k = 0;
    while k < 8 {
        p[k] = m;
        m = m.wrapping_mul(PCG_MUL);
        k += 1;
    }
    p
};

/// PCG's XSL-RR output function.
#[inline(always)]
fn xsl_rr(state: u128) -> u64 {
    let rot = (state >> 122) as u32;
    (((state >> 64) as u64) ^ (state as u64)).rotate_right(rot)
}

/// Fills `out` with the next `out.len()` words of `rng`, exactly as repeated
/// `rng.next_u64()` would, but with independent multiplications.
#[inline(always)]
pub(crate) fn fill_u64(rng: &mut Pcg64Mcg, out: &mut [u64]) {
    let mut s = rng.state();
    let mut groups = out.chunks_exact_mut(8);
    for g in &mut groups {
        for k in 0..8 {
            g[k] = xsl_rr(s.wrapping_mul(PCG_POW[k]));
        }
        s = s.wrapping_mul(PCG_POW[7]);
    }
    for v in groups.into_remainder() {
        s = s.wrapping_mul(PCG_MUL);
        *v = xsl_rr(s);
    }
    // The state is odd, so `new` (which sets the low bit) keeps it as is.
    *rng = Pcg64Mcg::new(s);
}

/// Words per block of [`fill_normals`].
const BLOCK: usize = 64;

/// `u ∈ [−1, 1)` from the high 52 bits of `b` (exponent trick: `[2, 4) − 3`).
#[inline(always)]
fn signed_unit(b: u64) -> f64 {
    f64::from_bits((b >> 12) | 0x4000_0000_0000_0000) - 3.0
}

/// Uniform on `[0, 1)` with 53 bits.
#[inline(always)]
fn unit(rng: &mut Pcg64Mcg) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform on `(0, 1)` (52 bits, centred in its cell; never 0).
#[inline(always)]
fn open_unit(rng: &mut Pcg64Mcg) -> f64 {
    ((rng.next_u64() >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64)
}

/// Fills `out` with independent standard normal variates (ziggurat in
/// blocks; see the module docs).
#[inline(always)]
pub(crate) fn fill_normals(rng: &mut Pcg64Mcg, out: &mut [f64]) {
    for block in out.chunks_mut(BLOCK) {
        let mut words = [0u64; BLOCK];
        let words = &mut words[..block.len()];
        fill_u64(rng, words);
        // Fast path for every slot; no data-dependent branch.
        let mut rejected = false;
        for (o, &b) in block.iter_mut().zip(words.iter()) {
            let i = (b & 0xff) as usize;
            let x = signed_unit(b) * X[i];
            rejected |= x.abs() >= X[i + 1]; // x is never NaN
            *o = x;
        }
        if rejected {
            for (o, &b) in block.iter_mut().zip(words.iter()) {
                let i = (b & 0xff) as usize;
                if o.abs() >= X[i + 1] {
                    *o = complete(rng, b, *o);
                }
            }
        }
    }
}

/// One standard normal variate: the same draw as a one-slot
/// [`fill_normals`] (one word, then [`complete`] if rejected), without its
/// block buffer.
#[inline]
fn normal(rng: &mut Pcg64Mcg) -> f64 {
    let b = rng.next_u64();
    let i = (b & 0xff) as usize;
    let x = signed_unit(b) * X[i];
    if x.abs() < X[i + 1] {
        x
    } else {
        complete(rng, b, x)
    }
}

/// Instruction set a kernel instance was compiled for; selects the matching
/// out-of-line copy of [`fill_normals`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Isa {
    /// Baseline x86-64 / any other architecture.
    Portable,
    /// x86-64 with AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// [`fill_normals`] as a separate (not inlined) function per instruction
/// set. Compiled on its own, its fast path vectorises; inlined into the big
/// simulation kernel, LLVM left it scalar. The output is the same for every
/// `isa` (integer operations and exact products only).
#[inline(always)]
pub(crate) fn fill_normals_isa(isa: Isa, rng: &mut Pcg64Mcg, out: &mut [f64]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only used after detecting AVX-512F.
        Isa::Avx512 => unsafe { fill_normals_avx512(rng, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only used after detecting AVX2.
        Isa::Avx2 => unsafe { fill_normals_avx2(rng, out) },
        Isa::Portable => fill_normals_portable(rng, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline(never)]
fn fill_normals_avx512(rng: &mut Pcg64Mcg, out: &mut [f64]) {
    fill_normals(rng, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
fn fill_normals_avx2(rng: &mut Pcg64Mcg, out: &mut [f64]) {
    fill_normals(rng, out)
}

#[inline(never)]
fn fill_normals_portable(rng: &mut Pcg64Mcg, out: &mut [f64]) {
    fill_normals(rng, out)
}

/// Finishes a draw whose fast path (word `b`, candidate `x`) was rejected.
#[cold]
#[inline(never)]
fn complete(rng: &mut Pcg64Mcg, mut b: u64, mut x: f64) -> f64 {
    loop {
        let i = (b & 0xff) as usize;
        if i == 0 {
            return tail(rng, signed_unit(b));
        }
        // Wedge: accept with probability (pdf(x) − F[i+1]) / (F[i] − F[i+1]).
        if F[i + 1] + (F[i] - F[i + 1]) * unit(rng) < exp(-0.5 * x * x) {
            return x;
        }
        // A fresh draw.
        b = rng.next_u64();
        let j = (b & 0xff) as usize;
        x = signed_unit(b) * X[j];
        if x.abs() < X[j + 1] {
            return x;
        }
    }
}

/// Normal tail beyond `R` (Marsaglia 1964), sign from `u`. `ln` is the
/// `libm` crate's (pure Rust), so the bits do not depend on the platform.
#[cold]
fn tail(rng: &mut Pcg64Mcg, u: f64) -> f64 {
    loop {
        let x = libm::log(open_unit(rng)) / R;
        let y = libm::log(open_unit(rng));
        if -2.0 * y >= x * x {
            return if u < 0.0 { x - R } else { R - x };
        }
    }
}

/// χ²_ν variates for ν > 2, as `2 · Gamma(ν/2, 1)` by Marsaglia & Tsang
/// (2000), "A simple method for generating gamma variables", ACM TOMS
/// 26(3): with `d = ν/2 − 1/3`, `c = 1/√(9d)`, draw `x ~ N(0, 1)` (this
/// module's sampler) and `u ~ U(0, 1)`, let `v = (1 + c·x)³`, and accept `d·v`
/// when `v > 0` and `u < 1 − 0.0331·x⁴` or `ln u < x²/2 + d(1 − v + ln v)`.
/// `ln` is the `libm` crate's, so the bits do not depend on the platform.
pub(crate) struct ChiSquared {
    d: f64,
    c: f64,
}

impl ChiSquared {
    /// `dof` must exceed 2 (validated by the spec; the method needs a gamma
    /// shape ≥ 1).
    pub(crate) fn new(dof: f64) -> ChiSquared {
        let d = dof / 2.0 - 1.0 / 3.0;
        ChiSquared {
            d,
            c: 1.0 / (9.0 * d).sqrt(),
        }
    }

    /// One χ²_ν variate (acceptance rate above 95 % for ν > 2).
    pub(crate) fn sample(&self, rng: &mut Pcg64Mcg) -> f64 {
        loop {
            let x = normal(rng);
            let t = 1.0 + self.c * x;
            if t <= 0.0 {
                continue;
            }
            let v = t * t * t;
            let u = open_unit(rng);
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2
                || libm::log(u) < 0.5 * x2 + self.d * (1.0 - v + libm::log(v))
            {
                return 2.0 * self.d * v;
            }
        }
    }
}

/// Uniform index in `0..n` by multiply-shift (Lemire); bias `< n / 2^64`.
#[inline]
pub(crate) fn index<R: Rng>(rng: &mut R, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_u64_is_the_pcg64mcg_stream() {
        let mut a = chunk_rng(9, 3);
        let mut b = a.clone();
        for len in [0, 1, 7, 8, 9, 24, 80, 3] {
            let mut buf = vec![0u64; len];
            fill_u64(&mut a, &mut buf);
            let want: Vec<u64> = (0..len).map(|_| b.next_u64()).collect();
            assert_eq!(buf, want);
        }
        assert_eq!(a.next_u64(), b.next_u64());
    }

    /// χ²_ν: mean and the frequencies below the 5 %, 50 % and 95 % quantiles
    /// (regularized incomplete gamma, 4 decimals) within 5 standard errors,
    /// for ν = 2.5, 5, 30.
    #[test]
    fn chi_squared_matches_its_distribution() {
        for (dof, quantiles) in [
            (2.5, [0.2108, 1.8738, 6.9281]),
            (5.0, [1.1455, 4.3515, 11.0705]),
            (30.0, [18.4927, 29.3360, 43.7730]),
        ] {
            let chi = ChiSquared::new(dof);
            let mut rng = chunk_rng(7, dof as u64);
            let n = 200_000;
            let xs: Vec<f64> = (0..n).map(|_| chi.sample(&mut rng)).collect();
            let nf = n as f64;
            let mean = xs.iter().sum::<f64>() / nf;
            assert!(
                (mean - dof).abs() < 5.0 * (2.0 * dof / nf).sqrt(),
                "dof {dof}: mean {mean}"
            );
            for (q, p) in quantiles.into_iter().zip([0.05, 0.5, 0.95]) {
                let k = xs.iter().filter(|&&x| x <= q).count() as f64;
                let se = (p * (1.0 - p) / nf).sqrt();
                assert!(
                    (k / nf - p).abs() < 5.0 * se + 1e-4,
                    "dof {dof}: P(X <= {q}) = {} vs {p}",
                    k / nf
                );
            }
        }
    }

    /// Mean, variance, 4th moment and tail frequencies of 2·10⁶ draws match
    /// N(0, 1) within 5 standard errors.
    #[test]
    fn normal_moments_and_tails() {
        let mut rng = chunk_rng(1, 0);
        let n = 2_000_000;
        let mut v = vec![0.0; n];
        for block in v.chunks_mut(80) {
            fill_normals(&mut rng, block);
        }
        let nf = n as f64;
        let m1 = v.iter().sum::<f64>() / nf;
        let m2 = v.iter().map(|x| x * x).sum::<f64>() / nf;
        let m4 = v.iter().map(|x| x.powi(4)).sum::<f64>() / nf;
        assert!(m1.abs() < 5.0 / nf.sqrt(), "mean {m1}");
        assert!((m2 - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt(), "var {m2}");
        assert!((m4 - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt(), "m4 {m4}");
        // P(|Z| > t) for t = 1, 2, 3, and 3.9 (beyond the ziggurat base).
        for (t, p) in [
            (1.0, 0.317_310_507_862_914_1),
            (2.0, 0.045_500_263_896_358_4),
            (3.0, 0.002_699_796_063_260_2),
            (3.9, 9.618_74e-5),
        ] {
            let k = v.iter().filter(|x| x.abs() > t).count() as f64;
            let se = (p * (1.0 - p) / nf).sqrt();
            assert!(
                (k / nf - p).abs() < 5.0 * se,
                "P(|Z|>{t}) = {} vs {p}",
                k / nf
            );
        }
    }
}
