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
