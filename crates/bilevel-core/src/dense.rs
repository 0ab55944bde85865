//! Small dense linear algebra on faer: symmetric eigendecompositions and pseudoinverses.
//!
//! Used for Lanczos' tridiagonal matrices, randomised spectral sketches and as the dense
//! reference that iterative solvers are tested against.

use faer::{Mat, Side};

/// Errors of the dense routines.
#[derive(Debug, thiserror::Error)]
pub enum DenseError {
    /// The eigensolver did not converge.
    #[error("symmetric eigendecomposition of a {n}×{n} matrix did not converge")]
    NoConvergence {
        /// Dimension.
        n: usize,
    },
    /// A non-finite entry was found.
    #[error("matrix has a non-finite entry at ({row}, {col})")]
    NonFinite {
        /// Row.
        row: usize,
        /// Column.
        col: usize,
    },
}

/// Eigendecomposition `A = U diag(λ) Uᵀ` of a symmetric matrix, eigenvalues ascending.
#[derive(Clone, Debug)]
pub struct SymEig {
    /// Dimension n.
    pub n: usize,
    /// Eigenvalues λ₁ ≤ … ≤ λₙ.
    pub values: Vec<f64>,
    /// Eigenvectors, column-major: column i is `vectors[i*n..(i+1)*n]`.
    pub vectors: Vec<f64>,
}

impl SymEig {
    /// Eigenvector i (unit norm).
    pub fn vector(&self, i: usize) -> &[f64] {
        &self.vectors[i * self.n..(i + 1) * self.n]
    }

    /// `A^† b = Σ_{|λ_i| > τ} (u_iᵀ b / λ_i) u_i` with `τ = rel_tol · max|λ|`.
    pub fn pinv_apply(&self, b: &[f64], rel_tol: f64) -> Vec<f64> {
        let tau = rel_tol * self.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut out = vec![0.0; self.n];
        for (i, &l) in self.values.iter().enumerate() {
            if l.abs() > tau {
                let u = self.vector(i);
                let c = crate::vector::dot(u, b) / l;
                crate::vector::axpy(&mut out, c, u);
            }
        }
        out
    }

    /// Norm of the projection of `b` on the eigenvectors with `|λ_i| ≤ rel_tol · max|λ|`.
    pub fn kernel_component(&self, b: &[f64], rel_tol: f64) -> f64 {
        let tau = rel_tol * self.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        self.values
            .iter()
            .enumerate()
            .filter(|(_, l)| l.abs() <= tau)
            .map(|(i, _)| crate::vector::dot(self.vector(i), b).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// Number of eigenvalues with `|λ_i| ≤ rel_tol · max|λ|`.
    pub fn null_count(&self, rel_tol: f64) -> usize {
        let tau = rel_tol * self.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        self.values.iter().filter(|l| l.abs() <= tau).count()
    }
}

/// Eigendecomposition of the symmetric `n×n` matrix `a` (row-major; only the lower triangle is
/// read).
pub fn sym_eig(a: &[f64], n: usize) -> Result<SymEig, DenseError> {
    assert_eq!(a.len(), n * n, "sym_eig: expected {n}×{n} entries");
    if n == 0 {
        return Ok(SymEig {
            n,
            values: vec![],
            vectors: vec![],
        });
    }
    for (k, v) in a.iter().enumerate() {
        if !v.is_finite() {
            return Err(DenseError::NonFinite {
                row: k / n,
                col: k % n,
            });
        }
    }
    let m = Mat::<f64>::from_fn(n, n, |i, j| a[i * n + j]);
    let evd = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| DenseError::NoConvergence { n })?;
    let s = evd.S();
    let u = evd.U();
    let mut order: Vec<usize> = (0..n).collect();
    let vals: Vec<f64> = (0..n).map(|i| s[i]).collect();
    order.sort_by(|&i, &j| vals[i].total_cmp(&vals[j]));
    let values = order.iter().map(|&i| vals[i]).collect();
    let mut vectors = Vec::with_capacity(n * n);
    for &i in &order {
        vectors.extend((0..n).map(|r| u[(r, i)]));
    }
    Ok(SymEig { n, values, vectors })
}

/// The dense `n×n` matrix (row-major) of a linear operator, built column by column from `n`
/// applications to unit vectors and symmetrised as `(A + Aᵀ)/2`.
pub fn dense_from_operator(n: usize, mut apply: impl FnMut(&[f64], &mut [f64])) -> Vec<f64> {
    let mut a = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        apply(&e, &mut col);
        e[j] = 0.0;
        for i in 0..n {
            a[i * n + j] = col[i];
        }
    }
    for i in 0..n {
        for j in 0..i {
            let s = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = s;
            a[j * n + i] = s;
        }
    }
    a
}

/// Eigenvalues and eigenvectors of the symmetric tridiagonal matrix with diagonal `alpha` and
/// off-diagonal `beta` (`beta.len() == alpha.len() − 1`).
pub fn tridiagonal_eig(alpha: &[f64], beta: &[f64]) -> Result<SymEig, DenseError> {
    let n = alpha.len();
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        t[i * n + i] = alpha[i];
        if i + 1 < n {
            t[(i + 1) * n + i] = beta[i];
            t[i * n + i + 1] = beta[i];
        }
    }
    sym_eig(&t, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eig_reconstructs_and_pinv_inverts_on_range() {
        // A = diag(0, 1, 3) rotated: eigenvalues known exactly.
        let (c, s) = (0.6f64, 0.8f64);
        let q = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        let d = [0.0, 1.0, 3.0];
        let mut a = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| q[i][k] * d[k] * q[j][k]).sum();
            }
        }
        let e = sym_eig(&a, 3).unwrap();
        for (v, ex) in e.values.iter().zip(d) {
            assert!((v - ex).abs() < 1e-14);
        }
        assert_eq!(e.null_count(1e-12), 1);
        // b = column 1 of q (eigenvalue 1) + 2 × kernel vector.
        let b = [q[0][1] + 2.0 * q[0][0], q[1][1] + 2.0 * q[1][0], 0.0];
        let x = e.pinv_apply(&b, 1e-12);
        assert!((x[0] - q[0][1]).abs() < 1e-14 && (x[1] - q[1][1]).abs() < 1e-14);
        assert!((e.kernel_component(&b, 1e-12) - 2.0).abs() < 1e-14);
        let t = tridiagonal_eig(&[2.0, 2.0], &[1.0]).unwrap();
        assert!((t.values[0] - 1.0).abs() < 1e-14 && (t.values[1] - 3.0).abs() < 1e-14);
    }
}
