//! Branch-free `exp` functions.
//!
//! Two variants share one table of `2^(j/256)`:
//! * [`exp`]: plain `+ − ×` only (no fused multiply-add). Used by the
//!   normal sampler's rare wedge test, which is compiled for the baseline
//!   instruction set.
//! * [`exp_fused`] / [`exp_lanes_fused`]: the simulation kernel's `exp`,
//!   written with fused multiply-adds (`f64::mul_add`, a single rounding, so
//!   the result is the same on every instruction set) and a 16-entry table,
//!   which AVX-512 reads with one in-register permute
//!   ([`exp_lanes_avx512`]) instead of a memory gather.
//!
//! # Formula
//! Table-driven: with `N = 256` ([`exp`]) or `N = 16` ([`exp_fused`]),
//! `exp(x) = 2^m · 2^(j/N) · exp(r)` where `k = round(x · N / ln 2)`,
//! `m = ⌊k / N⌋`, `j = k mod N` and `r = x − k·(ln2/N)_hi − k·(ln2/N)_lo`,
//! `|r| ≤ ln 2 / (2N)` (≈ 1.36e-3 for `N = 256`, ≈ 0.0217 for `N = 16`).
//! * `2^(j/N)` is read from a table of correctly rounded `f64` values
//!   (generated with 50-digit arithmetic; checked by a test; the 16-entry
//!   table is every 16th entry of the 256-entry one), and `2^m` is added
//!   into its IEEE-754 exponent field with an integer add (exact: the clamp
//!   keeps `2^m · 2^(j/N)` a normal number);
//! * `exp(r) − 1` is a Taylor polynomial: degree 4,
//!   `r + r²(1/2 + r(1/6 + r/24))`, truncation `≤ |r|⁵/120 · 1.01 < 4e-17`
//!   for `N = 256`; degree 7 (Horner with fused multiply-adds), truncation
//!   `≤ |r|⁸/8! · 1.03 < 1.3e-18` for `N = 16`;
//! * the result is `s + s·p` with `s = 2^m · 2^(j/N)`, so the rounding of
//!   the small correction `p` barely matters.
//!
//! The rounding of `x · N / ln 2` uses the "shifter" trick
//! (`t = x·N·log2(e) + 1.5·2^52`): the low bits of `t` hold `k` as a
//! two's-complement integer, giving `j` (low 8 or 4 bits) and `m` (the bits
//! above). `(ln2/N)_hi` has 32 significant bits, so `k·(ln2/N)_hi` is exact
//! for every `|k| ≤ 2^18`. Only `+ − ×`, fused multiply-adds written
//! explicitly (`exp_fused` only), integer adds/shifts/masks and one table
//! read per value are used, so every code path gives bit-identical results.
//!
//! The input is clamped to `[EXP_MIN_ARG, EXP_MAX_ARG]`, so the result is
//! always finite and positive (NaN stays NaN). Accuracy: relative error
//! below `5e-16` (about 2 ulp; measured worst case ≈ 2.2e-16), tested
//! against `f64::exp` over the whole clamped range and densely near zero.

/// Smallest argument: `exp(-708) ≈ 3.3e-308` is still a normal number.
pub(crate) const EXP_MIN_ARG: f64 = -708.0;
/// Largest argument: `exp(709) ≈ 8.2e307` is finite.
pub(crate) const EXP_MAX_ARG: f64 = 709.0;

/// log2 of the table size.
const TABLE_BITS: u32 = 8;
/// Table size `N`.
const TABLE_LEN: usize = 1 << TABLE_BITS;
/// `N / ln 2`.
const N_LOG2E: f64 = TABLE_LEN as f64 * std::f64::consts::LOG2_E;
/// `ln 2 / N` rounded to 32 significant bits (ln 2 hi-part scaled by `2^-8`).
const LN2_N_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000 - ((TABLE_BITS as u64) << 52));
/// `ln 2 / N − LN2_N_HI` (ln 2 lo-part scaled by `2^-8`).
const LN2_N_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76 - ((TABLE_BITS as u64) << 52));
const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52

/// Bits of `2^(j/256)`, `j = 0..256`, correctly rounded to `f64`
/// (mpmath, 50 digits).
#[rustfmt::skip]
static EXP2_TABLE_BITS: [u64; TABLE_LEN] = [
    0x3FF0000000000000, 0x3FF00B1AFA5ABCBF, 0x3FF0163DA9FB3335, 0x3FF02168143B0281,
    0x3FF02C9A3E778061, 0x3FF037D42E11BBCC, 0x3FF04315E86E7F85, 0x3FF04E5F72F654B1,
    0x3FF059B0D3158574, 0x3FF0650A0E3C1F89, 0x3FF0706B29DDF6DE, 0x3FF07BD42B72A836,
    0x3FF0874518759BC8, 0x3FF092BDF66607E0, 0x3FF09E3ECAC6F383, 0x3FF0A9C79B1F3919,
    0x3FF0B5586CF9890F, 0x3FF0C0F145E46C85, 0x3FF0CC922B7247F7, 0x3FF0D83B23395DEC,
    0x3FF0E3EC32D3D1A2, 0x3FF0EFA55FDFA9C5, 0x3FF0FB66AFFED31B, 0x3FF1073028D7233E,
    0x3FF11301D0125B51, 0x3FF11EDBAB5E2AB6, 0x3FF12ABDC06C31CC, 0x3FF136A814F204AB,
    0x3FF1429AAEA92DE0, 0x3FF14E95934F312E, 0x3FF15A98C8A58E51, 0x3FF166A45471C3C2,
    0x3FF172B83C7D517B, 0x3FF17ED48695BBC0, 0x3FF18AF9388C8DEA, 0x3FF1972658375D2F,
    0x3FF1A35BEB6FCB75, 0x3FF1AF99F8138A1C, 0x3FF1BBE084045CD4, 0x3FF1C82F95281C6B,
    0x3FF1D4873168B9AA, 0x3FF1E0E75EB44027, 0x3FF1ED5022FCD91D, 0x3FF1F9C18438CE4D,
    0x3FF2063B88628CD6, 0x3FF212BE3578A819, 0x3FF21F49917DDC96, 0x3FF22BDDA27912D1,
    0x3FF2387A6E756238, 0x3FF2451FFB82140A, 0x3FF251CE4FB2A63F, 0x3FF25E85711ECE75,
    0x3FF26B4565E27CDD, 0x3FF2780E341DDF29, 0x3FF284DFE1F56381, 0x3FF291BA7591BB70,
    0x3FF29E9DF51FDEE1, 0x3FF2AB8A66D10F13, 0x3FF2B87FD0DAD990, 0x3FF2C57E39771B2F,
    0x3FF2D285A6E4030B, 0x3FF2DF961F641589, 0x3FF2ECAFA93E2F56, 0x3FF2F9D24ABD886B,
    0x3FF306FE0A31B715, 0x3FF31432EDEEB2FD, 0x3FF32170FC4CD831, 0x3FF32EB83BA8EA32,
    0x3FF33C08B26416FF, 0x3FF3496266E3FA2D, 0x3FF356C55F929FF1, 0x3FF36431A2DE883B,
    0x3FF371A7373AA9CB, 0x3FF37F26231E754A, 0x3FF38CAE6D05D866, 0x3FF39A401B7140EF,
    0x3FF3A7DB34E59FF7, 0x3FF3B57FBFEC6CF4, 0x3FF3C32DC313A8E5, 0x3FF3D0E544EDE173,
    0x3FF3DEA64C123422, 0x3FF3EC70DF1C5175, 0x3FF3FA4504AC801C, 0x3FF40822C367A024,
    0x3FF4160A21F72E2A, 0x3FF423FB2709468A, 0x3FF431F5D950A897, 0x3FF43FFA3F84B9D4,
    0x3FF44E086061892D, 0x3FF45C2042A7D232, 0x3FF46A41ED1D0057, 0x3FF4786D668B3237,
    0x3FF486A2B5C13CD0, 0x3FF494E1E192AED2, 0x3FF4A32AF0D7D3DE, 0x3FF4B17DEA6DB7D7,
    0x3FF4BFDAD5362A27, 0x3FF4CE41B817C114, 0x3FF4DCB299FDDD0D, 0x3FF4EB2D81D8ABFF,
    0x3FF4F9B2769D2CA7, 0x3FF508417F4531EE, 0x3FF516DAA2CF6642, 0x3FF5257DE83F4EEF,
    0x3FF5342B569D4F82, 0x3FF542E2F4F6AD27, 0x3FF551A4CA5D920F, 0x3FF56070DDE910D2,
    0x3FF56F4736B527DA, 0x3FF57E27DBE2C4CF, 0x3FF58D12D497C7FD, 0x3FF59C0827FF07CC,
    0x3FF5AB07DD485429, 0x3FF5BA11FBA87A03, 0x3FF5C9268A5946B7, 0x3FF5D84590998B93,
    0x3FF5E76F15AD2148, 0x3FF5F6A320DCEB71, 0x3FF605E1B976DC09, 0x3FF6152AE6CDF6F4,
    0x3FF6247EB03A5585, 0x3FF633DD1D1929FD, 0x3FF6434634CCC320, 0x3FF652B9FEBC8FB7,
    0x3FF6623882552225, 0x3FF671C1C70833F6, 0x3FF68155D44CA973, 0x3FF690F4B19E9538,
    0x3FF6A09E667F3BCD, 0x3FF6B052FA75173E, 0x3FF6C012750BDABF, 0x3FF6CFDCDDD47645,
    0x3FF6DFB23C651A2F, 0x3FF6EF9298593AE5, 0x3FF6FF7DF9519484, 0x3FF70F7466F42E87,
    0x3FF71F75E8EC5F74, 0x3FF72F8286EAD08A, 0x3FF73F9A48A58174, 0x3FF74FBD35D7CBFD,
    0x3FF75FEB564267C9, 0x3FF77024B1AB6E09, 0x3FF780694FDE5D3F, 0x3FF790B938AC1CF6,
    0x3FF7A11473EB0187, 0x3FF7B17B0976CFDB, 0x3FF7C1ED0130C132, 0x3FF7D26A62FF86F0,
    0x3FF7E2F336CF4E62, 0x3FF7F3878491C491, 0x3FF80427543E1A12, 0x3FF814D2ADD106D9,
    0x3FF82589994CCE13, 0x3FF8364C1EB941F7, 0x3FF8471A4623C7AD, 0x3FF857F4179F5B21,
    0x3FF868D99B4492ED, 0x3FF879CAD931A436, 0x3FF88AC7D98A6699, 0x3FF89BD0A478580F,
    0x3FF8ACE5422AA0DB, 0x3FF8BE05BAD61778, 0x3FF8CF3216B5448C, 0x3FF8E06A5E0866D9,
    0x3FF8F1AE99157736, 0x3FF902FED0282C8A, 0x3FF9145B0B91FFC6, 0x3FF925C353AA2FE2,
    0x3FF93737B0CDC5E5, 0x3FF948B82B5F98E5, 0x3FF95A44CBC8520F, 0x3FF96BDD9A7670B3,
    0x3FF97D829FDE4E50, 0x3FF98F33E47A22A2, 0x3FF9A0F170CA07BA, 0x3FF9B2BB4D53FE0D,
    0x3FF9C49182A3F090, 0x3FF9D674194BB8D5, 0x3FF9E86319E32323, 0x3FF9FA5E8D07F29E,
    0x3FFA0C667B5DE565, 0x3FFA1E7AED8EB8BB, 0x3FFA309BEC4A2D33, 0x3FFA42C980460AD8,
    0x3FFA5503B23E255D, 0x3FFA674A8AF46052, 0x3FFA799E1330B358, 0x3FFA8BFE53C12E59,
    0x3FFA9E6B5579FDBF, 0x3FFAB0E521356EBA, 0x3FFAC36BBFD3F37A, 0x3FFAD5FF3A3C2774,
    0x3FFAE89F995AD3AD, 0x3FFAFB4CE622F2FF, 0x3FFB0E07298DB666, 0x3FFB20CE6C9A8952,
    0x3FFB33A2B84F15FB, 0x3FFB468415B749B1, 0x3FFB59728DE5593A, 0x3FFB6C6E29F1C52A,
    0x3FFB7F76F2FB5E47, 0x3FFB928CF22749E4, 0x3FFBA5B030A1064A, 0x3FFBB8E0B79A6F1F,
    0x3FFBCC1E904BC1D2, 0x3FFBDF69C3F3A207, 0x3FFBF2C25BD71E09, 0x3FFC06286141B33D,
    0x3FFC199BDD85529C, 0x3FFC2D1CD9FA652C, 0x3FFC40AB5FFFD07A, 0x3FFC544778FAFB22,
    0x3FFC67F12E57D14B, 0x3FFC7BA88988C933, 0x3FFC8F6D9406E7B5, 0x3FFCA3405751C4DB,
    0x3FFCB720DCEF9069, 0x3FFCCB0F2E6D1675, 0x3FFCDF0B555DC3FA, 0x3FFCF3155B5BAB74,
    0x3FFD072D4A07897C, 0x3FFD1B532B08C968, 0x3FFD2F87080D89F2, 0x3FFD43C8EACAA1D6,
    0x3FFD5818DCFBA487, 0x3FFD6C76E862E6D3, 0x3FFD80E316C98398, 0x3FFD955D71FF6075,
    0x3FFDA9E603DB3285, 0x3FFDBE7CD63A8315, 0x3FFDD321F301B460, 0x3FFDE7D5641C0658,
    0x3FFDFC97337B9B5F, 0x3FFE11676B197D17, 0x3FFE264614F5A129, 0x3FFE3B333B16EE12,
    0x3FFE502EE78B3FF6, 0x3FFE653924676D76, 0x3FFE7A51FBC74C83, 0x3FFE8F7977CDB740,
    0x3FFEA4AFA2A490DA, 0x3FFEB9F4867CCA6E, 0x3FFECF482D8E67F1, 0x3FFEE4AAA2188510,
    0x3FFEFA1BEE615A27, 0x3FFF0F9C1CB6412A, 0x3FFF252B376BBA97, 0x3FFF3AC948DD7274,
    0x3FFF50765B6E4540, 0x3FFF6632798844F8, 0x3FFF7BFDAD9CBE14, 0x3FFF91D802243C89,
    0x3FFFA7C1819E90D8, 0x3FFFBDBA3692D514, 0x3FFFD3C22B8F71F1, 0x3FFFE9D96B2A23D9,
];

/// `N = 16` for [`exp_fused`].
const TABLE16_BITS: u32 = 4;
/// `16 / ln 2`.
const N16_LOG2E: f64 = 16.0 * std::f64::consts::LOG2_E;
/// `ln 2 / 16` rounded to 32 significant bits.
const LN2_16_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000 - ((TABLE16_BITS as u64) << 52));
/// `ln 2 / 16 − LN2_16_HI`.
const LN2_16_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76 - ((TABLE16_BITS as u64) << 52));

/// Bits of `2^(j/16)`, `j = 0..16` (every 16th entry of the 256 table).
static EXP2_16_BITS: [u64; 16] = {
    let mut t = [0u64; 16];
    let mut j = 0;
    while j < 16 {
        t[j] = EXP2_TABLE_BITS[16 * j];
        j += 1;
    }
    t
};

/// `2^(j/16)`, `j = 0..16`, as `f64`.
static EXP2_16: [f64; 16] = {
    let mut t = [0.0; 16];
    let mut j = 0;
    while j < 16 {
        t[j] = f64::from_bits(EXP2_16_BITS[j]);
        j += 1;
    }
    t
};

/// Taylor coefficients `1/k!`, `k = 1..=7`, for the fused polynomial.
const INV_FACT: [f64; 7] = [
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
];

/// The simulation kernel's `exp(x)`: clamped to the finite range, relative
/// error `< 5e-16`, computed with fused multiply-adds (see the module docs).
/// The same bits on every instruction set; [`exp_lanes_avx512`] computes
/// exactly this.
#[inline(always)]
pub(crate) fn exp_fused(x: f64) -> f64 {
    let x = x.clamp(EXP_MIN_ARG, EXP_MAX_ARG);
    let t = x.mul_add(N16_LOG2E, SHIFTER);
    let k = t - SHIFTER;
    let r = (-k).mul_add(LN2_16_LO, (-k).mul_add(LN2_16_HI, x));
    let bits = t.to_bits();
    let j = (bits & 15) as usize;
    let s = f64::from_bits(
        EXP2_16[j]
            .to_bits()
            .wrapping_add((bits >> TABLE16_BITS) << 52),
    );
    let mut q = INV_FACT[6];
    for c in INV_FACT[..6].iter().rev() {
        q = q.mul_add(r, *c);
    }
    s.mul_add(q * r, s)
}

/// [`exp_fused`] over a fixed-size lane array (vectorised by the compiler;
/// with gathers for the table).
#[inline(always)]
pub(crate) fn exp_lanes_fused<const L: usize>(x: &mut [f64; L]) {
    for v in x.iter_mut() {
        *v = exp_fused(*v);
    }
}

/// [`exp_fused`] of 8 values with AVX-512: the 16-entry table lives in two
/// registers and is read with one `vpermt2pd` (whose index is the low four
/// bits of `t`, i.e. `j`). Same operations in the same order as
/// [`exp_fused`], so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn exp_lanes_avx512(x: &mut [f64; 8]) {
    use std::arch::x86_64::*;
    // SAFETY: `EXP2_16` holds 16 readable f64.
    let (t_lo, t_hi) = unsafe {
        (
            _mm512_loadu_pd(EXP2_16.as_ptr()),
            _mm512_loadu_pd(EXP2_16.as_ptr().add(8)),
        )
    };
    // SAFETY: `x` is 8 readable and writable f64.
    let v = unsafe { _mm512_loadu_pd(x.as_ptr()) };
    // `clamp`, with the operands in the order that returns a NaN input
    // (`vmaxpd`/`vminpd` return their second operand when one is NaN).
    let v = _mm512_min_pd(
        _mm512_set1_pd(EXP_MAX_ARG),
        _mm512_max_pd(_mm512_set1_pd(EXP_MIN_ARG), v),
    );
    let shifter = _mm512_set1_pd(SHIFTER);
    let t = _mm512_fmadd_pd(v, _mm512_set1_pd(N16_LOG2E), shifter);
    let k = _mm512_sub_pd(t, shifter);
    let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_16_HI), v);
    let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_16_LO), r);
    let bits = _mm512_castpd_si512(t);
    let s = _mm512_castpd_si512(_mm512_permutex2var_pd(t_lo, bits, t_hi));
    let m = _mm512_slli_epi64::<52>(_mm512_srli_epi64::<{ TABLE16_BITS }>(bits));
    let s = _mm512_castsi512_pd(_mm512_add_epi64(s, m));
    let mut q = _mm512_set1_pd(INV_FACT[6]);
    for c in INV_FACT[..6].iter().rev() {
        q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(*c));
    }
    let out = _mm512_fmadd_pd(s, _mm512_mul_pd(q, r), s);
    // SAFETY: as above.
    unsafe { _mm512_storeu_pd(x.as_mut_ptr(), out) };
}

/// `exp(x)` for one value, clamped to the finite range; relative error `< 5e-16`.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let x = x.clamp(EXP_MIN_ARG, EXP_MAX_ARG);
    let t = x * N_LOG2E + SHIFTER;
    let k = t - SHIFTER;
    let r = (x - k * LN2_N_HI) - k * LN2_N_LO;
    let bits = t.to_bits();
    let j = (bits as usize) & (TABLE_LEN - 1);
    // Bits 8.. of `t` hold m = ⌊k / N⌋ (two's complement); shifted into the
    // exponent field, adding them multiplies the table entry by 2^m.
    let m_bits = (bits >> TABLE_BITS) << 52;
    let s = f64::from_bits(EXP2_TABLE_BITS[j].wrapping_add(m_bits));
    let r2 = r * r;
    let p = r + r2 * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0)));
    s + s * p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accuracy bound asserted by the tests (measured worst ≈ 2.2e-16).
    const BOUND: f64 = 5e-16;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn table_is_two_to_the_j_over_n() {
        assert_eq!(f64::from_bits(EXP2_TABLE_BITS[0]), 1.0);
        for (j, &b) in EXP2_TABLE_BITS.iter().enumerate() {
            let v = f64::from_bits(b);
            let want = (j as f64 / TABLE_LEN as f64 * std::f64::consts::LN_2).exp();
            assert!((1.0..2.0).contains(&v));
            assert!(rel(v, want) < 2.3e-16, "entry {j}: {v} vs {want}");
        }
    }

    #[test]
    fn matches_std_exp_on_a_grid() {
        let mut worst = 0.0f64;
        let mut x = EXP_MIN_ARG;
        while x <= EXP_MAX_ARG {
            worst = worst.max(rel(exp(x), x.exp()));
            x += 0.00137;
        }
        assert!(worst < BOUND, "worst relative error {worst}");
    }

    #[test]
    fn matches_std_exp_near_zero() {
        // Per-step log-returns: densely over [-3, 3], then every table slot
        // boundary region of [-1, 1] with a fine offset.
        let mut worst = 0.0f64;
        for i in -3_000_000..=3_000_000 {
            let x = i as f64 * 1e-6;
            worst = worst.max(rel(exp(x), x.exp()));
        }
        for k in -400..=400 {
            let c = k as f64 * std::f64::consts::LN_2 / TABLE_LEN as f64;
            for d in -50..=50 {
                let x = c + d as f64 * 1.4e-5;
                worst = worst.max(rel(exp(x), x.exp()));
            }
        }
        assert!(worst < BOUND, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn matches_std_exp_on_pseudorandom_inputs() {
        // xorshift64*: uniform over [-710, 710] and log-uniform small |x|.
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut worst = 0.0f64;
        for _ in 0..1_000_000 {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let x = (u - 0.5) * 1416.0;
            worst = worst.max(rel(exp(x), x.exp()));
            let e = (next() >> 11) as f64 / (1u64 << 53) as f64 * 40.0 - 36.0;
            let sign = if next() & 1 == 0 { 1.0 } else { -1.0 };
            let y = sign * 2f64.powf(e);
            worst = worst.max(rel(exp(y), y.exp()));
        }
        assert!(worst < BOUND, "worst relative error {worst}");
    }

    /// `exp_fused` over the same grids as `exp`, and the AVX-512 version
    /// bit for bit against it.
    #[test]
    fn fused_matches_std_exp_and_avx512_matches_fused() {
        let mut worst = 0.0f64;
        let mut inputs = Vec::new();
        let mut x = EXP_MIN_ARG;
        while x <= EXP_MAX_ARG {
            inputs.push(x);
            x += 0.00137;
        }
        for i in -3_000_000..=3_000_000 {
            inputs.push(i as f64 * 1e-6);
        }
        for k in -200..=200 {
            let c = k as f64 * std::f64::consts::LN_2 / 16.0;
            for d in -100..=100 {
                inputs.push(c + d as f64 * 2.2e-4);
            }
        }
        inputs.extend([-1e6, 1e6, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0]);
        inputs.extend([f64::NAN, -f64::NAN, 708.9, -707.9]);
        while inputs.len() % 8 != 0 {
            inputs.push(1.0);
        }
        for &x in &inputs {
            let e = exp_fused(x);
            if x.is_nan() {
                assert!(e.is_nan());
                continue;
            }
            assert!(e.is_finite() && e > 0.0, "exp_fused({x}) = {e}");
            if (EXP_MIN_ARG..=EXP_MAX_ARG).contains(&x) {
                worst = worst.max(rel(e, x.exp()));
            }
        }
        assert!(worst < BOUND, "worst relative error {worst}");
        assert_eq!(exp_fused(0.0), 1.0);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            for g in inputs.chunks_exact(8) {
                let mut v: [f64; 8] = g.try_into().unwrap();
                // SAFETY: AVX-512F was detected just above.
                unsafe { exp_lanes_avx512(&mut v) };
                for (a, &x) in v.iter().zip(g) {
                    if x.is_nan() {
                        assert!(a.is_nan(), "exp(NaN) = {a}");
                    } else {
                        assert_eq!(a.to_bits(), exp_fused(x).to_bits(), "x = {x}");
                    }
                }
            }
        }
    }

    #[test]
    fn clamps_instead_of_overflowing() {
        assert!(exp(1e6).is_finite());
        assert!(exp(f64::INFINITY).is_finite());
        assert!(exp(-1e6) > 0.0);
        assert!(exp(-1e6) < 1e-300);
        assert!(rel(exp(EXP_MIN_ARG), EXP_MIN_ARG.exp()) < BOUND);
        assert!(rel(exp(EXP_MAX_ARG), EXP_MAX_ARG.exp()) < BOUND);
        let mut lanes = [0.0, 1.0, -1.0, 2.0];
        exp_lanes_fused(&mut lanes);
        assert!(rel(lanes[1], std::f64::consts::E) < BOUND);
    }
}
