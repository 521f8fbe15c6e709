//! Cholesky factorisation that tolerates positive *semi*-definite matrices.
//!
//! # Formula
//! For a symmetric `C` (n × n) the lower-triangular `L` with `C = L Lᵀ` is
//! built column by column (Glasserman, *Monte Carlo Methods in Financial
//! Engineering*, 2004, §2.3.3):
//!
//! `d_j = C_jj − Σ_{k<j} L_jk²`, `L_jj = √d_j`,
//! `L_ij = (C_ij − Σ_{k<j} L_ik L_jk) / L_jj` for `i > j`.
//!
//! A pivot `d_j ≥ −PIVOT_TOL` with `d_j ≤ PIVOT_TOL` is treated as zero and
//! column `j` of `L` is set to zero (the variable is an exact linear
//! combination of earlier ones, e.g. perfectly correlated assets). This is
//! only consistent if every residual `C_ij − Σ_{k<j} L_ik L_jk` is also
//! (numerically) zero; otherwise the matrix is not PSD. A pivot below
//! `−PIVOT_TOL` means the matrix is not PSD.

// Index loops over lanes/assets mirror the formulas and vectorise well.
#![allow(clippy::needless_range_loop)]

use crate::SpecError;

/// Pivots in `[−PIVOT_TOL, PIVOT_TOL]` are treated as exact zeros.
pub(crate) const PIVOT_TOL: f64 = 1e-10;
/// Residuals of a zero pivot's column must be below this (≈ √PIVOT_TOL,
/// since for a PSD matrix `r² ≤ d_j · d_i`).
pub(crate) const RESIDUAL_TOL: f64 = 1e-5;

/// Lower Cholesky factor of a symmetric PSD matrix, row-major `n × n`.
///
/// # Errors
/// [`SpecError::NotPositiveSemiDefinite`] for a pivot `< −PIVOT_TOL`,
/// [`SpecError::SingularPivotResidual`] for a zero pivot with a non-zero
/// column residual.
pub(crate) fn cholesky_psd(c: &[Vec<f64>]) -> Result<Vec<f64>, SpecError> {
    let n = c.len();
    let mut l = vec![0.0f64; n * n];
    for j in 0..n {
        let mut d = c[j][j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if d < -PIVOT_TOL {
            return Err(SpecError::NotPositiveSemiDefinite { pivot: j, value: d });
        }
        if d <= PIVOT_TOL {
            // Zero pivot: column j stays zero, but the residuals must vanish.
            for i in j + 1..n {
                let mut r = c[i][j];
                for k in 0..j {
                    r -= l[i * n + k] * l[j * n + k];
                }
                if r.abs() > RESIDUAL_TOL {
                    return Err(SpecError::SingularPivotResidual {
                        pivot: j,
                        row: i,
                        residual: r,
                    });
                }
            }
            continue;
        }
        let ljj = d.sqrt();
        l[j * n + j] = ljj;
        for i in j + 1..n {
            let mut r = c[i][j];
            for k in 0..j {
                r -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = r / ljj;
        }
    }
    Ok(l)
}

/// Eigen-decomposition of a symmetric matrix by the cyclic Jacobi method.
///
/// # Formula
/// Golub & Van Loan, *Matrix Computations*, 4th ed. 2013, §8.5.2–8.5.3
/// (cyclic-by-row Jacobi), with Rutishauser's stable rotation (the
/// `jacobi` routine of Press et al., *Numerical Recipes*, 3rd ed. 2007,
/// §11.1): for each off-diagonal `(p, q)` with `a_pq ≠ 0`,
/// `θ = (a_qq − a_pp) / (2 a_pq)`, `t = sgn(θ) / (|θ| + √(θ² + 1))`,
/// `c = 1/√(t² + 1)`, `s = t c`, and `A ← Jᵀ A J` zeroes `a_pq`; the
/// rotations accumulate into `V`. Sweeps repeat until the off-diagonal
/// sum of squares is below `1e-30 · ‖A‖²_F` (at most 100 sweeps; Jacobi
/// converges quadratically, 6–10 sweeps in practice).
///
/// Why Jacobi rather than a dependency (`nalgebra`'s `SymmetricEigen`):
/// the engine only decomposes correlation-sized matrices (at most
/// [`crate::MAX_ASSETS`] + 1 = 51 rows, once per simulation, well under a
/// millisecond), Jacobi is accurate to the last digits on such matrices
/// (Demmel & Veselić 1992) and, using only `+ − × ÷ √`, gives the same
/// bits on every platform.
///
/// Returns `(eigenvalues, V)` with `V` row-major `n × n`, eigenvector `k`
/// in column `k`, sorted by decreasing eigenvalue; each eigenvector's
/// largest-magnitude component (the first of equal ones) is positive.
pub(crate) fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let norm2: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let mut off = 0.0;
        for p in 0..n {
            for q in p + 1..n {
                off += 2.0 * a[p * n + q] * a[p * n + q];
            }
        }
        if off <= 1e-30 * norm2 || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + theta.mul_add(theta, 1.0).sqrt());
                let c = 1.0 / t.mul_add(t, 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J: columns p, q, then rows p, q.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Stable: equal eigenvalues keep their index order.
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values: Vec<f64> = order.iter().map(|&k| a[k * n + k]).collect();
    let mut vecs = vec![0.0f64; n * n];
    for (col, &k) in order.iter().enumerate() {
        let mut big = 0;
        for i in 0..n {
            if v[i * n + k].abs() > v[big * n + k].abs() {
                big = i;
            }
        }
        let sign = if v[big * n + k] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            vecs[i * n + col] = sign * v[i * n + k];
        }
    }
    (values, vecs)
}

/// A principal-component factor of a symmetric PSD matrix `C` (row-major
/// `n × n`): `A = V · diag(√max(λ, 0))` ([`symmetric_eigen`]), so
/// `A Aᵀ = C` and column `k` carries the `k`-th largest variance `λ_k`
/// (Glasserman 2004, §2.3.3, "principal components"; Acworth, Broadie &
/// Glasserman 1998 for its use with quasi-Monte Carlo).
pub(crate) fn pca_factor(c: &[f64], n: usize) -> Vec<f64> {
    let (values, mut a) = symmetric_eigen(c, n);
    for (k, &l) in values.iter().enumerate() {
        let s = l.max(0.0).sqrt();
        for i in 0..n {
            a[i * n + k] *= s;
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconstruct(l: &[f64], n: usize) -> Vec<Vec<f64>> {
        let mut c = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..n {
                c[i][j] = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
            }
        }
        c
    }

    fn covariance(m: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum();
            }
        }
        c
    }

    #[test]
    fn jacobi_diagonalises_and_sorts() {
        // Equicorrelation 0.3 with volatilities 5 %–23 % (the benchmark's
        // case (a)), and a singular all-ones matrix.
        let n = 10;
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let (si, sj) = (0.05 + 0.02 * i as f64, 0.05 + 0.02 * j as f64);
                c[i * n + j] = si * sj * if i == j { 1.0 } else { 0.3 };
            }
        }
        for (c, n) in [(c, n), (vec![1.0; 16], 4)] {
            let (l, v) = symmetric_eigen(&c, n);
            for k in 1..n {
                assert!(l[k - 1] >= l[k]);
            }
            // V diag(λ) Vᵀ = C and Vᵀ V = I.
            for i in 0..n {
                for j in 0..n {
                    let r: f64 = (0..n).map(|k| v[i * n + k] * l[k] * v[j * n + k]).sum();
                    assert!((r - c[i * n + j]).abs() < 1e-14, "{i} {j}: {r}");
                    let o: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                    assert!((o - f64::from(u8::from(i == j))).abs() < 1e-13);
                }
            }
            let a = pca_factor(&c, n);
            let back = covariance(&a, n);
            for (x, y) in back.iter().zip(&c) {
                assert!((x - y).abs() < 1e-14);
            }
        }
        // All ones: one eigenvalue n, the rest 0; the first vector is
        // (1, …, 1)/√n with a positive sign.
        let (l, v) = symmetric_eigen(&[1.0; 16], 4);
        assert!((l[0] - 4.0).abs() < 1e-14 && l[1].abs() < 1e-14);
        for i in 0..4 {
            assert!((v[i * 4] - 0.5).abs() < 1e-14);
        }
    }

    #[test]
    fn jacobi_one_by_one_is_the_identity() {
        let (l, v) = symmetric_eigen(&[0.04], 1);
        assert_eq!((l[0], v[0]), (0.04, 1.0));
        assert_eq!(pca_factor(&[0.04], 1), vec![0.2]);
    }

    #[test]
    fn reconstructs_positive_definite() {
        let c = vec![
            vec![1.0, 0.5, 0.2],
            vec![0.5, 1.0, -0.3],
            vec![0.2, -0.3, 1.0],
        ];
        let l = cholesky_psd(&c).unwrap();
        let r = reconstruct(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                assert!((r[i][j] - c[i][j]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn all_ones_is_psd() {
        let c = vec![vec![1.0; 4]; 4];
        let l = cholesky_psd(&c).unwrap();
        for i in 0..4 {
            assert_eq!(l[i * 4], 1.0);
            for j in 1..4 {
                assert_eq!(l[i * 4 + j], 0.0);
            }
        }
    }

    #[test]
    fn rejects_negative_pivot() {
        let c = vec![
            vec![1.0, 0.9, -0.9],
            vec![0.9, 1.0, 0.9],
            vec![-0.9, 0.9, 1.0],
        ];
        match cholesky_psd(&c) {
            Err(SpecError::NotPositiveSemiDefinite { pivot: 2, value }) => assert!(value < 0.0),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_zero_pivot_with_residual() {
        let c = vec![
            vec![1.0, 1.0, 0.0],
            vec![1.0, 1.0, 1.0],
            vec![0.0, 1.0, 1.0],
        ];
        assert!(matches!(
            cholesky_psd(&c),
            Err(SpecError::SingularPivotResidual {
                pivot: 1,
                row: 2,
                ..
            })
        ));
    }
}
