//! Per-chunk random streams.
//!
//! Paths are split into fixed-size chunks of [`CHUNK_PATHS`] paths. Chunk `c`
//! gets its own [`Pcg64Mcg`] whose 128-bit state is derived from
//! `(seed, c)` through SplitMix64 (Steele, Lea & Flood 2014), so the draws of
//! a chunk never depend on which thread runs it or in which order.

use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::Rng;

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

/// A standard normal variate (ziggurat, `rand_distr::StandardNormal`).
#[inline(always)]
pub(crate) fn normal<R: Rng>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

/// Uniform index in `0..n` by multiply-shift (Lemire); bias `< n / 2^64`.
#[inline]
pub(crate) fn index<R: Rng>(rng: &mut R, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}
