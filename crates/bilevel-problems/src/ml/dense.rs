//! Dense least-squares selections for the over-parameterised problems (faer SVDs): the
//! minimum-norm least-squares solution `B^† T`, a basis of `null(B)`, the optimistic selection
//! (the least-squares minimiser of `B Y ≈ T` with the smallest validation loss) and `(BᵀB)^†`.

use faer::{Mat, MatRef};

/// A row-major slice as a faer matrix.
pub fn mat_rm(data: &[f64], rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| data[i * cols + j])
}

/// A faer matrix as row-major data.
pub fn to_rm(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        out.extend((0..m.ncols()).map(|j| m[(i, j)]));
    }
    out
}

/// Numerical rank threshold: singular values `≤ 10 · max(rows, cols) · ε · σ_max` count as
/// zero (ten times NumPy's `matrix_rank` default).
fn rank_tol(s: &[f64], rows: usize, cols: usize) -> f64 {
    let smax = s.iter().fold(0.0f64, |a, &b| a.max(b));
    10.0 * rows.max(cols) as f64 * f64::EPSILON * smax
}

/// The thin SVD of a matrix truncated to its numerical rank: `B ≈ U diag(s) Vᵀ`.
#[derive(Clone, Debug)]
pub struct RankSvd {
    /// `rows × r`.
    pub u: Mat<f64>,
    /// The r nonzero singular values, descending.
    pub s: Vec<f64>,
    /// `cols × r`.
    pub v: Mat<f64>,
}

impl RankSvd {
    /// SVD of `b`, or `None` when the SVD fails (non-finite entries).
    pub fn new(b: MatRef<'_, f64>) -> Option<RankSvd> {
        let (m, n) = (b.nrows(), b.ncols());
        if m == 0 || n == 0 {
            return Some(RankSvd {
                u: Mat::zeros(m, 0),
                s: vec![],
                v: Mat::zeros(n, 0),
            });
        }
        let svd = b.thin_svd().ok()?;
        let sd = svd.S().column_vector();
        let s: Vec<f64> = (0..sd.nrows()).map(|i| sd[i]).collect();
        let tol = rank_tol(&s, m, n);
        let r = s.iter().filter(|&&v| v > tol).count();
        Some(RankSvd {
            u: svd.U().subcols(0, r).to_owned(),
            s: s[..r].to_vec(),
            v: svd.V().subcols(0, r).to_owned(),
        })
    }

    /// Numerical rank r.
    pub fn rank(&self) -> usize {
        self.s.len()
    }

    /// `B^† T = V diag(1/s) Uᵀ T` (`T`: `rows × k`).
    pub fn pinv_apply(&self, t: MatRef<'_, f64>) -> Mat<f64> {
        let mut c = self.u.transpose() * t;
        for (i, s) in self.s.iter().enumerate() {
            for j in 0..c.ncols() {
                c[(i, j)] /= s;
            }
        }
        &self.v * c
    }

    /// `(BᵀB)^† R = V diag(1/s²) Vᵀ R` (`R`: `cols × k`).
    pub fn gram_pinv_apply(&self, r: MatRef<'_, f64>) -> Mat<f64> {
        let mut c = self.v.transpose() * r;
        for (i, s) in self.s.iter().enumerate() {
            for j in 0..c.ncols() {
                c[(i, j)] /= s * s;
            }
        }
        &self.v * c
    }
}

/// An orthonormal basis of `null(B)` (`cols × q`), from the full SVD.
pub fn null_basis(b: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let (m, n) = (b.nrows(), b.ncols());
    if m == 0 {
        return Some(Mat::identity(n, n));
    }
    let svd = b.svd().ok()?;
    let sd = svd.S().column_vector();
    let s: Vec<f64> = (0..sd.nrows()).map(|i| sd[i]).collect();
    let tol = rank_tol(&s, m, n);
    let r = s.iter().filter(|&&v| v > tol).count();
    Some(svd.V().subcols(r, n - r).to_owned())
}

/// The two selections from the least-squares solution set `{Y : BᵀB Y = BᵀT}` (`p × k`):
/// the minimum-norm point `B^† T` (where gradient descent from 0 converges) and the optimistic
/// point, the minimiser of `‖A_val Y − T_val‖` over the set (the minimum-norm one among them
/// when `null(B) ∩ null(A_val) ≠ {0}`).
#[derive(Clone, Debug)]
pub struct Selections {
    /// `B^† T`.
    pub min_norm: Mat<f64>,
    /// The optimistic selection.
    pub optimistic: Mat<f64>,
    /// `rank B`.
    pub rank: usize,
}

/// See [`Selections`]: `Y_opt = Y_mn + N Z`, `N` a basis of `null(B)`,
/// `Z = (A_val N)^† (T_val − A_val Y_mn)`.
pub fn selections(
    b: MatRef<'_, f64>,
    t: MatRef<'_, f64>,
    a_val: MatRef<'_, f64>,
    t_val: MatRef<'_, f64>,
) -> Option<Selections> {
    let svd = RankSvd::new(b)?;
    let min_norm = svd.pinv_apply(t);
    let n = null_basis(b)?;
    let optimistic = if n.ncols() == 0 {
        min_norm.clone()
    } else {
        let r0 = t_val - a_val * &min_norm;
        let m = a_val * &n;
        let z = RankSvd::new(m.as_ref())?.pinv_apply(r0.as_ref());
        &min_norm + &n * z
    };
    Some(Selections {
        min_norm,
        optimistic,
        rank: svd.rank(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bilevel_core::rng::Rng;
    use faer::linalg::solvers::Solve;

    fn random(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
        let mut rng = Rng::new(seed);
        Mat::from_fn(rows, cols, |_, _| rng.normal())
    }

    /// The optimistic selection equals the solution of the KKT system
    /// `[A_valᵀA_val  Bᵀ; B  0] [y; λ] = [A_valᵀ t_val; t]` (B of full row rank, n + m ≥ p).
    #[test]
    fn optimistic_selection_solves_the_kkt_system() {
        let (n, p, m, k) = (4, 9, 12, 2);
        let b = random(n, p, 1);
        let t = random(n, k, 2);
        let av = random(m, p, 3);
        let tv = random(m, k, 4);
        let sel = selections(b.as_ref(), t.as_ref(), av.as_ref(), tv.as_ref()).unwrap();
        assert_eq!(sel.rank, n);
        let q = p + n;
        let ata = av.transpose() * &av;
        let kkt = Mat::from_fn(q, q, |i, j| match (i < p, j < p) {
            (true, true) => ata[(i, j)],
            (true, false) => b[(j - p, i)],
            (false, true) => b[(i - p, j)],
            (false, false) => 0.0,
        });
        let atb = av.transpose() * &tv;
        let rhs = Mat::from_fn(q, k, |i, j| if i < p { atb[(i, j)] } else { t[(i - p, j)] });
        let sol = kkt.partial_piv_lu().solve(&rhs);
        for i in 0..p {
            for j in 0..k {
                assert!((sel.optimistic[(i, j)] - sol[(i, j)]).abs() < 1e-10);
            }
        }
        // Min-norm: interpolates and lies in range(Bᵀ) (orthogonal to the null space).
        let res = &b * &sel.min_norm - &t;
        assert!(res.norm_l2() < 1e-12);
        let nb = null_basis(b.as_ref()).unwrap();
        assert_eq!(nb.ncols(), p - n);
        assert!((nb.transpose() * &sel.min_norm).norm_l2() < 1e-12);
        assert!((&b * &nb).norm_l2() < 1e-12);
        // (BᵀB)^† on range(Bᵀ) inverts BᵀB.
        let svd = RankSvd::new(b.as_ref()).unwrap();
        let r = b.transpose() * random(n, 1, 5);
        let back = b.transpose() * (&b * svd.gram_pinv_apply(r.as_ref()));
        assert!((back - &r).norm_l2() < 1e-10 * r.norm_l2());
    }

    #[test]
    fn rank_deficient_rows_give_least_squares_selections() {
        // Two identical rows with different targets: the least-squares fit averages them.
        let (p, k) = (5, 1);
        let mut b = random(3, p, 6);
        for j in 0..p {
            b[(1, j)] = b[(0, j)];
        }
        let t = Mat::from_fn(3, k, |i, _| [1.0, 0.0, 2.0][i]);
        let av = random(8, p, 7);
        let tv = random(8, k, 8);
        let sel = selections(b.as_ref(), t.as_ref(), av.as_ref(), tv.as_ref()).unwrap();
        assert_eq!(sel.rank, 2);
        let fit = &b * &sel.optimistic;
        assert!((fit[(0, 0)] - 0.5).abs() < 1e-12 && (fit[(2, 0)] - 2.0).abs() < 1e-12);
        assert_eq!(
            to_rm(mat_rm(&[1.0, 2.0, 3.0, 4.0], 2, 2).as_ref()),
            [1.0, 2.0, 3.0, 4.0]
        );
    }
}
