//! A branch-free, auto-vectorisable `exp` for the simulation kernel.
//!
//! # Formula
//! `exp(x) = 2^k · exp(r)` with `k = round(x / ln 2)` and
//! `r = x − k·ln2_hi − k·ln2_lo`, `|r| ≤ ln 2 / 2`; `exp(r)` is a degree-11
//! polynomial (Chebyshev fit of `exp` on `[−ln2/2, ln2/2]`, computed with
//! 50-digit arithmetic; approximation error with the `f64`-rounded
//! coefficients `< 2e-17` relative) evaluated by Estrin's scheme, whose
//! dependency chain is four multiply-add levels deep instead of Horner's
//! eleven, and `2^k` is assembled from its IEEE-754 bits.
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

/// Coefficients `c_k` of `r^k`, k = 0..=11 (mpmath `chebyfit`, 50 digits,
/// rounded to the nearest `f64`).
#[allow(clippy::excessive_precision)]
const C: [f64; 12] = [
    1.0,
    1.0,
    0.5000000000000019,
    0.1666666666666668,
    0.04166666666648795,
    0.008333333333319589,
    0.0013888888952352863,
    0.00019841269890076403,
    2.4801485441561313e-05,
    2.755724088722987e-06,
    2.763265472252779e-07,
    2.5110049204818658e-08,
];

/// `exp(x)` for one value, clamped to the finite range; relative error `< 1e-15`.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let x = x.clamp(EXP_MIN_ARG, EXP_MAX_ARG);
    let t = x * LOG2E + SHIFTER;
    let k = t - SHIFTER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Estrin: pairs, then quadruples with r², then r⁴, then r⁸.
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let p01 = C[0] + C[1] * r;
    let p23 = C[2] + C[3] * r;
    let p45 = C[4] + C[5] * r;
    let p67 = C[6] + C[7] * r;
    let p89 = C[8] + C[9] * r;
    let p1011 = C[10] + C[11] * r;
    let q0 = p01 + p23 * r2;
    let q1 = p45 + p67 * r2;
    let q2 = p89 + p1011 * r2;
    let p = (q0 + q1 * r4) + q2 * r8;
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
