//! A branch-free, auto-vectorisable `exp` for the simulation kernel.
//!
//! # Formula
//! `exp(x) = 2^k · exp(r)` with `k = round(x / ln 2)` and
//! `r = x − k·ln2_hi − k·ln2_lo`, `|r| ≤ ln 2 / 2`; `exp(r)` is the
//! degree-13 Taylor polynomial evaluated by Horner's rule (truncation error
//! `< |r|^14/14! ≈ 4e-18`), and `2^k` is assembled from its IEEE-754 bits.
//! The rounding of `x / ln 2` uses the "shifter" trick
//! (`t = x·log2(e) + 1.5·2^52`), so only plain `+ − ×`, integer adds and
//! shifts are needed and the loop vectorises on SSE2, AVX2 and AVX-512 with
//! bit-identical results (no fused multiply-add is used).
//!
//! The input is clamped to `[EXP_MIN_ARG, EXP_MAX_ARG]`, so the result is
//! always finite and positive. Accuracy: relative error below `1e-15`
//! (tested against `f64::exp`).

/// Smallest argument: `exp(-708) ≈ 3.3e-308` is still a normal number.
pub(crate) const EXP_MIN_ARG: f64 = -708.0;
/// Largest argument: `exp(709) ≈ 8.2e307` is finite.
pub(crate) const EXP_MAX_ARG: f64 = 709.0;

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000); // ln 2 rounded to 32 significant bits
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76); // ln 2 − LN2_HI
const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52

/// `1/k!` for k = 13 down to 0 (Horner order).
const C: [f64; 14] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// `exp(x)` for one value, clamped to the finite range; relative error `< 1e-15`.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let x = x.clamp(EXP_MIN_ARG, EXP_MAX_ARG);
    let t = x * LOG2E + SHIFTER;
    let k = t - SHIFTER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = C[0];
    let mut i = 1;
    while i < C.len() {
        p = p * r + C[i];
        i += 1;
    }
    // Low bits of `t` hold k as a two's-complement integer; shifting them
    // into the exponent field yields 2^k.
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// In-place `exp` over a fixed-size lane array (vectorised by the compiler).
#[inline(always)]
pub(crate) fn exp_lanes<const L: usize>(x: &mut [f64; L]) {
    for v in x.iter_mut() {
        *v = exp(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn matches_std_exp_on_a_grid() {
        let mut worst = 0.0f64;
        let mut x = -700.0;
        while x < 700.0 {
            worst = worst.max(rel(exp(x), x.exp()));
            x += 0.0137;
        }
        assert!(worst < 1e-15, "worst relative error {worst}");
    }

    #[test]
    fn matches_std_exp_near_zero() {
        let mut worst = 0.0f64;
        for i in -20_000..=20_000 {
            let x = i as f64 * 1e-4;
            worst = worst.max(rel(exp(x), x.exp()));
        }
        assert!(worst < 1e-15, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn clamps_instead_of_overflowing() {
        assert!(exp(1e6).is_finite());
        assert!(exp(f64::INFINITY).is_finite());
        assert!(exp(-1e6) > 0.0);
        assert!(exp(-1e6) < 1e-300);
        let mut lanes = [0.0, 1.0, -1.0, 2.0];
        exp_lanes(&mut lanes);
        assert!(rel(lanes[1], std::f64::consts::E) < 1e-15);
    }
}
